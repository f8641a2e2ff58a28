/**
 * Microsoft Graph mail adapter: sends each message from the configured sender mailbox with
 * `POST /users/{sender}/sendMail` (Graph API: user: sendMail), app-only.
 *
 * - Authentication: `@azure/identity` credential (client secret, client certificate or managed identity) behind
 *   the Graph client's `TokenCredentialAuthenticationProvider`, scope `{baseUrl}/.default`.
 * - Middleware chain (the same in production and in the contract tests): AuthenticationHandler ->
 *   {@link GraphSendRetryHandler} (429/503 with `Retry-After`, within a ceiling) -> TelemetryHandler ->
 *   HTTPMessageHandler (global `fetch`). Redirects are refused. `customHosts` holds the host of `baseUrl`, so the
 *   Authorization header is sent to a non-default Graph host too (https only).
 * - Bounded: at most `maxConcurrency` sends in flight for the sender mailbox; the rest wait their turn.
 * - A send counts as sent only on `202 Accepted`. Anything else throws {@link GraphMailSendFailedError}
 *   (`MAIL.SEND_FAILED`, meta `{ retryable, status, requestId, graphCode, attempts }`).
 * - Body: Graph's JSON `sendMail` carries one body, so the HTML part is sent (`contentType: 'HTML'`). The
 *   templates put every sentence of the plain-text part into the HTML too, and Exchange Online derives the
 *   text/plain alternative from the HTML when it writes the message as MIME for delivery. The `text` part is
 *   validated but not transmitted.
 * - Idempotent on `MailMessage.id` within this process (a repeat of a sent or in-flight id sends nothing).
 *   Graph has no idempotency key, so a repeat after a restart sends again.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { AuthenticationHandler, Client, GraphError, HTTPMessageHandler, ResponseType, TelemetryHandler } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { AppError } from '../../../common/app-error';
import type { Logger } from '../../../common/logger';
import { MAIL_ERROR_CODES, validateMailMessage, type MailMessage, type MailPort, type MailSendResult } from '../mail.port';
import { createTokenCredential, type TokenCredential } from './graph-credential.factory';
import { GRAPH_ENV, graphScope, type GraphMailConfig } from './graph-mail.config';
import { GraphMailSendFailedError, GraphMailStartupError, RETRYABLE_STATUSES, aadstsCode, readGraphError, safeRequestId } from './graph-mail.errors';
import { GraphSendRetryHandler, GraphTransportError, SendAttemptRecord } from './graph-send-retry.middleware';
import { SendLimiter } from './send-limiter';

/** The JSON body of `sendMail` (Graph API: user: sendMail; message, itemBody, recipient, emailAddress resources). */
export interface SendMailBody {
  message: {
    subject: string;
    body: { contentType: 'HTML'; content: string };
    toRecipients: { emailAddress: { address: string } }[];
  };
  saveToSentItems: boolean;
}

/** Options beyond configuration, for tests and special deployments. */
export interface GraphMailAdapterOptions {
  /** Use this credential instead of building one from `config.credential`. */
  credential?: TokenCredential;
  /** Back-off base when a 429/503 has no `Retry-After`, in ms; default 1000. */
  backoffBaseMs?: number;
  /** Random source for the back-off jitter, in [0, 1). */
  random?: () => number;
  /** How many sent ids to remember for idempotency; default 10 000. */
  rememberSentIds?: number;
}

/** What {@link GraphMailAdapter.verify} learned. */
export interface GraphVerifyResult {
  /** When the access token it got expires. */
  tokenExpiresOn: Date;
  /** Application permissions in the token (`roles`); null when the token is unreadable or has no roles claim. */
  roles: string[] | null;
}

/** Transport error codes that trying again will not fix. */
const PERMANENT_TRANSPORT = new Set([
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_INVALID_URL', 'ENOTFOUND',
]);

/** Entra ID error codes (AADSTS) and the setting that causes each (Microsoft Entra authentication and authorization error codes). */
const AADSTS_SETTING: Record<string, string> = {
  AADSTS90002: GRAPH_ENV.tenantId, // tenant not found
  AADSTS900023: GRAPH_ENV.tenantId, // tenant id is not a GUID or domain
  AADSTS90013: GRAPH_ENV.tenantId,
  AADSTS700016: GRAPH_ENV.clientId, // application not found in the directory
  AADSTS7000112: GRAPH_ENV.clientId, // application disabled
  AADSTS65001: GRAPH_ENV.clientId, // no admin consent
  AADSTS7000215: GRAPH_ENV.clientSecret, // invalid client secret
  AADSTS7000222: GRAPH_ENV.clientSecret, // client secret expired
  AADSTS7000218: GRAPH_ENV.credential, // no client_secret / client_assertion sent
  AADSTS700027: GRAPH_ENV.certificatePath, // assertion signature / certificate not registered
  AADSTS700024: GRAPH_ENV.certificatePath, // assertion outside its time range
  AADSTS500011: GRAPH_ENV.baseUrl, // resource (scope) not found in the tenant
  AADSTS70011: GRAPH_ENV.baseUrl, // invalid scope
  AADSTS1002012: GRAPH_ENV.baseUrl, // invalid scope
};

/** Encode a sender id for the URL path; `@` stays readable as Graph's own examples write it. */
function senderPathSegment(sender: string): string {
  return encodeURIComponent(sender).replace(/%40/g, '@');
}

/**
 * The `roles` claim of a JWT access token: its application permissions. `unreadable` when the token is not a
 * readable JWT (access tokens are opaque by contract), `absent` when it has no roles claim (Entra leaves the claim
 * out when the app holds no application permission for the resource).
 */
function tokenRoles(token: string): string[] | 'unreadable' | 'absent' {
  const parts = token.split('.');
  if (parts.length !== 3) return 'unreadable';
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { roles?: unknown };
    if (!Array.isArray(claims.roles)) return 'absent';
    return claims.roles.filter((r): r is string => typeof r === 'string');
  } catch {
    return 'unreadable';
  }
}

/** See the module comment. */
export class GraphMailAdapter implements MailPort {
  private readonly client: Client;
  private readonly credential: TokenCredential;
  private readonly limiter: SendLimiter;
  private readonly logger: Logger;
  private readonly inFlight = new Map<string, Promise<MailSendResult>>();
  private readonly sentIds = new Set<string>();
  private readonly rememberSentIds: number;
  private readonly sendPath: string;

  /**
   * @param config - validated settings (see `loadGraphMailConfig`)
   * @param logger - the service logger; lines carry `component: 'graph-mail'`
   * @param options - see {@link GraphMailAdapterOptions}
   */
  constructor(
    readonly config: GraphMailConfig,
    logger: Logger,
    options: GraphMailAdapterOptions = {},
  ) {
    this.logger = logger.child({ component: 'graph-mail' });
    this.credential = options.credential ?? createTokenCredential(config.credential, config.authorityHost);
    this.limiter = new SendLimiter(config.maxConcurrency);
    this.rememberSentIds = options.rememberSentIds ?? 10_000;
    this.sendPath = `/users/${senderPathSegment(config.sender)}/sendMail`;
    const authProvider = new TokenCredentialAuthenticationProvider(this.credential, { scopes: [graphScope(config)] });
    const retry = new GraphSendRetryHandler(
      {
        maxRetries: config.maxRetries,
        maxWaitMs: config.maxRetryWaitSeconds * 1000,
        backoffBaseMs: options.backoffBaseMs ?? 1000,
        attemptTimeoutMs: config.requestTimeoutSeconds * 1000,
      },
      this.logger,
      options.random,
    );
    this.client = Client.initWithMiddleware({
      middleware: [new AuthenticationHandler(authProvider), retry, new TelemetryHandler(), new HTTPMessageHandler()],
      baseUrl: config.baseUrl,
      defaultVersion: 'v1.0',
      customHosts: new Set([new URL(config.baseUrl).hostname]),
      fetchOptions: { redirect: 'error' },
    });
  }

  /**
   * Start-up check: the sender is configured and a token can be had for Graph.
   *
   * NOTE: it reads nothing from Graph (reading the sender's user object would need a permission beyond
   * Mail.Send). When the token is a readable JWT whose roles lack `Mail.Send`, it fails, naming the app registration;
   *   a token with no roles claim at all only warns (the grant may come from Exchange Online RBAC for Applications).
   *
   * @returns when the token expires and its roles
   * @throws GraphMailStartupError `CONFIG.INVALID` naming the variable to fix (`meta.setting`), or
   *   `MAIL.GRAPH_START_FAILED` when Entra ID could not be reached or answered unexpectedly
   */
  async verify(): Promise<GraphVerifyResult> {
    const { credential } = this.config;
    if (!this.config.sender) throw new GraphMailStartupError(`${GRAPH_ENV.sender} is not set: name the mailbox that sends the emails.`, { setting: GRAPH_ENV.sender });
    if (credential.kind === 'client-certificate') await this.checkCertificateFile(credential.certificatePath);
    let token;
    try {
      token = await this.credential.getToken(graphScope(this.config), { abortSignal: AbortSignal.timeout(this.config.requestTimeoutSeconds * 1000 * 2) });
    } catch (err) {
      throw await this.tokenFailure(err);
    }
    if (!token?.token) throw new GraphMailStartupError('Microsoft Entra ID gave no access token for Microsoft Graph.', {});
    const roles = tokenRoles(token.token);
    if (Array.isArray(roles) && !roles.includes('Mail.Send')) {
      throw new GraphMailStartupError(
        `The app registration ${GRAPH_ENV.clientId} has application permissions but not Mail.Send with admin consent (the access token holds no Mail.Send role).`,
        { setting: credential.kind === 'managed-identity' ? GRAPH_ENV.credential : GRAPH_ENV.clientId },
      );
    }
    if (roles === 'unreadable') this.logger.warn('the access token is not a readable JWT; the Mail.Send permission was not checked at start-up');
    if (roles === 'absent') {
      this.logger.warn(
        'the access token holds no application permission: sending works only if Exchange Online RBAC for Applications grants Application Mail.Send on the sender mailbox',
      );
    }
    const tokenExpiresOn = new Date(token.expiresOnTimestamp);
    this.logger.info(
      { credentialKind: credential.kind, sender: this.config.sender, baseUrl: this.config.baseUrl, saveToSentItems: this.config.saveToSentItems, tokenExpiresOn },
      'Microsoft Graph mail ready',
    );
    return { tokenExpiresOn, roles: Array.isArray(roles) ? roles : null };
  }

  /**
   * Readiness: an access token for Graph can be had now (MSAL serves a cached one until it nears expiry, so a
   * probe costs a round trip to Microsoft Entra ID at most once per token lifetime). Sends nothing, logs nothing.
   *
   * @throws AppError `MAIL.UNAVAILABLE` (cause: the credential's error) when no token comes within twice the
   *   request timeout (`GRAPH_REQUEST_TIMEOUT_SECONDS`)
   */
  async check(): Promise<void> {
    try {
      const token = await this.credential.getToken(graphScope(this.config), { abortSignal: AbortSignal.timeout(this.config.requestTimeoutSeconds * 1000 * 2) });
      if (!token?.token) throw new Error('no access token');
    } catch (err) {
      throw new AppError(MAIL_ERROR_CODES.UNAVAILABLE, `No access token for Microsoft Graph (${transportName(err)}).`, { cause: err });
    }
  }

  /**
   * Send one message through Graph, at most once per `message.id` in this process.
   *
   * @param message - validated with `validateMailMessage`
   * @returns `{ status: 'sent' }` once Graph answered 202 Accepted (or the id was already sent)
   * @throws MailSendFailedError `reason: 'invalid_message'` for a refused message (nothing sent);
   *   GraphMailSendFailedError (`MAIL.SEND_FAILED`, `reason: 'provider'`) when Graph did not accept it, with
   *   `meta.retryable` true for 408/429/5xx, time-outs and network errors, false for other 4xx (400/401/403/404...)
   */
  async send(message: MailMessage): Promise<MailSendResult> {
    validateMailMessage(message);
    const id = message.id.toLowerCase();
    if (this.sentIds.has(id)) {
      this.logger.debug({ kind: message.kind, messageId: id }, 'mail already sent through Graph; not sent again');
      return { status: 'sent' };
    }
    const previous = this.inFlight.get(id);
    if (previous) return previous;
    const attempt = this.limiter
      .run(() => this.post({ ...message, id }))
      .then((result) => {
        this.rememberSent(id);
        return result;
      })
      .finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, attempt);
    return attempt;
  }

  private rememberSent(id: string): void {
    this.sentIds.add(id);
    if (this.sentIds.size > this.rememberSentIds) this.sentIds.delete(this.sentIds.values().next().value!);
  }

  private async post(message: MailMessage): Promise<MailSendResult> {
    const body: SendMailBody = {
      message: {
        subject: message.subject,
        body: { contentType: 'HTML', content: message.html },
        toRecipients: [{ emailAddress: { address: message.to } }],
      },
      saveToSentItems: this.config.saveToSentItems,
    };
    const record = new SendAttemptRecord();
    const started = performance.now();
    let response: Response;
    try {
      response = (await this.client.api(this.sendPath).middlewareOptions([record]).responseType(ResponseType.RAW).post(body)) as Response;
    } catch (err) {
      throw this.thrownFailure(err, message, record);
    }
    const requestId = safeRequestId(response.headers.get('request-id'));
    if (response.status === 202) {
      await response.body?.cancel().catch(() => undefined);
      this.logger.info(
        { kind: message.kind, messageId: message.id, status: 202, requestId, attempts: record.attempts, ms: Math.round(performance.now() - started) },
        'mail sent through Microsoft Graph',
      );
      return { status: 'sent' };
    }
    const text = await response.text().catch(() => '');
    const { graphCode, requestId: errorRequestId } = readGraphError(text, response.headers.get('request-id'));
    const status = response.status;
    const retryable = RETRYABLE_STATUSES.has(status);
    const failure = new GraphMailSendFailedError(this.describeStatus(status, graphCode, record), {
      retryable,
      kind: message.kind,
      messageId: message.id,
      status,
      requestId: errorRequestId,
      graphCode,
      attempts: record.attempts,
      ...(record.retryAfterTooLongSeconds !== undefined ? { retryAfterSeconds: record.retryAfterTooLongSeconds } : {}),
    });
    this.logFailure(failure);
    throw failure;
  }

  private describeStatus(status: number, graphCode: string, record: SendAttemptRecord): string {
    const what = `HTTP ${status} ${graphCode}`;
    if (status === 403) {
      return `Microsoft Graph denied sending as the sender mailbox (${what}): check the Mail.Send application permission and the application access policy for ${GRAPH_ENV.sender}.`;
    }
    if (status === 401) return `Microsoft Graph refused the access token (${what}).`;
    if (status === 404) return `Microsoft Graph does not know the sender mailbox (${what}): check ${GRAPH_ENV.sender}.`;
    if (status === 429 || status === 503) {
      if (record.retryAfterTooLongSeconds !== undefined) {
        return `Microsoft Graph is ${status === 429 ? 'throttling the sender mailbox' : 'unavailable'} (${what}) and asked to wait ${record.retryAfterTooLongSeconds} s, longer than allowed.`;
      }
      return `Microsoft Graph is ${status === 429 ? 'throttling the sender mailbox' : 'unavailable'} (${what}) after ${record.attempts} attempts.`;
    }
    if (status >= 200 && status < 300) return `Microsoft Graph answered ${what} instead of 202 Accepted; the message is not counted as sent.`;
    if (status >= 500) return `Microsoft Graph failed (${what}).`;
    return `Microsoft Graph refused the message (${what}).`;
  }

  /** Map an error thrown before any HTTP answer (token, network, time-out) to a send failure. */
  private thrownFailure(err: unknown, message: MailMessage, record: SendAttemptRecord): GraphMailSendFailedError {
    let failure: GraphMailSendFailedError;
    if (err instanceof GraphTransportError) {
      const timedOut = err.transportCode === 'ETIMEDOUT';
      failure = new GraphMailSendFailedError(
        timedOut
          ? `Microsoft Graph did not answer within ${this.config.requestTimeoutSeconds} s; the message may or may not have been sent.`
          : `Could not reach Microsoft Graph (${err.transportCode}).`,
        {
          retryable: !PERMANENT_TRANSPORT.has(err.transportCode),
          kind: message.kind,
          messageId: message.id,
          status: null,
          requestId: null,
          graphCode: err.transportCode,
          attempts: record.attempts,
          cause: err,
        },
      );
    } else {
      // The authentication handler runs before any request: a GraphError with no status is a token failure.
      const aadsts = aadstsCode(err);
      const name = err instanceof GraphError ? (err.code ?? 'unknown') : err instanceof Error ? err.name : 'unknown';
      failure = new GraphMailSendFailedError(`Could not get an access token for Microsoft Graph (${aadsts ?? name}).`, {
        retryable: aadsts === undefined,
        kind: message.kind,
        messageId: message.id,
        status: null,
        requestId: null,
        graphCode: aadsts ?? (/^[A-Za-z]\w{0,63}$/.test(name) ? name : 'unknown'),
        attempts: record.attempts,
        cause: err,
      });
    }
    this.logFailure(failure);
    return failure;
  }

  private logFailure(failure: GraphMailSendFailedError): void {
    this.logger.warn({ err: failure.toJSON() }, 'mail not sent through Microsoft Graph');
  }

  private async checkCertificateFile(path: string): Promise<void> {
    const setting = GRAPH_ENV.certificatePath;
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      throw new GraphMailStartupError(`${setting}: cannot read the certificate file (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, { setting });
    }
    if (!/-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/.test(pem)) {
      throw new GraphMailStartupError(`${setting}: the file has no unencrypted PEM private key (it must hold the private key and the certificate).`, { setting });
    }
    const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
    if (!certPem) throw new GraphMailStartupError(`${setting}: the file has no PEM certificate (it must hold the private key and the certificate).`, { setting });
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch {
      throw new GraphMailStartupError(`${setting}: the certificate in the file cannot be read.`, { setting });
    }
    const now = Date.now();
    if (Date.parse(cert.validTo) < now) throw new GraphMailStartupError(`${setting}: the certificate expired on ${cert.validTo}.`, { setting });
    if (Date.parse(cert.validFrom) > now) throw new GraphMailStartupError(`${setting}: the certificate is not valid before ${cert.validFrom}.`, { setting });
  }

  /** Turn a token failure at start-up into an error naming the setting to fix. */
  private async tokenFailure(err: unknown): Promise<GraphMailStartupError> {
    const { credential } = this.config;
    if (credential.kind === 'managed-identity') {
      return new GraphMailStartupError(
        `${GRAPH_ENV.credential}=managed-identity: no token from the managed identity${credential.clientId ? ` ${GRAPH_ENV.clientId}` : ''} (is one assigned to this host, with Mail.Send?).`,
        { setting: credential.clientId ? GRAPH_ENV.clientId : GRAPH_ENV.credential, cause: err },
      );
    }
    const aadsts = aadstsCode(err);
    if (aadsts) {
      let setting = AADSTS_SETTING[aadsts] ?? GRAPH_ENV.credential;
      if (setting === GRAPH_ENV.clientSecret && credential.kind === 'client-certificate') setting = GRAPH_ENV.certificatePath;
      if (setting === GRAPH_ENV.certificatePath && credential.kind === 'client-secret') setting = GRAPH_ENV.clientSecret;
      const also = setting === GRAPH_ENV.clientSecret ? ` (or ${GRAPH_ENV.clientSecretFile})` : '';
      return new GraphMailStartupError(`${setting}${also}: Microsoft Entra ID refused the token request (${aadsts}).`, { setting, aadsts, cause: err });
    }
    // No AADSTS code: MSAL could not resolve the tenant's endpoints. Ask the metadata URL to tell which setting.
    const metadataUrl = `${this.config.authorityHost}/${encodeURIComponent(credential.tenantId)}/v2.0/.well-known/openid-configuration`;
    try {
      const res = await fetch(metadataUrl, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      const probed = aadstsCode(text);
      if (!res.ok && probed && AADSTS_SETTING[probed] === GRAPH_ENV.tenantId) {
        return new GraphMailStartupError(`${GRAPH_ENV.tenantId}: Microsoft Entra ID does not know this tenant (${probed}).`, { setting: GRAPH_ENV.tenantId, aadsts: probed, cause: err });
      }
      return new GraphMailStartupError(
        `Could not get an access token for Microsoft Graph (${err instanceof Error ? err.name : 'error'}); the authority answered HTTP ${res.status}: check ${GRAPH_ENV.tenantId} and ${GRAPH_ENV.authorityHost}.`,
        { cause: err },
      );
    } catch (probeErr) {
      return new GraphMailStartupError(
        `${GRAPH_ENV.authorityHost}: cannot reach Microsoft Entra ID at ${this.config.authorityHost} (${transportName(probeErr)}).`,
        { setting: GRAPH_ENV.authorityHost, cause: err },
      );
    }
  }
}

function transportName(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } })?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  return err instanceof Error ? err.name : 'error';
}

/**
 * Build the Graph mail adapter (composition roots call this).
 *
 * @param config - from `loadGraphMailConfig(process.env)`
 * @param logger - the service logger
 * @param options - see {@link GraphMailAdapterOptions}
 * @returns the adapter; call `await adapter.verify()` before serving
 */
export function createGraphMailAdapter(config: GraphMailConfig, logger: Logger, options?: GraphMailAdapterOptions): GraphMailAdapter {
  return new GraphMailAdapter(config, logger, options);
}
