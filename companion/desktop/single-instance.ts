/**
 * One companion per user session (issue #13 "Lifecycle"): a lock file in the
 * companion's per-user data directory (`<dataDir>/companion.lock`, 0600 in the
 * 0700 directory) names the running companion's process id and when the
 * computer started. A second start finds the lock held and, instead of
 * running, asks the first one to show itself over the control socket
 * (`passcode-page/page-link.control.ts`, request `show`), then exits 0.
 *
 * A lock is stale, and taken over, when its process is gone, when it was
 * written before the computer last started (a process id from before a restart
 * may belong to anything now), or when it cannot be read as a lock. Taking
 * over happens under a second, short-lived guard file and only while the lock
 * still reads as the stale one, so two starts racing for a stale lock cannot
 * both win.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

/** File name of the lock inside the companion's data directory. */
const LOCK_FILE = 'companion.lock' as const;

/** Two boot times within this many seconds are the same boot (the clock and uptime drift apart a little). */
const SAME_BOOT_TOLERANCE_S = 120;

const LockSchema = z.object({ pid: z.number().int().positive(), bootedAt: z.number().int().nonnegative() });

/** A lock this process holds. */
export interface InstanceLock {
  /** Path of the lock file. */
  readonly path: string;
  /** Remove the lock file when it is still this process's (idempotent). */
  release(): Promise<void>;
}

/** What {@link acquireInstanceLock} found. */
export type InstanceLockOutcome =
  /** This process is the companion of this user session now. */
  | { kind: 'acquired'; lock: InstanceLock; tookOverFromPid: number | null }
  /** Another companion runs for this data directory: its process id. */
  | { kind: 'running'; pid: number };

/**
 * Path of the lock file for a data directory.
 *
 * @param dataDir - the companion's data directory (absolute)
 * @returns `<dataDir>/companion.lock`
 */
export function instanceLockPath(dataDir: string): string {
  return join(dataDir, LOCK_FILE);
}

/** When this computer started, in whole seconds since the epoch (from the uptime). */
function bootedAt(): number {
  return Math.round(Date.now() / 1000 - uptime());
}

/** True when a process with this id exists (EPERM: it exists but belongs to another user). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take the companion's single-instance lock, taking over a stale one.
 *
 * @param lockPath - see {@link instanceLockPath}; its directory is created 0700 when missing
 * @returns `acquired` (with the pid of a stale lock's dead owner, or null) or `running` with the
 *   live owner's process id
 * @throws NodeJS.ErrnoException when the lock file cannot be created or read for another reason
 *   than it existing (e.g. EACCES on the data directory)
 */
export async function acquireInstanceLock(lockPath: string): Promise<InstanceLockOutcome> {
  await mkdir(join(lockPath, '..'), { recursive: true, mode: 0o700 });
  let tookOverFromPid: number | null = null;
  for (let attempt = 0; attempt < 20; attempt++) {
    // The lock appears with its content in one step (written to a private file, then hard-linked
    // into place; link(2) fails with EEXIST when the lock exists): a racer never reads an empty lock
    // and takes it for a stale one.
    const draft = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(draft, `${JSON.stringify({ pid: process.pid, bootedAt: bootedAt() })}\n`, { mode: 0o600, flag: 'wx' });
      await link(draft, lockPath);
      return { kind: 'acquired', lock: heldLock(lockPath), tookOverFromPid };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(draft, { force: true });
    }
    let text: string;
    try {
      text = await readFile(lockPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
      throw err;
    }
    const parsed = safeJson(text);
    const owner = parsed.success ? parsed.data : null;
    const live = owner !== null && Math.abs(owner.bootedAt - bootedAt()) <= SAME_BOOT_TOLERANCE_S && processExists(owner.pid);
    if (live) return { kind: 'running', pid: owner.pid };
    // Stale. Only the holder of the take-over guard removes it, and only while it still reads the
    // same: a racer that read the same stale lock must not remove the new owner's fresh one.
    if (await removeStale(lockPath, text)) tookOverFromPid = owner?.pid ?? null;
  }
  // Twenty rounds lost to other starts: one of them holds it now.
  const text = await readFile(lockPath, 'utf8').catch(() => '');
  const parsed = safeJson(text);
  return { kind: 'running', pid: parsed.success ? parsed.data.pid : 0 };
}

/** A take-over guard older than this was left by a start that died mid-take-over, ms. */
const GUARD_STALE_MS = 10_000;

/** Remove the stale lock when it still holds `staleText`, under the take-over guard; true when removed. */
async function removeStale(lockPath: string, staleText: string): Promise<boolean> {
  const guard = `${lockPath}.takeover`;
  try {
    await (await open(guard, 'wx', 0o600)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const age = await stat(guard).then((s) => Date.now() - s.mtimeMs).catch(() => 0);
    if (age > GUARD_STALE_MS) await rm(guard, { force: true });
    await new Promise((r) => setTimeout(r, 25));
    return false;
  }
  try {
    const now = await readFile(lockPath, 'utf8').catch(() => null);
    if (now !== staleText) return false;
    await rm(lockPath, { force: true });
    return true;
  } finally {
    await rm(guard, { force: true });
  }
}

/**
 * The process id of the companion running for this lock now, without taking the lock (`--unpair`).
 *
 * @param lockPath - see {@link instanceLockPath}
 * @returns its process id, or null when no live companion holds the lock
 */
export async function runningInstance(lockPath: string): Promise<number | null> {
  const text = await readFile(lockPath, 'utf8').catch(() => null);
  if (text === null) return null;
  const parsed = safeJson(text);
  if (!parsed.success) return null;
  const owner = parsed.data;
  return Math.abs(owner.bootedAt - bootedAt()) <= SAME_BOOT_TOLERANCE_S && processExists(owner.pid) ? owner.pid : null;
}

function safeJson(text: string): ReturnType<typeof LockSchema.safeParse> {
  try {
    return LockSchema.safeParse(JSON.parse(text));
  } catch {
    return LockSchema.safeParse(null);
  }
}

function heldLock(path: string): InstanceLock {
  let released = false;
  return {
    path,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      const text = await readFile(path, 'utf8').catch(() => '');
      const parsed = safeJson(text);
      // Only our own lock: a later companion may have taken over a lock it found stale.
      if (parsed.success && parsed.data.pid === process.pid) await rm(path, { force: true });
    },
  };
}
