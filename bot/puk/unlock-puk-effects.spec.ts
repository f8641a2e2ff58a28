/**
 * The unlock journey's pure step asks for the PUK custody's effects, stored with
 * its new state: `puk.release` when it accepts the code or a resume, `puk.commit`
 * when the companion reports the new PUK on the card; never otherwise.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Effect } from '../journeys/journey.effects';
import { DEFAULT_UNLOCK_RULES, stepUnlock, type StepContext, type UnlockJourney, type UnlockState } from '../journeys/unlock/unlock.journey';

const PERSON = 'person-alice';
const DEVICE = randomUUID();
/** The link session the companion's requests came on (issue #10). */
const LINK = randomUUID();
const RUN = randomUUID();
const CARD = '00112233445566778899aabbccddeeff';
const T0 = new Date('2026-12-03T10:00:00Z');
const CODE_HASH = 'a'.repeat(64);

const ctx: StepContext = {
  now: T0,
  rules: DEFAULT_UNLOCK_RULES,
  newId: randomUUID,
  shuffle: (items) => [...items],
  freshCode: { hash: 'b'.repeat(64), sealed: () => 'v1.sealed' },
  freshCaseRef: 'RA-AAAAAA',
  hashesEqual: (a, b) => a === b,
};

function journey(state: UnlockState, lock: UnlockJourney['lock'] = null): UnlockJourney {
  return { personId: PERSON, runId: RUN, state, counters: { answerAttempts: 0 }, lock, resetAt: null };
}

const codeSent: UnlockState = {
  phase: 'code_sent',
  step: 5,
  deviceId: DEVICE,
  cardId: CARD,
  code: { hash: CODE_HASH, issuedAt: T0.toISOString(), expiresAt: new Date(T0.getTime() + 60_000).toISOString(), wrongTries: 0, mailed: true },
  codesIssued: 1,
};
const unblocking: UnlockState = { phase: 'unblocking', step: 6, deviceId: DEVICE, cardId: CARD, authorisedAt: T0.toISOString(), interrupted: false, linkSession: LINK, codeHash: CODE_HASH, codeWrongTries: 0 };

const pukEffects = (effects: Effect[]) => effects.filter((e) => e.type === 'puk.release' || e.type === 'puk.commit');

describe('the unlock step asks for PUK custody effects', () => {
  it('accepting the code stores one release for this person, device, card and run', () => {
    const r = stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH, linkSession: LINK }, ctx);
    expect(r.verdict).toEqual({ kind: 'authorised' });
    expect(r.journey.state.phase).toBe('unblocking');
    expect(pukEffects(r.effects)).toEqual([{ type: 'puk.release', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN, linkSession: LINK }]);
    expect(r.journey.state).toMatchObject({ linkSession: LINK, codeHash: CODE_HASH, codeWrongTries: 0 });
  });

  it('a wrong code, a code from another device or card, or a locked person: no release', () => {
    const cases = [
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: 'c'.repeat(64), linkSession: LINK }, ctx),
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: randomUUID(), cardId: CARD, codeHash: CODE_HASH, linkSession: LINK }, ctx),
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: 'f'.repeat(32), codeHash: CODE_HASH, linkSession: LINK }, ctx),
      stepUnlock(journey(codeSent, { at: T0.toISOString(), caseRef: 'RA-AAAAAA', reason: 'answers_failed' }), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH, linkSession: LINK }, ctx),
      stepUnlock(journey(unblocking), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH, linkSession: LINK }, ctx),
    ];
    for (const r of cases) {
      expect(r.verdict?.kind).toBe('refused');
      expect(pukEffects(r.effects)).toEqual([]);
    }
  });

  it('a resume while unblocking stores another release; from another device, or not unblocking, none', () => {
    const ok = stepUnlock(journey(unblocking), { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx);
    expect(pukEffects(ok.effects)).toEqual([{ type: 'puk.release', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN, linkSession: LINK }]);
    expect(pukEffects(stepUnlock(journey(unblocking), { type: 'resume', deviceId: randomUUID(), cardId: CARD, linkSession: LINK, codeHash: null }, ctx).effects)).toEqual([]);
    expect(pukEffects(stepUnlock(journey(codeSent), { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx).effects)).toEqual([]);
  });

  it('a resume from another link session needs the code: without it no release (code_needed); a wrong one is counted; with it the release goes to the new session, which then holds the run', () => {
    const other = randomUUID();
    const without = stepUnlock(journey(unblocking), { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: other, codeHash: null }, ctx);
    expect(without.verdict).toEqual({ kind: 'refused', reason: 'code_needed' });
    expect(pukEffects(without.effects)).toEqual([]);
    expect(without.journey.state).toEqual(unblocking);
    expect(without.effects.map((e) => (e.type === 'audit' ? e.action : e.type))).toEqual(['unlock.resume_refused']);
    const wrong = stepUnlock(journey(unblocking), { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: other, codeHash: 'c'.repeat(64) }, ctx);
    expect(wrong.verdict).toEqual({ kind: 'refused', reason: 'wrong_code', triesLeft: DEFAULT_UNLOCK_RULES.maxCodeTries - 1 });
    expect(pukEffects(wrong.effects)).toEqual([]);
    expect(wrong.journey.state).toMatchObject({ codeWrongTries: 1, linkSession: LINK });
    const right = stepUnlock(wrong.journey, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: other, codeHash: CODE_HASH }, ctx);
    expect(right.verdict).toEqual({ kind: 'authorised' });
    expect(pukEffects(right.effects)).toEqual([{ type: 'puk.release', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN, linkSession: other }]);
    expect(right.journey.state).toMatchObject({ phase: 'unblocking', linkSession: other });
    // The first session no longer holds the run: it too needs the code now.
    expect(stepUnlock(right.journey, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx).verdict).toEqual({ kind: 'refused', reason: 'code_needed' });
  });

  it('resume codes count against the same tries as the code did: after the last wrong one even the right code gets no release', () => {
    let j = journey({ ...unblocking, codeWrongTries: DEFAULT_UNLOCK_RULES.maxCodeTries - 1 });
    const last = stepUnlock(j, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: randomUUID(), codeHash: 'c'.repeat(64) }, ctx);
    expect(last.verdict).toEqual({ kind: 'refused', reason: 'too_many_tries', triesLeft: 0 });
    j = last.journey;
    const right = stepUnlock(j, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: randomUUID(), codeHash: CODE_HASH }, ctx);
    expect(right.verdict).toEqual({ kind: 'refused', reason: 'too_many_tries', triesLeft: 0 });
    expect(pukEffects(right.effects)).toEqual([]);
    // The link that presented the code still finishes.
    expect(stepUnlock(j, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash: null }, ctx).verdict).toEqual({ kind: 'authorised' });
  });

  it('a run stored before issue #10 (no link session, no code hash) gives a resume nothing (code_needed)', () => {
    const old = journey({ ...unblocking, linkSession: null, codeHash: null });
    for (const codeHash of [null, CODE_HASH]) {
      const r = stepUnlock(old, { type: 'resume', deviceId: DEVICE, cardId: CARD, linkSession: LINK, codeHash }, ctx);
      expect(r.verdict).toEqual({ kind: 'refused', reason: 'code_needed' });
      expect(pukEffects(r.effects)).toEqual([]);
    }
  });

  it('the new PUK on the card commits the rotation first, whether or not the unblock finished', () => {
    const done = stepUnlock(journey(unblocking), { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: 'WS1' }, ctx);
    expect(done.journey.state.phase).toBe('done');
    expect(done.effects[0]).toEqual({ type: 'puk.commit', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN });
    expect(pukEffects(done.effects)).toHaveLength(1);
    const pulled = stepUnlock(journey(unblocking), { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'card_removed', pukOnCard: 'new', workstation: 'WS1' }, ctx);
    expect(pulled.journey.state.phase).toBe('unblocking');
    expect(pukEffects(pulled.effects).map((e) => e.type)).toEqual(['puk.commit']);
  });

  it('no commit while the card holds the current or an unknown PUK, nor for another device or a run not unblocking', () => {
    for (const pukOnCard of ['current', 'unknown'] as const) {
      expect(pukEffects(stepUnlock(journey(unblocking), { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'card_removed', pukOnCard, workstation: null }, ctx).effects)).toEqual([]);
    }
    expect(pukEffects(stepUnlock(journey(unblocking), { type: 'unblock_result', deviceId: randomUUID(), cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: null }, ctx).effects)).toEqual([]);
    expect(pukEffects(stepUnlock(journey(codeSent), { type: 'unblock_result', deviceId: DEVICE, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new', workstation: null }, ctx).effects)).toEqual([]);
  });
});
