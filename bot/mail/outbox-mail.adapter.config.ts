/**
 * Retention of the mail outbox (issue #15), also applied to the SMS outbox (bot/main.ts): how long sent files stay, how many are kept,
 * and how often the prune job runs. Read once at start-up; a bad value is refused naming the setting.
 *
 * - `OUTBOX_MAX_AGE_HOURS`: remove messages older than this (0 = no age limit); default 72.
 * - `OUTBOX_MAX_FILES`: keep at most this many messages, removing the oldest (0 = no count limit); default 50,000.
 * - `OUTBOX_PRUNE_INTERVAL_MINUTES`: minutes between prune runs (1-1440); default 15.
 *
 * Pure: reads only the environment object it is given.
 */
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import type { OutboxRetention } from './outbox-mail.adapter';

/** Defaults: 72 hours covers a weekend of relay downtime; 50,000 is about 5 peak hours of unlock mail. */
export const OUTBOX_RETENTION_DEFAULTS = { maxAgeHours: 72, maxFiles: 50_000, pruneIntervalMinutes: 15 } as const;

const wholeNumber = (min: number, max: number, what: string) =>
  z.coerce
    .number({ error: `must be a whole number of ${what}` })
    .int(`must be a whole number of ${what}`)
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const SETTINGS = {
  OUTBOX_MAX_AGE_HOURS: wholeNumber(0, 87_600, 'hours (0 = no age limit)').default(OUTBOX_RETENTION_DEFAULTS.maxAgeHours),
  OUTBOX_MAX_FILES: wholeNumber(0, 10_000_000, 'messages (0 = no count limit)').default(OUTBOX_RETENTION_DEFAULTS.maxFiles),
  OUTBOX_PRUNE_INTERVAL_MINUTES: wholeNumber(1, 1440, 'minutes').default(OUTBOX_RETENTION_DEFAULTS.pruneIntervalMinutes),
} as const;

/**
 * Read the outbox retention settings.
 *
 * @param env - usually `process.env`; an empty value counts as unset
 * @returns `{ maxAgeMs, maxFiles, intervalMs }` for `OutboxMailAdapter`'s `retention`; a limit set to 0 becomes null
 * @throws AppError `CONFIG.INVALID` naming the first wrong setting and what is wrong
 */
export function loadOutboxRetentionConfig(env: Record<string, string | undefined>): OutboxRetention {
  const values: Record<string, number> = {};
  for (const [name, schema] of Object.entries(SETTINGS)) {
    const raw = env[name]?.trim();
    const parsed = schema.safeParse(raw === undefined || raw === '' ? undefined : raw);
    if (!parsed.success) throw new AppError('CONFIG.INVALID', `${name}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    values[name] = parsed.data;
  }
  const hours = values['OUTBOX_MAX_AGE_HOURS']!;
  const files = values['OUTBOX_MAX_FILES']!;
  return {
    maxAgeMs: hours === 0 ? null : hours * 3_600_000,
    maxFiles: files === 0 ? null : files,
    intervalMs: values['OUTBOX_PRUNE_INTERVAL_MINUTES']! * 60_000,
  };
}
