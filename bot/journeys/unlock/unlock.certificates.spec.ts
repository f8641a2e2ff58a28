/**
 * Expired certificates, bot side (issue #14): with the bot's clock, a card whose certificates expired is not
 * unlocked; the person is told it needs renewing and one RA case opens with reason `certificates_expired`.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CardStatus } from '../../../protocol/companion-link.protocol';
import { DEFAULT_UNLOCK_RULES, expiredCertificates, newUnlockJourney, stepUnlock, type PersonFacts, type StepContext, type UnlockEvent, type UnlockJourney } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';
import { renderUnlockCard } from './unlock.view';

const CARD = 'a'.repeat(32);
const DEVICE = '11111111-1111-4111-8111-111111111111';
const NOW = new Date('2026-12-06T09:00:00.000Z');
const person: PersonFacts = { personId: 'p1', registered: true, boundCardId: CARD, questionIds: ['q01', 'q02', 'q03', 'q04'], storedLock: null };

let ids = 0;
function ctx(caseRef = 'RA-CERT01', now = NOW): StepContext {
  return { now, rules: DEFAULT_UNLOCK_RULES, newId: () => `id-${++ids}`, shuffle: (x) => [...x], freshCode: { hash: createHash('sha256').update('1').digest('hex'), sealed: (r) => `sealed:${r}` }, freshCaseRef: caseRef, hashesEqual: (a, b) => a === b };
}
type Certificates = Extract<CardStatus, { present: true }>['certificates'];
const status = (certificates: Certificates, pinRetries = 0): CardStatus => ({ present: true, reader: 'r', cardId: CARD, pinRetries, ...(certificates !== undefined ? { certificates } : {}) });
const cardEvent = (s: CardStatus): UnlockEvent => ({ type: 'card_status', person, result: { ok: true, status: s, pukEnrolled: true } });

function check(s: CardStatus, j: UnlockJourney = newUnlockJourney('p1', 'run-0'), c = ctx()) {
  const started = stepUnlock(j, { type: 'start', person, deviceId: DEVICE }, c).journey;
  return stepUnlock(started, cardEvent(s), c);
}

describe('expired certificates (issue #14)', () => {
  it('decides expiry with the bot clock: notAfter before now is expired; at or after now, or not read, is not', () => {
    const certs = [
      { slot: '9E' as const, notAfter: '2026-12-06T09:00:00.000Z' },
      { slot: '9A' as const, notAfter: '2026-12-06T08:59:59.000Z' },
    ];
    expect(expiredCertificates(status(certs), NOW)).toEqual([{ slot: '9A', notAfter: '2026-12-06T08:59:59.000Z' }]);
    expect(expiredCertificates(status(undefined), NOW)).toEqual([]);
    expect(expiredCertificates(status([]), NOW)).toEqual([]);
    expect(expiredCertificates({ present: false, reader: null }, NOW)).toEqual([]);
  });

  it('a blocked card with an expired certificate is not unlocked: no questions, no code, one RA case certificates_expired', () => {
    const r = check(status([{ slot: '9A', notAfter: '2026-11-30T23:59:59.000Z' }, { slot: '9E', notAfter: '2027-11-30T23:59:59.000Z' }]));
    expect(r.journey.state).toMatchObject({ phase: 'card_problem', problem: 'certificates_expired', caseRef: 'RA-CERT01', expiredAt: '2026-11-30T23:59:59.000Z' });
    const open = r.effects.filter((e) => e.type === 'case.open');
    expect(open).toEqual([expect.objectContaining({ ref: 'RA-CERT01', reason: 'certificates_expired', personId: 'p1', context: expect.objectContaining({ cardId: CARD, expiredSlots: '9A' }) })]);
    expect(r.effects.some((e) => e.type === 'mail.unlock_code' || e.type === 'sms.unlock_code' || e.type === 'puk.release')).toBe(false);
    expect(r.effects.find((e) => e.type === 'audit')).toMatchObject({ action: 'unlock.certificates_expired', details: { slots: '9A', caseRef: 'RA-CERT01', newCase: true } });

    // Told plainly, with the case reference; no retry button (nothing the person can do here).
    const card = JSON.stringify(renderUnlockCard(r.journey, { displayName: 'Alex', email: 'alex@nhs.net', timeZone: 'Europe/London', raContact: 'the RA team', rules: DEFAULT_UNLOCK_RULES, workstation: null }));
    expect(card).toContain('Your card needs renewing');
    expect(card).toContain('RA-CERT01');
    expect(card).toContain('30 November 2026');
    expect(card).not.toContain('unlock.check_card');

    // Checked again (a new "unlock"): the same case, not a second one.
    const again = check(status([{ slot: '9A', notAfter: '2026-11-30T23:59:59.000Z' }]), r.journey, ctx('RA-CERT02'));
    expect(again.journey.state).toMatchObject({ problem: 'certificates_expired', caseRef: 'RA-CERT01' });
    expect(again.effects.filter((e) => e.type === 'case.open')).toEqual([]);
    // The case survives the stored record.
    const e = encodeUnlock(again.journey);
    const back = decodeUnlock({ personId: 'p1', runId: again.journey.runId, state: JSON.parse(JSON.stringify(e.state)), counters: e.counters, updatedAt: NOW.toISOString() });
    expect(back.renewal).toEqual({ cardId: CARD, caseRef: 'RA-CERT01' });
    expect(back.state).toEqual(again.journey.state);
  });

  it('valid certificates, none reported, or not read: the unlock goes on as before', () => {
    for (const certs of [[{ slot: '9A' as const, notAfter: '2027-01-01T00:00:00.000Z' }], [], undefined]) {
      expect(check(status(certs)).journey.state.phase).toBe('answering');
    }
  });

  it('an RA-assisted unlock does not unlock an expired card either', () => {
    const assisted = stepUnlock(newUnlockJourney('p1', 'run-0'), { type: 'assisted_start', person, deviceId: DEVICE, caseRef: 'RA-7K2Q9D', actor: 'ra:x' }, ctx()).journey;
    const r = stepUnlock(assisted, cardEvent(status([{ slot: '9A', notAfter: '2026-01-01T00:00:00.000Z' }])), ctx());
    expect(r.journey.state).toMatchObject({ phase: 'card_problem', problem: 'certificates_expired' });
    expect(r.effects.some((e) => e.type === 'mail.unlock_code')).toBe(false);
  });
});
