import { createHash, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../journey.effects';
import {
  DEFAULT_UNLOCK_RULES,
  newUnlockJourney,
  stepUnlock,
  type PersonFacts,
  type StepContext,
  type StepResult,
  type UnlockEvent,
  type UnlockJourney,
} from './unlock.journey';

const CARD = 'a'.repeat(32);
const OTHER_CARD = 'b'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
/** The link session the companion's requests came on (issue #10). */
const LINK = '22222222-2222-4222-8222-222222222222';
const T0 = new Date('2026-11-30T09:00:00.000Z');

const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };

const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');

function ctx(now: Date, code = '12345678', caseRef = 'RA-ABC123'): StepContext {
  let n = 0;
  return {
    now,
    rules: DEFAULT_UNLOCK_RULES,
    newId: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    shuffle: (items) => [...items].reverse(),
    freshCode: { hash: hashOf(code), sealed: (runId) => `sealed:${runId}` },
    freshCaseRef: caseRef,
    hashesEqual: (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b)),
  };
}

/** Run events in order; returns the final journey and all effects. */
function drive(events: Array<[UnlockEvent, Date?]>, start: UnlockJourney = newUnlockJourney('p1', 'run-0')) {
  let j = start;
  const effects: Effect[] = [];
  let last;
  for (const [e, at] of events) {
    last = stepUnlock(j, e, ctx(at ?? T0));
    j = last.journey;
    effects.push(...last.effects);
  }
  return { journey: j, effects, last: last! };
}

const started = (): UnlockEvent => ({ type: 'start', person, deviceId: DEVICE });
const blockedCard = (cardId = CARD, pinRetries = 0): UnlockEvent => ({
  type: 'card_status',
  person,
  result: { ok: true, status: { present: true, reader: 'Virtual PCD 00 00', cardId, pinRetries }, pukEnrolled: true },
});

function toAnswering() {
  return drive([[started()], [blockedCard()]]);
}

let claims = 0;
/** A current click on the questions card: the claim, then the check's result. */
function check(j: UnlockJourney, results: boolean[], c: StepContext = ctx(T0)): StepResult {
  const claimId = `claim-${++claims}`;
  const claim = stepUnlock(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step, claimId }, c);
  if (claim.journey.state.phase !== 'checking_answers') return claim;
  const r = stepUnlock(claim.journey, { type: 'answers_checked', runId: j.runId, claimId, results }, c);
  return { ...r, effects: [...claim.effects, ...r.effects] };
}

function toCodeSent(mailedAt: Date = T0) {
  const a = toAnswering();
  const last = check(a.journey, [true, true, true]);
  const passed = { journey: last.journey, last, effects: last.effects };
  const mailed = stepUnlock(passed.journey, { type: 'code_mailed', runId: passed.journey.runId, codeHash: hashOf('12345678'), at: mailedAt.toISOString() }, ctx(mailedAt));
  return { journey: mailed.journey, last: passed.last, effects: passed.effects };
}

describe('unlock journey', () => {
  it('starts by checking the card, then asks 3 of the 4 questions when the bound card is blocked', () => {
    const { journey } = toAnswering();
    expect(journey.state.phase).toBe('answering');
    if (journey.state.phase !== 'answering') throw new Error('phase');
    expect(journey.state.questionIds).toHaveLength(3);
    expect(new Set(journey.state.questionIds).size).toBe(3);
    for (const q of journey.state.questionIds) expect(person.questionIds).toContain(q);
  });

  it.each([
    ['a different card', blockedCard(OTHER_CARD), 'wrong_card'],
    ['a card that is not blocked', blockedCard(CARD, 2), 'not_blocked'],
    ['no card', { type: 'card_status', person, result: { ok: true, status: { present: false, reader: null }, pukEnrolled: false } } as UnlockEvent, 'no_card'],
    ['an offline companion', { type: 'card_status', person, result: { ok: false, problem: 'companion_offline' } } as UnlockEvent, 'companion_offline'],
  ])('stops plainly for %s', (_name, event, problem) => {
    const { journey } = drive([[started()], [event]]);
    expect(journey.state).toMatchObject({ phase: 'card_problem', problem });
  });

  it('says how to pair when no companion is paired', () => {
    const { journey } = drive([[{ type: 'start', person, deviceId: null }]]);
    expect(journey.state).toMatchObject({ phase: 'card_problem', problem: 'no_companion' });
  });

  it('on a pass issues one code, mails it sealed and prompts the companion', () => {
    const { journey, last } = toCodeSent();
    expect(journey.state.phase).toBe('code_sent');
    const mails = last.effects.filter((e) => e.type === 'mail.unlock_code');
    expect(mails).toHaveLength(1);
    expect(JSON.stringify(last.effects)).not.toContain('12345678');
    expect(last.effects.some((e) => e.type === 'companion.command' && e.command.kind === 'unlock.prompt')).toBe(true);
    if (journey.state.phase !== 'code_sent') throw new Error('phase');
    expect(Date.parse(journey.state.code.expiresAt) - T0.getTime()).toBe(15 * 60_000);
  });

  it('a fail uses one attempt and asks again; the third fail locks self-service and opens an RA case', () => {
    let { journey } = toAnswering();
    const first = check(journey, [true, false, true], ctx(T0));
    expect(first.journey.state).toMatchObject({ phase: 'answering', lastResult: 'wrong' });
    expect(first.journey.counters.answerAttempts).toBe(1);
    journey = first.journey;
    const second = check(journey, [false, false, false], ctx(T0));
    expect(second.journey.counters.answerAttempts).toBe(2);
    const third = check(second.journey, [true, true, false], ctx(T0, '12345678', 'RA-XYZ789'));
    expect(third.journey.state).toEqual({ phase: 'locked_out', step: expect.any(Number), caseRef: 'RA-XYZ789' });
    expect(third.effects.find((e) => e.type === 'case.open')).toMatchObject({ ref: 'RA-XYZ789', reason: 'answers_failed' });
    expect(third.effects.some((e) => e.type === 'person.lock_self_service')).toBe(true);
    expect(third.effects.some((e) => e.type === 'mail.unlock_code')).toBe(false);
  });

  it('failures carry over to a new run, so restarting does not reset the count', () => {
    let { journey } = toAnswering();
    journey = check(journey, [false, true, true], ctx(T0)).journey;
    journey = check(journey, [false, true, true], ctx(T0)).journey;
    const again = drive([[started()], [blockedCard()]], journey).journey;
    const third = check(again, [false, false, false], ctx(T0));
    expect(third.journey.state.phase).toBe('locked_out');
  });

  it('a stale or repeated click changes nothing and sends nothing', () => {
    const { journey } = toAnswering();
    const staleStep = journey.state.step;
    const pass = check(journey, [true, true, true]);
    const repeat = stepUnlock(pass.journey, { type: 'answers_submitted', person, runId: journey.runId, step: staleStep, claimId: 'late' }, ctx(T0));
    expect(repeat.changed).toBe(false);
    expect(repeat.effects).toEqual([]);
    expect(repeat.journey).toBe(pass.journey);
    const lateResult = stepUnlock(pass.journey, { type: 'answers_checked', runId: journey.runId, claimId: 'late', results: [false, false, false] }, ctx(T0));
    expect(lateResult.changed).toBe(false);
    expect(lateResult.journey.counters.answerAttempts).toBe(1);
  });

  it('accepts the right code once and then refuses it as used', () => {
    const { journey } = toCodeSent();
    const ok = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(new Date(T0.getTime() + 60_000)));
    expect(ok.verdict).toEqual({ kind: 'authorised' });
    expect(ok.journey.state.phase).toBe('unblocking');
    const again = stepUnlock(ok.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(new Date(T0.getTime() + 61_000)));
    expect(again.verdict).toEqual({ kind: 'refused', reason: 'used' });
  });

  it('refuses a code at 15:00 after issue as expired and ends the run', () => {
    const { journey } = toCodeSent();
    const justBefore = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('00000000'), linkSession: LINK }, ctx(new Date(T0.getTime() + 14 * 60_000 + 59_000)));
    expect(justBefore.verdict).toMatchObject({ kind: 'refused', reason: 'wrong_code' });
    const late = stepUnlock(justBefore.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(new Date(T0.getTime() + 15 * 60_000)));
    expect(late.verdict).toEqual({ kind: 'refused', reason: 'expired' });
    expect(late.journey.state).toMatchObject({ phase: 'ended', reason: 'expired' });
  });

  it('allows 5 wrong codes, and refuses the 6th try even when it is right', () => {
    let { journey } = toCodeSent();
    const tries: Array<number | undefined> = [];
    for (let i = 0; i < 5; i++) {
      const r = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf(`9999999${i}`), linkSession: LINK }, ctx(T0));
      tries.push(r.verdict?.kind === 'refused' ? r.verdict.triesLeft : undefined);
      journey = r.journey;
    }
    expect(tries).toEqual([4, 3, 2, 1, 0]);
    const sixth = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0));
    expect(sixth.verdict).toMatchObject({ kind: 'refused', reason: 'too_many_tries' });
    expect(sixth.journey.state.phase).toBe('code_sent');
  });

  it('refuses the code from another card and never authorises it', () => {
    const { journey } = toCodeSent();
    const r = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: OTHER_CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0));
    expect(r.verdict).toEqual({ kind: 'refused', reason: 'wrong_card' });
  });

  it('a code cannot be used before the mail service accepted it, and its 15 minutes start then', () => {
    const a = toAnswering();
    const passed = check(a.journey, [true, true, true], ctx(T0));
    const early = stepUnlock(passed.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0));
    expect(early.verdict).toEqual({ kind: 'refused', reason: 'not_waiting' });
    const mailedAt = new Date(T0.getTime() + 40_000);
    const mailed = stepUnlock(passed.journey, { type: 'code_mailed', runId: passed.journey.runId, codeHash: hashOf('12345678'), at: mailedAt.toISOString() }, ctx(mailedAt));
    if (mailed.journey.state.phase !== 'code_sent') throw new Error('phase');
    expect(Date.parse(mailed.journey.state.code.expiresAt) - mailedAt.getTime()).toBe(15 * 60_000);
  });

  it('when the code email finally fails, the run ends, the person is told and the code is not usable', () => {
    const a = toAnswering();
    const passed = check(a.journey, [true, true, true], ctx(T0));
    const failed = stepUnlock(passed.journey, { type: 'code_mail_failed', runId: passed.journey.runId, codeHash: hashOf('12345678') }, ctx(T0));
    expect(failed.journey.state).toMatchObject({ phase: 'ended', reason: 'failed' });
    expect(failed.effects.find((e) => e.type === 'teams.refresh')).toMatchObject({ message: expect.stringContaining('could not be sent') });
    const late = stepUnlock(failed.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0));
    expect(late.verdict?.kind).toBe('refused');
  });

  it('a pulled card keeps the run open for resume; the unblocked result finishes, mails a notice and resets failures', () => {
    let { journey } = toAnswering();
    journey = check(journey, [false, true, true], ctx(T0)).journey;
    journey = check(journey, [true, true, true], ctx(T0)).journey;
    journey = stepUnlock(journey, { type: 'code_mailed', runId: journey.runId, codeHash: hashOf('12345678'), at: T0.toISOString() }, ctx(T0)).journey;
    journey = stepUnlock(journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0)).journey;
    const pulled = stepUnlock(journey, { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'card_removed', pukOnCard: 'unknown', workstation: 'WS1' }, ctx(T0));
    expect(pulled.journey.state).toMatchObject({ phase: 'unblocking', interrupted: true });
    const resumed = stepUnlock(pulled.journey, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx(T0));
    expect(resumed.verdict).toEqual({ kind: 'authorised' });
    const done = stepUnlock(resumed.journey, { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: 'WS1' }, ctx(T0));
    expect(done.journey.state.phase).toBe('done');
    expect(done.journey.counters.answerAttempts).toBe(0);
    expect(done.effects.map((e) => e.type)).toEqual(expect.arrayContaining(['mail.unlock_notice', 'teams.refresh', 'audit']));
  });

  it('a lock stored only on the person (older versions, RA) goes straight to locked out and moves into the record', () => {
    const storedLock = { at: T0.toISOString(), caseRef: 'RA-LOCK01', reason: 'locked_by_ra' as const };
    const { journey, effects } = drive([[{ type: 'start', person: { ...person, storedLock }, deviceId: DEVICE }]]);
    expect(journey.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-LOCK01' });
    expect(journey.lock).toEqual(storedLock);
    expect(effects.some((e) => e.type === 'case.open')).toBe(false);
  });

  it('cancel ends an active run and tells the companion', () => {
    const { journey } = toCodeSent();
    const r = stepUnlock(journey, { type: 'cancel', step: journey.state.step }, ctx(T0));
    expect(r.journey.state).toMatchObject({ phase: 'ended', reason: 'cancelled' });
    expect(r.effects.some((e) => e.type === 'companion.command' && e.command.kind === 'unlock.closed')).toBe(true);
  });
});

describe('unlock journey: one decision per step (issue #9)', () => {
  const claim = (j: UnlockJourney, claimId: string, p: PersonFacts = person): UnlockEvent => ({ type: 'answers_submitted', person: p, runId: j.runId, step: j.state.step, claimId });
  const locked = (): UnlockJourney => {
    let { journey } = toAnswering();
    for (let i = 0; i < 3; i++) journey = check(journey, [false, true, true], ctx(T0, '12345678', 'RA-LOCKED')).journey;
    return journey;
  };

  it('a locked record starts no run, evaluates nothing and opens no second case', () => {
    const j = locked();
    expect(j.lock).toMatchObject({ caseRef: 'RA-LOCKED', reason: 'answers_failed' });
    const again = drive([[started()], [blockedCard()]], j);
    expect(again.journey.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-LOCKED' });
    expect(again.effects.some((e) => e.type === 'case.open')).toBe(false);
    expect(again.journey.counters.answerAttempts).toBe(3);
  });

  it('a start built from a person copy read before the lock still sees the lock (it is in the record)', () => {
    // The person copy says "not locked" (the mirror was not written yet): the record decides.
    const j = locked();
    const r = stepUnlock(j, { type: 'start', person: { ...person, storedLock: null }, deviceId: DEVICE }, ctx(T0));
    expect(r.journey.state.phase).toBe('locked_out');
    expect(r.changed).toBe(false);
  });

  it('a click on a questions card issued before the lock is not evaluated and sends no code', () => {
    const { journey: a } = toAnswering();
    const twoFails = check(check(a, [false, true, true]).journey, [false, true, true]).journey;
    // A second questions card from a new run (typed "unlock" racing the third answer)...
    const second = drive([[started()], [blockedCard()]], twoFails).journey;
    // ...the third answer on the first card is stale; on the second card it is the last attempt.
    const third = check(second, [false, false, true], ctx(T0, '12345678', 'RA-ONE'));
    expect(third.journey.state.phase).toBe('locked_out');
    const fourth = stepUnlock(third.journey, claim(second, 'c4'), ctx(T0));
    expect(fourth.changed).toBe(false);
    expect(fourth.journey.counters.answerAttempts).toBe(3);
    expect(third.effects.filter((e) => e.type === 'case.open')).toHaveLength(1);
  });

  it('only one claim per step wins; the loser and a stale result change nothing', () => {
    const { journey } = toAnswering();
    const won = stepUnlock(journey, claim(journey, 'c1'), ctx(T0));
    expect(won.journey.state).toMatchObject({ phase: 'checking_answers', claimId: 'c1' });
    expect(won.journey.counters.answerAttempts).toBe(1);
    const lost = stepUnlock(won.journey, claim(journey, 'c2'), ctx(T0));
    expect(lost.changed).toBe(false);
    const wrongClaim = stepUnlock(won.journey, { type: 'answers_checked', runId: journey.runId, claimId: 'c2', results: [true, true, true] }, ctx(T0));
    expect(wrongClaim.changed).toBe(false);
    expect(wrongClaim.effects).toEqual([]);
  });

  it('the attempt is counted by the claim, before any check, so a crash cannot give it back', () => {
    const { journey } = toAnswering();
    const claimed = stepUnlock(journey, claim(journey, 'c1'), ctx(T0)).journey;
    // No result within 30 s: back to the questions, the attempt still counted.
    const later = new Date(T0.getTime() + 30_000);
    const back = stepUnlock(claimed, { type: 'cancel', step: -1 }, ctx(later));
    expect(back.journey.state).toMatchObject({ phase: 'answering', lastResult: null });
    expect(back.journey.counters.answerAttempts).toBe(1);
    expect(back.effects.find((e) => e.type === 'audit')).toMatchObject({ action: 'unlock.answer_check_abandoned' });
    // Before 30 s the claim stands.
    const early = stepUnlock(claimed, { type: 'cancel', step: -1 }, ctx(new Date(T0.getTime() + 29_999)));
    expect(early.journey.state.phase).toBe('checking_answers');
  });

  it('an abandoned claim that used the last attempt locks self-service with one case', () => {
    let { journey } = toAnswering();
    journey = check(check(journey, [false, true, true]).journey, [false, true, true]).journey;
    const claimed = stepUnlock(journey, claim(journey, 'c3'), ctx(T0)).journey;
    const r = stepUnlock(claimed, { type: 'answers_checked', runId: journey.runId, claimId: 'c3', results: [true, true, true] }, ctx(new Date(T0.getTime() + 31_000), '1', 'RA-LATE'));
    expect(r.journey.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-LATE' });
    expect(r.effects.filter((e) => e.type === 'case.open')).toHaveLength(1);
    expect(r.effects.some((e) => e.type === 'mail.unlock_code')).toBe(false);
  });

  it('every evaluated submission counts: after 3 passes with no unlock, the next run locks instead of asking', () => {
    let j = toAnswering().journey;
    for (let i = 0; i < 3; i++) {
      j = check(j, [true, true, true]).journey;
      j = drive([[started()], ...(i < 2 ? [[blockedCard()] as [UnlockEvent]] : [])], j).journey;
    }
    expect(j.counters.answerAttempts).toBe(3);
    const r = stepUnlock(j, blockedCard(), ctx(T0, '1', 'RA-USED'));
    expect(r.journey.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-USED' });
    expect(r.effects.filter((e) => e.type === 'case.open')).toHaveLength(1);
  });

  it('once locked, a code is refused and no PUK is authorised', () => {
    const { journey } = toCodeSent();
    const lockedJourney: UnlockJourney = { ...journey, lock: { at: T0.toISOString(), caseRef: 'RA-RA0001', reason: 'locked_by_ra' } };
    const r = stepUnlock(lockedJourney, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: LINK }, ctx(T0));
    expect(r.verdict).toEqual({ kind: 'refused', reason: 'not_waiting' });
    const resume = stepUnlock({ ...lockedJourney, state: { phase: 'unblocking', step: 9, deviceId: DEVICE, cardId: CARD, authorisedAt: T0.toISOString(), interrupted: true, linkSession: LINK, codeHash: null, codeWrongTries: 0 } }, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx(T0));
    expect(resume.verdict).toEqual({ kind: 'refused', reason: 'not_waiting' });
  });

  it('reset clears the lock and the count, is audited with its actor, clears the mirror, and a stale person copy cannot re-lock', () => {
    const j = locked();
    const at = new Date(T0.getTime() + 3600_000);
    const r = stepUnlock(j, { type: 'reset', actor: 'admin', note: null }, ctx(at));
    expect(r.journey.lock).toBeNull();
    expect(r.journey.counters.answerAttempts).toBe(0);
    expect(r.journey.state.phase).toBe('idle');
    expect(r.effects.find((e) => e.type === 'audit')).toMatchObject({ actor: 'admin', action: 'unlock.self_service_reset', details: { caseRef: 'RA-LOCKED', attemptsBefore: 3 } });
    expect(r.effects.some((e) => e.type === 'person.clear_self_service_lock')).toBe(true);
    // The mirror (written at lock time) may still be on the person copy: it is older than the reset.
    const stale = { ...person, storedLock: { at: T0.toISOString(), caseRef: 'RA-LOCKED', reason: 'answers_failed' as const } };
    const restarted = drive([[{ type: 'start', person: stale, deviceId: DEVICE }], [blockedCard()]], r.journey).journey;
    expect(restarted.state.phase).toBe('answering');
    // A lock set on the person after the reset (older versions, RA) counts again.
    const newer = { ...person, storedLock: { at: new Date(at.getTime() + 1000).toISOString(), caseRef: 'RA-NEWER', reason: 'locked_by_ra' as const } };
    expect(stepUnlock(r.journey, { type: 'start', person: newer, deviceId: DEVICE }, ctx(at)).journey.state).toMatchObject({ phase: 'locked_out', caseRef: 'RA-NEWER' });
  });
});
