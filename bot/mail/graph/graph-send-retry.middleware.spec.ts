import type { Context, Middleware } from '@microsoft/microsoft-graph-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import { GraphSendRetryHandler, GraphTransportError, SendAttemptRecord, backoffMs, parseRetryAfter } from './graph-send-retry.middleware';

const NOW = Date.parse('2026-07-03T08:45:00Z');

describe('parseRetryAfter (RFC 9110 10.2.3)', () => {
  it.each([
    ['2', 2000],
    [' 0 ', 0],
    ['120', 120_000],
    ['Fri, 03 Jul 2026 08:45:03 GMT', 3000],
    ['Fri, 03 Jul 2026 08:44:00 GMT', 0],
  ])('reads %j as %i ms', (value, ms) => {
    expect(parseRetryAfter(value, NOW)).toBe(ms);
  });

  it.each([null, undefined, '', '1.5', '-1', 'soon', '2026-07-03'])('gives undefined for %j', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });

  it('rounds a date up, never down, to whole milliseconds', () => {
    expect(parseRetryAfter('Fri, 03 Jul 2026 08:45:01 GMT', NOW + 0.4)).toBe(1000);
  });
});

describe('backoffMs', () => {
  it('doubles per retry and adds jitter below the base', () => {
    expect([1, 2, 3].map((r) => backoffMs(r, 100, () => 0))).toEqual([100, 200, 400]);
    expect(backoffMs(1, 100, () => 0.999)).toBe(199);
  });
});

/** A next middleware that answers from a script and records each attempt. */
function scripted(answers: (Response | Error)[]) {
  const seen: { headers: Record<string, string>; signal: AbortSignal | undefined }[] = [];
  const next: Middleware = {
    execute: async (context: Context) => {
      seen.push({ headers: { ...(context.options!.headers as Record<string, string>) }, signal: context.options!.signal ?? undefined });
      const answer = answers.shift();
      if (!answer) throw new Error('script ran out');
      if (answer instanceof Error) throw answer;
      context.response = answer;
    },
  };
  return { next, seen };
}

function run(answers: (Response | Error)[], policy: Partial<{ maxRetries: number; maxWaitMs: number; backoffBaseMs: number; attemptTimeoutMs: number }> = {}) {
  const handler = new GraphSendRetryHandler(
    { maxRetries: 3, maxWaitMs: 5000, backoffBaseMs: 1, attemptTimeoutMs: 1000, ...policy },
    createLogger({ name: 't', level: 'silent' }),
    () => 0,
  );
  const { next, seen } = scripted(answers);
  handler.setNext(next);
  const record = new SendAttemptRecord();
  const context = {
    request: 'https://graph.microsoft.com/v1.0/users/a@b.example/sendMail',
    options: { method: 'POST', headers: { 'Content-Type': 'application/json' } },
    middlewareControl: { getMiddlewareOptions: () => record },
  } as unknown as Context;
  return { promise: handler.execute(context), context, record, seen };
}

const answer = (status: number, headers: Record<string, string> = {}) => new Response(status === 202 ? null : '{}', { status, headers });

describe('GraphSendRetryHandler', () => {
  it('retries 429 and 503 and stops at the first other answer, marking each retry', async () => {
    const { promise, context, record, seen } = run([answer(429, { 'retry-after': '0' }), answer(503), answer(202)]);
    await promise;
    expect(context.response!.status).toBe(202);
    expect(record.attempts).toBe(3);
    expect(seen.map((s) => s.headers['Retry-Attempt'])).toEqual([undefined, '1', '2']);
    expect(seen.every((s) => s.signal instanceof AbortSignal)).toBe(true);
  });

  it.each([400, 401, 403, 404, 500, 502, 504])('does not retry %i', async (status) => {
    const { promise, context, record } = run([answer(status), answer(202)]);
    await promise;
    expect(context.response!.status).toBe(status);
    expect(record.attempts).toBe(1);
  });

  it('gives up after maxRetries and says so', async () => {
    const { promise, context, record } = run([answer(503), answer(503), answer(503)], { maxRetries: 2 });
    await promise;
    expect(context.response!.status).toBe(503);
    expect(record).toMatchObject({ attempts: 3, retriesExhausted: true });
  });

  it('does not retry when Retry-After asks for longer than the ceiling', async () => {
    const { promise, context, record } = run([answer(429, { 'retry-after': '31' }), answer(202)], { maxWaitMs: 30_000 });
    await promise;
    expect(context.response!.status).toBe(429);
    expect(record).toMatchObject({ attempts: 1, retryAfterTooLongSeconds: 31 });
  });

  it('turns a network failure into a GraphTransportError with its code, without retrying', async () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const { promise, record } = run([refused, answer(202)]);
    await expect(promise).rejects.toMatchObject({ name: 'GraphTransportError', transportCode: 'ECONNREFUSED' });
    expect(record.attempts).toBe(1);
  });

  it('reports a time-out as ETIMEDOUT', async () => {
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    const { promise } = run([timeout]);
    const err = await promise.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphTransportError);
    expect((err as GraphTransportError).transportCode).toBe('ETIMEDOUT');
  });
});
