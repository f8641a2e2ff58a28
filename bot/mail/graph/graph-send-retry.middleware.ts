/**
 * Graph client middleware that retries a send after 429 and 503, honouring `Retry-After`, within a ceiling.
 *
 * It stands where the client's own RetryHandler stands in the default chain (after authentication, before
 * telemetry and the HTTP handler), and replaces it, because a send must not be repeated the way RetryHandler
 * repeats it:
 * - only 429 (RFC 6585 4) and 503 (RFC 9110 15.6.4) are retried; RetryHandler also retries 504, after which
 *   the message may already be on its way (a second code email);
 * - `Retry-After` is honoured in full, as seconds or as an HTTP date (RFC 9110 10.2.3), never rounded down;
 *   when it asks for longer than the ceiling, the send stops (retryable) instead of retrying early, which
 *   Graph's throttling guidance says only prolongs throttling (Graph docs: throttling guidance);
 * - without `Retry-After`, it backs off exponentially with jitter;
 * - each attempt has its own time limit (AbortSignal), and a network failure or time-out is not retried here
 *   (the request may have reached Graph), but reported as a {@link GraphTransportError}.
 *
 * The request body is a JSON string, so it can be sent again as it is.
 */
import { GraphClientError, type Context, type Middleware, type MiddlewareOptions } from '@microsoft/microsoft-graph-client';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../../../common/logger';
import { safeRequestId } from './graph-mail.errors';

/** Statuses this middleware retries. */
export const RETRIED_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** Retry policy; all times in milliseconds. */
export interface SendRetryPolicy {
  /** Retries after the first attempt (0 = no retry). */
  maxRetries: number;
  /** Longest wait before one retry; a longer `Retry-After` ends the send. */
  maxWaitMs: number;
  /** Base of the exponential back-off when no `Retry-After` came: base * 2^retry + jitter in [0, base). */
  backoffBaseMs: number;
  /** Time limit of one HTTP attempt. */
  attemptTimeoutMs: number;
}

/**
 * Per-request record the middleware fills in (passed with `GraphRequest.middlewareOptions([record])`), so the
 * caller learns how many attempts were made and why the last one stopped.
 */
export class SendAttemptRecord implements MiddlewareOptions {
  attempts = 0;
  /** Set when the last answer was 429/503 and its `Retry-After` exceeded the ceiling, in seconds. */
  retryAfterTooLongSeconds: number | undefined;
  /** Set when the last answer was 429/503 and the retries ran out. */
  retriesExhausted = false;
}

/** The request did not get an HTTP answer: connection, TLS or time-out. The Graph client passes it through. */
export class GraphTransportError extends GraphClientError {
  /** `ETIMEDOUT` for our time-out, else the socket/TLS error code (e.g. `ECONNREFUSED`, `CERT_HAS_EXPIRED`). */
  readonly transportCode: string;

  constructor(transportCode: string, cause: unknown) {
    super(`No answer from Microsoft Graph (${transportCode})`);
    // GraphClientError's constructor pins its own prototype; restore ours so `instanceof` works.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'GraphTransportError';
    this.transportCode = transportCode;
    Object.defineProperty(this, 'cause', { value: cause, enumerable: false });
  }
}

/**
 * Parse a `Retry-After` value into a wait in milliseconds.
 *
 * @param value - the header: delay-seconds (`"2"`) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), RFC 9110 10.2.3
 * @param nowMs - the current time, ms since the epoch
 * @returns the wait in ms (0 for a date in the past), or undefined when absent or unreadable
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil(at - nowMs));
}

/**
 * Wait before retry number `retry` (1-based) when the server gave no `Retry-After`.
 *
 * @returns base * 2^(retry-1) + jitter, in ms, jitter uniform in [0, base)
 */
export function backoffMs(retry: number, baseMs: number, random: () => number = Math.random): number {
  return baseMs * 2 ** (retry - 1) + Math.floor(random() * baseMs);
}

/** Sleep until both `waitMs` of monotonic time and the wall-clock deadline have passed. */
async function sleepAtLeast(waitMs: number, wallDeadline: number): Promise<void> {
  const start = performance.now();
  for (;;) {
    const left = Math.max(waitMs - (performance.now() - start), wallDeadline - Date.now());
    if (left <= 0 || performance.now() - start > waitMs + 1000) return;
    await delay(Math.ceil(left));
  }
}

/** Set a request header whether the client holds headers as a `Headers` object or a plain record. */
function setHeader(context: Context, name: string, value: string): void {
  const options = (context.options ??= {});
  const headers = options.headers;
  if (headers instanceof Headers) headers.set(name, value);
  else if (Array.isArray(headers)) options.headers = [...headers.filter((pair) => pair[0]?.toLowerCase() !== name.toLowerCase()), [name, value]];
  else options.headers = { ...(headers ?? {}), [name]: value };
}

function transportCodeOf(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const name = (e as { name?: unknown }).name;
    if (name === 'TimeoutError' || name === 'AbortError') return 'ETIMEDOUT';
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{2,40}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'ENETWORK';
}

/** See the module comment. */
export class GraphSendRetryHandler implements Middleware {
  private next: Middleware | undefined;

  constructor(
    private readonly policy: SendRetryPolicy,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    if (!this.next) throw new GraphClientError('GraphSendRetryHandler has no next middleware');
    const record = context.middlewareControl?.getMiddlewareOptions(SendAttemptRecord) as SendAttemptRecord | undefined;
    context.options ??= {};
    for (let retry = 0; ; retry += 1) {
      if (record) record.attempts = retry + 1;
      if (retry > 0) setHeader(context, 'Retry-Attempt', String(retry));
      context.options.signal = AbortSignal.timeout(this.policy.attemptTimeoutMs);
      try {
        await this.next.execute(context);
      } catch (err) {
        if (err instanceof GraphClientError) throw err;
        throw new GraphTransportError(transportCodeOf(err), err);
      }
      const response = context.response;
      if (!response || !RETRIED_STATUSES.has(response.status)) return;
      const requestId = safeRequestId(response.headers.get('request-id'));
      if (retry >= this.policy.maxRetries) {
        if (record) record.retriesExhausted = true;
        return;
      }
      const now = Date.now();
      const asked = parseRetryAfter(response.headers.get('retry-after'), now);
      if (asked !== undefined && asked > this.policy.maxWaitMs) {
        if (record) record.retryAfterTooLongSeconds = Math.ceil(asked / 1000);
        this.logger.warn(
          { status: response.status, requestId, retryAfterMs: asked, maxWaitMs: this.policy.maxWaitMs },
          'Graph asked to wait longer than allowed; not retrying',
        );
        return;
      }
      const waitMs = asked ?? Math.min(backoffMs(retry + 1, this.policy.backoffBaseMs, this.random), this.policy.maxWaitMs);
      this.logger.warn({ status: response.status, requestId, retry: retry + 1, waitMs, retryAfter: asked !== undefined }, 'Graph send throttled or unavailable; retrying');
      await response.body?.cancel().catch(() => undefined);
      await sleepAtLeast(waitMs, now + waitMs);
    }
  }
}
