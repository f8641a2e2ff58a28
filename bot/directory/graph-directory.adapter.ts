/**
 * Microsoft Graph directory adapter: reads a person's work email and mobile number from their Entra ID profile
 * with `GET /users/{id}?$select=mail,mobilePhone` (Graph API: Get user), app-only, to prefill registration.
 *
 * - Permission: the app registration needs the Microsoft Graph application permission `User.Read.All` with admin
 *   consent (`mobilePhone` is outside the basic profile that `User.ReadBasic.All` gives). It is the same app
 *   registration as the Graph mail adapter (GRAPH_* settings), which needs `Mail.Send`.
 * - Authentication and transport reuse the mail adapter's parts: the `@azure/identity` credential from
 *   `createTokenCredential`, the Graph client's `TokenCredentialAuthenticationProvider` (scope `{baseUrl}/.default`),
 *   and the chain AuthenticationHandler -> {@link GraphSendRetryHandler} with no retries (it only sets the time
 *   limit of the attempt and reports a missing answer as a transport error) -> TelemetryHandler ->
 *   HTTPMessageHandler. Redirects are refused; `customHosts` holds the host of `baseUrl`, so the Authorization
 *   header goes to a non-default Graph host too (https only).
 * - Bounded: one lookup (token and request together) ends after `timeoutSeconds` (default 5 s), so a slow
 *   directory cannot hold a Teams turn. No retries: the person can always type their details.
 * - Logs and errors carry the status, Graph's error code and `request-id`, never the object id or the details.
 */
import { AuthenticationHandler, Client, GraphError, HTTPMessageHandler, ResponseType, TelemetryHandler } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { z } from 'zod';
import type { Logger } from '../../common/logger';
import { createTokenCredential, type TokenCredential } from '../mail/graph/graph-credential.factory';
import { GRAPH_ENV, graphScope, type GraphAppConfig } from '../mail/graph/graph-mail.config';
import { aadstsCode, readGraphError, safeGraphCode, safeRequestId } from '../mail/graph/graph-mail.errors';
import { GraphSendRetryHandler, GraphTransportError } from '../mail/graph/graph-send-retry.middleware';
import type { DirectoryContact, DirectoryPort } from './directory.port';
import { DIRECTORY_FAILURE, DirectoryLookupFailedError } from './directory.errors';

/** What the adapter needs from configuration (the `graph` branch of `loadDirectoryConfig`). */
export interface GraphDirectoryConfig {
  graph: GraphAppConfig;
  /** Time limit of one lookup, token and request together, in seconds. */
  timeoutSeconds: number;
}

/** Options beyond configuration, for tests. */
export interface GraphDirectoryOptions {
  /** Use this credential instead of building one from `config.graph.credential`. */
  credential?: TokenCredential;
}

/** The properties read (Graph `user` resource); nothing else is asked for. */
export const DIRECTORY_SELECT = ['mail', 'mobilePhone'] as const;

/** An Entra object id: a GUID (RFC 9562 text form), any case. */
const OBJECT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Graph's answer to the selected GET: absent and null both mean "not set". Lengths are Graph's own limits, with room. */
const UserAnswer = z.object({
  mail: z.string().max(320).nullish(),
  mobilePhone: z.string().max(64).nullish(),
});

/** Graph's error code for a user that does not exist (Graph API: Microsoft Graph error responses). */
const USER_NOT_FOUND = 'Request_ResourceNotFound';

const TIMED_OUT = Symbol('timed out');

function orNull(value: string | null | undefined): string | null {
  const v = value?.trim();
  return v ? v : null;
}

/** See the module comment. */
export class GraphDirectoryAdapter implements DirectoryPort {
  private readonly client: Client;
  private readonly logger: Logger;
  private readonly timeoutMs: number;

  /**
   * @param config - validated settings (see `loadDirectoryConfig`)
   * @param logger - the service logger; lines carry `component: 'graph-directory'`
   * @param options - see {@link GraphDirectoryOptions}
   */
  constructor(
    readonly config: GraphDirectoryConfig,
    logger: Logger,
    options: GraphDirectoryOptions = {},
  ) {
    this.logger = logger.child({ component: 'graph-directory' });
    this.timeoutMs = config.timeoutSeconds * 1000;
    const { graph } = config;
    const credential = options.credential ?? createTokenCredential(graph.credential, graph.authorityHost);
    const authProvider = new TokenCredentialAuthenticationProvider(credential, { scopes: [graphScope(graph)] });
    // With no retries the handler only bounds the HTTP attempt and turns a missing answer into a GraphTransportError.
    const transport = new GraphSendRetryHandler({ maxRetries: 0, maxWaitMs: 0, backoffBaseMs: 0, attemptTimeoutMs: this.timeoutMs }, this.logger);
    this.client = Client.initWithMiddleware({
      middleware: [new AuthenticationHandler(authProvider), transport, new TelemetryHandler(), new HTTPMessageHandler()],
      baseUrl: graph.baseUrl,
      defaultVersion: 'v1.0',
      customHosts: new Set([new URL(graph.baseUrl).hostname]),
      fetchOptions: { redirect: 'error' },
    });
  }

  /**
   * Look a person up by their Entra object id.
   *
   * @param aadObjectId - the person's Entra object id (Teams `from.aadObjectId`), a GUID
   * @returns `{ email, mobile }` from `mail` and `mobilePhone` (null where the profile has none), or null when
   *   Graph answers 404 (no such user)
   * @throws DirectoryLookupFailedError `DIRECTORY.LOOKUP_FAILED` with `meta.reason`: `invalid_id` (not a GUID;
   *   Graph is not asked), `token`, `timeout` (after `timeoutSeconds`), `network`, `http` (any status but 200/404,
   *   e.g. 403 without User.Read.All) or `bad_answer`; `meta.status` and `meta.requestId` when an answer came
   */
  async lookup(aadObjectId: string): Promise<DirectoryContact | null> {
    if (typeof aadObjectId !== 'string' || !OBJECT_ID.test(aadObjectId)) {
      throw new DirectoryLookupFailedError('The Entra object id to look up is not a GUID; the directory was not asked.', {
        reason: DIRECTORY_FAILURE.INVALID_ID,
        status: null,
        requestId: null,
      });
    }
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    const request = this.client
      .api(`/users/${aadObjectId.toLowerCase()}`)
      .select([...DIRECTORY_SELECT])
      .responseType(ResponseType.RAW)
      .get() as Promise<Response>;
    // The body is read inside the same time limit as the request.
    const work = request.then(async (response) => ({ response, text: await response.text() }));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), this.timeoutMs);
    });
    let answer: { response: Response; text: string } | typeof TIMED_OUT;
    try {
      answer = await Promise.race([work, deadline]);
    } catch (err) {
      throw this.fail(this.thrownFailure(err), ms());
    } finally {
      clearTimeout(timer);
    }
    if (answer === TIMED_OUT) {
      // A late answer is read to its end (freeing the connection) and dropped; the HTTP attempt has its own time limit.
      throw this.fail(
        new DirectoryLookupFailedError(`The directory did not answer within ${this.config.timeoutSeconds} s.`, {
          reason: DIRECTORY_FAILURE.TIMEOUT,
          status: null,
          requestId: null,
          graphCode: 'ETIMEDOUT',
        }),
        ms(),
      );
    }
    const { response, text } = answer;
    const status = response.status;
    if (status === 200) {
      const requestId = safeRequestId(response.headers.get('request-id'));
      let parsed: z.infer<typeof UserAnswer> | undefined;
      try {
        const r = UserAnswer.safeParse(JSON.parse(text));
        parsed = r.success ? r.data : undefined;
      } catch {
        parsed = undefined;
      }
      if (!parsed) {
        throw this.fail(
          new DirectoryLookupFailedError('Microsoft Graph answered 200 with a body that is not a user with mail and mobilePhone.', {
            reason: DIRECTORY_FAILURE.BAD_ANSWER,
            status,
            requestId,
          }),
          ms(),
        );
      }
      const contact: DirectoryContact = { email: orNull(parsed.mail), mobile: orNull(parsed.mobilePhone) };
      this.logger.debug({ status, requestId, hasEmail: contact.email !== null, hasMobile: contact.mobile !== null, ms: ms() }, 'directory lookup answered');
      return contact;
    }
    const { graphCode, requestId } = readGraphError(text, response.headers.get('request-id'));
    if (status === 404) {
      if (graphCode === USER_NOT_FOUND) this.logger.debug({ status, requestId, graphCode, ms: ms() }, 'directory has no such user');
      else this.logger.warn({ status, requestId, graphCode, ms: ms() }, `directory lookup answered 404 ${graphCode}, not a missing user: check ${GRAPH_ENV.baseUrl}`);
      return null;
    }
    throw this.fail(new DirectoryLookupFailedError(describeStatus(status, graphCode), { reason: DIRECTORY_FAILURE.HTTP, status, requestId, graphCode }), ms());
  }

  /** Map an error thrown before any HTTP answer (token, network, time-out of the attempt). */
  private thrownFailure(err: unknown): DirectoryLookupFailedError {
    if (err instanceof GraphTransportError) {
      const timedOut = err.transportCode === 'ETIMEDOUT';
      return new DirectoryLookupFailedError(
        timedOut ? `The directory did not answer within ${this.config.timeoutSeconds} s.` : `Could not reach Microsoft Graph (${err.transportCode}).`,
        { reason: timedOut ? DIRECTORY_FAILURE.TIMEOUT : DIRECTORY_FAILURE.NETWORK, status: null, requestId: null, graphCode: err.transportCode, cause: err },
      );
    }
    // The authentication handler runs before any request: anything else is a token failure.
    const aadsts = aadstsCode(err);
    const name = err instanceof GraphError ? (err.code ?? 'unknown') : err instanceof Error ? err.name : 'unknown';
    const graphCode = aadsts ?? safeGraphCode(name);
    return new DirectoryLookupFailedError(`Could not get an access token for Microsoft Graph (${graphCode}).`, {
      reason: DIRECTORY_FAILURE.TOKEN,
      status: null,
      requestId: null,
      graphCode,
      cause: err,
    });
  }

  private fail(failure: DirectoryLookupFailedError, ms: number): DirectoryLookupFailedError {
    this.logger.warn({ err: { code: failure.code, message: failure.message, meta: failure.meta }, ms }, 'directory lookup failed');
    return failure;
  }
}

function describeStatus(status: number, graphCode: string): string {
  const what = `HTTP ${status} ${graphCode}`;
  if (status === 403) {
    return `Microsoft Graph denied reading the user's profile (${what}): grant the app registration ${GRAPH_ENV.clientId} the User.Read.All application permission with admin consent.`;
  }
  if (status === 401) return `Microsoft Graph refused the access token (${what}).`;
  if (status === 429 || status === 503) return `Microsoft Graph is ${status === 429 ? 'throttling the application' : 'unavailable'} (${what}).`;
  if (status >= 500) return `Microsoft Graph failed (${what}).`;
  return `Microsoft Graph refused the lookup (${what}).`;
}

/**
 * Build the Graph directory adapter (the composition root calls this when `DIRECTORY=graph`).
 *
 * @param config - the `graph` branch of `loadDirectoryConfig(process.env)`
 * @param logger - the service logger
 * @param options - see {@link GraphDirectoryOptions}
 * @returns the port; `lookup` needs the User.Read.All application permission
 */
export function createGraphDirectory(config: GraphDirectoryConfig, logger: Logger, options?: GraphDirectoryOptions): DirectoryPort {
  return new GraphDirectoryAdapter(config, logger, options);
}
