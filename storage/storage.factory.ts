/**
 * Opens the configured storage adapter. The composition root calls this once.
 */
import { AppError } from '../common/app-error';
import type { Logger } from '../common/logger';
import type { Storage } from './storage.port';
import { openSqliteStorage } from './sqlite/sqlite-storage.adapter';

/** Embedded store: one SQLite file. */
export interface SqliteStorageConfig {
  kind: 'sqlite';
  /** Database file path, e.g. `data/smartcard-assist.db`. */
  file: string;
  /** Optional wait for another writer's lock, ms (default 5000). */
  busyTimeoutMs?: number;
}

/**
 * Which store to open, keyed on `kind`. A union so that further adapters
 * (MongoDB: `{ kind: 'mongodb'; url; database }`) join without changing callers.
 */
export type StorageConfig = SqliteStorageConfig;

/**
 * Open the store named by the configuration and check it answers.
 *
 * @param config - `{ kind: 'sqlite', file }`
 * @param logger - passed to the adapter (opening, migrations; never record values)
 * @returns the storage port, ready (pinged)
 * @throws StorageError `STORAGE.UNAVAILABLE` / `STORAGE.SCHEMA_TOO_NEW` when it cannot be opened;
 *   AppError `CONFIG.STORAGE_KIND_UNKNOWN` for an unknown kind
 */
export async function openStorage(config: StorageConfig, logger?: Logger): Promise<Storage> {
  switch (config.kind) {
    case 'sqlite': {
      const storage = openSqliteStorage({ file: config.file, ...(logger ? { logger } : {}), ...(config.busyTimeoutMs !== undefined ? { busyTimeoutMs: config.busyTimeoutMs } : {}) });
      await storage.ping();
      return storage;
    }
    default: {
      const unknownKind: never = config.kind;
      throw new AppError('CONFIG.STORAGE_KIND_UNKNOWN', `unknown storage kind ${JSON.stringify(unknownKind)}: expected "sqlite"`);
    }
  }
}
