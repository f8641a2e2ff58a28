/**
 * Opens the configured storage adapter. The composition root calls this once.
 */
import { AppError } from '../common/app-error';
import type { Logger } from '../common/logger';
import type { Storage } from './storage.port';
import { openSqliteStorageOffThread } from './sqlite/sqlite-storage.proxy';

/** Embedded store: one SQLite file. */
export interface SqliteStorageConfig {
  kind: 'sqlite';
  /** Database file path, e.g. `data/smartcard-assist.db`. */
  file: string;
  /** Optional wait for another writer's lock, ms (default 5000). */
  busyTimeoutMs?: number;
  /** TEST AND BENCHMARK ONLY: slow-disk stand-in, ms held after each commit (see `SqliteStorageOptions.testSyncDelayMs`). */
  testSyncDelayMs?: number;
}

/** MongoDB, Atlas, Cosmos DB for MongoDB or FerretDB: several bot instances over one database. */
export interface MongoStorageConfig {
  kind: 'mongodb';
  /** `mongodb://...` or `mongodb+srv://...` (may hold credentials: never logged). */
  url: string;
  /** Database name; default: the URL's path, else `smartcard_assist`. */
  database?: string;
  /** How long a call waits for a reachable server before `STORAGE.UNAVAILABLE`, ms (default 5000). */
  serverSelectionTimeoutMS?: number;
}

/**
 * Which store to open, keyed on `kind`. A union so that further adapters
 * join without changing callers.
 */
export type StorageConfig = SqliteStorageConfig | MongoStorageConfig;

/**
 * Open the store named by the configuration and check it answers.
 *
 * @param config - `{ kind: 'sqlite', file }` or `{ kind: 'mongodb', url, database? }`
 * @param logger - passed to the adapter (opening, migrations; never record values)
 * @returns the storage port, ready (pinged)
 * @throws StorageError `STORAGE.UNAVAILABLE` / `STORAGE.SCHEMA_TOO_NEW` when it cannot be opened;
 *   AppError `CONFIG.MONGODB_URL_INVALID` for a URL of another scheme;
 *   AppError `CONFIG.STORAGE_KIND_UNKNOWN` for an unknown kind
 */
export async function openStorage(config: StorageConfig, logger?: Logger): Promise<Storage> {
  switch (config.kind) {
    case 'sqlite': {
      // In a worker thread: commits (an fsync each) never hold the event loop (issue #15).
      const storage = await openSqliteStorageOffThread({
        file: config.file,
        ...(logger ? { logger } : {}),
        ...(config.busyTimeoutMs !== undefined ? { busyTimeoutMs: config.busyTimeoutMs } : {}),
        ...(config.testSyncDelayMs !== undefined ? { testSyncDelayMs: config.testSyncDelayMs } : {}),
      });
      await storage.ping();
      return storage;
    }
    case 'mongodb': {
      // Connects, pings and creates its indexes before it returns. Loaded only when configured: the
      // driver costs the embedded-store bot memory it never uses.
      const { openMongoStorage } = await import('./mongodb/mongodb-storage.adapter');
      return openMongoStorage({
        url: config.url,
        ...(config.database !== undefined ? { database: config.database } : {}),
        ...(config.serverSelectionTimeoutMS !== undefined ? { serverSelectionTimeoutMS: config.serverSelectionTimeoutMS } : {}),
        ...(logger ? { logger } : {}),
      });
    }
    default: {
      const unknownKind: never = config;
      throw new AppError('CONFIG.STORAGE_KIND_UNKNOWN', `unknown storage kind ${JSON.stringify((unknownKind as { kind?: unknown }).kind)}: expected "sqlite" or "mongodb"`);
    }
  }
}
