/**
 * Records kept as insert-only version documents, so that compare-and-set and
 * uniqueness rest on the one write every MongoDB-protocol server makes atomic:
 * inserting a document whose `_id` (or unique key) is new.
 *
 * Why not `updateOne({ _id, version })`: FerretDB v1 runs an update as a read,
 * a change in memory and `UPDATE ... WHERE _id = ?`, without re-checking the
 * filter, so two writers holding one version both "win" (measured: 5 of 50
 * concurrent `replaceOne` and 18 of 50 `findOneAndUpdate` matched). Inserts of
 * one `_id` and deletes by `_id` do have exactly one winner there, as on
 * MongoDB, Atlas and Cosmos DB.
 *
 * Layout, per record (key K):
 * - `K#0` is written by `insert`; each later write (a `save`, an effect edit)
 *   inserts `K#<r+1>` after reading `K#<r>` as the latest. Two writers from one
 *   revision race on one `_id`: one wins, the other re-reads. The port's
 *   `version` is a field; revisions also count writes that keep the version.
 * - `cur: true` marks the latest revision; older ones are cleared after a write
 *   (best effort; every read that uses the flag checks it), and revisions older
 *   than {@link VERSIONED_DEFAULTS.gcAgeMs} except the last two are deleted.
 * - Unique fields other than the key are claimed in `claims` before they are
 *   written (see {@link ClaimRegistry}).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Collection, Db, Document, Filter, Sort } from 'mongodb';
import type { InsertResult, SaveResult } from '../storage.port';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import { isDuplicateKey } from './mongodb.errors';

/** Tuning of the versioned layout. */
export const VERSIONED_DEFAULTS = {
  /** Revisions older than this (and not among the latest two) are deleted after a write, ms (1 hour). */
  gcAgeMs: 60 * 60 * 1000,
  /** Run the revision GC on every Nth revision of a record. */
  gcEvery: 8,
  /** Retries of one write that keeps meeting a newer revision. */
  writeAttempts: 200,
  /**
   * A claim younger than this whose owner does not (yet) hold the value counts
   * as held: its writer is between claiming and writing, ms (30 s).
   */
  claimGraceMs: 30_000,
  /** How often a loser of a first-write race looks for the winner's record, ms. */
  claimPollMs: 20,
  /** Candidates read per page when listing. */
  listPage: 100,
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
  /** Field name in the version document (indexed). */
  docField: string;
  /** The record's value, or null when it has none (null is never unique). */
  valueOf(record: T): string | null;
}

/** How one record type maps to version documents. */
export interface RecordCodec<T> {
  /** Repository name for messages (`persons`). */
  name: string;
  keyOf(record: T): string;
  /** The record's fields as a document (no `_id`, `k`, `r`, `cur`, `w`). */
  toFields(record: T): Document;
  /** Rebuild the record from a version document. */
  fromDoc(doc: Document, operation: string): T;
  versionOf(record: T): number;
  withVersion(record: T, version: number): T;
  uniques: UniqueFieldSpec<T>[];
}

/** Field names the layout adds to every version document. */
export const VERSION_FIELDS = { key: 'k', revision: 'r', current: 'cur', writtenAt: 'w' } as const;

type VDoc = Document & { _id: string; k: string; r: number; cur: boolean; w: Date };

const revisionId = (key: string, revision: number): string => `${key}#${revision}`;

/**
 * Uniqueness of a value across records, by claim documents
 * `{ _id: '<scope>|<value>#<g>', s: '<scope>|<value>', g, owner, at }`.
 *
 * The claim with the highest `g` is current. It is held when its owner's
 * latest revision has the value, or while it is younger than the grace (its
 * writer is between claiming and writing). One that is neither is taken over
 * by inserting `g + 1`: one winner. An owner renews its own claim the same way
 * once it is older than half the grace, so a renewal and a takeover cannot
 * both win. Claims are never deleted while their record exists: a value a
 * record dropped is free once its claim is older than the grace.
 *
 * WARNING: a writer that stalls longer than the grace between claiming and
 * writing its revision may find the value taken meanwhile and still write it.
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
      const current = await this.claims.find({ s }).sort({ g: -1 }).limit(1).next();
      if (current === null) {
        if (await this.tryInsert(s, 0, owner)) return { status: 'claimed' };
        continue;
      }
      const currentOwner = String(current.owner);
      const age = Date.now() - (current.at instanceof Date ? current.at.getTime() : 0);
      if (currentOwner === owner && age < this.graceMs / 2) return { status: 'claimed' };
      if (currentOwner !== owner) {
        if (await holds(currentOwner)) return { status: 'held', owner: currentOwner, settled: true };
        if (age < this.graceMs) return { status: 'held', owner: currentOwner, settled: false };
      }
      const g = Number(current.g) + 1;
      if (await this.tryInsert(s, g, owner)) {
        await this.claims.deleteMany({ s, g: { $lt: g } }).catch(() => undefined);
        return { status: 'claimed' };
      }
    }
    throw new StorageError(STORAGE_ERROR.UNAVAILABLE, `claim ${scope}: kept racing other writers; gave up`, { meta: { operation: 'claim', scope } });
  }

  /** Give up every claim of a deleted record. */
  async releaseAllOf(owner: string): Promise<void> {
    await this.claims.deleteMany({ owner });
  }

  private async tryInsert(s: string, g: number, owner: string): Promise<boolean> {
    try {
      await this.claims.insertOne({ _id: `${s}#${g}`, s, g, owner, at: new Date() });
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

/** One repository's records as version documents. */
export class VersionedCollection<T> {
  private readonly coll: Collection<VDoc>;
  private readonly gcAgeMs: number;

  constructor(
    db: Db,
    collectionName: string,
    private readonly codec: RecordCodec<T>,
    private readonly claims: ClaimRegistry,
    private readonly locks: NameLocks,
    options: VersionedOptions = {},
  ) {
    this.coll = db.collection<VDoc>(collectionName);
    this.gcAgeMs = options.gcAgeMs ?? VERSIONED_DEFAULTS.gcAgeMs;
  }

  /** The latest revision document of `key`, or null. */
  async latestDoc(key: string): Promise<VDoc | null> {
    return this.coll.find({ k: key }).sort({ r: -1 }).limit(1).next();
  }

  async get(key: string, operation: string): Promise<T | null> {
    const doc = await this.latestDoc(key);
    return doc === null ? null : this.codec.fromDoc(doc, operation);
  }

  /** The record whose latest revision has `docField === value`, or null. */
  async findBy(docField: string, value: string, operation: string): Promise<T | null> {
    const found = await this.list({ [docField]: value }, { k: 1 }, 1, operation);
    return found[0] ?? null;
  }

  /**
   * Latest revisions matching `filter`, in `sort` order (then by key), at most `limit`.
   * Candidates come from `cur: true` documents; each is kept only if no later
   * revision of its record exists, so a flag left behind by a crash never
   * shows an old revision.
   */
  async list(filter: Filter<Document>, sort: Record<string, 1 | -1>, limit: number | null, operation: string): Promise<T[]> {
    const out: T[] = [];
    const seen = new Set<string>();
    const page = limit === null ? 0 : Math.max(limit, VERSIONED_DEFAULTS.listPage);
    for (let skip = 0; ; skip += page) {
      let cursor = this.coll.find({ ...filter, cur: true } as Filter<VDoc>).sort({ ...sort, k: 1, r: -1 } as Sort);
      if (page > 0) cursor = cursor.skip(skip).limit(page);
      const candidates = await cursor.toArray();
      if (candidates.length === 0) return out;
      const keys = [...new Set(candidates.map((c) => c.k))];
      const heads = await this.coll.find({ k: { $in: keys }, cur: true }, { projection: { k: 1, r: 1 } }).toArray();
      const latestRevision = new Map<string, number>();
      for (const h of heads) latestRevision.set(h.k, Math.max(latestRevision.get(h.k) ?? -1, Number(h.r)));
      for (const c of candidates) {
        if (seen.has(c.k) || latestRevision.get(c.k) !== Number(c.r)) continue;
        seen.add(c.k);
        out.push(this.codec.fromDoc(c, operation));
        if (limit !== null && out.length >= limit) return out;
      }
      if (page === 0 || candidates.length < page) return out;
    }
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
      const existing = await this.latestDoc(key);
      if (existing) return { status: 'exists', record: this.codec.fromDoc(existing, operation) };
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
      const doc = this.versionDoc(record, key, 0);
      try {
        await this.coll.insertOne(doc);
        return { status: 'created', record: this.codec.fromDoc(doc, operation) };
      } catch (err) {
        // Same key inserted by another writer meanwhile: the next turn reads and answers it.
        if (!isDuplicateKey(err)) throw err;
      }
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
      const latest = await this.latestDoc(key);
      if (latest === null || Number(latest.version) !== expected) return 'conflict';
      const current = this.codec.fromDoc(latest, operation);
      for (const u of this.codec.uniques) {
        const value = u.valueOf(next);
        if (value === null || value === u.valueOf(current)) continue;
        const result = await this.claimValue(u, value, key);
        if (result.status === 'held') {
          throw new StorageError(STORAGE_ERROR.UNIQUE_VIOLATION, `${operation}: another record already has this ${u.field}`, { meta: { operation, field: u.field } });
        }
      }
      if (await this.writeRevision(next, key, Number(latest.r) + 1)) return 'saved';
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
      const latest = await this.latestDoc(key);
      if (latest === null) return;
      const current = this.codec.fromDoc(latest, operation);
      const next = change(current);
      if (next === null) return;
      if (await this.writeRevision(this.codec.withVersion(next, this.codec.versionOf(current)), key, Number(latest.r) + 1)) return;
      await sleep(Math.floor(Math.random() * Math.min(20, 1 + attempt)));
    }
    throw this.gaveUp(operation);
  }

  /** Delete every record whose latest revision matches `filter` (all its revisions and claims). Returns how many. */
  async deleteWhere(filter: Filter<Document>, operation: string): Promise<number> {
    const doomed = await this.list(filter, {}, null, operation);
    let deleted = 0;
    for (const record of doomed) {
      const key = this.codec.keyOf(record);
      const result = await this.coll.deleteMany({ k: key });
      if (result.deletedCount > 0) deleted++;
      if (this.codec.uniques.length > 0) await this.claims.releaseAllOf(key);
    }
    return deleted;
  }

  /** Lock names of a write: the record key and each unique value it holds. */
  private lockNames(record: T): string[] {
    const names = [`${this.codec.name}#${this.codec.keyOf(record)}`];
    for (const u of this.codec.uniques) {
      const value = u.valueOf(record);
      if (value !== null) names.push(`${this.codec.name}.${u.docField}|${value}`);
    }
    return names;
  }

  private async claimValue(u: UniqueFieldSpec<T>, value: string, owner: string) {
    const holds = async (ownerKey: string) => {
      const latest = await this.latestDoc(ownerKey);
      return latest !== null && latest[u.docField] === value;
    };
    const scope = `${this.codec.name}.${u.docField}`;
    const deadline = Date.now() + 2 * VERSIONED_DEFAULTS.claimGraceMs;
    for (;;) {
      const result = await this.claims.claim(scope, value, owner, holds);
      // A writer that claimed but has not written yet: wait for its record (or for its claim to go stale).
      if (result.status === 'held' && !result.settled && Date.now() < deadline) {
        await sleep(VERSIONED_DEFAULTS.claimPollMs);
        if (await holds(result.owner)) return { status: 'held' as const, owner: result.owner, settled: true };
        continue;
      }
      return result;
    }
  }

  /** Insert revision `r` of the record; false when another writer took that revision. */
  private async writeRevision(record: T, key: string, r: number): Promise<boolean> {
    try {
      await this.coll.insertOne(this.versionDoc(record, key, r));
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
    // The write is committed. What follows is housekeeping: its failure must not
    // turn a done write into an error (readers never trust `cur` alone).
    try {
      await this.coll.updateMany({ k: key, r: { $lt: r }, cur: true }, { $set: { cur: false } });
      if (r % VERSIONED_DEFAULTS.gcEvery === 0) {
        await this.coll.deleteMany({ k: key, r: { $lt: r - 1 }, w: { $lt: new Date(Date.now() - this.gcAgeMs) } });
      }
    } catch {
      // Left for the next write of this record.
    }
    return true;
  }

  private versionDoc(record: T, key: string, r: number): VDoc {
    return { ...this.codec.toFields(record), _id: revisionId(key, r), k: key, r, cur: true, w: new Date() };
  }

  private gaveUp(operation: string): StorageError {
    return new StorageError(STORAGE_ERROR.UNAVAILABLE, `${operation}: the record kept changing under other writers; gave up after ${VERSIONED_DEFAULTS.writeAttempts} attempts`, {
      meta: { operation, attempts: VERSIONED_DEFAULTS.writeAttempts },
    });
  }
}
