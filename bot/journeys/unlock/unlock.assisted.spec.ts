/**
 * RA-assisted unlock and "talk to RA" pausing a run (issue #12), on the pure journey: the questions are
 * skipped, the lock and attempts are reset, a paused run resumes where it stopped, and the completion is
 * marked assisted for the usage report.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../journey.effects';
import { DEFAULT_UNLOCK_RULES, newUnlockJourney, stepUnlock, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const LINK = '22222222-2222-4222-8222-222222222222';
const T0 = new Date('2026-12-01T09:00:00.000Z');
const CASE = 'RA-7K2Q9D';
const RA = 'ra:0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };
const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');
const at = (m: number): Date => new Date(T0.getTime() + m * 60_000);

let ids = 0;
function ctx(now: Date, code = '12345678'): StepContext {
  return {
    now,
    rules: DEFAULT_UNLOCK_RULES,
    newId: () => `id-${++ids}`,
    shuffle: (items) => [...items],
    freshCode: { hash: hashOf(code), sealed: (runId) => `sealed:${runId}` },
    freshCaseRef: 'RA-LOCK01',
    hashesEqual: (a, b) => a === b,
  };
}

const blocked = (p: PersonFacts = person): UnlockEvent => ({ type: 'card_status', person: p, result: { ok: true, status: { present: true, reader: 'r', cardId: CARD, pinRetries: 0 }, pukEnrolled: true } });
const assisted = (p: PersonFacts = person, deviceId: string | null = DEVICE): UnlockEvent => ({ type: 'assisted_start', person: p, deviceId, caseRef: CASE, actor: RA });
const types = (effects: Effect[]): string[] => effects.map((e) => (e.type === 'audit' ? `audit:${e.action}` : e.type === 'companion.command' ? `companion:${e.command.kind}` : e.type));

function step(j: UnlockJourney, e: UnlockEvent, now = T0, code?: string) {
  return stepUnlock(j, e, ctx(now, code));
}

function answering(): UnlockJourney {
  let j = step(newUnlockJourney('p1', 'run-0'), { type: 'start', person, deviceId: DEVICE }).journey;
  j = step(j, blocked()).journey;
  expect(j.state.phase).toBe('answering');
  return j;
}

function fail(j: UnlockJourney): UnlockJourney {
  if (j.state.phase !== 'answering') throw new Error(`phase ${j.state.phase}`);
  const claimId = `c-${++ids}`;
  j = step(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId }).journey;
  return step(j, { type: 'answers_checked', runId: j.runId, claimId, results: [false, false, false] }).journey;
}

function codeSent(): UnlockJourney {
  let j = answering();
  if (j.state.phase !== 'answering') throw new Error('phase');
  j = step(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId: 'c-pass' }).journey;
  j = step(j, { type: 'answers_checked', runId: j.runId, claimId: 'c-pass', results: [true, true, true] }).journey;
  return step(j, { type: 'code_mailed', runId: j.runId, codeHash: hashOf('12345678'), at: T0.toISOString() }).journey;
}

describe('RA-assisted unlock (issue #12)', () => {
  it('after a lockout: resets the lock and attempts, checks the card, and sends the code with no questions', () => {
    let j = answering();
    for (let i = 0; i < 3; i++) j = fail(j);
    expect(j.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-LOCK01' });
    expect(j.lock).not.toBeNull();

    const started = step(j, assisted(), at(30));
    expect(started.journey.state).toMatchObject({ phase: 'checking_card', deviceId: DEVICE });
    expect(started.journey.runId).not.toBe(j.runId);
    expect(started.journey.lock).toBeNull();
    expect(started.journey.counters.answerAttempts).toBe(0);
    expect(started.journey.resetAt).toBe(at(30).toISOString());
    expect(started.journey.assist).toEqual({ caseRef: CASE, actor: RA, at: at(30).toISOString(), runId: started.journey.runId });
    const audit = started.effects.find((e) => e.type === 'audit');
    expect(audit).toMatchObject({ actor: RA, action: 'unlock.assisted_started', details: { caseRef: CASE, lockCleared: 'RA-LOCK01', attemptsBefore: 3, resumedFrom: null } });
    expect(types(started.effects)).toContain('person.clear_self_service_lock');

    // A stored lock mirror older than the reset no longer counts.
    const mirrored = { ...person, storedLock: { at: T0.toISOString(), caseRef: 'RA-LOCK01', reason: 'answers_failed' as const } };
    const card = step(started.journey, blocked(mirrored), at(31));
    expect(card.journey.state.phase).toBe('code_sent');
    expect(types(card.effects)).toEqual(['audit:unlock.questions_skipped', 'mail.unlock_code', 'companion:unlock.prompt']);
    expect(card.effects[0]).toMatchObject({ actor: RA, details: { caseRef: CASE, reason: 'ra_assisted' } });
    expect(JSON.stringify(card.effects)).not.toContain('12345678');
  });

  it('a person with a bound card but no security questions can be assisted (none are asked)', () => {
    const bare: PersonFacts = { ...person, registered: false, questionIds: [] };
    const selfService = step(newUnlockJourney('p1', 'run-0'), { type: 'start', person: bare, deviceId: DEVICE });
    expect(selfService.journey.state).toMatchObject({ phase: 'card_problem', problem: 'not_registered' });
    const started = step(selfService.journey, assisted(bare));
    expect(started.journey.state.phase).toBe('checking_card');
    expect(step(started.journey, blocked(bare)).journey.state.phase).toBe('code_sent');
  });

  it('with no companion the person is told to pair, and the assist stays for their next "unlock"', () => {
    const started = step(newUnlockJourney('p1', 'run-0'), assisted(person, null));
    expect(started.journey.state).toMatchObject({ phase: 'card_problem', problem: 'no_companion' });
    const again = step(started.journey, { type: 'start', person, deviceId: DEVICE }, at(5));
    expect(again.journey.state.phase).toBe('checking_card');
    expect(step(again.journey, blocked(), at(5)).journey.state.phase).toBe('code_sent');
    // An hour later the assist is over: questions again.
    const late = step(step(started.journey, { type: 'start', person, deviceId: DEVICE }, at(61)).journey, blocked(), at(61));
    expect(late.journey.state.phase).toBe('answering');
  });

  it('the completion is audited as RA-assisted with the case, and the assist ends', () => {
    let j = step(newUnlockJourney('p1', 'run-0'), assisted()).journey;
    j = step(j, blocked()).journey;
    if (j.state.phase !== 'code_sent') throw new Error('phase');
    j = step(j, { type: 'code_mailed', runId: j.runId, codeHash: j.state.code.hash, at: at(1).toISOString() }, at(1)).journey;
    const accepted = step(j, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, at(2));
    expect(accepted.verdict).toEqual({ kind: 'authorised' });
    const done = step(accepted.journey, { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: 'WS1' }, at(3));
    expect(done.journey.state.phase).toBe('done');
    expect(done.journey.assist).toBeNull();
    expect(done.effects.find((e) => e.type === 'audit' && e.action === 'unlock.completed')).toMatchObject({ details: { assisted: true, caseRef: CASE } });
  });

  it('started again for the same case while its run is under way, it changes nothing (no second code)', () => {
    let j = step(newUnlockJourney('p1', 'run-0'), assisted()).journey;
    j = step(j, blocked()).journey;
    const again = step(j, assisted(), at(1));
    expect(again.changed).toBe(false);
    expect(again.effects).toEqual([]);
  });
});

describe('"talk to RA" pauses a run; the assisted unlock resumes it where it stopped (issue #12)', () => {
  it('paused at the questions: answers are no longer taken; the assisted unlock reads the card again, then sends the code on the same run and card', () => {
    const j = answering();
    if (j.state.phase !== 'answering') throw new Error('phase');
    const paused = step(j, { type: 'pause', caseRef: CASE }, at(1));
    expect(paused.journey.state).toMatchObject({ phase: 'paused', caseRef: CASE, from: { phase: 'answering', cardId: CARD } });
    expect(paused.effects.find((e) => e.type === 'audit')).toMatchObject({ action: 'unlock.paused', actor: 'person:p1', details: { caseRef: CASE, phase: 'answering' } });
    // A click on the questions card of the paused run changes nothing.
    const click = step(paused.journey, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId: 'late' }, at(2));
    expect(click.changed).toBe(false);
    expect(click.journey.counters.answerAttempts).toBe(0);

    const resumed = step(paused.journey, assisted(), at(10));
    expect(resumed.journey.runId).toBe(j.runId);
    expect(resumed.journey.state).toMatchObject({ phase: 'checking_card', deviceId: DEVICE });
    expect(types(resumed.effects)).toEqual(['audit:unlock.assisted_started']);
    expect(resumed.effects[0]).toMatchObject({ details: { resumedFrom: 'answering' } });
    const card = step(resumed.journey, blocked(), at(10));
    expect(card.journey.runId).toBe(j.runId);
    expect(card.journey.state).toMatchObject({ phase: 'code_sent', deviceId: DEVICE, cardId: CARD });
    expect(types(card.effects)).toEqual(['audit:unlock.questions_skipped', 'mail.unlock_code', 'companion:unlock.prompt']);
  });

  it('paused with a code out: the companion form closes; resumed, the card is read again and the same code works again', () => {
    const j = codeSent();
    if (j.state.phase !== 'code_sent') throw new Error('phase');
    const hash = j.state.code.hash;
    const paused = step(j, { type: 'pause', caseRef: CASE }, at(2));
    expect(paused.effects.find((e) => e.type === 'companion.command')).toMatchObject({ command: { kind: 'unlock.closed', outcome: 'cancelled' } });
    // While paused the code is not taken.
    const early = step(paused.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, at(3));
    expect(early.verdict).toMatchObject({ kind: 'refused', reason: 'not_waiting' });

    const resumed = step(paused.journey, assisted(), at(5));
    expect(resumed.journey.runId).toBe(j.runId);
    expect(resumed.journey.state).toMatchObject({ phase: 'checking_card', kept: { cardId: CARD, code: { hash, mailed: true } } });
    expect(types(resumed.effects)).toEqual(['audit:unlock.assisted_started']);
    // The code is not taken until the card was read again.
    expect(step(resumed.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, at(5)).verdict).toMatchObject({ kind: 'refused', reason: 'not_waiting' });
    const card = step(resumed.journey, blocked(), at(5));
    expect(card.journey.state).toMatchObject({ phase: 'code_sent', code: { hash, mailed: true } });
    expect(types(card.effects)).toEqual(['companion:unlock.prompt']);
    const accepted = step(card.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, at(6));
    expect(accepted.verdict).toEqual({ kind: 'authorised' });
  });

  it('paused with a code that has since expired: resumed, a new code goes to the card it checked', () => {
    const paused = step(codeSent(), { type: 'pause', caseRef: CASE }, at(2)).journey;
    const resumed = step(paused, assisted(), at(20), '87654321');
    expect(resumed.journey.state.phase).toBe('checking_card');
    const card = step(resumed.journey, blocked(), at(20), '87654321');
    expect(card.journey.state).toMatchObject({ phase: 'code_sent', cardId: CARD, code: { hash: hashOf('87654321'), mailed: false } });
    expect(types(card.effects)).toContain('mail.unlock_code');
  });

  it('"unlock" typed while paused starts afresh (with questions)', () => {
    const paused = step(answering(), { type: 'pause', caseRef: CASE }, at(1)).journey;
    const fresh = step(paused, { type: 'start', person, deviceId: DEVICE }, at(2));
    expect(fresh.journey.state.phase).toBe('checking_card');
    expect(fresh.journey.runId).not.toBe(paused.runId);
  });

  it('an answer check in flight or a code already accepted is not paused', () => {
    let j = answering();
    if (j.state.phase !== 'answering') throw new Error('phase');
    j = step(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId: 'c1' }).journey;
    expect(j.state.phase).toBe('checking_answers');
    expect(step(j, { type: 'pause', caseRef: CASE }).changed).toBe(false);
    const accepted = step(codeSent(), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, at(1)).journey;
    expect(accepted.state.phase).toBe('unblocking');
    expect(step(accepted, { type: 'pause', caseRef: CASE }, at(2)).changed).toBe(false);
  });

  it('a paused run and an assist survive the stored record', () => {
    const paused = step(codeSent(), { type: 'pause', caseRef: CASE }, at(2)).journey;
    const withAssist = { ...paused, assist: { caseRef: CASE, actor: RA, at: at(3).toISOString() } };
    const stored = encodeUnlock(withAssist);
    const back = decodeUnlock({ personId: 'p1', runId: paused.runId, state: JSON.parse(JSON.stringify(stored.state)), counters: stored.counters, updatedAt: T0.toISOString() });
    expect(back.state).toEqual(paused.state);
    expect(back.assist).toEqual(withAssist.assist);
    // A paused state whose kept run is malformed is refused naming the field.
    const broken = { ...stored.state, from: { phase: 'answering', step: 1 } };
    expect(() => decodeUnlock({ personId: 'p1', runId: 'r', state: broken, counters: {}, updatedAt: T0.toISOString() })).toThrow(/state\.from/);
  });
});
