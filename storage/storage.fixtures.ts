/**
 * Builders of valid port records for tests (conformance suite, journey and
 * shell tests). Each call gives fresh ids and unique keys; pass overrides for
 * the fields a test cares about.
 *
 * Sealed and hashed fields hold random values of the right shape, not real
 * ciphertexts: the store checks shape only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AuditEntry, CardRecord, ConversationRecord, Device, JourneyKind, JourneyRecord, Pairing, Person, RaCase, StoredEffect } from './storage.port';

/** A fixed base time for fixtures; `at(n)` is n seconds after it. */
export const FIXTURE_EPOCH = Date.parse('2026-11-30T09:00:00.000Z');

/** ISO time `seconds` after {@link FIXTURE_EPOCH}. */
export function at(seconds: number): string {
  return new Date(FIXTURE_EPOCH + seconds * 1000).toISOString();
}

/** A random 32-hex-digit card id. */
export function fakeCardId(): string {
  return randomBytes(16).toString('hex');
}

/** A random value shaped like a sealed secret (`v1.<iv>.<ct>.<tag>`). */
export function fakeSealed(ciphertextBytes = 8): string {
  return `v1.${randomBytes(12).toString('base64url')}.${randomBytes(ciphertextBytes).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
}

/** A random value shaped like a keyed hash (64 hex digits). */
export function fakeKeyedHash(): string {
  return randomBytes(32).toString('hex');
}

/** A random Crockford case reference. */
export function fakeCaseRef(): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  return `RA-${Array.from(randomBytes(6), (b) => alphabet[b % 32]).join('')}`;
}

export function makePerson(overrides: Partial<Person> = {}): Person {
  const id = randomUUID();
  return {
    id,
    teamsUserId: `29:${randomUUID()}`,
    displayName: 'Alex Wilber',
    email: `alex.${id.slice(0, 8)}@nhs.net`,
    mobile: '+447700900123',
    answers: ['q01', 'q05', 'q09', 'q14'].map((questionId) => ({
      questionId,
      salt: randomBytes(16).toString('base64url'),
      hash: randomBytes(32).toString('base64url'),
      params: { N: 32768, r: 8, p: 1 },
    })),
    cardId: fakeCardId(),
    selfServiceLock: null,
    createdAt: at(0),
    updatedAt: at(0),
    version: 1,
    ...overrides,
  };
}

export function makeCard(overrides: Partial<CardRecord> = {}): CardRecord {
  return { cardId: fakeCardId(), personId: randomUUID(), puk: fakeSealed(), pendingPuk: null, updatedAt: at(0), version: 1, ...overrides };
}

export function makeEffect(overrides: Partial<StoredEffect> = {}): StoredEffect {
  return { id: randomUUID(), type: 'send_card', payload: { template: 'questions', n: 3 }, attempts: 0, ...overrides };
}

export function makeJourney(overrides: Partial<JourneyRecord> & { kind?: JourneyKind } = {}): JourneyRecord {
  const personId = overrides.personId ?? randomUUID();
  const kind = overrides.kind ?? 'unlock';
  return {
    key: `${personId}:${kind}`,
    personId,
    kind,
    runId: randomUUID(),
    state: { step: 'questions', questionIds: ['q01', 'q05', 'q09'], nested: { ok: true, n: null } },
    counters: { failedAnswers: 0 },
    pendingEffects: [],
    ui: { activityId: null },
    createdAt: at(0),
    updatedAt: at(0),
    version: 1,
    ...overrides,
  };
}

export function makeDevice(overrides: Partial<Device> = {}): Device {
  return {
    id: randomUUID(),
    personId: randomUUID(),
    workstation: 'WS-0421',
    credentialHash: fakeKeyedHash(),
    createdAt: at(0),
    lastSeenAt: null,
    revokedAt: null,
    connectedInstance: null,
    version: 1,
    ...overrides,
  };
}

export function makePairing(overrides: Partial<Pairing> = {}): Pairing {
  return {
    id: randomUUID(),
    deviceCodeHash: fakeKeyedHash(),
    userCodeHash: fakeKeyedHash(),
    workstation: 'WS-0421',
    status: 'pending',
    personId: null,
    deviceId: null,
    createdAt: at(0),
    expiresAt: at(600),
    lastPolledAt: null,
    version: 1,
    ...overrides,
  };
}

export function makeCase(overrides: Partial<RaCase> = {}): RaCase {
  return {
    ref: fakeCaseRef(),
    personId: randomUUID(),
    reason: 'answers_failed',
    status: 'open',
    context: { cardId: fakeCardId(), attempts: 3, selfService: false, note: null },
    sourceId: randomUUID(),
    createdAt: at(0),
    updatedAt: at(0),
    version: 1,
    ...overrides,
  };
}

export function makeAuditEntry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return { id: randomUUID(), at: at(0), actor: 'system', action: 'unlock.started', personId: randomUUID(), details: { step: 'questions', attempt: 1, ok: true, none: null }, ...overrides };
}

export function makeConversation(overrides: Partial<ConversationRecord> = {}): ConversationRecord {
  return {
    personId: randomUUID(),
    reference: { channelId: 'msteams', serviceUrl: 'http://localhost:56150/_connector', conversation: { id: 'a:1', conversationType: 'personal' }, user: { id: 'user-id-0' } },
    updatedAt: at(0),
    ...overrides,
  };
}

/**
 * Run `fn` and return what it threw; fails the calling test when it did not throw.
 *
 * @returns the thrown value (tests check its `code` and `message`)
 * @throws Error when `fn` returned normally
 */
export function thrownBy(fn: () => unknown): { code?: unknown; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: unknown; message: string };
  }
  throw new Error('expected a throw');
}
