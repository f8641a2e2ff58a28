/**
 * The window arithmetic of the rate-hit log (storage.port.ts `RateHitLog`), shared by the adapters
 * so both count alike: a hit counts while its `at` is after the window's start (`since`).
 */
import type { RateWindowState } from './storage.port';

/** One stored hit as the adapters read it back: its number and time (ISO 8601 UTC). */
export interface RecentHit {
  n: number;
  at: string;
}

/**
 * How full a key's window is.
 *
 * @param recent - the key's `limit` most recent hits, newest first
 * @param limit - hits allowed in the window
 * @param since - the window's start, ISO 8601 UTC (times compare as text: one fixed format)
 * @returns `{ full: false, inWindow }` or `{ full: true, oldestInWindow }` (the oldest of the `limit` most recent)
 */
export function windowState(recent: readonly RecentHit[], limit: number, since: string): RateWindowState {
  const inWindow = recent.filter((h) => h.at > since).length;
  return inWindow >= limit ? { full: true, oldestInWindow: recent[recent.length - 1]!.at } : { full: false, inWindow };
}

/**
 * When a hit recorded at `at` in a window starting at `since` stops counting: `at` plus the window length.
 *
 * @returns ISO 8601 UTC
 */
export function windowEnd(at: string, since: string): string {
  return new Date(2 * Date.parse(at) - Date.parse(since)).toISOString();
}
