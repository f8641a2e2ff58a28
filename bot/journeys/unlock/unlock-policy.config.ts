/**
 * The unlock policy and its one-time code settings (issue #14), read once at start-up
 * and refused, naming the setting, when a value is outside the safe bounds:
 *
 * - `UNLOCK_POLICY`: `questions` (register, security questions, emailed code: the legacy
 *   national portal; the default) or `code-only` (no registration and no questions: a holder
 *   whose card the card-management import bound to them and whose profile gives an approved
 *   email or a UK mobile gets a code by email or SMS: the national service since September 2023);
 * - codes at least 6 digits and single use; valid at most 15 minutes; at most 5 wrong tries
 *   per code; at most 3 codes an hour per person (issue #14, "Policy setting");
 * - the channels a code-only code may go by (`email`, `sms`).
 *
 * Pure: reads only the environment object it is given.
 */
import { AppError } from '../../../common/app-error';
import type { UnlockRules } from './unlock.journey';

/** The two unlock policies. */
export const UNLOCK_POLICIES = ['questions', 'code-only'] as const;
export type UnlockPolicy = (typeof UNLOCK_POLICIES)[number];

/** Channels a code may be sent by. */
export const CODE_CHANNELS = ['email', 'sms'] as const;
export type CodeChannel = (typeof CODE_CHANNELS)[number];

/**
 * Safe bounds of the code settings (issue #14). The digit count also has to be one the
 * companions accept: the wire protocol's `OneTimeCodeSchema` carries 8-digit codes.
 */
export const CODE_BOUNDS = {
  /** Fewest digits in a code (6 digits: 10^6 values; with 5 tries a guess succeeds 1 time in 200,000). */
  minDigits: 6,
  /** Digits the companion protocol carries (`protocol/companion-link.protocol.ts` OneTimeCodeSchema). */
  supportedDigits: [8],
  /** Longest lifetime of a code, minutes. */
  maxTtlMinutes: 15,
  /** Most wrong tries of one code. */
  maxWrongTries: 5,
  /**
   * Most codes one person may be sent in any 60 minutes (first codes and resends, across runs). Only
   * time frees a place: a successful unlock does not restart the count (`UnlockRules.maxCodesPerHour`).
   */
  maxCodesPerHour: 3,
} as const;

/** The validated settings. */
export interface UnlockPolicyConfig {
  policy: UnlockPolicy;
  /** Digits in a code. */
  codeDigits: number;
  /** Always true: a code is used once (accepted once; a resend replaces it). */
  singleUse: true;
  /** Lifetime of a code, minutes (1..15). */
  codeTtlMinutes: number;
  /** Wrong tries allowed per code (1..5). */
  maxCodeTries: number;
  /** Codes one person may be sent in any 60 minutes (1..3); a successful unlock does not restart the count. */
  maxCodesPerHour: number;
  /** Channels a `code-only` code may go by, in order of preference (at least one). */
  channels: CodeChannel[];
}

/** The defaults: today's behaviour. */
export const DEFAULT_UNLOCK_POLICY: UnlockPolicyConfig = {
  policy: 'questions',
  codeDigits: 8,
  singleUse: true,
  codeTtlMinutes: 15,
  maxCodeTries: 5,
  maxCodesPerHour: 3,
  channels: ['email', 'sms'],
};

function refuse(message: string): never {
  throw new AppError('CONFIG.INVALID', message);
}

/** A whole number from the environment, or the default when unset or empty. */
function wholeNumber(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number, why: string): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]{1,6}$/.test(raw)) refuse(`${name}: must be a whole number (got "${raw.slice(0, 20)}")`);
  const n = Number(raw);
  if (n < min || n > max) refuse(`${name}: must be ${min === max ? min : `${min} to ${max}`}: ${why}`);
  return n;
}

/**
 * Read and check the unlock policy settings.
 *
 * @param env - usually `process.env` (an empty value counts as unset)
 * @returns the settings, defaults filled in ({@link DEFAULT_UNLOCK_POLICY})
 * @throws AppError `CONFIG.INVALID` whose message starts with the setting's name and says what is
 *   wrong: `UNLOCK_POLICY` not `questions`/`code-only`; `UNLOCK_CODE_DIGITS` under 6 (or not 8, the
 *   length companions accept); `UNLOCK_CODE_SINGLE_USE` not `true`; `UNLOCK_CODE_TTL_MINUTES` over 15;
 *   `UNLOCK_CODE_MAX_TRIES` over 5; `UNLOCK_CODES_PER_HOUR` over 3 (issue #14 bounds); each also under 1;
 *   `UNLOCK_CODE_CHANNELS` empty, repeated or not `email`/`sms`
 */
export function loadUnlockPolicyConfig(env: Record<string, string | undefined>): UnlockPolicyConfig {
  const d = DEFAULT_UNLOCK_POLICY;
  const policyRaw = env['UNLOCK_POLICY']?.trim().toLowerCase() || d.policy;
  if (!(UNLOCK_POLICIES as readonly string[]).includes(policyRaw)) refuse(`UNLOCK_POLICY: must be questions or code-only (got "${policyRaw.slice(0, 20)}")`);
  const policy = policyRaw as UnlockPolicy;

  const digitsRaw = env['UNLOCK_CODE_DIGITS']?.trim();
  let codeDigits: number = d.codeDigits;
  if (digitsRaw !== undefined && digitsRaw !== '') {
    if (!/^[0-9]{1,3}$/.test(digitsRaw)) refuse(`UNLOCK_CODE_DIGITS: must be a whole number of digits (got "${digitsRaw.slice(0, 20)}")`);
    codeDigits = Number(digitsRaw);
    if (codeDigits < CODE_BOUNDS.minDigits) refuse(`UNLOCK_CODE_DIGITS: must be at least ${CODE_BOUNDS.minDigits}: shorter codes are too easy to guess (issue #14)`);
    if (!(CODE_BOUNDS.supportedDigits as readonly number[]).includes(codeDigits)) {
      refuse(`UNLOCK_CODE_DIGITS: must be ${CODE_BOUNDS.supportedDigits.join(' or ')}: the companion accepts ${CODE_BOUNDS.supportedDigits.join(' or ')}-digit codes (protocol OneTimeCodeSchema)`);
    }
  }

  const singleRaw = env['UNLOCK_CODE_SINGLE_USE']?.trim().toLowerCase();
  if (singleRaw !== undefined && singleRaw !== '' && !['true', '1', 'yes'].includes(singleRaw)) {
    refuse('UNLOCK_CODE_SINGLE_USE: must be true: a one-time code is accepted once and never again (issue #14); leave it unset');
  }

  const codeTtlMinutes = wholeNumber(env, 'UNLOCK_CODE_TTL_MINUTES', d.codeTtlMinutes, 1, CODE_BOUNDS.maxTtlMinutes, `a code is valid at most ${CODE_BOUNDS.maxTtlMinutes} minutes (issue #14)`);
  const maxCodeTries = wholeNumber(env, 'UNLOCK_CODE_MAX_TRIES', d.maxCodeTries, 1, CODE_BOUNDS.maxWrongTries, `at most ${CODE_BOUNDS.maxWrongTries} wrong tries per code (issue #14)`);
  const maxCodesPerHour = wholeNumber(env, 'UNLOCK_CODES_PER_HOUR', d.maxCodesPerHour, 1, CODE_BOUNDS.maxCodesPerHour, `at most ${CODE_BOUNDS.maxCodesPerHour} codes an hour per person (issue #14)`);

  const channelsRaw = env['UNLOCK_CODE_CHANNELS']?.trim();
  let channels: CodeChannel[] = [...d.channels];
  if (channelsRaw !== undefined && channelsRaw !== '') {
    const list = channelsRaw.split(',').map((c) => c.trim().toLowerCase()).filter(Boolean);
    const unknown = list.find((c) => !(CODE_CHANNELS as readonly string[]).includes(c));
    if (unknown !== undefined) refuse(`UNLOCK_CODE_CHANNELS: "${unknown.slice(0, 20)}" is not a channel: list email, sms or both (comma-separated)`);
    if (list.length === 0) refuse('UNLOCK_CODE_CHANNELS: list at least one of email, sms');
    if (new Set(list).size !== list.length) refuse('UNLOCK_CODE_CHANNELS: a channel is listed twice');
    channels = list as CodeChannel[];
  }
  return { policy, codeDigits, singleUse: true, codeTtlMinutes, maxCodeTries, maxCodesPerHour, channels };
}

/**
 * The journey's rules for these settings (the other limits keep their defaults).
 *
 * @param config - the validated settings
 * @param base - the rules to start from (default {@link DEFAULT_UNLOCK_RULES} of the journey)
 * @returns rules with the policy, channels, code digits, lifetime (ms), tries and hourly cap of `config`
 */
export function unlockRulesFor(config: UnlockPolicyConfig, base: UnlockRules): UnlockRules {
  return {
    ...base,
    policy: config.policy,
    codeChannels: [...config.channels],
    codeDigits: config.codeDigits,
    codeTtlMs: config.codeTtlMinutes * 60_000,
    maxCodeTries: config.maxCodeTries,
    maxCodesPerHour: config.maxCodesPerHour,
  };
}
