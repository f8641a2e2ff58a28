/**
 * Turning what the MongoDB driver throws into storage errors.
 *
 * Messages name the operation and, for a duplicate key, the port field; never a
 * stored or offered value. MongoDB's own duplicate-key message quotes the
 * clashing value, so a server error is never attached as `cause` as it is:
 * only its name, code and code name are kept.
 */
import {
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerClosedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import { STORAGE_ERROR, StorageError } from '../storage.errors';

/** Server error codes the adapter reacts to (MongoDB `src/mongo/base/error_codes.yml`). */
export const MONGO_CODE = {
  DUPLICATE_KEY: 11000,
  INTERNAL_ERROR: 1,
  NOT_IMPLEMENTED: 238,
  NAMESPACE_EXISTS: 48,
  NAMESPACE_NOT_FOUND: 26,
  INDEX_OPTIONS_CONFLICT: 85,
  INDEX_KEY_SPECS_CONFLICT: 86,
} as const;

/**
 * Codes meaning "the server cannot serve this now, try again": shutting down,
 * stepping down, unreachable, timed out, throttled (Cosmos DB's 16500).
 */
const TRANSIENT_CODES: ReadonlySet<number> = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  50, // MaxTimeMSExpired
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  16500, // Cosmos DB: request rate too large
]);

/**
 * True for a unique-index refusal: E11000 from MongoDB (any write), or, from
 * FerretDB v1 on its SQLite backend, an InternalError (code 1) whose message
 * says `UNIQUE constraint failed` (what it answers when an update or replace
 * collides; its inserts answer E11000).
 */
export function isDuplicateKey(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false;
  if (Number(err.code) === MONGO_CODE.DUPLICATE_KEY) return true;
  return Number(err.code) === MONGO_CODE.INTERNAL_ERROR && /UNIQUE constraint failed/.test(err.message);
}

/**
 * Node socket errors the driver (mongodb 7.9) can let through unwrapped, e.g. `EPIPE` ("This socket has
 * been ended by the other party") when it writes a command to a connection the server closed as it died.
 */
const SOCKET_ERRNOS: ReadonlySet<string> = new Set(['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** True when the error means the server could not be reached or could not serve now. */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof MongoError) && err instanceof Error && SOCKET_ERRNOS.has(String((err as NodeJS.ErrnoException).code))) return true;
  if (
    err instanceof MongoNetworkError ||
    err instanceof MongoServerSelectionError ||
    err instanceof MongoTopologyClosedError ||
    err instanceof MongoNotConnectedError ||
    err instanceof MongoServerClosedError
  ) {
    return true;
  }
  if (err instanceof MongoError) {
    if (err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('ResetPool') || err.hasErrorLabel('TransientTransactionError')) return true;
    if (typeof err.code === 'number' && TRANSIENT_CODES.has(err.code)) return true;
    // FerretDB on SQLite: its backend stayed locked past its own busy timeout.
    if (Number(err.code) === MONGO_CODE.INTERNAL_ERROR && /database is locked|SQLITE_BUSY/.test(err.message)) return true;
    // The pool was cleared after a network error: MongoPoolClearedError names itself.
    if (err.name === 'MongoPoolClearedError' || err.name === 'PoolClosedError') return true;
  }
  return false;
}

/** A cause safe to keep: the driver error's class, code and code name, without its message. */
function safeCause(err: unknown): Error {
  if (err instanceof MongoServerError) {
    const detail = [err.code !== undefined ? `code ${String(err.code)}` : '', err.codeName ?? ''].filter(Boolean).join(' ');
    const cause = new Error(`${err.name}${detail ? ` (${detail})` : ''}`);
    cause.name = err.name;
    return cause;
  }
  if (err instanceof Error) return err;
  return new Error(String(err));
}

/**
 * Wrap a driver error as a StorageError.
 *
 * @param operation - `repository.method`, for the message and `meta.operation`
 * @param err - what the driver (or our own code) threw
 * @param field - the port field a duplicate key clashed on, when the caller found it (`cardId`)
 * @returns `STORAGE.UNAVAILABLE` for network, selection, shutdown and throttling errors;
 *   `STORAGE.UNIQUE_VIOLATION` for a duplicate key; `STORAGE.QUERY_FAILED` otherwise.
 *   A StorageError passes through unchanged.
 */
export function toStorageError(operation: string, err: unknown, field?: string): StorageError {
  if (err instanceof StorageError) return err;
  const mongoCode = err instanceof MongoError && typeof err.code === 'number' ? err.code : null;
  if (isDuplicateKey(err)) {
    return new StorageError(STORAGE_ERROR.UNIQUE_VIOLATION, `${operation}: another record already has this ${field ?? 'unique field'}`, {
      cause: safeCause(err),
      meta: { operation, field: field ?? null, mongoCode },
    });
  }
  if (err instanceof MongoTopologyClosedError || err instanceof MongoNotConnectedError) {
    return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: storage is closed`, { cause: safeCause(err), meta: { operation, mongoCode } });
  }
  if (isUnavailable(err)) {
    return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the MongoDB server cannot be reached or cannot serve now (${err instanceof Error ? err.name : 'error'})`, {
      cause: safeCause(err),
      meta: { operation, mongoCode },
    });
  }
  const name = err instanceof Error ? err.name : 'error';
  return new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: the MongoDB server refused the request (${name}${mongoCode !== null ? ` code ${mongoCode}` : ''})`, {
    cause: safeCause(err),
    meta: { operation, mongoCode },
  });
}
