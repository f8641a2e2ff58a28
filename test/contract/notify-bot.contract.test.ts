/**
 * The real bot (`startBot`, embedded store, outbox mail, no app id) with `SMS_TRANSPORT=notify` against the local
 * GOV.UK Notify fake: start-up checks the key and the template through the real client, and a template id Notify
 * does not know stops start-up naming the setting. With the default settings the bot uses the SMS outbox.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { createLogger } from '../../common/logger';
import { loadConfig } from '../../bot/config';
import { startBot } from '../../bot/main';
import { startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';

let f: NotifyContractFixture;
let root = '';
const masterKey = randomBytes(32).toString('base64');
const logger = createLogger({ name: 'bot', level: 'silent' });

beforeAll(async () => {
  f = await startNotifyContractFixture();
  root = await mkdtemp(path.join(tmpdir(), 'notify-bot-'));
});
afterAll(async () => {
  await f?.fake.stop();
  if (root) await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  f.fake.reset();
});

function config(env: Record<string, string>) {
  return loadConfig({ SMARTCARD_DATA_DIR: path.join(root, randomUUID()), SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env });
}

describe('the bot with GOV.UK Notify', () => {
  it('SMS_TRANSPORT=notify: start-up reads the configured templates from Notify with a signed request, and sends nothing', async () => {
    const app = await startBot(config(f.env()), { logger });
    try {
      expect(app.config.sms.transport).toBe('notify');
      expect(f.fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([`GET /v2/template/${f.smsTemplateId} 200`, `GET /v2/template/${f.emailTemplateId} 200`]);
      expect(f.fake.requests[0]!.jwt?.claims['iss']).toBe(f.key.serviceId);
      expect(f.fake.accepted).toHaveLength(0);
    } finally {
      await app.close();
    }
  });

  it('a template id Notify does not know stops start-up, naming NOTIFY_SMS_TEMPLATE_ID', async () => {
    const err = await startBot(config(f.env({ NOTIFY_SMS_TEMPLATE_ID: '00000000-0000-4000-8000-000000000000', NOTIFY_EMAIL_TEMPLATE_ID: undefined })), { logger }).then(
      async (app) => {
        await app.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    expect((err as AppError).message).toMatch(/^NOTIFY_SMS_TEMPLATE_ID: /);
  });

  it('by default the bot keeps text messages in the SMS outbox and never calls Notify', async () => {
    const app = await startBot(config({}), { logger });
    try {
      expect(app.config.sms).toEqual({ transport: 'outbox', outboxDir: path.join(app.config.dataDir, 'sms-outbox') });
      expect(f.fake.requests).toHaveLength(0);
    } finally {
      await app.close();
    }
  });
});
