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
