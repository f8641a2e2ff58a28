/**
 * Settings of the SMS carrier (issue #14): the local outbox (the demo's default) or GOV.UK Notify. Read from the
 * environment once at start-up, validated with zod, typed, and refused with a message naming the variable
 * (STYLE.md 13). The API key is a secret: it is held in a {@link SecretValue} and never printed.
 *
 * This module does not load the Notify client, so the bot's configuration can use it without loading it.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { SecretValue } from '../mail/graph/graph-mail.config';

/** Defaults: GOV.UK Notify's production API. */
export const NOTIFY_DEFAULTS = {
  baseUrl: 'https://api.notifications.service.gov.uk',
  maxRetries: 3,
  maxRetryWaitSeconds: 30,
  requestTimeoutSeconds: 15,
} as const;

/** The parts of a GOV.UK Notify API key, `{key name}-{service id}-{secret}` (both ids are UUIDs). */
export interface NotifyApiKey {
  /** The whole key, as the client takes it. */
  key: SecretValue;
  /** The service id (UUID): the `iss` of every token the client signs. Not secret. */
  serviceId: string;
  /** The key's name as given in Notify's dashboard (not secret). */
  name: string;
}

/** The typed SMS settings. */
export type NotifyConfig =
  | { transport: 'outbox' }
  | {
      transport: 'notify';
      apiKey: NotifyApiKey;
      /** Template ids (UUIDs) per channel for the unlock code; email is optional. */
      templates: { sms: { unlock_code: string }; email: { unlock_code?: string } };
      /** API origin, e.g. `https://api.notifications.service.gov.uk`. */
      baseUrl: string;
      /** Retries of one send after 429 or 5xx or no answer. */
      maxRetries: number;
      /** Longest wait before one retry, seconds; a longer Retry-After ends the send. */
      maxRetryWaitSeconds: number;
      /** Time limit of one HTTP attempt, seconds. */
      requestTimeoutSeconds: number;
    };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** `{name}-{service id}-{secret}`: the client reads the last 36 characters as the secret, the 36 before as the service. */
const API_KEY = /^(.+)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/i;

/**
 * Split a GOV.UK Notify API key into its parts.
 *
 * @param key - `{key name}-{service id}-{secret}`, as copied from Notify's API integration page
 * @returns the parts, or null when the key does not have that form
 */
export function parseNotifyApiKey(key: string): NotifyApiKey | null {
  const m = API_KEY.exec(key.trim());
  if (!m) return null;
  return { key: new SecretValue(key.trim()), name: m[1]!, serviceId: m[2]!.toLowerCase() };
}

const intIn = (min: number, max: number) =>
  z.coerce
    .number({ error: `must be a whole number from ${min} to ${max}` })
    .int({ error: `must be a whole number from ${min} to ${max}` })
    .min(min, { error: `must be a whole number from ${min} to ${max}` })
    .max(max, { error: `must be a whole number from ${min} to ${max}` });

/** An API origin: https (or http to this computer only, for a local stand-in), no path, query or credentials; returns the origin. */
const httpsOrigin = z
  .string()
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        const scheme = u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK.test(u.hostname));
        return scheme && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username && !u.password;
      } catch {
        return false;
      }
    },
    { error: 'must be an https URL with no path, e.g. https://api.notifications.service.gov.uk (http only to 127.0.0.1 or localhost)' },
  )
  .transform((s) => new URL(s).origin);

const templateIdError = (what: string) => ({ error: `must be the ${what} template's id (a UUID from Notify's Templates page)` });

const NotifyEnvSchema = z
  .object({
    SMS_TRANSPORT: z.enum(['outbox', 'notify'], { error: 'must be outbox or notify' }).default('outbox'),
    NOTIFY_API_KEY: z.string().optional(),
    NOTIFY_API_KEY_FILE: z.string().min(1).optional(),
    NOTIFY_SMS_TEMPLATE_ID: z.string().regex(UUID, templateIdError('text message')).optional(),
    NOTIFY_EMAIL_TEMPLATE_ID: z.string().regex(UUID, templateIdError('email')).optional(),
    NOTIFY_BASE_URL: httpsOrigin.default(NOTIFY_DEFAULTS.baseUrl),
    NOTIFY_MAX_RETRIES: intIn(0, 5).default(NOTIFY_DEFAULTS.maxRetries),
    NOTIFY_MAX_RETRY_WAIT_SECONDS: intIn(1, 120).default(NOTIFY_DEFAULTS.maxRetryWaitSeconds),
    NOTIFY_REQUEST_TIMEOUT_SECONDS: intIn(1, 120).default(NOTIFY_DEFAULTS.requestTimeoutSeconds),
  })
  .transform((e, ctx): NotifyConfig => {
    if (e.SMS_TRANSPORT === 'outbox') return { transport: 'outbox' };
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (e.NOTIFY_API_KEY !== undefined && e.NOTIFY_API_KEY_FILE !== undefined) issue('NOTIFY_API_KEY_FILE', 'set NOTIFY_API_KEY or NOTIFY_API_KEY_FILE, not both');
    let raw = e.NOTIFY_API_KEY;
    if (raw === undefined && e.NOTIFY_API_KEY_FILE !== undefined) {
      try {
        raw = readFileSync(e.NOTIFY_API_KEY_FILE, 'utf8').split(/\r?\n/)[0]!.trim();
        if (!raw) issue('NOTIFY_API_KEY_FILE', 'the file is empty');
      } catch (err) {
        issue('NOTIFY_API_KEY_FILE', `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    } else if (raw === undefined) {
      issue('NOTIFY_API_KEY', 'is missing: set NOTIFY_API_KEY or NOTIFY_API_KEY_FILE for SMS_TRANSPORT=notify');
    }
    const apiKey = raw ? parseNotifyApiKey(raw) : null;
    if (raw && !apiKey) {
      issue(e.NOTIFY_API_KEY !== undefined ? 'NOTIFY_API_KEY' : 'NOTIFY_API_KEY_FILE', 'is not a GOV.UK Notify API key: expected {key name}-{service id}-{secret id}, as shown once when the key was created');
    }
    if (e.NOTIFY_SMS_TEMPLATE_ID === undefined) issue('NOTIFY_SMS_TEMPLATE_ID', 'is missing: set the id of the unlock-code text message template for SMS_TRANSPORT=notify');
    if (!apiKey || !e.NOTIFY_SMS_TEMPLATE_ID) return z.NEVER;
    return {
      transport: 'notify',
      apiKey,
      templates: { sms: { unlock_code: e.NOTIFY_SMS_TEMPLATE_ID }, email: e.NOTIFY_EMAIL_TEMPLATE_ID ? { unlock_code: e.NOTIFY_EMAIL_TEMPLATE_ID } : {} },
      baseUrl: e.NOTIFY_BASE_URL,
      maxRetries: e.NOTIFY_MAX_RETRIES,
      maxRetryWaitSeconds: e.NOTIFY_MAX_RETRY_WAIT_SECONDS,
      requestTimeoutSeconds: e.NOTIFY_REQUEST_TIMEOUT_SECONDS,
    };
  });

/**
 * Validate the SMS settings in an environment.
 *
 * @param env - usually `process.env`; empty values count as unset; only `SMS_TRANSPORT` and `NOTIFY_*` are read
 * @returns the typed settings
 * @throws AppError `CONFIG.INVALID` whose message names every offending variable and why (never a value)
 */
export function loadNotifyConfig(env: Record<string, string | undefined>): NotifyConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => (k === 'SMS_TRANSPORT' || k.startsWith('NOTIFY_')) && v !== undefined && v !== ''));
  const parsed = NotifyEnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(environment)'}: ${i.message}`);
    throw new AppError('CONFIG.INVALID', `Invalid SMS configuration:\n  ${lines.join('\n  ')}`, {
      meta: { settings: parsed.error.issues.map((i) => i.path.map(String).join('.')).join(',') },
    });
  }
  return parsed.data;
}
