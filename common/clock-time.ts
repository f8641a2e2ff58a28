/**
 * The one way a time of day is written for a person, by the bot (cards, mails)
 * and by the companion (its page and terminal): 24-hour `HH:mm` followed by the
 * zone's short name, e.g. `19:10 GMT` in winter and `19:10 BST` in summer for
 * `Europe/London`. The zone is always shown, so a time in an email, a Teams card
 * and the companion page can be compared with each other and with a clock.
 *
 * Adaptive Cards' `{{TIME()}}` is not used for such times: the host renders it in
 * its own format and locale (the Agents Playground shows "6:55 PM"), so it would
 * not match the other places.
 */

/**
 * Format an instant as `HH:mm ZONE` in a time zone (British English, 24-hour clock).
 *
 * @param at - the instant: a Date or an ISO 8601 string such as `2026-01-15T19:10:00Z`
 * @param timeZone - IANA zone name, e.g. `Europe/London` (the bot's TIME_ZONE setting); absent =
 *   this computer's zone (the companion runs on the person's own workstation)
 * @returns e.g. `19:10 GMT`, `19:10 BST`, `19:10 UTC`, `14:10 GMT-5` (zone names from CLDR via `Intl`)
 * @throws RangeError when `at` is not a valid date, or the zone is unknown (from `Intl.DateTimeFormat`)
 */
export function clockTime(at: Date | string, timeZone?: string): string {
  const date = typeof at === 'string' ? new Date(at) : at;
  if (Number.isNaN(date.getTime())) throw new RangeError(`clockTime needs a valid date, got ${typeof at === 'string' ? JSON.stringify(at) : 'an invalid Date'}`);
  const parts = new Intl.DateTimeFormat('en-GB', {
    ...(timeZone !== undefined ? { timeZone } : {}),
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).formatToParts(date);
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('hour')}:${part('minute')} ${part('timeZoneName')}`;
}
