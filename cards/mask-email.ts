/**
 * Mask an email address for display, so a card shows which mailbox was used
 * without spelling it out to anyone looking at the screen.
 */

/** Character used for hidden characters (U+2022 BULLET). */
export const MASK_CHAR = '\u2022';

/** Fewest and most mask characters shown, so the mask does not reveal the local part's length. */
const MIN_MASK = 3;
const MAX_MASK = 9;

/**
 * Keep the first character of the local part and the whole domain; replace the rest of the
 * local part with 3 to 9 bullets.
 *
 * @param email - an address such as `alex.wilber@nhs.net`
 * @returns e.g. `a•••••••••@nhs.net`; a value without a usable `@` comes back fully masked (`•••••`)
 */
export function maskEmail(email: string): string {
  const trimmed = email.trim();
  const at = trimmed.lastIndexOf('@');
  if (at < 1 || at === trimmed.length - 1) return MASK_CHAR.repeat(5);
  const local = trimmed.slice(0, at);
  const domain = trimmed.slice(at + 1);
  const first = Array.from(local)[0] ?? '';
  const hidden = Math.min(MAX_MASK, Math.max(MIN_MASK, Array.from(local).length - 1));
  return `${first}${MASK_CHAR.repeat(hidden)}@${domain}`;
}
