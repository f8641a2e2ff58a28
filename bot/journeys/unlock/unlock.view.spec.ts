import { describe, expect, it } from 'vitest';
import type { AdaptiveCard } from '../../../cards';
import type { UnlockJourney, UnlockRules } from './unlock.journey';
import { renderUnlockCard, type ViewContext } from './unlock.view';

const RULES = { maxAnswerFailures: 3, codeTtlMs: 15 * 60_000, maxCodeTries: 5, maxCodesPerRun: 3, unblockWindowMs: 10 * 60_000, answerCheckTimeoutMs: 60_000 } as UnlockRules;
const VIEW: ViewContext = { displayName: 'Alex', email: 'alex.wilber@nhs.net', timeZone: 'Europe/London', raContact: 'the RA team', rules: RULES, workstation: 'WS-0042' };

const journey = (state: UnlockJourney['state']): UnlockJourney => ({ personId: 'p1', runId: '3f2b8c1e-7d4a-4b6e-9a51-0c8d2e4f6a71', state, counters: { answerAttempts: 0 }, lock: null, resetAt: null });

/** Every `color` in a card, depth first. */
function colours(card: AdaptiveCard): string[] {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) {
        if (k === 'color' && typeof v === 'string') out.push(v);
        else walk(v);
      }
    }
  };
  walk(card);
  return out;
}

describe('renderUnlockCard', () => {
  it('"Your card is not locked" is information, not an error: no attention or warning colour', () => {
    const card = renderUnlockCard(journey({ phase: 'card_problem', step: 2, problem: 'not_blocked', deviceId: 'd1' }), VIEW);
    const json = JSON.stringify(card);
    expect(json).toContain('Your card is not locked');
    expect(colours(card)).not.toContain('Attention');
    expect(colours(card)).not.toContain('Warning');
  });

  it('a real problem (wrong card) stays styled as an error', () => {
    const card = renderUnlockCard(journey({ phase: 'card_problem', step: 2, problem: 'wrong_card', deviceId: 'd1' }), VIEW);
    expect(colours(card)).toContain('Attention');
  });

  it('the done card writes the time with its zone in the configured zone (winter GMT, summer BST), no host time function', () => {
    const winter = JSON.stringify(renderUnlockCard(journey({ phase: 'done', step: 9, at: '2026-01-15T19:10:00.000Z', cardId: 'c1' }), VIEW));
    expect(winter).toContain('19:10 GMT');
    const summer = JSON.stringify(renderUnlockCard(journey({ phase: 'done', step: 9, at: '2026-07-03T18:10:00.000Z', cardId: 'c1' }), VIEW));
    expect(summer).toContain('19:10 BST');
    expect(summer).not.toMatch(/\{\{(TIME|DATE)\(/);
  });
});
