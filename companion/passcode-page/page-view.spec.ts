import { describe, expect, it } from 'vitest';
import { clockTime } from '../../common/clock-time';
import { renderPage } from './page-view';

const CONTEXT = { formToken: 'form-token-value' };
/** This computer's zone name for a winter instant (the companion writes times in the workstation's zone). */
const WINTER = new Date('2026-01-15T19:10:00Z');

describe('page view: times', () => {
  it('the unlock form says until when the code works, with the zone (the one time format)', () => {
    const html = renderPage({ state: 'awaiting_unlock', codeExpiresAt: WINTER, error: null }, CONTEXT);
    expect(html).toContain(`The code works until ${clockTime(WINTER)}.`);
    expect(html).toMatch(/works until \d\d:\d\d \S+\./);
  });

  it('the pairing screen says until when the pairing code works, with the zone', () => {
    const html = renderPage({ state: 'pairing', userCode: 'K7QF-M2XD', expiresAt: WINTER }, CONTEXT);
    expect(html).toContain(`The code works until ${clockTime(WINTER)}.`);
  });
});
