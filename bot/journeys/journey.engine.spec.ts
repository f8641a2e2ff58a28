import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { makePerson } from '../../storage/storage.fixtures';
import type { JourneyRecord, Storage } from '../../storage/storage.port';
import { harness, type Harness } from './journey.spec-support';
import { journeyKey } from './journey.key';
import { EFFECT_NOT_HERE } from './journey.engine';
import { newUnlockJourney, type PersonFacts, type UnlockJourney } from './unlock/unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock/unlock.state';

const DEVICE = '11111111-1111-4111-8111-111111111111';
let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** Store an unlock journey at the questions step for a stored person. */
async function answering(hx: Harness): Promise<{ personId: string; facts: PersonFacts; journey: UnlockJourney }> {
  const person = makePerson();
  await hx.storage.persons.insert(person);
  const journey: UnlockJourney = {
    ...newUnlockJourney(person.id, randomUUID()),
    state: { phase: 'answering', step: 3, deviceId: DEVICE, cardId: person.cardId!, questionIds: ['q01', 'q05', 'q09'], lastResult: null },
  };
  const at = hx.now.value.toISOString();
  const rec: JourneyRecord = { key: journeyKey(person.id, 'unlock'), personId: person.id, kind: 'unlock', runId: journey.runId, ...encodeUnlock(journey), pendingEffects: [], ui: { activityId: null }, createdAt: at, updatedAt: at, version: 1 };
  await hx.storage.journeys.insert(rec);
  const facts: PersonFacts = { personId: person.id, registered: true, boundCardId: person.cardId, questionIds: person.answers.map((a) => a.questionId), storedLock: null };
  return { personId: person.id, facts, journey };
}

/** A store whose first `n` journey reads all wait until `n` have arrived (so `n` writers race on one version). */
function barrierOnReads(n: number, conflicts: { count: number }): (s: Storage) => Storage {
  return (s) => {
    let waiting: Array<() => void> = [];
    let reads = 0;
    const journeys = {
      ...s.journeys,
      get: async (key: string) => {
        const rec = await s.journeys.get(key);
        if (++reads <= n) {
          await new Promise<void>((resolve) => {
            waiting.push(resolve);
            if (waiting.length === n) {
              for (const w of waiting) w();
              waiting = [];
            }
          });
        }
        return rec;
      },
      save: async (rec: JourneyRecord, expected: number) => {
        const r = await s.journeys.save(rec, expected);
        if (r === 'conflict') conflicts.count++;
        return r;
      },
    };
    return { ...s, journeys } as Storage;
  };
}

describe('journey engine', () => {
  it('a lost race is retried from a fresh read and the claim counts once', async () => {
    const conflicts = { count: 0 };
    h = harness(barrierOnReads(5, conflicts));
    const { personId, facts, journey } = await answering(h);
    const claims: string[] = Array.from({ length: 5 }, () => randomUUID());
    const results = await Promise.all(
      claims.map((claimId) => h!.engine.run(h!.engine.definitions.unlock, personId, async (j) => ({ type: 'answers_submitted' as const, person: facts, runId: journey.runId, step: j.state.step, claimId }))),
    );
    expect(conflicts.count).toBe(4);
    const stored = decodeUnlock((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!);
    expect(stored.counters.answerAttempts).toBe(1);
    expect(stored.state.phase).toBe('checking_answers');
    const winners = results.filter((r) => r.journey.state.phase === 'checking_answers' && r.journey.state.claimId && claims.includes(r.journey.state.claimId) && r.result?.changed);
    expect(winners).toHaveLength(1);
  });

  it('stores the effects with the new state in one write; a failed effect stays, counted, until a later drain', async () => {
    h = harness();
    const { personId, journey } = await answering(h);
    let companionUp = false;
    h.link.reply = async () => {
      if (!companionUp) throw new AppError('LINK.OFFLINE', 'not connected');
      return { kind: 'ack' };
    };
    // A start replaces the run in `answering`: its step closes the old run on the companion.
    const person = (await h.storage.persons.get(personId))!;
    const facts: PersonFacts = { personId, registered: true, boundCardId: person.cardId, questionIds: person.answers.map((a) => a.questionId), storedLock: null };
    const { record } = await h.engine.run(h.engine.definitions.unlock, personId, async () => ({ type: 'start' as const, person: facts, deviceId: DEVICE }));
    expect(record.runId).not.toBe(journey.runId);
    expect(decodeUnlock(record).state.phase).toBe('checking_card');
    const pending = record.pendingEffects.filter((e) => e.type === 'companion.command');
    expect(pending).toHaveLength(1);
    expect(pending[0]!.attempts).toBe(1);
    // The audit effect of the same step was carried out and removed.
    expect(record.pendingEffects.some((e) => e.type === 'audit')).toBe(false);
    expect((await h.storage.audit.list({ personId, limit: 10 })).map((a) => a.action)).toContain('unlock.started');
    companionUp = true;
    await h.engine.drain(personId, 'unlock');
    expect((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!.pendingEffects).toEqual([]);
    expect(h.commands.filter((c) => c.command.kind === 'unlock.closed')).toHaveLength(2);
  });

  it('effects left behind by a crash are carried out by the sweep', async () => {
    h = harness();
    const person = makePerson();
    await h.storage.persons.insert(person);
    const at = h.now.value.toISOString();
    const effectId = randomUUID();
    const j = newUnlockJourney(person.id, randomUUID());
    await h.storage.journeys.insert({
      key: journeyKey(person.id, 'unlock'),
      personId: person.id,
      kind: 'unlock',
      runId: j.runId,
      ...encodeUnlock(j),
      pendingEffects: [{ id: effectId, type: 'audit', payload: { type: 'audit', id: effectId, personId: person.id, actor: 'system', action: 'spec.after_crash', details: {} }, attempts: 0 }],
      ui: { activityId: null },
      createdAt: at,
      updatedAt: at,
      version: 1,
    });
    await h.engine.sweep();
    expect((await h.storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'spec.after_crash')).toHaveLength(1);
    expect((await h.storage.journeys.get(journeyKey(person.id, 'unlock')))!.pendingEffects).toEqual([]);
  });

  it('a follow-up event (code mailed) is stepped by the engine with the journey definition', async () => {
    h = harness();
    const { personId, facts, journey } = await answering(h);
    const claimId = randomUUID();
    await h.engine.run(h.engine.definitions.unlock, personId, async (j) => ({ type: 'answers_submitted' as const, person: facts, runId: journey.runId, step: j.state.step, claimId }));
    const { record } = await h.engine.run(h.engine.definitions.unlock, personId, async () => ({ type: 'answers_checked' as const, runId: journey.runId, claimId, results: [true, true, true] }));
    const state = decodeUnlock(record).state;
    expect(state.phase).toBe('code_sent');
    if (state.phase !== 'code_sent') return;
    expect(state.code.mailed).toBe(true);
    expect(h.mail).toHaveLength(1);
    expect(h.mail[0]!.to).toBe((await h.storage.persons.get(personId))!.email);
    // The companion is prompted only after the mail went.
    expect(h.commands.map((c) => c.command.kind)).toEqual(['unlock.prompt']);
  });

  it('an effect this process cannot carry out (EFFECT.NOT_HERE, the admin CLI) stays pending, uncounted, for the bot', async () => {
    h = harness();
    const person = makePerson();
    await h.storage.persons.insert(person);
    const at = h.now.value.toISOString();
    const j = newUnlockJourney(person.id, randomUUID());
    const mailId = randomUUID();
    const auditId = randomUUID();
    await h.storage.journeys.insert({
      key: journeyKey(person.id, 'unlock'),
      personId: person.id,
      kind: 'unlock',
      runId: j.runId,
      ...encodeUnlock(j),
      pendingEffects: [
        { id: mailId, type: 'mail.unlock_notice', payload: { type: 'mail.unlock_notice', id: mailId, personId: person.id, at, workstation: null }, attempts: 0 },
        { id: auditId, type: 'audit', payload: { type: 'audit', id: auditId, personId: person.id, actor: 'admin', action: 'spec.admin_step', details: {} }, attempts: 0 },
      ],
      ui: { activityId: null },
      createdAt: at,
      updatedAt: at,
      version: 1,
    });
    const mailBefore = h.mail.length;
    h.mailFailure.error = new AppError(EFFECT_NOT_HERE, 'no mail here');
    await h.engine.drain(person.id, 'unlock');
    const after = (await h.storage.journeys.get(journeyKey(person.id, 'unlock')))!;
    expect(after.pendingEffects.map((e) => [e.id, e.attempts])).toEqual([[mailId, 0]]);
    expect((await h.storage.audit.list({ personId: person.id, limit: 10 })).map((a) => a.action)).toEqual(['spec.admin_step']);
    // The bot's drain later carries it out.
    h.mailFailure.error = null;
    await h.engine.drain(person.id, 'unlock');
    expect((await h.storage.journeys.get(journeyKey(person.id, 'unlock')))!.pendingEffects).toEqual([]);
    expect(h.mail.length).toBe(mailBefore + 1);
  });

  it('gives up with JOURNEY.BUSY when every write loses its race', async () => {
    h = harness((s) => ({ ...s, journeys: { ...s.journeys, save: async () => 'conflict' as const } }) as Storage);
    const { personId } = await answering(h);
    await expect(h.engine.run(h.engine.definitions.unlock, personId, async () => ({ type: 'reset' as const, actor: 'admin', note: null }))).rejects.toMatchObject({ code: 'JOURNEY.BUSY' });
  });

  it('a malformed stored state is refused naming the field, not cast', async () => {
    h = harness();
    const { personId } = await answering(h);
    const rec = (await h.storage.journeys.get(journeyKey(personId, 'unlock')))!;
    await h.storage.journeys.save({ ...rec, state: { v: 2, phase: 'answering', step: 3, lock: null, resetAt: null }, version: rec.version + 1 }, rec.version);
    await expect(h.engine.run(h.engine.definitions.unlock, personId, async () => null)).rejects.toThrow(/state\.deviceId/);
  });
});
