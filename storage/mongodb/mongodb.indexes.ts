/**
 * Collections and indexes of the MongoDB store.
 *
 * Layout (see `mongodb-versioned.collection.ts`): each repository with `save`
 * keeps insert-only revision documents, `_id` = `<key>#<revision>`, `k` = the
 * record key, `r` = the revision, `cur` = latest-revision hint, `w` = written
 * at. Identity is unique by construction: one `_id` per revision and one
 * `_id` per claim generation in `claims` (teamsUserId, cardId, pairing code
 * hashes, case sourceId). The audit log uses the entry id as `_id`, the
 * conversations the person id. So no index here needs `unique`.
 *
 * Portability (MongoDB, Atlas, Cosmos DB for MongoDB, FerretDB v1): only plain
 * ascending single and compound indexes. FerretDB v1 refuses
 * `partialFilterExpression` and `expireAfterSeconds`; Cosmos DB needs an index
 * for each sort and allows unique indexes only on empty collections. The one
 * TTL index is garbage collection only, created where the server accepts it.
 */

/** Collection names. */
export const MONGO_COLLECTION = {
  persons: 'persons',
  cards: 'cards',
  journeys: 'journeys',
  devices: 'devices',
  pairings: 'pairings',
  cases: 'cases',
  audit: 'audit',
  conversations: 'conversations',
  /** Unique-value claims (see ClaimRegistry). */
  claims: 'claims',
  /** One document `{ _id: 'schema', version }`. */
  meta: 'storage_meta',
} as const;

export type MongoCollectionName = (typeof MONGO_COLLECTION)[keyof typeof MONGO_COLLECTION];

/** One index the adapter creates at start-up. */
export interface MongoIndexSpec {
  collection: MongoCollectionName;
  /** Explicit name, so a second start-up finds the same index (idempotent). */
  name: string;
  key: Record<string, 1>;
}

const revisions = (collection: MongoCollectionName): MongoIndexSpec => ({ collection, name: `${collection}_k_r`, key: { k: 1, r: 1 } });

/** Every index except `_id`. Each sort and lookup of the repositories is covered. */
export const MONGO_INDEXES: readonly MongoIndexSpec[] = [
  revisions(MONGO_COLLECTION.persons),
  { collection: MONGO_COLLECTION.persons, name: 'persons_teamsUserId', key: { teamsUserId: 1, cur: 1 } },
  { collection: MONGO_COLLECTION.persons, name: 'persons_cardId', key: { cardId: 1, cur: 1 } },
  revisions(MONGO_COLLECTION.cards),
  revisions(MONGO_COLLECTION.journeys),
  { collection: MONGO_COLLECTION.journeys, name: 'journeys_pending', key: { cur: 1, pendingCount: 1, updatedAt: 1, k: 1 } },
  revisions(MONGO_COLLECTION.devices),
  { collection: MONGO_COLLECTION.devices, name: 'devices_personId', key: { personId: 1, cur: 1, createdAt: 1, k: 1 } },
  revisions(MONGO_COLLECTION.pairings),
  { collection: MONGO_COLLECTION.pairings, name: 'pairings_deviceCodeHash', key: { deviceCodeHash: 1, cur: 1 } },
  { collection: MONGO_COLLECTION.pairings, name: 'pairings_userCodeHash', key: { userCodeHash: 1, cur: 1 } },
  { collection: MONGO_COLLECTION.pairings, name: 'pairings_expiresAt', key: { cur: 1, expiresAt: 1, k: 1 } },
  revisions(MONGO_COLLECTION.cases),
  { collection: MONGO_COLLECTION.cases, name: 'cases_personId', key: { personId: 1, cur: 1, createdAt: 1, k: 1 } },
  { collection: MONGO_COLLECTION.cases, name: 'cases_status', key: { status: 1, cur: 1, createdAt: 1, k: 1 } },
  { collection: MONGO_COLLECTION.claims, name: 'claims_s_g', key: { s: 1, g: 1 } },
  { collection: MONGO_COLLECTION.claims, name: 'claims_owner', key: { owner: 1 } },
  { collection: MONGO_COLLECTION.audit, name: 'audit_at_seq', key: { at: 1, seq: 1 } },
  { collection: MONGO_COLLECTION.audit, name: 'audit_personId_at_seq', key: { personId: 1, at: 1, seq: 1 } },
];

/**
 * Garbage collection of expired pairings by the server, where it supports TTL
 * indexes. `gcAfter` (a BSON date, on every revision) is `expiresAt` plus a day of grace, so the
 * service's own expiry checks and `deleteExpired` stay the rule and the TTL
 * monitor only sweeps leftovers. Correctness never depends on it.
 */
export const MONGO_GC_TTL_INDEX = {
  collection: MONGO_COLLECTION.pairings,
  name: 'pairings_gc_ttl',
  key: { gcAfter: 1 },
  expireAfterSeconds: 0,
  /** Added to `expiresAt` to give `gcAfter`, in ms (24 hours). */
  graceMs: 24 * 60 * 60 * 1000,
} as const;

/** The document layout version this release writes (in `storage_meta`). */
export const MONGO_SCHEMA_VERSION = 1;
