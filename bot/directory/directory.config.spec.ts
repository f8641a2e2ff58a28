import { describe, expect, it } from 'vitest';
import { loadDirectoryConfig } from './directory.config';

const TENANT = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const CLIENT = '11111111-2222-4333-8444-555555555555';
const SECRET = 'Qx7~not-a-real-secret-value';

const graphEnv = (extra: Record<string, string | undefined> = {}) => ({
  DIRECTORY: 'graph',
  GRAPH_CREDENTIAL: 'client-secret',
  GRAPH_TENANT_ID: TENANT,
  GRAPH_CLIENT_ID: CLIENT,
  GRAPH_CLIENT_SECRET: SECRET,
  ...extra,
});

function refusal(env: Record<string, string | undefined>): string {
  try {
    loadDirectoryConfig(env);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('CONFIG.INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('loadDirectoryConfig', () => {
  it('is off by default, whatever GRAPH_* settings are present', () => {
    expect(loadDirectoryConfig({})).toEqual({ kind: 'none' });
    expect(loadDirectoryConfig({ DIRECTORY: '', GRAPH_CREDENTIAL: 'password' })).toEqual({ kind: 'none' });
    expect(loadDirectoryConfig({ DIRECTORY: 'none' })).toEqual({ kind: 'none' });
  });

  it('reads DIRECTORY=graph with the mail adapter credential settings, without GRAPH_SENDER, and a 5 s time limit', () => {
    const config = loadDirectoryConfig(graphEnv());

    expect(config).toMatchObject({
      kind: 'graph',
      timeoutSeconds: 5,
      graph: { baseUrl: 'https://graph.microsoft.com', authorityHost: 'https://login.microsoftonline.com', credential: { kind: 'client-secret', tenantId: TENANT, clientId: CLIENT } },
    });
    const credential = config.kind === 'graph' ? config.graph.credential : undefined;
    expect(credential?.kind === 'client-secret' && credential.clientSecret.reveal()).toBe(SECRET);
    expect(JSON.stringify(config)).not.toContain(SECRET);
  });

  it('takes managed identity, a sovereign cloud and a shorter time limit', () => {
    const config = loadDirectoryConfig({
      DIRECTORY: 'graph',
      GRAPH_CREDENTIAL: 'managed-identity',
      GRAPH_BASE_URL: 'https://graph.microsoft.us/',
      GRAPH_AUTHORITY_HOST: 'https://login.microsoftonline.us',
      DIRECTORY_TIMEOUT_SECONDS: '2',
    });
    expect(config).toEqual({
      kind: 'graph',
      timeoutSeconds: 2,
      graph: { credential: { kind: 'managed-identity' }, baseUrl: 'https://graph.microsoft.us', authorityHost: 'https://login.microsoftonline.us' },
    });
  });

  it('ignores the mail-only settings, even wrong ones', () => {
    const config = loadDirectoryConfig(graphEnv({ GRAPH_SENDER: 'not an address', GRAPH_MAX_CONCURRENCY: '99' }));
    expect(config.kind).toBe('graph');
  });

  it.each([
    [{ DIRECTORY: 'ldap' }, 'DIRECTORY: must be one of none, graph'],
    [{ DIRECTORY_TIMEOUT_SECONDS: '30' }, 'DIRECTORY_TIMEOUT_SECONDS: must be a whole number of seconds from 1 to 10'],
    [{ DIRECTORY_TIMEOUT_SECONDS: '0' }, 'DIRECTORY_TIMEOUT_SECONDS: must be a whole number of seconds from 1 to 10'],
    [{ DIRECTORY_TIMEOUT_SECONDS: '1.5' }, 'DIRECTORY_TIMEOUT_SECONDS: must be a whole number of seconds from 1 to 10'],
    [{ GRAPH_CREDENTIAL: undefined }, 'GRAPH_CREDENTIAL: is missing'],
    [{ GRAPH_TENANT_ID: undefined }, 'GRAPH_TENANT_ID: is missing'],
    [{ GRAPH_CLIENT_ID: 'my-app' }, 'GRAPH_CLIENT_ID: must be the application (client) id, a GUID'],
    [{ GRAPH_CLIENT_SECRET: undefined }, 'GRAPH_CLIENT_SECRET: is missing'],
    [{ GRAPH_BASE_URL: 'http://graph.microsoft.com' }, 'GRAPH_BASE_URL: must be an https URL with no path'],
  ])('refuses %o naming the variable', (change, expected) => {
    const message = refusal(graphEnv(change));
    expect(message).toContain(expected);
    expect(message).not.toContain(SECRET);
  });

  it('says the Graph settings are refused for the directory lookup', () => {
    expect(refusal({ DIRECTORY: 'graph' })).toMatch(/^Invalid Microsoft Graph directory lookup \(DIRECTORY=graph\) configuration:\n {2}GRAPH_CREDENTIAL: is missing/);
  });
});
