/**
 * Contract tests of the GOV.UK Notify adapter's start-up check: it reads each configured template with the real
 * client (`GET /v2/template/{id}`, a signed request that sends nothing), so a refused key or a wrong template id
 * stops start-up naming the setting; Notify being unreachable only warns.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { createNotifyTestKey } from '../support/notify-fake/notify-fake.server';
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

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe('CONFIG.INVALID');
  return err as AppError;
}

describe('GOV.UK Notify start-up check', () => {
  it('reads the SMS and email templates with a token signed for the service, and sends nothing', async () => {
    const checked = await f.adapter().verify();
    expect(checked).toEqual([
      { channel: 'sms', id: f.smsTemplateId, version: 1 },
      { channel: 'email', id: f.emailTemplateId, version: 1 },
    ]);
    expect(f.fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([`GET /v2/template/${f.smsTemplateId} 200`, `GET /v2/template/${f.emailTemplateId} 200`]);
    expect(f.fake.requests.every((r) => r.jwt?.claims['iss'] === f.key.serviceId)).toBe(true);
    expect(f.fake.accepted).toHaveLength(0);
  });

  it('a key Notify refuses (403 AuthError) stops start-up naming NOTIFY_API_KEY, never the key', async () => {
    const wrong = createNotifyTestKey();
    const apiKey = `smartcard_assist_contract-${f.key.serviceId}-${wrong.secret}`;
    const err = await refusal(f.adapter({ NOTIFY_API_KEY: apiKey }).verify());
    expect(err.message).toMatch(/^NOTIFY_API_KEY: GOV\.UK Notify refused the API key \(403 AuthError/);
    expect(err.meta).toMatchObject({ setting: 'NOTIFY_API_KEY', status: 403 });
    expect(err.message).not.toContain(wrong.secret);
    for (const line of f.logs) expect(line).not.toContain(wrong.secret);
  });

  it('a template id Notify does not know stops start-up naming NOTIFY_SMS_TEMPLATE_ID', async () => {
    const err = await refusal(f.adapter({ NOTIFY_SMS_TEMPLATE_ID: '00000000-0000-4000-8000-000000000000' }).verify());
    expect(err.message).toMatch(/^NOTIFY_SMS_TEMPLATE_ID: GOV\.UK Notify has no template with this id/);
    expect(f.fake.requests[0]!.status).toBe(404);
  });

  it('an SMS template given as the email template stops start-up naming NOTIFY_EMAIL_TEMPLATE_ID', async () => {
    const err = await refusal(f.adapter({ NOTIFY_EMAIL_TEMPLATE_ID: f.smsTemplateId }).verify());
    expect(err.message).toBe('NOTIFY_EMAIL_TEMPLATE_ID: the template is a sms template, not an email template');
  });

  it('Notify unreachable: start-up goes on with a warning (sends retry later)', async () => {
    const checked = await f.adapter({ NOTIFY_BASE_URL: 'http://127.0.0.1:9' }).verify();
    expect(checked).toBeNull();
    const warning = f.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'GOV.UK Notify could not be reached at start-up; the templates were not checked');
    expect(warning).toMatchObject({ reason: 'network', notifyError: 'ECONNREFUSED' });
  });
});
