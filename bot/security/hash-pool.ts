/**
 * Hash pool: scrypt (RFC 7914) on a fixed set of worker threads, sized to the
 * cores, instead of the libuv thread pool (issue #15).
 *
 * Why: `crypto.scrypt` runs on the libuv pool (4 threads by default), the same
 * threads that carry out file-system work (the mail outbox, the SQLite file),
 * `dns.lookup` and zlib. Fifty people answering questions at once queued 146
 * hashes there, and the unlock-code email waited seconds behind them. Here each
 * worker runs `scryptSync` in its own thread, one job at a time; jobs beyond
 * the pool size wait in this pool's own FIFO queue, so libuv stays free.
 *
 * Built on `node:worker_threads` rather than `piscina`: piscina loads its task
 * handler from a file path, and neither the vitest module runner (TypeScript
 * sources) nor the esbuild single-file bundle (`npm run build`) gives a worker a
 * loadable file; the worker here is a short CommonJS source evaluated in the
 * thread (`eval: true`), which works under tsx, vitest and the bundle alike.
 *
 * Lifecycle: workers start on demand, hold the process open only while they have
 * a job (`ref` while busy, `unref` while idle), and exit after
 * {@link HASH_POOL_DEFAULTS.idleMs} without work, so an idle bot carries no hash threads.
 * A worker that dies fails its one job (`CRYPTO.HASH_FAILED`) and is replaced for the next.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SECURITY_ERROR, SecurityError } from './security.errors';

/** Defaults; the size follows `os.availableParallelism()` (the cores this process may use). */
export const HASH_POOL_DEFAULTS = {
  /** A worker with no job for this long exits, milliseconds. */
  idleMs: 60_000,
} as const;

/** One scrypt job; `password` is a secret and never logged or put in an error. */
export interface ScryptJob {
  password: string;
  salt: Buffer;
  /** Output length, bytes. */
  keylen: number;
  /** scrypt cost: N (a power of two), r, p. */
  params: { N: number; r: number; p: number };
}

/** The derived key and the worker thread that computed it (`threadId` is never 0, the main thread). */
export interface ScryptOutcome {
  key: Buffer;
  threadId: number;
}

/** Counters for the benchmark and health reporting. */
export interface HashPoolStats {
  /** Most worker threads the pool runs at once. */
  size: number;
  /** Worker threads running now. */
  threads: number;
  /** Jobs running now. */
  busy: number;
  /** Jobs waiting for a worker. */
  queued: number;
  /** Jobs finished (either way) since the pool was created. */
  completed: number;
}

export interface HashPoolOptions {
  /** Most worker threads; defaults to `os.availableParallelism()`. Must be an integer from 1 to 64. */
  size?: number;
  /** Idle time before a worker exits, milliseconds; defaults to {@link HASH_POOL_DEFAULTS.idleMs}. */
  idleMs?: number;
}

/**
 * The worker: CommonJS, evaluated in the thread. Replies carry the job id and this thread's id.
 * It lowers its own scheduling priority (nice +10): on Linux `setpriority(PRIO_PROCESS, 0)` applies
 * to the calling thread only (setpriority(2), "Bugs"), so the bot's main thread, which answers turns
 * and `/healthz`, wins a core over hashing when both are runnable. Elsewhere the call may apply to the
 * whole process or fail; a failure is ignored (hashing still works, at normal priority).
 */
const WORKER_SOURCE = `
const { parentPort, threadId } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
if (process.platform === 'linux') { try { require('node:os').setPriority(0, 10); } catch {} }
parentPort.on('message', (m) => {
  try {
    const key = scryptSync(m.password, m.salt, m.keylen, { N: m.N, r: m.r, p: m.p, maxmem: m.maxmem });
    parentPort.postMessage({ id: m.id, ok: true, key, threadId });
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, code: String((err && err.code) || 'ERR'), threadId });
  }
});
`;

type Reply = { id: number; ok: true; key: Uint8Array; threadId: number } | { id: number; ok: false; code: string; threadId: number };

interface Job {
  id: number;
  job: ScryptJob;
  resolve: (outcome: ScryptOutcome) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  current: Job | null;
  idleTimer: NodeJS.Timeout | null;
}

function hashFailed(job: ScryptJob, detail: string, cause?: unknown): SecurityError {
  return new SecurityError(SECURITY_ERROR.HASH_FAILED, `scrypt failed (${detail})`, {
    ...(cause !== undefined ? { cause } : {}),
    meta: { N: job.params.N, r: job.params.r, p: job.params.p },
  });
}

/** A pool of scrypt worker threads; see the module comment. */
export class HashPool {
  readonly size: number;
  private readonly idleMs: number;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private completed = 0;
  private closed = false;

  /**
   * @param options - see {@link HashPoolOptions}
   * @throws RangeError when `size` is not an integer from 1 to 64
   */
  constructor(options: HashPoolOptions = {}) {
    const size = options.size ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1 || size > 64) throw new RangeError(`hash pool size must be an integer from 1 to 64 (got ${String(size)})`);
    this.size = size;
    this.idleMs = options.idleMs ?? HASH_POOL_DEFAULTS.idleMs;
  }

  /**
   * Run scrypt on a worker thread.
   *
   * @param job - password, salt, output length (bytes) and cost; `maxmem` is set to fit the cost (256·N·r bytes plus 1 MiB; scrypt needs 128·N·r)
   * @returns the key and the id of the worker thread that derived it
   * @throws SecurityError `CRYPTO.HASH_FAILED` when scrypt refuses the parameters, the worker dies, or the pool is closed
   */
  scrypt(job: ScryptJob): Promise<ScryptOutcome> {
    if (this.closed) return Promise.reject(hashFailed(job, 'the hash pool is closed'));
    return new Promise<ScryptOutcome>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, job, resolve, reject });
      this.dispatch();
    });
  }

  /** Current counters (see {@link HashPoolStats}). */
  stats(): HashPoolStats {
    let busy = 0;
    for (const s of this.slots) if (s.current) busy++;
    return { size: this.size, threads: this.slots.size, busy, queued: this.queue.length, completed: this.completed };
  }

  /** Stop every worker; running and queued jobs fail with `CRYPTO.HASH_FAILED`. Later jobs are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(hashFailed(j.job, 'the hash pool is closed'));
    await Promise.all([...this.slots].map((s) => this.retire(s, 'the hash pool is closed')));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = [...this.slots].find((s) => s.current === null);
      if (!slot) {
        if (this.slots.size >= this.size) return;
        slot = this.spawn();
      }
      this.start(slot, this.queue.shift()!);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'hash-pool' });
    const slot: Slot = { worker, current: null, idleTimer: null };
    this.slots.add(slot);
    worker.on('message', (reply: Reply) => this.finish(slot, reply));
    worker.on('error', (err) => void this.retire(slot, 'the hash worker failed', err));
    worker.on('exit', () => void this.retire(slot, 'the hash worker exited'));
    return slot;
  }

  private start(slot: Slot, job: Job): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    slot.current = job;
    slot.worker.ref();
    const { password, salt, keylen, params } = job.job;
    slot.worker.postMessage({ id: job.id, password, salt, keylen, N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 });
  }

  private finish(slot: Slot, reply: Reply): void {
    const job = slot.current;
    if (!job || job.id !== reply.id) return;
    slot.current = null;
    this.completed++;
    if (reply.ok) job.resolve({ key: Buffer.from(reply.key.buffer, reply.key.byteOffset, reply.key.byteLength), threadId: reply.threadId });
    else job.reject(hashFailed(job.job, reply.code));
    if (this.queue.length > 0) {
      this.start(slot, this.queue.shift()!);
      return;
    }
    slot.worker.unref();
    slot.idleTimer = setTimeout(() => void this.retire(slot, 'idle'), this.idleMs);
    slot.idleTimer.unref();
  }

  /** Remove a worker (idle, dead or closing); fail its job if it had one; start a replacement for queued work. */
  private async retire(slot: Slot, why: string, cause?: unknown): Promise<void> {
    if (!this.slots.delete(slot)) return;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    const job = slot.current;
    slot.current = null;
    if (job) {
      this.completed++;
      job.reject(hashFailed(job.job, why, cause));
    }
    if (!this.closed) this.dispatch();
    await slot.worker.terminate().catch(() => undefined);
  }
}

let shared: HashPool | null = null;

/**
 * The process-wide pool the answer helpers use, created on first use with {@link HashPoolOptions} defaults.
 *
 * @returns the shared {@link HashPool}
 */
export function sharedHashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
