/**
 * Records kept as insert-only revision documents, so that compare-and-set and
 * uniqueness rest on the one write every MongoDB-protocol server makes atomic:
 * inserting a document whose `_id` is new. Every read on the hot path is a
 * lookup by `_id`.
 *
 * Why not `updateOne({ _id, version })`: FerretDB v1 runs an update as a read,
 * a change in memory and `UPDATE ... WHERE _id = ?`, without re-checking the
 * filter, so two writers holding one version both "win" (measured: 5 of 50
 * concurrent `replaceOne` and 18 of 50 `findOneAndUpdate` matched). Inserts of
 * one `_id` have exactly one winner there, as on MongoDB, Atlas and Cosmos DB.
 * Why only `_id` lookups on the hot path: FerretDB v1 on SQLite uses no index
 * but `_id` (any other filter scans the collection in Go).
 *
 * Layout, per record with key K, in two collections:
 * - `<name>_rev`: the truth. `K#0` is written by `insert`; each later write (a
 *   `save`, an effect edit) inserts `K#<r+1>` after reading `K#<r>` as the
 *   latest. Two writers from one revision meet on one `_id`: one wins, the
 *   other re-reads. The port's `version` is a field; revisions also count the
 *   writes that keep the version.
 * - `<name>`: one head per record, `_id` = K, a copy of the latest revision
 *   with its `r`, rewritten after each write (in the background, in revision
 *   order per process). It is a cache: a reader takes the head (or the
 *   revision this process saw last) and looks for `K#<r+1>`, `K#<r+2>`... so a
 *   head left behind (a crash between the two writes, two instances' head
 *   writes landing out of order) is never believed. Lists run on heads, then
 *   each hit is checked against its latest revision; a record whose head lags
 *   may be missing from a list until its next write, a read of it through a
 *   list, or the start-up repair of the last hour's writes.
 * - Revisions older than {@link VERSIONED_DEFAULTS.gcAgeMs}, except each
 *   record's last two, are deleted by {@link VersionedCollection.collectGarbage}.
 * - Unique fields other than the key are claimed in `claims` before they are
 *   written (see {@link ClaimRegistry}); lookups by them go through the claims.
 *
 * WARNING: two residual windows, both needing a process to stall between two
 * of its own awaits: longer than the claim grace (30 s) between claiming a
 * value and writing its revision, or longer than the GC age (1 h) between
 * reading a record and inserting its next revision.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Collection, Db, Document, Filter, Sort } from 'mongodb';
import type { InsertResult, SaveResult } from '../storage.port';
import type { VersionedStore } from '../storage.repository';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import { isDuplicateKey } from './mongodb.errors';

/** Tuning of the versioned layout. */
export const VERSIONED_DEFAULTS = {
  /** Revisions older than this, except each record's last two, are garbage, ms (1 hour). */
  gcAgeMs: 60 * 60 * 1000,
  /** Heads of records written within this window are checked at start-up, ms (1 hour). */
  repairWindowMs: 60 * 60 * 1000,
  /** Retries of one write that keeps meeting a newer revision. */
  writeAttempts: 200,
  /**
   * A claim younger than this whose owner does not (yet) hold the value counts
   * as held: its writer is between claiming and writing, ms (30 s).
   */
  claimGraceMs: 30_000,
  /** How often a loser of a first-write race looks for the winner's record, ms. */
  claimPollMs: 20,
  /** Candidate heads read per page when listing with a limit. */
  listPage: 100,
  /** Records whose latest revision this process remembers (then a read is one lookup), per collection. */
  cacheEntries: 10_000,
} as const;

/** Tuning that a test or a deployment may change. */
export interface VersionedOptions {
  gcAgeMs?: number;
  claimGraceMs?: number;
}

/** A unique field (other than the key) of a record type. */
export interface UniqueFieldSpec<T> {
  /** Port field name, for UNIQUE_VIOLATION messages (`cardId`). */
  field: string;
  /** Field name in the documents. */
  docField: string;
  /** The record's value, or null when it has none (null is never unique). */
  valueOf(record: T): string | null;
}

/** How one record type maps to documents (derived from its schema by `documentCodec`, mongodb-document.codec.ts). */
export interface RecordCodec<T> {
  /** Repository name for messages and claim scopes (`persons`). */
  name: string;
  keyOf(record: T): string;
  /** The record's fields as a document (no `_id`, `k`, `r`, `w`). */
  toFields(record: T): Document;
  /** Rebuild the record from a head or revision document (`k` holds the key). */
  fromDoc(doc: Document, operation: string): T;
  versionOf(record: T): number;
  withVersion(record: T, version: number): T;
  uniques: UniqueFieldSpec<T>[];
  /** Records can be deleted (pairings): then this process does not remember latest revisions. */
  deletable?: boolean;
}

type Rev = Document & { _id: string; k: string; r: number; w: Date };
type Head = Document & { _id: string; k: string; r: number };

const revisionId = (key: string, revision: number): string => `${key}#${revision}`;

/** Name of the revisions collection of a repository collection. */
export const revisionsOf = (collection: string): string => `${collection}_rev`;

/**
 * Uniqueness of a value across records, by claim documents
 * `{ _id: '<scope>|<value>#<g>', owner, at }`, g = 0, 1, 2...
 *
 * The claim with the highest `g` is current (found by looking up `#0`, `#1`...
 * by `_id`). It is held when its owner's latest revision has the value, or
 * while it is younger than the grace (its writer is between claiming and
 * writing). One that is neither is taken over by inserting `g + 1`: one
 * winner. An owner renews its own claim the same way once it is older than
 * half the grace, so a renewal and a takeover cannot both win. Claims stay
 * while their record exists: a value a record dropped is free once its claim
 * is older than the grace.
 */
export class ClaimRegistry {
  private readonly claims: Collection<Document & { _id: string }>;

  constructor(
    db: Db,
    collectionName: string,
    private readonly graceMs: number,
  ) {
    this.claims = db.collection<Document & { _id: string }>(collectionName);
  }

  /** The current claim on a value (highest generation), or null. */
  async current(scope: string, value: string): Promise<{ g: number; owner: string; at: number } | null> {
    const s = `${scope}|${value}`;
    let found: { g: number; owner: string; at: number } | null = null;
    for (let g = 0; ; g++) {
      const doc = await this.claims.findOne({ _id: `${s}#${g}` });
      if (!doc) return found;
      found = { g, owner: String(doc.owner), at: doc.at instanceof Date ? doc.at.getTime() : 0 };
    }
  }

  /**
   * Claim `value` in `scope` for `owner`.
   *
   * @param holds - does this record key's latest revision hold the value?
   * @returns `{ status: 'claimed' }`, or `{ status: 'held', owner, settled }` when another
   *   record holds it (`settled` false: its writer may still be writing)
   */
  async claim(
    scope: string,
    value: string,
    owner: string,
    holds: (ownerKey: string) => Promise<boolean>,
  ): Promise<{ status: 'claimed' } | { status: 'held'; owner: string; settled: boolean }> {
    const s = `${scope}|${value}`;
    // Most values are new: try the first generation straight away (one round trip).
    if (await this.tryInsert(s, 0, owner)) return { status: 'claimed' };
    for (let attempt = 0; attempt < VERSIONED_DEFAULTS.writeAttempts; attempt++) {
      const current = await this.current(scope, value);
      if (current === null) {
        if (await this.tryInsert(s, 0, owner)) return { status: 'claimed' };
        continue;
      }
      const age = Date.now() - current.at;
      if (current.owner === owner && age < this.graceMs / 2) return { status: 'claimed' };
      if (current.owner !== owner) {
        if (await holds(current.owner)) return { status: 'held', owner: current.owner, settled: true };
        if (age < this.graceMs) return { status: 'held', owner: current.owner, settled: false };
      }
      if (await this.tryInsert(s, current.g + 1, owner)) return { status: 'claimed' };
    }
    throw new StorageError(STORAGE_ERROR.UNAVAILABLE, `claim ${scope}: kept racing other writers; gave up`, { meta: { operation: 'claim', scope } });
  }

  /** Remove the claims on a value when they are all `owner`'s (a deleted record), newest first. */
  async releaseValue(scope: string, value: string, owner: string): Promise<void> {
    const current = await this.current(scope, value);
    if (!current) return;
    const s = `${scope}|${value}`;
    const gens: Document[] = [];
    for (let g = 0; g <= current.g; g++) {
      const doc = await this.claims.findOne({ _id: `${s}#${g}` });
      if (!doc || String(doc.owner) !== owner) return;
      gens.push(doc);
    }
    for (const doc of gens.reverse()) await this.claims.deleteOne({ _id: doc._id as string, owner });
  }

  private async tryInsert(s: string, g: number, owner: string): Promise<boolean> {
    try {
      await this.claims.insertOne({ _id: `${s}#${g}`, owner, at: new Date() });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }
}

/**
 * In-process FIFO locks on names, taken all at once: an operation queues on
 * every name it needs in the same tick it is called, and runs when it is first
 * in each of those queues. So, within one process, writes touching one record
 * or one unique value run in the order they were called (as the embedded
 * adapter does), and they do not waste round trips racing each other.
 * Deadlock-free: the earliest waiting operation is first in all its queues.
 * Across processes, correctness still comes from the inserts alone.
 */
export class NameLocks {
  private readonly queues = new Map<string, Waiter[]>();

  /** Run `fn` holding every name in `names` (duplicates ignored). */
  async run<R>(names: string[], fn: () => Promise<R>): Promise<R> {
    const waiter: Waiter = { names: [...new Set(names)], wake: () => undefined };
    const ready = new Promise<void>((resolve) => {
      waiter.wake = resolve;
    });
    for (const name of waiter.names) {
      const queue = this.queues.get(name);
      if (queue) queue.push(waiter);
      else this.queues.set(name, [waiter]);
    }
    if (this.isFirst(waiter)) waiter.wake();
    await ready;
    try {
      return await fn();
    } finally {
      const next = new Set<Waiter>();
      for (const name of waiter.names) {
        const queue = this.queues.get(name)!;
        queue.shift();
        if (queue.length === 0) this.queues.delete(name);
        else next.add(queue[0]!);
      }
      for (const w of next) if (this.isFirst(w)) w.wake();
    }
  }

  private isFirst(waiter: Waiter): boolean {
    return waiter.names.every((name) => this.queues.get(name)?.[0] === waiter);
  }
}

interface Waiter {
  names: string[];
  wake: () => void;
}

/** A record's latest revision as read: its document (head or revision) and revision number. */
interface Latest {
  doc: Document;
  r: number;
}

/** One repository's records as heads plus revision documents: the adapter's one versioned-repository implementation. */
export class VersionedCollection<T> implements VersionedStore<T> {
  private readonly heads: Collection<Head>;
  private readonly revs: Collection<Rev>;
  private readonly gcAgeMs: number;
  /** Latest revision seen per key (revisions never change, so it only needs a look for a newer one). */
  private readonly known = new Map<string, Latest>();
  /** Head writes in flight, chained per key so that this process writes each head in revision order. */
  private readonly headWrites = new Map<string, Promise<void>>();

  constructor(
    db: Db,
    collectionName: string,
    private readonly codec: RecordCodec<T>,
    private readonly claims: ClaimRegistry,
    private readonly locks: NameLocks,
    options: VersionedOptions = {},
  ) {
    this.heads = db.collection<Head>(collectionName);
    this.revs = db.collection<Rev>(revisionsOf(collectionName));
    this.gcAgeMs = options.gcAgeMs ?? VERSIONED_DEFAULTS.gcAgeMs;
  }

  /**
   * The latest revision of `key`: start from what this process saw last (or
   * the head) and look up `#r+1`, `#r+2`... until one is missing. One lookup
   * when nothing changed.
   */
  private async latest(key: string, head?: Head | null): Promise<Latest | null> {
    let start: Latest | null = head === undefined ? (this.known.get(key) ?? null) : null;
    let h: Head | null = null;
    if (!start) {
      h = head === undefined ? await this.heads.findOne({ _id: key }) : head;
      start = h ? { doc: h, r: Number(h.r) } : null;
    }
    let found = start;
    for (let r = found ? found.r + 1 : 0; ; r++) {
      const next = await this.revs.findOne({ _id: revisionId(key, r) });
      if (!next) break;
      found = { doc: next, r };
    }
    if (found) {
      this.remember(key, found);
      if (h && found.doc !== h) this.queueHead(key, found.r, this.codec.fromDoc(found.doc, 'repair'));
    }
    return found;
  }

  private remember(key: string, latest: Latest): void {
    if (this.codec.deletable) return;
    this.known.delete(key);
    this.known.set(key, latest);
    if (this.known.size > VERSIONED_DEFAULTS.cacheEntries) this.known.delete(this.known.keys().next().value!);
  }

  /** Wait for head writes in flight (close, tests). */
  async flush(): Promise<void> {
    await Promise.all([...this.headWrites.values()]);
  }

  async get(key: string, operation: string): Promise<T | null> {
    const latest = await this.latest(key);
    return latest === null ? null : this.codec.fromDoc(latest.doc, operation);
  }

  /** The record whose latest revision holds unique field `field` = `value`, or null. */
  async findBy(field: string, value: string, operation: string): Promise<T | null> {
    const u = this.codec.uniques.find((x) => x.field === field);
    if (!u) throw new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: ${field} is not a unique field of ${this.codec.name}`, { meta: { operation, field } });
    return this.findByUnique(u, value, operation);
  }

  /** The record whose latest revision holds unique `value` (through the claims, so always by `_id`), or null. */
  async findByUnique(u: UniqueFieldSpec<T>, value: string, operation: string): Promise<T | null> {
    const claim = await this.claims.current(this.scope(u), value);
    if (!claim) return null;
    const latest = await this.latest(claim.owner);
    if (!latest || latest.doc[u.docField] !== value) return null;
    return this.codec.fromDoc(latest.doc, operation);
  }

  /**
   * Latest records matching: heads selected by `filter`, each checked against
   * its latest revision with `matches`, ordered by `sort` (head fields, then
   * key), at most `limit`.
   */
  async list(
    filter: Filter<Document>,
    matches: (record: T) => boolean,
    sort: Record<string, 1>,
    limit: number | null,
    operation: string,
    /** When given, a document that cannot be decoded is left out and reported here (key, CORRUPT_RECORD) instead of failing the list. */
    onUnreadable?: (key: string, error: StorageError) => void,
  ): Promise<T[]> {
    // This process's own writes are in the heads before it lists (read your writes).
    await this.flush();
    const out: { record: T; doc: Document }[] = [];
    const page = limit === null ? 0 : Math.max(limit, VERSIONED_DEFAULTS.listPage);
    for (let skip = 0; ; skip += page) {
      let cursor = this.heads.find(filter as Filter<Head>).sort({ ...sort, _id: 1 } as Sort);
      if (page > 0) cursor = cursor.skip(skip).limit(page);
      const candidates = await cursor.toArray();
      for (const head of candidates) {
        const latest = await this.latest(head.k, head);
        if (!latest) continue;
        let record: T;
        try {
          record = this.codec.fromDoc(latest.doc, operation);
        } catch (err) {
          if (!onUnreadable || !(err instanceof StorageError)) throw err;
          onUnreadable(String(head.k), err);
          continue;
        }
        if (matches(record)) out.push({ record, doc: latest.doc });
      }
      if (page === 0 || candidates.length < page || out.length >= limit!) break;
    }
    const keys = Object.keys(sort);
    out.sort((x, y) => {
      for (const f of keys) {
        const a = String(x.doc[f]);
        const b = String(y.doc[f]);
        if (a !== b) return a < b ? -1 : 1;
      }
      const ka = this.codec.keyOf(x.record);
      const kb = this.codec.keyOf(y.record);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    return (limit === null ? out : out.slice(0, limit)).map((o) => o.record);
  }

  /** Every record whose `field` equals `value`, ordered by `orderBy` then key (heads checked against their latest revision). */
  async listBy(field: string, value: string, orderBy: string, operation: string): Promise<T[]> {
    return this.list({ [field]: value }, (record) => (record as Record<string, unknown>)[field] === value, { [orderBy]: 1 }, null, operation);
  }

  /**
   * Insert a new record (revision 0). When its key or a unique field is taken,
   * answer `exists` with the record holding it (key first, then the unique
   * fields in order), waiting for a record whose writer is still writing.
   */
  async insert(record: T, operation: string): Promise<InsertResult<T>> {
    return this.locks.run(this.lockNames(record), () => this.insertLocked(record, operation));
  }

  private async insertLocked(record: T, operation: string): Promise<InsertResult<T>> {
    const key = this.codec.keyOf(record);
    for (let attempt = 0; attempt < VERSIONED_DEFAULTS.writeAttempts; attempt++) {
      const existing = await this.latest(key);
      if (existing) return { status: 'exists', record: this.codec.fromDoc(existing.doc, operation) };
      let heldBy: string | null = null;
      for (const u of this.codec.uniques) {
        const value = u.valueOf(record);
        if (value === null) continue;
        const result = await this.claimValue(u, value, key);
        if (result.status === 'held') {
          heldBy = result.owner;
          break;
        }
      }
      if (heldBy !== null) {
        const holder = await this.get(heldBy, operation);
        if (holder) return { status: 'exists', record: holder };
        continue; // The holder vanished meanwhile (a deleted pairing): claim again.
      }
      if (await this.writeRevision(record, key, 0)) return { status: 'created', record: this.codec.fromDoc(this.revisionDoc(record, key, 0), operation) };
      // Same key inserted by another writer meanwhile: the next turn reads and answers it.
    }
    throw this.gaveUp(operation);
  }

  /**
   * Compare-and-set: write `record` as version `expected + 1` when the latest
   * revision has version `expected`.
   *
   * @throws StorageError UNIQUE_VIOLATION when a unique field's new value is held by another record
   */
  async save(record: T, expected: number, operation: string): Promise<SaveResult> {
    return this.locks.run(this.lockNames(record), () => this.saveLocked(record, expected, operation));
  }

  private async saveLocked(record: T, expected: number, operation: string): Promise<SaveResult> {
    const key = this.codec.keyOf(record);
    const next = this.codec.withVersion(record, expected + 1);
    for (let attempt = 0; attempt < VERSIONED_DEFAULTS.writeAttempts; attempt++) {
      const latest = await this.latest(key);
      if (latest === null || Number(latest.doc.version) !== expected) return 'conflict';
      const current = this.codec.fromDoc(latest.doc, operation);
      for (const u of this.codec.uniques) {
        const value = u.valueOf(next);
        if (value === null || value === u.valueOf(current)) continue;
        const result = await this.claimValue(u, value, key);
        if (result.status === 'held') {
          throw new StorageError(STORAGE_ERROR.UNIQUE_VIOLATION, `${operation}: another record already has this ${u.field}`, { meta: { operation, field: u.field } });
        }
      }
      if (await this.writeRevision(next, key, latest.r + 1)) return 'saved';
      // Another write took that revision: if it kept the version (an effect edit), try again.
    }
    throw this.gaveUp(operation);
  }

  /**
   * Change a record without moving its version (effect edits): `change` gets the
   * latest record and returns the new one, or null for "nothing to do".
   */
  async edit(key: string, change: (current: T) => T | null, operation: string): Promise<void> {
    return this.locks.run([`${this.codec.name}#${key}`], () => this.editLocked(key, change, operation));
  }

  private async editLocked(key: string, change: (current: T) => T | null, operation: string): Promise<void> {
    for (let attempt = 0; attempt < VERSIONED_DEFAULTS.writeAttempts; attempt++) {
      const latest = await this.latest(key);
      if (latest === null) return;
      const current = this.codec.fromDoc(latest.doc, operation);
      const next = change(current);
      if (next === null) return;
      if (await this.writeRevision(this.codec.withVersion(next, this.codec.versionOf(current)), key, latest.r + 1)) return;
      await sleep(Math.floor(Math.random() * Math.min(20, 1 + attempt)));
    }
    throw this.gaveUp(operation);
  }

  /** Delete every record selected like {@link list} (head, revisions, claims). Returns how many. */
  async deleteWhere(filter: Filter<Document>, matches: (record: T) => boolean, operation: string): Promise<number> {
    const doomed = await this.list(filter, matches, {}, null, operation);
    let deleted = 0;
    for (const record of doomed) {
      const key = this.codec.keyOf(record);
      await this.headWrites.get(key);
      const result = await this.heads.deleteOne({ _id: key });
      await this.revs.deleteMany({ k: key });
      if (result.deletedCount > 0) deleted++;
      for (const u of this.codec.uniques) {
        const value = u.valueOf(record);
        if (value !== null) await this.claims.releaseValue(this.scope(u), value, key);
      }
    }
    return deleted;
  }

  /**
   * Delete revisions older than the GC age, keeping each record's last two.
   *
   * @returns how many revision documents were deleted
   */
  async collectGarbage(now = Date.now()): Promise<number> {
    const old = await this.revs.find({ w: { $lt: new Date(now - this.gcAgeMs) } }, { projection: { k: 1, r: 1 } }).toArray();
    const byKey = new Map<string, number[]>();
    for (const d of old) byKey.set(d.k, [...(byKey.get(d.k) ?? []), Number(d.r)]);
    let deleted = 0;
    for (const [key, revisions] of byKey) {
      const latest = await this.latest(key);
      if (!latest) continue;
      for (const r of revisions) {
        if (r < latest.r - 1) deleted += (await this.revs.deleteOne({ _id: revisionId(key, r) })).deletedCount;
      }
    }
    return deleted;
  }

  /**
   * Bring heads up to date for records written since `since` (after a crash
   * between a revision and its head, lists would miss the record until then).
   *
   * @returns how many heads were rewritten
   */
  async repairHeads(since: Date): Promise<number> {
    const recent = await this.revs.find({ w: { $gte: since } }, { projection: { k: 1, r: 1 } }).toArray();
    const newest = new Map<string, number>();
    for (const d of recent) newest.set(d.k, Math.max(newest.get(d.k) ?? -1, Number(d.r)));
    let repaired = 0;
    for (const [key, r] of newest) {
      const head = await this.heads.findOne({ _id: key }, { projection: { r: 1 } });
      if (head && Number(head.r) >= r) continue;
      await this.latest(key);
      repaired++;
    }
    return repaired;
  }

  /** Lock names of a write: the record key and each unique value it holds. */
  private lockNames(record: T): string[] {
    const names = [`${this.codec.name}#${this.codec.keyOf(record)}`];
    for (const u of this.codec.uniques) {
      const value = u.valueOf(record);
      if (value !== null) names.push(`${this.scope(u)}|${value}`);
    }
    return names;
  }

  private scope(u: UniqueFieldSpec<T>): string {
    return `${this.codec.name}.${u.docField}`;
  }

  private async claimValue(u: UniqueFieldSpec<T>, value: string, owner: string) {
    const holds = async (ownerKey: string) => {
      const latest = await this.latest(ownerKey);
      return latest !== null && latest.doc[u.docField] === value;
    };
    const deadline = Date.now() + 2 * VERSIONED_DEFAULTS.claimGraceMs;
    for (;;) {
      const result = await this.claims.claim(this.scope(u), value, owner, holds);
      // A writer that claimed but has not written yet: wait for its record (or for its claim to go stale).
      if (result.status === 'held' && !result.settled && Date.now() < deadline) {
        await sleep(VERSIONED_DEFAULTS.claimPollMs);
        if (await holds(result.owner)) return { status: 'held' as const, owner: result.owner, settled: true };
        continue;
      }
      return result;
    }
  }

  /** Insert revision `r` of the record, then its head; false when another writer took that revision. */
  private async writeRevision(record: T, key: string, r: number): Promise<boolean> {
    try {
      await this.revs.insertOne(this.revisionDoc(record, key, r));
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
    // The write is committed. The head is a cache, written after it (not
    // awaited): its failure must not turn a done write into an error, and
    // readers look past a head that is behind.
    this.remember(key, { doc: this.revisionDoc(record, key, r), r });
    this.queueHead(key, r, record);
    return true;
  }

  private queueHead(key: string, r: number, record: T): void {
    const previous = this.headWrites.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.writeHead(key, r, record)).catch(() => undefined);
    this.headWrites.set(key, next);
    void next.then(() => {
      if (this.headWrites.get(key) === next) this.headWrites.delete(key);
    });
  }

  private async writeHead(key: string, r: number, record: T): Promise<void> {
    try {
      await this.heads.replaceOne({ _id: key }, { ...this.codec.toFields(record), _id: key, k: key, r }, { upsert: true });
    } catch (err) {
      // Two first head writes racing on FerretDB: the loser's upsert meets the winner's insert.
      if (!isDuplicateKey(err)) throw err;
    }
  }

  private revisionDoc(record: T, key: string, r: number): Rev {
    return { ...this.codec.toFields(record), _id: revisionId(key, r), k: key, r, w: new Date() };
  }

  private gaveUp(operation: string): StorageError {
    return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the record kept changing under other writers; gave up after ${VERSIONED_DEFAULTS.writeAttempts} attempts`, {
      meta: { operation, attempts: VERSIONED_DEFAULTS.writeAttempts },
    });
  }
}
