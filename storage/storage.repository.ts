/**
 * The port side of a versioned repository, written once for every adapter.
 *
 * An adapter supplies one generic store per record type (SQLite: a table,
 * MongoDB: heads + revisions) and how it runs reads and writes; this module
 * turns it into the port's `get` / `findBy…` / `insert` / `save` with the
 * argument and record checks, operation names (`persons.save`) and messages
 * every adapter must share. Special operations (journeys' effect edits, lists,
 * pairings' expiry) are added by each adapter on top.
 */
import type { InsertResult, JourneyRecord, JourneyRepository, SaveResult, Storage, StoredEffect } from './storage.port';
import { ArgumentSchemas, recordToStore, validate, type RecordDescriptor } from './storage.schemas';

/** What an adapter's generic store does for one record type. Values may be plain (SQLite) or promised (MongoDB). */
export interface VersionedStore<T> {
  /** The record with this key, or null. */
  get(key: string, operation: string): T | null | Promise<T | null>;
  /** The record whose unique `field` holds `value`, or null. */
  findBy(field: keyof T & string, value: string, operation: string): T | null | Promise<T | null>;
  /** Insert a checked record; `exists` with the record holding its key or a unique value. */
  insert(record: T, operation: string): InsertResult<T> | Promise<InsertResult<T>>;
  /** Compare-and-set: store `record` as version `expected + 1` when the stored version is `expected`. */
  save(record: T, expected: number, operation: string): SaveResult | Promise<SaveResult>;
  /** Every record whose `field` equals `value`, ordered by `orderBy` then key. */
  listBy(field: keyof T & string, value: string, orderBy: keyof T & string, operation: string): T[] | Promise<T[]>;
}

/** How an adapter runs a call: reads and writes, each mapping failures to StorageError with the operation name. */
export interface StoreRunner {
  read<R>(operation: string, fn: () => R | Promise<R>): Promise<R>;
  write<R>(operation: string, fn: () => R | Promise<R>): Promise<R>;
}

/** The port's repositories (all of `Storage` but `ping` and `close`): what an adapter builds. */
export type StorageRepositories = Omit<Storage, 'ping' | 'close'>;

/** The port methods every versioned repository has. */
export interface VersionedRepository<T> {
  /** `{ get, insert, save }`, to spread into a port repository. */
  readonly core: { get(key: string): Promise<T | null>; insert(record: T): Promise<InsertResult<T>>; save(record: T, expectedVersion: number): Promise<SaveResult> };
  /** A port finder (`findByCardId`, `getByUserCodeHash`) on one unique field. */
  findBy(field: keyof T & string, method: string): (value: string) => Promise<T | null>;
  /** A port list (`listByPerson`) of the records whose `field` equals the argument, ordered by `orderBy` then key. */
  listBy(field: keyof T & string, orderBy: keyof T & string, method: string): (value: string) => Promise<T[]>;
}

/**
 * Build the port methods of one record type on an adapter's generic store.
 *
 * Arguments are checked before the store is touched: keys and unique values
 * as ids (non-empty, at most 200 characters, no control characters), records
 * against the schema (the store gets the checked copy: unknown properties
 * dropped), `expectedVersion` as an integer of 1 or more.
 *
 * @param descriptor - the record type (see `RECORDS` in storage.schemas.ts)
 * @param store - the adapter's generic store for it
 * @param runner - the adapter's read/write runner
 * @returns `{ core: { get, insert, save }, findBy, listBy }`; operation names are `<name>.<method>`
 * @throws (from the returned methods) StorageError `STORAGE.INVALID_RECORD` for a bad argument or record, naming the field, never the value
 */
export function versionedRepository<T>(descriptor: RecordDescriptor<T>, store: VersionedStore<T>, runner: StoreRunner): VersionedRepository<T> {
  const { name } = descriptor;
  const get = (key: string) => {
    const op = `${name}.get`;
    return runner.read(op, () => store.get(validate(ArgumentSchemas.id, key, op, descriptor.key), op));
  };
  const insert = (record: T) => {
    const op = `${name}.insert`;
    return runner.write(op, () => store.insert(recordToStore(descriptor, record, op), op));
  };
  const save = (record: T, expectedVersion: number) => {
    const op = `${name}.save`;
    return runner.write(op, () => {
      const checked = recordToStore(descriptor, record, op);
      return store.save(checked, validate(ArgumentSchemas.version, expectedVersion, op, 'expectedVersion'), op);
    });
  };
  return {
    core: { get, insert, save },
    findBy: (field, method) => (value) => {
      const op = `${name}.${method}`;
      return runner.read(op, () => store.findBy(field, validate(ArgumentSchemas.id, value, op, field), op));
    },
    listBy: (field, orderBy, method) => (value) => {
      const op = `${name}.${method}`;
      return runner.read(op, () => store.listBy(field, validate(ArgumentSchemas.id, value, op, field), orderBy, op));
    },
  };
}

/** Rewrites a journey without moving its version: `change` gets the stored record, returns the new one or null for "nothing to do". */
export type JourneyEdit = (key: string, change: (current: JourneyRecord) => JourneyRecord | null, operation: string) => void | Promise<void>;

/**
 * The journeys' effect edits (`removeEffects`, `countEffectAttempt`) on an adapter's record edit.
 *
 * @param runner - the adapter's runner (edits are writes)
 * @param edit - the adapter's edit of one journey, keeping its version
 * @returns the two port methods; unknown keys and ids are ignored, an empty id list writes nothing
 */
export function journeyEffectEdits(runner: StoreRunner, edit: JourneyEdit): Pick<JourneyRepository, 'removeEffects' | 'countEffectAttempt'> {
  const editEffects = (op: string, key: string, effectIds: string[], change: (effects: StoredEffect[], ids: Set<string>) => StoredEffect[] | null) =>
    runner.write(op, () => {
      validate(ArgumentSchemas.id, key, op, 'key');
      validate(ArgumentSchemas.effectIds, effectIds, op, 'effectIds');
      if (effectIds.length === 0) return;
      const ids = new Set(effectIds);
      return edit(
        key,
        (j) => {
          const next = change(j.pendingEffects, ids);
          return next === null ? null : { ...j, pendingEffects: next };
        },
        op,
      );
    });
  return {
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
  };
}

/**
 * A port lookup whose argument is lower-cased first (emails are stored lower-cased); a non-string is
 * passed on unchanged, for the lookup's own argument check to refuse.
 */
export function lowerCased<R>(lookup: (value: string) => Promise<R>): (value: string) => Promise<R> {
  return (value) => lookup(typeof value === 'string' ? value.trim().toLowerCase() : value);
}
