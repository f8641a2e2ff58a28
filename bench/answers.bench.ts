/**
 * Security answer checks: how long checking 3 answers takes, and whether the
 * checks hold up the event loop (they must not: scrypt runs on the hash pool's
 * worker threads, see `bot/security/answers.ts` and `hash-pool.ts`). The stored
 * records are triples (`hashAnswerSet`, what registration writes since issue #15):
 * one scrypt run per check.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { hashAnswerSet, verifyAnswers, type AnswerHash } from '../bot/security/answers';
import { sharedHashPool } from '../bot/security/hash-pool';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';

/** Benchmark answers (made up; not the demo person's). */
const ANSWERS = [
  { questionId: 'q01', answer: 'Acacia Avenue' },
  { questionId: 'q04', answer: 'Biscuit' },
  { questionId: 'q08', answer: 'Blur' },
  { questionId: 'q11', answer: 'Omelette' },
] as const;

/** Event-loop delay over a window, ms (histogram resolution 1 ms). */
export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  windowMs: number;
}

export interface AnswerBenchResult {
  /** One check = `verifyAnswers` of 3 answers (one scrypt run on a triple record). */
  check: LatencySummary;
  /** Wall time of `concurrent` checks started at once, per round, ms. */
  concurrentWallMs: number[];
  concurrent: number;
  loopIdle: LoopDelay;
  loopUnderChecks: LoopDelay;
  /** Worker threads of the hash pool (one per core). */
  threadPoolSize: number;
  /** scrypt parameters of the stored hashes. */
  scrypt: AnswerHash['params'];
}

async function withLoopMonitor(fn: () => Promise<void>): Promise<LoopDelay> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const start = process.hrtime.bigint();
  histogram.enable();
  try {
    await fn();
  } finally {
    histogram.disable();
  }
  const windowMs = Number(process.hrtime.bigint() - start) / 1e6;
  return { p50Ms: round(histogram.percentile(50) / 1e6), p99Ms: round(histogram.percentile(99) / 1e6), maxMs: round(histogram.max / 1e6), windowMs: round(windowMs, 1) };
}

/**
 * Measure answer checks.
 *
 * @param runs - sequential checks timed (about 20)
 * @param concurrent - checks started at once while the event loop is watched (10)
 * @param rounds - times the concurrent batch is repeated under one loop monitor
 * @param idleMs - how long the idle loop is watched, ms
 */
export async function benchAnswers(options: { runs: number; concurrent: number; rounds: number; idleMs: number }): Promise<AnswerBenchResult> {
  const hashes = await hashAnswerSet(ANSWERS.map((a) => ({ ...a })));
  const submitted = [ANSWERS[0], ANSWERS[2], ANSWERS[3]].map((a) => ({ questionId: a.questionId, answer: a.answer.toUpperCase() }));
  const checkOnce = async (): Promise<void> => {
    const results = await verifyAnswers(hashes, submitted);
    if (!results.every((r) => r.correct)) throw new Error('benchmark answers did not verify: the check is broken');
  };

  await checkOnce(); // warm-up
  const check = new LatencyRecorder();
  for (let i = 0; i < options.runs; i++) await check.time(checkOnce);

  const loopIdle = await withLoopMonitor(() => delay(options.idleMs));
  const concurrentWallMs: number[] = [];
  const loopUnderChecks = await withLoopMonitor(async () => {
    for (let r = 0; r < options.rounds; r++) {
      const t0 = process.hrtime.bigint();
      await Promise.all(Array.from({ length: options.concurrent }, () => checkOnce()));
      concurrentWallMs.push(round(Number(process.hrtime.bigint() - t0) / 1e6, 1));
    }
  });
  return {
    check: check.summary(),
    concurrentWallMs,
    concurrent: options.concurrent,
    loopIdle,
    loopUnderChecks,
    threadPoolSize: sharedHashPool().size,
    scrypt: hashes[0]!.params,
  };
}
