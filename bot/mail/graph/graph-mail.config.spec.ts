import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import { GRAPH_DEFAULTS, SecretValue, graphScope, loadGraphMailConfig } from './graph-mail.config';

const TENANT = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const CLIENT = '11111111-2222-4333-8444-555555555555';
const SECRET = 'Qx7~not-a-real-secret-value';

const secretEnv = (extra: Record<string, string | undefined> = {}) => ({
  GRAPH_CREDENTIAL: 'client-secret',
  GRAPH_TENANT_ID: TENANT,
  GRAPH_CLIENT_ID: CLIENT,
  GRAPH_CLIENT_SECRET: SECRET,
  GRAPH_SENDER: 'smartcard-assist@trust.example.org',
  ...extra,
});

function refusal(env: Record<string, string | undefined>): string {
  try {
    loadGraphMailConfig(env);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('CONFIG.INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('loadGraphMailConfig', () => {
  it('reads a client-secret configuration with the global-cloud defaults', () => {
    const config = loadGraphMailConfig(secretEnv());

    expect(config).toMatchObject({
      sender: 'smartcard-assist@trust.example.org',
      saveToSentItems: false,
      baseUrl: 'https://graph.microsoft.com',
      authorityHost: 'https://login.microsoftonline.com',
      maxConcurrency: 4,
      maxRetries: 3,
      maxRetryWaitSeconds: 30,
      requestTimeoutSeconds: 30,
    });
    expect(config.credential.kind).toBe('client-secret');
    expect(config.credential.kind === 'client-secret' && config.credential.clientSecret.reveal()).toBe(SECRET);
    expect(graphScope(config)).toBe('https://graph.microsoft.com/.default');
    expect(GRAPH_DEFAULTS.maxConcurrency).toBe(4);
  });

  it('reads the client secret from GRAPH_CLIENT_SECRET_FILE (first line, trimmed)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graph-config-'));
    writeFileSync(join(dir, 'secret'), `  ${SECRET}  \nignored\n`);

    const config = loadGraphMailConfig(secretEnv({ GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_SECRET_FILE: join(dir, 'secret') }));

    expect(config.credential.kind === 'client-secret' && config.credential.clientSecret.reveal()).toBe(SECRET);
    expect(refusal(secretEnv({ GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_SECRET_FILE: join(dir, 'absent') }))).toContain('GRAPH_CLIENT_SECRET_FILE: cannot read the file (ENOENT)');
    expect(refusal(secretEnv({ GRAPH_CLIENT_SECRET_FILE: join(dir, 'secret') }))).toContain('GRAPH_CLIENT_SECRET_FILE: set GRAPH_CLIENT_SECRET or GRAPH_CLIENT_SECRET_FILE, not both');
  });

  it('reads a client-certificate and a managed-identity configuration', () => {
    const cert = loadGraphMailConfig(secretEnv({ GRAPH_CREDENTIAL: 'client-certificate', GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_CERTIFICATE_PATH: '/etc/sa/graph.pem' }));
    expect(cert.credential).toEqual({ kind: 'client-certificate', tenantId: TENANT, clientId: CLIENT, certificatePath: '/etc/sa/graph.pem' });

    const system = loadGraphMailConfig({ GRAPH_CREDENTIAL: 'managed-identity', GRAPH_SENDER: 'smartcard-assist@trust.example.org' });
    expect(system.credential).toEqual({ kind: 'managed-identity' });
    const user = loadGraphMailConfig({ GRAPH_CREDENTIAL: 'managed-identity', GRAPH_CLIENT_ID: CLIENT, GRAPH_SENDER: CLIENT });
    expect(user.credential).toEqual({ kind: 'managed-identity', clientId: CLIENT });
    expect(user.sender).toBe(CLIENT);
  });

  it('takes a sovereign-cloud or local base URL and authority host, as origins, https only', () => {
    const config = loadGraphMailConfig(secretEnv({ GRAPH_BASE_URL: 'https://graph.microsoft.us/', GRAPH_AUTHORITY_HOST: 'https://login.microsoftonline.us' }));
    expect(config.baseUrl).toBe('https://graph.microsoft.us');
    expect(graphScope(config)).toBe('https://graph.microsoft.us/.default');

    expect(refusal(secretEnv({ GRAPH_BASE_URL: 'http://graph.microsoft.com' }))).toContain('GRAPH_BASE_URL: must be an https URL with no path');
    expect(refusal(secretEnv({ GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0' }))).toContain('GRAPH_BASE_URL');
    expect(refusal(secretEnv({ GRAPH_AUTHORITY_HOST: 'login.microsoftonline.com' }))).toContain('GRAPH_AUTHORITY_HOST');
  });

  it.each([
    [{ GRAPH_CREDENTIAL: undefined }, 'GRAPH_CREDENTIAL: is missing'],
    [{ GRAPH_CREDENTIAL: 'password' }, 'GRAPH_CREDENTIAL: must be one of client-secret, client-certificate, managed-identity'],
    [{ GRAPH_TENANT_ID: undefined }, 'GRAPH_TENANT_ID: is missing'],
    [{ GRAPH_TENANT_ID: 'not a tenant' }, 'GRAPH_TENANT_ID: must be the directory (tenant) id'],
    [{ GRAPH_CLIENT_ID: 'my-app' }, 'GRAPH_CLIENT_ID: must be the application (client) id, a GUID'],
    [{ GRAPH_CLIENT_SECRET: undefined }, 'GRAPH_CLIENT_SECRET: is missing'],
    [{ GRAPH_SENDER: undefined }, 'GRAPH_SENDER: is missing'],
    [{ GRAPH_SENDER: 'not an address' }, 'GRAPH_SENDER: must be the sender mailbox address'],
    [{ GRAPH_SAVE_TO_SENT_ITEMS: 'maybe' }, 'GRAPH_SAVE_TO_SENT_ITEMS: must be true or false'],
    [{ GRAPH_MAX_CONCURRENCY: '5' }, 'GRAPH_MAX_CONCURRENCY: must be a whole number from 1 to 4'],
    [{ GRAPH_MAX_CONCURRENCY: '0' }, 'GRAPH_MAX_CONCURRENCY: must be a whole number from 1 to 4'],
    [{ GRAPH_MAX_RETRIES: '2.5' }, 'GRAPH_MAX_RETRIES: must be a whole number from 0 to 5'],
    [{ GRAPH_MAX_RETRY_WAIT_SECONDS: '600' }, 'GRAPH_MAX_RETRY_WAIT_SECONDS: must be a whole number from 1 to 120'],
    [{ GRAPH_REQUEST_TIMEOUT_SECONDS: 'soon' }, 'GRAPH_REQUEST_TIMEOUT_SECONDS: must be a whole number from 1 to 120'],
  ])('refuses %o naming the variable', (change, expected) => {
    const message = refusal(secretEnv(change));
    expect(message).toContain(expected);
    expect(message).not.toContain(SECRET);
  });

  it('names every missing setting of a certificate credential at once', () => {
    const message = refusal({ GRAPH_CREDENTIAL: 'client-certificate' });
    for (const name of ['GRAPH_SENDER', 'GRAPH_TENANT_ID', 'GRAPH_CLIENT_ID', 'GRAPH_CLIENT_CERTIFICATE_PATH']) expect(message).toContain(`${name}: is missing`);
  });

  it('ignores empty values and variables that are not GRAPH_*', () => {
    const config = loadGraphMailConfig({ ...secretEnv(), GRAPH_BASE_URL: '', PATH: '/usr/bin' });
    expect(config.baseUrl).toBe('https://graph.microsoft.com');
  });
});

describe('SecretValue', () => {
  it('never prints the secret: JSON, inspect, template strings and a pino line see [redacted]', () => {
    const config = loadGraphMailConfig(secretEnv());
    const lines: string[] = [];
    const logger = createLogger({ name: 't', level: 'info', destination: { write: (l: string) => void lines.push(l) } });

    logger.info({ graph: { config } }, 'configured');

    expect(JSON.stringify(config)).not.toContain(SECRET);
    expect(inspect(config, { depth: 10 })).not.toContain(SECRET);
    expect(`${new SecretValue(SECRET)}`).toBe('[redacted]');
    expect(lines.join('')).toContain('[redacted]');
    expect(lines.join('')).not.toContain(SECRET);
  });
});
