/**
 * Breaker, session 4: the embedded store in its worker thread (issue #15). A write that settled is on
 * disk, whatever happens after (the process killed with SIGKILL while later commits are under way);
 * close() while calls are in flight answers every call (none hangs); a call made while closing is
 * refused, not lost; the store reopens with everything that was acknowledged.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { makePerson } from '../../storage/storage.fixtures';
import { openSqliteStorageOffThread } from '../../storage/sqlite/sqlite-storage.proxy';

const root = mkdtempSync(join(tmpdir(), 'breaker-s4-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshFile = (): string => join(root, `s${++n}`, 'store.db');

/** Settles within `ms` or says it hung. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ settled: 'ok'; value: T } | { settled: 'error'; error: unknown } | { settled: 'hung' }> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<{ settled: 'hung' }>((r) => (timer = setTimeout(() => r({ settled: 'hung' }), ms)));
  try {
    return await Promise.race([p.then((value) => ({ settled: 'ok' as const, value }), (error: unknown) => ({ settled: 'error' as const, error })), hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('breaker s4: embedded store worker', () => {
  it('close() with 50 writes in flight: every write settles, and all of them are there after reopening', async () => {
    const file = freshFile();
    const s = await openSqliteStorageOffThread({ file, testSyncDelayMs: 20 });
    const people = Array.from({ length: 50 }, () => makePerson());
    const writes = people.map((p) => within(s.persons.insert(p), 10_000));
    const closing = within(s.close(), 10_000);
    const outcomes = await Promise.all(writes);
    expect((await closing).settled).toBe('ok');
    expect(outcomes.filter((o) => o.settled !== 'ok')).toEqual([]);
    const again = await openSqliteStorageOffThread({ file });
    try {
      for (const p of people) expect((await again.persons.get(p.id))?.id).toBe(p.id);
    } finally {
      await again.close();
    }
  });

  it('a call made while close() is under way is answered (refused with STORAGE.UNAVAILABLE), never left hanging', async () => {
    const s = await openSqliteStorageOffThread({ file: freshFile(), testSyncDelayMs: 50 });
    const first = s.persons.insert(makePerson());
    const closing = s.close();
    const late = await within(s.persons.get('00000000-0000-4000-8000-000000000000'), 5_000);
    await first.catch(() => undefined);
    await closing;
    expect(late.settled).not.toBe('hung');
    if (late.settled === 'error') {
      expect(late.error).toBeInstanceOf(AppError);
      expect((late.error as AppError).code).toBe('STORAGE.UNAVAILABLE');
    }
  });

  it('SIGKILL while commits are under way: every write the process saw settle is stored after reopening', async () => {
    const file = freshFile();
    const script = join(root, 'writer.mts');
    const proxy = resolve('storage/sqlite/sqlite-storage.proxy.ts');
    const fixtures = resolve('storage/storage.fixtures.ts');
    writeFileSync(
      script,
      `import { openSqliteStorageOffThread } from ${JSON.stringify(proxy)};
import { makePerson } from ${JSON.stringify(fixtures)};
const s = await openSqliteStorageOffThread({ file: ${JSON.stringify(file)}, testSyncDelayMs: 15 });
process.stdout.write('ready\\n');
for (let i = 0; ; i++) {
  const batch = Array.from({ length: 4 }, () => makePerson());
  await Promise.all(batch.map(async (p) => { await s.persons.insert(p); process.stdout.write('ok ' + p.id + '\\n'); }));
}
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const deadline = Date.now() + 30_000;
    while ((out.match(/^ok /gm) ?? []).length < 40) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`writer did not get going: ${err.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const acknowledged = [...out.matchAll(/^ok ([0-9a-f-]{36})$/gm)].map((m) => m[1]!);
    expect(acknowledged.length).toBeGreaterThanOrEqual(40);
    const s = await openSqliteStorageOffThread({ file });
    try {
      const missing: string[] = [];
      for (const id of acknowledged) if (!(await s.persons.get(id))) missing.push(id);
      expect(missing).toEqual([]);
    } finally {
      await s.close();
    }
  }, 60_000);
});
