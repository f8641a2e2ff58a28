/**
 * MongoDB storage adapter, on the official `mongodb` driver.
 *
 * Runs the same on MongoDB, Atlas, Cosmos DB for MongoDB and FerretDB v1
 * because every rule of the port rests on one primitive all of them make
 * atomic: inserting a document whose `_id` is new.
 * - Records are insert-only revision documents (`mongodb-versioned.collection.ts`):
 *   compare-and-set is "insert revision r+1 after reading r as the latest";
 *   two writers from one revision meet on one `_id` and one wins. Conditional
 *   updates are not used for correctness: FerretDB v1 does not apply them
 *   atomically (it re-checks no filter when it writes).
 * - Uniqueness beyond the key (teamsUserId, cardId, pairing code hashes, case
 *   sourceId) is claimed with insert-only claim documents.
 * - The audit log is insert-only with the entry id as `_id`.
 * - No multi-document transactions; a write that fails half-way leaves either
 *   nothing or a complete revision (plus at most an unused claim or a stale
 *   `cur` flag, both checked by every reader).
 * - Expiry is data checked by the caller; deletion is garbage collection
 *   (`pairings.deleteExpired`, plus a TTL index where the server accepts one).
 * - Open-shaped values (journey state, counters, effects, case context, audit
 *   details, conversation references) are stored as JSON text: FerretDB
 *   refuses field names with `.` or a leading `$`, and JSON text keeps exactly
 *   what the embedded adapter keeps.
 *
 * Errors: network, server-selection, shutdown and throttling errors become
 * `STORAGE.UNAVAILABLE` (the caller tells the person to try again shortly).
 * Such a failure leaves the write done or not done, never half done; the
 * caller re-reads before retrying a `save`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, MongoError, ObjectId, type Db, type Document, type Filter } from 'mongodb';
import { AppError } from '../../common/app-error';
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
  JourneyRecord,
  JourneyRepository,
  Pairing,
  PairingRepository,
  Person,
  PersonRepository,
  RaCase,
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
import { isDuplicateKey, isUnavailable, MONGO_CODE, toStorageError } from './mongodb.errors';
import { MONGO_COLLECTION, MONGO_GC_TTL_INDEX, MONGO_INDEXES, MONGO_SCHEMA_VERSION, type MongoCollectionName } from './mongodb.indexes';
import { ClaimRegistry, NameLocks, VERSIONED_DEFAULTS, VersionedCollection, type RecordCodec, type UniqueFieldSpec, type VersionedOptions } from './mongodb-versioned.collection';

/** Defaults for {@link openMongoStorage}. */
export const MONGO_DEFAULTS = {
  /** Used when neither `database` nor the URL path names one. */
  database: 'smartcard_assist',
  /** How long an operation waits for a reachable server before `STORAGE.UNAVAILABLE`, ms. */
  serverSelectionTimeoutMS: 5000,
  /** TCP connect timeout, ms. */
  connectTimeoutMS: 5000,
  /** A send or receive that hangs this long fails the operation (`STORAGE.UNAVAILABLE`), ms. */
  socketTimeoutMS: 30_000,
  /** Revision garbage collection period, ms (15 minutes). */
  gcIntervalMs: 15 * 60 * 1000,
} as const;

/** Options for {@link openMongoStorage}: give `url`, or a `client` the caller owns. */
export interface MongoStorageOptions {
  /** `mongodb://...` or `mongodb+srv://...`. May hold credentials: it is never logged or put in an error. */
  url?: string;
  /** A client shared with other components (e.g. the command bus); `close()` leaves it open. */
  client?: MongoClient;
  /** Database name; default: the URL's path, else {@link MONGO_DEFAULTS.database}. */
  database?: string;
  logger?: Logger;
  /** ms; see {@link MONGO_DEFAULTS}. */
  serverSelectionTimeoutMS?: number;
  connectTimeoutMS?: number;
  socketTimeoutMS?: number;
  /** Try to create the garbage-collection TTL index (default true). Refused by the server: logged, not fatal. */
  gcTtlIndex?: boolean;
  /** Revision GC age and claim grace, ms (see {@link VERSIONED_DEFAULTS}); tests shorten them. */
  versioned?: VersionedOptions;
  /** How often old revisions are collected, ms (default 15 minutes; 0: only when `collectGarbage()` is called). */
  gcIntervalMs?: number;
}

/** What the adapter found about the server at start-up. */
export interface MongoCapabilities {
  /** `buildInfo.version` (FerretDB reports the MongoDB version it imitates). */
  serverVersion: string;
  /** FerretDB's own version when the server is FerretDB, else null. */
  ferretdbVersion: string | null;
  /** Whether the garbage-collection TTL index exists (created now or before). */
  gcTtlIndex: boolean;
}

/** The MongoDB store: the port, the database it uses and what the server supports. */
export interface MongoStorage extends Storage {
  readonly databaseName: string;
  capabilities(): MongoCapabilities;
  /**
   * Delete revisions older than the GC age, keeping each record's last two.
   * Runs by itself every `gcIntervalMs`; several instances doing it at once is harmless.
   *
   * @returns how many revision documents were deleted
   */
  collectGarbage(): Promise<number>;
}

/**
 * Connect, check the schema version, create the indexes (idempotent) and
 * return the store.
 *
 * @param options - `{ url }` or `{ client }`, optional `database`, timeouts (ms), `logger`, `gcTtlIndex`
 * @returns the storage port, pinged and indexed
 * @throws AppError `CONFIG.MONGODB_URL_INVALID` for a URL that is not `mongodb://` / `mongodb+srv://`
 *   or that the driver cannot parse (the message does not repeat the URL);
 *   StorageError `STORAGE.UNAVAILABLE` when no server answers within `serverSelectionTimeoutMS`;
 *   `STORAGE.SCHEMA_TOO_NEW` when a newer release wrote the database;
 *   `STORAGE.QUERY_FAILED` when an index of the same name exists with other options
 */
/** FerretDB on SQLite: a write refused because another process held the database lock. */
function isBackendLocked(err: unknown): boolean {
  return err instanceof MongoError && /database is locked|SQLITE_BUSY/.test(err.message);
}

export async function openMongoStorage(options: MongoStorageOptions): Promise<MongoStorage> {
  let client = options.client;
  const owned = client === undefined;
  if (!client) {
    const url = options.url ?? '';
    if (!/^mongodb(\+srv)?:\/\//.test(url)) {
      throw new AppError('CONFIG.MONGODB_URL_INVALID', 'the MongoDB URL must start with mongodb:// or mongodb+srv://');
    }
    try {
      client = new MongoClient(url, {
        serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? MONGO_DEFAULTS.serverSelectionTimeoutMS,
        connectTimeoutMS: options.connectTimeoutMS ?? MONGO_DEFAULTS.connectTimeoutMS,
        socketTimeoutMS: options.socketTimeoutMS ?? MONGO_DEFAULTS.socketTimeoutMS,
        appName: 'smartcard-assist',
      });
    } catch (err) {
      throw new AppError('CONFIG.MONGODB_URL_INVALID', `the MongoDB URL cannot be parsed (${err instanceof Error ? err.name : 'error'})`);
    }
  }
  const databaseName = options.database ?? (urlNamesDatabase(options.url) ? client.db().databaseName : MONGO_DEFAULTS.database);
  try {
    await client.connect();
    const db = client.db(databaseName);
    await db.command({ ping: 1 });
    await checkSchemaVersion(db);
    await ensureIndexes(db);
    const gcTtlIndex = options.gcTtlIndex === false ? false : await ensureGcTtlIndex(db, options.logger);
    const build = await db.admin().command({ buildInfo: 1 });
    const capabilities: MongoCapabilities = {
      serverVersion: String(build.version ?? 'unknown'),
      ferretdbVersion: typeof build.ferretdbVersion === 'string' ? build.ferretdbVersion : typeof build.ferretdb?.version === 'string' ? String(build.ferretdb.version) : null,
      gcTtlIndex,
    };
    await recordSchemaVersion(db);
    options.logger?.info({ database: databaseName, ...capabilities, schemaVersion: MONGO_SCHEMA_VERSION }, 'storage opened (mongodb)');
    const storage = new MongoStorageImpl(client, db, owned, capabilities, options.versioned ?? {}, options.logger);
    const repaired = await storage.repairHeads(new Date(Date.now() - VERSIONED_DEFAULTS.repairWindowMs));
    if (repaired > 0) options.logger?.info({ repaired }, 'storage heads brought up to date after an interrupted write');
    storage.startGc(options.gcIntervalMs ?? MONGO_DEFAULTS.gcIntervalMs);
    return storage;
  } catch (err) {
    if (owned) await client.close().catch(() => undefined);
    throw toStorageError('open', err);
  }
}

function urlNamesDatabase(url: string | undefined): boolean {
  return url !== undefined && /^mongodb(\+srv)?:\/\/[^/?]+\/[^/?]+/.test(url);
}

type MetaDoc = Document & { _id: string; version?: number };

async function checkSchemaVersion(db: Db): Promise<void> {
  const meta = await db.collection<MetaDoc>(MONGO_COLLECTION.meta).findOne({ _id: 'schema' });
  const found = typeof meta?.version === 'number' ? meta.version : 0;
  if (found > MONGO_SCHEMA_VERSION) {
    throw new StorageError(STORAGE_ERROR.SCHEMA_TOO_NEW, `the database has schema version ${found}, newer than ${MONGO_SCHEMA_VERSION} which this release knows: upgrade the service`, {
      meta: { operation: 'open', found, known: MONGO_SCHEMA_VERSION },
    });
  }
}

/** Write the schema version once; a concurrent first start-up's insert wins the same way. */
async function recordSchemaVersion(db: Db): Promise<void> {
  try {
    await db.collection<MetaDoc>(MONGO_COLLECTION.meta).insertOne({ _id: 'schema', version: MONGO_SCHEMA_VERSION, at: new Date() });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
}

/**
 * Create the missing indexes. Existing ones are left alone, so a second
 * start-up sends no createIndexes at all.
 *
 * NOTE: FerretDB v1.24 drops the connection (a panic in its handler) when two
 * clients run createIndexes on one collection at once, as two instances
 * starting together do. A dropped connection here is therefore retried after a
 * short random pause; by then the other instance has made the indexes.
 */
async function ensureIndexes(db: Db): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await createMissingIndexes(db);
      return;
    } catch (err) {
      if (err instanceof MongoError && (err.code === MONGO_CODE.INDEX_OPTIONS_CONFLICT || err.code === MONGO_CODE.INDEX_KEY_SPECS_CONFLICT)) {
        throw new StorageError(STORAGE_ERROR.QUERY_FAILED, 'open: an index exists with the same name as one of ours and other options; drop it and restart', {
          meta: { operation: 'open', mongoCode: Number(err.code) },
        });
      }
      if (!isUnavailable(err) || attempt >= 6) throw err;
      await sleep(50 + Math.floor(Math.random() * 300));
    }
  }
}

async function createMissingIndexes(db: Db): Promise<void> {
  const byCollection = new Map<MongoCollectionName, (typeof MONGO_INDEXES)[number][]>();
  for (const spec of MONGO_INDEXES) byCollection.set(spec.collection, [...(byCollection.get(spec.collection) ?? []), spec]);
  const collections = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const [collection, specs] of byCollection) {
    const listed = collections.has(collection)
      ? await db.collection(collection).listIndexes().toArray().catch((err: unknown) => {
          if (err instanceof MongoError && err.code === MONGO_CODE.NAMESPACE_NOT_FOUND) return [];
          throw err;
        })
      : [];
    const existing = new Set(listed.map((i) => String(i.name)));
    const missing = specs.filter((s) => !existing.has(s.name));
    if (missing.length > 0) await db.collection(collection).createIndexes(missing.map((s) => ({ key: s.key, name: s.name })));
  }
}

/** Create the GC TTL indexes; a server without TTL support (FerretDB v1) refuses them, which is logged and not fatal. */
async function ensureGcTtlIndex(db: Db, logger: Logger | undefined): Promise<boolean> {
  const { collections, name, key, expireAfterSeconds } = MONGO_GC_TTL_INDEX;
  for (const collection of collections) {
    try {
      await db.collection(collection).createIndex(key, { name, expireAfterSeconds });
    } catch (err) {
      if (isUnavailable(err) || !(err instanceof MongoError)) throw err;
      logger?.info({ collection, index: name, mongoCode: typeof err.code === 'number' ? err.code : null }, 'server refused a TTL index: expired pairings are removed by deleteExpired only');
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Record codecs: record <-> revision document fields (`k` holds the key)
// ---------------------------------------------------------------------------

const str = (v: unknown): string => v as string;
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));
const num = (v: unknown): number => Number(v);

function parseJson<T>(value: unknown, operation: string, field: string): T {
  try {
    if (typeof value !== 'string') throw new TypeError('not text');
    return JSON.parse(value) as T;
  } catch (cause) {
    throw new StorageError(STORAGE_ERROR.CORRUPT_RECORD, `${operation}: stored field ${field} is not valid JSON text`, { cause, meta: { operation, field } });
  }
}

const personCodec: RecordCodec<Person> = {
  name: 'persons',
  keyOf: (p) => p.id,
  versionOf: (p) => p.version,
  withVersion: (p, version) => ({ ...p, version }),
  toFields: (p) => ({
    teamsUserId: p.teamsUserId,
    displayName: p.displayName,
    email: p.email,
    mobile: p.mobile,
    answers: p.answers.map((a) => ({ questionId: a.questionId, salt: a.salt, hash: a.hash, params: { N: a.params.N, r: a.params.r, p: a.params.p } })),
    cardId: p.cardId,
    selfServiceLock: p.selfServiceLock === null ? null : { at: p.selfServiceLock.at, caseRef: p.selfServiceLock.caseRef, reason: p.selfServiceLock.reason },
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    version: p.version,
  }),
  fromDoc: (d) => {
    const lock = d.selfServiceLock as Document | null | undefined;
    return {
      id: str(d.k),
      teamsUserId: str(d.teamsUserId),
      displayName: str(d.displayName),
      email: str(d.email),
      mobile: strOrNull(d.mobile),
      answers: ((d.answers ?? []) as Document[]).map((a) => ({
        questionId: str(a.questionId),
        salt: str(a.salt),
        hash: str(a.hash),
        params: { N: num(a.params?.N), r: num(a.params?.r), p: num(a.params?.p) },
      })),
      cardId: strOrNull(d.cardId),
      selfServiceLock: lock ? { at: str(lock.at), caseRef: str(lock.caseRef), reason: str(lock.reason) as 'answers_failed' | 'locked_by_ra' } : null,
      createdAt: str(d.createdAt),
      updatedAt: str(d.updatedAt),
      version: num(d.version),
    };
  },
  uniques: [
    { field: 'teamsUserId', docField: 'teamsUserId', valueOf: (p) => p.teamsUserId },
    { field: 'cardId', docField: 'cardId', valueOf: (p) => p.cardId },
  ],
};

const cardCodec: RecordCodec<CardRecord> = {
  name: 'cards',
  keyOf: (c) => c.cardId,
  versionOf: (c) => c.version,
  withVersion: (c, version) => ({ ...c, version }),
  toFields: (c) => ({ personId: c.personId, puk: c.puk, pendingPuk: c.pendingPuk, updatedAt: c.updatedAt, version: c.version }),
  fromDoc: (d) => ({ cardId: str(d.k), personId: str(d.personId), puk: strOrNull(d.puk), pendingPuk: strOrNull(d.pendingPuk), updatedAt: str(d.updatedAt), version: num(d.version) }),
  uniques: [],
};

const journeyCodec: RecordCodec<JourneyRecord> = {
  name: 'journeys',
  keyOf: (j) => j.key,
  versionOf: (j) => j.version,
  withVersion: (j, version) => ({ ...j, version }),
  toFields: (j) => ({
    personId: j.personId,
    kind: j.kind,
    runId: j.runId,
    state: JSON.stringify(j.state),
    counters: JSON.stringify(j.counters),
    pendingEffects: JSON.stringify(j.pendingEffects),
    pendingCount: j.pendingEffects.length,
    ui: { activityId: j.ui.activityId },
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    version: j.version,
  }),
  fromDoc: (d, op) => ({
    key: str(d.k),
    personId: str(d.personId),
    kind: str(d.kind) as JourneyRecord['kind'],
    runId: str(d.runId),
    state: parseJson(d.state, op, 'journeys.state'),
    counters: parseJson(d.counters, op, 'journeys.counters'),
    pendingEffects: parseJson(d.pendingEffects, op, 'journeys.pendingEffects'),
    ui: { activityId: strOrNull((d.ui as Document | undefined)?.activityId) },
    createdAt: str(d.createdAt),
    updatedAt: str(d.updatedAt),
    version: num(d.version),
  }),
  uniques: [],
};

const deviceCodec: RecordCodec<Device> = {
  name: 'devices',
  keyOf: (d) => d.id,
  versionOf: (d) => d.version,
  withVersion: (d, version) => ({ ...d, version }),
  toFields: (d) => ({
    personId: d.personId,
    workstation: d.workstation,
    credentialHash: d.credentialHash,
    createdAt: d.createdAt,
    lastSeenAt: d.lastSeenAt,
    revokedAt: d.revokedAt,
    connectedInstance: d.connectedInstance,
    version: d.version,
  }),
  fromDoc: (d) => ({
    id: str(d.k),
    personId: str(d.personId),
    workstation: str(d.workstation),
    credentialHash: str(d.credentialHash),
    createdAt: str(d.createdAt),
    lastSeenAt: strOrNull(d.lastSeenAt),
    revokedAt: strOrNull(d.revokedAt),
    connectedInstance: strOrNull(d.connectedInstance),
    version: num(d.version),
  }),
  uniques: [],
};

const pairingCodec: RecordCodec<Pairing> = {
  name: 'pairings',
  deletable: true,
  keyOf: (p) => p.id,
  versionOf: (p) => p.version,
  withVersion: (p, version) => ({ ...p, version }),
  toFields: (p) => ({
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
    gcAfter: new Date(Date.parse(p.expiresAt) + MONGO_GC_TTL_INDEX.graceMs),
  }),
  fromDoc: (d) => ({
    id: str(d.k),
    deviceCodeHash: str(d.deviceCodeHash),
    userCodeHash: str(d.userCodeHash),
    workstation: str(d.workstation),
    status: str(d.status) as Pairing['status'],
    personId: strOrNull(d.personId),
    deviceId: strOrNull(d.deviceId),
    createdAt: str(d.createdAt),
    expiresAt: str(d.expiresAt),
    lastPolledAt: strOrNull(d.lastPolledAt),
    version: num(d.version),
  }),
  uniques: [
    { field: 'deviceCodeHash', docField: 'deviceCodeHash', valueOf: (p) => p.deviceCodeHash },
    { field: 'userCodeHash', docField: 'userCodeHash', valueOf: (p) => p.userCodeHash },
  ],
};

const caseCodec: RecordCodec<RaCase> = {
  name: 'cases',
  keyOf: (c) => c.ref,
  versionOf: (c) => c.version,
  withVersion: (c, version) => ({ ...c, version }),
  toFields: (c) => ({
    personId: c.personId,
    reason: c.reason,
    status: c.status,
    context: JSON.stringify(c.context),
    sourceId: c.sourceId,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    version: c.version,
  }),
  fromDoc: (d, op) => ({
    ref: str(d.k),
    personId: str(d.personId),
    reason: str(d.reason) as RaCase['reason'],
    status: str(d.status) as RaCase['status'],
    context: parseJson(d.context, op, 'cases.context'),
    sourceId: str(d.sourceId),
    createdAt: str(d.createdAt),
    updatedAt: str(d.updatedAt),
    version: num(d.version),
  }),
  uniques: [{ field: 'sourceId', docField: 'sourceId', valueOf: (c) => c.sourceId }],
};

const [personTeamsUserId, personCardId] = personCodec.uniques as [UniqueFieldSpec<Person>, UniqueFieldSpec<Person>];
const [pairingDeviceCodeHash, pairingUserCodeHash] = pairingCodec.uniques as [UniqueFieldSpec<Pairing>, UniqueFieldSpec<Pairing>];

function auditOf(d: Document, op: string): AuditEntry {
  return { id: str(d._id), at: str(d.at), actor: str(d.actor), action: str(d.action), personId: strOrNull(d.personId), details: parseJson(d.details, op, 'audit.details') };
}

// ---------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------

class MongoStorageImpl implements MongoStorage {
  readonly persons: PersonRepository;
  readonly cards: CardRepository;
  readonly journeys: JourneyRepository;
  readonly devices: DeviceRepository;
  readonly pairings: PairingRepository;
  readonly cases: CaseRepository;
  readonly audit: AuditLog;
  readonly conversations: ConversationRepository;
  readonly databaseName: string;
  private closed = false;
  private readonly versionedCollections: VersionedCollection<unknown>[] = [];
  private gcTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    private readonly ownsClient: boolean,
    private readonly caps: MongoCapabilities,
    versioned: VersionedOptions,
    private readonly logger?: Logger,
  ) {
    this.databaseName = db.databaseName;
    const run = <T>(operation: string, fn: () => Promise<T>): Promise<T> => this.run(operation, fn);
    const { limit: limitSchema, id: idSchema, timestamp: timestampSchema, effectIds: effectIdsSchema, version: versionSchema } = ArgumentSchemas;
    const checkVersion = (v: number, op: string) => validate(versionSchema, v, op, 'expectedVersion');
    const claims = new ClaimRegistry(db, MONGO_COLLECTION.claims, versioned.claimGraceMs ?? VERSIONED_DEFAULTS.claimGraceMs);
    const locks = new NameLocks();
    const store = <T>(name: MongoCollectionName, codec: RecordCodec<T>) => {
      const collection = new VersionedCollection<T>(db, name, codec, claims, locks, versioned);
      this.versionedCollections.push(collection as VersionedCollection<unknown>);
      return collection;
    };

    // persons ---------------------------------------------------------------
    const persons = store(MONGO_COLLECTION.persons, personCodec);
    this.persons = {
      get: (id) => run('persons.get', () => persons.get(validate(idSchema, id, 'persons.get', 'id'), 'persons.get')),
      findByTeamsUserId: (teamsUserId) =>
        run('persons.findByTeamsUserId', () =>
          persons.findByUnique(personTeamsUserId, validate(idSchema, teamsUserId, 'persons.findByTeamsUserId', 'teamsUserId'), 'persons.findByTeamsUserId'),
        ),
      findByCardId: (cardId) => run('persons.findByCardId', () => persons.findByUnique(personCardId, String(cardId), 'persons.findByCardId')),
      insert: (p) =>
        run('persons.insert', () => {
          validate(PersonSchema, p, 'persons.insert');
          return persons.insert(p, 'persons.insert');
        }),
      save: (p, expectedVersion) =>
        run('persons.save', () => {
          validate(PersonSchema, p, 'persons.save');
          checkVersion(expectedVersion, 'persons.save');
          return persons.save(p, expectedVersion, 'persons.save');
        }),
    };

    // cards -------------------------------------------------------------------
    const cards = store(MONGO_COLLECTION.cards, cardCodec);
    this.cards = {
      get: (cardId) => run('cards.get', () => cards.get(String(cardId), 'cards.get')),
      insert: (card) =>
        run('cards.insert', () => {
          validate(CardRecordSchema, card, 'cards.insert');
          return cards.insert(card, 'cards.insert');
        }),
      save: (card, expectedVersion) =>
        run('cards.save', () => {
          validate(CardRecordSchema, card, 'cards.save');
          checkVersion(expectedVersion, 'cards.save');
          return cards.save(card, expectedVersion, 'cards.save');
        }),
    };

    // journeys ----------------------------------------------------------------
    const journeys = store(MONGO_COLLECTION.journeys, journeyCodec);
    const editEffects = (op: string, key: string, effectIds: string[], edit: (effects: StoredEffect[], ids: Set<string>) => StoredEffect[] | null) =>
      run(op, async () => {
        validate(idSchema, key, op, 'key');
        validate(effectIdsSchema, effectIds, op, 'effectIds');
        if (effectIds.length === 0) return;
        const ids = new Set(effectIds);
        await journeys.edit(
          key,
          (current) => {
            const next = edit(current.pendingEffects, ids);
            return next === null ? null : { ...current, pendingEffects: next };
          },
          op,
        );
      });
    this.journeys = {
      get: (key) => run('journeys.get', () => journeys.get(validate(idSchema, key, 'journeys.get', 'key'), 'journeys.get')),
      insert: (j) =>
        run('journeys.insert', () => {
          validate(JourneyRecordSchema, j, 'journeys.insert');
          return journeys.insert(j, 'journeys.insert');
        }),
      save: (j, expectedVersion) =>
        run('journeys.save', () => {
          validate(JourneyRecordSchema, j, 'journeys.save');
          checkVersion(expectedVersion, 'journeys.save');
          return journeys.save(j, expectedVersion, 'journeys.save');
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
          journeys.list(
            { pendingCount: { $gt: 0 } },
            (j) => j.pendingEffects.length > 0,
            { updatedAt: 1 },
            validate(limitSchema, limit, 'journeys.listWithPendingEffects', 'limit'),
            'journeys.listWithPendingEffects',
          ),
        ),
    };

    // devices -----------------------------------------------------------------
    const devices = store(MONGO_COLLECTION.devices, deviceCodec);
    this.devices = {
      get: (id) => run('devices.get', () => devices.get(validate(idSchema, id, 'devices.get', 'id'), 'devices.get')),
      insert: (d) =>
        run('devices.insert', () => {
          validate(DeviceSchema, d, 'devices.insert');
          return devices.insert(d, 'devices.insert');
        }),
      save: (d, expectedVersion) =>
        run('devices.save', () => {
          validate(DeviceSchema, d, 'devices.save');
          checkVersion(expectedVersion, 'devices.save');
          return devices.save(d, expectedVersion, 'devices.save');
        }),
      listByPerson: (personId) =>
        run('devices.listByPerson', () => {
          const id = validate(idSchema, personId, 'devices.listByPerson', 'personId');
          return devices.list({ personId: id }, (d) => d.personId === id, { createdAt: 1 }, null, 'devices.listByPerson');
        }),
    };

    // pairings ----------------------------------------------------------------
    const pairings = store(MONGO_COLLECTION.pairings, pairingCodec);
    this.pairings = {
      getByDeviceCodeHash: (hash) => run('pairings.getByDeviceCodeHash', () => pairings.findByUnique(pairingDeviceCodeHash, String(hash), 'pairings.getByDeviceCodeHash')),
      getByUserCodeHash: (hash) => run('pairings.getByUserCodeHash', () => pairings.findByUnique(pairingUserCodeHash, String(hash), 'pairings.getByUserCodeHash')),
      insert: (p) =>
        run('pairings.insert', () => {
          validate(PairingSchema, p, 'pairings.insert');
          return pairings.insert(p, 'pairings.insert');
        }),
      save: (p, expectedVersion) =>
        run('pairings.save', () => {
          validate(PairingSchema, p, 'pairings.save');
          checkVersion(expectedVersion, 'pairings.save');
          return pairings.save(p, expectedVersion, 'pairings.save');
        }),
      deleteExpired: (before) =>
        run('pairings.deleteExpired', () => {
          const cutoff = validate(timestampSchema, before, 'pairings.deleteExpired', 'before');
          return pairings.deleteWhere({ expiresAt: { $lt: cutoff } }, (p) => p.expiresAt < cutoff, 'pairings.deleteExpired');
        }),
    };

    // cases -------------------------------------------------------------------
    const cases = store(MONGO_COLLECTION.cases, caseCodec);
    this.cases = {
      get: (ref) => run('cases.get', () => cases.get(String(ref), 'cases.get')),
      insert: (c) =>
        run('cases.insert', () => {
          validate(RaCaseSchema, c, 'cases.insert');
          return cases.insert(c, 'cases.insert');
        }),
      save: (c, expectedVersion) =>
        run('cases.save', () => {
          validate(RaCaseSchema, c, 'cases.save');
          checkVersion(expectedVersion, 'cases.save');
          return cases.save(c, expectedVersion, 'cases.save');
        }),
      listByPerson: (personId) =>
        run('cases.listByPerson', () => {
          const id = validate(idSchema, personId, 'cases.listByPerson', 'personId');
          return cases.list({ personId: id }, (c) => c.personId === id, { createdAt: 1 }, null, 'cases.listByPerson');
        }),
      listOpen: (limit) =>
        run('cases.listOpen', () => cases.list({ status: 'open' }, (c) => c.status === 'open', { createdAt: 1 }, validate(limitSchema, limit, 'cases.listOpen', 'limit'), 'cases.listOpen')),
    };

    // audit -------------------------------------------------------------------
    // Append-only: the adapter has no update or delete on this collection.
    // `seq` (an ObjectId made here) orders entries with the same `at`: in
    // append order within a process; across instances, by time to the second.
    const audit = db.collection<Document & { _id: string }>(MONGO_COLLECTION.audit);
    this.audit = {
      append: (e) =>
        run('audit.append', async () => {
          validate(AuditEntrySchema, e, 'audit.append');
          try {
            await audit.insertOne({ _id: e.id, seq: new ObjectId(), at: e.at, actor: e.actor, action: e.action, personId: e.personId, details: JSON.stringify(e.details) });
          } catch (err) {
            // Same id appended before: idempotent, keep the first.
            if (!isDuplicateKey(err)) throw err;
          }
        }),
      list: (filter) =>
        run('audit.list', async () => {
          const limit = validate(limitSchema, filter?.limit, 'audit.list', 'limit');
          const query: Filter<Document & { _id: string }> = filter.personId === undefined ? {} : { personId: validate(idSchema, filter.personId, 'audit.list', 'personId') };
          const docs = await audit.find(query).sort({ at: 1, seq: 1 }).limit(limit).toArray();
          return docs.map((d) => auditOf(d, 'audit.list'));
        }),
    };

    // conversations -----------------------------------------------------------
    // Last writer wins (a routing hint, not state), so a plain replace-or-insert is right here.
    const conversations = db.collection<Document & { _id: string }>(MONGO_COLLECTION.conversations);
    this.conversations = {
      get: (personId) =>
        run('conversations.get', async () => {
          const d = await conversations.findOne({ _id: validate(idSchema, personId, 'conversations.get', 'personId') });
          return d === null
            ? null
            : ({ personId: str(d._id), reference: parseJson(d.reference, 'conversations.get', 'conversations.reference'), updatedAt: str(d.updatedAt) } satisfies ConversationRecord);
        }),
      put: (record) =>
        run('conversations.put', async () => {
          validate(ConversationRecordSchema, record, 'conversations.put');
          const doc = { _id: record.personId, reference: JSON.stringify(record.reference), updatedAt: record.updatedAt };
          // Two first puts racing: the upsert that loses the insert race meets a duplicate key; replacing again wins.
          for (let attempt = 0; ; attempt++) {
            try {
              await conversations.replaceOne({ _id: record.personId }, doc, { upsert: true });
              return;
            } catch (err) {
              if (!isDuplicateKey(err) || attempt >= 2) throw err;
            }
          }
        }),
    };
  }

  private async run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: storage is closed`, { meta: { operation } });
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        // FerretDB's SQLite backend refuses a write now and then when two processes write
        // ("database is locked"): nothing was written by the refused step, and every step
        // here is an insert-only revision or a read, so a short jittered retry is safe (a
        // revision that did land is found as a lost race, and the caller re-reads).
        if (attempt < 4 && isBackendLocked(err)) {
          await new Promise((r) => setTimeout(r, 15 * attempt + Math.floor(Math.random() * 40)));
          continue;
        }
        throw toStorageError(operation, err);
      }
    }
  }

  async ping(): Promise<void> {
    await this.run('ping', () => this.db.command({ ping: 1 }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.gcTimer) clearInterval(this.gcTimer);
    await Promise.all(this.versionedCollections.map((c) => c.flush()));
    if (this.ownsClient) await this.client.close();
  }

  collectGarbage(): Promise<number> {
    return this.run('collectGarbage', async () => {
      let deleted = 0;
      for (const c of this.versionedCollections) deleted += await c.collectGarbage();
      return deleted;
    });
  }

  /** Bring heads up to date for records written since `since` (start-up). */
  async repairHeads(since: Date): Promise<number> {
    return this.run('open.repairHeads', async () => {
      let repaired = 0;
      for (const c of this.versionedCollections) repaired += await c.repairHeads(since);
      return repaired;
    });
  }

  startGc(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.gcTimer = setInterval(() => {
      this.collectGarbage().then(
        (deleted) => deleted > 0 && this.logger?.debug({ deleted }, 'storage revisions collected'),
        (err: unknown) => this.logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'storage revision collection failed; will retry'),
      );
    }, intervalMs);
    this.gcTimer.unref();
  }

  capabilities(): MongoCapabilities {
    return { ...this.caps };
  }
}
