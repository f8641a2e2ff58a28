/**
 * Mask a UK mobile number for display (issue #14): enough to recognise one's own phone,
 * not enough to read the number off a screen.
 */
import { MASK_CHAR } from './mask-email';

/**
 * Keep the national prefix `07` and the last 3 digits, in the national form.
 *
 * @param mobile - a UK mobile: E.164 (`+447700900123`) or as a profile may hold it
 *   (`+44 7700 900123`, `07700 900123`, `0044 7700 900123`); spaces, dashes, dots and brackets ignored
 * @returns e.g. `07••• •••123`; anything that is not a UK mobile comes back fully masked (`•••••`)
 */
export function maskMobile(mobile: string): string {
  let digits = mobile.trim().replace(/\(0\)/g, '').replace(/[\s().-]/g, '');
  if (digits.startsWith('+44')) digits = `0${digits.slice(3)}`;
  else if (digits.startsWith('0044')) digits = `0${digits.slice(4)}`;
  const m = /^07(\d{9})$/.exec(digits);
  if (!m) return MASK_CHAR.repeat(5);
  return `07${MASK_CHAR.repeat(3)} ${MASK_CHAR.repeat(3)}${m[1]!.slice(-3)}`;
}
