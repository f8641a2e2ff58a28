import { createHash, timingSafeEqual } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AnswerHash } from '../../../storage/storage.port';
import type { Effect } from '../journey.effects';
import { newRegistrationJourney, stepRegistration, type RegistrationContext, type RegistrationEvent, type RegistrationJourney, type Registrant } from './registration.journey';

const DEVICE = '22222222-2222-4222-8222-222222222222';
const CARD = 'c'.repeat(32);
const T0 = new Date('2026-11-30T09:00:00.000Z');
const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');
const who: Registrant = { personId: 'p1', teamsUserId: 'user-id-0', displayName: 'Alex Wilber', existing: null, directory: { email: 'alex.wilber@nhs.net', mobile: '+447700900123' } };
const hashes: AnswerHash[] = ['q01', 'q02', 'q03', 'q04'].map((questionId) => ({ questionId, salt: 'c2FsdHNhbHRzYWx0c2FsdA', hash: 'aGFzaA', params: { N: 16384, r: 8, p: 1 } }));

function ctx(now: Date, code = '12345678'): RegistrationContext {
  let n = 0;
  return {
    now,
    approvedDomains: ['nhs.net', 'gov.uk', 'mod.uk'],
    newId: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    freshCode: { hash: hashOf(code), sealed: (r) => `sealed:${r}` },
    freshCaseRef: 'RA-ABC123',
    hashesEqual: (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b)),
  };
}

function run(j: RegistrationJourney, e: (j: RegistrationJourney) => RegistrationEvent, at = T0, code = '12345678') {
  return stepRegistration(j, e(j), ctx(at, code));
}

/** Drive to the code-sent state with the code mailed at `mailedAt`. */
function toCodeSent(mailedAt = T0, registrant: Registrant = who) {
  let j = newRegistrationJourney('p1', 'run-0');
  const effects: Effect[] = [];
  const step = (e: (j: RegistrationJourney) => RegistrationEvent) => {
    const r = run(j, e);
    j = r.journey;
    effects.push(...r.effects);
    return r;
  };
  step(() => ({ type: 'start', who: registrant, deviceId: DEVICE }));
  step((j) => ({ type: 'contact_submitted', step: j.state.step, email: 'alex.wilber@nhs.net', mobile: '07700 900123', deviceId: DEVICE }));
  step((j) => ({ type: 'passcode_checked', runId: j.runId, deviceId: DEVICE, result: { outcome: 'verified', cardId: CARD, cardOwner: null } }));
  step((j) => ({ type: 'questions_submitted', step: j.state.step, chosen: ['q01', 'q02', 'q03', 'q04'], result: { ok: true, hashes } }));
  step((j) => ({ type: 'send_code', step: j.state.step, who: registrant, newEmail: '' }));
  const mailed = stepRegistration(j, { type: 'code_mailed', runId: j.runId, codeHash: hashOf('12345678'), at: mailedAt.toISOString() }, ctx(mailedAt));
  return { journey: mailed.journey, effects };
}

const submit = (code: string) => (j: RegistrationJourney): RegistrationEvent => ({ type: 'code_submitted', step: j.state.step, who, codeHash: hashOf(code), pukEnrolled: true, workstation: 'WS1' });

describe('registration journey', () => {
  it('prefills the contact details from the directory and prompts the companion after valid details', () => {
    const started = run(newRegistrationJourney('p1', 'r'), () => ({ type: 'start', who, deviceId: DEVICE }));
    expect(started.journey.state).toMatchObject({ phase: 'contact', email: 'alex.wilber@nhs.net', mobile: '07700 900123', prefilled: 'directory' });
    const contact = run(started.journey, (j) => ({ type: 'contact_submitted', step: j.state.step, email: ' Alex.Wilber@NHS.net ', mobile: '+44 7700 900123', deviceId: DEVICE }));
    expect(contact.journey.state).toMatchObject({ phase: 'card_check', email: 'alex.wilber@nhs.net', mobile: '+447700900123', check: 'waiting' });
    expect(contact.effects).toContainEqual(expect.objectContaining({ type: 'companion.command', command: { kind: 'register.prompt_passcode', journeyId: contact.journey.runId } }));
  });

  it('keeps what was typed and says why when a field is refused', () => {
    const started = run(newRegistrationJourney('p1', 'r'), () => ({ type: 'start', who, deviceId: DEVICE }));
    const bad = run(started.journey, (j) => ({ type: 'contact_submitted', step: j.state.step, email: 'alex@gmail.com', mobile: '020 7946 0000', deviceId: DEVICE }));
    expect(bad.journey.state).toMatchObject({ phase: 'contact', email: 'alex@gmail.com', mobile: '020 7946 0000' });
    if (bad.journey.state.phase !== 'contact') throw new Error('phase');
    expect(bad.journey.state.errors.email).toContain('must end in');
    expect(bad.journey.state.errors.mobile).toContain('07');
    expect(bad.effects).toEqual([]);
  });

  it('shows tries left for a wrong passcode and stops for a blocked card', () => {
    let j = run(newRegistrationJourney('p1', 'r'), () => ({ type: 'start', who, deviceId: DEVICE })).journey;
    j = run(j, (j) => ({ type: 'contact_submitted', step: j.state.step, email: 'alex.wilber@nhs.net', mobile: '', deviceId: DEVICE })).journey;
    const wrong = run(j, (j) => ({ type: 'passcode_checked', runId: j.runId, deviceId: DEVICE, result: { outcome: 'wrong_passcode', cardId: CARD, triesLeft: 2 } }));
    expect(wrong.journey.state).toMatchObject({ phase: 'card_check', check: 'wrong_passcode', triesLeft: 2 });
    const blocked = run(wrong.journey, (j) => ({ type: 'passcode_checked', runId: j.runId, deviceId: DEVICE, result: { outcome: 'blocked', cardId: CARD } }));
    expect(blocked.journey.state).toMatchObject({ phase: 'problem', problem: 'card_blocked' });
  });

  it('refuses a card registered to someone else', () => {
    let j = run(newRegistrationJourney('p1', 'r'), () => ({ type: 'start', who, deviceId: DEVICE })).journey;
    j = run(j, (j) => ({ type: 'contact_submitted', step: j.state.step, email: 'alex.wilber@nhs.net', mobile: '', deviceId: DEVICE })).journey;
    const r = run(j, (j) => ({ type: 'passcode_checked', runId: j.runId, deviceId: DEVICE, result: { outcome: 'verified', cardId: CARD, cardOwner: 'someone-else' } }));
    expect(r.journey.state).toMatchObject({ phase: 'problem', problem: 'card_taken' });
  });

  it('refuses to run for a person whose self-service RA has locked', () => {
    const r = run(newRegistrationJourney('p1', 'r'), () => ({ type: 'start', who: { ...who, existing: { email: 'a@nhs.net', mobile: null, lockCaseRef: 'RA-ABC123' } }, deviceId: DEVICE }));
    expect(r.journey.state).toMatchObject({ phase: 'problem', problem: 'ra_locked', detail: 'RA-ABC123' });
  });

  it('a double-clicked "email me the code" sends one email', () => {
    const { journey, effects } = toCodeSent();
    expect(effects.filter((e) => e.type === 'mail.registration_code')).toHaveLength(1);
    const stale = stepRegistration(journey, { type: 'send_code', step: journey.state.step - 1, who, newEmail: '' }, ctx(T0));
    expect(stale.changed).toBe(false);
    expect(stale.effects).toEqual([]);
  });

  it('accepts the code at 14:59 after it was mailed', () => {
    const { journey } = toCodeSent();
    const r = run(journey, submit('12345678'), new Date(T0.getTime() + 14 * 60_000 + 59_000));
    expect(r.journey.state.phase).toBe('done');
    expect(r.effects.filter((e) => e.type === 'person.register')).toHaveLength(1);
    const confirm = r.effects.find((e) => e.type === 'mail.registration_confirmed');
    expect(confirm).toBeDefined();
  });

  it.each([15 * 60_000, 15 * 60_000 + 1, 60 * 60_000])('refuses the code %i ms after it was mailed, without counting a wrong try', (ms) => {
    const { journey } = toCodeSent();
    const r = run(journey, submit('12345678'), new Date(T0.getTime() + ms));
    expect(r.journey.state).toMatchObject({ phase: 'code_sent', wrongTries: 0 });
    if (r.journey.state.phase === 'code_sent') expect(r.journey.state.error).toContain('expired');
    expect(r.effects.some((e) => e.type === 'person.register')).toBe(false);
  });

  it('allows at most 5 wrong tries in a registration, and a new code does not reset the count', () => {
    let { journey } = toCodeSent();
    for (let i = 0; i < 3; i++) journey = run(journey, submit('00000000')).journey;
    journey = run(journey, (j) => ({ type: 'resend_code', step: j.state.step, who }), T0, '87654321').journey;
    journey = stepRegistration(journey, { type: 'code_mailed', runId: journey.runId, codeHash: hashOf('87654321'), at: T0.toISOString() }, ctx(T0)).journey;
    expect(journey.state).toMatchObject({ phase: 'code_sent', wrongTries: 3 });
    journey = run(journey, submit('00000000')).journey;
    const fifth = run(journey, submit('00000000'));
    expect(fifth.journey.state).toMatchObject({ phase: 'ended', reason: 'too_many_tries' });
    const after = run(fifth.journey, submit('87654321'));
    expect(after.changed).toBe(false);
  });

  it('issues at most 3 codes an hour per person', () => {
    let { journey } = toCodeSent();
    journey = run(journey, (j) => ({ type: 'resend_code', step: j.state.step, who }), new Date(T0.getTime() + 60_000)).journey;
    journey = run(journey, (j) => ({ type: 'resend_code', step: j.state.step, who }), new Date(T0.getTime() + 120_000)).journey;
    const fourth = run(journey, (j) => ({ type: 'resend_code', step: j.state.step, who }), new Date(T0.getTime() + 180_000));
    expect(fourth.effects.some((e) => e.type === 'mail.registration_code')).toBe(false);
    if (fourth.journey.state.phase !== 'code_sent') throw new Error('phase');
    expect(fourth.journey.state.error).toContain('3 codes in the last hour');
    const later = run(fourth.journey, (j) => ({ type: 'resend_code', step: j.state.step, who }), new Date(T0.getTime() + 61 * 60_000));
    expect(later.effects.some((e) => e.type === 'mail.registration_code')).toBe(true);
  });

  it('re-registration sends the code to the address already registered', () => {
    const existing: Registrant = { ...who, existing: { email: 'old.address@nhs.net', mobile: null, lockCaseRef: null } };
    const { effects } = toCodeSent(T0, existing);
    expect(effects.find((e) => e.type === 'mail.registration_code')).toMatchObject({ to: 'old.address@nhs.net' });
  });

  it('a card with no enrolled PUK registers, and an RA case is opened', () => {
    const { journey } = toCodeSent();
    const r = run(journey, (j) => ({ type: 'code_submitted', step: j.state.step, who, codeHash: hashOf('12345678'), pukEnrolled: false, workstation: null }));
    expect(r.journey.state).toMatchObject({ phase: 'done', selfUnlockReady: false });
    expect(r.effects).toContainEqual(expect.objectContaining({ type: 'case.open', reason: 'no_puk_enrolled' }));
  });
});
