import type { Activity } from 'botbuilder';
import { AuthenticationError, type AuthenticateRequestResult, type BotFrameworkAuthentication } from 'botframework-connector';
import { describe, expect, it } from 'vitest';
import { authenticateActivity } from './channel-auth';
import { activityTenant } from './http.server';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const jwt = (header: Record<string, unknown>, sig = 'c2lnbmF0dXJl'): string => `${b64(header)}.${b64({ iss: 'https://api.botframework.com', aud: 'app' })}.${sig}`;
const activity = { type: 'message', channelId: 'msteams', serviceUrl: 'https://smba.example/' } as Activity;
const RESULT = { audience: 'https://api.botframework.com' } as AuthenticateRequestResult;

/** A stand-in for the SDK's authentication: answers with `outcome`, counting calls. */
function sdk(outcome: () => Promise<AuthenticateRequestResult>): BotFrameworkAuthentication & { calls: number } {
  const fake = {
    calls: 0,
    authenticateRequest() {
      fake.calls++;
      return outcome();
    },
  };
  return fake as unknown as BotFrameworkAuthentication & { calls: number };
}

const named = (name: string, message: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(message), { name }, extra);

describe('authenticateActivity: refused before the SDK is asked (no key fetched)', () => {
  it.each([
    ['no header', undefined, 'no Authorization header'],
    ['Basic scheme', 'Basic dXNlcjpwdw==', 'Authorization is not a Bearer token'],
    ['two tokens', `Bearer ${jwt({ alg: 'RS256' })} ${jwt({ alg: 'RS256' })}`, 'Authorization is not a Bearer token'],
    ['not a JWT', 'Bearer not-a-token', 'token is not a signed JWT'],
    ['a header that is not JSON', 'Bearer bm90IGpzb24.e30.c2ln', 'token is not a signed JWT'],
    ['alg: none', `Bearer ${jwt({ alg: 'none' }, '')}`, 'token signing algorithm not accepted (none)'],
    ['HS256', `Bearer ${jwt({ alg: 'HS256' })}`, 'token signing algorithm not accepted (HS256)'],
    ['no alg', `Bearer ${jwt({ kid: 'k' })}`, 'token signing algorithm not accepted (unknown)'],
    ['an alg that is not a plain name', `Bearer ${jwt({ alg: 'RS256\n"x' })}`, 'token signing algorithm not accepted (unknown)'],
    ['a header over 16 KiB', `Bearer ${jwt({ alg: 'RS256', pad: 'x'.repeat(17_000) })}`, 'Authorization header too long'],
  ])('%s: 401', async (_name, header, reason) => {
    const auth = sdk(async () => RESULT);
    expect(await authenticateActivity(auth, activity, header, true)).toEqual({ ok: false, status: 401, reason });
    expect(auth.calls).toBe(0);
  });
});

describe('authenticateActivity: what the SDK says, as an HTTP status', () => {
  const token = `Bearer ${jwt({ alg: 'RS256', kid: 'k1' })}`;

  it('passes the SDK result through', async () => {
    const auth = sdk(async () => RESULT);
    expect(await authenticateActivity(auth, activity, token, true)).toEqual({ ok: true, result: RESULT });
    expect(auth.calls).toBe(1);
  });

  it.each([
    ['a bad signature (jsonwebtoken)', named('JsonWebTokenError', 'invalid signature'), 'token refused: JsonWebTokenError'],
    ['an expired token (jsonwebtoken)', named('TokenExpiredError', 'jwt expired'), 'token refused: TokenExpiredError'],
    ['a token not yet valid (jsonwebtoken)', named('NotBeforeError', 'jwt not active'), 'token refused: NotBeforeError'],
    ['the SDK: wrong issuer', new AuthenticationError('Unauthorized. Issuer Claim MUST be present.', 401), 'token refused: Unauthorized. Issuer Claim MUST be present.'],
    ['the SDK: wrong audience (the claim is not repeated)', new AuthenticationError('Unauthorized. Invalid AppId passed on token: 5e0c-attacker', 401), 'token refused: Unauthorized. Invalid AppId passed on token'],
  ])('%s: 401', async (_name, err, reason) => {
    expect(await authenticateActivity(sdk(() => Promise.reject(err)), activity, token, true)).toEqual({ ok: false, status: 401, reason });
  });

  it.each([
    ['metadata unreachable (node-fetch)', named('FetchError', 'request to http://127.0.0.1:9/ failed, reason: connect ECONNREFUSED', { code: 'ECONNREFUSED', type: 'system' }), 'signing keys could not be fetched (ECONNREFUSED)'],
    ['metadata not JSON (node-fetch)', named('FetchError', 'invalid json response body', { type: 'invalid-json' }), 'signing keys could not be fetched (invalid-json)'],
    ['metadata answering 500 (the SDK)', new AuthenticationError('Failed to load openID config: 500', 500), 'signing keys could not be fetched (Failed to load openID config: 500)'],
    ['key set answering 404 (the SDK)', new AuthenticationError('Failed to load Keys: 404', 500), 'signing keys could not be fetched (Failed to load Keys: 404)'],
  ])('%s: 503', async (_name, err, reason) => {
    expect(await authenticateActivity(sdk(() => Promise.reject(err)), activity, token, true)).toEqual({ ok: false, status: 503, reason });
  });

  it('anything else: 500, named by its error name only', async () => {
    expect(await authenticateActivity(sdk(() => Promise.reject(new TypeError(`bad ${token}`))), activity, token, true)).toEqual({ ok: false, status: 500, reason: 'authentication failed unexpectedly (TypeError)' });
  });

  it('without an app id (not required), asks the SDK even with no header (it gives an anonymous identity)', async () => {
    const auth = sdk(async () => RESULT);
    expect(await authenticateActivity(auth, activity, undefined, false)).toEqual({ ok: true, result: RESULT });
    expect(auth.calls).toBe(1);
  });
});

describe('activityTenant', () => {
  it('reads conversation.tenantId, else channelData.tenant.id', () => {
    expect(activityTenant({ conversation: { tenantId: 't1' }, channelData: { tenant: { id: 't1' } } })).toBe('t1');
    expect(activityTenant({ conversation: {}, channelData: { tenant: { id: 't2' } } })).toBe('t2');
    expect(activityTenant({ conversation: { tenantId: 't3' } })).toBe('t3');
  });
  it('is null when there is none, or when the two disagree', () => {
    expect(activityTenant({})).toBeNull();
    expect(activityTenant({ conversation: { tenantId: 't1' }, channelData: { tenant: { id: 't2' } } })).toBeNull();
    expect(activityTenant({ conversation: { tenantId: 42 }, channelData: null })).toBeNull();
  });
});
