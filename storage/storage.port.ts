/**
 * The storage port: everything the bot keeps, behind one interface.
 *
 * Adapters: `sqlite/` (embedded, the default; one file through better-sqlite3)
 * and `mongodb/` (the official driver; MongoDB, Atlas, Cosmos DB for MongoDB,
 * FerretDB), chosen by `storage.factory.ts`. One conformance suite
 * (`storage.conformance.ts`) runs against every adapter.
 *
 * Each record type has one zod schema (`storage.schemas.ts`, `RECORDS`); both
 * adapters derive their row / document codecs from it and share one generic
 * versioned repository per adapter (`storage.repository.ts`).
 *
 * Rules every adapter keeps, so the same code runs on SQLite, MongoDB, Atlas,
 * Cosmos DB for MongoDB and FerretDB:
 * - Every write that must be atomic touches ONE record. No method needs a
 *   multi-record transaction; compare-and-set on `version` gives optimistic
 *   concurrency (`save(record, expectedVersion)` -> 'conflict' when another
 *   writer got there first).
 * - Expiry is data (`expiresAt`) checked by the caller with its own clock, not
 *   deletion by the store.
 * - Secrets are stored only as keyed hashes, slow salted hashes, or sealed
 *   (AES-256-GCM) strings produced before they reach the port. The port never
 *   sees a plaintext passcode, PUK, one-time code, answer or credential.
 * - Times are ISO 8601 strings in UTC (`2026-11-30T09:15:00.000Z`).
 * - Returned objects are copies: mutating them changes nothing stored.
 */
import type { AppError } from '../common/app-error';

/** A value sealed with AES-256-GCM: `v1.<iv b64url>.<ciphertext b64url>.<tag b64url>`. */
export type Sealed = string;

/**
 * One slow salted hash (scrypt) of security answers. Two shapes share this record:
 * - triple (`covers` present, written since issue #15): the hash of three normalised
 *   answers together; a person has 4 of them, one per 3-of-4 choice, and `questionId`
 *   names the ONE question the triple leaves out, so the 4 records still name each
 *   registered question once;
 * - legacy per-answer (`covers` absent): the hash of the one answer to `questionId`.
 * See bot/security/answers.ts for the scheme and its security argument.
 */
export interface AnswerHash {
  /** Question id from the question bank (e.g. `q07`); for a triple, the question it leaves out. */
  questionId: string;
  /**
   * Triple records only: the three question ids whose answers are hashed together,
   * in ascending code-unit order, none equal to `questionId`. Absent on a per-answer hash.
   */
  covers?: [string, string, string];
  /** base64url salt, 16 bytes. */
  salt: string;
  /** base64url scrypt output, 32 bytes. */
  hash: string;
  /** scrypt cost parameters used, so they can be raised later. */
  params: { N: number; r: number; p: number };
}

export interface SelfServiceLock {
  at: string;
  /** RA case reference, e.g. `RA-7K2Q9D`. */
  caseRef: string;
  reason: 'answers_failed' | 'locked_by_ra';
}

export interface Person {
  /** UUID. */
  id: string;
  /** Teams identity: `from.aadObjectId` when present, else `from.id`. Unique. */
  teamsUserId: string;
  displayName: string;
  /** Registered email address, lower-cased. */
  email: string;
  /** E.164 mobile number or null. */
  mobile: string | null;
  /** Exactly 4 for a registered person. */
  answers: AnswerHash[];
  /** CHUID GUID of the bound card (32 hex digits), or null. Unique when set. */
  cardId: string | null;
  selfServiceLock: SelfServiceLock | null;
  createdAt: string;
  updatedAt: string;
  /** Optimistic-concurrency counter, starts at 1. */
  version: number;
}

export interface CardRecord {
  /** CHUID GUID, 32 hex digits. */
  cardId: string;
  personId: string;
  /** The card's PUK, sealed; null when no PUK is enrolled. */
  puk: Sealed | null;
  /** A PUK issued for rotation but not yet confirmed on the card. */
  pendingPuk: Sealed | null;
  updatedAt: string;
  version: number;
}

/** One effect waiting in a journey's outbox. `payload` may hold sealed values, never plaintext secrets. */
export interface StoredEffect {
  /** Unique id (UUID); effect handlers are idempotent on it. */
  id: string;
  type: string;
  payload: unknown;
  /** Times the shell tried to carry it out. */
  attempts: number;
}

/**
 * `unlock` and `registration` are a person's journeys (`personId` is the person's id);
 * `ra-case` is an RA case's journey (`personId` holds the case reference, e.g. `RA-7K2Q9D`).
 */
export type JourneyKind = 'unlock' | 'registration' | 'ra-case';

/**
 * One journey file per person and kind: the current run's state, counters that
 * outlive a run (failed answer attempts), and the outbox of effects still to be
 * carried out. The step's new state and its effects are written together in
 * one `save` (transactional outbox).
 */
export interface JourneyRecord {
  /** `${personId}:${kind}`. */
  key: string;
  personId: string;
  kind: JourneyKind;
  /** UUID of the current run; card actions and companion messages carry it. */
  runId: string;
  /** Journey state, JSON-serialisable; shape owned by the journey module. */
  state: unknown;
  /** Counters kept across runs. */
  counters: Record<string, number>;
  pendingEffects: StoredEffect[];
  /** Activity id and conversation of the card last shown for this run, if any. */
  ui: { activityId: string | null } ;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface Device {
  /** UUID. */
  id: string;
  personId: string;
  workstation: string;
  /** HMAC-SHA-256 (keyed) of the credential secret, hex. */
  credentialHash: string;
  createdAt: string;
  lastSeenAt: string | null;
  revokedAt: string | null;
  /** Which bot instance holds the live WebSocket, when connected (multi-instance). */
  connectedInstance: string | null;
  version: number;
}

export interface Pairing {
  /** UUID. */
  id: string;
  /** Keyed hash of the device code, hex. Unique. */
  deviceCodeHash: string;
  /** Keyed hash of the normalised user code (`K7QFM2XD`), hex. Unique. */
  userCodeHash: string;
  workstation: string;
  status: 'pending' | 'approved' | 'issued' | 'denied';
  /** Set when a person approved it. */
  personId: string | null;
  /** Set when the credential was issued on a poll. */
  deviceId: string | null;
  createdAt: string;
  expiresAt: string;
  lastPolledAt: string | null;
  version: number;
}

export interface RaCase {
  /** Short human reference, `RA-` + 6 chars of Crockford base32. Unique. */
  ref: string;
  personId: string;
  /** What opened it. */
  reason: 'answers_failed' | 'requested' | 'helpdesk' | 'no_puk_enrolled' | 'certificates_expired';
  status: 'open' | 'claimed' | 'closed';
  /** Non-secret context for RA (card id, attempts, journey run id). */
  context: Record<string, string | number | boolean | null>;
  /** Id of the effect that opened it: a repeated effect finds the same case. Unique. */
  sourceId: string;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export interface AuditEntry {
  /** Unique id (UUID, or the effect id that wrote it): appending the same id twice stores one entry. */
  id: string;
  at: string;
  /** `person:<id>`, `device:<id>`, `system`, `admin`. */
  actor: string;
  /** e.g. `unlock.answers_failed`, `unlock.completed`, `pairing.approved`. */
  action: string;
  /** Person id the entry is about, or null. */
  personId: string | null;
  /** Non-secret details. */
  details: Record<string, string | number | boolean | null>;
}

/** A Bot Framework conversation reference, stored to reach a person proactively. */
export interface ConversationRecord {
  personId: string;
  /** `Partial<ConversationReference>` as JSON. */
  reference: Record<string, unknown>;
  updatedAt: string;
}

/** Result of a compare-and-set write. */
export type SaveResult = 'saved' | 'conflict';
/** Result of an insert that must be unique. */
export type InsertResult<T> = { status: 'created'; record: T } | { status: 'exists'; record: T };

export interface PersonRepository {
  get(id: string): Promise<Person | null>;
  findByTeamsUserId(teamsUserId: string): Promise<Person | null>;
  findByCardId(cardId: string): Promise<Person | null>;
  /**
   * Persons registered with this email address, oldest first (an email is not unique, so 0, 1 or more).
   * The address is lower-cased before the lookup (emails are stored lower-cased).
   * NOTE: no index backs it (SQLite and MongoDB scan the persons): meant for staff look-ups (helpdesk handoff), not per-turn use.
   */
  listByEmail(email: string): Promise<Person[]>;
  /** Insert; a second insert with the same id, teamsUserId or cardId returns the existing one as 'exists'. */
  insert(person: Person): Promise<InsertResult<Person>>;
  /** Replace when stored version === expectedVersion; stores `person` with version expectedVersion + 1. */
  save(person: Person, expectedVersion: number): Promise<SaveResult>;
}

export interface CardRepository {
  get(cardId: string): Promise<CardRecord | null>;
  insert(card: CardRecord): Promise<InsertResult<CardRecord>>;
  save(card: CardRecord, expectedVersion: number): Promise<SaveResult>;
}

export interface JourneyRepository {
  get(key: string): Promise<JourneyRecord | null>;
  insert(record: JourneyRecord): Promise<InsertResult<JourneyRecord>>;
  /** Compare-and-set on version: state, counters, effects and ui are written together. */
  save(record: JourneyRecord, expectedVersion: number): Promise<SaveResult>;
  /** Remove carried-out effects by id (no version check; other fields untouched). Unknown ids are ignored. */
  removeEffects(key: string, effectIds: string[]): Promise<void>;
  /** Add 1 to `attempts` of the given effects (no version check). */
  countEffectAttempt(key: string, effectIds: string[]): Promise<void>;
  /**
   * Journeys that still have effects to carry out, oldest update first (recovery after a crash).
   * A stored record that cannot be read is left out (so one bad record cannot stop the others)
   * and reported to `options.onUnreadable` with its key and the `STORAGE.CORRUPT_RECORD` error
   * (which names the fields, never their values). It still counts towards `limit`.
   */
  listWithPendingEffects(limit: number, options?: { onUnreadable?: (key: string, error: AppError) => void }): Promise<JourneyRecord[]>;
}

export interface DeviceRepository {
  get(id: string): Promise<Device | null>;
  insert(device: Device): Promise<InsertResult<Device>>;
  save(device: Device, expectedVersion: number): Promise<SaveResult>;
  listByPerson(personId: string): Promise<Device[]>;
}

export interface PairingRepository {
  getByDeviceCodeHash(hash: string): Promise<Pairing | null>;
  getByUserCodeHash(hash: string): Promise<Pairing | null>;
  insert(pairing: Pairing): Promise<InsertResult<Pairing>>;
  save(pairing: Pairing, expectedVersion: number): Promise<SaveResult>;
  /** Delete pairings whose expiresAt is before `before` (garbage collection only). Returns how many. */
  deleteExpired(before: string): Promise<number>;
}

export interface CaseRepository {
  get(ref: string): Promise<RaCase | null>;
  /** Insert; same ref or same sourceId returns the existing case as 'exists'. */
  insert(raCase: RaCase): Promise<InsertResult<RaCase>>;
  save(raCase: RaCase, expectedVersion: number): Promise<SaveResult>;
  listByPerson(personId: string): Promise<RaCase[]>;
  listOpen(limit: number): Promise<RaCase[]>;
  /** Cases not closed (status `open` or `claimed`), oldest first, up to `limit`. */
  listActive(limit: number): Promise<RaCase[]>;
}

export interface AuditLog {
  /** Append; an entry whose id is already stored is ignored (idempotent). Never updates or deletes. */
  append(entry: AuditEntry): Promise<void>;
  /**
   * Entries oldest first, optionally for one person and within a time range.
   *
   * @param filter.personId - only entries about this person
   * @param filter.from - only entries with `at` >= from (ISO 8601 UTC, inclusive)
   * @param filter.to - only entries with `at` < to (ISO 8601 UTC, exclusive)
   * @param filter.limit - at most this many, 1..10000 (page on with `from` = the last entry's `at`, skipping ids seen)
   */
  list(filter: { personId?: string; from?: string; to?: string; limit: number }): Promise<AuditEntry[]>;
}

export interface ConversationRepository {
  get(personId: string): Promise<ConversationRecord | null>;
  /** Insert or replace (last writer wins: a reference is a routing hint, not state). */
  put(record: ConversationRecord): Promise<void>;
}

/**
 * What {@link RateHitLog.record} did: the hit was recorded (it is within the limit), or not
 * (`limit` hits of the key are already recorded after `since`).
 */
export type RateHitResult =
  /** Recorded. `inWindow`: hits of the key after `since`, this one included (1..limit). */
  | { recorded: true; inWindow: number }
  /**
   * Not recorded. `oldestInWindow`: the time of the oldest of the `limit` most recent hits; once it is
   * no longer after `since` (one window length later), a hit can be recorded again.
   */
  | { recorded: false; oldestInWindow: string };

/** What {@link RateHitLog.peek} found: the hits of a key in the window, without recording one. */
export type RateWindowState =
  /** Room for another hit: `inWindow` hits after `since` (0..limit-1). */
  | { full: false; inWindow: number }
  /** `limit` hits after `since`; `oldestInWindow` as in {@link RateHitResult}. */
  | { full: true; oldestInWindow: string };

/**
 * Hits of rate limits (sliding-window log), shared by every bot instance on the store.
 *
 * A hit is one stored row/document `(key, n, at, until)`: `n` numbers the key's hits 0, 1, 2...,
 * `at` is the caller's clock, `until` the end of its window (`at` plus the window length), after
 * which it counts for nothing and is garbage. Keys name a limit and what it counts
 * (`pair.start.addr:<hash>`), one window length per key; they are not secret (callers hash secrets first).
 */
export interface RateHitLog {
  /**
   * The key's hits after `since`, as {@link record} would count them, recording nothing (a read).
   * A full window stays full until its oldest hit leaves it, so `full` may be acted on without a record.
   *
   * @param key - 1..200 characters, no control characters
   * @param limit - hits allowed in the window, 1..10000
   * @param since - the window's start, ISO 8601 UTC
   * @throws StorageError `STORAGE.INVALID_RECORD` for a bad argument, `STORAGE.UNAVAILABLE` when the store is down
   */
  peek(key: string, limit: number, since: string): Promise<RateWindowState>;
  /**
   * Record one hit of `key` at `at`, unless `limit` hits of `key` are already recorded after `since`.
   *
   * WARNING: atomic across every instance on the store: however many calls race, at most `limit`
   * hits after `since` are recorded (SQLite: one write transaction; MongoDB: the hit claims the
   * next `_id`, a single-winner insert, after the check).
   *
   * @param key - 1..200 characters, no control characters
   * @param limit - hits allowed in the window, 1..10000
   * @param at - now, ISO 8601 UTC (the caller's clock)
   * @param since - the window's start (`at` minus the window length), ISO 8601 UTC
   * @returns {@link RateHitResult}
   * @throws StorageError `STORAGE.INVALID_RECORD` for a bad argument, `STORAGE.UNAVAILABLE` when the store is down
   */
  record(key: string, limit: number, at: string, since: string): Promise<RateHitResult>;
  /** Delete hits whose window ended before `now` (garbage collection only). Returns how many. */
  deleteExpired(now: string): Promise<number>;
}

/** The port. */
export interface Storage {
  readonly persons: PersonRepository;
  readonly cards: CardRepository;
  readonly journeys: JourneyRepository;
  readonly devices: DeviceRepository;
  readonly pairings: PairingRepository;
  readonly cases: CaseRepository;
  readonly audit: AuditLog;
  readonly conversations: ConversationRepository;
  readonly rateHits: RateHitLog;
  /** Check the store answers (start-up and health). Throws AppError `STORAGE.UNAVAILABLE`. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
