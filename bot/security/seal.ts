/**
 * Sealing of secrets at rest (the card's PUK) with AES-256-GCM.
 *
 * Format: `v1.<iv>.<ciphertext>.<tag>`, each part base64url without padding;
 * the IV is 12 random bytes (NIST SP 800-38D, 8.2.2: random IVs of 96 bits),
 * the tag 16 bytes. The additional authenticated data (AAD) names what the
 * value is for, e.g. `puk:<cardId>`, so a sealed PUK copied onto another card's
 * record, or used for another purpose, does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import type { Sealed } from '../../storage/storage.port';
import { assertSecretKey } from './keys';
import { SECURITY_ERROR, SecurityError } from './security.errors';

export type { Sealed };

/** Sealed-format constants. */
export const SEAL_FORMAT = {
  version: 'v1',
  ivBytes: 12,
  tagBytes: 16,
  /** Shape check only; opening is what proves a value genuine. */
  pattern: /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/,
} as const;

/**
 * Seal a secret for storage.
 *
 * @param key - 32-byte secret key (`DerivedKeys.sealKey`)
 * @param plaintext - the secret, UTF-8
 * @param aad - purpose binding, e.g. `puk:<cardId>`; the same string is needed to unseal
 * @returns `v1.<iv>.<ct>.<tag>` (base64url parts); a fresh random IV each call, so sealing
 *   the same plaintext twice gives different strings
 * @throws SecurityError `CRYPTO.KEY_INVALID` when the key is not a 32-byte secret key
 * @see NIST SP 800-38D (GCM)
 */
export function seal(key: KeyObject, plaintext: string, aad: string): Sealed {
  assertSecretKey(key, 'seal key');
  const iv = randomBytes(SEAL_FORMAT.ivBytes);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: SEAL_FORMAT.tagBytes });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return `${SEAL_FORMAT.version}.${iv.toString('base64url')}.${ct.toString('base64url')}.${tag.toString('base64url')}`;
}

/**
 * Open a sealed secret.
 *
 * @param key - the key it was sealed with
 * @param sealed - `v1.<iv>.<ct>.<tag>`
 * @param aad - the purpose string it was sealed with
 * @returns the plaintext
 * @throws SecurityError `CRYPTO.UNSEAL_FAILED` when the value is malformed, was altered,
 *   or the key or AAD differ (meta `reason`: `malformed` | `authentication`); the message
 *   holds neither the plaintext nor the sealed value
 * @throws SecurityError `CRYPTO.KEY_INVALID` when the key is not a 32-byte secret key
 */
export function unseal(key: KeyObject, sealed: Sealed, aad: string): string {
  assertSecretKey(key, 'seal key');
  if (typeof sealed !== 'string' || !SEAL_FORMAT.pattern.test(sealed)) {
    throw new SecurityError(SECURITY_ERROR.UNSEAL_FAILED, 'sealed value is not in the v1.<iv>.<ciphertext>.<tag> format', { meta: { reason: 'malformed' } });
  }
  const [, ivText, ctText, tagText] = sealed.split('.') as [string, string, string, string];
  const iv = Buffer.from(ivText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  const ct = Buffer.from(ctText, 'base64url');
  // Refuse non-canonical base64url (spare low bits set), so any change to the string is refused, not only changes to the bytes.
  const canonical = iv.toString('base64url') === ivText && ct.toString('base64url') === ctText && tag.toString('base64url') === tagText;
  if (!canonical || iv.length !== SEAL_FORMAT.ivBytes || tag.length !== SEAL_FORMAT.tagBytes) {
    throw new SecurityError(SECURITY_ERROR.UNSEAL_FAILED, 'sealed value is not canonical base64url or has a wrong IV or tag length', { meta: { reason: 'malformed' } });
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: SEAL_FORMAT.tagBytes });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    const pt = Buffer.concat([decipher.update(ct), decipher.final()]);
    return pt.toString('utf8');
  } catch (cause) {
    // OpenSSL's message ("Unsupported state or unable to authenticate data") holds no data; keep it as the cause.
    throw new SecurityError(SECURITY_ERROR.UNSEAL_FAILED, 'sealed value failed authentication: altered, or sealed under another key or purpose', { cause, meta: { reason: 'authentication' } });
  }
}

/**
 * Whether a string has the sealed shape (not whether it opens).
 *
 * @param value - any value
 * @returns true for `v1.<16 chars>.<ct>.<22 chars>` in base64url
 */
export function isSealed(value: unknown): value is Sealed {
  return typeof value === 'string' && SEAL_FORMAT.pattern.test(value);
}
