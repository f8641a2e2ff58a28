/**
 * The one versioned-repository implementation of the embedded store: a table
 * per record type, read and written through its derived row codec.
 *
 * - insert: `INSERT ... ON CONFLICT DO NOTHING`; when nothing was inserted,
 *   the record holding the key (then each unique value, in order) is `exists`.
 *   SQLite's PRIMARY KEY and UNIQUE constraints make that atomic.
 * - save: `UPDATE ... SET <every column>, version = expected + 1 WHERE key = ?
 *   AND version = expected` (compare-and-set in one statement).
 * - edit: rewrite a record without moving its version (journeys' effect edits);
 *   callers run it inside a write transaction (the adapter's group commit).
 *
 * Everything here is synchronous (better-sqlite3); the adapter runs reads and
 * queues writes, and maps driver errors.
 */
import type Database from 'better-sqlite3';
import type { InsertResult, SaveResult } from '../storage.port';
import type { VersionedStore } from '../storage.repository';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import type { Row, SqliteCodec } from './sqlite-row.codec';

/** One record type's table. */
export class SqliteVersionedTable<T> implements VersionedStore<T> {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly insertSql: string;
  private readonly saveSql: string;
  private readonly editSql: string;

  constructor(
    private readonly db: Database.Database,
    readonly codec: SqliteCodec<T>,
  ) {
    const { table, columns, keyColumn } = codec;
    const others = columns.filter((c) => c !== keyColumn && c !== 'version');
    const sets = others.map((c) => `${c} = @${c}`).join(', ');
    this.insertSql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')}) ON CONFLICT DO NOTHING`;
    this.saveSql = `UPDATE ${table} SET ${sets}, version = @expected_version + 1 WHERE ${keyColumn} = @${keyColumn} AND version = @expected_version`;
    this.editSql = `UPDATE ${table} SET ${sets} WHERE ${keyColumn} = @${keyColumn}`;
  }

  /** A prepared statement, made once per SQL text. */
  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private rowBy(column: string, value: unknown): Row | undefined {
    return this.statement(`SELECT * FROM ${this.codec.table} WHERE ${column} = ?`).get(value) as Row | undefined;
  }

  get(key: string, operation: string): T | null {
    const row = this.rowBy(this.codec.keyColumn, key);
    return row === undefined ? null : this.codec.decode(row, operation);
  }

  findBy(field: keyof T & string, value: string, operation: string): T | null {
    const row = this.rowBy(this.codec.column(field), value);
    return row === undefined ? null : this.codec.decode(row, operation);
  }

  listBy(field: keyof T & string, value: string, orderBy: keyof T & string, operation: string): T[] {
    return this.list({ where: `${this.codec.column(field)} = ?`, orderBy: `${this.codec.column(orderBy)}, ${this.codec.keyColumn}`, params: [value] }, operation);
  }

  insert(record: T, operation: string): InsertResult<T> {
    const row = this.codec.encode(record);
    if (this.statement(this.insertSql).run(row).changes === 1) return { status: 'created', record: this.codec.decode(row, operation) };
    let existing = this.rowBy(this.codec.keyColumn, row[this.codec.keyColumn]);
    for (const field of this.codec.descriptor.uniques) {
      const column = this.codec.column(field);
      if (existing === undefined && row[column] !== null) existing = this.rowBy(column, row[column]);
    }
    if (existing === undefined) {
      // ON CONFLICT fired but no clashing row is visible: cannot happen inside one transaction.
      throw new StorageError(STORAGE_ERROR.QUERY_FAILED, `${operation}: insert was refused but no clashing record was found`, { meta: { operation } });
    }
    return { status: 'exists', record: this.codec.decode(existing, operation) };
  }

  save(record: T, expected: number, _operation: string): SaveResult {
    return this.statement(this.saveSql).run({ ...this.codec.encode(record), expected_version: expected }).changes === 1 ? 'saved' : 'conflict';
  }

  /**
   * Rewrite a record keeping its version: `change` gets the stored record and returns the new one, or null for "nothing to do".
   * Run inside a write transaction.
   */
  edit(key: string, change: (current: T) => T | null, operation: string): void {
    const current = this.get(key, operation);
    if (current === null) return;
    const next = change(current);
    if (next !== null) this.statement(this.editSql).run(this.codec.encode(next));
  }

  /**
   * Records matching an SQL condition, in an SQL order.
   *
   * @param query.where - condition on columns with `?` placeholders (written in the adapter, never from input); default all
   * @param query.orderBy - columns, e.g. `created_at, id`
   * @param query.params - values for the placeholders
   * @param query.limit - at most this many, or all
   */
  list(query: { where?: string; orderBy: string; params?: unknown[]; limit?: number }, operation: string): T[] {
    return this.rows(query).map((r) => this.codec.decode(r, operation));
  }

  /**
   * Like {@link list}, but a row that cannot be decoded is left out and handed to
   * `onUnreadable` with its key and the `STORAGE.CORRUPT_RECORD` error (one bad row
   * does not fail the others).
   */
  listReadable(query: { where?: string; orderBy: string; params?: unknown[]; limit?: number }, operation: string, onUnreadable: (key: string, error: StorageError) => void): T[] {
    const out: T[] = [];
    for (const r of this.rows(query)) {
      try {
        out.push(this.codec.decode(r, operation));
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        onUnreadable(String(r[this.codec.keyColumn]), err);
      }
    }
    return out;
  }

  private rows(query: { where?: string; orderBy: string; params?: unknown[]; limit?: number }): Row[] {
    const sql = `SELECT * FROM ${this.codec.table}${query.where ? ` WHERE ${query.where}` : ''} ORDER BY ${query.orderBy}${query.limit === undefined ? '' : ' LIMIT ?'}`;
    const params = [...(query.params ?? []), ...(query.limit === undefined ? [] : [query.limit])];
    return this.statement(sql).all(...params) as Row[];
  }

  /** Insert or replace every column (last writer wins; for records without a version). */
  put(record: T): void {
    const { table, columns, keyColumn } = this.codec;
    const sets = columns.filter((c) => c !== keyColumn).map((c) => `${c} = excluded.${c}`).join(', ');
    this.statement(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')}) ON CONFLICT (${keyColumn}) DO UPDATE SET ${sets}`).run(this.codec.encode(record));
  }

  /** Delete records matching an SQL condition; returns how many. */
  deleteWhere(where: string, params: unknown[]): number {
    return this.statement(`DELETE FROM ${this.codec.table} WHERE ${where}`).run(...params).changes;
  }
}
