import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config';

const base = (): Record<string, string> => ({ SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64') });

/** The message of the refusal, or a note that there was none. */
function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
    return '(accepted)';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('loadConfig: connection bounds (HTTP_*)', () => {
  it('has defaults: 10 s head, 30 s request, 5 s keep-alive, cap decided at start-up, 1,000 per address', () => {
    expect(loadConfig(base()).http).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5000, maxConnections: null, maxConnectionsPerAddress: 1000 });
  });

  it('takes values in bounds', () => {
    const c = loadConfig({ ...base(), HTTP_HEADERS_TIMEOUT_MS: '2000', HTTP_REQUEST_TIMEOUT_MS: '4000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000', HTTP_MAX_CONNECTIONS: '500', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '0' });
    expect(c.http).toEqual({ headersTimeoutMs: 2000, requestTimeoutMs: 4000, keepAliveTimeoutMs: 65_000, maxConnections: 500, maxConnectionsPerAddress: 0 });
  });

  it.each([
    ['HTTP_HEADERS_TIMEOUT_MS', '999'],
    ['HTTP_HEADERS_TIMEOUT_MS', '120001'],
    ['HTTP_HEADERS_TIMEOUT_MS', 'ten'],
    ['HTTP_REQUEST_TIMEOUT_MS', '600001'],
    ['HTTP_KEEP_ALIVE_TIMEOUT_MS', '500'],
    ['HTTP_MAX_CONNECTIONS', '15'],
    ['HTTP_MAX_CONNECTIONS', '1.5'],
    ['HTTP_MAX_CONNECTIONS_PER_ADDRESS', '-1'],
  ])('refuses %s=%s, naming the setting', (name, value) => {
    expect(refusal({ ...base(), [name]: value })).toMatch(new RegExp(`^Invalid configuration:[\\s\\S]*${name}:`));
  });

  it('refuses a request timeout shorter than the header timeout', () => {
    expect(refusal({ ...base(), HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' })).toMatch(/^HTTP_REQUEST_TIMEOUT_MS: 10000 is shorter than HTTP_HEADERS_TIMEOUT_MS \(20000\)/);
  });
});

describe('loadConfig: Bot Framework app registration', () => {
  const appId = '0b5e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4';
  const tenant = '3f2c0a4e-1111-4c2b-9d7e-0123456789ab';
  const withApp = (extra: Record<string, string>): Record<string, string> => ({ ...base(), MicrosoftAppId: appId, ALLOWED_TENANTS: tenant, ...extra });

  it('takes each app type with what it needs', () => {
    expect(loadConfig(withApp({ MicrosoftAppPassword: 'secret-value' })).auth).toEqual({ kind: 'bot-framework', appId, appType: 'MultiTenant', appPassword: 'secret-value', tenantId: undefined });
    expect(loadConfig(withApp({ MicrosoftAppType: 'SingleTenant', MicrosoftAppPassword: 'secret-value', MicrosoftAppTenantId: tenant })).auth).toMatchObject({ appType: 'SingleTenant', tenantId: tenant });
    expect(loadConfig(withApp({ MicrosoftAppType: 'UserAssignedMSI', MicrosoftAppTenantId: 'contoso.onmicrosoft.com' })).auth).toMatchObject({ appType: 'UserAssignedMSI', appPassword: undefined });
    expect(loadConfig(withApp({ MicrosoftAppPassword: 'secret-value', ALLOWED_TENANTS: `${tenant}, ${appId}` })).allowedTenants).toEqual([tenant, appId]);
  });

  it.each([
    ['an app id that is not a GUID', { MicrosoftAppId: 'smartcard-bot', MicrosoftAppPassword: 'x' }, /^MicrosoftAppId: must be a GUID/],
    ['an unknown app type', { MicrosoftAppType: 'Tenantless', MicrosoftAppPassword: 'x' }, /MicrosoftAppType: must be MultiTenant, SingleTenant or UserAssignedMSI/],
    ['MultiTenant without a password', {}, /^MicrosoftAppPassword: must be set for a MultiTenant app/],
    ['SingleTenant without a password', { MicrosoftAppType: 'SingleTenant', MicrosoftAppTenantId: tenant }, /^MicrosoftAppPassword: must be set for a SingleTenant app/],
    ['SingleTenant without a tenant', { MicrosoftAppType: 'SingleTenant', MicrosoftAppPassword: 'x' }, /^MicrosoftAppTenantId: must be set for a SingleTenant app/],
    ['UserAssignedMSI without a tenant', { MicrosoftAppType: 'UserAssignedMSI' }, /^MicrosoftAppTenantId: must be set for a UserAssignedMSI app/],
    ['UserAssignedMSI with a password', { MicrosoftAppType: 'UserAssignedMSI', MicrosoftAppTenantId: tenant, MicrosoftAppPassword: 'x' }, /^MicrosoftAppPassword: must be empty for a UserAssignedMSI app/],
    ['a tenant that is neither a GUID nor a domain', { MicrosoftAppType: 'SingleTenant', MicrosoftAppPassword: 'x', MicrosoftAppTenantId: 'not a tenant' }, /^MicrosoftAppTenantId: must be a tenant id/],
    ['no ALLOWED_TENANTS', { MicrosoftAppPassword: 'x', ALLOWED_TENANTS: '' }, /^ALLOWED_TENANTS: must list the Entra tenant ids/],
    ['an ALLOWED_TENANTS entry that is not a GUID', { MicrosoftAppPassword: 'x', ALLOWED_TENANTS: `${tenant},contoso` }, /^ALLOWED_TENANTS: "contoso" is not a tenant id \(a GUID\)/],
  ])('refuses %s, naming the setting', (_name, extra, message) => {
    expect(refusal(withApp(extra))).toMatch(message);
  });
});

describe('loadConfig: without an app id the bot listens on loopback only', () => {
  it.each(['127.0.0.1', '127.1.2.3', '::1', 'localhost'])('HOST=%s: accepted, channel authentication off', (host) => {
    expect(loadConfig({ ...base(), HOST: host }).auth).toEqual({ kind: 'none' });
  });

  it.each(['0.0.0.0', '::', '10.1.2.3', 'bot.example.nhs.uk'])('HOST=%s: refused, naming HOST and the missing registration', (host) => {
    expect(refusal({ ...base(), HOST: host })).toMatch(new RegExp(`^HOST: ${host.replace(/\./g, '\\.')} is reachable from other machines but MicrosoftAppId is empty; .*loopback only`));
  });

  it('ALLOW_UNAUTHENTICATED_CHANNEL=true no longer opens another address', () => {
    expect(refusal({ ...base(), HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED_CHANNEL: 'true' })).toMatch(/^HOST: 0\.0\.0\.0 .*ALLOW_UNAUTHENTICATED_CHANNEL=true no longer opens other addresses/);
  });

  it('ALLOW_UNAUTHENTICATED_CHANNEL=false refuses to start without an app id, even on loopback', () => {
    expect(refusal({ ...base(), ALLOW_UNAUTHENTICATED_CHANNEL: 'false' })).toMatch(/MicrosoftAppId is empty but ALLOW_UNAUTHENTICATED_CHANNEL=false/);
  });
});
