/**
 * Mask a UK mobile number for display (issue #14): enough to recognise one's own phone,
 * not enough to read the number off a screen.
 */
import { MASK_CHAR } from './mask-email';

/**
 * Keep the national prefix `07` and the last 3 digits, in the national form.
 *
 * @param e164 - a UK mobile in E.164 form, `+447` and 9 digits, e.g. `+447700900123`
 * @returns e.g. `07••• •••123`; anything else comes back fully masked (`•••••`)
 */
export function maskMobile(e164: string): string {
  const m = /^\+447(\d{9})$/.exec(e164.trim());
  if (!m) return MASK_CHAR.repeat(5);
  return `07${MASK_CHAR.repeat(3)} ${MASK_CHAR.repeat(3)}${m[1]!.slice(-3)}`;
}
