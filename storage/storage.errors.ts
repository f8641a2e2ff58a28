/**
 * Errors raised by storage adapters.
 *
 * Messages name the operation, the field or constraint and what is wrong,
 * never a stored or offered value (values may be hashes, sealed secrets or
 * personal data).
 */
import { AppError } from '../common/app-error';

/** Storage error codes (namespace `STORAGE`). */
export const STORAGE_ERROR = {
  /** The store cannot be reached, opened, written (disk full, read-only, busy past the timeout) or is closed. */
  UNAVAILABLE: 'STORAGE.UNAVAILABLE',
  /** A record handed to the port breaks its contract (type, format, plaintext where a sealed value belongs). */
  INVALID_RECORD: 'STORAGE.INVALID_RECORD',
  /** A `save` would give a unique field (teamsUserId, cardId, pairing hash, case sourceId) a value another record holds. */
  UNIQUE_VIOLATION: 'STORAGE.UNIQUE_VIOLATION',
  /** A stored record cannot be read back (damaged JSON column, failed integrity). */
  CORRUPT_RECORD: 'STORAGE.CORRUPT_RECORD',
  /** The store was written by a newer release with a schema this one does not know. */
  SCHEMA_TOO_NEW: 'STORAGE.SCHEMA_TOO_NEW',
  /** Anything else the database refused. */
  QUERY_FAILED: 'STORAGE.QUERY_FAILED',
} as const;

export type StorageErrorCode = (typeof STORAGE_ERROR)[keyof typeof STORAGE_ERROR];

/** Error raised by a storage adapter; `code` is one of {@link STORAGE_ERROR}, `meta.operation` names the call (`persons.insert`). */
export class StorageError extends AppError {
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown; meta?: Record<string, string | number | boolean | null> }) {
    super(code, message, options);
  }
}
