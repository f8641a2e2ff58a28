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
import type { RateHitResult, Storage } from '../storage.port';
import { windowEnd, windowState, type RecentHit } from '../storage.rate-hits';
import { journeyEffectEdits, lowerCased, versionedRepository, type StorageRepositories, type StoreRunner } from '../storage.repository';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import { ArgumentSchemas, RECORDS, recordToStore, validate } from '../storage.schemas';
import { isDuplicateKey, isUnavailable, MONGO_CODE, toStorageError } from './mongodb.errors';
import { MONGO_COLLECTION, MONGO_GC_TTL_INDEX, MONGO_INDEXES, MONGO_SCHEMA_VERSION, type MongoCollectionName } from './mongodb.indexes';
import { documentCodec, type DocumentCodec } from './mongodb-document.codec';
import { ClaimRegistry, NameLocks, VERSIONED_DEFAULTS, VersionedCollection, type VersionedOptions } from './mongodb-versioned.collection';

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

/** One rate-limit hit: `_id` `<key>#<n>`, `k` the key, `n` its number (0, 1, 2...), `at` and `until` (its window's end) ISO 8601 UTC. */
type RateHitDoc = { _id: string; k: string; n: number; at: string; until: string };

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
// Document codecs, derived from the record schemas (mongodb-document.codec.ts):
// only which fields are JSON text and which are derived is said here.
// ---------------------------------------------------------------------------

const CODECS = {
  persons: documentCodec(RECORDS.persons, { json: [] }),
  cards: documentCodec(RECORDS.cards, { json: [] }),
  journeys: documentCodec(RECORDS.journeys, { json: ['state', 'counters', 'pendingEffects'], derived: { pendingCount: (j) => j.pendingEffects.length } }),
  devices: documentCodec(RECORDS.devices, { json: [] }),
  pairings: documentCodec(RECORDS.pairings, { json: [], deletable: true, derived: { gcAfter: (p) => new Date(Date.parse(p.expiresAt) + MONGO_GC_TTL_INDEX.graceMs) } }),
  cases: documentCodec(RECORDS.cases, { json: ['context'] }),
  audit: documentCodec(RECORDS.audit, { json: ['details'] }),
  conversations: documentCodec(RECORDS.conversations, { json: ['reference'] }),
} as const;

// ---------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------

/** The port's repositories are assigned in the constructor (`Object.assign`), typed by this merged interface. */
interface MongoStorageImpl extends StorageRepositories {}
class MongoStorageImpl implements MongoStorage {  readonly databaseName: string;
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
    const runner: StoreRunner = { read: (op, fn) => this.run(op, async () => fn()), write: (op, fn) => this.run(op, async () => fn()) };
    const { limit: limitSchema, id: idSchema, timestamp: timestampSchema } = ArgumentSchemas;
    const claims = new ClaimRegistry(db, MONGO_COLLECTION.claims, versioned.claimGraceMs ?? VERSIONED_DEFAULTS.claimGraceMs);
    const locks = new NameLocks();
    const store = <T>(codec: DocumentCodec<T>) => {
      const collection = new VersionedCollection<T>(db, codec.name, codec, claims, locks, versioned);
      this.versionedCollections.push(collection as VersionedCollection<unknown>);
      return { collection, repository: versionedRepository(codec.descriptor, collection, runner) };
    };

    const [persons, journeys, devices, pairings, cases] = [store(CODECS.persons), store(CODECS.journeys), store(CODECS.devices), store(CODECS.pairings), store(CODECS.cases)] as const;
    const audit = db.collection<Document & { _id: string }>(MONGO_COLLECTION.audit);
    const conversations = db.collection<Document & { _id: string }>(MONGO_COLLECTION.conversations);
    const rateHits = db.collection<RateHitDoc>(MONGO_COLLECTION.rateHits);
    /** A key's `limit` most recent hits, newest first. */
    const recentHits = async (key: string, limit: number): Promise<RecentHit[]> =>
      (await rateHits.find({ k: key }, { projection: { n: 1, at: 1 } }).sort({ n: -1 }).limit(limit).toArray()).map((d) => ({ n: Number(d.n), at: String(d.at) }));

    Object.assign(this, {
      persons: {
        ...persons.repository.core,
        findByTeamsUserId: persons.repository.findBy('teamsUserId', 'findByTeamsUserId'),
        findByCardId: persons.repository.findBy('cardId', 'findByCardId'),
        listByEmail: lowerCased(persons.repository.listBy('email', 'createdAt', 'listByEmail')),
      },
      cards: store(CODECS.cards).repository.core,
      journeys: {
        ...journeys.repository.core,
        // Effect edits insert a revision that keeps the version.
        ...journeyEffectEdits(runner, (key, change, op) => journeys.collection.edit(key, change, op)),
        listWithPendingEffects: (limit, options) => {
          const op = 'journeys.listWithPendingEffects';
          const onUnreadable = options?.onUnreadable ?? (() => undefined);
          return run(op, () => journeys.collection.list({ pendingCount: { $gt: 0 } }, (j) => j.pendingEffects.length > 0, { updatedAt: 1 }, validate(limitSchema, limit, op, 'limit'), op, onUnreadable));
        },
      },
      devices: { ...devices.repository.core, listByPerson: devices.repository.listBy('personId', 'createdAt', 'listByPerson') },
      pairings: {
        getByDeviceCodeHash: pairings.repository.findBy('deviceCodeHash', 'getByDeviceCodeHash'),
        getByUserCodeHash: pairings.repository.findBy('userCodeHash', 'getByUserCodeHash'),
        insert: pairings.repository.core.insert,
        save: pairings.repository.core.save,
        deleteExpired: (before) => {
          const op = 'pairings.deleteExpired';
          return run(op, () => {
            const cutoff = validate(timestampSchema, before, op, 'before');
            return pairings.collection.deleteWhere({ expiresAt: { $lt: cutoff } }, (p) => p.expiresAt < cutoff, op);
          });
        },
      },
      cases: {
        ...cases.repository.core,
        listByPerson: cases.repository.listBy('personId', 'createdAt', 'listByPerson'),
        listOpen: (limit) => {
          const op = 'cases.listOpen';
          return run(op, () => cases.collection.list({ status: 'open' }, (c) => c.status === 'open', { createdAt: 1 }, validate(limitSchema, limit, op, 'limit'), op));
        },
        listActive: (limit) => {
          const op = 'cases.listActive';
          return run(op, () => cases.collection.list({ status: { $ne: 'closed' } }, (c) => c.status !== 'closed', { createdAt: 1 }, validate(limitSchema, limit, op, 'limit'), op));
        },
      },
      // Append-only: the adapter has no update or delete on this collection.
      // `seq` (an ObjectId made here) orders entries with the same `at`: in
      // append order within a process; across instances, by time to the second.
      audit: {
        append: (e) =>
          run('audit.append', async () => {
            const entry = recordToStore(RECORDS.audit, e, 'audit.append');
            try {
              await audit.insertOne({ ...CODECS.audit.toFields(entry), _id: entry.id, seq: new ObjectId() });
            } catch (err) {
              // Same id appended before: idempotent, keep the first.
              if (!isDuplicateKey(err)) throw err;
            }
          }),
        list: (filter) =>
          run('audit.list', async () => {
            const op = 'audit.list';
            const limit = validate(limitSchema, filter?.limit, op, 'limit');
            const query: Filter<Document & { _id: string }> = filter.personId === undefined ? {} : { personId: validate(idSchema, filter.personId, op, 'personId') };
            const at: Record<string, string> = {};
            if (filter.from !== undefined) at['$gte'] = validate(timestampSchema, filter.from, op, 'from');
            if (filter.to !== undefined) at['$lt'] = validate(timestampSchema, filter.to, op, 'to');
            if (Object.keys(at).length > 0) query['at'] = at;
            const docs = await audit.find(query).sort({ at: 1, seq: 1 }).limit(limit).toArray();
            return docs.map((d) => CODECS.audit.fromKeyedDoc(d, 'audit.list'));
          }),
      },
      // Rate-limit hits: a hit claims `_id` `<key>#<n>`, n one past the key's newest hit, after checking
      // the window (single-winner insert; conditional updates are not atomic on FerretDB v1). Losing
      // the insert means another instance recorded hit n just now: count it and try n + 1.
      rateHits: {
        peek: (key, limit, since) => {
          const op = 'rateHits.peek';
          return run(op, async () => {
            validate(idSchema, key, op, 'key');
            validate(limitSchema, limit, op, 'limit');
            validate(timestampSchema, since, op, 'since');
            return windowState(await recentHits(key, limit), limit, since);
          });
        },
        record: (key, limit, atTime, since) => {
          const op = 'rateHits.record';
          return run(op, async () => {
            validate(idSchema, key, op, 'key');
            validate(limitSchema, limit, op, 'limit');
            validate(timestampSchema, atTime, op, 'at');
            validate(timestampSchema, since, op, 'since');
            const recent = await recentHits(key, limit);
            const until = windowEnd(atTime, since);
            // Each lost insert adds a hit, so this ends within `limit` rounds.
            for (;;) {
              const state = windowState(recent, limit, since);
              if (state.full) return { recorded: false, oldestInWindow: state.oldestInWindow } satisfies RateHitResult;
              const n = recent.length > 0 ? recent[0]!.n + 1 : 0;
              try {
                await rateHits.insertOne({ _id: `${key}#${n}`, k: key, n, at: atTime, until });
                return { recorded: true, inWindow: state.inWindow + 1 } satisfies RateHitResult;
              } catch (err) {
                if (!isDuplicateKey(err)) throw err;
                // Another instance's hit n: recorded about now, so inside the window.
                recent.unshift({ n, at: atTime });
                if (recent.length > limit) recent.pop();
              }
            }
          });
        },
        deleteExpired: (now) => {
          const op = 'rateHits.deleteExpired';
          return run(op, async () => (await rateHits.deleteMany({ until: { $lt: validate(timestampSchema, now, op, 'now') } })).deletedCount);
        },
      },
      // Last writer wins (a routing hint, not state), so a plain replace-or-insert is right here.
      conversations: {
        get: (personId) =>
          run('conversations.get', async () => {
            const d = await conversations.findOne({ _id: validate(idSchema, personId, 'conversations.get', 'personId') });
            return d === null ? null : CODECS.conversations.fromKeyedDoc(d, 'conversations.get');
          }),
        put: (record) =>
          run('conversations.put', async () => {
            const checked = recordToStore(RECORDS.conversations, record, 'conversations.put');
            const doc = { ...CODECS.conversations.toFields(checked), _id: checked.personId };
            // Two first puts racing: the upsert that loses the insert race meets a duplicate key; replacing again wins.
            for (let attempt = 0; ; attempt++) {
              try {
                await conversations.replaceOne({ _id: checked.personId }, doc, { upsert: true });
                return;
              } catch (err) {
                if (!isDuplicateKey(err) || attempt >= 2) throw err;
              }
            }
          }),
      },
    } satisfies StorageRepositories);
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
