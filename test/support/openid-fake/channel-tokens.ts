/**
 * Bot Framework channel tokens signed with locally generated keys (node:crypto), for the
 * contract test of channel authentication. The shape follows what the Bot Connector sends
 * ("Authentication with the Bot Connector API", connector to bot): a compact JWS, RS256,
 * `kid` naming a key of the channel's OpenID metadata, claims `iss` (https://api.botframework.com),
 * `aud` (the bot's app id), `serviceurl` (the activity's serviceUrl), `nbf`, `exp`.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/** The issuer of public-cloud channel tokens (botframework-connector `AuthenticationConstants.ToBotFromChannelTokenIssuer`). */
export const CHANNEL_ISSUER = 'https://api.botframework.com';

/** One RSA signing key with its key id. */
export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  /** The public half as a JWK (`kty`, `n`, `e`) plus `kid`, `use`, `alg` and the channels it vouches for. */
  jwk: Record<string, unknown>;
}

/**
 * A new RSA-2048 signing key.
 *
 * @param endorsements - channel ids the key vouches for (the real metadata lists e.g. `msteams`)
 */
export function newSigningKey(endorsements: string[] = ['msteams']): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(12).toString('base64url');
  const pub = publicKey.export({ format: 'jwk' }) as { kty: string; n: string; e: string };
  return { kid, privateKey, jwk: { kty: pub.kty, use: 'sig', kid, alg: 'RS256', n: pub.n, e: pub.e, endorsements } };
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/**
 * A compact JWS.
 *
 * @param header - the JOSE header (`alg`, `kid`, ...)
 * @param claims - the payload
 * @param key - the signing key (RS256), or null for an unsigned token (empty signature, as `alg: none` has)
 */
export function compactJws(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | null): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = key ? sign('sha256', Buffer.from(input), key).toString('base64url') : '';
  return `${input}.${signature}`;
}

/**
 * Channel claims for a token valid now.
 *
 * @param appId - the bot's app id (`aud`)
 * @param serviceUrl - the activity's serviceUrl (`serviceurl`)
 * @param lifetimeSeconds - from now until `exp` (negative: already expired)
 */
export function channelClaims(appId: string, serviceUrl: string, lifetimeSeconds = 3600): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: CHANNEL_ISSUER, aud: appId, serviceurl: serviceUrl, nbf: now - 300, iat: now - 300, exp: now + lifetimeSeconds };
}
