/**
 * A stand-in for the Bot Framework channel's OpenID metadata on loopback: the same wire
 * contract as `https://login.botframework.com/v1/.well-known/openidconfiguration` (a JSON
 * document with `issuer` and `jwks_uri`) and its key set (`{ keys: [JWK...] }`, RSA keys with
 * `kid`, `n`, `e` and `endorsements`), serving locally generated keys.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackHttpServer } from '../loopback-http';
import { CHANNEL_ISSUER, type SigningKey } from './channel-tokens';

/** Path of the OpenID configuration document. */
export const OPENID_CONFIGURATION_PATH = '/v1/.well-known/openidconfiguration';
/** Path of the key set. */
export const JWKS_PATH = '/v1/.well-known/keys';

export class OpenIdFake extends LoopbackHttpServer {
  /** Requests received, by path (how often the bot fetched the metadata and the keys). */
  readonly hits: Record<string, number> = {};
  /** When set, the key set answers with this HTTP status instead of the keys. */
  keysStatus: number | null = null;

  constructor(private readonly keys: SigningKey[]) {
    super();
  }

  /** The OpenID configuration URL (once started). */
  get metadataUrl(): string {
    return new URL(OPENID_CONFIGURATION_PATH, this.url).href;
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    this.hits[path] = (this.hits[path] ?? 0) + 1;
    const json = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET') return json(405, { error: 'method not allowed' });
    if (path === OPENID_CONFIGURATION_PATH) {
      return json(200, {
        issuer: CHANNEL_ISSUER,
        authorization_endpoint: 'https://invalid.botframework.com',
        jwks_uri: new URL(JWKS_PATH, this.url).href,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
      });
    }
    if (path === JWKS_PATH) {
      if (this.keysStatus !== null) return json(this.keysStatus, { error: 'keys unavailable' });
      return json(200, { keys: this.keys.map((k) => k.jwk) });
    }
    json(404, { error: 'not found' });
  }
}
