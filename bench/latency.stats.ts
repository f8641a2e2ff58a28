/**
 * Latency recording for the benchmarks, on Node's HDR histogram
 * (`perf_hooks.createHistogram`, 3 significant digits), in milliseconds.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** Summary of one series of timings. Times in milliseconds. */
export interface LatencySummary {
  /** Samples recorded. */
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

const NS_PER_MS = 1e6;

/** Collects durations (from `process.hrtime.bigint()` differences) into a histogram. */
export class LatencyRecorder {
  private readonly histogram: RecordableHistogram = createHistogram({ lowest: 1, highest: 120e9, figures: 3 });

  /**
   * Record one duration.
   *
   * @param ns - elapsed nanoseconds (at least 1 is recorded)
   */
  recordNs(ns: bigint): void {
    this.histogram.record(ns > 0n ? ns : 1n);
  }

  /**
   * Time an async call and record it.
   *
   * @returns what `fn` resolved to
   */
  async time<T>(fn: () => Promise<T>): Promise<T> {
    const start = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      this.recordNs(process.hrtime.bigint() - start);
    }
  }

  /** Samples recorded so far. */
  get count(): number {
    return this.histogram.count;
  }

  /** p50, p99, max and mean, in milliseconds (rounded to 0.001 ms). */
  summary(): LatencySummary {
    const h = this.histogram;
    if (h.count === 0) return { count: 0, p50Ms: Number.NaN, p99Ms: Number.NaN, maxMs: Number.NaN, meanMs: Number.NaN };
    return {
      count: h.count,
      p50Ms: round(h.percentile(50) / NS_PER_MS),
      p99Ms: round(h.percentile(99) / NS_PER_MS),
      maxMs: round(h.max / NS_PER_MS),
      meanMs: round(h.mean / NS_PER_MS),
    };
  }
}

/** Round to 3 decimals (microsecond resolution in milliseconds). */
export function round(value: number, decimals = 3): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
