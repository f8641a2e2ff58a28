import { describe, expect, it } from 'vitest';
import { AppError } from '../../../common/app-error';
import { DEFAULT_UNLOCK_RULES } from './unlock.journey';
import { DEFAULT_UNLOCK_POLICY, loadUnlockPolicyConfig, unlockRulesFor } from './unlock-policy.config';

/** The message loadUnlockPolicyConfig refuses `env` with (fails the test when it accepts it). */
function refusal(env: Record<string, string>): string {
  try {
    loadUnlockPolicyConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    return (err as AppError).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('unlock policy settings (issue #14)', () => {
  it('defaults to the questions policy with 8-digit, single-use, 15-minute codes, 5 tries, 3 an hour', () => {
    const c = loadUnlockPolicyConfig({});
    expect(c).toEqual(DEFAULT_UNLOCK_POLICY);
    expect(c).toMatchObject({ policy: 'questions', codeDigits: 8, singleUse: true, codeTtlMinutes: 15, maxCodeTries: 5, maxCodesPerHour: 3, channels: ['email', 'sms'] });
    // Empty values count as unset.
    expect(loadUnlockPolicyConfig({ UNLOCK_POLICY: '', UNLOCK_CODE_TTL_MINUTES: '' })).toEqual(DEFAULT_UNLOCK_POLICY);
  });

  it('accepts code-only and values inside the bounds, and the journey rules follow them', () => {
    const c = loadUnlockPolicyConfig({ UNLOCK_POLICY: 'code-only', UNLOCK_CODE_TTL_MINUTES: '10', UNLOCK_CODE_MAX_TRIES: '3', UNLOCK_CODES_PER_HOUR: '2', UNLOCK_CODE_CHANNELS: 'sms', UNLOCK_CODE_SINGLE_USE: 'true' });
    expect(c).toMatchObject({ policy: 'code-only', codeTtlMinutes: 10, maxCodeTries: 3, maxCodesPerHour: 2, channels: ['sms'] });
    const rules = unlockRulesFor(c, DEFAULT_UNLOCK_RULES);
    expect(rules).toMatchObject({ policy: 'code-only', codeChannels: ['sms'], codeDigits: 8, codeTtlMs: 600_000, maxCodeTries: 3, maxCodesPerHour: 2 });
    expect(unlockRulesFor(loadUnlockPolicyConfig({}), DEFAULT_UNLOCK_RULES)).toMatchObject({ policy: 'questions', codeChannels: ['email', 'sms'] });
    // Limits the settings do not cover keep the journey's defaults.
    expect(rules.maxAnswerFailures).toBe(DEFAULT_UNLOCK_RULES.maxAnswerFailures);
    expect(rules.unblockWindowMs).toBe(DEFAULT_UNLOCK_RULES.unblockWindowMs);
  });

  it.each([
    [{ UNLOCK_POLICY: 'portal' }, /^UNLOCK_POLICY: must be questions or code-only/],
    [{ UNLOCK_CODE_DIGITS: '5' }, /^UNLOCK_CODE_DIGITS: must be at least 6/],
    [{ UNLOCK_CODE_DIGITS: '4' }, /^UNLOCK_CODE_DIGITS: must be at least 6/],
    [{ UNLOCK_CODE_DIGITS: 'six' }, /^UNLOCK_CODE_DIGITS: must be a whole number/],
    [{ UNLOCK_CODE_DIGITS: '6' }, /^UNLOCK_CODE_DIGITS: must be 8: the companion accepts 8-digit codes/],
    [{ UNLOCK_CODE_DIGITS: '12' }, /^UNLOCK_CODE_DIGITS: must be 8/],
    [{ UNLOCK_CODE_SINGLE_USE: 'false' }, /^UNLOCK_CODE_SINGLE_USE: must be true/],
    [{ UNLOCK_CODE_SINGLE_USE: 'no' }, /^UNLOCK_CODE_SINGLE_USE: must be true/],
    [{ UNLOCK_CODE_TTL_MINUTES: '16' }, /^UNLOCK_CODE_TTL_MINUTES: must be 1 to 15: a code is valid at most 15 minutes/],
    [{ UNLOCK_CODE_TTL_MINUTES: '0' }, /^UNLOCK_CODE_TTL_MINUTES: must be 1 to 15/],
    [{ UNLOCK_CODE_TTL_MINUTES: '7.5' }, /^UNLOCK_CODE_TTL_MINUTES: must be a whole number/],
    [{ UNLOCK_CODE_MAX_TRIES: '6' }, /^UNLOCK_CODE_MAX_TRIES: must be 1 to 5: at most 5 wrong tries/],
    [{ UNLOCK_CODE_MAX_TRIES: '0' }, /^UNLOCK_CODE_MAX_TRIES: must be 1 to 5/],
    [{ UNLOCK_CODES_PER_HOUR: '4' }, /^UNLOCK_CODES_PER_HOUR: must be 1 to 3: at most 3 codes an hour/],
    [{ UNLOCK_CODES_PER_HOUR: '-1' }, /^UNLOCK_CODES_PER_HOUR: must be a whole number/],
    [{ UNLOCK_CODE_CHANNELS: 'email,fax' }, /^UNLOCK_CODE_CHANNELS: "fax" is not a channel/],
    [{ UNLOCK_CODE_CHANNELS: 'sms,sms' }, /^UNLOCK_CODE_CHANNELS: a channel is listed twice/],
    [{ UNLOCK_CODE_CHANNELS: ' , ' }, /^UNLOCK_CODE_CHANNELS: list at least one/],
  ])('refuses %o naming the setting', (env, message) => {
    expect(refusal(env)).toMatch(message);
  });

  it('the bounds themselves are accepted (6 digits refused only for the companion, 15 min, 5 tries, 3 an hour)', () => {
    expect(loadUnlockPolicyConfig({ UNLOCK_CODE_TTL_MINUTES: '15', UNLOCK_CODE_MAX_TRIES: '5', UNLOCK_CODES_PER_HOUR: '3', UNLOCK_CODE_DIGITS: '8' })).toMatchObject({ codeTtlMinutes: 15, maxCodeTries: 5, maxCodesPerHour: 3 });
    expect(loadUnlockPolicyConfig({ UNLOCK_CODE_TTL_MINUTES: '1', UNLOCK_CODE_MAX_TRIES: '1', UNLOCK_CODES_PER_HOUR: '1' })).toMatchObject({ codeTtlMinutes: 1, maxCodeTries: 1, maxCodesPerHour: 1 });
  });
});
