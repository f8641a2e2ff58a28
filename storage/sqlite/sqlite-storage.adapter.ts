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
import type {
  AuditEntry,
  AuditLog,
  CardRecord,
  CardRepository,
  CaseRepository,
  ConversationRecord,
  ConversationRepository,
  Device,
  DeviceRepository,
  InsertResult,
  JourneyRecord,
  JourneyRepository,
  Pairing,
  PairingRepository,
  Person,
  PersonRepository,
  RaCase,
  SaveResult,
  Storage,
  StoredEffect,
} from '../storage.port';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import {
  ArgumentSchemas,
  AuditEntrySchema,
  CardRecordSchema,
  ConversationRecordSchema,
  DeviceSchema,
  JourneyRecordSchema,
  PairingSchema,
  PersonSchema,
  RaCaseSchema,
  validate,
} from '../storage.schemas';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from './sqlite.migrations';

type Db = Database.Database;
type Row = Record<string, unknown>;

/** Options for {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** Path of the database file, e.g. `data/smartcard-assist.db`; its directory is created if missing. */
  file: string;
  logger?: Logger;
  /** How long a writer waits for another process's write lock before `STORAGE.UNAVAILABLE`, in ms (default 5000). */
  busyTimeoutMs?: number;
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

/** Column name -> port field name, for unique-constraint messages. */
const FIELD_OF_COLUMN: Readonly<Record<string, string>> = {
  'persons.id': 'id',
  'persons.teams_user_id': 'teamsUserId',
  'persons.card_id': 'cardId',
  'cards.card_id': 'cardId',
  'journeys.key': 'key',
  'devices.id': 'id',
  'pairings.id': 'id',
  'pairings.device_code_hash': 'deviceCodeHash',
  'pairings.user_code_hash': 'userCodeHash',
  'cases.ref': 'ref',
  'cases.source_id': 'sourceId',
  'audit.id': 'id',
};

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
      const field = FIELD_OF_COLUMN[constraint] ?? constraint;
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

function parseJson<T>(value: unknown, operation: string, column: string): T {
  try {
    return JSON.parse(String(value)) as T;
  } catch (cause) {
    throw new StorageError(STORAGE_ERROR.CORRUPT_RECORD, `${operation}: stored column ${column} is not valid JSON`, { cause, meta: { operation, column } });
  }
}

const str = (v: unknown): string => v as string;
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));
const num = (v: unknown): number => Number(v);

// ---------------------------------------------------------------------------
// Row <-> record mapping
// ---------------------------------------------------------------------------

function personRow(p: Person): Row {
  return {
    id: p.id,
    teamsUserId: p.teamsUserId,
    displayName: p.displayName,
    email: p.email,
    mobile: p.mobile,
    answers: JSON.stringify(p.answers),
    cardId: p.cardId,
    selfServiceLock: p.selfServiceLock === null ? null : JSON.stringify(p.selfServiceLock),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    version: p.version,
  };
}

function personOf(r: Row, op: string): Person {
  return {
    id: str(r.id),
    teamsUserId: str(r.teams_user_id),
    displayName: str(r.display_name),
    email: str(r.email),
    mobile: strOrNull(r.mobile),
    answers: parseJson(r.answers, op, 'persons.answers'),
    cardId: strOrNull(r.card_id),
    selfServiceLock: r.self_service_lock === null ? null : parseJson(r.self_service_lock, op, 'persons.self_service_lock'),
    createdAt: str(r.created_at),
    updatedAt: str(r.updated_at),
    version: num(r.version),
  };
}

function cardRow(c: CardRecord): Row {
  return { cardId: c.cardId, personId: c.personId, puk: c.puk, pendingPuk: c.pendingPuk, updatedAt: c.updatedAt, version: c.version };
}

function cardOf(r: Row): CardRecord {
  return { cardId: str(r.card_id), personId: str(r.person_id), puk: strOrNull(r.puk), pendingPuk: strOrNull(r.pending_puk), updatedAt: str(r.updated_at), version: num(r.version) };
}

function journeyRow(j: JourneyRecord): Row {
  return {
    key: j.key,
    personId: j.personId,
    kind: j.kind,
    runId: j.runId,
    state: JSON.stringify(j.state),
    counters: JSON.stringify(j.counters),
    pendingEffects: JSON.stringify(j.pendingEffects),
    pendingCount: j.pendingEffects.length,
    ui: JSON.stringify({ activityId: j.ui.activityId }),
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    version: j.version,
  };
}

function journeyOf(r: Row, op: string): JourneyRecord {
  return {
    key: str(r.key),
    personId: str(r.person_id),
    kind: str(r.kind) as JourneyRecord['kind'],
    runId: str(r.run_id),
    state: parseJson(r.state, op, 'journeys.state'),
    counters: parseJson(r.counters, op, 'journeys.counters'),
    pendingEffects: parseJson(r.pending_effects, op, 'journeys.pending_effects'),
    ui: parseJson(r.ui, op, 'journeys.ui'),
    createdAt: str(r.created_at),
    updatedAt: str(r.updated_at),
    version: num(r.version),
  };
}

function deviceRow(d: Device): Row {
  return {
    id: d.id,
    personId: d.personId,
    workstation: d.workstation,
    credentialHash: d.credentialHash,
    createdAt: d.createdAt,
    lastSeenAt: d.lastSeenAt,
    revokedAt: d.revokedAt,
    connectedInstance: d.connectedInstance,
    version: d.version,
  };
}

function deviceOf(r: Row): Device {
  return {
    id: str(r.id),
    personId: str(r.person_id),
    workstation: str(r.workstation),
    credentialHash: str(r.credential_hash),
    createdAt: str(r.created_at),
    lastSeenAt: strOrNull(r.last_seen_at),
    revokedAt: strOrNull(r.revoked_at),
    connectedInstance: strOrNull(r.connected_instance),
    version: num(r.version),
  };
}

function pairingRow(p: Pairing): Row {
  return {
    id: p.id,
    deviceCodeHash: p.deviceCodeHash,
    userCodeHash: p.userCodeHash,
    workstation: p.workstation,
    status: p.status,
    personId: p.personId,
    deviceId: p.deviceId,
    createdAt: p.createdAt,
    expiresAt: p.expiresAt,
    lastPolledAt: p.lastPolledAt,
    version: p.version,
  };
}

function pairingOf(r: Row): Pairing {
  return {
    id: str(r.id),
    deviceCodeHash: str(r.device_code_hash),
    userCodeHash: str(r.user_code_hash),
    workstation: str(r.workstation),
    status: str(r.status) as Pairing['status'],
    personId: strOrNull(r.person_id),
    deviceId: strOrNull(r.device_id),
    createdAt: str(r.created_at),
    expiresAt: str(r.expires_at),
    lastPolledAt: strOrNull(r.last_polled_at),
    version: num(r.version),
  };
}

function caseRow(c: RaCase): Row {
  return {
    ref: c.ref,
    personId: c.personId,
    reason: c.reason,
    status: c.status,
    context: JSON.stringify(c.context),
    sourceId: c.sourceId,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    version: c.version,
  };
}

function caseOf(r: Row, op: string): RaCase {
  return {
    ref: str(r.ref),
    personId: str(r.person_id),
    reason: str(r.reason) as RaCase['reason'],
    status: str(r.status) as RaCase['status'],
    context: parseJson(r.context, op, 'cases.context'),
    sourceId: str(r.source_id),
    createdAt: str(r.created_at),
    updatedAt: str(r.updated_at),
    version: num(r.version),
  };
}

function auditOf(r: Row, op: string): AuditEntry {
  return { id: str(r.id), at: str(r.at), actor: str(r.actor), action: str(r.action), personId: strOrNull(r.person_id), details: parseJson(r.details, op, 'audit.details') };
}

// ---------------------------------------------------------------------------
// Opening and migrating
// ---------------------------------------------------------------------------

function migrate(db: Db, logger: Logger | undefined): number {
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
    return new SqliteStorageImpl(db, file, busyTimeoutMs);
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

class SqliteStorageImpl implements SqliteStorage {
  readonly persons: PersonRepository;
  readonly cards: CardRepository;
  readonly journeys: JourneyRepository;
  readonly devices: DeviceRepository;
  readonly pairings: PairingRepository;
  readonly cases: CaseRepository;
  readonly audit: AuditLog;
  readonly conversations: ConversationRepository;

  private queue: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | null = null;
  private readonly counters: SqliteStats = { writes: 0, commits: 0 };

  constructor(
    private readonly db: Db,
    private readonly file: string,
    private readonly busyTimeoutMs: number,
  ) {
    const q = (sql: string) => db.prepare(sql);
    const run = <T>(operation: string, fn: () => T): Promise<T> => this.run(operation, fn);
    const write = <T>(operation: string, fn: () => T): Promise<T> => this.write(operation, fn);
    const { limit: limitSchema, id: idSchema, timestamp: timestampSchema, effectIds: effectIdsSchema, version: versionSchema } = ArgumentSchemas;
    const checkVersion = (v: number, op: string) => validate(versionSchema, v, op, 'expectedVersion');

    // persons ---------------------------------------------------------------
    const person = {
      get: q('SELECT * FROM persons WHERE id = ?'),
      byTeams: q('SELECT * FROM persons WHERE teams_user_id = ?'),
      byCard: q('SELECT * FROM persons WHERE card_id = ?'),
      insert: q(`INSERT INTO persons (id, teams_user_id, display_name, email, mobile, answers, card_id, self_service_lock, created_at, updated_at, version)
                 VALUES (@id, @teamsUserId, @displayName, @email, @mobile, @answers, @cardId, @selfServiceLock, @createdAt, @updatedAt, @version)
                 ON CONFLICT DO NOTHING`),
      save: q(`UPDATE persons SET teams_user_id = @teamsUserId, display_name = @displayName, email = @email, mobile = @mobile, answers = @answers,
                 card_id = @cardId, self_service_lock = @selfServiceLock, created_at = @createdAt, updated_at = @updatedAt, version = @expected + 1
               WHERE id = @id AND version = @expected`),
    };
    this.persons = {
      get: (id) => run('persons.get', () => one(person.get.get(validate(idSchema, id, 'persons.get', 'id')) as Row | undefined, (r) => personOf(r, 'persons.get'))),
      findByTeamsUserId: (teamsUserId) =>
        run('persons.findByTeamsUserId', () => one(person.byTeams.get(validate(idSchema, teamsUserId, 'persons.findByTeamsUserId', 'teamsUserId')) as Row | undefined, (r) => personOf(r, 'persons.findByTeamsUserId'))),
      findByCardId: (cardId) => run('persons.findByCardId', () => one(person.byCard.get(String(cardId)) as Row | undefined, (r) => personOf(r, 'persons.findByCardId'))),
      insert: (p) =>
        write('persons.insert', (): InsertResult<Person> => {
          validate(PersonSchema, p, 'persons.insert');
          if (person.insert.run(personRow(p)).changes === 1) return { status: 'created', record: personOf(person.get.get(p.id) as Row, 'persons.insert') };
          const existing = (person.get.get(p.id) ?? person.byTeams.get(p.teamsUserId) ?? (p.cardId === null ? undefined : person.byCard.get(p.cardId))) as Row | undefined;
          return exists(existing, (r) => personOf(r, 'persons.insert'), 'persons.insert');
        }),
      save: (p, expectedVersion) =>
        write('persons.save', () => {
          validate(PersonSchema, p, 'persons.save');
          checkVersion(expectedVersion, 'persons.save');
          return saved(person.save.run({ ...personRow(p), expected: expectedVersion }).changes);
        }),
    };

    // cards -------------------------------------------------------------------
    const card = {
      get: q('SELECT * FROM cards WHERE card_id = ?'),
      insert: q(`INSERT INTO cards (card_id, person_id, puk, pending_puk, updated_at, version)
                 VALUES (@cardId, @personId, @puk, @pendingPuk, @updatedAt, @version) ON CONFLICT DO NOTHING`),
      save: q(`UPDATE cards SET person_id = @personId, puk = @puk, pending_puk = @pendingPuk, updated_at = @updatedAt, version = @expected + 1
               WHERE card_id = @cardId AND version = @expected`),
    };
    this.cards = {
      get: (cardId) => run('cards.get', () => one(card.get.get(String(cardId)) as Row | undefined, cardOf)),
      insert: (c) =>
        write('cards.insert', (): InsertResult<CardRecord> => {
          validate(CardRecordSchema, c, 'cards.insert');
          if (card.insert.run(cardRow(c)).changes === 1) return { status: 'created', record: cardOf(card.get.get(c.cardId) as Row) };
          return exists(card.get.get(c.cardId) as Row | undefined, cardOf, 'cards.insert');
        }),
      save: (c, expectedVersion) =>
        write('cards.save', () => {
          validate(CardRecordSchema, c, 'cards.save');
          checkVersion(expectedVersion, 'cards.save');
          return saved(card.save.run({ ...cardRow(c), expected: expectedVersion }).changes);
        }),
    };

    // journeys -----------------------------------------------------------------
    const journey = {
      get: q('SELECT * FROM journeys WHERE key = ?'),
      insert: q(`INSERT INTO journeys (key, person_id, kind, run_id, state, counters, pending_effects, pending_count, ui, created_at, updated_at, version)
                 VALUES (@key, @personId, @kind, @runId, @state, @counters, @pendingEffects, @pendingCount, @ui, @createdAt, @updatedAt, @version)
                 ON CONFLICT DO NOTHING`),
      save: q(`UPDATE journeys SET person_id = @personId, kind = @kind, run_id = @runId, state = @state, counters = @counters,
                 pending_effects = @pendingEffects, pending_count = @pendingCount, ui = @ui, created_at = @createdAt, updated_at = @updatedAt,
                 version = @expected + 1
               WHERE key = @key AND version = @expected`),
      effects: q('SELECT pending_effects FROM journeys WHERE key = ?'),
      setEffects: q('UPDATE journeys SET pending_effects = @pendingEffects, pending_count = @pendingCount WHERE key = @key'),
      pending: q('SELECT * FROM journeys WHERE pending_count > 0 ORDER BY updated_at, key LIMIT ?'),
    };
    const editEffects = (op: string, key: string, effectIds: string[], edit: (effects: StoredEffect[], ids: Set<string>) => StoredEffect[] | null) =>
      write(op, () => {
        validate(idSchema, key, op, 'key');
        validate(effectIdsSchema, effectIds, op, 'effectIds');
        if (effectIds.length === 0) return;
        const ids = new Set(effectIds);
        const row = journey.effects.get(key) as Row | undefined;
        if (!row) return;
        const next = edit(parseJson<StoredEffect[]>(row.pending_effects, op, 'journeys.pending_effects'), ids);
        if (next) journey.setEffects.run({ key, pendingEffects: JSON.stringify(next), pendingCount: next.length });
      });
    this.journeys = {
      get: (key) => run('journeys.get', () => one(journey.get.get(validate(idSchema, key, 'journeys.get', 'key')) as Row | undefined, (r) => journeyOf(r, 'journeys.get'))),
      insert: (j) =>
        write('journeys.insert', (): InsertResult<JourneyRecord> => {
          validate(JourneyRecordSchema, j, 'journeys.insert');
          if (journey.insert.run(journeyRow(j)).changes === 1) return { status: 'created', record: journeyOf(journey.get.get(j.key) as Row, 'journeys.insert') };
          return exists(journey.get.get(j.key) as Row | undefined, (r) => journeyOf(r, 'journeys.insert'), 'journeys.insert');
        }),
      save: (j, expectedVersion) =>
        write('journeys.save', () => {
          validate(JourneyRecordSchema, j, 'journeys.save');
          checkVersion(expectedVersion, 'journeys.save');
          return saved(journey.save.run({ ...journeyRow(j), expected: expectedVersion }).changes);
        }),
      removeEffects: (key, effectIds) =>
        editEffects('journeys.removeEffects', key, effectIds, (effects, ids) => {
          const kept = effects.filter((e) => !ids.has(e.id));
          return kept.length === effects.length ? null : kept;
        }),
      countEffectAttempt: (key, effectIds) =>
        editEffects('journeys.countEffectAttempt', key, effectIds, (effects, ids) => {
          if (!effects.some((e) => ids.has(e.id))) return null;
          return effects.map((e) => (ids.has(e.id) ? { ...e, attempts: e.attempts + 1 } : e));
        }),
      listWithPendingEffects: (limit) =>
        run('journeys.listWithPendingEffects', () =>
          (journey.pending.all(validate(limitSchema, limit, 'journeys.listWithPendingEffects', 'limit')) as Row[]).map((r) => journeyOf(r, 'journeys.listWithPendingEffects')),
        ),
    };

    // devices -----------------------------------------------------------------
    const device = {
      get: q('SELECT * FROM devices WHERE id = ?'),
      byPerson: q('SELECT * FROM devices WHERE person_id = ? ORDER BY created_at, id'),
      insert: q(`INSERT INTO devices (id, person_id, workstation, credential_hash, created_at, last_seen_at, revoked_at, connected_instance, version)
                 VALUES (@id, @personId, @workstation, @credentialHash, @createdAt, @lastSeenAt, @revokedAt, @connectedInstance, @version)
                 ON CONFLICT DO NOTHING`),
      save: q(`UPDATE devices SET person_id = @personId, workstation = @workstation, credential_hash = @credentialHash, created_at = @createdAt,
                 last_seen_at = @lastSeenAt, revoked_at = @revokedAt, connected_instance = @connectedInstance, version = @expected + 1
               WHERE id = @id AND version = @expected`),
    };
    this.devices = {
      get: (id) => run('devices.get', () => one(device.get.get(validate(idSchema, id, 'devices.get', 'id')) as Row | undefined, deviceOf)),
      insert: (d) =>
        write('devices.insert', (): InsertResult<Device> => {
          validate(DeviceSchema, d, 'devices.insert');
          if (device.insert.run(deviceRow(d)).changes === 1) return { status: 'created', record: deviceOf(device.get.get(d.id) as Row) };
          return exists(device.get.get(d.id) as Row | undefined, deviceOf, 'devices.insert');
        }),
      save: (d, expectedVersion) =>
        write('devices.save', () => {
          validate(DeviceSchema, d, 'devices.save');
          checkVersion(expectedVersion, 'devices.save');
          return saved(device.save.run({ ...deviceRow(d), expected: expectedVersion }).changes);
        }),
      listByPerson: (personId) => run('devices.listByPerson', () => (device.byPerson.all(validate(idSchema, personId, 'devices.listByPerson', 'personId')) as Row[]).map(deviceOf)),
    };

    // pairings ------------------------------------------------------------------
    const pairing = {
      get: q('SELECT * FROM pairings WHERE id = ?'),
      byDevice: q('SELECT * FROM pairings WHERE device_code_hash = ?'),
      byUser: q('SELECT * FROM pairings WHERE user_code_hash = ?'),
      insert: q(`INSERT INTO pairings (id, device_code_hash, user_code_hash, workstation, status, person_id, device_id, created_at, expires_at, last_polled_at, version)
                 VALUES (@id, @deviceCodeHash, @userCodeHash, @workstation, @status, @personId, @deviceId, @createdAt, @expiresAt, @lastPolledAt, @version)
                 ON CONFLICT DO NOTHING`),
      save: q(`UPDATE pairings SET device_code_hash = @deviceCodeHash, user_code_hash = @userCodeHash, workstation = @workstation, status = @status,
                 person_id = @personId, device_id = @deviceId, created_at = @createdAt, expires_at = @expiresAt, last_polled_at = @lastPolledAt,
                 version = @expected + 1
               WHERE id = @id AND version = @expected`),
      deleteExpired: q('DELETE FROM pairings WHERE expires_at < ?'),
    };
    this.pairings = {
      getByDeviceCodeHash: (hash) => run('pairings.getByDeviceCodeHash', () => one(pairing.byDevice.get(String(hash)) as Row | undefined, pairingOf)),
      getByUserCodeHash: (hash) => run('pairings.getByUserCodeHash', () => one(pairing.byUser.get(String(hash)) as Row | undefined, pairingOf)),
      insert: (p) =>
        write('pairings.insert', (): InsertResult<Pairing> => {
          validate(PairingSchema, p, 'pairings.insert');
          if (pairing.insert.run(pairingRow(p)).changes === 1) return { status: 'created', record: pairingOf(pairing.get.get(p.id) as Row) };
          const existing = (pairing.get.get(p.id) ?? pairing.byDevice.get(p.deviceCodeHash) ?? pairing.byUser.get(p.userCodeHash)) as Row | undefined;
          return exists(existing, pairingOf, 'pairings.insert');
        }),
      save: (p, expectedVersion) =>
        write('pairings.save', () => {
          validate(PairingSchema, p, 'pairings.save');
          checkVersion(expectedVersion, 'pairings.save');
          return saved(pairing.save.run({ ...pairingRow(p), expected: expectedVersion }).changes);
        }),
      deleteExpired: (before) => write('pairings.deleteExpired', () => pairing.deleteExpired.run(validate(timestampSchema, before, 'pairings.deleteExpired', 'before')).changes),
    };

    // cases -------------------------------------------------------------------
    const raCase = {
      get: q('SELECT * FROM cases WHERE ref = ?'),
      bySource: q('SELECT * FROM cases WHERE source_id = ?'),
      byPerson: q('SELECT * FROM cases WHERE person_id = ? ORDER BY created_at, ref'),
      open: q(`SELECT * FROM cases WHERE status = 'open' ORDER BY created_at, ref LIMIT ?`),
      insert: q(`INSERT INTO cases (ref, person_id, reason, status, context, source_id, created_at, updated_at, version)
                 VALUES (@ref, @personId, @reason, @status, @context, @sourceId, @createdAt, @updatedAt, @version) ON CONFLICT DO NOTHING`),
      save: q(`UPDATE cases SET person_id = @personId, reason = @reason, status = @status, context = @context, source_id = @sourceId,
                 created_at = @createdAt, updated_at = @updatedAt, version = @expected + 1
               WHERE ref = @ref AND version = @expected`),
    };
    this.cases = {
      get: (ref) => run('cases.get', () => one(raCase.get.get(String(ref)) as Row | undefined, (r) => caseOf(r, 'cases.get'))),
      insert: (c) =>
        write('cases.insert', (): InsertResult<RaCase> => {
          validate(RaCaseSchema, c, 'cases.insert');
          if (raCase.insert.run(caseRow(c)).changes === 1) return { status: 'created', record: caseOf(raCase.get.get(c.ref) as Row, 'cases.insert') };
          const existing = (raCase.get.get(c.ref) ?? raCase.bySource.get(c.sourceId)) as Row | undefined;
          return exists(existing, (r) => caseOf(r, 'cases.insert'), 'cases.insert');
        }),
      save: (c, expectedVersion) =>
        write('cases.save', () => {
          validate(RaCaseSchema, c, 'cases.save');
          checkVersion(expectedVersion, 'cases.save');
          return saved(raCase.save.run({ ...caseRow(c), expected: expectedVersion }).changes);
        }),
      listByPerson: (personId) =>
        run('cases.listByPerson', () => (raCase.byPerson.all(validate(idSchema, personId, 'cases.listByPerson', 'personId')) as Row[]).map((r) => caseOf(r, 'cases.listByPerson'))),
      listOpen: (limit) => run('cases.listOpen', () => (raCase.open.all(validate(limitSchema, limit, 'cases.listOpen', 'limit')) as Row[]).map((r) => caseOf(r, 'cases.listOpen'))),
    };

    // audit -------------------------------------------------------------------
    const audit = {
      append: q(`INSERT INTO audit (id, at, actor, action, person_id, details) VALUES (@id, @at, @actor, @action, @personId, @details)
                 ON CONFLICT (id) DO NOTHING`),
      all: q('SELECT * FROM audit ORDER BY at, seq LIMIT ?'),
      byPerson: q('SELECT * FROM audit WHERE person_id = ? ORDER BY at, seq LIMIT ?'),
    };
    this.audit = {
      append: (e) =>
        write('audit.append', () => {
          validate(AuditEntrySchema, e, 'audit.append');
          audit.append.run({ id: e.id, at: e.at, actor: e.actor, action: e.action, personId: e.personId, details: JSON.stringify(e.details) });
        }),
      list: (filter) =>
        run('audit.list', () => {
          const limit = validate(limitSchema, filter?.limit, 'audit.list', 'limit');
          const rows = (filter.personId === undefined ? audit.all.all(limit) : audit.byPerson.all(validate(idSchema, filter.personId, 'audit.list', 'personId'), limit)) as Row[];
          return rows.map((r) => auditOf(r, 'audit.list'));
        }),
    };

    // conversations -------------------------------------------------------------
    const conversation = {
      get: q('SELECT * FROM conversations WHERE person_id = ?'),
      put: q(`INSERT INTO conversations (person_id, reference, updated_at) VALUES (@personId, @reference, @updatedAt)
              ON CONFLICT (person_id) DO UPDATE SET reference = excluded.reference, updated_at = excluded.updated_at`),
    };
    this.conversations = {
      get: (personId) =>
        run('conversations.get', () =>
          one(conversation.get.get(validate(idSchema, personId, 'conversations.get', 'personId')) as Row | undefined, (r): ConversationRecord => ({
            personId: str(r.person_id),
            reference: parseJson(r.reference, 'conversations.get', 'conversations.reference'),
            updatedAt: str(r.updated_at),
          })),
        ),
      put: (record) =>
        write('conversations.put', () => {
          validate(ConversationRecordSchema, record, 'conversations.put');
          conversation.put.run({ personId: record.personId, reference: JSON.stringify(record.reference), updatedAt: record.updatedAt });
        }),
    };
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

function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function one<T>(row: Row | undefined, map: (r: Row) => T): T | null {
  return row === undefined ? null : map(row);
}

function saved(changes: number): SaveResult {
  return changes === 1 ? 'saved' : 'conflict';
}

function exists<T>(row: Row | undefined, map: (r: Row) => T, operation: string): InsertResult<T> {
  if (row === undefined) {
    // ON CONFLICT fired but no clashing row is visible: cannot happen inside one transaction.
    throw new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: insert was refused but no clashing record was found`, { meta: { operation } });
  }
  return { status: 'exists', record: map(row) };
}
