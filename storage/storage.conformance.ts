/**
 * The storage conformance suite: one set of tests every adapter of the port
 * must pass (STYLE.md 3). It talks to the adapter only through `Storage`.
 *
 * Use from an adapter's spec or integration test:
 *
 *   runStorageConformance('sqlite', async () => openSqliteStorage({ file: tempFile() }));
 *
 * The factory must return a fresh, empty store each call; the suite closes it.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../common/app-error';
import type { JourneyRecord, Storage } from './storage.port';
import { STORAGE_ERROR } from './storage.errors';
import {
  at,
  fakeCardId,
  fakeCaseRef,
  fakeKeyedHash,
  fakeSealed,
  makeAuditEntry,
  makeCard,
  makeCase,
  makeConversation,
  makeDevice,
  makeEffect,
  makeJourney,
  makePairing,
  makePerson,
} from './storage.fixtures';

/** Options for {@link runStorageConformance}. */
export interface StorageConformanceOptions {
  /** Concurrent writers in the CAS tests (default 50). */
  concurrency?: number;
  /**
   * A second store over the same data, as another bot instance opens it (its own connection).
   * When given, the rate-hit race splits its callers between the two; the suite closes it.
   */
  sibling?: (storage: Storage) => Promise<Storage>;
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected the call to be refused');
}

/**
 * Register the conformance tests for one adapter.
 *
 * @param name - adapter name shown in the test titles
 * @param factory - returns a fresh, empty store; called before each test
 * @param options - tuning (concurrency)
 */
export function runStorageConformance(name: string, factory: () => Promise<Storage>, options: StorageConformanceOptions = {}): void {
  const concurrency = options.concurrency ?? 50;

  describe(`storage conformance: ${name}`, () => {
    let s: Storage;
    beforeEach(async () => {
      s = await factory();
    });
    afterEach(async () => {
      await s.close();
    });

    it('ping answers', async () => {
      await expect(s.ping()).resolves.toBeUndefined();
    });

    it('a refused write does not disturb writes issued alongside it', async () => {
      const a = makePerson();
      const b = makePerson();
      const bad = makePerson({ cardId: 'not-a-card' });
      const clash = makePerson({ teamsUserId: a.teamsUserId });
      const results = await Promise.allSettled([s.persons.insert(a), s.persons.insert(bad), s.persons.insert(clash), s.persons.insert(b), s.audit.append(makeAuditEntry({ personId: a.id }))]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      expect(results[2]).toEqual({ status: 'fulfilled', value: { status: 'exists', record: a } });
      expect(await s.persons.get(a.id)).toEqual(a);
      expect(await s.persons.get(b.id)).toEqual(b);
      expect(await s.persons.get(bad.id)).toBeNull();
      expect(await s.audit.list({ personId: a.id, limit: 10 })).toHaveLength(1);
    });

    it('stores only the schema\'s fields: properties the port does not know are dropped, at every level', async () => {
      const p = makePerson();
      const extra = { ...p, nickname: 'not a port field', answers: p.answers.map((a) => ({ ...a, plaintext: 'not a port field' })) };
      expect(await s.persons.insert(extra as typeof p)).toEqual({ status: 'created', record: p });
      expect(await s.persons.get(p.id)).toEqual(p);
      const d = makeDevice();
      await s.devices.insert(d);
      expect(await s.devices.save({ ...d, workstation: 'WS-9', extra: 1 } as typeof d, 1)).toBe('saved');
      expect(await s.devices.get(d.id)).toEqual({ ...d, workstation: 'WS-9', version: 2 });
    });

    describe('persons', () => {
      it('insert creates; get and the finders return an equal copy; unknown keys give null', async () => {
        const p = makePerson();
        expect(await s.persons.insert(p)).toEqual({ status: 'created', record: p });
        expect(await s.persons.get(p.id)).toEqual(p);
        expect(await s.persons.findByTeamsUserId(p.teamsUserId)).toEqual(p);
        expect(await s.persons.findByCardId(p.cardId!)).toEqual(p);
        expect(await s.persons.get(randomUUID())).toBeNull();
        expect(await s.persons.findByTeamsUserId('29:nobody')).toBeNull();
        expect(await s.persons.findByCardId(fakeCardId())).toBeNull();
      });

      it('listByEmail: every person with the address, whatever its case, oldest first; none gives []', async () => {
        const email = `shared.${randomUUID().slice(0, 8)}@nhs.net`;
        const later = makePerson({ email, createdAt: at(20) });
        const earlier = makePerson({ email, createdAt: at(10) });
        const other = makePerson();
        for (const p of [later, earlier, other]) await s.persons.insert(p);
        expect(await s.persons.listByEmail(email.toUpperCase())).toEqual([earlier, later]);
        expect(await s.persons.listByEmail(` ${other.email} `)).toEqual([other]);
        expect(await s.persons.listByEmail('nobody@nhs.net')).toEqual([]);
        expect((await rejection(s.persons.listByEmail(''))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
      });

      it('returns copies: changing a returned or inserted object changes nothing stored', async () => {
        const p = makePerson();
        const inserted = await s.persons.insert(p);
        const expected = structuredClone(p);
        inserted.record.displayName = 'changed';
        p.answers.pop();
        p.email = 'changed@nhs.net';
        const got = await s.persons.get(expected.id);
        got!.answers[0]!.hash = 'changed';
        got!.selfServiceLock = { at: at(1), caseRef: 'RA-000000', reason: 'locked_by_ra' };
        expect(await s.persons.get(expected.id)).toEqual(expected);
      });

      it('a second insert with the same id, teamsUserId or cardId answers exists with the stored record', async () => {
        const p = makePerson();
        await s.persons.insert(p);
        const sameId = makePerson({ id: p.id });
        const sameTeams = makePerson({ teamsUserId: p.teamsUserId });
        const sameCard = makePerson({ cardId: p.cardId });
        for (const dup of [sameId, sameTeams, sameCard]) {
          expect(await s.persons.insert(dup)).toEqual({ status: 'exists', record: p });
        }
        expect(await s.persons.get(sameTeams.id)).toBeNull();
        expect(await s.persons.get(sameCard.id)).toBeNull();
        expect(await s.persons.findByTeamsUserId(sameId.teamsUserId)).toBeNull();
      });

      it('several persons without a card coexist (cardId is unique only when set)', async () => {
        const a = makePerson({ cardId: null });
        const b = makePerson({ cardId: null });
        expect((await s.persons.insert(a)).status).toBe('created');
        expect((await s.persons.insert(b)).status).toBe('created');
        expect(await s.persons.get(b.id)).toEqual(b);
      });

      it('save is compare-and-set on version and stores version expected + 1', async () => {
        const p = makePerson();
        await s.persons.insert(p);
        const lock = { at: at(60), caseRef: fakeCaseRef(), reason: 'answers_failed' as const };
        const changed = { ...p, email: 'new.address@nhs.net', selfServiceLock: lock, updatedAt: at(60) };
        expect(await s.persons.save(changed, 1)).toBe('saved');
        expect(await s.persons.get(p.id)).toEqual({ ...changed, version: 2 });
        // Stale writer: still holding version 1.
        expect(await s.persons.save({ ...p, displayName: 'stale' }, 1)).toBe('conflict');
        expect(await s.persons.get(p.id)).toEqual({ ...changed, version: 2 });
        // Unknown record.
        expect(await s.persons.save(makePerson(), 1)).toBe('conflict');
      });

      it('save can bind and unbind a card; lookups follow', async () => {
        const p = makePerson({ cardId: null });
        await s.persons.insert(p);
        const cardId = fakeCardId();
        expect(await s.persons.save({ ...p, cardId }, 1)).toBe('saved');
        expect((await s.persons.findByCardId(cardId))?.id).toBe(p.id);
        expect(await s.persons.save({ ...p, cardId: null }, 2)).toBe('saved');
        expect(await s.persons.findByCardId(cardId)).toBeNull();
      });

      it('save refuses to give a person a card bound to someone else, and changes nothing', async () => {
        const a = makePerson();
        const b = makePerson();
        await s.persons.insert(a);
        await s.persons.insert(b);
        const err = await rejection(s.persons.save({ ...b, cardId: a.cardId }, 1));
        expect(err.code).toBe(STORAGE_ERROR.UNIQUE_VIOLATION);
        expect(err.message).not.toContain(a.cardId!);
        expect(await s.persons.get(b.id)).toEqual(b);
        expect((await s.persons.findByCardId(a.cardId!))?.id).toBe(a.id);
      });

      it('refuses an invalid record, naming the field but not the value, and stores nothing', async () => {
        const bad = makePerson({ cardId: 'NOT-A-CARD-ID-secretish' });
        const err = await rejection(s.persons.insert(bad));
        expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(err.message).toMatch(/cardId/);
        expect(JSON.stringify(err.toJSON())).not.toContain('secretish');
        expect(await s.persons.get(bad.id)).toBeNull();
        for (const broken of [makePerson({ version: 0 }), makePerson({ createdAt: '30/11/2026' }), makePerson({ email: 'Upper@NHS.net' })]) {
          expect((await rejection(s.persons.insert(broken))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
        }
      });

      it('stores triple answer hashes (covers, issue #15) beside per-answer ones, and refuses a malformed covers', async () => {
        const ids = ['q01', 'q05', 'q09', 'q14'];
        const triples = ids.map((left) => ({ ...makePerson().answers[0]!, questionId: left, covers: ids.filter((q) => q !== left) as [string, string, string] }));
        const p = makePerson({ answers: triples });
        expect(await s.persons.insert(p)).toEqual({ status: 'created', record: p });
        expect(await s.persons.get(p.id)).toEqual(p);
        const saved = { ...p, answers: [...makePerson().answers] };
        expect(await s.persons.save(saved, 1)).toBe('saved');
        expect((await s.persons.get(p.id))?.answers).toEqual(saved.answers);
        expect((await s.persons.get(p.id))?.answers.some((a) => 'covers' in a)).toBe(false);
        const badCovers: Array<[string, string, string]> = [['q05', 'q01', 'q09'], ['q01', 'q01', 'q09'], ['q01', 'q05', 'q14']];
        for (const covers of badCovers) {
          const bad = makePerson({ answers: [{ ...triples[3]!, covers }] });
          const err = await rejection(s.persons.insert(bad));
          expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
          expect(err.message).toMatch(/covers/);
          expect(await s.persons.get(bad.id)).toBeNull();
        }
      });
    });

    describe('cards', () => {
      it('insert, get copies, duplicate answers exists with the stored record', async () => {
        const c = makeCard();
        expect(await s.cards.insert(c)).toEqual({ status: 'created', record: c });
        const got = await s.cards.get(c.cardId);
        expect(got).toEqual(c);
        got!.puk = null;
        expect(await s.cards.get(c.cardId)).toEqual(c);
        expect(await s.cards.insert({ ...c, puk: fakeSealed(), personId: randomUUID() })).toEqual({ status: 'exists', record: c });
        expect(await s.cards.get(fakeCardId())).toBeNull();
      });

      it('save rotates the PUK with compare-and-set', async () => {
        const c = makeCard();
        await s.cards.insert(c);
        const pending = fakeSealed();
        expect(await s.cards.save({ ...c, pendingPuk: pending, updatedAt: at(1) }, 1)).toBe('saved');
        expect(await s.cards.save({ ...c, pendingPuk: fakeSealed() }, 1)).toBe('conflict');
        expect(await s.cards.save({ ...c, puk: pending, pendingPuk: null, updatedAt: at(2) }, 2)).toBe('saved');
        expect(await s.cards.get(c.cardId)).toEqual({ ...c, puk: pending, pendingPuk: null, updatedAt: at(2), version: 3 });
      });

      it('refuses a plaintext PUK (only sealed values are stored)', async () => {
        const c = makeCard({ puk: '12345678' });
        const err = await rejection(s.cards.insert(c));
        expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(err.message).toMatch(/puk/);
        expect(JSON.stringify(err.toJSON())).not.toContain('12345678');
        expect(await s.cards.get(c.cardId)).toBeNull();
        const ok = makeCard({ puk: null });
        await s.cards.insert(ok);
        expect((await rejection(s.cards.save({ ...ok, pendingPuk: '87654321' }, 1))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(await s.cards.get(ok.cardId)).toEqual(ok);
      });
    });

    describe('journeys', () => {
      it('insert and get keep state, counters, effects and ui exactly; duplicate answers exists', async () => {
        const j = makeJourney({
          state: { step: 'await_code', list: [1, 'two', null, { deep: ['é', '✓'] }], flag: false },
          counters: { failedAnswers: 2, codeTries: 0 },
          pendingEffects: [makeEffect(), makeEffect({ type: 'send_mail', payload: { to: 'a@nhs.net', sealed: fakeSealed() } })],
          ui: { activityId: 'act-1' },
        });
        expect(await s.journeys.insert(j)).toEqual({ status: 'created', record: j });
        expect(await s.journeys.get(j.key)).toEqual(j);
        expect(await s.journeys.insert({ ...j, runId: randomUUID(), pendingEffects: [] })).toEqual({ status: 'exists', record: j });
        expect(await s.journeys.get(`${randomUUID()}:unlock`)).toBeNull();
      });

      it('save writes state, counters, effects and ui together, compare-and-set on version', async () => {
        const j = makeJourney();
        await s.journeys.insert(j);
        const next: JourneyRecord = { ...j, state: { step: 'done' }, counters: { failedAnswers: 1 }, pendingEffects: [makeEffect()], ui: { activityId: 'a2' }, updatedAt: at(5) };
        expect(await s.journeys.save(next, 1)).toBe('saved');
        expect(await s.journeys.save({ ...j, state: { step: 'stale' } }, 1)).toBe('conflict');
        expect(await s.journeys.get(j.key)).toEqual({ ...next, version: 2 });
      });

      it('accepts undefined properties in state and payloads (dropped, as JSON does) but refuses values JSON cannot hold', async () => {
        const j = makeJourney({ state: { step: 'x', optional: undefined, list: [1] }, pendingEffects: [makeEffect({ payload: { sw: undefined, ok: true } })] });
        await s.journeys.insert(j);
        const got = await s.journeys.get(j.key);
        expect(got!.state).toStrictEqual({ step: 'x', list: [1] });
        expect(got!.pendingEffects[0]!.payload).toStrictEqual({ ok: true });
        for (const state of [{ when: new Date() }, { n: Number.NaN }, { big: 1n }, { list: [undefined] }, { m: new Map() }]) {
          const other = makeJourney({ state });
          const err = await rejection(s.journeys.insert(other));
          expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
          expect(err.message).toMatch(/state/);
          expect(await s.journeys.get(other.key)).toBeNull();
        }
      });

      it('refuses a key that does not match personId:kind, and duplicate effect ids', async () => {
        const j = makeJourney();
        expect((await rejection(s.journeys.insert({ ...j, key: `${j.personId}:registration` }))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
        const e = makeEffect();
        expect((await rejection(s.journeys.insert({ ...j, pendingEffects: [e, { ...e }] }))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(await s.journeys.get(j.key)).toBeNull();
      });

      it('removeEffects removes only the given ids, ignores unknown ids and keys, and leaves other fields and version alone', async () => {
        const [e1, e2, e3] = [makeEffect(), makeEffect(), makeEffect()];
        const j = makeJourney({ pendingEffects: [e1!, e2!, e3!], updatedAt: at(3) });
        await s.journeys.insert(j);
        await s.journeys.removeEffects(j.key, [e2!.id, randomUUID()]);
        expect(await s.journeys.get(j.key)).toEqual({ ...j, pendingEffects: [e1, e3] });
        await s.journeys.removeEffects(j.key, []);
        await s.journeys.removeEffects(`${randomUUID()}:unlock`, [e1!.id]);
        await s.journeys.removeEffects(j.key, [e1!.id, e3!.id]);
        expect(await s.journeys.get(j.key)).toEqual({ ...j, pendingEffects: [] });
        // The version did not move, so a writer holding version 1 still saves.
        expect(await s.journeys.save({ ...j, pendingEffects: [] }, 1)).toBe('saved');
      });

      it('countEffectAttempt adds one to the given effects only', async () => {
        const [e1, e2] = [makeEffect(), makeEffect({ attempts: 4 })];
        const j = makeJourney({ pendingEffects: [e1!, e2!] });
        await s.journeys.insert(j);
        await s.journeys.countEffectAttempt(j.key, [e2!.id]);
        await s.journeys.countEffectAttempt(j.key, [e2!.id, e1!.id]);
        await s.journeys.countEffectAttempt(j.key, [randomUUID()]);
        const got = await s.journeys.get(j.key);
        expect(got!.pendingEffects.map((e) => [e.id, e.attempts])).toEqual([
          [e1!.id, 1],
          [e2!.id, 6],
        ]);
        expect(got!.version).toBe(1);
        expect(got!.state).toEqual(j.state);
      });

      it('concurrent effect edits lose nothing', async () => {
        const effects = Array.from({ length: 20 }, () => makeEffect());
        const j = makeJourney({ pendingEffects: effects });
        await s.journeys.insert(j);
        await Promise.all([
          ...effects.slice(0, 10).map((e) => s.journeys.removeEffects(j.key, [e.id])),
          ...effects.slice(10).map((e) => s.journeys.countEffectAttempt(j.key, [e.id])),
        ]);
        const got = await s.journeys.get(j.key);
        expect(got!.pendingEffects).toEqual(effects.slice(10).map((e) => ({ ...e, attempts: 1 })));
      });

      it('listWithPendingEffects lists only journeys with effects, oldest update first, up to the limit', async () => {
        const old = makeJourney({ updatedAt: at(10), pendingEffects: [makeEffect()] });
        const newer = makeJourney({ updatedAt: at(20), pendingEffects: [makeEffect(), makeEffect()] });
        const oldest = makeJourney({ updatedAt: at(5), pendingEffects: [makeEffect()] });
        const idle = makeJourney({ updatedAt: at(1), pendingEffects: [] });
        for (const j of [old, newer, oldest, idle]) await s.journeys.insert(j);
        expect((await s.journeys.listWithPendingEffects(10)).map((j) => j.key)).toEqual([oldest.key, old.key, newer.key]);
        expect(await s.journeys.listWithPendingEffects(2)).toEqual([oldest, old]);
        await s.journeys.removeEffects(oldest.key, [oldest.pendingEffects[0]!.id]);
        expect((await s.journeys.listWithPendingEffects(10)).map((j) => j.key)).toEqual([old.key, newer.key]);
        expect((await s.journeys.save({ ...idle, pendingEffects: [makeEffect()], updatedAt: at(30) }, 1))).toBe('saved');
        expect((await s.journeys.listWithPendingEffects(10)).map((j) => j.key)).toEqual([old.key, newer.key, idle.key]);
        expect((await rejection(s.journeys.listWithPendingEffects(0))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
      });

      it(`${concurrency} concurrent saves of one version: exactly one wins`, async () => {
        const j = makeJourney();
        await s.journeys.insert(j);
        const results = await Promise.all(
          Array.from({ length: concurrency }, (_, i) => s.journeys.save({ ...j, state: { writer: i }, updatedAt: at(1) }, 1)),
        );
        expect(results.filter((r) => r === 'saved')).toHaveLength(1);
        expect(results.filter((r) => r === 'conflict')).toHaveLength(concurrency - 1);
        const stored = await s.journeys.get(j.key);
        expect(stored!.version).toBe(2);
        expect(results[(stored!.state as { writer: number }).writer]).toBe('saved');
      });

      it(`${concurrency} concurrent read-increment-save loops: one win per version, no lost increments`, async () => {
        const j = makeJourney({ counters: { n: 0 } });
        await s.journeys.insert(j);
        const winsByVersion = new Map<number, number>();
        let conflicts = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async (_, writer) => {
            for (let attempt = 0; attempt < concurrency * 4; attempt++) {
              const current = (await s.journeys.get(j.key))!;
              const next = { ...current, counters: { n: current.counters.n! + 1 }, state: { lastWriter: writer } };
              const result = await s.journeys.save(next, current.version);
              if (result === 'saved') {
                winsByVersion.set(current.version, (winsByVersion.get(current.version) ?? 0) + 1);
                return;
              }
              conflicts++;
            }
            throw new Error(`writer ${writer} never won`);
          }),
        );
        const stored = (await s.journeys.get(j.key))!;
        expect(stored.counters.n).toBe(concurrency);
        expect(stored.version).toBe(concurrency + 1);
        expect([...winsByVersion.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: concurrency }, (_, i) => i + 1));
        expect([...winsByVersion.values()].every((n) => n === 1)).toBe(true);
        expect(conflicts).toBeGreaterThan(0);
      });

      it('racing first inserts of one key: one created, every other answered with that record', async () => {
        const personId = randomUUID();
        const candidates = Array.from({ length: concurrency }, (_, i) => makeJourney({ personId, state: { writer: i } }));
        const results = await Promise.all(candidates.map((c) => s.journeys.insert(c)));
        const created = results.filter((r) => r.status === 'created');
        expect(created).toHaveLength(1);
        const winner = created[0]!.record;
        for (const r of results) expect(r.record).toEqual(winner);
        expect(await s.journeys.get(winner.key)).toEqual(winner);
      });
    });

    describe('devices', () => {
      it('insert, get, duplicate, CAS save and listByPerson (oldest first, only that person)', async () => {
        const personId = randomUUID();
        const d2 = makeDevice({ personId, createdAt: at(20) });
        const d1 = makeDevice({ personId, createdAt: at(10) });
        const other = makeDevice();
        for (const d of [d2, d1, other]) expect((await s.devices.insert(d)).status).toBe('created');
        expect(await s.devices.get(d1.id)).toEqual(d1);
        expect(await s.devices.insert({ ...d1, workstation: 'other' })).toEqual({ status: 'exists', record: d1 });
        expect(await s.devices.listByPerson(personId)).toEqual([d1, d2]);
        expect(await s.devices.listByPerson(randomUUID())).toEqual([]);
        const seen = { ...d1, lastSeenAt: at(30), connectedInstance: 'bot-a' };
        expect(await s.devices.save(seen, 1)).toBe('saved');
        expect(await s.devices.save({ ...d1, revokedAt: at(31) }, 1)).toBe('conflict');
        expect(await s.devices.get(d1.id)).toEqual({ ...seen, version: 2 });
        expect(await s.devices.get(randomUUID())).toBeNull();
      });

      it('refuses a credential that is not a keyed hash', async () => {
        const d = makeDevice({ credentialHash: 'plain-credential-secret' });
        const err = await rejection(s.devices.insert(d));
        expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(JSON.stringify(err.toJSON())).not.toContain('plain-credential-secret');
        expect(await s.devices.get(d.id)).toBeNull();
      });
    });

    describe('pairings', () => {
      it('finds by either hash; duplicates of id or either hash answer exists', async () => {
        const p = makePairing();
        expect(await s.pairings.insert(p)).toEqual({ status: 'created', record: p });
        expect(await s.pairings.getByDeviceCodeHash(p.deviceCodeHash)).toEqual(p);
        expect(await s.pairings.getByUserCodeHash(p.userCodeHash)).toEqual(p);
        expect(await s.pairings.getByUserCodeHash(fakeKeyedHash())).toBeNull();
        expect(await s.pairings.insert(makePairing({ id: p.id }))).toEqual({ status: 'exists', record: p });
        expect(await s.pairings.insert(makePairing({ deviceCodeHash: p.deviceCodeHash }))).toEqual({ status: 'exists', record: p });
        expect(await s.pairings.insert(makePairing({ userCodeHash: p.userCodeHash }))).toEqual({ status: 'exists', record: p });
      });

      it('save is compare-and-set', async () => {
        const p = makePairing();
        await s.pairings.insert(p);
        const approved = { ...p, status: 'approved' as const, personId: randomUUID() };
        expect(await s.pairings.save(approved, 1)).toBe('saved');
        expect(await s.pairings.save({ ...p, status: 'denied' }, 1)).toBe('conflict');
        expect(await s.pairings.getByDeviceCodeHash(p.deviceCodeHash)).toEqual({ ...approved, version: 2 });
      });

      it('deleteExpired removes only pairings that expired strictly before the time, and says how many', async () => {
        const a = makePairing({ expiresAt: at(100) });
        const b = makePairing({ expiresAt: at(200) });
        const c = makePairing({ expiresAt: at(300) });
        for (const p of [a, b, c]) await s.pairings.insert(p);
        expect(await s.pairings.deleteExpired(at(100))).toBe(0);
        expect(await s.pairings.deleteExpired(at(250))).toBe(2);
        expect(await s.pairings.getByDeviceCodeHash(a.deviceCodeHash)).toBeNull();
        expect(await s.pairings.getByUserCodeHash(b.userCodeHash)).toBeNull();
        expect(await s.pairings.getByDeviceCodeHash(c.deviceCodeHash)).toEqual(c);
        expect(await s.pairings.deleteExpired(at(250))).toBe(0);
        expect((await rejection(s.pairings.deleteExpired('yesterday'))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
      });
    });

    describe('cases', () => {
      it('insert, get, duplicate ref answers exists', async () => {
        const c = makeCase();
        expect(await s.cases.insert(c)).toEqual({ status: 'created', record: c });
        expect(await s.cases.get(c.ref)).toEqual(c);
        expect(await s.cases.insert(makeCase({ ref: c.ref }))).toEqual({ status: 'exists', record: c });
        expect(await s.cases.get('RA-ZZZZZZ')).toBeNull();
      });

      it('a repeated effect (same sourceId, new ref) finds the case already opened', async () => {
        const first = makeCase();
        await s.cases.insert(first);
        const repeat = makeCase({ sourceId: first.sourceId, personId: first.personId });
        expect(await s.cases.insert(repeat)).toEqual({ status: 'exists', record: first });
        expect(await s.cases.get(repeat.ref)).toBeNull();
        expect(await s.cases.listByPerson(first.personId)).toEqual([first]);
      });

      it('racing inserts from one source open one case', async () => {
        const sourceId = randomUUID();
        const results = await Promise.all(Array.from({ length: concurrency }, () => s.cases.insert(makeCase({ sourceId }))));
        expect(results.filter((r) => r.status === 'created')).toHaveLength(1);
        const winner = results.find((r) => r.status === 'created')!.record;
        for (const r of results) expect(r.record).toEqual(winner);
      });

      it('listByPerson oldest first; listOpen only open cases, oldest first, up to the limit; save is CAS', async () => {
        const personId = randomUUID();
        const c1 = makeCase({ personId, createdAt: at(10) });
        const c2 = makeCase({ personId, createdAt: at(20), status: 'claimed' });
        const c3 = makeCase({ createdAt: at(5) });
        const c4 = makeCase({ createdAt: at(30) });
        for (const c of [c2, c1, c3, c4]) await s.cases.insert(c);
        expect(await s.cases.listByPerson(personId)).toEqual([c1, c2]);
        expect((await s.cases.listOpen(10)).map((c) => c.ref)).toEqual([c3.ref, c1.ref, c4.ref]);
        expect((await s.cases.listOpen(2)).map((c) => c.ref)).toEqual([c3.ref, c1.ref]);
        const claimed = { ...c3, status: 'claimed' as const, context: { ...c3.context, claimedBy: 'ra-1' }, updatedAt: at(40) };
        expect(await s.cases.save(claimed, 1)).toBe('saved');
        expect(await s.cases.save({ ...c3, status: 'closed' }, 1)).toBe('conflict');
        expect(await s.cases.get(c3.ref)).toEqual({ ...claimed, version: 2 });
        expect((await s.cases.listOpen(10)).map((c) => c.ref)).toEqual([c1.ref, c4.ref]);
      });

      it('listActive: open and claimed cases, not closed ones, oldest first, up to the limit', async () => {
        const open = makeCase({ createdAt: at(10) });
        const claimed = makeCase({ createdAt: at(5), status: 'claimed' });
        const closed = makeCase({ createdAt: at(1), status: 'closed' });
        const newest = makeCase({ createdAt: at(30) });
        for (const c of [newest, closed, open, claimed]) await s.cases.insert(c);
        expect((await s.cases.listActive(10)).map((c) => c.ref)).toEqual([claimed.ref, open.ref, newest.ref]);
        expect((await s.cases.listActive(2)).map((c) => c.ref)).toEqual([claimed.ref, open.ref]);
        expect(await s.cases.save({ ...claimed, status: 'closed' }, 1)).toBe('saved');
        expect((await s.cases.listActive(10)).map((c) => c.ref)).toEqual([open.ref, newest.ref]);
      });
    });

    describe('audit', () => {
      it('lists oldest first whatever the append order, filters by person, honours the limit', async () => {
        const personId = randomUUID();
        const e3 = makeAuditEntry({ personId, at: at(30), action: 'unlock.completed' });
        const e1 = makeAuditEntry({ personId, at: at(10) });
        const other = makeAuditEntry({ at: at(20), personId: null, actor: 'admin' });
        const e2 = makeAuditEntry({ personId, at: at(15), actor: `person:${personId}` });
        for (const e of [e3, e1, other, e2]) await s.audit.append(e);
        expect(await s.audit.list({ limit: 100 })).toEqual([e1, e2, other, e3]);
        expect(await s.audit.list({ personId, limit: 100 })).toEqual([e1, e2, e3]);
        expect(await s.audit.list({ personId, limit: 2 })).toEqual([e1, e2]);
        expect(await s.audit.list({ personId: randomUUID(), limit: 10 })).toEqual([]);
      });

      it('lists a time range: from inclusive, to exclusive, with the person filter and the limit; a bad bound is refused', async () => {
        const personId = randomUUID();
        const e10 = makeAuditEntry({ personId, at: at(10) });
        const e20 = makeAuditEntry({ at: at(20), personId: null });
        const e20b = makeAuditEntry({ personId, at: at(20) });
        const e30 = makeAuditEntry({ personId, at: at(30) });
        for (const e of [e30, e20, e10, e20b]) await s.audit.append(e);
        expect(await s.audit.list({ from: at(20), limit: 100 })).toEqual([e20, e20b, e30]);
        expect(await s.audit.list({ to: at(20), limit: 100 })).toEqual([e10]);
        expect(await s.audit.list({ from: at(10), to: at(30), limit: 100 })).toEqual([e10, e20, e20b]);
        expect(await s.audit.list({ personId, from: at(15), to: at(31), limit: 100 })).toEqual([e20b, e30]);
        expect(await s.audit.list({ from: at(15), limit: 1 })).toEqual([e20]);
        expect(await s.audit.list({ from: at(40), limit: 10 })).toEqual([]);
        expect((await rejection(s.audit.list({ from: '2026-12-01', limit: 10 }))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
      });

      it('appending an id twice keeps one entry, the first', async () => {
        const e = makeAuditEntry();
        await s.audit.append(e);
        await s.audit.append({ ...e, action: 'tampered', details: { rewritten: true } });
        await Promise.all(Array.from({ length: 10 }, () => s.audit.append(e)));
        expect(await s.audit.list({ limit: 100 })).toEqual([e]);
      });

      it('returns copies', async () => {
        const e = makeAuditEntry();
        await s.audit.append(e);
        const [got] = await s.audit.list({ limit: 1 });
        got!.details.step = 'changed';
        expect(await s.audit.list({ limit: 1 })).toEqual([e]);
      });

      it('refuses details that are not flat scalars', async () => {
        const e = makeAuditEntry({ details: { nested: { x: 1 } } as never });
        expect((await rejection(s.audit.append(e))).code).toBe(STORAGE_ERROR.INVALID_RECORD);
        expect(await s.audit.list({ limit: 10 })).toEqual([]);
      });
    });

    describe('rateHits', () => {
      const T0 = Date.parse(at(0));
      /** ISO time `ms` after the fixture epoch. */
      const t = (ms: number): string => new Date(T0 + ms).toISOString();
      const WINDOW = 60_000;
      /** Record a hit at `ms` in a 60-second window. */
      const hit = (store: Storage, key: string, limit: number, ms: number) => store.rateHits.record(key, limit, t(ms), t(ms - WINDOW));

      it('records up to the limit in the window, then refuses, naming the oldest hit in the window; keys are independent', async () => {
        const key = `test.key:${randomUUID()}`;
        const results = [];
        for (let i = 0; i < 4; i++) results.push(await hit(s, key, 3, i * 1000));
        expect(results).toEqual([
          { recorded: true, inWindow: 1 },
          { recorded: true, inWindow: 2 },
          { recorded: true, inWindow: 3 },
          { recorded: false, oldestInWindow: t(0) },
        ]);
        expect(await hit(s, `test.key:${randomUUID()}`, 3, 3000)).toEqual({ recorded: true, inWindow: 1 });
        // A refused hit is not recorded: still refused a moment later, still naming the hit at 0.
        expect(await hit(s, key, 3, 59_999)).toEqual({ recorded: false, oldestInWindow: t(0) });
      });

      it('the window slides: a hit is recorded again once the oldest one is a window old, and only hits after `since` count', async () => {
        const key = `test.key:${randomUUID()}`;
        for (const ms of [0, 10_000, 20_000]) expect((await hit(s, key, 3, ms)).recorded).toBe(true);
        expect(await hit(s, key, 3, 60_000)).toEqual({ recorded: true, inWindow: 3 }); // the hit at 0 is no longer after since
        expect(await hit(s, key, 3, 60_001)).toEqual({ recorded: false, oldestInWindow: t(10_000) });
        expect(await hit(s, key, 3, 70_000)).toEqual({ recorded: true, inWindow: 3 });
        // A larger limit on the same key counts the same hits.
        expect(await hit(s, key, 5, 70_001)).toEqual({ recorded: true, inWindow: 4 });
      });

      it(`${concurrency} concurrent hits on one key with room for 7: exactly 7 recorded${options.sibling ? ', from two instances' : ''}`, async () => {
        const key = `test.race:${randomUUID()}`;
        const other = options.sibling ? await options.sibling(s) : s;
        try {
          const results = await Promise.all(Array.from({ length: concurrency }, (_, i) => hit(i % 2 === 0 ? s : other, key, 7, 5000 + i)));
          expect(results.filter((r) => r.recorded)).toHaveLength(7);
          expect(results.filter((r) => r.recorded).map((r) => (r.recorded ? r.inWindow : 0)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
          // Later hits, from either instance, see all 7.
          expect((await hit(s, key, 7, 6000 + concurrency)).recorded).toBe(false);
          expect((await hit(other, key, 8, 6001 + concurrency)).recorded).toBe(true);
          expect((await hit(other, key, 8, 6002 + concurrency)).recorded).toBe(false);
        } finally {
          if (other !== s) await other.close();
        }
      });

      it('peek counts the window as record would, and records nothing', async () => {
        const key = `test.key:${randomUUID()}`;
        const since = (ms: number) => t(ms - WINDOW);
        expect(await s.rateHits.peek(key, 2, since(0))).toEqual({ full: false, inWindow: 0 });
        await hit(s, key, 2, 0);
        await hit(s, key, 2, 1000);
        for (let i = 0; i < 3; i++) expect(await s.rateHits.peek(key, 2, since(2000))).toEqual({ full: true, oldestInWindow: t(0) });
        expect(await s.rateHits.peek(key, 3, since(2000))).toEqual({ full: false, inWindow: 2 });
        expect(await s.rateHits.peek(key, 2, t(500))).toEqual({ full: false, inWindow: 1 });
        // Nothing was recorded by the peeks: room for exactly one more of 3.
        expect(await hit(s, key, 3, 3000)).toEqual({ recorded: true, inWindow: 3 });
        expect(await hit(s, key, 3, 3001)).toEqual({ recorded: false, oldestInWindow: t(0) });
      });

      it('deleteExpired removes the hits whose window has ended (then those no longer count) and answers how many', async () => {
        const key = `test.key:${randomUUID()}`;
        // Windows of 60 s: these hits count until 60, 61, 62 and 90 s.
        for (const ms of [0, 1000, 2000, 30_000]) await hit(s, key, 10, ms);
        expect(await s.rateHits.deleteExpired(t(61_500))).toBe(2);
        expect(await s.rateHits.deleteExpired(t(61_500))).toBe(0);
        // Left: the hits at 2 s and 30 s. Counted from 0 with room for 3, one more fits.
        expect(await s.rateHits.record(key, 3, t(31_000), t(0))).toEqual({ recorded: true, inWindow: 3 });
        expect(await s.rateHits.record(key, 3, t(31_001), t(0))).toEqual({ recorded: false, oldestInWindow: t(2000) });
        expect(await s.rateHits.deleteExpired(t(10 * WINDOW))).toBe(3);
        expect(await hit(s, key, 1, 11 * WINDOW)).toEqual({ recorded: true, inWindow: 1 });
        // A hit with a longer window is kept longer.
        const long = `test.key:${randomUUID()}`;
        await s.rateHits.record(long, 5, t(0), t(-10 * WINDOW));
        expect(await s.rateHits.deleteExpired(t(9 * WINDOW))).toBe(0);
        expect(await s.rateHits.peek(long, 1, t(-1))).toEqual({ full: true, oldestInWindow: t(0) });
      });

      it('refuses bad arguments naming them, and records nothing', async () => {
        const key = `test.key:${randomUUID()}`;
        const bad = [
          { call: () => s.rateHits.record('', 3, t(0), t(-1)), field: 'key' },
          { call: () => s.rateHits.record('x'.repeat(201), 3, t(0), t(-1)), field: 'key' },
          { call: () => s.rateHits.record(key, 0, t(0), t(-1)), field: 'limit' },
          { call: () => s.rateHits.record(key, 1.5, t(0), t(-1)), field: 'limit' },
          { call: () => s.rateHits.record(key, 3, 'now', t(-1)), field: 'at' },
          { call: () => s.rateHits.record(key, 3, t(0), '2026-13-01T00:00:00.000Z'), field: 'since' },
          { call: () => s.rateHits.deleteExpired('yesterday'), field: 'now' },
          { call: () => s.rateHits.peek('', 3, t(-1)), field: 'key' },
          { call: () => s.rateHits.peek(key, 10_001, t(-1)), field: 'limit' },
          { call: () => s.rateHits.peek(key, 3, 'then'), field: 'since' },
        ];
        for (const b of bad) {
          const err = await rejection(b.call());
          expect(err.code).toBe(STORAGE_ERROR.INVALID_RECORD);
          expect(err.message).toContain(b.field);
        }
        expect(await hit(s, key, 1, 0)).toEqual({ recorded: true, inWindow: 1 });
      });
    });

    describe('conversations', () => {
      it('put inserts then replaces (last writer wins); get returns copies; unknown is null', async () => {
        const c = makeConversation();
        await s.conversations.put(c);
        const got = await s.conversations.get(c.personId);
        expect(got).toEqual(c);
        (got!.reference as { user: { id: string } }).user.id = 'changed';
        expect(await s.conversations.get(c.personId)).toEqual(c);
        const replaced = { ...c, reference: { ...c.reference, activityId: 'x' }, updatedAt: at(9) };
        await s.conversations.put(replaced);
        expect(await s.conversations.get(c.personId)).toEqual(replaced);
        expect(await s.conversations.get(randomUUID())).toBeNull();
      });
    });
  });
}
