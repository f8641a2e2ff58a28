import { describe, expect, it } from 'vitest';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { createLogger } from '../../common/logger';
import { AppError } from '../../common/app-error';
import { createGraphDirectory } from './graph-directory.adapter';

const ALEX = '6f1c4a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b';

/** A logger whose lines are kept. */
function capture() {
  const lines: string[] = [];
  const logger = createLogger({ name: 't', level: 'trace', destination: { write: (l: string) => void lines.push(l) } });
  return { logger, lines };
}

/** A credential that counts token requests and answers as told. */
function credential(answer: () => Promise<AccessToken | null>) {
  const calls = { n: 0 };
  const c: TokenCredential = {
    getToken: () => {
      calls.n += 1;
      return answer();
    },
  };
  return { c, calls };
}

// The Graph base URL is a reserved .invalid name (RFC 6761 6.4): these tests never reach an HTTP request.
const config = (timeoutSeconds = 1) => ({
  timeoutSeconds,
  graph: { credential: { kind: 'managed-identity' as const }, baseUrl: 'https://graph.invalid', authorityHost: 'https://login.invalid' },
});

async function rejection(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a rejection');
}

describe('GraphDirectoryAdapter.lookup', () => {
  it.each(['', 'alex.wilber@nhs.net', '6f1c4a1e2b3d4e5f8a9b0c1d2e3f4a5b', `${ALEX}/manager`, ` ${ALEX}`, `${ALEX}\n`])(
    'refuses %j before asking for a token',
    async (id) => {
      const { c, calls } = credential(async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }));
      const directory = createGraphDirectory(config(), capture().logger, { credential: c });

      const err = await rejection(directory.lookup(id));

      expect(err.code).toBe('DIRECTORY.LOOKUP_FAILED');
      expect(err.meta).toEqual({ reason: 'invalid_id', status: null, requestId: null });
      expect(err.message).not.toContain(id || '\u0000');
      expect(calls.n).toBe(0);
    },
  );

  it('ends a lookup whose token never comes after the time limit', async () => {
    const { c, calls } = credential(() => new Promise(() => undefined));
    const { logger, lines } = capture();
    const directory = createGraphDirectory(config(1), logger, { credential: c });

    const started = performance.now();
    const err = await rejection(directory.lookup(ALEX));
    const took = performance.now() - started;

    expect(err.code).toBe('DIRECTORY.LOOKUP_FAILED');
    expect(err.meta).toMatchObject({ reason: 'timeout', status: null, requestId: null });
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(1800);
    expect(calls.n).toBe(1);
    expect(lines.join('')).toContain('directory lookup failed');
    expect(lines.join('')).not.toContain(ALEX);
  });

  it('reports a refused token as reason token, with the AADSTS code and without the message text', async () => {
    const { c } = credential(async () => {
      throw new Error(`AADSTS7000215: Invalid client secret provided for ${ALEX}.`);
    });
    const { logger, lines } = capture();
    const directory = createGraphDirectory(config(), logger, { credential: c });

    const err = await rejection(directory.lookup(ALEX));

    expect(err.meta).toMatchObject({ reason: 'token', status: null, graphCode: 'AADSTS7000215' });
    expect(err.message).toBe('Could not get an access token for Microsoft Graph (AADSTS7000215).');
    expect(lines.join('')).not.toContain(ALEX);
  });
});
