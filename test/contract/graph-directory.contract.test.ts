/**
 * Contract tests: the Graph directory adapter, unchanged (its production middleware chain, real `@azure/identity`
 * client-secret credential, https), against a local fake that speaks Microsoft Graph's Get user contract and
 * Entra ID's token endpoint (STYLE.md 17). The fake records what arrived; the tests assert on that.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failed } from '../support/graph-fake/graph-adapter.client';
import { graphError } from '../support/graph-fake/graph-fake.server';
import { graphContractCanRun } from '../support/graph-fake/graph-contract.fixture';
import { startGraphDirectoryFixture, stopGraphDirectoryFixture, type GraphDirectoryFixture } from '../support/graph-fake/graph-directory.fixture';

const canRun = graphContractCanRun();

describe.skipIf(!canRun)('Graph directory lookup contract (local fake Graph over https)', () => {
  let f: GraphDirectoryFixture;
  let handle: string;

  beforeAll(async () => {
    f = await startGraphDirectoryFixture();
    handle = await f.driver.createDirectory(f.env());
  });

  afterAll(async () => {
    await stopGraphDirectoryFixture(f);
  });

  beforeEach(() => {
    f.fake.reset();
  });

  it('GETs /v1.0/users/{id}?$select=mail,mobilePhone with a Bearer token from the token endpoint and returns mail and mobilePhone', async () => {
    const fresh = await f.driver.createDirectory(f.env());

    const result = await f.driver.lookup(fresh, f.alex.id);

    expect(result).toEqual({ ok: true, value: { email: 'Alex.Wilber@nhs.net', mobile: '+44 7700 900123' } });
    const token = f.fake.requestsOf('token');
    expect(token).toHaveLength(1);
    expect(token[0]!.pathname).toBe(`/${f.tenantId}/oauth2/v2.0/token`);
    expect(token[0]!.body).toMatchObject({ grant_type: 'client_credentials', client_id: f.clientId, client_secret: f.clientSecret, scope: `${f.fake.origin}/.default` });

    const users = f.fake.requestsOf('user');
    expect(users).toHaveLength(1);
    const req = users[0]!;
    expect(req.method).toBe('GET');
    expect(req.url).toBe(`/v1.0/users/${f.alex.id}?$select=mail,mobilePhone`);
    expect(req.headers.authorization).toBe(`Bearer ${f.fake.issuedTokens.at(-1)}`);
    expect(req.bodyText).toBe('');
    expect(req.status).toBe(200);
    expect(f.fake.requestsOf('other')).toHaveLength(0);
  });

  it('returns nulls for a profile with no mail and no mobilePhone, and asks for a upper-case id in lower case', async () => {
    const result = await f.driver.lookup(handle, f.blank.id.toUpperCase());

    expect(result).toEqual({ ok: true, value: { email: null, mobile: null } });
    expect(f.fake.requestsOf('user').map((r) => r.url)).toEqual([`/v1.0/users/${f.blank.id}?$select=mail,mobilePhone`]);
  });

  it('reuses the cached token for later lookups', async () => {
    await f.driver.lookup(handle, f.alex.id);
    await f.driver.lookup(handle, f.blank.id);

    expect(f.fake.requestsOf('token')).toHaveLength(0);
    expect(f.fake.requestsOf('user').map((r) => r.status)).toEqual([200, 200]);
  });

  it('returns null when Graph answers 404 (no such user)', async () => {
    const unknown = randomUUID();

    const result = await f.driver.lookup(handle, unknown);

    expect(result).toEqual({ ok: true, value: null });
    const [req] = f.fake.requestsOf('user');
    expect(req!.url).toBe(`/v1.0/users/${unknown}?$select=mail,mobilePhone`);
    expect(req!.status).toBe(404);
  });

  it('fails with DIRECTORY.LOOKUP_FAILED (status 403, request id) when the app lacks User.Read.All', async () => {
    const roles = f.fake.directory.roles;
    roles.splice(roles.indexOf('User.Read.All'), 1);
    let without: string;
    try {
      without = await f.driver.createDirectory(f.env());
      const error = failed(await f.driver.lookup(without, f.alex.id));

      const [req] = f.fake.requestsOf('user');
      expect(req!.status).toBe(403);
      expect(error.code).toBe('DIRECTORY.LOOKUP_FAILED');
      expect(error.meta).toMatchObject({ reason: 'http', status: 403, requestId: req!.responseHeaders!['request-id'], graphCode: 'Authorization_RequestDenied' });
      expect(error.message).toContain('User.Read.All');
    } finally {
      roles.push('User.Read.All');
    }
  });

  it('fails with DIRECTORY.LOOKUP_FAILED after one request when Graph is unavailable (no retry)', async () => {
    f.fake.queueUserLookup(graphError(503, 'serviceNotAvailable', 'Service unavailable.', { 'retry-after': '1' }));

    const error = failed(await f.driver.lookup(handle, f.alex.id));

    expect(error.code).toBe('DIRECTORY.LOOKUP_FAILED');
    expect(error.meta).toMatchObject({ reason: 'http', status: 503, graphCode: 'serviceNotAvailable' });
    expect(f.fake.requestsOf('user')).toHaveLength(1);
  });

  it('fails with DIRECTORY.LOOKUP_FAILED when a 200 answer is not a user', async () => {
    f.fake.queueUserLookup({ status: 200, headers: { 'content-type': 'application/json' }, rawBody: '{"mail": 42}' });

    const error = failed(await f.driver.lookup(handle, f.alex.id));

    expect(error.meta).toMatchObject({ reason: 'bad_answer', status: 200 });
  });

  it.each(['alex.wilber@trust.example.org', 'not-a-guid', '', `${randomUUID()}/manager`, `${randomUUID()}?$select=passwordProfile`, '../me'])(
    'refuses the malformed id %j without any request',
    async (id) => {
      const fresh = await f.driver.createDirectory(f.env());

      const error = failed(await f.driver.lookup(fresh, id));

      expect(error.code).toBe('DIRECTORY.LOOKUP_FAILED');
      expect(error.meta).toMatchObject({ reason: 'invalid_id', status: null, requestId: null });
      expect(f.fake.requests).toHaveLength(0);
    },
  );

  it('gives up after DIRECTORY_TIMEOUT_SECONDS when the directory is slow', async () => {
    const slow = await f.driver.createDirectory(f.env({ DIRECTORY_TIMEOUT_SECONDS: '1' }));
    await f.driver.lookup(slow, f.blank.id); // get the token first
    f.fake.reset();
    f.fake.queueUserLookup({ status: 200, rawBody: '{"mail":null,"mobilePhone":null}', holdMs: 4000 });

    const started = performance.now();
    const error = failed(await f.driver.lookup(slow, f.alex.id));
    const took = performance.now() - started;

    expect(error.meta).toMatchObject({ reason: 'timeout', status: null });
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2500);
    expect(f.fake.requestsOf('user')).toHaveLength(1);
  });

  it('writes no person data, secret or token to its log', async () => {
    await f.driver.lookup(handle, f.alex.id);
    f.fake.queueUserLookup(graphError(403, 'Authorization_RequestDenied', `Insufficient privileges for ${f.alex.mail}.`));
    failed(await f.driver.lookup(handle, f.alex.id));
    await f.driver.waitForLog((l) => l.msg === 'directory lookup failed' && (l.err as { meta?: { status?: number } })?.meta?.status === 403);

    const output = (f.driver.stdout + f.driver.stderr).toLowerCase();
    const leaked = f.private().filter((v) => output.includes(v.toLowerCase()) || output.includes(v.replace(/\s/g, '').toLowerCase()));
    expect(leaked).toEqual([]);
  });
});
