/**
 * Rate limits counted in the store (a sliding-window log of hits), shared by
 * every bot instance on it.
 *
 * Each allowed hit is one stored row (`storage.rateHits`); a hit is refused when
 * `points` hits of the key are stored within the last `windowMs`. The store
 * makes check-and-record atomic (SQLite: one write transaction; MongoDB: a
 * single-winner insert of the hit's `_id`), so racing requests on any instance
 * never get more than `points` through. Refused hits store nothing. A hit is
 * deleted by `sweep` once its own window has ended, so stored hits are bounded
 * by what the limits let through in one window.
 *
 * NOTE: own code over `rate-limiter-flexible` (11.4.0): its MongoDB store counts
 * with an upserted `$inc` behind a unique and a TTL index; FerretDB v1 refuses the
 * TTL index (so the unique one is never made) and does not apply conditional
 * updates atomically. On FerretDB/PostgreSQL 50 parallel consumes with 5 points
 * let 10 and 23 through in two of five trials. Its SQLite store would bypass the
 * adapter's group commit and migrations. One log of hits serves both stores.
 */
import type { RateHitLog } from '../../storage/storage.port';
import type { RateLimitPort, RateRule, RateVerdict } from './rate-limit.port';

/** Bounds of keys and rules {@link createStoreRateLimiter} accepts. */
export const STORE_RATE_LIMITER_BOUNDS = {
  /** Longest key, characters (the store allows 200; the rest is headroom). */
  maxKeyLength: 160,
  /** Longest window, ms (24 hours). */
  maxWindowMs: 24 * 60 * 60_000,
} as const;

/**
 * A rate limiter whose counts live in the store.
 *
 * @param deps.hits - the store's rate-hit log (`storage.rateHits`)
 * @param deps.now - clock (default `new Date()`)
 * @returns the {@link RateLimitPort}
 */
export function createStoreRateLimiter(deps: { hits: RateHitLog; now?: () => Date }): RateLimitPort {
  const now = deps.now ?? ((): Date => new Date());
  /** Allowed again once the oldest hit that fills the window has left it. */
  const refused = (oldestInWindow: string, rule: RateRule, t: number): RateVerdict => ({ allowed: false, remaining: 0, retryAfterMs: Math.max(1, Date.parse(oldestInWindow) + rule.windowMs - t) });
  return {
    async consume(key: string, rule: RateRule, at?: Date): Promise<RateVerdict> {
      checkRule(key, rule);
      const t = (at ?? now()).getTime();
      const r = await deps.hits.record(key, rule.points, new Date(t).toISOString(), new Date(t - rule.windowMs).toISOString());
      return r.recorded ? { allowed: true, remaining: rule.points - r.inWindow, retryAfterMs: 0 } : refused(r.oldestInWindow, rule, t);
    },
    async check(key: string, rule: RateRule, at?: Date): Promise<RateVerdict> {
      checkRule(key, rule);
      const t = (at ?? now()).getTime();
      const w = await deps.hits.peek(key, rule.points, new Date(t - rule.windowMs).toISOString());
      return w.full ? refused(w.oldestInWindow, rule, t) : { allowed: true, remaining: rule.points - w.inWindow, retryAfterMs: 0 };
    },
    sweep(at?: Date): Promise<number> {
      return deps.hits.deleteExpired((at ?? now()).toISOString());
    },
  };
}

/** A rule or key a caller got wrong is a programming error: thrown, not answered. */
function checkRule(key: string, rule: RateRule): void {
  const { maxKeyLength, maxWindowMs } = STORE_RATE_LIMITER_BOUNDS;
  if (key.length === 0 || key.length > maxKeyLength) throw new RangeError(`rate limit key must be 1..${maxKeyLength} characters`);
  if (!Number.isInteger(rule.points) || rule.points < 1 || rule.points > 10_000) throw new RangeError('rate rule points must be an integer 1..10000');
  if (!Number.isInteger(rule.windowMs) || rule.windowMs < 1 || rule.windowMs > maxWindowMs) throw new RangeError(`rate rule windowMs must be an integer 1..${maxWindowMs}`);
}

/**
 * Whole seconds for a `Retry-After` header (RFC 9110 10.2.3) from a verdict's `retryAfterMs`.
 *
 * @returns seconds, at least 1
 */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}
