/**
 * Contract tests of the notify port's email channel: the real `notifications-node-client`, unchanged, POSTs
 * `/v2/notifications/email` to the local Notify v2 fake, which checks the JWT and the body as Notify does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NotifySendFailedError } from '../../bot/notify/notify.port';
import { startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';

let f: NotifyContractFixture;

beforeAll(async () => {
  f = await startNotifyContractFixture();
});
afterAll(async () => {
  await f?.fake.stop();
});
beforeEach(() => {
  f.fake.reset();
  f.logs.length = 0;
});

describe('GOV.UK Notify emails: the real client against the Notify v2 contract', () => {
  it('POSTs /v2/notifications/email with the address, email template id, personalisation and reference; 201 with the subject filled', async () => {
    const message = f.message('email');
    const result = await f.adapter().send(message);

    const reqs = f.fake.notificationRequests();
    expect(reqs).toHaveLength(1);
    expect(reqs[0]!.path).toBe('/v2/notifications/email');
    expect(reqs[0]!.jwt?.claims['iss']).toBe(f.key.serviceId);
    expect(reqs[0]!.body).toEqual({
      email_address: 'alex.morgan@nhs.net',
      template_id: f.emailTemplateId,
      personalisation: message.personalisation,
      reference: message.id,
    });
    const body = reqs[0]!.responseBody as { id: string; content: { subject: string; body: string; from_email: string }; template: { id: string } };
    expect(body.content.subject).toBe('Your smartcard unlock code');
    expect(body.content.body).toContain(message.personalisation.code);
    expect(body.template.id).toBe(f.emailTemplateId);
    expect(result).toEqual({ status: 'sent', notificationId: body.id, reference: message.id });
    for (const line of f.logs) {
      expect(line).not.toContain(message.personalisation.code);
      expect(line).not.toContain('alex.morgan');
    }
  });

  it('an SMS template id given for email: 400 BadRequestError, not retried', async () => {
    const err = await f
      .adapter({ NOTIFY_EMAIL_TEMPLATE_ID: f.smsTemplateId })
      .send(f.message('email'))
      .then(() => null, (e: unknown) => e as NotifySendFailedError);
    expect(err).toBeInstanceOf(NotifySendFailedError);
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(err!.meta).toMatchObject({ reason: 'rejected', retryable: false, status: 400, notifyError: 'BadRequestError' });
    expect(err!.message).toContain('sms template is not suitable for email notification');
  });

  it('no email template configured: refused before any request, naming the setting', async () => {
    const err = await f
      .adapter({ NOTIFY_EMAIL_TEMPLATE_ID: undefined })
      .send(f.message('email'))
      .then(() => null, (e: unknown) => e as NotifySendFailedError);
    expect(err).toBeInstanceOf(NotifySendFailedError);
    expect(err!.meta).toMatchObject({ reason: 'invalid_message', retryable: false });
    expect(err!.message).toContain('NOTIFY_EMAIL_TEMPLATE_ID');
    expect(f.fake.requests).toHaveLength(0);
  });

  it('500 Exception then 201: retried once, sent once', async () => {
    f.fake.script({ status: 500, error: 'Exception', message: 'Internal server error' });
    const result = await f.adapter().send(f.message('email'));
    expect(f.fake.notificationRequests().map((r) => r.status)).toEqual([500, 201]);
    expect(f.fake.accepted).toHaveLength(1);
    expect(result.notificationId).toBe(f.fake.accepted[0]!.id);
  });
});
