/**
 * Random codes and keyed hashes: one-time codes, PUKs, pairing user codes,
 * device secrets and RA case references.
 *
 * Every random value comes from the CSPRNG (`crypto.randomInt` / `randomBytes`),
 * drawn uniformly (randomInt uses rejection sampling, so no modulo bias).
 * One-time codes and credentials are stored only as {@link keyedHash} values.
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual, type KeyObject } from 'node:crypto';
import { assertSecretKey } from './keys';

/** Alphabets and lengths used by the generators. */
export const CODE_ALPHABETS = {
  /**
   * Pairing user codes: upper-case letters and digits without look-alikes
   * (no 0/O, 1/I/L): 31 symbols, 8 per code, about 39.6 bits.
   * RFC 8628, 6.1 advises an alphabet that is easy to read and type.
   */
  userCode: 'ABCDEFGHJKMNPQRSTUVWXYZ23456789',
  /** Crockford's base32 (https://www.crockford.com/base32.html): no I, L, O, U. */
  crockford: '0123456789ABCDEFGHJKMNPQRSTVWXYZ',
  digits: '0123456789',
} as const;

/** Lengths, in characters. */
export const CODE_LENGTHS = {
  oneTimeCode: 8,
  puk: 8,
  userCode: 8,
  caseRef: 6,
} as const;

/** `RA-` + 6 Crockford base32 characters. */
export const CASE_REF_PATTERN = /^RA-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/;

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/**
 * Generate a numeric code (one-time unlock code, PUK).
 *
 * @param digits - number of digits, 1 to 32 (default 8)
 * @returns exactly `digits` decimal digits, each uniform in 0-9; leading zeros are kept
 * @throws RangeError when `digits` is not an integer from 1 to 32
 */
export function generateNumericCode(digits: number = CODE_LENGTHS.oneTimeCode): string {
  if (!Number.isInteger(digits) || digits < 1 || digits > 32) throw new RangeError('digits must be an integer from 1 to 32');
  return randomString(CODE_ALPHABETS.digits, digits);
}

/**
 * Keyed hash of a secret for storage and lookup (one-time codes, pairing codes, credentials).
 *
 * NOTE: the purpose is part of the MAC input (`purpose`, a NUL byte, then the value), so the
 * same value hashed for two purposes gives unrelated hashes.
 *
 * @param key - 32-byte HMAC key (`codeHashKey` or `credentialHashKey`)
 * @param purpose - domain label without NUL, e.g. `unlock-code:<runId>`, `pairing-user-code`
 * @param value - the secret, UTF-8
 * @returns HMAC-SHA-256, 64 lower-case hex digits (RFC 2104)
 * @throws SecurityError `CRYPTO.KEY_INVALID` for a wrong key; RangeError when `purpose` holds NUL
 */
export function keyedHash(key: KeyObject, purpose: string, value: string): string {
  assertSecretKey(key, 'hash key');
  if (purpose.includes('\0')) throw new RangeError('purpose must not contain a NUL character');
  return createHmac('sha256', key).update(purpose, 'utf8').update('\0').update(value, 'utf8').digest('hex');
}

/**
 * Compare two hashes (or other non-secret-length strings) in constant time.
 *
 * @param a - e.g. a stored hex hash
 * @param b - e.g. a freshly computed hex hash
 * @returns true when equal; the time taken depends only on the length, and different
 *   lengths return false at once (lengths of hashes are public)
 */
export function hashesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

/**
 * Generate a pairing user code for a person to type (RFC 8628, 3.2 `user_code`).
 *
 * @returns `XXXX-XXXX` from {@link CODE_ALPHABETS.userCode}, e.g. `K7QF-M2XD`
 */
export function generateUserCode(): string {
  const raw = randomString(CODE_ALPHABETS.userCode, CODE_LENGTHS.userCode);
  return formatUserCode(raw);
}

/**
 * Format a normalised user code for display.
 *
 * @param normalised - 8 characters as returned by {@link normaliseUserCode}
 * @returns `XXXX-XXXX`
 */
export function formatUserCode(normalised: string): string {
  return `${normalised.slice(0, 4)}-${normalised.slice(4)}`;
}

/**
 * Normalise a user code as a person typed it.
 *
 * Accepts lower case, full-width forms (Unicode NFKC), spaces and any dash between or
 * around the groups, or none. Refuses look-alike characters outside the alphabet
 * (0, O, 1, I, L) rather than guessing, and any other length.
 *
 * @param input - what the person typed, e.g. `k7qf m2xd`, `K7QF-M2XD`, `k7qfm2xd`
 * @returns the 8 upper-case characters without separator (`K7QFM2XD`), the form that is
 *   hashed and stored; or null when it cannot be a user code
 */
export function normaliseUserCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const compact = input.normalize('NFKC').toUpperCase().replace(/[\s\p{Pd}]+/gu, '');
  if (compact.length !== CODE_LENGTHS.userCode) return null;
  for (const ch of compact) if (!CODE_ALPHABETS.userCode.includes(ch)) return null;
  return compact;
}

/**
 * Generate a random secret (device credential secret, pairing device code, page token).
 *
 * @param bytes - entropy in bytes, 16 to 1024 (default 32 = 256 bits)
 * @returns base64url without padding (43 characters for 32 bytes)
 * @throws RangeError when `bytes` is out of range
 */
export function generateSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) throw new RangeError('bytes must be an integer from 16 to 1024');
  return randomBytes(bytes).toString('base64url');
}

/**
 * Generate a card PUK.
 *
 * @returns 8 decimal digits (PIV pads the PUK to 8 bytes, NIST SP 800-73-4 Part 2, 2.4.3;
 *   this service issues 8 digits)
 */
export function generatePuk(): string {
  return generateNumericCode(CODE_LENGTHS.puk);
}

/**
 * Generate an RA case reference.
 *
 * @returns `RA-` + 6 Crockford base32 characters (about 30 bits), e.g. `RA-7K2Q9D`;
 *   uniqueness is enforced by the store, which answers a clash as `exists`
 */
export function generateCaseRef(): string {
  return `RA-${randomString(CODE_ALPHABETS.crockford, CODE_LENGTHS.caseRef)}`;
}
