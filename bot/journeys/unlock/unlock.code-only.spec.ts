/**
 * UNLOCK_POLICY=code-only on the pure journey (issue #14): no registration and no questions; the card must be
 * one the card-management import named the person holder of; the code goes by the one channel they have, or
 * the one they pick; the person is enrolled (record created, card bound) by an effect of the same step.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CardClaim } from '../../puk/puk.rules';
import type { Effect } from '../journey.effects';
import { DEFAULT_UNLOCK_RULES, newUnlockJourney, stepUnlock, type CodeOnlyFacts, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney, type UnlockRules } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const T0 = new Date('2026-12-01T09:00:00.000Z');
const RULES: UnlockRules = { ...DEFAULT_UNLOCK_RULES, policy: 'code-only' };
const hashOf = (code: string): string => createHash('sha256').update(code).digest('hex');

let ids = 0;
function ctx(rules = RULES, now = T0): StepContext {
  return { now, rules, newId: () => `id-${++ids}`, shuffle: (x) => [...x], freshCode: { hash: hashOf('12345678'), sealed: (r) => `sealed:${r}` }, freshCaseRef: 'RA-ABC123', hashesEqual: (a, b) => a === b };
}

const enrolment = (over: Partial<CodeOnlyFacts> = {}): CodeOnlyFacts => ({ personStored: false, teamsUserId: 'aad-1', displayName: 'Alex Wilber', profileEmail: 'alex.wilber@nhs.net', email: 'alex.wilber@nhs.net', mobile: '+447700900123', ...over });
const newcomer = (over: Partial<CodeOnlyFacts> = {}): PersonFacts => ({ personId: 'p1', registered: false, boundCardId: null, questionIds: [], storedLock: null, enrolment: enrolment(over) });
const card = (p: PersonFacts, binding: CardClaim, pinRetries = 0): UnlockEvent => ({ type: 'card_status', person: p, result: { ok: true, status: { present: true, reader: 'r', cardId: CARD, pinRetries }, pukEnrolled: binding === 'bound' || binding === 'bindable', binding } });
const types = (effects: Effect[]): string[] => effects.map((e) => (e.type === 'audit' ? `audit:${e.action}` : e.type === 'companion.command' ? `companion:${e.command.kind}` : e.type));

function toCard(p: PersonFacts, binding: CardClaim, rules = RULES) {
  const started = stepUnlock(newUnlockJourney('p1', 'run-0'), { type: 'start', person: p, deviceId: DEVICE }, ctx(rules));
  expect(started.journey.state.phase).toBe('checking_card');
  return stepUnlock(started.journey, card(p, binding), ctx(rules));
}

describe('code-only unlock (issue #14)', () => {
  it('with an approved email and a UK mobile: enrols the person (no questions) and lets them pick; SMS goes to the mobile', () => {
    const r = toCard(newcomer(), 'bindable');
    expect(r.journey.state).toMatchObject({ phase: 'choosing_channel', email: 'alex.wilber@nhs.net', mobile: '+447700900123', cardId: CARD });
    expect(r.effects.find((e) => e.type === 'person.register')).toMatchObject({ personId: 'p1', teamsUserId: 'aad-1', email: 'alex.wilber@nhs.net', mobile: '+447700900123', cardId: CARD, answers: [] });
    expect(types(r.effects)).not.toContain('mail.unlock_code');
    if (r.journey.state.phase !== 'choosing_channel') throw new Error('phase');
    const stale = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step - 1, channel: 'sms' }, ctx());
    expect(stale.changed).toBe(false);
    const sms = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step, channel: 'sms' }, ctx());
    expect(sms.journey.state).toMatchObject({ phase: 'code_sent', code: { channel: 'sms', to: '+447700900123', mailed: false } });
    expect(sms.effects.find((e) => e.type === 'sms.unlock_code')).toMatchObject({ to: '+447700900123', codeHash: hashOf('12345678'), codeSealed: `sealed:${sms.journey.runId}` });
    expect(JSON.stringify(sms.effects)).not.toContain('12345678');
    // The carrier's acceptance (the runner answers code_mailed, as for mail) makes the code usable.
    const sent = stepUnlock(sms.journey, { type: 'code_mailed', runId: sms.journey.runId, codeHash: hashOf('12345678'), at: T0.toISOString() }, ctx());
    const ok = stepUnlock(sent.journey, { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: hashOf('12345678'), linkSession: 'l1' }, ctx());
    expect(ok.verdict).toEqual({ kind: 'authorised' });
    // A resend goes by SMS again.
    if (sent.journey.state.phase !== 'code_sent') throw new Error('phase');
    const resent = stepUnlock(sent.journey, { type: 'resend_code', person: newcomer(), step: sent.journey.state.step }, ctx());
    expect(types(resent.effects)).toEqual(['audit:unlock.code_resent', 'sms.unlock_code', 'companion:unlock.prompt']);
  });

  it('an SMS that finally fails ends the run saying the text message could not be sent', () => {
    const r = toCard(newcomer({ email: null }), 'bindable');
    const failed = stepUnlock(r.journey, { type: 'code_mail_failed', runId: r.journey.runId, codeHash: hashOf('12345678') }, ctx());
    expect(failed.journey.state).toMatchObject({ phase: 'ended', reason: 'failed', detail: expect.stringContaining('text message') });
    expect(failed.effects.find((e) => e.type === 'teams.refresh')).toMatchObject({ message: expect.stringContaining('text message') });
  });

  it('email picked: the code is mailed to the person record', () => {
    const r = toCard(newcomer(), 'bindable');
    if (r.journey.state.phase !== 'choosing_channel') throw new Error('phase');
    const mail = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step, channel: 'email' }, ctx());
    expect(types(mail.effects)).toEqual(['audit:unlock.channel_chosen', 'mail.unlock_code', 'companion:unlock.prompt']);
  });

  it('the companion is told how the code went (unlock.prompt codeChannel), so its page says "text message" or "email"', () => {
    const prompts = (effects: Effect[]): unknown[] => effects.flatMap((e) => (e.type === 'companion.command' && e.command.kind === 'unlock.prompt' ? [e.command] : []));
    const r = toCard(newcomer(), 'bindable');
    if (r.journey.state.phase !== 'choosing_channel') throw new Error('phase');
    const sms = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step, channel: 'sms' }, ctx());
    expect(prompts(sms.effects)).toEqual([{ kind: 'unlock.prompt', journeyId: sms.journey.runId, cardId: CARD, codeExpiresAt: expect.any(String), codeChannel: 'sms' }]);
    const sent = stepUnlock(sms.journey, { type: 'code_mailed', runId: sms.journey.runId, codeHash: hashOf('12345678'), at: T0.toISOString() }, ctx());
    if (sent.journey.state.phase !== 'code_sent') throw new Error('phase');
    const resent = stepUnlock(sent.journey, { type: 'resend_code', person: newcomer(), step: sent.journey.state.step }, ctx());
    expect(prompts(resent.effects)).toMatchObject([{ codeChannel: 'sms' }]);
    const email = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step, channel: 'email' }, ctx());
    expect(prompts(email.effects)).toMatchObject([{ kind: 'unlock.prompt', codeChannel: 'email' }]);
  });

  it('one channel only (no UK mobile, or SMS not allowed by UNLOCK_CODE_CHANNELS): the code goes at once by email', () => {
    for (const [p, rules] of [
      [newcomer({ mobile: null }), RULES],
      [newcomer(), { ...RULES, codeChannels: ['email'] as const }],
    ] as const) {
      const r = toCard(p, 'bindable', rules);
      expect(r.journey.state.phase).toBe('code_sent');
      expect(types(r.effects)).toEqual(['person.register', 'audit:unlock.enrolled', 'audit:unlock.questions_skipped', 'mail.unlock_code', 'companion:unlock.prompt']);
    }
  });

  it('a mobile but no approved email: the code goes by SMS; the record keeps the profile email', () => {
    const r = toCard(newcomer({ email: null, profileEmail: 'alex@contractor.example.com' }), 'bindable');
    expect(r.journey.state).toMatchObject({ phase: 'code_sent', code: { channel: 'sms' } });
    expect(r.effects.find((e) => e.type === 'person.register')).toMatchObject({ email: 'alex@contractor.example.com' });
  });

  it('no approved email and no UK mobile: nowhere to send a code, nothing enrolled', () => {
    const r = toCard(newcomer({ email: null, mobile: null }), 'bindable');
    expect(r.journey.state).toMatchObject({ phase: 'card_problem', problem: 'no_contact' });
    expect(types(r.effects)).toEqual(['audit:unlock.no_contact']);
  });

  it.each<CardClaim>(['unconfirmed', 'taken', 'new'])('a card not named for them (%s) is refused, nothing enrolled', (binding) => {
    const r = toCard(newcomer(), binding);
    expect(r.journey.state).toMatchObject({ phase: 'card_problem', problem: 'not_enrolled' });
    expect(types(r.effects)).toEqual(['audit:unlock.card_not_enrolled']);
  });

  it('an enrolled or registered person (card bound) gets a code with no questions and is not enrolled again', () => {
    const p: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null, enrolment: enrolment({ personStored: true, mobile: null }) };
    const r = toCard(p, 'bound');
    expect(r.journey.state.phase).toBe('code_sent');
    expect(types(r.effects)).not.toContain('person.register');
  });

  it('under the questions policy nothing changes: an unregistered person is told to register', () => {
    const r = stepUnlock(newUnlockJourney('p1', 'run-0'), { type: 'start', person: { ...newcomer(), enrolment: undefined }, deviceId: DEVICE }, ctx(DEFAULT_UNLOCK_RULES));
    expect(r.journey.state).toMatchObject({ phase: 'card_problem', problem: 'not_registered' });
  });

  it('the channel choice and an SMS code survive the stored record', () => {
    const r = toCard(newcomer(), 'bindable');
    const back = (j: UnlockJourney) => {
      const e = encodeUnlock(j);
      return decodeUnlock({ personId: 'p1', runId: j.runId, state: JSON.parse(JSON.stringify(e.state)), counters: e.counters, updatedAt: T0.toISOString() });
    };
    expect(back(r.journey).state).toEqual(r.journey.state);
    if (r.journey.state.phase !== 'choosing_channel') throw new Error('phase');
    const sms = stepUnlock(r.journey, { type: 'channel_chosen', step: r.journey.state.step, channel: 'sms' }, ctx());
    expect(back(sms.journey).state).toEqual(sms.journey.state);
  });
});
