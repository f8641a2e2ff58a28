/**
 * Contract tests: the Graph mail adapter's app-only authentication and start-up check, with the real
 * `@azure/identity` credentials (client secret, client certificate) against a local fake of Entra ID's OpenID
 * metadata and token endpoints and of Graph's sendMail, over https (STYLE.md 17).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failed } from '../support/graph-fake/graph-adapter.client';
import {
  graphContractCanRun,
  secretsInOutput,
  startGraphContractFixture,
  stopGraphContractFixture,
  type GraphContractFixture,
} from '../support/graph-fake/graph-contract.fixture';

const canRun = graphContractCanRun();

/** A loopback port with nothing listening (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe.skipIf(!canRun)('Graph app-only authentication and start-up check (local fake Entra ID and Graph over https)', () => {
  let f: GraphContractFixture;

  beforeAll(async () => {
    f = await startGraphContractFixture();
  });

  afterAll(async () => {
    await stopGraphContractFixture(f);
  });

  beforeEach(() => {
    f.fake.reset();
    f.fake.directory.roles = ['Mail.Send'];
  });

  it('verify() with a client secret gets a token for {graph}/.default and reads the Mail.Send role', async () => {
    const handle = await f.driver.create(f.env());

    const result = await f.driver.verify(handle);

    expect(result.ok).toBe(true);
    expect(result.ok && result.value).toMatchObject({ roles: ['Mail.Send'] });
    const token = f.fake.requestsOf('token');
    expect(token).toHaveLength(1);
    expect(token[0]!.body).toMatchObject({ grant_type: 'client_credentials', client_id: f.clientId, scope: `${f.fake.origin}/.default` });
    expect(f.fake.requestsOf('sendMail')).toHaveLength(0);
    const ready = await f.driver.waitForLog((l) => l.msg === 'Microsoft Graph mail ready');
    expect(ready).toMatchObject({ credentialKind: 'client-secret', sender: f.sender });
  });

  it('client certificate: signs a client assertion (RFC 7523) the fake verifies with the registered certificate, then sends', async () => {
    const handle = await f.driver.create(
      f.env({ GRAPH_CREDENTIAL: 'client-certificate', GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_CERTIFICATE_PATH: f.pki.clientPemPath }),
    );

    expect((await f.driver.verify(handle)).ok).toBe(true);
    expect((await f.driver.send(handle, f.unlockMessage().message)).ok).toBe(true);

    const [token] = f.fake.requestsOf('token');
    const form = token!.body as Record<string, string>;
    expect(form.client_secret).toBeUndefined();
    expect(form.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const header = JSON.parse(Buffer.from(form.client_assertion!.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, string>;
    // msal-node signs with PS256 and names the certificate by its SHA-256 thumbprint.
    expect(header.alg).toBe('PS256');
    expect(header['x5t#S256']).toBe(f.pki.clientThumbprints.sha256);
    expect(token!.status).toBe(200);
    const [send] = f.fake.requestsOf('sendMail');
    expect(send!.status).toBe(202);
    expect(send!.headers.authorization).toBe(`Bearer ${f.fake.issuedTokens.at(-1)}`);
  });

  it('a wrong client secret stops start-up naming GRAPH_CLIENT_SECRET (AADSTS7000215), without the secret in the message', async () => {
    const wrong = `Wr0ng~${randomBytes(18).toString('base64url')}`;
    f.secrets.add(wrong);
    const handle = await f.driver.create(f.env({ GRAPH_CLIENT_SECRET: wrong }));

    const error = failed(await f.driver.verify(handle));

    expect(f.fake.requestsOf('token').map((r) => r.status)).toEqual([401]);
    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.message).toMatch(/^GRAPH_CLIENT_SECRET\b/);
    expect(error.meta).toMatchObject({ setting: 'GRAPH_CLIENT_SECRET', aadsts: 'AADSTS7000215' });
    expect(JSON.stringify(error)).not.toContain(wrong);
  });

  it('an unknown application (client) id stops start-up naming GRAPH_CLIENT_ID (AADSTS700016)', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_CLIENT_ID: randomUUID() }));

    const error = failed(await f.driver.verify(handle));

    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.meta).toMatchObject({ setting: 'GRAPH_CLIENT_ID', aadsts: 'AADSTS700016' });
    expect(error.message).toContain('GRAPH_CLIENT_ID');
  });

  it('an unknown tenant stops start-up naming GRAPH_TENANT_ID (AADSTS90002 from the OpenID metadata)', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_TENANT_ID: randomUUID() }));

    const error = failed(await f.driver.verify(handle));

    expect(f.fake.requestsOf('metadata').some((r) => r.status === 400)).toBe(true);
    expect(f.fake.requestsOf('token')).toHaveLength(0);
    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.meta).toMatchObject({ setting: 'GRAPH_TENANT_ID', aadsts: 'AADSTS90002' });
  });

  it('an authority host that does not answer stops start-up naming GRAPH_AUTHORITY_HOST', async () => {
    const port = await closedPort();
    const handle = await f.driver.create(f.env({ GRAPH_AUTHORITY_HOST: `https://127.0.0.1:${port}` }));

    const error = failed(await f.driver.verify(handle));

    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.meta).toMatchObject({ setting: 'GRAPH_AUTHORITY_HOST' });
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('an app registration without the Mail.Send application permission stops start-up naming GRAPH_CLIENT_ID', async () => {
    f.fake.directory.roles = ['User.Read.All'];
    const handle = await f.driver.create(f.env());

    const error = failed(await f.driver.verify(handle));

    expect(f.fake.requestsOf('token').map((r) => r.status)).toEqual([200]);
    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.meta).toMatchObject({ setting: 'GRAPH_CLIENT_ID' });
    expect(error.message).toContain('Mail.Send');
  });

  it('a token with no application permission at all only warns at start-up (Exchange RBAC for Applications), and Graph then refuses sends with 403', async () => {
    f.fake.directory.roles = [];
    const handle = await f.driver.create(f.env());

    const verified = await f.driver.verify(handle);
    expect(verified).toMatchObject({ ok: true, value: { roles: null } });
    await f.driver.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('the access token holds no application permission'));

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(f.fake.requestsOf('sendMail').map((r) => r.status)).toEqual([403]);
    expect(error.meta).toMatchObject({ retryable: false, status: 403, graphCode: 'ErrorAccessDenied' });
  });

  it('a certificate file that cannot be read stops start-up naming GRAPH_CLIENT_CERTIFICATE_PATH, before any request', async () => {
    const handle = await f.driver.create(
      f.env({ GRAPH_CREDENTIAL: 'client-certificate', GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_CERTIFICATE_PATH: join(f.pki.dir, 'missing.pem') }),
    );

    const error = failed(await f.driver.verify(handle));

    expect(error.meta).toMatchObject({ setting: 'GRAPH_CLIENT_CERTIFICATE_PATH' });
    expect(error.message).toContain('ENOENT');
    expect(f.fake.requests).toHaveLength(0);
  });

  it('a certificate file without a private key stops start-up naming GRAPH_CLIENT_CERTIFICATE_PATH', async () => {
    const certOnly = join(f.pki.dir, 'cert-only.pem');
    writeFileSync(certOnly, f.pki.clientCertPem);
    const handle = await f.driver.create(
      f.env({ GRAPH_CREDENTIAL: 'client-certificate', GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_CERTIFICATE_PATH: certOnly }),
    );

    const error = failed(await f.driver.verify(handle));

    expect(error.meta).toMatchObject({ setting: 'GRAPH_CLIENT_CERTIFICATE_PATH' });
    expect(error.message).toContain('private key');
  });

  it('a missing sender or credential setting is refused when the adapter is configured, naming each variable', async () => {
    const r = await f.driver.tryCreate(f.env({ GRAPH_SENDER: undefined, GRAPH_CLIENT_SECRET: undefined }));

    const error = failed(r);
    expect(error.code).toBe('CONFIG.INVALID');
    expect(error.message).toContain('GRAPH_SENDER');
    expect(error.message).toContain('GRAPH_CLIENT_SECRET');
  });

  it('a token failure while sending is a non-retryable MAIL.SEND_FAILED naming the AADSTS code, and nothing reaches sendMail', async () => {
    const wrong = `Wr0ng~${randomBytes(18).toString('base64url')}`;
    f.secrets.add(wrong);
    const handle = await f.driver.create(f.env({ GRAPH_CLIENT_SECRET: wrong }));

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(f.fake.requestsOf('sendMail')).toHaveLength(0);
    expect(error.code).toBe('MAIL.SEND_FAILED');
    expect(error.meta).toMatchObject({ retryable: false, status: null, requestId: null, graphCode: 'AADSTS7000215' });
  });

  it('writes no secret in any log line: client secrets (right and wrong), access tokens, one-time codes', async () => {
    expect(f.fake.issuedTokens.length).toBeGreaterThan(0);
    expect(f.driver.logLines().length).toBeGreaterThan(0);
    expect(secretsInOutput(f)).toEqual([]);
    expect(f.driver.stdout + f.driver.stderr).not.toMatch(/Bearer\s+\S/);
  });
});
