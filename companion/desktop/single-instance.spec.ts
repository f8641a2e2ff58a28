import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, uptime } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireInstanceLock, instanceLockPath, runningInstance } from './single-instance';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function dataDir(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'single-instance-'));
  cleanup.push(() => rm(base, { recursive: true, force: true }));
  return join(base, 'companion');
}

const bootedAt = (): number => Math.round(Date.now() / 1000 - uptime());

/** A process id that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('single-instance lock', () => {
  it('the first start takes the lock (0600 file naming its pid); a second sees it running; release frees it', async () => {
    const dir = await dataDir();
    const path = instanceLockPath(dir);
    const first = await acquireInstanceLock(path);
    expect(first.kind).toBe('acquired');
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    // A lock held by another live process of this boot (the parent of this test runner is alive).
    await writeFile(path, JSON.stringify({ pid: process.ppid, bootedAt: bootedAt() }));
    expect(await acquireInstanceLock(path)).toEqual({ kind: 'running', pid: process.ppid });
    // Our release leaves a lock that is no longer ours alone.
    if (first.kind === 'acquired') await first.lock.release();
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.ppid });
  });

  it('takes over a lock whose process is gone, one written before the computer started, and one that is not a lock', async () => {
    const dir = await dataDir();
    const path = instanceLockPath(dir);
    await mkdir(dir, { mode: 0o700 });
    const gone = await deadPid();
    await writeFile(path, JSON.stringify({ pid: gone, bootedAt: bootedAt() }));
    const a = await acquireInstanceLock(path);
    expect(a).toMatchObject({ kind: 'acquired', tookOverFromPid: gone });
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
    if (a.kind === 'acquired') await a.lock.release();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });

    // A live pid, but from before the last start of the computer: reused by something else.
    await writeFile(path, JSON.stringify({ pid: process.ppid, bootedAt: bootedAt() - 86_400 }));
    expect(await acquireInstanceLock(path)).toMatchObject({ kind: 'acquired', tookOverFromPid: process.ppid });

    await writeFile(path, 'not a lock');
    expect(await acquireInstanceLock(path)).toMatchObject({ kind: 'acquired', tookOverFromPid: null });
  });

  it('two starts racing for a stale lock: exactly one acquires', async () => {
    const dir = await dataDir();
    const path = instanceLockPath(dir);
    await mkdir(dir, { mode: 0o700 });
    await writeFile(path, JSON.stringify({ pid: await deadPid(), bootedAt: bootedAt() }));
    // Both read the same stale lock; the loser must find the winner's fresh lock, not remove it.
    const results = await Promise.all([acquireInstanceLock(path), acquireInstanceLock(path), acquireInstanceLock(path)]);
    expect(results.filter((r) => r.kind === 'acquired')).toHaveLength(1);
    expect(results.filter((r) => r.kind === 'running')).toEqual([{ kind: 'running', pid: process.pid }, { kind: 'running', pid: process.pid }]);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
  });

  it('starts racing with no lock at all: exactly one acquires (a racer never reads a half-written lock as stale)', async () => {
    for (let round = 0; round < 10; round++) {
      const dir = await dataDir();
      const path = instanceLockPath(dir);
      const results = await Promise.all(Array.from({ length: 8 }, () => acquireInstanceLock(path)));
      expect(results.filter((r) => r.kind === 'acquired'), `round ${round}`).toHaveLength(1);
    }
  });

  it('runningInstance reads the lock without taking it: a live owner of this boot, else null', async () => {
    const dir = await dataDir();
    const path = instanceLockPath(dir);
    await mkdir(dir, { mode: 0o700 });
    expect(await runningInstance(path)).toBeNull();
    await writeFile(path, JSON.stringify({ pid: process.ppid, bootedAt: bootedAt() }));
    expect(await runningInstance(path)).toBe(process.ppid);
    await writeFile(path, JSON.stringify({ pid: await deadPid(), bootedAt: bootedAt() }));
    expect(await runningInstance(path)).toBeNull();
    await writeFile(path, JSON.stringify({ pid: process.ppid, bootedAt: bootedAt() - 86_400 }));
    expect(await runningInstance(path)).toBeNull();
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.ppid }); // left as it was
  });
});
