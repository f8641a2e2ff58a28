/**
 * Collections and indexes of the MongoDB store.
 *
 * Layout (see `mongodb-versioned.collection.ts`): each repository with `save`
 * has a head collection (`persons`: one document per record, `_id` = key, a
 * cache of the latest revision) and a revision collection (`persons_rev`:
 * insert-only, `_id` = `<key>#<revision>`, the truth). Identity is unique by
 * construction: one `_id` per revision, one `_id` per claim generation in
 * `claims` (teamsUserId, cardId, pairing code hashes, case sourceId), the
 * entry id as `_id` in `audit`, the person id in `conversations`, the key and
 * hit number in `rate_hits`. So no index
 * here needs `unique`, and every read on the hot path is by `_id`.
 *
 * Portability (MongoDB, Atlas, Cosmos DB for MongoDB, FerretDB v1): only plain
 * ascending single and compound indexes. FerretDB v1 refuses
 * `partialFilterExpression` and `expireAfterSeconds` (and on SQLite uses no
 * index but `_id`); Cosmos DB needs an index for each sort and allows unique
 * indexes only on empty collections. The TTL indexes are garbage collection
 * only, created where the server accepts them.
 */

/** Collection names. */
export const MONGO_COLLECTION = {
  persons: 'persons',
  personsRev: 'persons_rev',
  cards: 'cards',
  cardsRev: 'cards_rev',
  journeys: 'journeys',
  journeysRev: 'journeys_rev',
  devices: 'devices',
  devicesRev: 'devices_rev',
  pairings: 'pairings',
  pairingsRev: 'pairings_rev',
  cases: 'cases',
  casesRev: 'cases_rev',
  audit: 'audit',
  conversations: 'conversations',
  /** Unique-value claims (see ClaimRegistry). */
  claims: 'claims',
  /** Rate-limit hits (storage.port.ts RateHitLog): `{ _id: '<key>#<n>', k, n, at, until }`, insert-only. */
  rateHits: 'rate_hits',
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

/** Indexes of a revision collection: by record key (deletes) and by write time (GC, head repair). */
const revisionIndexes = (collection: MongoCollectionName): MongoIndexSpec[] => [
  { collection, name: `${collection}_k`, key: { k: 1 } },
  { collection, name: `${collection}_w`, key: { w: 1 } },
];

/** Every index except `_id`. Each list and sort of the repositories is covered. */
export const MONGO_INDEXES: readonly MongoIndexSpec[] = [
  ...revisionIndexes(MONGO_COLLECTION.personsRev),
  ...revisionIndexes(MONGO_COLLECTION.cardsRev),
  { collection: MONGO_COLLECTION.journeys, name: 'journeys_pending', key: { pendingCount: 1, updatedAt: 1 } },
  ...revisionIndexes(MONGO_COLLECTION.journeysRev),
  { collection: MONGO_COLLECTION.devices, name: 'devices_personId', key: { personId: 1, createdAt: 1 } },
  ...revisionIndexes(MONGO_COLLECTION.devicesRev),
  { collection: MONGO_COLLECTION.pairings, name: 'pairings_expiresAt', key: { expiresAt: 1 } },
  ...revisionIndexes(MONGO_COLLECTION.pairingsRev),
  { collection: MONGO_COLLECTION.cases, name: 'cases_personId', key: { personId: 1, createdAt: 1 } },
  { collection: MONGO_COLLECTION.cases, name: 'cases_status', key: { status: 1, createdAt: 1 } },
  ...revisionIndexes(MONGO_COLLECTION.casesRev),
  { collection: MONGO_COLLECTION.audit, name: 'audit_at_seq', key: { at: 1, seq: 1 } },
  { collection: MONGO_COLLECTION.audit, name: 'audit_personId_at_seq', key: { personId: 1, at: 1, seq: 1 } },
  // A key's most recent hits (sort by n descending), and garbage collection by window end.
  { collection: MONGO_COLLECTION.rateHits, name: 'rate_hits_k_n', key: { k: 1, n: 1 } },
  { collection: MONGO_COLLECTION.rateHits, name: 'rate_hits_until', key: { until: 1 } },
];

/**
 * Garbage collection of expired pairings by the server, where it supports TTL
 * indexes. `gcAfter` (a BSON date, on heads and revisions) is `expiresAt` plus a day of grace, so the
 * service's own expiry checks and `deleteExpired` stay the rule and the TTL
 * monitor only sweeps leftovers. Correctness never depends on it.
 */
export const MONGO_GC_TTL_INDEX = {
  /** Heads and revisions both: a head deleted alone would come back from its revisions. */
  collections: [MONGO_COLLECTION.pairings, MONGO_COLLECTION.pairingsRev],
  name: 'pairings_gc_ttl',
  key: { gcAfter: 1 },
  expireAfterSeconds: 0,
  /** Added to `expiresAt` to give `gcAfter`, in ms (24 hours). */
  graceMs: 24 * 60 * 60 * 1000,
} as const;

/** The document layout version this release writes (in `storage_meta`). */
export const MONGO_SCHEMA_VERSION = 1;
