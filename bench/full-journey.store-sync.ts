/**
 * Disk syncs and the event loop (issue #15, "Disk syncs off the event loop"): the event-loop
 * delay while the embedded store commits, with the SQLite adapter on the main thread (as
 * before) and in its worker thread behind the proxy (`storage/sqlite/sqlite-storage.proxy.ts`),
 * on this disk and on a slow disk.
 *
 * Slow disk: the adapter's test-only `testSyncDelayMs` holds the committing thread that many ms
 * after every commit (`Atomics.wait`), as a WAL fsync that took that much longer would
 * (`dm-delay` needs root and device-mapper, not at hand here). Each commit is one WAL fsync
 * under synchronous=FULL; checkpoint fsyncs are not delayed, so the stand-in is, if anything,
 * kind to the main-thread case.
 *
 * Workload: `writers` closed-loop writers, each reading its journey and saving it back with
 * compare-and-set (a journey step), plus an audit append every 4th step: the shape of the bot's
 * writes. Measured over the window: event-loop delay (`monitorEventLoopDelay`, 1 ms resolution)
 * p50/p99/max, steps/s, commits/s (group commit shares one commit among the writes of one turn).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openSqliteStorage, type SqliteStorage } from '../storage/sqlite/sqlite-storage.adapter';
import { openSqliteStorageOffThread } from '../storage/sqlite/sqlite-storage.proxy';
import { makeJourney } from '../storage/storage.fixtures';
import { round } from './latency.stats';

/** One configuration's figures. Times in ms. */
export interface StoreSyncRow {
  where: 'main thread' | 'worker thread';
  syncDelayMs: number;
  steps: number;
  stepsPerSecond: number;
  commitsPerSecond: number;
  loopDelay: { p50Ms: number; p99Ms: number; maxMs: number };
  errors: number;
}

export interface StoreSyncResult {
  writers: number;
  windowMs: number;
  rows: StoreSyncRow[];
}

async function measure(where: StoreSyncRow['where'], syncDelayMs: number, options: { writers: number; windowMs: number; dir: string }): Promise<StoreSyncRow> {
  const file = join(options.dir, `${where === 'main thread' ? 'main' : 'worker'}-${syncDelayMs}.db`);
  const storage: SqliteStorage = where === 'main thread' ? openSqliteStorage({ file, testSyncDelayMs: syncDelayMs }) : await openSqliteStorageOffThread({ file, testSyncDelayMs: syncDelayMs });
  try {
    const keys: string[] = [];
    for (let i = 0; i < options.writers; i++) {
      const j = makeJourney();
      await storage.journeys.insert(j);
      keys.push(j.key);
    }
    let steps = 0;
    let errors = 0;
    let stop = false;
    const writer = async (key: string): Promise<void> => {
      let n = 0;
      while (!stop) {
        try {
          const j = await storage.journeys.get(key);
          if (!j) throw new Error('journey missing');
          const saving = storage.journeys.save({ ...j, counters: { ...j.counters, n: (j.counters['n'] ?? 0) + 1 }, updatedAt: new Date().toISOString() }, j.version);
          const audit = ++n % 4 === 0 ? storage.audit.append({ id: randomUUID(), at: new Date().toISOString(), actor: 'system', action: 'bench.step', personId: null, details: { n } }) : Promise.resolve();
          if ((await saving) !== 'saved') errors++;
          await audit;
          steps++;
        } catch {
          errors++;
        }
      }
    };
    // Warm-up, then the window.
    const running = keys.map((k) => writer(k));
    await new Promise((r) => setTimeout(r, 300));
    const steps0 = steps;
    const commits0 = storage.stats().commits;
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, options.windowMs));
    h.disable();
    const elapsed = (performance.now() - t0) / 1000;
    const windowSteps = steps - steps0;
    const commits = storage.stats().commits - commits0;
    stop = true;
    await Promise.all(running);
    return {
      where,
      syncDelayMs,
      steps: windowSteps,
      stepsPerSecond: round(windowSteps / elapsed, 1),
      commitsPerSecond: round(commits / elapsed, 1),
      loopDelay: { p50Ms: round(h.percentile(50) / 1e6, 2), p99Ms: round(h.percentile(99) / 1e6, 2), maxMs: round(h.max / 1e6, 2) },
      errors,
    };
  } finally {
    await storage.close();
  }
}

/**
 * Run the four configurations: main thread and worker, each on this disk and with `slowSyncMs` per commit.
 *
 * @param options.writers - closed-loop writers (journey steps in flight)
 * @param options.windowMs - measured window per configuration, ms
 * @param options.slowSyncMs - the slow-disk stand-in, ms per commit
 */
export async function benchStoreSync(options: { writers: number; windowMs: number; slowSyncMs: number; log: (line: string) => void }): Promise<StoreSyncResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-store-sync-'));
  const rows: StoreSyncRow[] = [];
  try {
    for (const syncDelayMs of [0, options.slowSyncMs]) {
      for (const where of ['main thread', 'worker thread'] as const) {
        options.log(`      ${where}, sync ${syncDelayMs === 0 ? 'as this disk' : `+${syncDelayMs} ms`} ...`);
        rows.push(await measure(where, syncDelayMs, { writers: options.writers, windowMs: options.windowMs, dir }));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { writers: options.writers, windowMs: options.windowMs, rows };
}

/** The section as printed lines. */
export function storeSyncReport(r: StoreSyncResult, fmt: (n: number, digits?: number) => string, table: (header: string[], rows: string[][]) => string): string[] {
  return [
    `\n== 7a. Disk syncs and the event loop (issue #15): ${r.writers} writers (journey get + CAS save, audit every 4th), ${fmt(r.windowMs / 1000, 0)} s per row; slow disk = testSyncDelayMs held after each commit ==`,
    table(
      ['store runs on', 'extra ms per sync', 'steps/s', 'commits/s', 'loop delay p50 ms', 'p99 ms', 'max ms', 'errors'],
      r.rows.map((x) => [x.where, String(x.syncDelayMs), fmt(x.stepsPerSecond, 1), fmt(x.commitsPerSecond, 1), fmt(x.loopDelay.p50Ms), fmt(x.loopDelay.p99Ms), fmt(x.loopDelay.maxMs), String(x.errors)]),
    ),
    '   The bot opens the embedded store in the worker thread (storage.factory.ts); "main thread" is the adapter as it ran before.',
  ];
}
