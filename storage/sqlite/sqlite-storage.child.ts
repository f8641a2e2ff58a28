/**
 * Child process used by `sqlite-storage.spec.ts` to test what only another
 * process can show: a crash (SIGKILL) in the middle of writes, and several
 * processes writing one file at once. Not part of the service.
 *
 * Usage (run with `node --import tsx`):
 *   crash FILE JOURNEY_KEY      append audit entries and bump a journey counter forever,
 *                               printing `committed <auditId> <n>` after each write returns
 *   crash-proxy FILE JOURNEY_KEY  the same through the worker-thread proxy (sqlite-storage.proxy.ts)
 *   increment FILE JOURNEY_KEY N  N read-increment-save loops on the journey; prints `done <conflicts>`
 *   ratehits FILE KEY N LIMIT     N concurrent rate hits on KEY with room for LIMIT in a minute; prints `done <recorded>`
 */
import { randomUUID } from 'node:crypto';
import { openSqliteStorage } from './sqlite-storage.adapter';
import { openSqliteStorageOffThread } from './sqlite-storage.proxy';

async function main(): Promise<void> {
  const [mode, file, key, count, limit] = process.argv.slice(2);
  if (!mode || !file || !key) throw new Error('usage: crash|crash-proxy|increment|ratehits FILE KEY [N] [LIMIT]');
  const storage = mode === 'crash-proxy' ? await openSqliteStorageOffThread({ file, busyTimeoutMs: 20_000 }) : openSqliteStorage({ file, busyTimeoutMs: 20_000 });
  if (mode === 'crash' || mode === 'crash-proxy') {
    for (let n = 1; ; n++) {
      const id = randomUUID();
      await storage.audit.append({ id, at: new Date().toISOString(), actor: 'system', action: 'crash.test', personId: null, details: { n } });
      for (;;) {
        const j = (await storage.journeys.get(key))!;
        if ((await storage.journeys.save({ ...j, counters: { n } }, j.version)) === 'saved') break;
      }
      process.stdout.write(`committed ${id} ${n}\n`);
    }
  }
  if (mode === 'increment') {
    let conflicts = 0;
    for (let i = 0; i < Number(count); i++) {
      for (;;) {
        const j = (await storage.journeys.get(key))!;
        const result = await storage.journeys.save({ ...j, counters: { ...j.counters, n: (j.counters.n ?? 0) + 1 } }, j.version);
        if (result === 'saved') break;
        conflicts++;
      }
    }
    await storage.close();
    process.stdout.write(`done ${conflicts}\n`);
    return;
  }
  if (mode === 'ratehits') {
    const now = Date.now();
    const results = await Promise.all(
      Array.from({ length: Number(count) }, (_, i) => storage.rateHits.record(key, Number(limit), new Date(now + i).toISOString(), new Date(now + i - 60_000).toISOString())),
    );
    await storage.close();
    process.stdout.write(`done ${results.filter((r) => r.recorded).length}\n`);
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n`);
  process.exit(1);
});
