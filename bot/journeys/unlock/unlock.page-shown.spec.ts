/**
 * Issue #13, the page comes to the person: the companion's `unlock.prompt` ack says how it brought its
 * passcode page to the person (`page`); the runner feeds it to the unlock journey as `prompt_shown`, the
 * code_sent state records it, and the card names the computer.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, type Harness } from '../journey.spec-support';
import { DEFAULT_UNLOCK_RULES, stepUnlock, type StepContext, type UnlockJourney, type UnlockState } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';
import { renderUnlockCard, type ViewContext } from './unlock.view';

const RUN = '3f2b8c1e-7d4a-4b6e-9a51-0c8d2e4f6a71';
const T0 = new Date('2026-12-06T09:00:00.000Z');
const CODE_SENT: Extract<UnlockState, { phase: 'code_sent' }> = {
  phase: 'code_sent',
  step: 5,
  deviceId: '11111111-1111-4111-8111-111111111111',
  cardId: 'a'.repeat(32),
  code: { hash: 'h1', issuedAt: T0.toISOString(), expiresAt: '2026-12-06T09:15:00.000Z', wrongTries: 0, mailed: true },
  codesIssued: 1,
};
const journey = (state: UnlockState): UnlockJourney => ({ personId: 'p1', runId: RUN, state, counters: { answerAttempts: 1 }, lock: null, resetAt: null });

function ctx(): StepContext {
  let n = 0;
  return {
    now: T0,
    rules: DEFAULT_UNLOCK_RULES,
    newId: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    shuffle: (items) => [...items],
    freshCode: { hash: 'h2', sealed: (runId) => `sealed:${runId}` },
    freshCaseRef: 'RA-ABC123',
    hashesEqual: (a, b) => a === b,
  };
}

const VIEW: ViewContext = { displayName: 'Alex', email: 'alex.wilber@nhs.net', timeZone: 'Europe/London', raContact: 'the RA team', rules: DEFAULT_UNLOCK_RULES, workstation: 'WS-123' };
const GENERAL = 'Open the Smartcard Assist companion on this computer and enter the code there with your new passcode.';

describe('prompt_shown (pure journey)', () => {
  it('records how the page came to the person on code_sent and refreshes the card; the same again changes nothing', () => {
    const r = stepUnlock(journey(CODE_SENT), { type: 'prompt_shown', runId: RUN, page: 'opened' }, ctx());
    expect(r.changed).toBe(true);
    expect(r.journey.state).toEqual({ ...CODE_SENT, page: 'opened' });
    expect(r.effects).toEqual([{ type: 'teams.refresh', id: expect.any(String), personId: 'p1', message: null }]);
    const again = stepUnlock(r.journey, { type: 'prompt_shown', runId: RUN, page: 'opened' }, ctx());
    expect(again.changed).toBe(false);
    expect(again.effects).toEqual([]);
    const notified = stepUnlock(r.journey, { type: 'prompt_shown', runId: RUN, page: 'notified' }, ctx());
    expect(notified.journey.state).toMatchObject({ phase: 'code_sent', page: 'notified' });
  });

  it('is ignored for another run or outside code_sent (a late ack after the code was accepted)', () => {
    expect(stepUnlock(journey(CODE_SENT), { type: 'prompt_shown', runId: randomUUID(), page: 'opened' }, ctx()).changed).toBe(false);
    const unblocking: UnlockState = { phase: 'unblocking', step: 6, deviceId: CODE_SENT.deviceId, cardId: CODE_SENT.cardId, authorisedAt: T0.toISOString(), interrupted: false } as UnlockState;
    const r = stepUnlock(journey(unblocking), { type: 'prompt_shown', runId: RUN, page: 'opened' }, ctx());
    expect(r.changed).toBe(false);
    expect(r.journey.state).toEqual(unblocking);
  });

  it('a new code keeps what is known until the new prompt is answered', () => {
    const shown = journey({ ...CODE_SENT, page: 'notified' });
    const r = stepUnlock(shown, { type: 'resend_code', person: { personId: 'p1', registered: true, boundCardId: CODE_SENT.cardId, questionIds: [], storedLock: null }, step: 5 }, ctx());
    expect(r.journey.state).toMatchObject({ phase: 'code_sent', step: 6, page: 'notified' });
  });
});

describe('code_sent page in the stored record', () => {
  it('round-trips, and a record from before it (no page) still reads', () => {
    const j = journey({ ...CODE_SENT, page: 'opened' });
    const base = { personId: 'p1', runId: RUN, updatedAt: T0.toISOString() };
    expect(decodeUnlock({ ...base, ...encodeUnlock(j) })).toEqual(j);
    expect(decodeUnlock({ ...base, ...encodeUnlock(journey(CODE_SENT)) }).state).toEqual(CODE_SENT);
    expect(() => decodeUnlock({ ...base, ...encodeUnlock(j), state: { ...encodeUnlock(j).state, page: 'somewhere' } })).toThrow();
  });
});

describe('the code_sent card names the computer', () => {
  const text = (state: UnlockState, view: ViewContext = VIEW): string => JSON.stringify(renderUnlockCard(journey(state), view));

  it('opened: the page has opened on WS-123', () => {
    const t = text({ ...CODE_SENT, page: 'opened' });
    expect(t).toContain("The companion's page has opened on WS-123: enter the code there with your new passcode.");
    expect(t).not.toContain(GENERAL);
  });

  it('notified: a notification on WS-123 opens the page', () => {
    expect(text({ ...CODE_SENT, page: 'notified' })).toContain("A notification on WS-123 opens the companion's page: enter the code there with your new passcode.");
  });

  it('computer unknown: says "your computer"', () => {
    expect(text({ ...CODE_SENT, page: 'opened' }, { ...VIEW, workstation: null })).toContain("The companion's page has opened on your computer:");
  });

  it('none or unknown (an older companion): the general line', () => {
    expect(text({ ...CODE_SENT, page: 'none' })).toContain(GENERAL);
    expect(text(CODE_SENT)).toContain(GENERAL);
    expect(text(CODE_SENT)).not.toContain('WS-123');
  });
});

describe('effect runner: the unlock.prompt ack', () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });
  const prompt = { type: 'companion.command' as const, id: randomUUID(), deviceId: 'd1', command: { kind: 'unlock.prompt' as const, journeyId: RUN, cardId: 'a'.repeat(32), codeExpiresAt: '2026-12-06T09:15:00.000Z' } };

  it('an ack with page becomes prompt_shown for the run; a plain ack (older companion) none', async () => {
    h = harness();
    h.link.reply = async () => ({ kind: 'ack', page: 'notified' });
    expect(await h.runner.carryOut(prompt)).toEqual({ kind: 'unlock', event: { type: 'prompt_shown', runId: RUN, page: 'notified' } });
    h.link.reply = async () => ({ kind: 'ack' });
    expect(await h.runner.carryOut({ ...prompt, id: randomUUID() })).toBeNull();
  });

  it('another command with a page in its ack does not feed the journey', async () => {
    h = harness();
    h.link.reply = async () => ({ kind: 'ack', page: 'opened' });
    expect(await h.runner.carryOut({ type: 'companion.command', id: randomUUID(), deviceId: 'd1', command: { kind: 'unlock.closed', journeyId: RUN, outcome: 'cancelled', message: 'x' } })).toBeNull();
  });
});
