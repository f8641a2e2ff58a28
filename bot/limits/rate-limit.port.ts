/**
 * The rate-limit port: services ask "may this happen now?" and never see where
 * the counts live. The one adapter (`store-rate-limiter.ts`) keeps them in the
 * store, so every bot instance counts against the same limits, and nothing is
 * held in memory that a flood of new keys could push out.
 */

/** A limit: at most `points` hits in any `windowMs` (a sliding window). */
export interface RateRule {
  /** Hits allowed in the window, 1..10000. */
  points: number;
  /** Window length, ms (1 ms..24 hours). */
  windowMs: number;
}

/** The answer to one {@link RateLimitPort.consume}. */
export interface RateVerdict {
  /** The hit is within the limit (and was counted). */
  allowed: boolean;
  /** Hits still allowed in the window after this one (0 when refused). */
  remaining: number;
  /** When refused: ms until one more hit would be allowed, if no other hit comes first (>= 1). 0 when allowed. */
  retryAfterMs: number;
}

export interface RateLimitPort {
  /**
   * Count one hit of `key` against `rule`, unless the window is full.
   * A refused hit is not counted, so waiting `retryAfterMs` is enough.
   *
   * @param key - what is limited, e.g. `pair.start.addr:<hash>`; at most 160 characters, never a secret (hash it first)
   * @param rule - `{ points, windowMs }`
   * @param at - the caller's clock (default: the limiter's)
   * @returns `{ allowed, remaining, retryAfterMs }`
   * @throws StorageError `STORAGE.UNAVAILABLE` when the store cannot be reached (the caller answers "try again shortly")
   */
  consume(key: string, rule: RateRule, at?: Date): Promise<RateVerdict>;
  /**
   * Whether a hit of `key` would be allowed now, counting nothing (a read). A refusal holds until
   * `retryAfterMs` whatever happens meanwhile, so a caller may refuse on it without {@link consume}:
   * checking every limit first lets a request refused by one limit use up none of the others.
   *
   * @returns `{ allowed, remaining, retryAfterMs }` as {@link consume} would answer (remaining before this hit)
   */
  check(key: string, rule: RateRule, at?: Date): Promise<RateVerdict>;
  /**
   * Delete hits whose window has ended (garbage collection; the composition root runs it now and then).
   *
   * @returns how many stored hits were deleted
   */
  sweep(at?: Date): Promise<number>;
}
