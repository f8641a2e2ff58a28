/**
 * Row codecs of the embedded store, derived from the record schemas.
 *
 * Layout rule (the one migration 1 laid down): one column per schema field,
 * named in snake_case (`teamsUserId` -> `teams_user_id`); scalar fields as
 * they are (NULL for null); the fields a layout names as JSON as JSON text
 * (NULL for a null value of a nullable field); plus derived columns a query
 * needs (`journeys.pending_count`), written and never read back. Decoding
 * checks the rebuilt record against its schema, so a damaged row is
 * `STORAGE.CORRUPT_RECORD` naming the field, never a wrong record.
 */
import { fieldShapes, parseStoredJson, storedRecord, type RecordDescriptor } from '../storage.schemas';

/** A row as better-sqlite3 takes and gives it: column name -> value. */
export type Row = Record<string, unknown>;

/** A value SQLite stores in a column. */
export type SqlValue = string | number | null;

/** How one record type is laid out in its table, beyond what the schema says. */
export interface SqliteLayout<T> {
  /** Fields stored as JSON text columns: exactly the schema's non-scalar fields (checked). */
  json: readonly (keyof T & string)[];
  /** Extra columns computed from the record, by field-style name (`pendingCount` -> `pending_count`). */
  derived?: Readonly<Record<string, (record: T) => SqlValue>>;
}

/** Encoder and decoder of one record type's rows. */
export interface SqliteCodec<T> {
  readonly descriptor: RecordDescriptor<T>;
  readonly table: string;
  /** Every column written, in schema order then derived. */
  readonly columns: readonly string[];
  readonly keyColumn: string;
  /** Column of a schema field. */
  column(field: keyof T & string): string;
  /** Column -> port field name (unique-constraint messages). */
  fieldOf(column: string): string | undefined;
  /** The row of a checked record, keyed by column name. */
  encode(record: T): Row;
  /** The record of a stored row (extra columns such as `seq` are ignored). @throws StorageError CORRUPT_RECORD */
  decode(row: Row, operation: string): T;
}

/** `teamsUserId` -> `teams_user_id`. */
export function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Derive the row codec of a record type from its schema and layout.
 *
 * @param descriptor - schema, key and unique fields (storage.schemas.ts `RECORDS`)
 * @param layout - which fields are JSON columns, which columns are derived
 * @returns the codec; table name = `descriptor.name`
 * @throws Error at start-up when the layout and the schema disagree (a JSON field that is scalar, or a
 *   non-scalar field not stored as JSON): a programming error, never a runtime condition
 */
export function sqliteCodec<T>(descriptor: RecordDescriptor<T>, layout: SqliteLayout<T>): SqliteCodec<T> {
  const json = new Set<string>(layout.json);
  const fields = fieldShapes(descriptor as RecordDescriptor<unknown>).map((f) => ({ ...f, column: snakeCase(f.name), json: json.has(f.name) }));
  for (const f of fields) {
    if (f.json === f.scalar) throw new Error(`sqliteCodec(${descriptor.name}): field ${f.name} is ${f.scalar ? 'scalar but listed as JSON' : 'not scalar and not listed as JSON'}`);
  }
  for (const name of json) if (!fields.some((f) => f.name === name)) throw new Error(`sqliteCodec(${descriptor.name}): JSON field ${name} is not in the schema`);
  const derived = Object.entries(layout.derived ?? {}).map(([name, of]) => ({ column: snakeCase(name), of }));
  const fieldOfColumn = new Map(fields.map((f) => [f.column, f.name]));
  const table = descriptor.name;

  return {
    descriptor,
    table,
    columns: [...fields.map((f) => f.column), ...derived.map((d) => d.column)],
    keyColumn: snakeCase(descriptor.key),
    column: (field) => snakeCase(field),
    fieldOf: (column) => fieldOfColumn.get(column),
    encode(record) {
      const r = record as Record<string, unknown>;
      const row: Row = {};
      for (const f of fields) {
        const value = r[f.name];
        row[f.column] = f.json ? (value === null && f.nullable ? null : JSON.stringify(value)) : (value as SqlValue);
      }
      for (const d of derived) row[d.column] = d.of(record);
      return row;
    },
    decode(row, operation) {
      const candidate: Record<string, unknown> = {};
      for (const f of fields) {
        const value = row[f.column];
        candidate[f.name] = f.json && value !== null ? parseStoredJson(value, operation, `${table}.${f.column}`) : value;
      }
      return storedRecord(descriptor, candidate, operation);
    },
  };
}
