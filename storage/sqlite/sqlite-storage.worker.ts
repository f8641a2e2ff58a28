/**
 * The embedded store's worker thread: runs the SQLite adapter (`sqlite-storage.adapter.ts`)
 * off the main thread, so its commits (an fsync each under synchronous=FULL) hold this
 * thread, never the bot's event loop. Started by `sqlite-storage.proxy.ts`; not an entry
 * point of its own.
 *
 * Messages are the proxy's {@link ToWorker} calls, answered in arrival order with
 * {@link FromWorker} results. Calls that arrive while a commit is under way queue in the
 * message port and are run in the next turn of this thread's loop, so the adapter's group
 * commit takes all their writes in one transaction.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AppError } from '../../common/app-error';
import { STORAGE_ERROR } from '../storage.errors';
import type { Storage } from '../storage.port';
import { openSqliteStorage, type SqliteStorage, type SqliteStorageOptions } from './sqlite-storage.adapter';
import { REPOSITORIES, toWire, type FromWorker, type ToWorker, type WireError, type WorkerStart } from './sqlite-storage.wire';

function main(): void {
  const port = parentPort;
  if (!port) throw new Error('sqlite-storage.worker runs only as a worker thread');
  const post = (m: FromWorker): void => port.postMessage(m);
  const start = workerData as WorkerStart;
  let storage: SqliteStorage;
  try {
    storage = openSqliteStorage({ ...start, logger: { info: (obj: Record<string, unknown>, msg?: string) => post({ t: 'log', msg: msg ?? '', obj }) } as SqliteStorageOptions['logger'] });
  } catch (err) {
    post({ t: 'open_failed', error: toWire(err, 'open') });
    port.close();
    return;
  }
  post({ t: 'ready', settings: storage.settings() });

  const call = (op: string, args: unknown[]): { value: Promise<unknown>; unreadable?: Array<{ key: string; error: WireError }> } => {
    if (op === 'ping') return { value: storage.ping() };
    const [repo, method, extra] = op.split('.');
    const target = repo !== undefined && Object.hasOwn(REPOSITORIES, repo) ? (storage[repo as keyof typeof REPOSITORIES] as unknown as Record<string, unknown>) : undefined;
    const fn = target && method !== undefined && extra === undefined && Object.hasOwn(target, method) ? target[method] : undefined;
    if (typeof fn !== 'function') return { value: Promise.reject(new AppError(STORAGE_ERROR.QUERY_FAILED, `${op}: not a storage operation`, { meta: { operation: op } })) };
    if (op === 'journeys.listWithPendingEffects') {
      // The caller's onUnreadable cannot cross threads: report the keys back with the result.
      const unreadable: Array<{ key: string; error: WireError }> = [];
      const value = (fn as Storage['journeys']['listWithPendingEffects'])(args[0] as number, { onUnreadable: (key, error) => unreadable.push({ key, error: toWire(error, op) }) });
      return { value, unreadable };
    }
    return { value: Promise.resolve().then(() => (fn as (...a: unknown[]) => unknown).apply(target, args)) };
  };

  /** Calls whose answer is not posted yet. */
  const inFlight = new Set<Promise<void>>();
  port.on('message', (m: ToWorker) => {
    if (m.t === 'close') {
      // Close commits the queued writes; every call before it is answered first, then the close (the
      // proxy ends the thread once it has this answer, so nothing may come after it).
      const closing = storage.close();
      void Promise.allSettled([closing, ...inFlight]).then(() =>
        closing.then(
          () => post({ t: 'done', id: m.id, ok: true, value: undefined, stats: storage.stats() }),
          (err: unknown) => post({ t: 'done', id: m.id, ok: false, error: toWire(err, 'close'), stats: storage.stats() }),
        ),
      );
      return;
    }
    const { value, unreadable } = call(m.op, m.args);
    const answered = value
      .then(
        (v) => post({ t: 'done', id: m.id, ok: true, value: v, stats: storage.stats(), ...(unreadable && unreadable.length > 0 ? { unreadable } : {}) }),
        (err: unknown) => post({ t: 'done', id: m.id, ok: false, error: toWire(err, m.op), stats: storage.stats() }),
      )
      // An answer that cannot be posted (e.g. a value the structured clone refuses) fails that call
      // alone; an unhandled rejection here would end the thread and every later call with it.
      .catch((err: unknown) => post({ t: 'done', id: m.id, ok: false, error: toWire(err, m.op), stats: storage.stats() }));
    inFlight.add(answered);
    void answered.finally(() => inFlight.delete(answered));
  });
}

main();
