/**
 * Exponential backoff with jitter for reconnects and retries.
 *
 * Delay for attempt n (0-based) is drawn uniformly from [d/2, d] where
 * d = min(maxMs, initialMs * 2^n) ("equal jitter", AWS Architecture Blog,
 * "Exponential Backoff and Jitter", 2015): many companions that lost the bot
 * at the same moment do not all come back at the same moment, and no delay is
 * ever near zero.
 */

export interface BackoffOptions {
  /** First delay ceiling, in ms. */
  initialMs: number;
  /** Cap on any delay, in ms (30 000 for the link). */
  maxMs: number;
}

/** Defaults for the bot link: 0.5 s growing to a 30 s cap. */
export const LINK_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/**
 * The delay before retry number `attempt`.
 *
 * @param attempt - 0 for the first retry after a failure
 * @param options - initial and cap, in ms
 * @param random - source of [0, 1) numbers; `Math.random` by default (jitter needs no secrecy)
 * @returns delay in ms, in [d/2, d] with d = min(maxMs, initialMs * 2^attempt)
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
