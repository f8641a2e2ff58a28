/**
 * Errors raised by the server-side secret helpers.
 *
 * Messages and metadata never carry a key, a plaintext, a code or an answer:
 * only what went wrong and, where useful, lengths or variable names.
 */
import { AppError } from '../../common/app-error';

/** Codes used by `bot/security/` (namespace `CRYPTO`, plus `CONFIG` for a bad master key). */
export const SECURITY_ERROR = {
  /** A sealed value did not open: tampered, wrong key, wrong AAD or malformed. */
  UNSEAL_FAILED: 'CRYPTO.UNSEAL_FAILED',
  /** A key handed to a helper has the wrong type or length. */
  KEY_INVALID: 'CRYPTO.KEY_INVALID',
  /** A stored answer hash is malformed or its cost parameters are out of bounds. */
  ANSWER_HASH_INVALID: 'CRYPTO.ANSWER_HASH_INVALID',
  /** scrypt itself failed (out of memory, bad parameters). */
  HASH_FAILED: 'CRYPTO.HASH_FAILED',
  /** The configured master key is missing or not 32 bytes of hex/base64. */
  MASTER_KEY_INVALID: 'CONFIG.MASTER_KEY_INVALID',
} as const;

export type SecurityErrorCode = (typeof SECURITY_ERROR)[keyof typeof SECURITY_ERROR];

/** Error raised by the secret helpers; `code` is one of {@link SECURITY_ERROR}. */
export class SecurityError extends AppError {
  constructor(code: SecurityErrorCode, message: string, options?: { cause?: unknown; meta?: Record<string, string | number | boolean | null> }) {
    super(code, message, options);
  }
}
