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

  it('the unlock form says where the code was sent: a text message for SMS, the email otherwise (issue #14)', () => {
    const sms = renderPage({ state: 'awaiting_unlock', codeExpiresAt: WINTER, codeChannel: 'sms', error: null }, CONTEXT);
    expect(sms).toContain('Type the unlock code from your text message, then choose a new passcode');
    expect(sms).not.toMatch(/email/i);
    const kept = renderPage({ state: 'awaiting_unlock', codeExpiresAt: WINTER, codeChannel: 'sms', error: null, passcodeKept: true }, CONTEXT);
    expect(kept).toContain('Type the unlock code from your text message.');
    expect(kept).not.toMatch(/email/i);
    const email = renderPage({ state: 'awaiting_unlock', codeExpiresAt: WINTER, codeChannel: 'email', error: null }, CONTEXT);
    expect(email).toContain('Type the unlock code from your email, then choose a new passcode');
    expect(email).not.toContain('text message');
    // A bot from before the channel was sent: email, as before.
    const older = renderPage({ state: 'awaiting_unlock', codeExpiresAt: WINTER, error: null }, CONTEXT);
    expect(older).toContain('Type the unlock code from your email, then choose a new passcode');
  });

  it('the pairing screen says until when the pairing code works, with the zone', () => {
    const html = renderPage({ state: 'pairing', userCode: 'K7QF-M2XD', expiresAt: WINTER }, CONTEXT);
    expect(html).toContain(`The code works until ${clockTime(WINTER)}.`);
  });
});
