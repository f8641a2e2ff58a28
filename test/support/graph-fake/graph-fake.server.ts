/**
 * A local stand-in for Microsoft Graph and the Microsoft Entra ID token service, over https on 127.0.0.1.
 *
 * It speaks the wire contracts the Graph mail adapter uses, and checks them as the real services do:
 * - Entra ID (OpenID Connect discovery and the OAuth 2.0 client-credentials grant, RFC 6749 4.4):
 *   `GET /{tenant}/v2.0/.well-known/openid-configuration` and `POST /{tenant}/oauth2/v2.0/token` with
 *   `client_secret` (RFC 6749 2.3.1) or a signed `client_assertion` (RFC 7523; `x5t`/`x5t#S256` header,
 *   RS256/PS256), scope `{graph origin}/.default`. Errors carry `AADSTSnnnn` codes as Entra's do.
 * - Graph `POST /v1.0/users/{id | userPrincipalName}/sendMail` (Graph API: user: sendMail): Bearer token issued
 *   here, JSON body `{ message: { subject, body: { contentType, content }, toRecipients }, saveToSentItems }`,
 *   `202 Accepted` with an empty body; errors as `{ error: { code, message, innerError: { 'request-id', date } } }`
 *   with `request-id` / `client-request-id` headers; `403 ErrorAccessDenied` when the token lacks the Mail.Send
 *   role or an application access policy leaves the mailbox out.
 * - Graph `GET /v1.0/users/{id | userPrincipalName}` (Graph API: Get user), for the directory lookup: Bearer token
 *   issued here, `403 Authorization_RequestDenied` when the token holds none of User.Read.All, User.ReadWrite.All,
 *   Directory.Read.All, Directory.ReadWrite.All; `404 Request_ResourceNotFound` for an unknown user; `$select`
 *   returns only the named properties (`400 BadRequest` for a property a user does not have), with an
 *   `@odata.context`. The users are {@link GraphFakeDirectory.users}.
 *
 * Every request is recorded (method, path, headers, body, arrival and response times in ms since the epoch,
 * fractional) so tests assert on what arrived, when, and how many were in flight at once. Tests may script the
 * next sendMail answers (e.g. 429 with Retry-After, 503, 400) with {@link GraphFake.queueSendMail}, and the next user
 * lookups with {@link GraphFake.queueUserLookup}.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { X509Certificate, constants, createHmac, randomBytes, randomUUID, verify as verifySignature } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** One request as it arrived. Header names are lower-case. */
export interface RecordedRequest {
  seq: number;
  kind: 'metadata' | 'token' | 'sendMail' | 'user' | 'other';
  method: string;
  /** Path and query exactly as sent. */
  url: string;
  /** Decoded path without the query. */
  pathname: string;
  headers: Record<string, string>;
  bodyText: string;
  /** Parsed JSON (sendMail) or form fields (token); undefined when the body did not parse. */
  body: unknown;
  /** When the request line arrived, ms since the epoch (fractional). */
  receivedAt: number;
  /** When the response was written, ms since the epoch (fractional). */
  respondedAt?: number;
  status?: number;
  responseHeaders?: Record<string, string>;
}

/** A scripted answer to one sendMail call. `error` gives a Graph error body; `holdMs` delays the answer. */
export interface ScriptedResponse {
  status: number;
  headers?: Record<string, string>;
  error?: { code: string; message: string };
  /** A raw body instead of a Graph error body. */
  rawBody?: string;
  holdMs?: number;
}

/** The app registration and directory the fake knows. */
export interface GraphFakeDirectory {
  tenantId: string;
  clientId: string;
  /** The secret the app registration holds; absent = secrets refused. */
  clientSecret?: string;
  /** The certificate (PEM) the app registration holds; absent = assertions refused. */
  clientCertPem?: string;
  /** Application permissions granted (token `roles`), e.g. ['Mail.Send']. */
  roles: string[];
  /** Mailboxes that exist (UPNs, lower-case) and their object ids. */
  mailboxes: { upn: string; id: string }[];
  /** Application access policy: mailboxes this app may send as; undefined = no policy (all). */
  accessPolicyMailboxes?: string[];
  /** Access token lifetime in seconds. */
  tokenLifetimeSeconds?: number;
  /** Users `GET /v1.0/users/{id}` knows (absent = none). */
  users?: GraphFakeUser[];
}

/** A user object as Graph holds it (the properties the fake serves; Graph API: user resource type). */
export interface GraphFakeUser {
  /** Entra object id (GUID, lower-case). */
  id: string;
  userPrincipalName: string;
  displayName: string;
  mail: string | null;
  mobilePhone: string | null;
  businessPhones?: string[];
}

/** Application permissions that let an app read any user's full profile (Graph permissions reference). */
export const USER_READ_ROLES = ['User.Read.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'] as const;

/** Properties `GET /users/{id}` returns when no `$select` is given (Graph v1.0 default set). */
const USER_DEFAULT_PROPERTIES = ['businessPhones', 'displayName', 'mail', 'mobilePhone', 'userPrincipalName', 'id'] as const;

const now = () => performance.timeOrigin + performance.now();

function graphErrorBody(code: string, message: string, requestId: string, clientRequestId?: string) {
  return {
    error: {
      code,
      message,
      innerError: {
        date: new Date().toISOString().replace(/\.\d{3}Z$/, ''),
        'request-id': requestId,
        ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
      },
    },
  };
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** See the module comment. */
export class GraphFake {
  readonly requests: RecordedRequest[] = [];
  /** Access tokens issued, newest last. */
  readonly issuedTokens: string[] = [];
  /** Largest number of sendMail requests in flight at once. */
  maxInFlight = 0;
  private inFlight = 0;
  private seq = 0;
  private server: Server | undefined;
  private port = 0;
  private readonly script: ScriptedResponse[] = [];
  private readonly userScript: ScriptedResponse[] = [];
  private readonly tokenKey = randomBytes(32);
  private readonly tokenExpiry = new Map<string, { exp: number; roles: string[] }>();
  /** How long each sendMail answer waits by default, in ms (to observe concurrency). */
  sendMailHoldMs = 0;

  constructor(
    readonly directory: GraphFakeDirectory,
    private readonly tls: { certPem: string; keyPem: string },
  ) {}

  /** Start listening on 127.0.0.1 (a free port). */
  async start(): Promise<void> {
    this.server = createServer({ cert: this.tls.certPem, key: this.tls.keyPem }, (req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`fake failed: ${(err as Error).message}`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** `https://127.0.0.1:<port>`: both the Graph base URL and the Entra authority host. */
  get origin(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get tokenEndpoint(): string {
    return `${this.origin}/${this.directory.tenantId}/oauth2/v2.0/token`;
  }

  /** Answer the next sendMail calls with these, in order; after them, the default contract behaviour. */
  queueSendMail(...responses: ScriptedResponse[]): void {
    this.script.push(...responses);
  }

  /** Answer the next user lookups (`GET /v1.0/users/{id}`) with these, in order, after the token check. */
  queueUserLookup(...responses: ScriptedResponse[]): void {
    this.userScript.push(...responses);
  }

  /** Forget recorded requests and scripts (issued tokens stay valid). */
  reset(): void {
    this.requests.length = 0;
    this.script.length = 0;
    this.userScript.length = 0;
    this.maxInFlight = 0;
    this.sendMailHoldMs = 0;
  }

  requestsOf(kind: RecordedRequest['kind']): RecordedRequest[] {
    return this.requests.filter((r) => r.kind === kind);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = now();
    const url = req.url ?? '/';
    const pathname = decodeURIComponent(new URL(url, this.origin).pathname);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const bodyText = Buffer.concat(chunks).toString('utf8');
    const tenant = this.directory.tenantId;
    const kind: RecordedRequest['kind'] =
      req.method === 'GET' && /^\/[^/]+\/v2\.0\/\.well-known\/openid-configuration$/.test(pathname)
        ? 'metadata'
        : req.method === 'POST' && /^\/[^/]+\/oauth2\/v2\.0\/token$/.test(pathname)
          ? 'token'
          : /^\/v1\.0\/users\/[^/]+\/sendMail$/i.test(pathname)
            ? 'sendMail'
            : /^\/v1\.0\/users\/[^/]+$/i.test(pathname)
              ? 'user'
              : 'other';
    const record: RecordedRequest = {
      seq: ++this.seq,
      kind,
      method: req.method ?? '',
      url,
      pathname,
      headers: lowerHeaders(req),
      bodyText,
      body: undefined,
      receivedAt,
    };
    this.requests.push(record);
    const send = (status: number, headers: Record<string, string>, body?: unknown) => {
      const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
      const all = { ...headers, 'content-length': String(Buffer.byteLength(text)) };
      record.respondedAt = now();
      record.status = status;
      record.responseHeaders = all;
      res.writeHead(status, all);
      res.end(text);
    };
    const oauthError = (status: number, error: string, aadsts: number, description: string) =>
      send(status, { 'content-type': 'application/json; charset=utf-8' }, {
        error,
        error_description: `AADSTS${aadsts}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
        error_codes: [aadsts],
        timestamp: new Date().toISOString(),
        trace_id: randomUUID(),
        correlation_id: randomUUID(),
      });

    if (kind === 'metadata') {
      const asked = pathname.split('/')[1]!;
      if (asked !== tenant) return oauthError(400, 'invalid_tenant', 90002, `Tenant '${asked}' not found.`);
      return send(200, { 'content-type': 'application/json; charset=utf-8' }, this.metadata());
    }
    if (kind === 'token') return this.token(record, pathname, bodyText, send, oauthError);
    if (kind === 'sendMail') return this.sendMail(record, req, pathname, bodyText, send);
    if (kind === 'user') return this.user(record, req, url, pathname, send);
    return send(404, { 'content-type': 'application/json' }, graphErrorBody('UnknownEndpoint', 'No such endpoint in the fake.', randomUUID()));
  }

  private metadata() {
    const base = `${this.origin}/${this.directory.tenantId}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${this.origin}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'tid'],
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    };
  }

  private token(
    record: RecordedRequest,
    pathname: string,
    bodyText: string,
    send: (status: number, headers: Record<string, string>, body?: unknown) => void,
    oauthError: (status: number, error: string, aadsts: number, description: string) => void,
  ): void {
    const d = this.directory;
    const form = Object.fromEntries(new URLSearchParams(bodyText));
    record.body = form;
    if (pathname.split('/')[1] !== d.tenantId) return oauthError(400, 'invalid_request', 90002, `Tenant '${pathname.split('/')[1]}' not found.`);
    if (form.grant_type !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    if (form.client_id !== d.clientId) {
      return oauthError(400, 'unauthorized_client', 700016, `Application with identifier '${form.client_id}' was not found in the directory '${d.tenantId}'.`);
    }
    if (form.scope !== `${this.origin}/.default`) {
      return oauthError(400, 'invalid_resource', 500011, `The resource principal named ${form.scope} was not found in the tenant.`);
    }
    if (form.client_secret !== undefined) {
      if (d.clientSecret === undefined || form.client_secret !== d.clientSecret) {
        return oauthError(401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.');
      }
    } else if (form.client_assertion !== undefined) {
      if (form.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        return oauthError(400, 'invalid_request', 50027, 'Invalid client_assertion_type.');
      }
      const problem = this.checkAssertion(form.client_assertion);
      if (problem) return oauthError(401, 'invalid_client', 700027, `Client assertion failed signature validation. (${problem})`);
    } else {
      return oauthError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    const lifetime = d.tokenLifetimeSeconds ?? 3600;
    const iat = Math.floor(Date.now() / 1000);
    const header = b64urlJson({ typ: 'JWT', alg: 'HS256' });
    const payload = b64urlJson({
      aud: this.origin,
      iss: `https://sts.windows.net/${d.tenantId}/`,
      iat,
      nbf: iat,
      exp: iat + lifetime,
      appid: d.clientId,
      // Entra leaves the claim out when the app holds no application permission for the resource.
      ...(d.roles.length > 0 ? { roles: d.roles } : {}),
      tid: d.tenantId,
      oid: randomUUID(),
      uti: randomBytes(8).toString('base64url'),
    });
    const signature = createHmac('sha256', this.tokenKey).update(`${header}.${payload}`).digest('base64url');
    const accessToken = `${header}.${payload}.${signature}`;
    this.issuedTokens.push(accessToken);
    this.tokenExpiry.set(accessToken, { exp: (iat + lifetime) * 1000, roles: [...d.roles] });
    send(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }, {
      token_type: 'Bearer',
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: accessToken,
    });
  }

  /** Check a client assertion JWT (RFC 7523 3) against the registered certificate; returns a problem or undefined. */
  private checkAssertion(jwt: string): string | undefined {
    const cert = this.directory.clientCertPem;
    if (!cert) return 'no certificate registered';
    const parts = jwt.split('.');
    if (parts.length !== 3) return 'not a JWS';
    const [h, p, s] = parts as [string, string, string];
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'unreadable JWT';
    }
    const x509 = new X509Certificate(cert);
    const der = x509.raw;
    const sha1 = Buffer.from(x509.fingerprint.replace(/:/g, ''), 'hex').toString('base64url');
    const sha256 = Buffer.from(x509.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
    if (der.length === 0) return 'bad certificate';
    if (header['x5t#S256'] !== sha256 && header.x5t !== sha1) return 'thumbprint does not match a registered certificate';
    const data = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, 'base64url');
    let ok: boolean;
    if (header.alg === 'RS256') ok = verifySignature('sha256', data, x509.publicKey, sig);
    else if (header.alg === 'PS256') {
      ok = verifySignature('sha256', data, { key: x509.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig);
    } else return `unsupported alg ${String(header.alg)}`;
    if (!ok) return 'bad signature';
    const nowS = Date.now() / 1000;
    if (claims.aud !== this.tokenEndpoint) return 'wrong audience';
    if (claims.iss !== this.directory.clientId || claims.sub !== this.directory.clientId) return 'wrong issuer or subject';
    if (typeof claims.exp !== 'number' || claims.exp < nowS - 300) return 'expired';
    if (typeof claims.nbf === 'number' && claims.nbf > nowS + 300) return 'not yet valid';
    if (typeof claims.jti !== 'string' || claims.jti.length === 0) return 'no jti';
    return undefined;
  }

  private async sendMail(
    record: RecordedRequest,
    req: IncomingMessage,
    pathname: string,
    bodyText: string,
    send: (status: number, headers: Record<string, string>, body?: unknown) => void,
  ): Promise<void> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const requestId = randomUUID();
      const clientRequestId = record.headers['client-request-id'];
      const base: Record<string, string> = {
        'request-id': requestId,
        ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
        date: new Date().toUTCString(),
      };
      const error = (status: number, code: string, message: string, extra: Record<string, string> = {}) =>
        send(status, { ...base, 'content-type': 'application/json', ...extra }, graphErrorBody(code, message, requestId, clientRequestId));
      try {
        record.body = JSON.parse(bodyText);
      } catch {
        record.body = undefined;
      }
      const scripted = this.script.shift();
      const hold = scripted?.holdMs ?? this.sendMailHoldMs;
      if (hold > 0) await new Promise((r) => setTimeout(r, hold));

      // Authentication and authorisation come first, as on the real service.
      const auth = req.headers.authorization ?? '';
      const token = /^Bearer (\S+)$/.exec(auth)?.[1];
      const known = token ? this.tokenExpiry.get(token) : undefined;
      if (!known) return error(401, 'InvalidAuthenticationToken', token ? 'Invalid JWT token.' : 'Access token is empty.');
      if (known.exp <= Date.now()) return error(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
      if (req.method !== 'POST') return error(405, 'Request_BadRequest', 'Only POST is allowed on sendMail.');
      const userSegment = pathname.split('/')[3]!.toLowerCase();
      const mailbox = this.directory.mailboxes.find((m) => m.upn === userSegment || m.id === userSegment);
      if (!mailbox) return error(404, 'ErrorInvalidUser', "The requested user is invalid.");
      const policy = this.directory.accessPolicyMailboxes;
      if (!known.roles.includes('Mail.Send') || (policy && !policy.includes(mailbox.upn))) {
        return error(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      }

      if (scripted) {
        if (scripted.rawBody !== undefined) return send(scripted.status, { ...base, ...(scripted.headers ?? {}) }, scripted.rawBody);
        if (scripted.error) return error(scripted.status, scripted.error.code, scripted.error.message, scripted.headers ?? {});
        return send(scripted.status, { ...base, ...(scripted.headers ?? {}) });
      }

      const contentType = record.headers['content-type'] ?? '';
      if (!/^application\/json\b/i.test(contentType)) return error(415, 'UnsupportedMediaType', 'Content-Type must be application/json for a JSON message.');
      const problem = checkSendMailBody(record.body);
      if (problem) return error(400, problem.code, problem.message);
      return send(202, base);
    } finally {
      this.inFlight -= 1;
    }
  }

  /** `GET /v1.0/users/{id | userPrincipalName}` with an optional `$select` (Graph API: Get user). */
  private async user(
    record: RecordedRequest,
    req: IncomingMessage,
    url: string,
    pathname: string,
    send: (status: number, headers: Record<string, string>, body?: unknown) => void,
  ): Promise<void> {
    const requestId = randomUUID();
    const clientRequestId = record.headers['client-request-id'];
    const base: Record<string, string> = {
      'request-id': requestId,
      ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
      date: new Date().toUTCString(),
    };
    const error = (status: number, code: string, message: string, extra: Record<string, string> = {}) =>
      send(status, { ...base, 'content-type': 'application/json', ...extra }, graphErrorBody(code, message, requestId, clientRequestId));
    const scripted = this.userScript.shift();
    if (scripted?.holdMs) await new Promise((r) => setTimeout(r, scripted.holdMs));

    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (\S+)$/.exec(auth)?.[1];
    const known = token ? this.tokenExpiry.get(token) : undefined;
    if (!known) return error(401, 'InvalidAuthenticationToken', token ? 'Invalid JWT token.' : 'Access token is empty.');
    if (known.exp <= Date.now()) return error(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    if (req.method !== 'GET') return error(405, 'Request_BadRequest', `The ${req.method} method is not allowed on this user resource in the fake.`);
    if (!known.roles.some((r) => (USER_READ_ROLES as readonly string[]).includes(r))) {
      return error(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    }

    if (scripted) {
      if (scripted.rawBody !== undefined) return send(scripted.status, { ...base, ...(scripted.headers ?? {}) }, scripted.rawBody);
      if (scripted.error) return error(scripted.status, scripted.error.code, scripted.error.message, scripted.headers ?? {});
      return send(scripted.status, { ...base, ...(scripted.headers ?? {}) });
    }

    const segment = pathname.split('/')[3]!;
    const wanted = segment.toLowerCase();
    const found = (this.directory.users ?? []).find((u) => u.id.toLowerCase() === wanted || u.userPrincipalName.toLowerCase() === wanted);
    if (!found) {
      return error(404, 'Request_ResourceNotFound', `Resource '${segment}' does not exist or one of its queried reference-property objects are not present.`);
    }
    const params = new URL(url, this.origin).searchParams;
    const select = params.get('$select');
    const properties = select === null ? [...USER_DEFAULT_PROPERTIES] : select.split(',').map((p) => p.trim()).filter(Boolean);
    const full: Record<string, unknown> = { businessPhones: [], ...found };
    for (const p of properties) {
      if (!(p in full)) return error(400, 'BadRequest', `Could not find a property named '${p}' on type 'microsoft.graph.user'.`);
    }
    const body: Record<string, unknown> = {
      '@odata.context': `${this.origin}/v1.0/$metadata#users${select === null ? '' : `(${properties.join(',')})`}/$entity`,
    };
    for (const p of properties) body[p] = full[p] ?? null;
    return send(200, { ...base, 'content-type': 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8' }, body);
  }
}

/** Validate a sendMail JSON body as Graph does (the parts the adapter uses); returns a Graph error or undefined. */
export function checkSendMailBody(body: unknown): { code: string; message: string } | undefined {
  const bad = (message: string) => ({ code: 'ErrorInvalidRequest', message });
  if (typeof body !== 'object' || body === null) return { code: 'RequestBodyRead', message: 'The request body is not JSON.' };
  const { message, saveToSentItems, ...rest } = body as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return { code: 'RequestBodyRead', message: `Unknown parameter(s): ${Object.keys(rest).join(', ')}.` };
  if (saveToSentItems !== undefined && typeof saveToSentItems !== 'boolean') return bad('saveToSentItems must be a boolean.');
  if (typeof message !== 'object' || message === null) return bad('message is required.');
  const m = message as Record<string, unknown>;
  if (typeof m.subject !== 'string') return bad('message.subject must be a string.');
  const b = m.body as Record<string, unknown> | undefined;
  if (!b || typeof b.content !== 'string' || typeof b.contentType !== 'string' || !/^(text|html)$/i.test(b.contentType)) {
    return bad('message.body must have contentType Text or HTML and a string content.');
  }
  const to = m.toRecipients;
  if (!Array.isArray(to) || to.length === 0) return { code: 'ErrorInvalidRecipients', message: 'At least one recipient is not valid.' };
  for (const r of to) {
    const address = (r as { emailAddress?: { address?: unknown } })?.emailAddress?.address;
    if (typeof address !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(address)) {
      return { code: 'ErrorInvalidRecipients', message: 'At least one recipient is not valid.' };
    }
  }
  return undefined;
}

/** A Graph error answer for {@link GraphFake.queueSendMail}. */
export function graphError(status: number, code: string, message: string, headers?: Record<string, string>): ScriptedResponse {
  return { status, error: { code, message }, ...(headers ? { headers } : {}) };
}
