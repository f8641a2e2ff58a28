import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isE164, NotifySendFailedError, validateNotifyMessage, type NotifyMessage } from './notify.port';

const id = randomUUID();
const good: NotifyMessage = { id, channel: 'sms', kind: 'unlock_code', to: '+447700900123', reference: id, personalisation: { code: '73920584', minutes: '15', expires_at: '09:45 GMT' } };

function refusal(m: unknown): NotifySendFailedError {
  try {
    validateNotifyMessage(m as NotifyMessage);
  } catch (err) {
    expect(err).toBeInstanceOf(NotifySendFailedError);
    return err as NotifySendFailedError;
  }
  throw new Error('accepted');
}

describe('notify messages', () => {
  it('E.164: a plus, a country code, 8-15 digits', () => {
    expect(isE164('+447700900123')).toBe(true);
    expect(isE164('07700900123')).toBe(false);
    expect(isE164('+44 7700 900123')).toBe(false);
    expect(isE164('+0447700900123')).toBe(false);
    expect(isE164('+1234567')).toBe(false);
  });

  it('accepts a well-formed SMS and email message', () => {
    expect(validateNotifyMessage(good)).toBe(good);
    expect(validateNotifyMessage({ ...good, channel: 'email', to: 'alex.morgan@nhs.net' })).toBeTruthy();
  });

  it('refuses a bad number, naming the field and never the value; not retryable', () => {
    const err = refusal({ ...good, to: '07700 900123' });
    expect(err.message).toBe('Notify message refused: to is not a mobile number in E.164 form (+447700900123)');
    expect(err.meta).toMatchObject({ reason: 'invalid_message', retryable: false, channel: 'sms', kind: 'unlock_code', messageId: id });
    expect(err.message).not.toContain('900123 ');
  });

  it('refuses a reference that holds the code, a short code, and an unknown channel, never printing the code', () => {
    const withCode = refusal({ ...good, reference: `unlock-73920584` });
    expect(withCode.message).toContain('reference must not contain the code');
    expect(withCode.message).not.toContain('73920584');
    expect(refusal({ ...good, personalisation: { ...good.personalisation, code: '123' } }).message).toContain('personalisation.code must be 6-12 digits');
    expect(refusal({ ...good, channel: 'fax' }).message).toContain('channel must be one of sms, email');
    expect(refusal({ ...good, channel: 'email' }).message).toContain('to is not a valid email address');
  });
});
