/**
 * Where an unlock code may go and how long an RA-assisted unlock lasts (breaker s4 holes, issues #12 and #14):
 * - under code-only, contacts come from the person's CURRENT directory profile (stored ones only with no directory);
 * - an RA-assisted code under code-only goes by the code-only channel choice (never an unapproved email);
 * - an assist is bound to the run it started and ends with it;
 * - an assisted resume reads the card again (certificates) before re-using its code.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import type { Person } from '../../../storage/storage.port';
import type { DirectoryContact } from '../../directory/directory.port';
import type { Effect } from '../journey.effects';
import { assistInForce, DEFAULT_UNLOCK_RULES, newUnlockJourney, stepUnlock, type CodeOnlyFacts, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney, type UnlockRules } from './unlock.journey';
import { UnlockService, type UnlockServiceDeps } from './unlock.service';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const T0 = new Date('2026-12-01T09:00:00.000Z');
const CASE = 'RA-7K2Q9D';
const RA = 'ra:0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const AAD = '5a1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const CODE_ONLY: UnlockRules = { ...DEFAULT_UNLOCK_RULES, policy: 'code-only' };
const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };
const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');
const at = (m: number): Date => new Date(T0.getTime() + m * 60_000);

let ids = 0;
function ctx(now: Date, rules: UnlockRules = DEFAULT_UNLOCK_RULES, code = '12345678'): StepContext {
  return { now, rules, newId: () => `id-${++ids}`, shuffle: (items) => [...items], freshCode: { hash: hashOf(code), sealed: (runId) => `sealed:${runId}` }, freshCaseRef: 'RA-CERT01', hashesEqual: (a, b) => a === b };
}
const blocked = (p: PersonFacts = person, certificates?: Array<{ slot: '9A' | '9E'; notAfter: string }>): UnlockEvent => ({
  type: 'card_status',
  person: p,
  result: { ok: true, status: { present: true, reader: 'r', cardId: CARD, pinRetries: 0, ...(certificates ? { certificates } : {}) }, pukEnrolled: true, binding: 'bound' },
});
const assisted = (p: PersonFacts = person, caseRef = CASE): UnlockEvent => ({ type: 'assisted_start', person: p, deviceId: DEVICE, caseRef, actor: RA });
const sends = (effects: Effect[]): string[] => effects.flatMap((e) => (e.type === 'mail.unlock_code' ? ['email'] : e.type === 'sms.unlock_code' ? [`sms:${e.to}`] : []));

function codeSentAssisted(rules: UnlockRules = DEFAULT_UNLOCK_RULES, p: PersonFacts = person): UnlockJourney {
  let j = stepUnlock(newUnlockJourney('p1', 'run-0'), assisted(p), ctx(T0, rules)).journey;
  j = stepUnlock(j, blocked(p), ctx(T0, rules)).journey;
  if (j.state.phase !== 'code_sent') throw new Error(`phase ${j.state.phase}`);
  return stepUnlock(j, { type: 'code_mailed', runId: j.runId, codeHash: j.state.code.hash, at: T0.toISOString() }, ctx(T0, rules)).journey;
}

describe('an RA-assisted code under code-only goes by the code-only channel choice (issue #14)', () => {
  const enrolled = (e: Partial<CodeOnlyFacts>): PersonFacts => ({ ...person, registered: false, questionIds: [], enrolment: { personStored: true, teamsUserId: AAD, displayName: 'Alex', profileEmail: 'alex@gmail.example', email: null, mobile: null, ...e } });

  it('no approved email, a UK mobile: by SMS to that mobile, no email', () => {
    const p = enrolled({ mobile: '+447700900123' });
    const j = stepUnlock(newUnlockJourney('p1', 'run-0'), assisted(p), ctx(T0, CODE_ONLY)).journey;
    const card = stepUnlock(j, blocked(p), ctx(T0, CODE_ONLY));
    expect(card.journey.state).toMatchObject({ phase: 'code_sent', code: { channel: 'sms', to: '+447700900123' } });
    expect(sends(card.effects)).toEqual(['sms:+447700900123']);
    expect(card.effects.find((e) => e.type === 'audit' && e.action === 'unlock.questions_skipped')).toMatchObject({ actor: RA, details: { reason: 'ra_assisted', caseRef: CASE } });
  });

  it('an approved email and a UK mobile: the person chooses', () => {
    const p = enrolled({ email: 'alex@nhs.net', mobile: '+447700900123' });
    const j = stepUnlock(newUnlockJourney('p1', 'run-0'), assisted(p), ctx(T0, CODE_ONLY)).journey;
    const card = stepUnlock(j, blocked(p), ctx(T0, CODE_ONLY));
    expect(card.journey.state).toMatchObject({ phase: 'choosing_channel', email: 'alex@nhs.net', mobile: '+447700900123' });
    expect(sends(card.effects)).toEqual([]);
  });

  it('neither: no_contact, and nothing is sent', () => {
    const p = enrolled({});
    const j = stepUnlock(newUnlockJourney('p1', 'run-0'), assisted(p), ctx(T0, CODE_ONLY)).journey;
    const card = stepUnlock(j, blocked(p), ctx(T0, CODE_ONLY));
    expect(card.journey.state).toMatchObject({ phase: 'card_problem', problem: 'no_contact' });
    expect(sends(card.effects)).toEqual([]);
  });
});

describe('an RA-assisted unlock is bound to the run it started (issue #12)', () => {
  it('cancelled, then "unlock": the questions are asked again, no code', () => {
    const j = codeSentAssisted();
    if (j.state.phase !== 'code_sent') throw new Error('phase');
    const cancelled = stepUnlock(j, { type: 'cancel', step: j.state.step }, ctx(at(1))).journey;
    expect(assistInForce(cancelled, at(1))).toBeNull();
    let again = stepUnlock(cancelled, { type: 'start', person, deviceId: DEVICE }, ctx(at(5))).journey;
    expect(again.assist).toBeNull();
    const card = stepUnlock(again, blocked(), ctx(at(5)));
    again = card.journey;
    expect(again.state.phase).toBe('answering');
    expect(sends(card.effects)).toEqual([]);
  });

  it('its code expired, then "unlock": the questions again', () => {
    const j = codeSentAssisted();
    const fresh = stepUnlock(stepUnlock(j, { type: 'start', person, deviceId: DEVICE }, ctx(at(20))).journey, blocked(), ctx(at(20)));
    expect(fresh.journey.state.phase).toBe('answering');
  });

  it('a card problem retried ("try again" starts a new run) carries the assist on', () => {
    let j = stepUnlock(newUnlockJourney('p1', 'run-0'), assisted(), ctx(T0)).journey;
    j = stepUnlock(j, { type: 'card_status', person, result: { ok: true, status: { present: false, reader: 'r' }, pukEnrolled: false } }, ctx(T0)).journey;
    expect(j.state).toMatchObject({ phase: 'card_problem', problem: 'no_card' });
    const retry = stepUnlock(j, { type: 'start', person, deviceId: DEVICE }, ctx(at(2))).journey;
    expect(retry.runId).not.toBe(j.runId);
    expect(retry.assist).toMatchObject({ caseRef: CASE, runId: retry.runId });
    expect(stepUnlock(retry, blocked(), ctx(at(2))).journey.state.phase).toBe('code_sent');
  });

  it('an assist stored before the binding (no runId) still counts within its window, and ends at the next start after its run ended', () => {
    const legacy: UnlockJourney = { ...newUnlockJourney('p1', 'run-0'), state: { phase: 'checking_card', step: 1, deviceId: DEVICE }, assist: { caseRef: CASE, actor: RA, at: T0.toISOString() } };
    expect(stepUnlock(legacy, blocked(), ctx(at(1))).journey.state.phase).toBe('code_sent');
    const ended: UnlockJourney = { ...legacy, state: { phase: 'ended', step: 2, reason: 'cancelled', detail: 'x' } };
    const next = stepUnlock(stepUnlock(ended, { type: 'start', person, deviceId: DEVICE }, ctx(at(2))).journey, blocked(), ctx(at(2)));
    expect(next.journey.state.phase).toBe('answering');
  });
});

describe('RA closing the case ends its assisted unlock (event assist_revoked, issue #12)', () => {
  const revoke = (outcome: string, caseRef = CASE): UnlockEvent => ({ type: 'assist_revoked', caseRef, outcome });

  it('closed no_action with the code out: the run ends, the code is refused, the form closes; "unlock" asks the questions', () => {
    const j = codeSentAssisted();
    const r = stepUnlock(j, revoke('no_action'), ctx(at(2)));
    expect(r.journey.assist).toBeNull();
    expect(r.journey.state).toMatchObject({ phase: 'ended', reason: 'cancelled' });
    expect(r.effects.find((e) => e.type === 'companion.command')).toMatchObject({ command: { kind: 'unlock.closed', outcome: 'cancelled' } });
    expect(r.effects.find((e) => e.type === 'audit')).toMatchObject({ action: 'unlock.assist_ended', details: { caseRef: CASE, outcome: 'no_action' } });
    expect(stepUnlock(r.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: 'l' }, ctx(at(3))).verdict).toMatchObject({ kind: 'refused' });
    const again = stepUnlock(stepUnlock(r.journey, { type: 'start', person, deviceId: DEVICE }, ctx(at(4))).journey, blocked(), ctx(at(4)));
    expect(again.journey.state.phase).toBe('answering');
  });

  it('closed as an assisted unlock or unlocked in person, or another case closed: nothing changes', () => {
    const j = codeSentAssisted();
    expect(stepUnlock(j, revoke('assisted_unlock'), ctx(at(2))).changed).toBe(false);
    expect(stepUnlock(j, revoke('unlocked_in_person'), ctx(at(2))).changed).toBe(false);
    expect(stepUnlock(j, revoke('no_action', 'RA-OTHER1'), ctx(at(2))).changed).toBe(false);
  });

  it('a code already accepted (unblocking): the companion finishes, and the completion is still assisted', () => {
    const j = codeSentAssisted();
    const accepted = stepUnlock(j, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: 'l' }, ctx(at(1))).journey;
    expect(accepted.state.phase).toBe('unblocking');
    expect(stepUnlock(accepted, revoke('no_action'), ctx(at(2))).changed).toBe(false);
  });
});

describe('an assisted resume reads the card again before any code (issue #14 certificates)', () => {
  it('paused with a valid code; a certificate expired meanwhile: certificates_expired, the code is not offered again', () => {
    const j = codeSentAssisted();
    const paused = stepUnlock(j, { type: 'pause', caseRef: 'RA-AAAAAA' }, ctx(at(1))).journey;
    const resumed = stepUnlock(paused, assisted(person, 'RA-AAAAAA'), ctx(at(12)));
    expect(resumed.journey.state.phase).toBe('checking_card');
    expect(resumed.effects.some((e) => e.type === 'companion.command' && e.command.kind === 'unlock.prompt')).toBe(false);
    const card = stepUnlock(resumed.journey, blocked(person, [{ slot: '9A', notAfter: at(10).toISOString() }]), ctx(at(12)));
    expect(card.journey.state).toMatchObject({ phase: 'card_problem', problem: 'certificates_expired' });
    expect(card.effects.some((e) => e.type === 'companion.command' && e.command.kind === 'unlock.prompt')).toBe(false);
    expect(sends(card.effects)).toEqual([]);
  });

  it('an assisted start over a run with its code out (not paused) reads the card too, closing the open code form first', () => {
    const j = stepUnlock(codeSentAssisted(), { type: 'cancel', step: 99 }, ctx(at(1))).journey; // stale cancel: nothing
    const again = stepUnlock(j, assisted(person, 'RA-BBBBBB'), ctx(at(2)));
    expect(again.journey.state.phase).toBe('checking_card');
    expect(again.effects.find((e) => e.type === 'companion.command')).toMatchObject({ command: { kind: 'unlock.closed' } });
    const card = stepUnlock(again.journey, blocked(), ctx(at(2)));
    expect(card.journey.state).toMatchObject({ phase: 'code_sent', code: { hash: hashOf('12345678'), mailed: true } });
    expect(sends(card.effects)).toEqual([]);
  });
});

describe('UnlockService.personFacts under code-only: the current directory profile (issue #14)', () => {
  const stored: Person = { id: 'p1', teamsUserId: AAD, displayName: 'Alex Wilber', email: 'alex.wilber@nhs.net', mobile: '+447700900999', answers: [], cardId: CARD, selfServiceLock: null, createdAt: T0.toISOString(), updatedAt: T0.toISOString(), version: 1 };
  const service = (lookup: UnlockServiceDeps['directoryLookup'], hasDirectory?: boolean) =>
    new UnlockService({ rules: CODE_ONLY, approvedDomains: ['nhs.net'], logger: createLogger({ name: 'spec', level: 'silent' }), directoryLookup: lookup, ...(hasDirectory !== undefined ? { hasDirectory: () => hasDirectory } : {}) } as unknown as UnlockServiceDeps);
  const profile = (c: DirectoryContact | null) => async () => c;

  it('the mobile is the profile one, not the stored one', async () => {
    const f = await service(profile({ email: 'alex.wilber@nhs.net', mobile: '+447700900123' })).personFacts(stored);
    expect(f.enrolment).toMatchObject({ email: 'alex.wilber@nhs.net', mobile: '+447700900123', personStored: true });
  });

  it('a profile with no mobile, or no profile, or a failed lookup: no stored contact stands in', async () => {
    expect((await service(profile({ email: null, mobile: null })).personFacts(stored)).enrolment).toMatchObject({ email: null, mobile: null });
    expect((await service(profile(null)).personFacts(stored)).enrolment).toMatchObject({ email: null, mobile: null });
    const failing = service(async () => {
      throw new Error('graph down');
    });
    expect((await failing.personFacts(stored)).enrolment).toMatchObject({ email: null, mobile: null });
  });

  it('an approved profile email other than the record address (where the mail goes) is not offered', async () => {
    const f = await service(profile({ email: 'a.wilber@nhs.net', mobile: null })).personFacts(stored);
    expect(f.enrolment).toMatchObject({ email: null, mobile: null });
  });

  it('no directory configured: the stored email and mobile are used', async () => {
    const f = await service(profile(null), false).personFacts(stored);
    expect(f.enrolment).toMatchObject({ email: 'alex.wilber@nhs.net', mobile: '+447700900999' });
    const none = await service(undefined).personFacts(stored);
    expect(none.enrolment).toMatchObject({ email: 'alex.wilber@nhs.net', mobile: '+447700900999' });
  });

  it('under questions no lookup is made and no contacts are given', async () => {
    let calls = 0;
    const q = new UnlockService({ rules: DEFAULT_UNLOCK_RULES, logger: createLogger({ name: 'spec', level: 'silent' }), directoryLookup: async () => (calls++, null) } as unknown as UnlockServiceDeps);
    expect((await q.personFacts(stored)).enrolment).toBeUndefined();
    expect(calls).toBe(0);
  });
});
