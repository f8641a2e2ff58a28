/**
 * What crosses the thread boundary between the embedded store's worker
 * (`sqlite-storage.worker.ts`) and its proxy on the main thread (`sqlite-storage.proxy.ts`):
 * the start data, the messages, and errors reduced to their AppError code, message and meta.
 */
import { AppError } from '../../common/app-error';
import { STORAGE_ERROR, StorageError, type StorageErrorCode } from '../storage.errors';
import type { Storage } from '../storage.port';
import type { SqliteSettings, SqliteStats, SqliteStorageOptions } from './sqlite-storage.adapter';

/** What the proxy hands the worker at start (`workerData`). */
export type WorkerStart = Pick<SqliteStorageOptions, 'file' | 'busyTimeoutMs' | 'testSyncDelayMs'>;

/** An error as it crosses the thread boundary: the AppError's code, message and meta (no cause, no values). */
export interface WireError {
  name: string;
  code: string;
  message: string;
  meta: Record<string, string | number | boolean | null>;
}

/** Main thread -> worker. `op` is `<repository>.<method>` of the port, or `ping`. */
export type ToWorker = { t: 'call'; id: number; op: string; args: unknown[] } | { t: 'close'; id: number };

/** Worker -> main thread. */
export type FromWorker =
  | { t: 'ready'; settings: SqliteSettings }
  | { t: 'open_failed'; error: WireError }
  | { t: 'log'; msg: string; obj: Record<string, unknown> }
  | { t: 'done'; id: number; ok: true; value: unknown; stats: SqliteStats; unreadable?: Array<{ key: string; error: WireError }> }
  | { t: 'done'; id: number; ok: false; error: WireError; stats: SqliteStats };

/** The port's repositories, each a plain object of methods (the worker calls only these). */
export const REPOSITORIES = {
  persons: true,
  cards: true,
  journeys: true,
  devices: true,
  pairings: true,
  cases: true,
  audit: true,
  conversations: true,
  rateHits: true,
} as const satisfies Record<Exclude<keyof Storage, 'ping' | 'close'>, true>;

/**
 * An error as the proxy rebuilds it: any AppError keeps its code, message and meta.
 *
 * @param operation - the call it came from, named in the fallback message
 */
export function toWire(err: unknown, operation: string): WireError {
  if (err instanceof AppError) return { name: err.name, code: err.code, message: err.message, meta: { ...err.meta } };
  return { name: 'StorageError', code: STORAGE_ERROR.QUERY_FAILED, message: `${operation}: unexpected storage failure`, meta: { operation } };
}

/**
 * Rebuild an error that crossed from the worker: a `STORAGE.*` code becomes a {@link StorageError},
 * any other code an {@link AppError}, with the same code, message and meta (the driver's cause stays behind).
 *
 * @param wire - the error as {@link toWire} sent it
 * @returns the error to throw on the main thread
 */
export function fromWire(wire: WireError): AppError {
  const options = { meta: wire.meta };
  return (Object.values(STORAGE_ERROR) as string[]).includes(wire.code) ? new StorageError(wire.code as StorageErrorCode, wire.message, options) : new AppError(wire.code, wire.message, options);
}
