/**
 * Shared set-up of the GOV.UK Notify contract tests: a test API key, the local fake with an SMS and an email
 * template, the real adapter (and through it the real `notifications-node-client`) configured from environment
 * settings as the bot would be, and a captured log.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '../../../common/logger';
import { GovukNotifyAdapter } from '../../../bot/notify/govuk-notify.adapter';
import { loadNotifyConfig } from '../../../bot/notify/notify.config';
import type { NotifyChannel, NotifyMessage } from '../../../bot/notify/notify.port';
import { createNotifyTestKey, NotifyFake } from './notify-fake.server';

export interface NotifyContractFixture {
  fake: NotifyFake;
  key: ReturnType<typeof createNotifyTestKey>;
  smsTemplateId: string;
  emailTemplateId: string;
  /** Every log line written by adapters made with {@link NotifyContractFixture.adapter}. */
  logs: string[];
  /** Environment for the adapter against the fake, with overrides (undefined removes). */
  env(overrides?: Record<string, string | undefined>): Record<string, string>;
  /** A real adapter from `env(overrides)`, logging at trace into `logs`; back-off steps of 10 ms unless given. */
  adapter(overrides?: Record<string, string | undefined>, options?: { backoffBaseMs?: number }): GovukNotifyAdapter;
  /** An unlock-code message with a fresh id and code. */
  message(channel?: NotifyChannel, overrides?: { to?: string }): NotifyMessage;
}

export const SMS_TEMPLATE_BODY = 'Your smartcard unlock code is ((code)). It works once, for ((minutes)) minutes (until ((expires_at))).';

export async function startNotifyContractFixture(): Promise<NotifyContractFixture> {
  const key = createNotifyTestKey();
  const smsTemplateId = randomUUID();
  const emailTemplateId = randomUUID();
  const fake = new NotifyFake({
    serviceId: key.serviceId,
    secret: key.secret,
    templates: [
      { id: smsTemplateId, type: 'sms', name: 'Smartcard unlock code (SMS)', body: SMS_TEMPLATE_BODY },
      { id: emailTemplateId, type: 'email', name: 'Smartcard unlock code (email)', subject: 'Your smartcard unlock code', body: 'Your unlock code is:\n\n((code))\n\nIt works once, for ((minutes)) minutes: until ((expires_at)).' },
    ],
  });
  await fake.start();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const env = (overrides: Record<string, string | undefined> = {}): Record<string, string> => {
    const all: Record<string, string | undefined> = {
      SMS_TRANSPORT: 'notify',
      NOTIFY_API_KEY: key.apiKey,
      NOTIFY_SMS_TEMPLATE_ID: smsTemplateId,
      NOTIFY_EMAIL_TEMPLATE_ID: emailTemplateId,
      NOTIFY_BASE_URL: fake.origin,
      NOTIFY_MAX_RETRIES: '3',
      NOTIFY_MAX_RETRY_WAIT_SECONDS: '5',
      NOTIFY_REQUEST_TIMEOUT_SECONDS: '5',
      ...overrides,
    };
    return Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined));
  };
  return {
    fake,
    key,
    smsTemplateId,
    emailTemplateId,
    logs,
    env,
    adapter(overrides = {}, options = {}) {
      const config = loadNotifyConfig(env(overrides));
      if (config.transport !== 'notify') throw new Error('the fixture builds a notify adapter');
      return new GovukNotifyAdapter({ config, logger: createLogger({ name: 'bot', level: 'trace', destination: sink }), backoffBaseMs: options.backoffBaseMs ?? 10 });
    },
    message(channel = 'sms', overrides = {}) {
      const id = randomUUID();
      const code = String(randomInt(10_000_000, 100_000_000));
      const base = { id, kind: 'unlock_code' as const, reference: id, personalisation: { code, minutes: '15', expires_at: '09:45 GMT' } };
      return channel === 'sms' ? { ...base, channel, to: overrides.to ?? '+447700900123' } : { ...base, channel, to: overrides.to ?? 'alex.morgan@nhs.net' };
    },
  };
}
