/**
 * The emails the unlock and registration journeys send, as subject + plain text + HTML.
 *
 * Every value placed in the HTML is escaped (OWASP XSS Prevention Cheat Sheet,
 * rule 1: HTML entity encoding for element content and quoted attributes).
 * No template takes a passcode or a security answer: neither is ever emailed.
 * Times are written in the configured IANA time zone (e.g. Europe/London) with
 * its abbreviation (GMT/BST), because the reader may be anywhere.
 */
import { clockTime } from '../../common/clock-time';

/** A rendered email, ready for a `MailMessage`. */
export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escape text for HTML element content or a quoted attribute value.
 *
 * @param value - any text
 * @returns the text with `& < > " '` replaced by character references
 */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** A local date and time, split for sentences. */
export interface LocalDateTime {
  /** 24-hour time and zone, the project's one time format ({@link clockTime}), e.g. `09:45 BST`. */
  clock: string;
  /** e.g. `Friday 3 July 2026`. */
  date: string;
  /** e.g. `09:45 BST on Friday 3 July 2026`. */
  text: string;
}

/**
 * Format an instant in a time zone, British English.
 *
 * @param at - the instant
 * @param timeZone - IANA zone name, e.g. `Europe/London`
 * @throws RangeError when the time zone is unknown (from `Intl.DateTimeFormat`)
 */
export function formatLocalDateTime(at: Date, timeZone: string): LocalDateTime {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).formatToParts(at);
  const get = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  const clock = clockTime(at, timeZone);
  const date = `${get('weekday')} ${get('day')} ${get('month')} ${get('year')}`;
  return { clock, date, text: `${clock} on ${date}` };
}

const JUNK_LINE =
  'Emails from Smartcard Assist sometimes land in the junk mail folder: if you are waiting for another one from us and cannot see it, look there, and mark it as not junk.';
const SIGN_OFF = ['Smartcard Assist', 'This is an automatic message. Replies are not read.'];

/** Wrap paragraphs (already escaped HTML) in a simple, mail-client-safe document. */
function htmlDocument(title: string, paragraphs: string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    '</head>',
    '<body style="font-family:Segoe UI,Arial,sans-serif;font-size:15px;line-height:1.5;color:#212b32;">',
    ...paragraphs,
    `<p style="color:#4c6272;font-size:13px;">${SIGN_OFF.map(escapeHtml).join('<br>\n')}</p>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

const p = (html: string) => `<p>${html}</p>`;

/**
 * The email that carries an unlock code.
 *
 * @param input.displayName - the person's name, escaped in HTML
 * @param input.code - the one-time unlock code (8 digits); appears on its own line in both parts, not in the subject
 * @param input.expiresAt - when the code stops working
 * @param input.minutes - how long the code works, in minutes (15 by the design)
 * @param input.timeZone - IANA zone for the expiry time, e.g. `Europe/London`
 * @param input.raContact - how to reach the RA team, e.g. "ra.team@nhs.net or 0113 000 0000", escaped in HTML
 * @returns subject, text and HTML
 * @throws RangeError when `timeZone` is unknown
 */
export function unlockCodeMail(input: {
  displayName: string;
  code: string;
  expiresAt: Date;
  minutes: number;
  timeZone: string;
  raContact: string;
}): RenderedMail {
  const subject = 'Your smartcard unlock code';
  const until = formatLocalDateTime(input.expiresAt, input.timeZone);
  const expiry = `The code works once, for ${input.minutes} minutes: until ${until.text}.`;
  const howTo =
    'Open the Smartcard Assist companion on your computer and enter the code there, with your new passcode. ' +
    'Never type your passcode in Teams or in an email, and never tell it to anyone.';
  const notYou = `Did not ask for this? Do not use the code, and contact ${input.raContact} straight away. Someone may be trying to unlock your card.`;
  const text = [
    `Hello ${input.displayName},`,
    '',
    'You asked to unlock your smartcard. Your unlock code is:',
    '',
    input.code,
    '',
    expiry,
    '',
    howTo,
    '',
    notYou,
    '',
    JUNK_LINE,
    '',
    ...SIGN_OFF,
    '',
  ].join('\n');
  const html = htmlDocument(subject, [
    p(`Hello ${escapeHtml(input.displayName)},`),
    p('You asked to unlock your smartcard. Your unlock code is:'),
    '<p style="font-family:Consolas,Menlo,monospace;font-size:32px;font-weight:bold;letter-spacing:6px;margin:16px 0;">',
    escapeHtml(input.code),
    '</p>',
    p(`The code works once, for ${escapeHtml(String(input.minutes))} minutes: until <strong>${escapeHtml(until.clock)}</strong> on ${escapeHtml(until.date)}.`),
    p(escapeHtml(howTo)),
    p(`<strong>Did not ask for this?</strong> Do not use the code, and contact ${escapeHtml(input.raContact)} straight away. Someone may be trying to unlock your card.`),
    p(escapeHtml(JUNK_LINE)),
  ]);
  return { subject, text, html };
}

/**
 * The notice that a card was unlocked, so an unlock the person did not make is noticed.
 *
 * @param input.displayName - the person's name, escaped in HTML
 * @param input.at - when the new passcode was set
 * @param input.workstation - the computer's name as the companion reported it, escaped in HTML; omitted when null
 * @param input.timeZone - IANA zone for the time, e.g. `Europe/London`
 * @param input.raContact - how to reach the RA team, escaped in HTML
 * @returns subject, text and HTML
 * @throws RangeError when `timeZone` is unknown
 */
export function unlockedNoticeMail(input: {
  displayName: string;
  at: Date;
  workstation?: string | null;
  timeZone: string;
  raContact: string;
}): RenderedMail {
  const subject = 'Your smartcard was unlocked';
  const when = formatLocalDateTime(input.at, input.timeZone);
  const where = input.workstation?.trim() ? input.workstation.trim() : undefined;
  const whatText = `Your smartcard was unlocked and given a new passcode at ${when.text}${where ? `, on the computer ${where}` : ''}, using Smartcard Assist.`;
  const whatHtml =
    `Your smartcard was unlocked and given a new passcode at <strong>${escapeHtml(when.clock)}</strong> on ${escapeHtml(when.date)}` +
    `${where ? `, on the computer <strong>${escapeHtml(where)}</strong>` : ''}, using Smartcard Assist.`;
  const ok = 'If this was you, you do not need to do anything.';
  const notYou = `If this was not you, contact ${input.raContact} straight away. Someone else may have your card.`;
  const text = [`Hello ${input.displayName},`, '', whatText, '', ok, '', notYou, '', JUNK_LINE, '', ...SIGN_OFF, ''].join('\n');
  const html = htmlDocument(subject, [
    p(`Hello ${escapeHtml(input.displayName)},`),
    p(whatHtml),
    p(escapeHtml(ok)),
    p(`<strong>If this was not you</strong>, contact ${escapeHtml(input.raContact)} straight away. Someone else may have your card.`),
    p(escapeHtml(JUNK_LINE)),
  ]);
  return { subject, text, html };
}

/**
 * The email that carries a registration code (registration step 5, issue 3).
 *
 * @param input.displayName - the person's name, escaped in HTML
 * @param input.code - the one-time registration code (8 digits); on its own line in both parts, not in the subject
 * @param input.expiresAt - when the code stops working
 * @param input.minutes - how long the code works, in minutes (15 by the design)
 * @param input.timeZone - IANA zone for the expiry time, e.g. `Europe/London`
 * @param input.raContact - how to reach the RA team, escaped in HTML
 * @returns subject, text and HTML
 * @throws RangeError when `timeZone` is unknown
 */
export function registrationCodeMail(input: {
  displayName: string;
  code: string;
  expiresAt: Date;
  minutes: number;
  timeZone: string;
  raContact: string;
}): RenderedMail {
  const subject = 'Your Smartcard Assist registration code';
  const until = formatLocalDateTime(input.expiresAt, input.timeZone);
  const intro = 'You asked to register for self-service smartcard unlock. Your registration code is:';
  const expiry = `The code works once, for ${input.minutes} minutes: until ${until.text}.`;
  const howTo = 'Enter the code in your Smartcard Assist chat in Microsoft Teams. Do not share it: nobody, including the RA team, will ever ask you for it.';
  const notYou = `Did not ask for this? Do not use the code, and contact ${input.raContact} straight away. Someone may be trying to register a card in your name.`;
  const text = [`Hello ${input.displayName},`, '', intro, '', input.code, '', expiry, '', howTo, '', notYou, '', JUNK_LINE, '', ...SIGN_OFF, ''].join('\n');
  const html = htmlDocument(subject, [
    p(`Hello ${escapeHtml(input.displayName)},`),
    p(escapeHtml(intro)),
    '<p style="font-family:Consolas,Menlo,monospace;font-size:32px;font-weight:bold;letter-spacing:6px;margin:16px 0;">',
    escapeHtml(input.code),
    '</p>',
    p(`The code works once, for ${escapeHtml(String(input.minutes))} minutes: until <strong>${escapeHtml(until.clock)}</strong> on ${escapeHtml(until.date)}.`),
    p(escapeHtml(howTo)),
    p(`<strong>Did not ask for this?</strong> Do not use the code, and contact ${escapeHtml(input.raContact)} straight away. Someone may be trying to register a card in your name.`),
    p(escapeHtml(JUNK_LINE)),
  ]);
  return { subject, text, html };
}

/**
 * The confirmation that a registration completed: what was registered, never the security answers.
 *
 * @param input.displayName - the person's name, escaped in HTML
 * @param input.at - when the registration completed
 * @param input.email - the registered address, escaped in HTML
 * @param input.mobile - the registered mobile number (E.164), escaped in HTML; null when none was given
 * @param input.workstation - the computer where the card was checked, escaped in HTML; omitted when null
 * @param input.selfUnlockReady - false when the card has no enrolled PUK yet, so unlocking still needs RA
 * @param input.timeZone - IANA zone for the time, e.g. `Europe/London`
 * @param input.raContact - how to reach the RA team, escaped in HTML
 * @param input.questionsCount - number of security questions registered; 4 when omitted
 * @returns subject, text and HTML
 * @throws RangeError when `timeZone` is unknown
 */
export function registrationConfirmedMail(input: {
  displayName: string;
  at: Date;
  email: string;
  mobile: string | null;
  workstation: string | null;
  selfUnlockReady: boolean;
  timeZone: string;
  raContact: string;
  questionsCount?: number;
}): RenderedMail {
  const subject = 'You are registered for self-service smartcard unlock';
  const when = formatLocalDateTime(input.at, input.timeZone);
  const where = input.workstation?.trim() ? input.workstation.trim() : undefined;
  const mobile = input.mobile?.trim() ? input.mobile.trim() : undefined;
  const questions = input.questionsCount ?? 4;
  const whatText = `You registered for self-service smartcard unlock at ${when.text}${where ? `, on the computer ${where}` : ''}, using Smartcard Assist.`;
  const whatHtml =
    `You registered for self-service smartcard unlock at <strong>${escapeHtml(when.clock)}</strong> on ${escapeHtml(when.date)}` +
    `${where ? `, on the computer <strong>${escapeHtml(where)}</strong>` : ''}, using Smartcard Assist.`;
  const listIntro = 'This is what we registered:';
  const items: Array<[label: string, value: string]> = [
    ['Email', input.email],
    ['Mobile', mobile ?? 'none given'],
    ['Smartcard', 'the card you checked with your passcode'],
    ['Security questions', `${questions}. Your answers are stored only as a one-way hash: they are never shown or sent to anyone, including you.`],
  ];
  const notReady = `Your card is not yet enrolled for self-unlock. Until it is, if your card locks, contact your RA team to unlock it: ${input.raContact}. We have let them know.`;
  const ready = 'If your card ever locks, you can unlock it yourself: say "unlock" to Smartcard Assist in Microsoft Teams.';
  const ok = 'If this was you, you do not need to do anything.';
  const notYou = `If this was not you, contact ${input.raContact} straight away. Someone else may have your card and passcode.`;
  const text = [
    `Hello ${input.displayName},`,
    '',
    whatText,
    '',
    listIntro,
    ...items.map(([label, value]) => `- ${label}: ${value}`),
    '',
    input.selfUnlockReady ? ready : notReady,
    '',
    ok,
    '',
    notYou,
    '',
    JUNK_LINE,
    '',
    ...SIGN_OFF,
    '',
  ].join('\n');
  const html = htmlDocument(subject, [
    p(`Hello ${escapeHtml(input.displayName)},`),
    p(whatHtml),
    p(escapeHtml(listIntro)),
    '<ul>',
    ...items.map(([label, value]) => `<li>${escapeHtml(label)}: <strong>${escapeHtml(value)}</strong></li>`),
    '</ul>',
    input.selfUnlockReady
      ? p(escapeHtml(ready))
      : p(
          `<strong>Your card is not yet enrolled for self-unlock.</strong> Until it is, if your card locks, contact your RA team to unlock it: ${escapeHtml(input.raContact)}. We have let them know.`,
        ),
    p(escapeHtml(ok)),
    p(`<strong>If this was not you</strong>, contact ${escapeHtml(input.raContact)} straight away. Someone else may have your card and passcode.`),
    p(escapeHtml(JUNK_LINE)),
  ]);
  return { subject, text, html };
}
