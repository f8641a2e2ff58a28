import { describe, expect, it } from 'vitest';
import { checkPasscode } from './passcode-policy';

// Table of cases: [passcode, confirmation, expected reason or 'ok'].
const CASES: [string, string, string][] = [
  ['', '', 'missing'],
  ['12a456', '12a456', 'not_digits'],
  [' 284719', ' 284719', 'not_digits'],
  ['２８４７１９', '２８４７１９', 'not_digits'], // full-width digits are not ASCII digits
  ['28471', '28471', 'length'],
  ['284719365', '284719365', 'length'],
  ['000000', '000000', 'all_same'],
  ['99999999', '99999999', 'all_same'],
  ['123456', '123456', 'sequence'],
  ['23456789', '23456789', 'sequence'],
  ['876543', '876543', 'sequence'],
  ['9876543', '9876543', 'sequence'],
  ['345678', '345678', 'sequence'],
  ['76543210', '76543210', 'sequence'],
  ['284719', '284718', 'mismatch'],
  ['284719', '', 'mismatch'],
  ['284719', '284719', 'ok'],
  ['1234567a', '1234567a', 'not_digits'],
  ['123455', '123455', 'ok'], // one step off a run
  ['890123', '890123', 'ok'], // runs do not wrap around
  ['112233', '112233', 'ok'],
  ['13572468', '13572468', 'ok'],
  ['0000001', '0000001', 'ok'],
];

describe('checkPasscode (6-8 digits, no all-same, no straight runs, both entries equal)', () => {
  it.each(CASES)('%j / %j -> %s', (passcode, confirmation, expected) => {
    const result = checkPasscode(passcode, confirmation);
    if (expected === 'ok') {
      expect(result).toEqual({ ok: true });
    } else {
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason).toBe(expected);
        expect(result.message.length).toBeGreaterThan(10);
        expect(result.message).not.toMatch(/\bPIN\b/);
        // The message never echoes what was typed (the two sequence examples it quotes are fixed text).
        if (passcode.length > 0 && !['123456', '876543'].includes(passcode)) expect(result.message).not.toContain(passcode);
      }
    }
  });

  it('checks the policy before the match, so a weak passcode typed twice gets the policy reason', () => {
    expect(checkPasscode('111111', '111112')).toMatchObject({ ok: false, reason: 'all_same' });
  });
});

describe('checkPasscode: the new passcode must differ from the emailed unlock code (issue #10 "Policy")', () => {
  // 40729163 passes every other rule by itself, so only the code rule can refuse it.
  const CODE = '40729163';

  it.each([
    ['the code as typed', CODE],
    ['the code typed with a space', '4072 9163'],
    ['the code typed with a dash', '4072-9163'],
  ])('refuses a passcode equal to %s', (_name, unlockCode) => {
    const result = checkPasscode(CODE, CODE, { unlockCode });
    expect(result).toMatchObject({ ok: false, reason: 'same_as_code' });
    if (!result.ok) {
      expect(result.message).toBe('Your new passcode cannot be the unlock code you were sent. Choose a different passcode.');
      expect(result.message).not.toContain(CODE);
    }
  });

  it('refuses it before the confirmation check (the policy reason comes first)', () => {
    expect(checkPasscode(CODE, '12', { unlockCode: CODE })).toMatchObject({ ok: false, reason: 'same_as_code' });
  });

  it.each([
    ['a passcode that differs in one digit', '40729164'],
    ['the first 6 digits of the code', '407291'],
    ['the last 6 digits of the code', '729163'],
  ])('allows %s', (_name, passcode) => {
    expect(checkPasscode(passcode, passcode, { unlockCode: CODE })).toEqual({ ok: true });
  });

  it('without a code (registration has none) only the other rules apply', () => {
    expect(checkPasscode(CODE, CODE)).toEqual({ ok: true });
  });
});
