/**
 * Master key parsing and sub-key derivation.
 *
 * One 32-byte master key comes from configuration; every purpose gets its own
 * sub-key through HKDF-SHA-256 (RFC 5869), so a key used to seal PUKs is never
 * the key used to hash one-time codes or device credentials. Keys are held as
 * `KeyObject`s, which print as `SecretKeyObject { ... }` and never show their
 * bytes in a log line or an inspected object.
 */
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { SECURITY_ERROR, SecurityError } from './security.errors';

/** Length of the master key and of every derived key, in bytes (AES-256, HMAC-SHA-256). */
export const KEY_BYTES = 32 as const;

/** Default name of the configuration variable holding the master key (used in error messages). */
export const MASTER_KEY_VARIABLE = 'SMARTCARD_ASSIST_MASTER_KEY' as const;

/** HKDF salt (fixed, public) and per-purpose `info` labels. Changing any of them changes every derived key. */
export const KEY_DERIVATION = {
  salt: 'smartcard-assist/hkdf-salt/v1',
  info: {
    sealKey: 'smartcard-assist/seal/aes-256-gcm/v1',
    codeHashKey: 'smartcard-assist/code-hash/hmac-sha-256/v1',
    credentialHashKey: 'smartcard-assist/credential-hash/hmac-sha-256/v1',
    busKey: 'smartcard-assist/command-bus/aes-256-gcm/v1',
  },
} as const;

/** The sub-keys derived from the master key. */
export interface DerivedKeys {
  /** AES-256-GCM key for {@link import('./seal').seal} (PUKs at rest). */
  sealKey: KeyObject;
  /** HMAC-SHA-256 key for one-time codes and pairing codes. */
  codeHashKey: KeyObject;
  /** HMAC-SHA-256 key for device credentials. */
  credentialHashKey: KeyObject;
  /** AES-256-GCM key sealing command-bus payloads at rest (several instances on MongoDB). */
  busKey: KeyObject;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
// 32 bytes in base64 or base64url: 43 significant characters, then optional '=' padding.
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * Parse the configured master key.
 *
 * @param value - the configuration value: 64 hex digits, or 32 bytes in base64 / base64url
 *   (43 characters, or 44 with one `=`). Surrounding whitespace is ignored.
 * @param variableName - name of the configuration variable, used only in the error message
 * @returns a 32-byte secret `KeyObject`
 * @throws SecurityError `CONFIG.MASTER_KEY_INVALID` when missing, of the wrong length or
 *   encoding, or made of one repeated byte (a placeholder). The message names the variable
 *   and the expected form, never the value.
 */
export function parseMasterKey(value: string | undefined, variableName: string = MASTER_KEY_VARIABLE): KeyObject {
  const text = (value ?? '').trim();
  if (text === '') {
    throw new SecurityError(SECURITY_ERROR.MASTER_KEY_INVALID, `${variableName} is not set: give 32 random bytes as 64 hex digits or base64 (e.g. \`openssl rand -base64 32\`)`, { meta: { variable: variableName } });
  }
  let bytes: Buffer;
  if (HEX_KEY.test(text)) bytes = Buffer.from(text, 'hex');
  else if (BASE64_KEY.test(text)) bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  else {
    throw new SecurityError(
      SECURITY_ERROR.MASTER_KEY_INVALID,
      `${variableName} must be 32 bytes written as 64 hex digits or base64 (44 characters with padding); the value given has ${text.length} characters`,
      { meta: { variable: variableName, length: text.length } },
    );
  }
  if (bytes.length !== KEY_BYTES) {
    throw new SecurityError(SECURITY_ERROR.MASTER_KEY_INVALID, `${variableName} must decode to ${KEY_BYTES} bytes; it decodes to ${bytes.length}`, { meta: { variable: variableName, bytes: bytes.length } });
  }
  if (bytes.every((b) => b === bytes[0])) {
    throw new SecurityError(SECURITY_ERROR.MASTER_KEY_INVALID, `${variableName} is one repeated byte, which looks like a placeholder: generate a random key`, { meta: { variable: variableName } });
  }
  const key = createSecretKey(bytes);
  bytes.fill(0);
  return key;
}

/**
 * Derive the purpose-specific sub-keys from the master key with HKDF-SHA-256.
 *
 * @param masterKey - 32-byte secret key from {@link parseMasterKey}
 * @returns `{ sealKey, codeHashKey, credentialHashKey, busKey }`, each 32 bytes, pairwise distinct
 * @throws SecurityError `CRYPTO.KEY_INVALID` when the master key is not a 32-byte secret key
 * @see RFC 5869 (HKDF); labels in {@link KEY_DERIVATION}
 */
export function deriveKeys(masterKey: KeyObject): DerivedKeys {
  assertSecretKey(masterKey, 'master key');
  const ikm = masterKey.export();
  const derive = (info: string): KeyObject => createSecretKey(Buffer.from(hkdfSync('sha256', ikm, KEY_DERIVATION.salt, info, KEY_BYTES)));
  try {
    return {
      sealKey: derive(KEY_DERIVATION.info.sealKey),
      codeHashKey: derive(KEY_DERIVATION.info.codeHashKey),
      credentialHashKey: derive(KEY_DERIVATION.info.credentialHashKey),
      busKey: derive(KEY_DERIVATION.info.busKey),
    };
  } finally {
    ikm.fill(0);
  }
}

/**
 * Generate a fresh master key for configuration (admin and demo set-up).
 *
 * @returns 32 random bytes (CSPRNG), base64 with padding (44 characters)
 */
export function generateMasterKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/**
 * Check a key is a 32-byte secret `KeyObject`.
 *
 * @throws SecurityError `CRYPTO.KEY_INVALID` naming the role (`what`), never the bytes
 */
export function assertSecretKey(key: unknown, what: string): asserts key is KeyObject {
  const ok = typeof key === 'object' && key !== null && (key as KeyObject).type === 'secret' && (key as KeyObject).symmetricKeySize === KEY_BYTES;
  if (!ok) throw new SecurityError(SECURITY_ERROR.KEY_INVALID, `${what} must be a ${KEY_BYTES}-byte secret KeyObject`, { meta: { what } });
}
