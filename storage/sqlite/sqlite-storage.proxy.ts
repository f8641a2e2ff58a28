/**
 * The embedded store off the main thread (issue #15, "Disk syncs off the event loop").
 *
 * The SQLite adapter commits with `synchronous=FULL`: every commit waits for an fsync of the
 * WAL, and better-sqlite3 is synchronous, so on the main thread each commit held the event
 * loop for as long as the disk took (2-5 ms per fsync on a slow disk, 6.8 fsyncs per unlock
 * journey). Here the adapter runs unchanged in a worker thread (`sqlite-storage.worker.ts`);
 * the main thread gets this proxy, which implements the same async port by posting each call
 * to the worker and settling its promise with the worker's answer.
 *
 * The guarantee the journeys rely on is unchanged: a write's promise settles only after the
 * worker's commit returned, i.e. after the fsync, so a journey step's new state and its effects
 * are durable (one `journeys.save`) before the shell carries the effects out. Durability is not
 * traded for the event loop: the same WAL + synchronous=FULL, the same group commit (calls that
 * reach the worker while it is syncing are committed together next), the same single writer.
 *
 * Errors keep their AppError code, message and meta across the boundary (`fromWire`); the
 * driver's own error (`cause`) stays in the worker. `settings()` is read once at open (it does
 * not change while open); `stats()` is the worker's counters as of the latest answer.
 *
 * Loading the worker: from the TypeScript sources (tsx, vitest) the worker is
 * `sqlite-storage.worker.ts` bundled on the fly by esbuild (see `sourceWorker`; the worker thread
 * has no TypeScript loader of its own); from the esbuild bundle (`npm run build`) it is
 * `dist/js/storage/sqlite/sqlite-storage.worker.mjs`, a build entry of its own. When neither is
 * found, the adapter is opened on the main thread and a warning says so.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId, Worker, type WorkerOptions } from 'node:worker_threads';
import type { Logger } from '../../common/logger';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import type { Storage } from '../storage.port';
import type { SqliteSettings, SqliteStats, SqliteStorage, SqliteStorageOptions } from './sqlite-storage.adapter';
import { REPOSITORIES, fromWire, type FromWorker, type ToWorker, type WorkerStart } from './sqlite-storage.wire';

/** Options for {@link openSqliteStorageOffThread}: the adapter's, plus a logger for warnings. */
export type SqliteProxyOptions = Omit<SqliteStorageOptions, 'logger'> & { logger?: Pick<Logger, 'info' | 'warn' | 'error'> };

type Pending = { resolve: (value: unknown) => void; reject: (err: unknown) => void; onUnreadable?: ((key: string, error: StorageError) => void) | undefined };

/** How the worker is started, or null when no worker entry is at hand. */
async function workerLaunch(start: WorkerStart): Promise<Worker | null> {
  const here = import.meta.url;
  // A small young generation: the thread handles one short call at a time; the default (16 MiB semi-spaces)
  // only costs idle memory (issue #15, bot idle RSS).
  const options = { workerData: start, name: 'sqlite-storage', resourceLimits: { maxYoungGenerationSizeMb: 2 } };
  if (here.endsWith('.ts')) return sourceWorker(here, options);
  // The bundle: dist/js/<entry dir or chunks>/<file>.mjs; the worker is dist/js/storage/sqlite/sqlite-storage.worker.mjs.
  let dir = dirname(fileURLToPath(here));
  for (let up = 0; up < 4; up++) {
    for (const candidate of [join(dir, 'sqlite-storage.worker.mjs'), join(dir, 'storage', 'sqlite', 'sqlite-storage.worker.mjs')]) {
      if (existsSync(candidate)) return new Worker(pathToFileURL(candidate), options);
    }
    dir = dirname(dir);
  }
  return null;
}

/**
 * From the TypeScript sources (tsx, vitest), the worker thread has no TypeScript loader. The worker
 * entry is bundled with esbuild (a development dependency, present wherever the sources run) into
 * `node_modules/.cache/smartcard-assist/` (packages stay external and resolve from the project's
 * node_modules), named by a hash of its content so parallel test processes share it safely. Without
 * esbuild, tsx's `tsImport` loads the sources in the thread (slower to start, and a loader thread more).
 */
async function sourceWorker(here: string, options: WorkerOptions): Promise<Worker | null> {
  const entry = fileURLToPath(new URL('./sqlite-storage.worker.ts', here));
  const cacheDir = join(dirname(entry), '..', '..', 'node_modules', '.cache', 'smartcard-assist');
  try {
    const esbuild = await import('esbuild');
    const out = esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', write: false, logLevel: 'silent' });
    const code = out.outputFiles[0]!.contents;
    const file = join(cacheDir, `sqlite-storage.worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    if (!existsSync(file)) {
      mkdirSync(cacheDir, { recursive: true });
      const temp = `${file}.${process.pid}.${threadId}.tmp`;
      writeFileSync(temp, code);
      renameSync(temp, file);
    }
    return new Worker(pathToFileURL(file), options);
  } catch {
    // No esbuild (or no writable cache): tsx's public API loads the sources in the thread.
  }
  const require = createRequire(here);
  let tsxPackage: string;
  try {
    tsxPackage = require.resolve('tsx/package.json');
  } catch {
    return null;
  }
  const api = (JSON.parse(readFileSync(tsxPackage, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> }).exports['./esm/api']?.import?.default;
  if (!api) return null;
  const entryUrl = pathToFileURL(entry).href;
  const apiUrl = pathToFileURL(join(dirname(tsxPackage), api)).href;
  const boot = `import(${JSON.stringify(apiUrl)}).then((tsx) => tsx.tsImport(${JSON.stringify(entryUrl)}, ${JSON.stringify(entryUrl)}));`;
  return new Worker(boot, { ...options, eval: true });
}

/**
 * Open the embedded store in a worker thread and return the port on the main thread.
 *
 * @param options - as {@link SqliteStorageOptions} (`file`, `busyTimeoutMs`, test-only `testSyncDelayMs`);
 *   `logger` gets the adapter's open/migration lines, and a warning if the store had to open on this thread
 * @returns the port plus `settings()` / `stats()`, once the store is open and migrated
 * @throws StorageError `STORAGE.UNAVAILABLE` (file cannot be opened, worker failed to start) or
 *   `STORAGE.SCHEMA_TOO_NEW`, as the adapter throws them
 */
export async function openSqliteStorageOffThread(options: SqliteProxyOptions): Promise<SqliteStorage> {
  const start: WorkerStart = { file: options.file, ...(options.busyTimeoutMs !== undefined ? { busyTimeoutMs: options.busyTimeoutMs } : {}), ...(options.testSyncDelayMs !== undefined ? { testSyncDelayMs: options.testSyncDelayMs } : {}) };
  const worker = await workerLaunch(start);
  if (!worker) {
    options.logger?.warn({ file: options.file }, 'storage: no worker entry found (sqlite-storage.worker), the embedded store runs on the main thread; commits hold the event loop');
    const { openSqliteStorage } = await import('./sqlite-storage.adapter');
    return openSqliteStorage({ ...start, ...(options.logger ? { logger: options.logger } : {}) });
  }
  return SqliteStorageProxy.open(worker, options.logger);
}

class SqliteStorageProxy {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private latest: SqliteStats = { writes: 0, commits: 0 };
  /** Why calls are refused: set on close or when the worker died. */
  private down: string | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly fixed: SqliteSettings,
    private readonly logger: Pick<Logger, 'info' | 'warn' | 'error'> | undefined,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.fail(`the storage worker failed (${err.message})`));
    worker.on('exit', (code) => this.fail(`the storage worker exited (code ${code})`));
    worker.unref();
  }

  /** Wait for the worker's `ready` (or its refusal) and build the port. */
  static open(worker: Worker, logger: Pick<Logger, 'info' | 'warn' | 'error'> | undefined): Promise<SqliteStorage> {
    return new Promise<SqliteStorage>((resolve, reject) => {
      const onLog = (m: FromWorker): void => {
        if (m.t === 'log') logger?.info(m.obj, m.msg);
        else if (m.t === 'open_failed') {
          cleanup();
          reject(fromWire(m.error));
        } else if (m.t === 'ready') {
          cleanup();
          resolve(new SqliteStorageProxy(worker, m.settings, logger).port());
        }
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new StorageError(STORAGE_ERROR.UNAVAILABLE, `open: the storage worker failed to start (${err.message})`, { cause: err, meta: { operation: 'open' } }));
      };
      const onExit = (code: number): void => onError(new Error(`exit code ${code}`));
      const cleanup = (): void => {
        worker.off('message', onLog);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onLog);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /** The port: one forwarding object per repository (every method the worker's adapter has). */
  private port(): SqliteStorage {
    const repositories = Object.fromEntries(
      Object.keys(REPOSITORIES).map((repo) => [
        repo,
        new Proxy(
          {},
          {
            // Not a thenable: `then` is no method of a repository.
            get: (_target, method) => (typeof method === 'string' && method !== 'then' ? (...args: unknown[]) => this.call(`${repo}.${method}`, args) : undefined),
          },
        ),
      ]),
    ) as unknown as Omit<Storage, 'ping' | 'close'>;
    return {
      ...repositories,
      ping: () => this.call('ping', []) as Promise<void>,
      close: () => this.close(),
      settings: () => {
        if (this.down !== null) throw new StorageError(STORAGE_ERROR.UNAVAILABLE, 'settings: storage is closed', { meta: { operation: 'settings' } });
        return { ...this.fixed };
      },
      stats: () => ({ ...this.latest }),
    };
  }

  private call(op: string, args: unknown[]): Promise<unknown> {
    if (this.down !== null) return Promise.reject(new StorageError(STORAGE_ERROR.UNAVAILABLE, `${op}: ${this.down}`, { meta: { operation: op } }));
    // An options object with a callback cannot cross threads: listWithPendingEffects' onUnreadable is called here.
    let onUnreadable: Pending['onUnreadable'];
    if (op === 'journeys.listWithPendingEffects') {
      onUnreadable = (args[1] as { onUnreadable?: Pending['onUnreadable'] } | undefined)?.onUnreadable;
      args = [args[0]];
    }
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onUnreadable });
      if (this.pending.size === 1) this.worker.ref();
      try {
        this.worker.postMessage({ t: 'call', id, op, args } satisfies ToWorker);
      } catch (err) {
        // Not cloneable (a function or class instance in the arguments): refused as the adapter refuses bad input.
        this.settle(id);
        reject(new StorageError(STORAGE_ERROR.INVALID_RECORD, `${op}: the arguments cannot be stored (${(err as Error).name})`, { meta: { operation: op } }));
      }
    });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    return p;
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'log') {
      this.logger?.info(m.obj, m.msg);
      return;
    }
    if (m.t !== 'done') return;
    this.latest = m.stats;
    const p = this.settle(m.id);
    if (!p) return;
    if (m.ok) {
      for (const u of m.unreadable ?? []) p.onUnreadable?.(u.key, fromWire(u.error) as StorageError);
      p.resolve(m.value);
    } else p.reject(fromWire(m.error));
  }

  /** The worker is gone: every call in flight and every later one is refused as UNAVAILABLE. */
  private fail(why: string): void {
    if (this.down === null) {
      this.down = why;
      this.logger?.error({ reason: why }, 'storage: the embedded store worker stopped; storage calls fail until restart');
    }
    for (const [id, p] of [...this.pending]) {
      this.settle(id);
      p.reject(new StorageError(STORAGE_ERROR.UNAVAILABLE, `storage: ${why}`, { meta: { operation: 'storage' } }));
    }
  }

  private close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.down !== null) return;
      const id = this.nextId++;
      // Calls already posted are answered first (the worker takes messages in order); the close commits what is queued.
      const closed = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
      this.worker.ref();
      this.worker.postMessage({ t: 'close', id } satisfies ToWorker);
      try {
        await closed;
      } finally {
        this.down = 'storage is closed';
        await this.worker.terminate().catch(() => undefined);
      }
    })();
    return this.closing;
  }
}
