import { describe, expect, it } from 'vitest';
import { classifyNotifyFailure, maskNotifyText, parseRetryAfter } from './notify.errors';

const NOW = Date.parse('2026-12-06T05:00:00Z');

/** An axios-like rejection with an answer. */
function answered(status: number, error?: string, message?: string, headers: Record<string, string> = {}) {
  return { response: { status, data: error ? { status_code: status, errors: [{ error, message }] } : 'oops', headers } };
}

describe('Retry-After (RFC 9110 10.2.3)', () => {
  it('reads delay-seconds and an HTTP-date; ignores what it cannot read', () => {
    expect(parseRetryAfter('3', NOW)).toBe(3000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Dec 2026 05:00:10 GMT', NOW)).toBe(10_000);
    expect(parseRetryAfter('Sun, 06 Dec 2026 04:00:00 GMT', NOW)).toBe(0);
    expect(parseRetryAfter('-1', NOW)).toBeUndefined();
    expect(parseRetryAfter('soon', NOW)).toBeUndefined();
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
  });
});

describe('classifying a Notify failure', () => {
  it('retries 429 RateLimitError, 5xx and no answer; not 400, 403, other 4xx or the daily limit', () => {
    const c = (err: unknown) => {
      const f = classifyNotifyFailure(err, [], NOW);
      return [f.reason, f.retryable];
    };
    expect(c(answered(429, 'RateLimitError', 'Exceeded rate limit'))).toEqual(['rate_limited', true]);
    expect(c(answered(429, 'TooManyRequestsError', 'Exceeded send limits'))).toEqual(['rate_limited', false]);
    expect(c(answered(500, 'Exception', 'Internal server error'))).toEqual(['provider', true]);
    expect(c(answered(502))).toEqual(['provider', true]);
    expect(c(answered(400, 'ValidationError', 'phone_number Not a UK mobile number'))).toEqual(['rejected', false]);
    expect(c(answered(403, 'AuthError', 'Invalid token: API key not found'))).toEqual(['auth', false]);
    expect(c(answered(404, 'NoResultFound', 'No result found'))).toEqual(['rejected', false]);
    expect(c({ code: 'ECONNRESET' })).toEqual(['network', true]);
    expect(c({ code: 'ECONNABORTED' })).toEqual(['network', true]);
    expect(c({ code: 'ERR_INVALID_URL' })).toEqual(['network', false]);
  });

  it('keeps the status, Notify\'s error type, its message masked, and Retry-After; nothing from the request', () => {
    const err = {
      ...answered(429, 'RateLimitError', 'Exceeded rate limit', { 'retry-after': '2' }),
      config: { headers: { Authorization: 'Bearer eyJhbGciOi.secret.token' }, data: '{"personalisation":{"code":"73920584"}}' },
    };
    const f = classifyNotifyFailure(err, ['73920584'], NOW);
    expect(f).toEqual({ status: 429, notifyError: 'RateLimitError', message: 'Exceeded rate limit', retryAfterMs: 2000, retryable: true, reason: 'rate_limited' });
    expect(JSON.stringify(f)).not.toContain('eyJ');
  });

  it('reads Retry-After from axios headers (a get method)', () => {
    const headers = { get: (n: string) => (n === 'retry-after' ? '4' : undefined) };
    expect(classifyNotifyFailure({ response: { status: 503, data: {}, headers } }, [], NOW).retryAfterMs).toBe(4000);
  });
});

describe('masking Notify\'s messages', () => {
  it('removes the recipient, each personalisation value and any long run of digits', () => {
    expect(maskNotifyText('phone_number 07700 900123 is not valid for alex@nhs.net', ['alex@nhs.net'])).toBe('phone_number [redacted] is not valid for [redacted]');
    expect(maskNotifyText('Missing personalisation: code', ['73920584'])).toBe('Missing personalisation: code');
    expect(maskNotifyText('value 73920584 too long', [])).toBe('value [redacted] too long');
    expect(maskNotifyText('limit of 3000 requests per 60 seconds', [])).toBe('limit of 3000 requests per 60 seconds');
    expect(maskNotifyText('x'.repeat(400), []).length).toBe(300);
  });
});
