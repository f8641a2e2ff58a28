/**
 * Pure-step regressions for the adversarial findings against issue #9 (the
 * three-attempt rule with a reset or a typed start racing an answer check).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../journey.effects';
import { claimAliveFor } from './unlock.definition';
import { DEFAULT_UNLOCK_RULES, newUnlockJourney, stepUnlock, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney } from './unlock.journey';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const T0 = new Date('2026-11-30T09:00:00.000Z');
const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };

function ctx(now: Date = T0, caseRef = 'RA-ABC123', boot: Partial<StepContext> = {}): StepContext {
  let n = 0;
  return {
    ...boot,
    now,
    rules: DEFAULT_UNLOCK_RULES,
    newId: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    shuffle: (items) => [...items].reverse(),
    freshCode: { hash: createHash('sha256').update('12345678').digest('hex'), sealed: (runId) => `sealed:${runId}` },
    freshCaseRef: caseRef,
    hashesEqual: (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b)),
  };
}

/** Steps events in order, collecting every effect. */
class Run {
  effects: Effect[] = [];
  constructor(public journey: UnlockJourney) {}
  step(event: UnlockEvent, at: Date = T0): this {
    const r = stepUnlock(this.journey, event, ctx(at));
    this.journey = r.journey;
    this.effects.push(...r.effects);
    return this;
  }
  claim(claimId: string): this {
    return this.step({ type: 'answers_submitted', person, runId: this.journey.runId, step: this.journey.state.step, claimId });
  }
  checked(claimId: string, results: boolean[], runId = this.journey.runId): this {
    return this.step({ type: 'answers_checked', runId, claimId, results });
  }
  /** Audit actions, in order. */
  actions(): string[] {
    return this.effects.flatMap((e) => (e.type === 'audit' ? [e.action] : []));
  }
  evaluatedAttempts(): unknown[] {
    return this.effects.flatMap((e) => (e.type === 'audit' && (e.action === 'unlock.answers_failed' || e.action === 'unlock.answers_passed') ? [e.details['attempt']] : []));
  }
}

function answering(): Run {
  return new Run(newUnlockJourney('p1', 'run-0'))
    .step({ type: 'start', person, deviceId: DEVICE })
    .step({ type: 'card_status', person, result: { ok: true, status: { present: true, reader: 'R', cardId: CARD, pinRetries: 0 }, pukEnrolled: true } });
}

describe('unlock journey: races with an answer check in flight', () => {
  it('F-A: a reset during an answer check counts the in-flight claim as the first attempt of the new period (at most 3 evaluations after the reset)', () => {
    const run = answering().claim('c1').checked('c1', [false, true, true]).claim('c2').checked('c2', [false, true, true]).claim('c3');
    expect(run.journey.state.phase).toBe('checking_answers');
    run.step({ type: 'reset', actor: 'admin', note: null });
    const resetAt = run.effects.length;
    expect(run.journey.counters.answerAttempts).toBe(1);
    expect(run.effects.find((e) => e.type === 'audit' && e.action === 'unlock.self_service_reset')).toMatchObject({ details: { attemptsBefore: 3, inFlightCheck: true } });
    // The in-flight check lands, then the person keeps answering wrong.
    run.checked('c3', [false, false, true]);
    for (const id of ['c4', 'c5', 'c6']) if (run.journey.state.phase === 'answering') run.claim(id).checked(id, [false, true, true]);
    const after = new Run(run.journey);
    after.effects = run.effects.slice(resetAt);
    expect(after.evaluatedAttempts()).toEqual([1, 2, 3]);
    expect(run.journey.state.phase).toBe('locked_out');
    expect(after.effects.filter((e) => e.type === 'case.open')).toHaveLength(1);
  });

  it('F-A: a reset with no check in flight still clears the count to 0', () => {
    const run = answering().claim('c1').checked('c1', [false, true, true]).step({ type: 'reset', actor: 'admin', note: null });
    expect(run.journey.counters.answerAttempts).toBe(0);
  });

  it('F-B: a start while the answers are being checked keeps the run; the check result applies and counts once', () => {
    const run = answering().claim('c1').checked('c1', [false, true, true]).claim('c2').checked('c2', [false, true, true]).claim('c3');
    const runId = run.journey.runId;
    const r = stepUnlock(run.journey, { type: 'start', person, deviceId: DEVICE }, ctx());
    expect(r.changed).toBe(false);
    expect(r.effects).toEqual([]);
    expect(r.journey.runId).toBe(runId);
    // The third (right) answers' result still applies: a code is mailed, no lock.
    run.checked('c3', [true, true, true], runId);
    expect(run.journey.state.phase).toBe('code_sent');
    expect(run.actions()).toEqual(['unlock.started', 'unlock.answers_failed', 'unlock.answers_failed', 'unlock.answers_passed']);
  });

  it('F-B: a start after the claim timed out abandons the claim first (attempt kept) and then starts afresh', () => {
    const run = answering().claim('c1');
    const later = new Date(T0.getTime() + DEFAULT_UNLOCK_RULES.answerCheckTimeoutMs);
    run.step({ type: 'start', person, deviceId: DEVICE }, later);
    expect(run.journey.state.phase).toBe('checking_card');
    expect(run.journey.counters.answerAttempts).toBe(1);
    expect(run.actions()).toEqual(['unlock.started', 'unlock.answer_check_abandoned', 'unlock.started']);
  });
});

describe('unlock journey: an answer check whose process is gone (F-G)', () => {
  const bootA = 'bot-101-abc';
  const bootB = 'bot-202-abd';
  const inBoot = (id: string, sharedStore = false): Partial<StepContext> => ({ bootId: id, claimAlive: claimAliveFor(id, sharedStore) });

  function claimedInBootA(): UnlockJourney {
    const run = answering();
    const r = stepUnlock(run.journey, { type: 'answers_submitted', person, runId: run.journey.runId, step: run.journey.state.step, claimId: 'c1' }, ctx(T0, 'RA-X', inBoot(bootA)));
    expect(r.journey.state).toMatchObject({ phase: 'checking_answers', claimedBy: bootA });
    return r.journey;
  }

  it('the next step in a later boot abandons it at once (audited, attempt kept), well before the claim timeout', () => {
    const j = claimedInBootA();
    const r = stepUnlock(j, { type: 'refresh' }, ctx(new Date(T0.getTime() + 1000), 'RA-X', inBoot(bootB)));
    expect(r.changed).toBe(true);
    expect(r.journey.state).toMatchObject({ phase: 'answering', lastResult: null });
    expect(r.journey.counters.answerAttempts).toBe(1);
    expect(r.effects.find((e) => e.type === 'audit')).toMatchObject({ action: 'unlock.answer_check_abandoned', details: { attempt: 1, reason: 'claimer_gone' } });
  });

  it('the boot that claimed it, or a live instance sharing the store, keeps it until the result or the timeout', () => {
    const j = claimedInBootA();
    const soon = new Date(T0.getTime() + 1000);
    expect(stepUnlock(j, { type: 'refresh' }, ctx(soon, 'RA-X', inBoot(bootA))).changed).toBe(false);
    // Shared store (MongoDB): another instance name may still be checking.
    expect(stepUnlock(j, { type: 'refresh' }, ctx(soon, 'RA-X', inBoot('bot-other-zz1', true))).changed).toBe(false);
    // ...but a restart of the same instance name means the claimer is gone.
    expect(stepUnlock(j, { type: 'refresh' }, ctx(soon, 'RA-X', inBoot('bot-101-zzz', true))).journey.state.phase).toBe('answering');
    // Without boot facts (the admin CLI, older records) only the timeout ends it.
    expect(stepUnlock(j, { type: 'refresh' }, ctx(soon)).changed).toBe(false);
    expect(stepUnlock(j, { type: 'refresh' }, ctx(new Date(T0.getTime() + DEFAULT_UNLOCK_RULES.answerCheckTimeoutMs))).journey.state.phase).toBe('answering');
  });

  it('a stale click after the restart gets the questions back and is not evaluated', () => {
    const j = claimedInBootA();
    const r = stepUnlock(j, { type: 'answers_submitted', person, runId: j.runId, step: j.state.step - 1, claimId: 'late' }, ctx(T0, 'RA-X', inBoot(bootB)));
    expect(r.journey.state.phase).toBe('answering');
    expect(r.journey.counters.answerAttempts).toBe(1);
  });
});
