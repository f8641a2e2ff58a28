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
