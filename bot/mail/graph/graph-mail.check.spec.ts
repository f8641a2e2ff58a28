import { describe, expect, it } from 'vitest';
import { AppError } from '../../../common/app-error';
import { createLogger } from '../../../common/logger';
import { createGraphMailAdapter } from './graph-mail.adapter';
import type { TokenCredential } from './graph-credential.factory';
import { loadGraphMailConfig } from './graph-mail.config';

const config = loadGraphMailConfig({
  GRAPH_CREDENTIAL: 'client-secret',
  GRAPH_TENANT_ID: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
  GRAPH_CLIENT_ID: '11111111-2222-4333-8444-555555555555',
  GRAPH_CLIENT_SECRET: 'Qx7~not-a-real-secret-value',
  GRAPH_SENDER: 'smartcard-assist@trust.example.org',
});

/** A credential that answers with `answer` and counts the scopes it was asked for. */
function credential(answer: () => Promise<{ token: string; expiresOnTimestamp: number } | null>): TokenCredential & { scopes: string[] } {
  const scopes: string[] = [];
  return { scopes, getToken: async (scope: string | string[]) => (scopes.push(String(scope)), answer()) } as TokenCredential & { scopes: string[] };
}

describe('GraphMailAdapter.check (readiness)', () => {
  const logger = createLogger({ name: 'spec', level: 'silent' });

  it('passes when a token for Graph comes, asking for the Graph scope', async () => {
    const cred = credential(async () => ({ token: 'eyJ.x.y', expiresOnTimestamp: Date.now() + 3600_000 }));
    await createGraphMailAdapter(config, logger, { credential: cred }).check();
    expect(cred.scopes).toEqual(['https://graph.microsoft.com/.default']);
  });

  it.each([
    ['the token request fails', async () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { name: 'AuthenticationError' }))],
    ['no token comes', async () => null],
  ])('fails with MAIL.UNAVAILABLE when %s', async (_label, answer) => {
    const err = await createGraphMailAdapter(config, logger, { credential: credential(answer) }).check().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('MAIL.UNAVAILABLE');
    expect((err as AppError).message).toMatch(/^No access token for Microsoft Graph/);
    expect((err as AppError).message).not.toContain('Qx7~');
  });
});
