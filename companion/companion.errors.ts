/**
 * Errors of the companion runtime (everything but the card layer, whose errors
 * live in `piv/piv.errors.ts`). Codes are namespaced (STYLE.md 10); messages and
 * meta never hold a passcode, PUK, one-time code, token or credential.
 */
import { AppError } from '../common/app-error';

/** A configuration value is missing or wrong; the message names the variable. */
export class ConfigError extends AppError {
  /**
   * @param variable - the environment variable (or flag) at fault, e.g. `COMPANION_PAGE_PORT`
   * @param problem - what is wrong with it, in words (never its value when the variable is secret)
   */
  constructor(readonly variable: string, problem: string) {
    super('CONFIG.INVALID', `${variable}: ${problem}`, { meta: { variable } });
  }
}

/** The credential file could not be read or written. */
export class CredentialStoreError extends AppError {
  constructor(reason: 'READ_FAILED' | 'WRITE_FAILED' | 'INSECURE_PATH', message: string, cause?: unknown) {
    super(`CREDENTIAL.${reason}`, message, cause !== undefined ? { cause } : undefined);
  }
}

/** The local passcode page refused to start (e.g. asked to bind a non-loopback address). */
export class PasscodePageError extends AppError {
  constructor(reason: 'NOT_LOOPBACK' | 'NOT_STARTED', message: string, meta?: Record<string, string | number | boolean | null>) {
    super(`PAGE.${reason}`, message, meta ? { meta } : undefined);
  }
}
