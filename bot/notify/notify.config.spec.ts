import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { loadNotifyConfig, parseNotifyApiKey } from './notify.config';

const SERVICE = '26785a09-ab16-4eb0-8407-a37497a57506';
const SECRET = '3d844edf-8d35-48ac-975b-e847b4f122b0';
const KEY = `smartcard_assist_live-${SERVICE}-${SECRET}`;
const TEMPLATE = 'f33517ff-2a88-4f6e-b855-c550268ce08a';
const NOTIFY = { SMS_TRANSPORT: 'notify', NOTIFY_API_KEY: KEY, NOTIFY_SMS_TEMPLATE_ID: TEMPLATE };

function refusal(env: Record<string, string | undefined>): string {
  try {
    loadNotifyConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    return (err as AppError).message;
  }
  throw new Error('accepted');
}

describe('GOV.UK Notify API key', () => {
  it('splits {name}-{service id}-{secret} as the client does (the secret is the last 36 characters)', () => {
    const k = parseNotifyApiKey(KEY)!;
    expect(k.serviceId).toBe(SERVICE);
    expect(k.name).toBe('smartcard_assist_live');
    expect(k.key.reveal()).toBe(KEY);
    // The key never prints itself.
    expect(JSON.stringify(k)).not.toContain(SECRET);
    expect(inspect(k)).not.toContain(SECRET);
    expect(`${k.key}`).toBe('[redacted]');
  });

  it('refuses what is not a key: no name, one id, a non-hex secret', () => {
    expect(parseNotifyApiKey(`${SERVICE}-${SECRET}`)).toBeNull();
    expect(parseNotifyApiKey(`name-${SECRET}`)).toBeNull();
    expect(parseNotifyApiKey(`name-${SERVICE}-${SECRET.replace(/[0-9a-f]$/, 'z')}`)).toBeNull();
  });
});

describe('SMS settings', () => {
  it('defaults to the local outbox and needs nothing else', () => {
    expect(loadNotifyConfig({})).toEqual({ transport: 'outbox' });
    expect(loadNotifyConfig({ SMS_TRANSPORT: '' })).toEqual({ transport: 'outbox' });
  });

  it('builds the Notify settings with defaults', () => {
    const c = loadNotifyConfig(NOTIFY);
    expect(c).toMatchObject({
      transport: 'notify',
      templates: { sms: { unlock_code: TEMPLATE }, email: {} },
      baseUrl: 'https://api.notifications.service.gov.uk',
      maxRetries: 3,
      maxRetryWaitSeconds: 30,
      requestTimeoutSeconds: 15,
    });
    if (c.transport === 'notify') expect(c.apiKey.serviceId).toBe(SERVICE);
  });

  it('reads the key from NOTIFY_API_KEY_FILE (first line), and refuses both at once', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'notify-key-'));
    const file = path.join(dir, 'notify.key');
    writeFileSync(file, `${KEY}\n`);
    const c = loadNotifyConfig({ ...NOTIFY, NOTIFY_API_KEY: undefined, NOTIFY_API_KEY_FILE: file });
    expect(c.transport === 'notify' && c.apiKey.key.reveal()).toBe(KEY);
    expect(refusal({ ...NOTIFY, NOTIFY_API_KEY_FILE: file })).toMatch(/NOTIFY_API_KEY_FILE: set NOTIFY_API_KEY or NOTIFY_API_KEY_FILE, not both/);
    writeFileSync(file, '\n');
    expect(refusal({ ...NOTIFY, NOTIFY_API_KEY: undefined, NOTIFY_API_KEY_FILE: file })).toMatch(/NOTIFY_API_KEY_FILE: the file is empty/);
  });

  it('takes http:// only for this computer (a local stand-in), never a path', () => {
    expect(loadNotifyConfig({ ...NOTIFY, NOTIFY_BASE_URL: 'http://127.0.0.1:8085' })).toMatchObject({ baseUrl: 'http://127.0.0.1:8085' });
    expect(loadNotifyConfig({ ...NOTIFY, NOTIFY_BASE_URL: 'http://localhost:8085/' })).toMatchObject({ baseUrl: 'http://localhost:8085' });
    expect(refusal({ ...NOTIFY, NOTIFY_BASE_URL: 'http://10.0.0.5:8085' })).toMatch(/NOTIFY_BASE_URL: must be an https URL/);
    expect(refusal({ ...NOTIFY, NOTIFY_BASE_URL: 'https://api.notifications.service.gov.uk/v2' })).toMatch(/NOTIFY_BASE_URL: must be an https URL with no path/);
  });

  it('names every missing setting at once, and never prints the key', () => {
    const message = refusal({ SMS_TRANSPORT: 'notify', NOTIFY_API_KEY: `${SECRET}-oops` });
    expect(message).toMatch(/NOTIFY_API_KEY: is not a GOV\.UK Notify API key/);
    expect(message).toMatch(/NOTIFY_SMS_TEMPLATE_ID: is missing/);
    expect(message).not.toContain(SECRET);
  });
});
