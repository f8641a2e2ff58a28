/**
 * Runtime checks of the records handed to the storage port.
 *
 * Every adapter validates a record before writing it, so bad input is refused
 * with a message naming the field and the rule (never the value), and nothing
 * is half-written. The checks also keep secrets out of plaintext fields: a PUK
 * field accepts only the sealed `v1.` format, hash fields only hex digests.
 */
import { z } from 'zod';
import type { AuditEntry, CardRecord, ConversationRecord, Device, JourneyRecord, Pairing, Person, RaCase } from './storage.port';
import { STORAGE_ERROR, StorageError } from './storage.errors';

/** Formats shared by the schemas (and by tests that build records). */
export const STORAGE_FORMATS = {
  /** `Date.prototype.toISOString()` form: UTC, milliseconds, `Z`. Sorts as text in time order. */
  timestamp: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/,
  cardId: /^[0-9a-f]{32}$/,
  /** AES-256-GCM sealed value, `v1.<iv 12 bytes>.<ciphertext>.<tag 16 bytes>` in base64url. */
  sealed: /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/,
  /** HMAC-SHA-256 hex digest. */
  keyedHash: /^[0-9a-f]{64}$/,
  base64url: /^[A-Za-z0-9_-]+$/,
  caseRef: /^RA-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/,
  e164: /^\+[1-9][0-9]{6,14}$/,
} as const;

const id = z.string().min(1).max(200).regex(/^[^\u0000-\u001f]+$/, 'must not contain control characters');
const text = (max: number) => z.string().max(max);
const timestamp = z
  .string()
  .regex(STORAGE_FORMATS.timestamp, 'must be an ISO 8601 UTC time with milliseconds, as Date.toISOString() gives')
  .refine((v) => !Number.isNaN(Date.parse(v)) && new Date(v).toISOString() === v, 'must be a real calendar time');
const version = z.number().int('must be an integer').min(1, 'must be 1 or more');
const sealed = z.string().regex(STORAGE_FORMATS.sealed, 'must be a sealed value (v1.<iv>.<ciphertext>.<tag>), never a plaintext secret');
const keyedHash = z.string().regex(STORAGE_FORMATS.keyedHash, 'must be a keyed hash (64 lower-case hex digits), never a plaintext secret');
const cardId = z.string().regex(STORAGE_FORMATS.cardId, 'must be 32 lower-case hex digits (CHUID GUID)');
/**
 * Find why a value would not survive a JSON round trip unchanged.
 * `undefined` object properties are allowed (JSON drops them, as optional fields expect);
 * functions, symbols, BigInt, non-finite numbers, `undefined` array items and objects other than
 * plain objects and arrays (Date, Map, class instances) are not.
 *
 * @returns the path and reason of the first problem, or null when the value is plain JSON
 */
export function jsonProblem(value: unknown, path = '', depth = 0): string | null {
  const at = path || '(value)';
  if (depth > 64) return `${at}: nested more than 64 levels`;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return null;
  if (typeof value === 'number') return Number.isFinite(value) ? null : `${at}: must be a finite number`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (value[i] === undefined) return `${path}[${i}]: undefined is not JSON`;
      const p = jsonProblem(value[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return null;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return `${at}: must be a plain object (got ${(value as object).constructor?.name ?? 'an object'}); convert it first`;
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      const p = jsonProblem(v, path ? `${path}.${k}` : k, depth + 1);
      if (p) return p;
    }
    return null;
  }
  return `${at}: a ${typeof value} is not JSON`;
}

const json = z.custom<unknown>().superRefine((value, ctx) => {
  const problem = jsonProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `not storable as JSON: ${problem}` });
});

const scalarMap = z.record(z.string().max(100), z.union([z.string().max(2000), z.number(), z.boolean(), z.null()]));

export const AnswerHashSchema = z
  .object({
    questionId: id,
    covers: z.tuple([id, id, id]).optional(),
    salt: z.string().regex(STORAGE_FORMATS.base64url, 'must be base64url').min(22, 'must encode at least 16 bytes'),
    hash: z.string().regex(STORAGE_FORMATS.base64url, 'must be base64url').min(22, 'must encode at least 16 bytes'),
    params: z.object({ N: z.number().int().min(2), r: z.number().int().min(1), p: z.number().int().min(1) }),
  })
  .refine((a) => !a.covers || (a.covers[0] < a.covers[1] && a.covers[1] < a.covers[2] && !a.covers.includes(a.questionId)), {
    message: 'covers must list three different question ids in ascending order, none equal to questionId',
    path: ['covers'],
  });

export const PersonSchema = z.object({
  id,
  teamsUserId: id,
  displayName: text(200),
  email: z.string().max(320).regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address').refine((v) => v === v.toLowerCase(), 'must be lower-cased'),
  mobile: z.string().regex(STORAGE_FORMATS.e164, 'must be an E.164 number such as +447700900123').nullable(),
  answers: z.array(AnswerHashSchema).max(20),
  cardId: cardId.nullable(),
  selfServiceLock: z
    .object({ at: timestamp, caseRef: z.string().regex(STORAGE_FORMATS.caseRef, 'must be RA- and 6 Crockford base32 characters'), reason: z.enum(['answers_failed', 'locked_by_ra']) })
    .nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  version,
}) satisfies z.ZodType<Person>;

export const CardRecordSchema = z.object({
  cardId,
  personId: id,
  puk: sealed.nullable(),
  pendingPuk: sealed.nullable(),
  updatedAt: timestamp,
  version,
}) satisfies z.ZodType<CardRecord>;

const StoredEffectSchema = z.object({ id, type: id, payload: json, attempts: z.number().int().min(0) });

export const JourneyRecordSchema = z
  .object({
    key: id,
    personId: id,
    kind: z.enum(['unlock', 'registration', 'ra-case']),
    runId: id,
    state: json,
    counters: z.record(z.string().max(100), z.number().refine(Number.isFinite, 'must be a finite number')),
    pendingEffects: z.array(StoredEffectSchema).max(1000),
    ui: z.object({ activityId: z.string().max(500).nullable() }),
    createdAt: timestamp,
    updatedAt: timestamp,
    version,
  })
  .refine((j) => j.key === `${j.personId}:${j.kind}`, { message: 'must equal `${personId}:${kind}`', path: ['key'] })
  .refine((j) => new Set(j.pendingEffects.map((e) => e.id)).size === j.pendingEffects.length, { message: 'effect ids must be unique', path: ['pendingEffects'] }) satisfies z.ZodType<JourneyRecord>;

export const DeviceSchema = z.object({
  id,
  personId: id,
  workstation: text(200),
  credentialHash: keyedHash,
  createdAt: timestamp,
  lastSeenAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
  connectedInstance: z.string().max(200).nullable(),
  version,
}) satisfies z.ZodType<Device>;

export const PairingSchema = z.object({
  id,
  deviceCodeHash: keyedHash,
  userCodeHash: keyedHash,
  workstation: text(200),
  status: z.enum(['pending', 'approved', 'issued', 'denied']),
  personId: id.nullable(),
  deviceId: id.nullable(),
  createdAt: timestamp,
  expiresAt: timestamp,
  lastPolledAt: timestamp.nullable(),
  version,
}) satisfies z.ZodType<Pairing>;

export const RaCaseSchema = z.object({
  ref: z.string().regex(STORAGE_FORMATS.caseRef, 'must be RA- and 6 Crockford base32 characters'),
  personId: id,
  reason: z.enum(['answers_failed', 'requested', 'helpdesk', 'no_puk_enrolled', 'certificates_expired']),
  status: z.enum(['open', 'claimed', 'closed']),
  context: scalarMap,
  sourceId: id,
  createdAt: timestamp,
  updatedAt: timestamp,
  version,
}) satisfies z.ZodType<RaCase>;

export const AuditEntrySchema = z.object({
  id,
  at: timestamp,
  actor: id,
  action: id,
  personId: id.nullable(),
  details: scalarMap,
}) satisfies z.ZodType<AuditEntry>;

export const ConversationRecordSchema = z.object({
  personId: id,
  reference: z.record(z.string(), json),
  updatedAt: timestamp,
}) satisfies z.ZodType<ConversationRecord>;

/** Arguments other than records. */
export const ArgumentSchemas = {
  id,
  timestamp,
  limit: z.number().int('must be an integer').min(1, 'must be 1 or more').max(10_000, 'must be 10000 or less'),
  version,
  effectIds: z.array(id).max(1000),
} as const;

/** The first few problems of a failed parse, as `path: rule` (zod's messages name rules, never the value). */
function problemsOf(error: z.ZodError, what: string): { text: string; fields: string } {
  const text = error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : what}: ${issue.message}`)
    .join('; ');
  const fields = [...new Set(error.issues.map((i) => i.path.join('.') || what))].join(',');
  return { text, fields };
}

/**
 * Validate a value against a schema or throw a storage error naming what is wrong.
 *
 * @param schema - one of the schemas above
 * @param value - the record or argument offered to the port
 * @param operation - `repository.method`, used in the message and `meta.operation`
 * @param what - what the value is, for the message (`record`, `limit`)
 * @returns the value unchanged (typed), when valid
 * @throws StorageError `STORAGE.INVALID_RECORD` listing each bad field and its rule, without values
 */
export function validate<T>(schema: z.ZodType<unknown>, value: T, operation: string, what = 'record'): T {
  const result = schema.safeParse(value);
  if (result.success) return value;
  const problems = problemsOf(result.error, what);
  throw new StorageError(STORAGE_ERROR.INVALID_RECORD, `${operation}: invalid ${what}: ${problems.text}`, { meta: { operation, fields: problems.fields } });
}

// ---------------------------------------------------------------------------
// Stored record types: one descriptor each, shared by every adapter's codecs
// ---------------------------------------------------------------------------

/** Names of the stored record types (also the SQLite table and MongoDB collection names). */
export type RecordName = 'persons' | 'cards' | 'journeys' | 'devices' | 'pairings' | 'cases' | 'audit' | 'conversations';

/**
 * What every adapter needs to know about one stored record type, beyond its
 * schema: its key and the fields that must be unique across records. Adapters
 * add their own layout (JSON columns, derived columns) and derive their codecs
 * from the schema's fields, so a field added to a schema is stored by both.
 */
export interface RecordDescriptor<T> {
  /** Repository name: messages (`persons.email`), SQLite table, MongoDB collection, claim scopes. */
  name: RecordName;
  /** The record's zod object schema; its fields, in order, are the stored fields. */
  schema: z.ZodObject;
  /** The key field (one record per value). */
  key: keyof T & string;
  /** Other fields unique across records (null never clashes), in the order an insert reports a clash. */
  uniques: readonly (keyof T & string)[];
}

/** How a schema field is stored: a scalar (text, number, enum) or an open value (object, array, JSON). */
export interface FieldShape {
  name: string;
  /** `null` is a valid value (a `.nullable()` field). */
  nullable: boolean;
  /** text, number, boolean or enum: fits one SQL column or BSON value as it is. */
  scalar: boolean;
}

const SCALAR_TYPES = new Set(['string', 'number', 'boolean', 'enum', 'literal']);

/**
 * The stored fields of a record type, read from its schema.
 *
 * @returns one entry per schema field, in schema order
 */
export function fieldShapes(descriptor: RecordDescriptor<unknown>): FieldShape[] {
  return Object.entries(descriptor.schema.shape).map(([name, field]) => {
    const nullable = field instanceof z.ZodNullable;
    const inner = (nullable ? (field as z.ZodNullable).unwrap() : field) as z.ZodType;
    return { name, nullable, scalar: SCALAR_TYPES.has(inner.def.type) };
  });
}

/**
 * Check a record offered for writing and return the copy to store: only the
 * schema's fields (unknown properties dropped, at every level), fresh objects.
 *
 * @throws StorageError `STORAGE.INVALID_RECORD` naming each bad field and its rule, never its value
 */
export function recordToStore<T>(descriptor: RecordDescriptor<T>, value: T, operation: string): T {
  const result = descriptor.schema.safeParse(value);
  if (result.success) return result.data as T;
  const problems = problemsOf(result.error, 'record');
  throw new StorageError(STORAGE_ERROR.INVALID_RECORD, `${operation}: invalid record: ${problems.text}`, { meta: { operation, fields: problems.fields } });
}

/**
 * Check a record rebuilt from a stored row or document against its schema.
 *
 * @param candidate - the fields decoded from storage (JSON text already parsed)
 * @returns the record (fresh objects)
 * @throws StorageError `STORAGE.CORRUPT_RECORD` naming each bad field as `<name>.<field>` with its rule, never its value
 */
export function storedRecord<T>(descriptor: RecordDescriptor<T>, candidate: Record<string, unknown>, operation: string): T {
  const result = descriptor.schema.safeParse(candidate);
  if (result.success) return result.data as T;
  const problems = problemsOf(result.error, 'record');
  const named = problems.text.split('; ').map((p) => `${descriptor.name}.${p}`);
  throw new StorageError(STORAGE_ERROR.CORRUPT_RECORD, `${operation}: a stored ${descriptor.name} record breaks its schema: ${named.join('; ')}`, {
    meta: { operation, fields: problems.fields },
  });
}

/**
 * Parse a stored JSON text field.
 *
 * @param where - `<table or collection>.<column or field>`, for the message
 * @throws StorageError `STORAGE.CORRUPT_RECORD` naming `where`, never the text
 */
export function parseStoredJson(value: unknown, operation: string, where: string): unknown {
  try {
    if (typeof value !== 'string') throw new TypeError('not text');
    return JSON.parse(value) as unknown;
  } catch (cause) {
    throw new StorageError(STORAGE_ERROR.CORRUPT_RECORD, `${operation}: stored ${where} is not valid JSON text`, { cause, meta: { operation, field: where } });
  }
}

const describe = <T>(d: RecordDescriptor<T>): RecordDescriptor<T> => d;

/** Every stored record type: schema, key and unique fields. */
export const RECORDS = {
  persons: describe<Person>({ name: 'persons', schema: PersonSchema, key: 'id', uniques: ['teamsUserId', 'cardId'] }),
  cards: describe<CardRecord>({ name: 'cards', schema: CardRecordSchema, key: 'cardId', uniques: [] }),
  journeys: describe<JourneyRecord>({ name: 'journeys', schema: JourneyRecordSchema, key: 'key', uniques: [] }),
  devices: describe<Device>({ name: 'devices', schema: DeviceSchema, key: 'id', uniques: [] }),
  pairings: describe<Pairing>({ name: 'pairings', schema: PairingSchema, key: 'id', uniques: ['deviceCodeHash', 'userCodeHash'] }),
  cases: describe<RaCase>({ name: 'cases', schema: RaCaseSchema, key: 'ref', uniques: ['sourceId'] }),
  audit: describe<AuditEntry>({ name: 'audit', schema: AuditEntrySchema, key: 'id', uniques: [] }),
  conversations: describe<ConversationRecord>({ name: 'conversations', schema: ConversationRecordSchema, key: 'personId', uniques: [] }),
} as const;

/** The record types with `version` and compare-and-set `save`. */
type VersionedRecordName = 'persons' | 'cards' | 'journeys' | 'devices' | 'pairings' | 'cases';
