/**
 * Bot Framework channel authentication on `POST /api/messages` (issue #11).
 *
 * The SDK validates the token (botframework-connector: `ConfigurationBotFrameworkAuthentication`,
 * "Authentication with the Bot Connector API": issuer, audience = the app id, signature against
 * the keys of the channel's OpenID metadata, expiry with 5 minutes' tolerance, the `serviceurl`
 * claim against the activity's serviceUrl). This module only decides what answer a refusal
 * gets, because the SDK's own `CloudAdapter.process` answers 500 for a bad signature, an
 * unsigned token or unreachable signing keys, and writes the error to the console:
 * - 401 for every token that is missing, malformed, unsigned (`alg: none`), forged, expired,
 *   for another audience or from another issuer. An unsigned token, or one signed with an
 *   algorithm the channel never uses, is refused before any key is fetched;
 * - 503 when the signing keys cannot be fetched (so the channel retries later), with the reason logged;
 * - 500 for anything else (logged by name only).
 *
 * Nothing here logs, returns or stores a token or the Authorization header.
 */
import { CloudAdapter, ConfigurationBotFrameworkAuthentication, ConfigurationServiceClientCredentialFactory, type Activity, type InvokeResponse, type TurnContext } from 'botbuilder';
import { AuthenticationConstants, type AuthenticateRequestResult, type BotFrameworkAuthentication, type ServiceClientCredentialsFactory } from 'botframework-connector';
import type { BotConfig } from '../config';

/**
 * Where the channel's keys and token services are. The SDK's public-cloud values apply unless a
 * test points them elsewhere (botframework-connector `AuthenticationConstants`; setting names as in
 * `ConfigurationBotFrameworkAuthenticationOptions`).
 */
export interface ChannelEndpoints {
  /** OpenID metadata whose `jwks_uri` lists the keys that sign channel tokens. */
  ToBotFromChannelOpenIdMetadataUrl: string;
  /** OpenID metadata for tokens issued by Entra ID for the bot itself (Emulator-shaped tokens). */
  ToBotFromEmulatorOpenIdMetadataUrl: string;
  /** The `iss` of channel tokens. */
  ToBotFromChannelTokenIssuer: string;
  /** Where the bot gets its own tokens for replies. */
  ToChannelFromBotLoginUrl: string;
  /** The scope (audience) of the bot's own tokens for replies. */
  ToChannelFromBotOAuthScope: string;
  OAuthUrl: string;
  /** `callerId` set on authenticated activities. */
  CallerId: string;
}

/** The public-cloud values (botframework-connector `AuthenticationConstants`, `CallerIdConstants.PublicAzureChannel`). */
export const PUBLIC_CLOUD_ENDPOINTS: ChannelEndpoints = {
  ToBotFromChannelOpenIdMetadataUrl: AuthenticationConstants.ToBotFromChannelOpenIdMetadataUrl,
  ToBotFromEmulatorOpenIdMetadataUrl: AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
  ToBotFromChannelTokenIssuer: AuthenticationConstants.ToBotFromChannelTokenIssuer,
  ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
  ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
  OAuthUrl: AuthenticationConstants.OAuthUrl,
  CallerId: 'urn:botframework:azure',
};

/** Test seams for {@link createChannelAuthentication}; production passes none. */
export interface ChannelAuthOverrides {
  /** Replace some endpoints (the rest keep their public-cloud values). */
  endpoints?: Partial<ChannelEndpoints>;
  /**
   * Wrap the credentials factory built from the app registration. Inbound checks (`isValidAppId`)
   * should stay the wrapped factory's; a test replaces only the bot's own outgoing tokens, which
   * would otherwise be fetched from Entra ID or the managed-identity endpoint.
   */
  wrapCredentials?: (factory: ServiceClientCredentialsFactory) => ServiceClientCredentialsFactory;
}

/**
 * Build the Bot Framework authentication for the configured app registration.
 *
 * @param auth - `config.auth`: none (local development on loopback), or the app id, type
 *   (MultiTenant | SingleTenant | UserAssignedMSI), password and tenant under the Bot Framework setting names
 * @param overrides - test seams ({@link ChannelAuthOverrides})
 * @returns the authentication for `CloudAdapter`
 * @throws Error from the SDK when the registration is inconsistent (config.ts refuses those first)
 */
export function createChannelAuthentication(auth: BotConfig['auth'], overrides: ChannelAuthOverrides = {}): BotFrameworkAuthentication {
  const registration =
    auth.kind === 'none'
      ? {}
      : {
          MicrosoftAppId: auth.appId,
          MicrosoftAppType: auth.appType,
          ...(auth.appPassword ? { MicrosoftAppPassword: auth.appPassword } : {}),
          ...(auth.tenantId ? { MicrosoftAppTenantId: auth.tenantId } : {}),
        };
  const factory = new ConfigurationServiceClientCredentialFactory(registration);
  const credentials = overrides.wrapCredentials ? overrides.wrapCredentials(factory) : factory;
  // Without endpoints the SDK picks the public cloud itself; with any, it takes all of them as given.
  const endpoints = overrides.endpoints ? { ...PUBLIC_CLOUD_ENDPOINTS, ...overrides.endpoints, ValidateAuthority: true } : {};
  return new ConfigurationBotFrameworkAuthentication({ ...registration, ...endpoints }, credentials);
}

/** The outcome of authenticating one request. */
export type ChannelVerdict =
  | { ok: true; result: AuthenticateRequestResult }
  | { ok: false; status: 401; reason: string }
  | { ok: false; status: 503; reason: string }
  | { ok: false; status: 500; reason: string };

/** Longest Authorization header considered, characters (channel tokens are 1-2 KB). */
const MAX_AUTHORIZATION_CHARS = 16 * 1024;

/** The signing algorithms the SDK accepts for channel tokens (`AuthenticationConstants.AllowedSigningAlgorithms`). */
const SIGNING_ALGORITHMS: readonly string[] = AuthenticationConstants.AllowedSigningAlgorithms;

/** The JOSE header of a compact JWS, or null when it is not one. */
function joseHeader(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p)) || !parts[0]) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as unknown;
    return header && typeof header === 'object' && !Array.isArray(header) ? (header as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Why the signing keys could not be fetched, when that is what `err` says; null otherwise.
 * node-fetch rejects with a `FetchError` (connection refused, DNS, invalid JSON); the SDK throws
 * an error with `statusCode` 500 and "Failed to load ..." when the metadata or key document answers
 * with an error status (botframework-connector `OpenIdMetadata.refreshCache`).
 */
function keysUnavailable(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  const e = err as Error & { statusCode?: unknown; code?: unknown; type?: unknown };
  if (e.name === 'FetchError') return `signing keys could not be fetched (${typeof e.code === 'string' ? e.code : typeof e.type === 'string' ? e.type : 'fetch failed'})`;
  if (e.statusCode === 500 && /^Failed to load (openID config|Keys)/.test(e.message)) return `signing keys could not be fetched (${e.message.slice(0, 80)})`;
  return null;
}

/** A token problem, when that is what `err` says; null otherwise. */
function tokenRefused(err: unknown): string | null {
  if (!(err instanceof Error)) return null;
  const e = err as Error & { statusCode?: unknown };
  // jsonwebtoken's own errors: bad signature, malformed, wrong algorithm, expired, not yet valid.
  if (e.name === 'JsonWebTokenError' || e.name === 'TokenExpiredError' || e.name === 'NotBeforeError') return `token refused: ${e.name}`;
  // The SDK's AuthenticationError (issuer, audience, serviceUrl, unknown key, expiry).
  if (e.statusCode === 401) return `token refused: ${e.message.replace(/passed on token: .*/, 'passed on token').slice(0, 120)}`;
  return null;
}

/**
 * Authenticate one activity request.
 *
 * @param auth - the Bot Framework authentication ({@link createChannelAuthentication})
 * @param activity - the activity, already checked at the door (activity.schema.ts)
 * @param authorization - the request's Authorization header (`Bearer <JWT>`), or undefined
 * @param required - true with an app id configured; false (local development) lets the SDK make an anonymous identity
 * @returns the SDK's result, or a refusal with its HTTP status and a reason fit for a log (never the token)
 */
export async function authenticateActivity(auth: BotFrameworkAuthentication, activity: Activity, authorization: string | undefined, required: boolean): Promise<ChannelVerdict> {
  if (required) {
    if (!authorization) return { ok: false, status: 401, reason: 'no Authorization header' };
    if (authorization.length > MAX_AUTHORIZATION_CHARS) return { ok: false, status: 401, reason: 'Authorization header too long' };
    const m = /^Bearer ([^\s]+)$/.exec(authorization);
    if (!m) return { ok: false, status: 401, reason: 'Authorization is not a Bearer token' };
    const header = joseHeader(m[1]!);
    if (!header) return { ok: false, status: 401, reason: 'token is not a signed JWT' };
    const alg = typeof header['alg'] === 'string' ? header['alg'] : '';
    if (!SIGNING_ALGORITHMS.includes(alg)) return { ok: false, status: 401, reason: `token signing algorithm not accepted (${/^[A-Za-z0-9]{1,10}$/.test(alg) ? alg : 'unknown'})` };
  }
  try {
    return { ok: true, result: await auth.authenticateRequest(activity, authorization ?? '') };
  } catch (err) {
    const unavailable = keysUnavailable(err);
    if (unavailable) return { ok: false, status: 503, reason: unavailable };
    const refused = tokenRefused(err);
    if (refused) return { ok: false, status: 401, reason: refused };
    return { ok: false, status: 500, reason: `authentication failed unexpectedly (${err instanceof Error ? err.name : typeof err})` };
  }
}

/**
 * A `CloudAdapter` whose requests are authenticated by {@link authenticateActivity} before a
 * turn runs, so a refusal gets 401 or 503 rather than the SDK's 500, and the turn runs on the
 * result of that one authentication (the SDK's `processActivity` overload that takes it).
 */
export class ChannelAdapter extends CloudAdapter {
  /**
   * @param auth - from {@link createChannelAuthentication}
   * @param options.authRequired - true when an app id is configured: a request must carry a valid token
   */
  constructor(
    auth: BotFrameworkAuthentication,
    private readonly options: { authRequired: boolean },
  ) {
    super(auth);
  }

  /** True when requests must carry a valid Bot Framework token. */
  get authRequired(): boolean {
    return this.options.authRequired;
  }

  /**
   * Authenticate one request ({@link authenticateActivity}).
   *
   * @param activity - the activity, checked at the door
   * @param authorization - the Authorization header, or undefined
   */
  authenticate(activity: Activity, authorization: string | undefined): Promise<ChannelVerdict> {
    return authenticateActivity(this.botFrameworkAuthentication, activity, authorization, this.options.authRequired);
  }

  /**
   * Run a turn for an authenticated activity.
   *
   * @param result - the `ok` result of {@link ChannelAdapter.authenticate}
   * @param activity - the activity; timestamps sent as text become dates, as `CloudAdapter.process` does
   * @param logic - the bot's turn handler
   * @returns the invoke response to send, or undefined (200, no body)
   */
  runAuthenticated(result: AuthenticateRequestResult, activity: Activity, logic: (context: TurnContext) => Promise<void>): Promise<InvokeResponse | undefined> {
    return this.processActivity(result, withDates(activity), logic);
  }
}

/** Timestamps sent as text as dates, keeping the text (botbuilder `validateAndFixActivity`, which is not exported). */
function withDates(activity: Activity): Activity {
  const a = activity as Activity & Record<string, unknown>;
  for (const [field, raw] of [['timestamp', 'rawTimestamp'], ['localTimestamp', 'rawLocalTimestamp'], ['expiration', 'rawExpiration']] as const) {
    if (typeof a[field] === 'string') {
      a[raw] = a[field];
      a[field] = new Date(a[field] as string);
    }
  }
  return activity;
}
