/**
 * Contract tests: the GOV.UK Notify adapter with the real `notifications-node-client`, unchanged, against a local
 * server speaking Notify's v2 API (test/support/notify-fake). The fake checks the JWT the client signs (issuer =
 * service id, HS256 with the key's secret) and the request body as Notify does, and records what arrived; the
 * tests assert on that, on what the adapter returned or threw, and that no code, number, key or token reaches a
 * log line or an error.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AppError } from '../../common/app-error';
import { NotifySendFailedError, type NotifyMessage, type NotifySendResult } from '../../bot/notify/notify.port';
import { createNotifyTestKey, NOTIFY_ERRORS } from '../support/notify-fake/notify-fake.server';
import { SMS_TEMPLATE_BODY, startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';

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

/** What `send` settled with: the result, or the NotifySendFailedError. */
async function settle(p: Promise<NotifySendResult>): Promise<{ ok: true; value: NotifySendResult } | { ok: false; error: NotifySendFailedError }> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    expect(err).toBeInstanceOf(NotifySendFailedError);
    return { ok: false, error: err as NotifySendFailedError };
  }
}

/** No secret of the message, the key, or any token the client sent, in the logs or the error. */
function expectNothingSecretIn(message: NotifyMessage, error?: AppError): void {
  const tokens = f.fake.requests.map((r) => (r.headers['authorization'] ?? '').replace(/^Bearer /, '')).filter(Boolean);
  const secrets = [message.personalisation.code, message.to, message.to.replace(/^\+44/, '0'), f.key.apiKey, f.key.secret, ...tokens];
  const texts = [...f.logs, ...(error ? [error.message, JSON.stringify(error.toJSON()), JSON.stringify(error.meta)] : [])];
  for (const s of secrets) for (const t of texts) expect(t, 'a secret reached a log line or the error').not.toContain(s);
}

describe('GOV.UK Notify text messages: the real client against the Notify v2 contract', () => {
  it('POSTs /v2/notifications/sms with a JWT signed for the service, the number, template id, personalisation and reference; 201 counts as sent', async () => {
    const adapter = f.adapter();
    const message = f.message('sms');

    const result = await adapter.send(message);

    const [req] = f.fake.notificationRequests();
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(req!.path).toBe('/v2/notifications/sms');
    expect(req!.headers['content-type']).toMatch(/^application\/json\b/);
    expect(req!.headers['user-agent']).toBe('NOTIFY-API-NODE-CLIENT/8.4.0');
    // The fake verified the signature with the key's secret (HS256) and the issuer before answering.
    expect(req!.jwt?.header).toMatchObject({ alg: 'HS256', typ: 'JWT' });
    expect(req!.jwt?.claims['iss']).toBe(f.key.serviceId);
    expect(req!.body).toEqual({
      phone_number: '+447700900123',
      template_id: f.smsTemplateId,
      personalisation: { code: message.personalisation.code, minutes: '15', expires_at: '09:45 GMT' },
      reference: message.id,
    });
    expect(req!.status).toBe(201);
    const [accepted] = f.fake.accepted;
    expect(accepted!.body).toBe(SMS_TEMPLATE_BODY.replace('((code))', message.personalisation.code).replace('((minutes))', '15').replace('((expires_at))', '09:45 GMT'));
    expect(result).toEqual({ status: 'sent', notificationId: accepted!.id, reference: message.id });
    const line = f.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'text message accepted by GOV.UK Notify');
    expect(line).toMatchObject({ messageId: message.id, notificationId: accepted!.id, reference: message.id, status: 201, attempts: 1, channel: 'sms', kind: 'unlock_code' });
    expectNothingSecretIn(message);
  });

  it('sends once per message id: a repeat returns the first result without calling Notify', async () => {
    const adapter = f.adapter();
    const message = f.message('sms');
    const [a, b] = await Promise.all([adapter.send(message), adapter.send(message)]);
    const c = await adapter.send(message);
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('400 ValidationError (not a UK mobile) is not retried; the error names the status and type, never the number', async () => {
    const adapter = f.adapter();
    const message = f.message('sms', { to: '+441134960000' });
    const r = await settle(adapter.send(message));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(f.fake.requests[0]!.responseBody).toEqual({ status_code: 400, errors: [{ error: 'ValidationError', message: 'phone_number Not a UK mobile number' }] });
    expect(f.fake.accepted).toHaveLength(0);
    expect(r.error.code).toBe('NOTIFY.SEND_FAILED');
    expect(r.error.meta).toMatchObject({ reason: 'rejected', retryable: false, status: 400, notifyError: 'ValidationError', attempts: 1, channel: 'sms', messageId: message.id });
    expect(r.error.message).toContain('400 ValidationError: phone_number Not a UK mobile number');
    expectNothingSecretIn(message, r.error);
  });

  it('400 BadRequestError (a template id Notify does not know) is not retried', async () => {
    const adapter = f.adapter({ NOTIFY_SMS_TEMPLATE_ID: '00000000-0000-4000-8000-000000000000' });
    const message = f.message('sms');
    const r = await settle(adapter.send(message));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(r.error.meta).toMatchObject({ reason: 'rejected', retryable: false, status: 400, notifyError: 'BadRequestError' });
    expect(r.error.message).toContain('Template not found');
    expectNothingSecretIn(message, r.error);
  });

  it('403 AuthError for a key whose secret Notify does not hold (bad signature) is not retried', async () => {
    const wrong = createNotifyTestKey();
    const adapter = f.adapter({ NOTIFY_API_KEY: `smartcard_assist_contract-${f.key.serviceId}-${wrong.secret}` });
    const message = f.message('sms');
    const r = await settle(adapter.send(message));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(f.fake.requests[0]!.jwt).toBeNull();
    expect(f.fake.requests[0]!.responseBody).toEqual({ status_code: 403, errors: [{ error: 'AuthError', message: 'Invalid token: API key not found' }] });
    expect(r.error.meta).toMatchObject({ reason: 'auth', retryable: false, status: 403, notifyError: 'AuthError', attempts: 1 });
    expect(f.fake.accepted).toHaveLength(0);
    for (const t of [...f.logs, r.error.message]) expect(t).not.toContain(wrong.secret);
    expectNothingSecretIn(message, r.error);
  });

  it('403 AuthError for a token issued by another service (iss)', async () => {
    const other = createNotifyTestKey();
    const adapter = f.adapter({ NOTIFY_API_KEY: `smartcard_assist_contract-${other.serviceId}-${f.key.secret}` });
    const r = await settle(adapter.send(f.message('sms')));
    expect(r.ok).toBe(false);
    expect(f.fake.requests[0]!.responseBody).toEqual({ status_code: 403, errors: [{ error: 'AuthError', message: 'Invalid token: service not found' }] });
    expect(f.fake.notificationRequests()).toHaveLength(1);
  });

  it('403 AuthError when the client\'s clock is 2 minutes off (the token\'s iat), not retried', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() - 120_000);
      const r = await settle(f.adapter().send(f.message('sms')));
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.message).toContain('Your system clock must be accurate to within 30 seconds');
      expect(f.fake.notificationRequests()).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('429 RateLimitError with Retry-After: 1 waits that second, then sends on the next 201', async () => {
    f.fake.script({ ...NOTIFY_ERRORS.rateLimit, headers: { 'retry-after': '1' } });
    const message = f.message('sms');
    const result = await f.adapter().send(message);
    const reqs = f.fake.notificationRequests();
    expect(reqs.map((r) => r.status)).toEqual([429, 201]);
    expect(reqs[1]!.receivedAt - reqs[0]!.receivedAt).toBeGreaterThanOrEqual(990);
    // The same request again (a fresh token), not a changed one.
    expect(JSON.parse(reqs[1]!.bodyText)).toEqual(JSON.parse(reqs[0]!.bodyText));
    expect(result.notificationId).toBe(f.fake.accepted[0]!.id);
    const retry = f.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'GOV.UK Notify send failed; retrying');
    expect(retry).toMatchObject({ status: 429, notifyError: 'RateLimitError', attempt: 1, waitMs: 1000 });
    expectNothingSecretIn(message);
  });

  it('500 then 503 then 201: retried with back-off, sent once', async () => {
    f.fake.script(NOTIFY_ERRORS.server, { status: 503, error: 'Exception', message: 'Service unavailable' });
    const result = await f.adapter().send(f.message('sms'));
    expect(f.fake.notificationRequests().map((r) => r.status)).toEqual([500, 503, 201]);
    expect(f.fake.accepted).toHaveLength(1);
    expect(result.status).toBe('sent');
  });

  it('500 on every attempt: gives up after NOTIFY_MAX_RETRIES retries with a retryable provider failure', async () => {
    f.fake.script({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
    const message = f.message('sms');
    const r = await settle(f.adapter({ NOTIFY_MAX_RETRIES: '2' }).send(message));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(3);
    expect(r.error.meta).toMatchObject({ reason: 'provider', retryable: true, status: 500, notifyError: 'Exception', attempts: 3 });
    expect(r.error.message).toContain('after 3 attempts');
    expectNothingSecretIn(message, r.error);
  });

  it('429 with a Retry-After longer than NOTIFY_MAX_RETRY_WAIT_SECONDS ends the send at once (retryable)', async () => {
    f.fake.script({ ...NOTIFY_ERRORS.rateLimit, headers: { 'retry-after': '60' } });
    const started = Date.now();
    const r = await settle(f.adapter({ NOTIFY_MAX_RETRY_WAIT_SECONDS: '5' }).send(f.message('sms')));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(r.error.meta).toMatchObject({ reason: 'rate_limited', retryable: true, status: 429 });
    expect(r.error.message).toContain('Retry-After asked for 60 s');
  });

  it('429 TooManyRequestsError (the daily limit) is not retried', async () => {
    f.fake.script(NOTIFY_ERRORS.dailyLimit);
    const r = await settle(f.adapter().send(f.message('sms')));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(r.error.meta).toMatchObject({ reason: 'rate_limited', retryable: false, notifyError: 'TooManyRequestsError' });
  });

  it('a dropped connection (no answer) is retried', async () => {
    f.fake.script({ drop: true });
    const result = await f.adapter().send(f.message('sms'));
    expect(f.fake.notificationRequests().map((r) => r.status)).toEqual([0, 201]);
    expect(result.status).toBe('sent');
  });

  it('no server at all: a network failure after the retries, naming the error code', async () => {
    const closed = f.adapter({ NOTIFY_BASE_URL: 'http://127.0.0.1:9', NOTIFY_MAX_RETRIES: '1' });
    const message = f.message('sms');
    const r = await settle(closed.send(message));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.meta).toMatchObject({ reason: 'network', retryable: true, attempts: 2, notifyError: 'ECONNREFUSED' });
    expect(r.error.message).toContain('did not answer (ECONNREFUSED)');
    expectNothingSecretIn(message, r.error);
  });

  it('only 201 counts: a 200 with a notification-shaped body is not a send, and is not retried', async () => {
    f.fake.script({ status: 200, body: { id: '4f1d2ac5-52a4-4ba2-b4a4-86a2c4a3f0f1', reference: null, content: { body: 'x', from_number: 'GOVUK' } } });
    const r = await settle(f.adapter().send(f.message('sms')));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(r.error.meta).toMatchObject({ reason: 'provider', retryable: false, status: 200 });
  });
});
