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
const unblocking: UnlockState = { phase: 'unblocking', step: 6, deviceId: DEVICE, cardId: CARD, authorisedAt: T0.toISOString(), interrupted: false };

const pukEffects = (effects: Effect[]) => effects.filter((e) => e.type === 'puk.release' || e.type === 'puk.commit');

describe('the unlock step asks for PUK custody effects', () => {
  it('accepting the code stores one release for this person, device, card and run', () => {
    const r = stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH }, ctx);
    expect(r.verdict).toEqual({ kind: 'authorised' });
    expect(r.journey.state.phase).toBe('unblocking');
    expect(pukEffects(r.effects)).toEqual([{ type: 'puk.release', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN }]);
  });

  it('a wrong code, a code from another device or card, or a locked person: no release', () => {
    const cases = [
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: 'c'.repeat(64) }, ctx),
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: randomUUID(), cardId: CARD, codeHash: CODE_HASH }, ctx),
      stepUnlock(journey(codeSent), { type: 'code_submitted', deviceId: DEVICE, cardId: 'f'.repeat(32), codeHash: CODE_HASH }, ctx),
      stepUnlock(journey(codeSent, { at: T0.toISOString(), caseRef: 'RA-AAAAAA', reason: 'answers_failed' }), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH }, ctx),
      stepUnlock(journey(unblocking), { type: 'code_submitted', deviceId: DEVICE, cardId: CARD, codeHash: CODE_HASH }, ctx),
    ];
    for (const r of cases) {
      expect(r.verdict?.kind).toBe('refused');
      expect(pukEffects(r.effects)).toEqual([]);
    }
  });

  it('a resume while unblocking stores another release; from another device, or not unblocking, none', () => {
    const ok = stepUnlock(journey(unblocking), { type: 'resume', deviceId: DEVICE, cardId: CARD }, ctx);
    expect(pukEffects(ok.effects)).toEqual([{ type: 'puk.release', id: expect.any(String), personId: PERSON, deviceId: DEVICE, cardId: CARD, runId: RUN }]);
    expect(pukEffects(stepUnlock(journey(unblocking), { type: 'resume', deviceId: randomUUID(), cardId: CARD }, ctx).effects)).toEqual([]);
    expect(pukEffects(stepUnlock(journey(codeSent), { type: 'resume', deviceId: DEVICE, cardId: CARD }, ctx).effects)).toEqual([]);
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
