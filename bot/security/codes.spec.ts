import { createSecretKey, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CASE_REF_PATTERN,
  CODE_ALPHABETS,
  formatUserCode,
  generateCaseRef,
  generateNumericCode,
  generatePuk,
  generateSecret,
  generateUserCode,
  hashesEqual,
  keyedHash,
  normaliseUserCode,
} from './codes';

const key = createSecretKey(randomBytes(32));

describe('generateNumericCode', () => {
  it('gives exactly the requested number of digits', () => {
    for (const n of [1, 6, 8, 12, 32]) {
      for (let i = 0; i < 50; i++) expect(generateNumericCode(n)).toMatch(new RegExp(`^[0-9]{${n}}$`));
    }
    expect(generateNumericCode()).toMatch(/^[0-9]{8}$/);
  });

  it('draws every digit in every position, roughly uniformly, and keeps leading zeros', () => {
    const samples = 20_000;
    const counts = Array.from({ length: 8 }, () => new Array<number>(10).fill(0));
    let leadingZero = 0;
    for (let i = 0; i < samples; i++) {
      const code = generateNumericCode(8);
      expect(code).toHaveLength(8);
      if (code.startsWith('0')) leadingZero++;
      for (let p = 0; p < 8; p++) counts[p]![Number(code[p])]!++;
    }
    // Expected 2000 per digit per position; 6 sigma (~ 255) bounds make a false failure practically impossible.
    for (const position of counts) for (const c of position) expect(Math.abs(c - samples / 10)).toBeLessThan(300);
    expect(leadingZero).toBeGreaterThan(0);
  });

  it('does not repeat itself over many draws', () => {
    const set = new Set(Array.from({ length: 5000 }, () => generateNumericCode(8)));
    expect(set.size).toBeGreaterThan(4980);
  });

  it.each([0, -1, 33, 2.5, Number.NaN])('refuses %s digits', (n) => {
    expect(() => generateNumericCode(n)).toThrow(RangeError);
  });

  it('generatePuk is 8 digits', () => {
    for (let i = 0; i < 100; i++) expect(generatePuk()).toMatch(/^[0-9]{8}$/);
  });
});

describe('keyedHash / hashesEqual', () => {
  it('is HMAC-SHA-256 over purpose NUL value, in lower-case hex', () => {
    const expected = createHmac('sha256', key).update('unlock-code\0' + '12345678').digest('hex');
    expect(keyedHash(key, 'unlock-code', '12345678')).toBe(expected);
    expect(keyedHash(key, 'unlock-code', '12345678')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('separates purposes and keys', () => {
    const a = keyedHash(key, 'unlock-code', '12345678');
    expect(keyedHash(key, 'pairing', '12345678')).not.toBe(a);
    expect(keyedHash(createSecretKey(randomBytes(32)), 'unlock-code', '12345678')).not.toBe(a);
    // purpose/value boundary is unambiguous
    expect(keyedHash(key, 'ab', 'c')).not.toBe(keyedHash(key, 'a', 'bc'));
  });

  it('refuses a NUL in the purpose and a bad key', () => {
    expect(() => keyedHash(key, 'a\0b', 'x')).toThrow(RangeError);
    expect(() => keyedHash(Buffer.alloc(32) as never, 'a', 'x')).toThrow(/hash key/);
  });

  it('hashesEqual compares exactly', () => {
    const a = keyedHash(key, 'p', 'v');
    expect(hashesEqual(a, keyedHash(key, 'p', 'v'))).toBe(true);
    expect(hashesEqual(a, keyedHash(key, 'p', 'w'))).toBe(false);
    expect(hashesEqual(a, a.slice(0, -1))).toBe(false);
    expect(hashesEqual(a, a.slice(0, -1) + (a.endsWith('0') ? '1' : '0'))).toBe(false);
    expect(hashesEqual('', '')).toBe(true);
  });
});

describe('user codes (pairing)', () => {
  it('generates XXXX-XXXX from the look-alike-free alphabet', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const code = generateUserCode();
      expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
      expect(code).not.toMatch(/[01OIL]/);
      for (const ch of code.replace('-', '')) seen.add(ch);
    }
    expect([...seen].sort().join('')).toBe([...CODE_ALPHABETS.userCode].sort().join(''));
  });

  it('the alphabet has no 0, O, 1, I or L', () => {
    expect(CODE_ALPHABETS.userCode).not.toMatch(/[0O1IL]/);
    expect(new Set(CODE_ALPHABETS.userCode).size).toBe(CODE_ALPHABETS.userCode.length);
  });

  it.each([
    ['K7QF-M2XD', 'K7QFM2XD'],
    ['k7qf-m2xd', 'K7QFM2XD'],
    ['k7qfm2xd', 'K7QFM2XD'],
    ['  K7QF M2XD ', 'K7QFM2XD'],
    ['K7QF\u2013M2XD', 'K7QFM2XD'], // en dash
    ['Ｋ７ＱＦ－Ｍ２ＸＤ', 'K7QFM2XD'], // full-width
  ])('normalises %j to %s', (input, expected) => {
    expect(normaliseUserCode(input)).toBe(expected);
  });

  it.each([
    ['look-alike zero', 'K0QF-M2XD'],
    ['look-alike O', 'KOQF-M2XD'],
    ['look-alike one', 'K1QF-M2XD'],
    ['look-alike I', 'KIQF-M2XD'],
    ['look-alike L', 'KLQF-M2XD'],
    ['too short', 'K7QF-M2X'],
    ['too long', 'K7QF-M2XDD'],
    ['punctuation', 'K7QF.M2XD'],
    ['empty', ''],
    ['huge', 'A'.repeat(10_000)],
  ])('refuses %s', (_name, input) => {
    expect(normaliseUserCode(input)).toBeNull();
  });

  it('round-trips a generated code through normalise and format', () => {
    const code = generateUserCode();
    const n = normaliseUserCode(code.toLowerCase());
    expect(n).not.toBeNull();
    expect(formatUserCode(n!)).toBe(code);
  });
});

describe('generateSecret', () => {
  it('gives base64url of the requested entropy', () => {
    const s = generateSecret();
    expect(s).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(s, 'base64url')).toHaveLength(32);
    expect(Buffer.from(generateSecret(64), 'base64url')).toHaveLength(64);
    expect(generateSecret()).not.toBe(s);
  });

  it('refuses too little entropy', () => {
    expect(() => generateSecret(8)).toThrow(RangeError);
  });
});

describe('generateCaseRef', () => {
  it('is RA- and 6 Crockford base32 characters, covering the alphabet', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const ref = generateCaseRef();
      expect(ref).toMatch(CASE_REF_PATTERN);
      for (const ch of ref.slice(3)) seen.add(ch);
    }
    expect(seen.size).toBe(32);
    expect([...seen].some((c) => 'ILOU'.includes(c))).toBe(false);
  });
});
