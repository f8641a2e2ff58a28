/**
 * Passcode policy for the new card passcode (the PIV PIN), checked on the
 * workstation before anything is sent: the passcode never leaves the companion.
 *
 * Rule sources: issue 2 / DESIGN.md "Unlock a locked card" step 4 - 6 to 8
 * digits (the NHS smartcard passcode rule), common sequences refused; issue 10
 * "Policy" - the new passcode must differ from the emailed unlock code (the
 * code travelled by email, so a passcode equal to it is known to whoever can
 * read that mailbox). PIV allows up to 8 bytes of PIN (NIST SP 800-73-4
 * Part 2, 2.4.3); this service uses digits only.
 */

/** Passcode length limits, in digits. */
export const PASSCODE_LENGTH = { min: 6, max: 8 } as const;

/** Why a passcode was refused; `message` is for the person (says "passcode", never the value). */
export type PasscodeRefusal =
  | { ok: false; reason: 'missing'; message: string }
  | { ok: false; reason: 'not_digits'; message: string }
  | { ok: false; reason: 'length'; message: string }
  | { ok: false; reason: 'all_same'; message: string }
  | { ok: false; reason: 'sequence'; message: string }
  | { ok: false; reason: 'same_as_code'; message: string }
  | { ok: false; reason: 'mismatch'; message: string };

/** What else the check compares the passcode with. */
export interface PasscodeContext {
  /**
   * The emailed unlock code as typed (secret; spaces and dashes are ignored, as the code's own check does).
   * Absent when there is no code (registration).
   */
  unlockCode?: string;
}

export type PasscodeCheck = { ok: true } | PasscodeRefusal;

function isStraightRun(digits: string, step: 1 | -1): boolean {
  for (let i = 1; i < digits.length; i += 1) {
    if (digits.charCodeAt(i) - digits.charCodeAt(i - 1) !== step) return false;
  }
  return true;
}

/**
 * Check a new passcode and its confirmation against the policy.
 *
 * NOTE: runs are not wrapped around (`890123` is allowed); "straight" means
 * each digit is one more (or one less) than the one before.
 *
 * @param passcode - the new passcode as typed (not trimmed: a space is refused as a non-digit)
 * @param confirmation - the second entry, which must equal `passcode`
 * @param context - `unlockCode`: the passcode must not equal it (issue 10 "Policy")
 * @returns `{ ok: true }`, or `{ ok: false, reason, message }` with a message the page shows; the rules
 *   are checked in this order, so a weak passcode typed twice gets its policy reason, not `mismatch`
 */
export function checkPasscode(passcode: string, confirmation: string, context: PasscodeContext = {}): PasscodeCheck {
  if (passcode.length === 0) return { ok: false, reason: 'missing', message: 'Enter a new passcode.' };
  if (!/^[0-9]+$/.test(passcode)) return { ok: false, reason: 'not_digits', message: 'Your new passcode must be digits only (0-9).' };
  if (passcode.length < PASSCODE_LENGTH.min || passcode.length > PASSCODE_LENGTH.max) {
    return { ok: false, reason: 'length', message: `Your new passcode must be ${PASSCODE_LENGTH.min} to ${PASSCODE_LENGTH.max} digits long.` };
  }
  if (/^(\d)\1*$/.test(passcode)) return { ok: false, reason: 'all_same', message: 'Your new passcode cannot be the same digit repeated. Choose a harder one to guess.' };
  if (isStraightRun(passcode, 1) || isStraightRun(passcode, -1)) {
    return { ok: false, reason: 'sequence', message: 'Your new passcode cannot be a run of digits such as 123456 or 876543. Choose a harder one to guess.' };
  }
  if (context.unlockCode !== undefined && passcode === context.unlockCode.replace(/[\s-]/g, '')) {
    return { ok: false, reason: 'same_as_code', message: 'Your new passcode cannot be the unlock code you were sent. Choose a different passcode.' };
  }
  if (passcode !== confirmation) return { ok: false, reason: 'mismatch', message: 'The two new passcodes do not match. Type the same passcode in both boxes.' };
  return { ok: true };
}
