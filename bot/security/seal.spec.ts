import { createSecretKey, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { isSealed, seal, SEAL_FORMAT, unseal } from './seal';

const key = createSecretKey(randomBytes(32));
const otherKey = createSecretKey(randomBytes(32));
const PUK = '73914062';
const AAD = 'puk:0123456789abcdef0123456789abcdef';

function unsealError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected unseal to throw');
}

describe('seal / unseal (AES-256-GCM)', () => {
  it('round-trips, with the v1.<iv>.<ct>.<tag> base64url format', () => {
    const sealed = seal(key, PUK, AAD);
    expect(sealed).toMatch(SEAL_FORMAT.pattern);
    const [v, iv, ct, tag] = sealed.split('.');
    expect(v).toBe('v1');
    expect(Buffer.from(iv!, 'base64url')).toHaveLength(12);
    expect(Buffer.from(ct!, 'base64url')).toHaveLength(Buffer.byteLength(PUK));
    expect(Buffer.from(tag!, 'base64url')).toHaveLength(16);
    expect(sealed).not.toContain(PUK);
    expect(unseal(key, sealed, AAD)).toBe(PUK);
    expect(isSealed(sealed)).toBe(true);
  });

  it('round-trips non-ASCII and empty plaintexts', () => {
    for (const text of ['', 'ünïcødé ✓ 密码', 'x'.repeat(1000)]) expect(unseal(key, seal(key, text, AAD), AAD)).toBe(text);
  });

  it('uses a fresh IV each time (same plaintext seals differently)', () => {
    const ivs = new Set(Array.from({ length: 50 }, () => seal(key, PUK, AAD).split('.')[1]));
    expect(ivs.size).toBe(50);
  });

  it('refuses every single-character change anywhere in the sealed string', () => {
    const sealed = seal(key, PUK, AAD);
    for (let i = 3; i < sealed.length; i++) {
      if (sealed[i] === '.') continue;
      const swapped = sealed[i] === 'A' ? 'B' : 'A';
      const tampered = sealed.slice(0, i) + swapped + sealed.slice(i + 1);
      const err = unsealError(() => unseal(key, tampered, AAD));
      expect(err.code, `position ${i}`).toBe('CRYPTO.UNSEAL_FAILED');
    }
  });

  it('refuses a different AAD (a PUK sealed for one card does not open for another)', () => {
    const sealed = seal(key, PUK, AAD);
    const err = unsealError(() => unseal(key, sealed, 'puk:ffffffffffffffffffffffffffffffff'));
    expect(err.code).toBe('CRYPTO.UNSEAL_FAILED');
    expect(err.meta.reason).toBe('authentication');
  });

  it('refuses the wrong key', () => {
    expect(unsealError(() => unseal(otherKey, seal(key, PUK, AAD), AAD)).code).toBe('CRYPTO.UNSEAL_FAILED');
  });

  it.each([
    ['empty', ''],
    ['plaintext', PUK],
    ['wrong version', seal(key, PUK, AAD).replace(/^v1/, 'v2')],
    ['missing tag', seal(key, PUK, AAD).split('.').slice(0, 3).join('.')],
    ['truncated tag', seal(key, PUK, AAD).slice(0, -2)],
  ])('refuses a malformed value (%s)', (_name, value) => {
    const err = unsealError(() => unseal(key, value, AAD));
    expect(err.code).toBe('CRYPTO.UNSEAL_FAILED');
    expect(err.meta.reason).toBe('malformed');
  });

  it('puts neither plaintext nor sealed value in the thrown error', () => {
    const sealed = seal(key, PUK, AAD);
    const err = unsealError(() => unseal(otherKey, sealed, AAD));
    const text = JSON.stringify(err.toJSON()) + err.message + String(err.stack);
    expect(text).not.toContain(PUK);
    expect(text).not.toContain(sealed);
  });

  it('refuses a key of the wrong size', () => {
    const err = unsealError(() => seal(createSecretKey(randomBytes(16)), PUK, AAD));
    expect(err.code).toBe('CRYPTO.KEY_INVALID');
  });
});
