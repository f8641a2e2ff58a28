/**
 * What a failed GOV.UK Notify call means, and whether to try again (issue #14).
 *
 * Notify's v2 API answers an error with `{ status_code, errors: [{ error, message }] }` (GOV.UK Notify API
 * documentation, "Error codes"): 400 `ValidationError` / `BadRequestError`, 403 `AuthError`, 429 `RateLimitError`
 * (requests per minute) or `TooManyRequestsError` (the service's daily limit), 500 `Exception`. Retried: 429
 * `RateLimitError`, any 5xx, and no answer at all. Not retried: 400 and 403 (the same request gets the same
 * answer), any other 4xx, and `TooManyRequestsError` (the daily limit does not clear within a send).
 *
 * The axios error the client rejects with holds the request (the Bearer token and the body with the
 * personalisation): nothing here keeps it, and Notify's message is kept only with every personalisation value,
 * the recipient and any long run of digits masked.
 */
import type { NotifyFailureReason } from './notify.port';

/** A failed call, classified. Holds no request data. */
export interface NotifyFailure {
  /** HTTP status, or undefined when there was no answer. */
  status?: number;
  /** Notify's error type (`RateLimitError`, `AuthError`, ...), or the network error code (`ECONNREFUSED`). */
  notifyError?: string;
  /** Notify's first error message, masked; absent when there was none. */
  message?: string;
  /** Wait asked for by `Retry-After` (RFC 9110 10.2.3), milliseconds; undefined when absent or unreadable. */
  retryAfterMs?: number;
  retryable: boolean;
  reason: NotifyFailureReason;
}

/**
 * Read `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
 *
 * @param value - the header value, if any
 * @param now - current time, ms since the epoch
 * @returns milliseconds to wait (0 for a date in the past), or undefined when absent or unreadable
 */
export function parseRetryAfter(value: string | undefined | null, now: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (!/[a-z]/i.test(v) || Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Mask secrets in a message from Notify before it is kept: each of `secrets` (the recipient, every
 * personalisation value) and any run of 6 or more digits become `[redacted]`.
 *
 * @param text - Notify's message
 * @param secrets - values that must not appear
 * @returns the masked text, at most 300 characters
 */
export function maskNotifyText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length >= 3).sort((a, b) => b.length - a.length)) out = out.split(s).join('[redacted]');
  out = out.replace(/\+?\d[\d ]{4,}\d/g, (run) => (run.replace(/\D/g, '').length >= 6 ? '[redacted]' : run));
  return out.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300);
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_NETWORK', 'ERR_CANCELED', 'ERR_BAD_RESPONSE']);

/** The error body Notify sends, read defensively. */
function firstError(data: unknown): { error?: string; message?: string } {
  const errors = (data as { errors?: unknown } | null | undefined)?.errors;
  const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
  if (typeof first !== 'object' || first === null) return {};
  const { error, message } = first as { error?: unknown; message?: unknown };
  return { ...(typeof error === 'string' ? { error: error.slice(0, 60) } : {}), ...(typeof message === 'string' ? { message } : {}) };
}

/**
 * Classify what a Notify client call rejected with.
 *
 * @param err - usually an axios error (`response.status`, `response.data`, `response.headers`, or `code` when
 *   there was no answer)
 * @param secrets - the recipient and personalisation values, masked out of Notify's message
 * @param now - current time, ms since the epoch (for an HTTP-date `Retry-After`)
 * @returns the classification; holds nothing from the request
 */
export function classifyNotifyFailure(err: unknown, secrets: readonly string[], now: number): NotifyFailure {
  const e = err as { response?: { status?: unknown; data?: unknown; headers?: unknown }; code?: unknown } | null | undefined;
  const status = typeof e?.response?.status === 'number' ? e.response.status : undefined;
  if (status === undefined) {
    const code = typeof e?.code === 'string' && /^[A-Z_]{3,40}$/.test(e.code) ? e.code : undefined;
    return { ...(code ? { notifyError: code } : {}), retryable: code === undefined || NETWORK_CODES.has(code), reason: 'network' };
  }
  const { error, message } = firstError(e?.response?.data);
  const headers = e?.response?.headers as { get?: (name: string) => unknown; [k: string]: unknown } | undefined;
  const rawRetryAfter = typeof headers?.get === 'function' ? headers.get('retry-after') : headers?.['retry-after'];
  const retryAfterMs = parseRetryAfter(typeof rawRetryAfter === 'string' ? rawRetryAfter : typeof rawRetryAfter === 'number' ? String(rawRetryAfter) : undefined, now);
  const base = {
    status,
    ...(error ? { notifyError: error } : {}),
    ...(message ? { message: maskNotifyText(message, secrets) } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
  if (status === 429) return { ...base, retryable: error !== 'TooManyRequestsError', reason: 'rate_limited' };
  if (status >= 500) return { ...base, retryable: true, reason: 'provider' };
  if (status === 401 || status === 403) return { ...base, retryable: false, reason: 'auth' };
  if (status >= 400) return { ...base, retryable: false, reason: 'rejected' };
  return { ...base, retryable: false, reason: 'provider' };
}
