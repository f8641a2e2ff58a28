/**
 * Embedded storage adapter: one SQLite file through better-sqlite3.
 *
 * Crash safety: WAL journal with `synchronous=FULL`, so a write that returned
 * is on disk and survives a process crash or power loss (SQLite docs, "Write-Ahead
 * Logging" and "PRAGMA synchronous"). Several processes may share the file:
 * writers wait up to the busy timeout, compare-and-set makes concurrent saves
 * safe, and read-modify-write steps run in `BEGIN IMMEDIATE` transactions.
 *
 * better-sqlite3 is synchronous: reads are one indexed statement (microseconds).
 * Writes are group-committed: all writes issued in one event-loop turn share one
 * transaction and so one fsync (a few ms, which holds the event loop), so many
 * concurrent conversations cost about one fsync per turn of the loop rather than
 * one per write. A write's promise settles only once its commit is durable.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../../common/logger';
import type { RateHitResult, Storage } from '../storage.port';
import { windowEnd, windowState, type RecentHit } from '../storage.rate-hits';
import { journeyEffectEdits, lowerCased, versionedRepository, type StorageRepositories, type StoreRunner } from '../storage.repository';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import { ArgumentSchemas, RECORDS, recordToStore, validate } from '../storage.schemas';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from './sqlite.migrations';
import { sqliteCodec, type Row, type SqliteCodec } from './sqlite-row.codec';
import { SqliteVersionedTable } from './sqlite-versioned.table';

type Db = Database.Database;

/** Options for {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** Path of the database file, e.g. `data/smartcard-assist.db`; its directory is created if missing. */
  file: string;
  logger?: Pick<Logger, 'info'>;
  /** How long a writer waits for another process's write lock before `STORAGE.UNAVAILABLE`, in ms (default 5000). */
  busyTimeoutMs?: number;
  /**
   * TEST AND BENCHMARK ONLY: stand-in for a slow disk. After every commit (one WAL fsync under
   * synchronous=FULL) the committing thread is held this many ms more (`Atomics.wait`), as a
   * commit whose fsync took that much longer would hold it. Default 0 (none). The bot's
   * configuration never sets it.
   */
  testSyncDelayMs?: number;
}

/** Settings actually in force on the connection (for health checks and tests). */
export interface SqliteSettings {
  file: string;
  journalMode: string;
  /** 2 = FULL. */
  synchronous: number;
  busyTimeoutMs: number;
  schemaVersion: number;
}

/** Counters since open (for health checks, the benchmark and tests). */
export interface SqliteStats {
  /** Write calls settled (stored, refused or failed). */
  writes: number;
  /** Transactions committed (or attempted); with group commit, at most `writes`. */
  commits: number;
}

/** The embedded store: the port plus read-outs of its settings and counters. */
export interface SqliteStorage extends Storage {
  settings(): SqliteSettings;
  stats(): SqliteStats;
}

/** Default busy timeout, in ms. */
export const SQLITE_DEFAULTS = { busyTimeoutMs: 5000 } as const;

/**
 * Row codecs of every table, derived from the record schemas (`sqlite-row.codec.ts`): which fields are
 * JSON text columns and which columns are derived is all that is said here. Matches migration 1's layout.
 */
const CODECS = {
  persons: sqliteCodec(RECORDS.persons, { json: ['answers', 'selfServiceLock'] }),
  cards: sqliteCodec(RECORDS.cards, { json: [] }),
  journeys: sqliteCodec(RECORDS.journeys, { json: ['state', 'counters', 'pendingEffects', 'ui'], derived: { pendingCount: (j) => j.pendingEffects.length } }),
  devices: sqliteCodec(RECORDS.devices, { json: [] }),
  pairings: sqliteCodec(RECORDS.pairings, { json: [] }),
  cases: sqliteCodec(RECORDS.cases, { json: ['context'] }),
  audit: sqliteCodec(RECORDS.audit, { json: ['details'] }),
  conversations: sqliteCodec(RECORDS.conversations, { json: ['reference'] }),
} as const;

/** `table.column` -> port field name, for unique-constraint messages. */
function fieldOfConstraint(constraint: string): string {
  const [table, column] = constraint.split('.');
  const codec = (CODECS as Record<string, SqliteCodec<unknown>>)[table ?? ''];
  return (column !== undefined && codec?.fieldOf(column)) || constraint;
}

/**
 * Turn whatever the driver threw into a StorageError with no values in its message.
 * SQLite's own messages name constraints and columns, never bound values.
 */
function toStorageError(operation: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  if (err instanceof Database.SqliteError) {
    const code = err.code;
    const meta = { operation, sqliteCode: code };
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      const constraint = /failed: ([\w.]+)/.exec(err.message)?.[1] ?? 'unknown';
      const field = fieldOfConstraint(constraint);
      return new StorageError(STORAGE_ERROR.UNIQUE_VIOLATION, `${operation}: another record already has this ${field}`, { cause: err, meta: { ...meta, field } });
    }
    if (code === 'SQLITE_CONSTRAINT_TRIGGER') {
      return new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: refused by the store (${err.message})`, { cause: err, meta });
    }
    if (code.startsWith('SQLITE_CONSTRAINT')) {
      return new StorageError(STORAGE_ERROR.INVALID_RECORD, `${operation}: record refused by a database constraint (${code})`, { cause: err, meta });
    }
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the database stayed locked by another writer past the busy timeout`, { cause: err, meta });
    }
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
      return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the database file is damaged or not a database`, { cause: err, meta });
    }
    if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM') {
      return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the database file cannot be read or written (${code})`, { cause: err, meta });
    }
    return new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: the database refused the request (${code})`, { cause: err, meta });
  }
  if (err instanceof TypeError && /not open/i.test(err.message)) {
    return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: storage is closed`, { cause: err, meta: { operation } });
  }
  return new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: unexpected storage failure`, { cause: err, meta: { operation } });
}

const num = (v: unknown): number => Number(v);

// ---------------------------------------------------------------------------
// Opening and migrating
// ---------------------------------------------------------------------------

function migrate(db: Db, logger: Pick<Logger, 'info'> | undefined): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const current = (): number => num((db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_version').get() as Row).v);
  const found = current();
  if (found > LATEST_SCHEMA_VERSION) {
    throw new StorageError(STORAGE_ERROR.SCHEMA_TOO_NEW, `the database has schema version ${found}, newer than ${LATEST_SCHEMA_VERSION} which this release knows: upgrade the service`, {
      meta: { operation: 'open', found, known: LATEST_SCHEMA_VERSION },
    });
  }
  for (const m of MIGRATIONS) {
    // Check again inside the write lock: another process may have migrated meanwhile.
    const applied = db
      .transaction(() => {
        if (current() >= m.version) return false;
        db.exec(m.sql);
        db.prepare('INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
        return true;
      })
      .immediate();
    if (applied) logger?.info({ schemaVersion: m.version, migration: m.name }, 'storage schema migrated');
  }
  return current();
}

/**
 * Open (creating if needed) the embedded store.
 *
 * @param options.file - database file path; missing parent directories are created (mode 0700), and a
 *   new file is created with mode 0600 (an existing file keeps its permissions)
 * @param options.logger - optional; logs opening and migrations (never record values)
 * @param options.busyTimeoutMs - wait for another writer's lock, ms (default 5000)
 * @returns the storage port, plus `settings()`
 * @throws StorageError `STORAGE.UNAVAILABLE` when the file cannot be opened or is not a database;
 *   `STORAGE.SCHEMA_TOO_NEW` when a newer release wrote it
 */
export function openSqliteStorage(options: SqliteStorageOptions): SqliteStorage {
  const file = resolve(options.file);
  const busyTimeoutMs = options.busyTimeoutMs ?? SQLITE_DEFAULTS.busyTimeoutMs;
  let db: Db;
  try {
    // New directories and a new database file are private to the service's user (0700 / 0600);
    // SQLite gives the -wal and -shm files the database file's permissions.
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    createPrivateFile(file);
    db = new Database(file, { timeout: busyTimeoutMs });
  } catch (err) {
    throw toStorageError('open', err);
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    const mode = String(db.pragma('journal_mode = WAL', { simple: true }));
    if (mode.toLowerCase() !== 'wal') {
      throw new StorageError(STORAGE_ERROR.UNAVAILABLE, `could not switch the database to WAL journal mode (got ${mode})`, { meta: { operation: 'open' } });
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = OFF');
    // Overwrite freed pages, so deleted rows (expired pairings) leave no bytes behind.
    db.pragma('secure_delete = ON');
    const schemaVersion = migrate(db, options.logger);
    options.logger?.info({ file, schemaVersion }, 'storage opened');
    return new SqliteStorageImpl(db, file, busyTimeoutMs, syncDelay(options.testSyncDelayMs));
  } catch (err) {
    db.close();
    throw toStorageError('open', err);
  }
}

// ---------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------

interface PendingWrite {
  operation: string;
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** The port's repositories are assigned in the constructor (`Object.assign`), typed by this merged interface. */
interface SqliteStorageImpl extends StorageRepositories {}
class SqliteStorageImpl implements SqliteStorage {
  private queue: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | null = null;
  private readonly counters: SqliteStats = { writes: 0, commits: 0 };

  constructor(
    private readonly db: Db,
    private readonly file: string,
    private readonly busyTimeoutMs: number,
    private readonly afterCommit: () => void,
  ) {
    const runner: StoreRunner = {
      read: <R>(operation: string, fn: () => R | Promise<R>) => this.run(operation, fn) as Promise<R>,
      write: <R>(operation: string, fn: () => R | Promise<R>) => this.write(operation, fn) as Promise<R>,
    };
    const { limit: limitSchema, id: idSchema, timestamp: timestampSchema } = ArgumentSchemas;
    const table = <T>(codec: SqliteCodec<T>) => new SqliteVersionedTable(db, codec);
    const tables = {
      persons: table(CODECS.persons),
      cards: table(CODECS.cards),
      journeys: table(CODECS.journeys),
      devices: table(CODECS.devices),
      pairings: table(CODECS.pairings),
      cases: table(CODECS.cases),
      audit: table(CODECS.audit),
      conversations: table(CODECS.conversations),
    };
    const repo = <T>(t: SqliteVersionedTable<T>) => versionedRepository(t.codec.descriptor, t, runner);
    const rateHits = {
      /** The key's `limit` most recent hits, newest first. */
      recent: db.prepare('SELECT n, at FROM rate_hits WHERE key = ? ORDER BY n DESC LIMIT ?'),
      insert: db.prepare('INSERT INTO rate_hits (key, n, at, until) VALUES (?, ?, ?, ?)'),
      deleteExpired: db.prepare('DELETE FROM rate_hits WHERE until < ?'),
    };
    const [persons, devices, pairings, cases] = [repo(tables.persons), repo(tables.devices), repo(tables.pairings), repo(tables.cases)] as const;

    Object.assign(this, {
      persons: { ...persons.core, findByTeamsUserId: persons.findBy('teamsUserId', 'findByTeamsUserId'), findByCardId: persons.findBy('cardId', 'findByCardId'), listByEmail: lowerCased(persons.listBy('email', 'createdAt', 'listByEmail')) },
      cards: repo(tables.cards).core,
      journeys: {
        ...repo(tables.journeys).core,
        ...journeyEffectEdits(runner, (key, change, op) => tables.journeys.edit(key, change, op)),
        listWithPendingEffects: (limit, options) => {
          const op = 'journeys.listWithPendingEffects';
          const onUnreadable = options?.onUnreadable ?? (() => undefined);
          return this.run(op, () => tables.journeys.listReadable({ where: 'pending_count > 0', orderBy: 'updated_at, key', limit: validate(limitSchema, limit, op, 'limit') }, op, onUnreadable));
        },
      },
      devices: { ...devices.core, listByPerson: devices.listBy('personId', 'createdAt', 'listByPerson') },
      pairings: {
        getByDeviceCodeHash: pairings.findBy('deviceCodeHash', 'getByDeviceCodeHash'),
        getByUserCodeHash: pairings.findBy('userCodeHash', 'getByUserCodeHash'),
        insert: pairings.core.insert,
        save: pairings.core.save,
        deleteExpired: (before) => {
          const op = 'pairings.deleteExpired';
          return this.write(op, () => tables.pairings.deleteWhere('expires_at < ?', [validate(timestampSchema, before, op, 'before')]));
        },
      },
      cases: {
        ...cases.core,
        listByPerson: cases.listBy('personId', 'createdAt', 'listByPerson'),
        listOpen: (limit) => {
          const op = 'cases.listOpen';
          return this.run(op, () => tables.cases.list({ where: "status = 'open'", orderBy: 'created_at, ref', limit: validate(limitSchema, limit, op, 'limit') }, op));
        },
        listActive: (limit) => {
          const op = 'cases.listActive';
          return this.run(op, () => tables.cases.list({ where: "status <> 'closed'", orderBy: 'created_at, ref', limit: validate(limitSchema, limit, op, 'limit') }, op));
        },
      },
      // Append-only (the database refuses UPDATE and DELETE); `seq` orders entries with the same time.
      audit: {
        append: (e) =>
          this.write('audit.append', () => {
            // An entry whose id is stored already is kept as it was (idempotent).
            tables.audit.insert(recordToStore(RECORDS.audit, e, 'audit.append'), 'audit.append');
          }),
        list: (filter) =>
          this.run('audit.list', () => {
            const op = 'audit.list';
            const limit = validate(limitSchema, filter?.limit, op, 'limit');
            const where: string[] = [];
            const params: unknown[] = [];
            if (filter.personId !== undefined) {
              where.push('person_id = ?');
              params.push(validate(idSchema, filter.personId, op, 'personId'));
            }
            if (filter.from !== undefined) {
              where.push('at >= ?');
              params.push(validate(timestampSchema, filter.from, op, 'from'));
            }
            if (filter.to !== undefined) {
              where.push('at < ?');
              params.push(validate(timestampSchema, filter.to, op, 'to'));
            }
            return tables.audit.list({ ...(where.length > 0 ? { where: where.join(' AND ') } : {}), orderBy: 'at, seq', params, limit }, op);
          }),
      },
      // Rate-limit hits: the check and the insert run in one write transaction (BEGIN IMMEDIATE, the
      // group commit), so racing hits, from this process or another on the file, are counted one by one.
      rateHits: {
        peek: (key, limit, since) => {
          const op = 'rateHits.peek';
          return this.run(op, () => {
            validate(idSchema, key, op, 'key');
            validate(limitSchema, limit, op, 'limit');
            validate(timestampSchema, since, op, 'since');
            return windowState(rateHits.recent.all(key, limit) as RecentHit[], limit, since);
          });
        },
        record: (key, limit, atTime, since) => {
          const op = 'rateHits.record';
          return this.run(op, () => {
            validate(idSchema, key, op, 'key');
            validate(limitSchema, limit, op, 'limit');
            validate(timestampSchema, atTime, op, 'at');
            validate(timestampSchema, since, op, 'since');
            // A full window stays full (hits are only added until they age out), so a plain read may
            // refuse without taking the write lock: a flood of refused hits costs no transaction.
            return windowState(rateHits.recent.all(key, limit) as RecentHit[], limit, since);
          }).then((first) =>
            first.full
              ? ({ recorded: false, oldestInWindow: first.oldestInWindow } satisfies RateHitResult)
              : this.write(op, (): RateHitResult => {
                  const recent = rateHits.recent.all(key, limit) as RecentHit[];
                  const state = windowState(recent, limit, since);
                  if (state.full) return { recorded: false, oldestInWindow: state.oldestInWindow };
                  rateHits.insert.run(key, recent.length > 0 ? num(recent[0]!.n) + 1 : 0, atTime, windowEnd(atTime, since));
                  return { recorded: true, inWindow: state.inWindow + 1 };
                }),
          );
        },
        deleteExpired: (now) => {
          const op = 'rateHits.deleteExpired';
          return this.write(op, () => rateHits.deleteExpired.run(validate(timestampSchema, now, op, 'now')).changes);
        },
      },
      // Last writer wins: a conversation reference is a routing hint, not state.
      conversations: {
        get: (personId) => this.run('conversations.get', () => tables.conversations.get(validate(idSchema, personId, 'conversations.get', 'personId'), 'conversations.get')),
        put: (record) => this.write('conversations.put', () => tables.conversations.put(recordToStore(RECORDS.conversations, record, 'conversations.put'))),
      },
    } satisfies StorageRepositories);
  }

  /**
   * Queue a write for the next group commit.
   *
   * Writes issued in the same event-loop turn share one `BEGIN IMMEDIATE ... COMMIT`
   * (one fsync under synchronous=FULL), each inside its own savepoint, so a write that
   * throws rolls back alone. Writes run in the order issued, so compare-and-set within a
   * batch behaves as if they ran one by one. The promise settles only after the commit
   * is durable; if the commit itself fails, every write of the batch is rejected and
   * none is stored.
   */
  private write<T>(operation: string, fn: () => T): Promise<T> {
    if (!this.db.open) return Promise.reject(new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: storage is closed`, { meta: { operation } }));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ operation, fn, resolve: resolve as (value: unknown) => void, reject });
      this.flushTimer ??= setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = null;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    if (!this.db.open) {
      for (const w of batch) w.reject(new StorageError(STORAGE_ERROR.UNAVAILABLE, `${w.operation}: storage is closed`, { meta: { operation: w.operation } }));
      return;
    }
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    this.counters.commits += 1;
    this.counters.writes += batch.length;
    try {
      this.db
        .transaction(() => {
          if (batch.length === 1) {
            // Alone: no savepoint needed; a throw rolls the transaction back.
            outcomes.push({ ok: true, value: batch[0]!.fn() });
            return;
          }
          for (const w of batch) {
            try {
              // A nested transaction function runs as a SAVEPOINT and rolls back to it on a throw.
              outcomes.push({ ok: true, value: this.db.transaction(w.fn)() });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        })
        .immediate();
      this.afterCommit();
    } catch (error) {
      // BEGIN or COMMIT failed (or the lone write threw): nothing of this batch is stored.
      for (const w of batch) w.reject(toStorageError(w.operation, error));
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i]!;
      if (o.ok) w.resolve(o.value);
      else w.reject(toStorageError(w.operation, o.error));
    });
  }

  private async run<T>(operation: string, fn: () => T): Promise<T> {
    if (!this.db.open) throw new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: storage is closed`, { meta: { operation } });
    try {
      return fn();
    } catch (err) {
      throw toStorageError(operation, err);
    }
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    // Writes already issued are committed, not dropped.
    this.flush();
    try {
      // Fold the WAL back into the main file so the store is one file at rest.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Another process may hold the WAL; SQLite checkpoints later. Closing still succeeds.
    }
    this.db.close();
  }

  stats(): SqliteStats {
    return { ...this.counters };
  }

  settings(): SqliteSettings {
    if (!this.db.open) throw new StorageError(STORAGE_ERROR.UNAVAILABLE, 'settings: storage is closed', { meta: { operation: 'settings' } });
    return {
      file: this.file,
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
      busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
      schemaVersion: num((this.db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as Row).v),
    };
  }
}

/** The test-only slow-disk stand-in ({@link SqliteStorageOptions.testSyncDelayMs}): holds the calling thread `ms` ms. */
function syncDelay(ms: number | undefined): () => void {
  if (ms === undefined || ms <= 0) return () => undefined;
  if (!Number.isFinite(ms) || ms > 10_000) throw new StorageError(STORAGE_ERROR.INVALID_RECORD, `testSyncDelayMs must be 0..10000 ms (got ${String(ms)})`, { meta: { operation: 'open' } });
  const cell = new Int32Array(new SharedArrayBuffer(4));
  return () => void Atomics.wait(cell, 0, 0, ms);
}

function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
