/**
 * The hourly cap on codes (issue #14: at most UNLOCK_CODES_PER_HOUR codes to one person in any 60 minutes,
 * across runs), on the pure journey.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_UNLOCK_RULES, newUnlockJourney, stepUnlock, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const T0 = new Date('2026-12-01T09:00:00.000Z');
const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };
const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');

/** Passing answer checks count as attempts until an unlock: allow more than 3 here, so only the code cap stops a run. */
const RULES = { ...DEFAULT_UNLOCK_RULES, maxAnswerFailures: 10 };

function ctx(now: Date, rules = RULES): StepContext {
  let n = 0;
  return {
    now,
    rules,
    newId: () => `id-${now.getTime()}-${++n}`,
    shuffle: (items) => [...items],
    freshCode: { hash: hashOf(`code-${now.getTime()}`), sealed: (runId) => `sealed:${runId}` },
    freshCaseRef: 'RA-ABC123',
    hashesEqual: (a, b) => a === b,
  };
}

const blocked: UnlockEvent = { type: 'card_status', person, result: { ok: true, status: { present: true, reader: 'r', cardId: CARD, pinRetries: 0 }, pukEnrolled: true } };

/** One run from start to a code: start, card, a passing answer check. */
function runToCode(j: UnlockJourney, at: Date, rules = RULES): UnlockJourney {
  const c = ctx(at, rules);
  j = stepUnlock(j, { type: 'start', person, deviceId: DEVICE }, c).journey;
  j = stepUnlock(j, blocked, c).journey;
  if (j.state.phase !== 'answering') return j;
  j = stepUnlock(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId: `claim-${at.getTime()}` }, c).journey;
  return stepUnlock(j, { type: 'answers_checked', runId: j.runId, claimId: `claim-${at.getTime()}`, results: [true, true, true] }, c).journey;
}

const minutes = (m: number): Date => new Date(T0.getTime() + m * 60_000);

describe('codes an hour (issue #14)', () => {
  it('a fourth code within the hour is refused before any question is asked; after the hour it is sent again', () => {
    let j = newUnlockJourney('p1', 'run-0');
    for (const m of [0, 10, 20]) {
      j = runToCode(j, minutes(m));
      expect(j.state.phase).toBe('code_sent');
    }
    expect(j.codeTimes).toHaveLength(3);
    // A new run 30 minutes in: the card is checked, then no questions (an attempt would be spent for nothing).
    const fourth = runToCode(j, minutes(30));
    expect(fourth.state).toMatchObject({ phase: 'card_problem', problem: 'too_many_codes' });
    expect(fourth.counters.answerAttempts).toBe(3);
    // 61 minutes after the first code, one code is out of the window.
    const later = runToCode(fourth, minutes(61));
    expect(later.state.phase).toBe('code_sent');
    expect(later.codeTimes?.map((t) => Date.parse(t))).toEqual([minutes(10), minutes(20), minutes(61)].map((d) => d.getTime()));
  });

  it('a successful unlock does not restart the count: three runs that each unlocked the card still leave no fourth code within the hour', () => {
    // The default rules (3 answer attempts): an unlock resets the attempt count, so only the code cap can stop the fourth run.
    const rules = DEFAULT_UNLOCK_RULES;
    let j = newUnlockJourney('p1', 'run-0');
    for (const m of [0, 10, 20]) {
      const c = ctx(minutes(m), rules);
      j = runToCode(j, minutes(m), rules);
      if (j.state.phase !== 'code_sent') throw new Error(`phase ${j.state.phase} at minute ${m}`);
      const code = j.state.code;
      j = stepUnlock(j, { type: 'code_mailed', runId: j.runId, codeHash: code.hash, at: c.now.toISOString() }, c).journey;
      const accepted = stepUnlock(j, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: code.hash, linkSession: 'link-1' }, c);
      expect(accepted.verdict).toEqual({ kind: 'authorised' });
      j = stepUnlock(accepted.journey, { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: 'WS-1' }, c).journey;
      expect(j.state.phase).toBe('done');
      expect(j.counters.answerAttempts).toBe(0);
    }
    expect(j.codeTimes).toHaveLength(3);
    const fourth = runToCode(j, minutes(30), rules);
    expect(fourth.state).toMatchObject({ phase: 'card_problem', problem: 'too_many_codes' });
    // No question was asked and no attempt spent for a code that could not be sent.
    expect(fourth.counters.answerAttempts).toBe(0);
    // The hour after the first code, the next code goes out.
    expect(runToCode(fourth, minutes(60.5), rules).state.phase).toBe('code_sent');
  });

  it('resends count too: with the cap at 2, the first resend is the last code of the hour', () => {
    const rules = { ...RULES, maxCodesPerHour: 2 };
    let j = runToCode(newUnlockJourney('p1', 'run-0'), T0);
    if (j.state.phase !== 'code_sent') throw new Error('phase');
    const resent = stepUnlock(j, { type: 'resend_code', person, step: j.state.step }, ctx(minutes(1), rules));
    expect(resent.changed).toBe(true);
    expect(resent.effects.filter((e) => e.type === 'mail.unlock_code')).toHaveLength(1);
    j = resent.journey;
    if (j.state.phase !== 'code_sent') throw new Error('phase');
    const again = stepUnlock(j, { type: 'resend_code', person, step: j.state.step }, ctx(minutes(2), rules));
    expect(again.changed).toBe(false);
    expect(again.effects).toEqual([]);
  });

  it('the code times survive the stored record; a record stored before them counts none', () => {
    const j = runToCode(newUnlockJourney('p1', 'run-0'), T0);
    const stored = encodeUnlock(j);
    const back = decodeUnlock({ personId: 'p1', runId: j.runId, state: stored.state, counters: stored.counters, updatedAt: T0.toISOString() });
    expect(back.codeTimes).toEqual([T0.toISOString()]);
    const { codeTimes: _dropped, ...old } = stored.state;
    const before = decodeUnlock({ personId: 'p1', runId: j.runId, state: old, counters: stored.counters, updatedAt: T0.toISOString() });
    expect(before.codeTimes).toBeUndefined();
  });
});
