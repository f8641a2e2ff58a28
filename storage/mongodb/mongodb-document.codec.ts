/**
 * Document codecs of the MongoDB store, derived from the record schemas.
 *
 * Layout rule (the one the first release wrote, kept so databases written by
 * it read back unchanged): one field per schema field, same name, except the
 * key, which is held by `k` (heads and revisions) or `_id` (audit,
 * conversations); fields a layout names as JSON as JSON text (FerretDB
 * refuses field names with `.` or a leading `$`, which open-shaped values may
 * hold, and JSON text keeps exactly what the embedded store keeps); other
 * objects and arrays as sub-documents; plus derived fields an index or the
 * server needs (`pendingCount`, `gcAfter`), written and never read back.
 * Decoding checks the rebuilt record against its schema, so a damaged
 * document is `STORAGE.CORRUPT_RECORD` naming the field, never a wrong record.
 */
import type { Document } from 'mongodb';
import { fieldShapes, parseStoredJson, storedRecord, type RecordDescriptor } from '../storage.schemas';
import type { RecordCodec } from './mongodb-versioned.collection';

/** How one record type is laid out in its documents, beyond what the schema says. */
export interface DocumentLayout<T> {
  /** Fields stored as JSON text. Each must be a non-scalar field of the schema (checked). */
  json: readonly (keyof T & string)[];
  /** Extra fields computed from the record. */
  derived?: Readonly<Record<string, (record: T) => unknown>>;
  /** Records are deleted by the adapter (pairings): this process does not remember their latest revisions. */
  deletable?: boolean;
}

/** Encoder and decoder of one record type's documents. */
export interface DocumentCodec<T> extends RecordCodec<T> {
  readonly descriptor: RecordDescriptor<T>;
  /** Rebuild a record from a document whose key is in `_id` (audit, conversations). */
  fromKeyedDoc(doc: Document, operation: string): T;
}

/**
 * Derive the document codec of a record type from its schema and layout.
 *
 * @param descriptor - schema, key and unique fields (storage.schemas.ts `RECORDS`)
 * @param layout - which fields are JSON text, which are derived, whether records are deleted
 * @returns a codec for `VersionedCollection` (key in `k`) that also reads `_id`-keyed documents
 * @throws Error at start-up when a JSON field is not a non-scalar schema field (a programming error)
 */
export function documentCodec<T>(descriptor: RecordDescriptor<T>, layout: DocumentLayout<T>): DocumentCodec<T> {
  const json = new Set<string>(layout.json);
  const fields = fieldShapes(descriptor as RecordDescriptor<unknown>)
    .filter((f) => f.name !== descriptor.key)
    .map((f) => ({ ...f, json: json.has(f.name) }));
  for (const name of json) {
    const f = fields.find((x) => x.name === name);
    if (!f || f.scalar) throw new Error(`documentCodec(${descriptor.name}): JSON field ${name} is not a non-scalar field of the schema`);
  }
  const derived = Object.entries(layout.derived ?? {});
  const { name, key } = descriptor;

  const fromDoc = (doc: Document, keyValue: unknown, operation: string): T => {
    const candidate: Record<string, unknown> = { [key]: keyValue };
    for (const f of fields) {
      let value = doc[f.name];
      if (value === undefined && f.nullable) value = null;
      candidate[f.name] = f.json && !(value === null && f.nullable) ? parseStoredJson(value, operation, `${name}.${f.name}`) : value;
    }
    return storedRecord(descriptor, candidate, operation);
  };

  return {
    descriptor,
    name,
    deletable: layout.deletable ?? false,
    keyOf: (record) => String((record as Record<string, unknown>)[key]),
    versionOf: (record) => Number((record as Record<string, unknown>).version),
    withVersion: (record, version) => ({ ...record, version }),
    uniques: descriptor.uniques.map((field) => ({
      field,
      docField: field,
      valueOf: (record: T) => ((record as Record<string, unknown>)[field] ?? null) as string | null,
    })),
    toFields(record) {
      const r = record as Record<string, unknown>;
      const doc: Document = {};
      for (const f of fields) {
        const value = r[f.name];
        doc[f.name] = f.json && !(value === null && f.nullable) ? JSON.stringify(value) : value;
      }
      for (const [field, of] of derived) doc[field] = of(record);
      return doc;
    },
    fromDoc: (doc, operation) => fromDoc(doc, doc.k, operation),
    fromKeyedDoc: (doc, operation) => fromDoc(doc, doc._id, operation),
  };
}
