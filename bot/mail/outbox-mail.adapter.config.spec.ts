import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { loadOutboxRetentionConfig, OUTBOX_RETENTION_DEFAULTS } from './outbox-mail.adapter.config';

describe('loadOutboxRetentionConfig', () => {
  it('defaults to 72 h, 50,000 messages, every 15 minutes (empty counts as unset)', () => {
    const expected = { maxAgeMs: 72 * 3_600_000, maxFiles: 50_000, intervalMs: 15 * 60_000 };
    expect(loadOutboxRetentionConfig({})).toEqual(expected);
    expect(loadOutboxRetentionConfig({ OUTBOX_MAX_AGE_HOURS: ' ', OUTBOX_MAX_FILES: '' })).toEqual(expected);
    expect(OUTBOX_RETENTION_DEFAULTS.maxFiles).toBe(50_000);
  });

  it('reads values, 0 turning a limit off', () => {
    expect(loadOutboxRetentionConfig({ OUTBOX_MAX_AGE_HOURS: '0', OUTBOX_MAX_FILES: '0', OUTBOX_PRUNE_INTERVAL_MINUTES: '1' })).toEqual({ maxAgeMs: null, maxFiles: null, intervalMs: 60_000 });
    expect(loadOutboxRetentionConfig({ OUTBOX_MAX_AGE_HOURS: '24', OUTBOX_MAX_FILES: ' 1000 ' })).toMatchObject({ maxAgeMs: 86_400_000, maxFiles: 1000 });
  });

  it.each([
    ['OUTBOX_MAX_AGE_HOURS', '87601', /at most 87600/],
    ['OUTBOX_MAX_FILES', '-5', /at least 0/],
    ['OUTBOX_PRUNE_INTERVAL_MINUTES', '1441', /at most 1440/],
    ['OUTBOX_PRUNE_INTERVAL_MINUTES', 'often', /whole number of minutes/],
  ])('refuses %s=%s naming the setting', (name, value, reason) => {
    let err: unknown;
    try {
      loadOutboxRetentionConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    expect((err as AppError).message).toMatch(new RegExp(`^${name}: `));
    expect((err as AppError).message).toMatch(reason);
  });
});
