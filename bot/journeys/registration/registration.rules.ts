/**
 * Validation rules for self-service registration (issue #3). Pure functions:
 * each returns the normalised value or a reason a person can act on. The
 * server applies them to every submission, whatever the card allowed.
 */
import { normaliseAnswer } from '../../security/answers';
import { isQuestionId } from './question-bank';

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

const LOCAL_PART = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Check a work email address: syntax (RFC 5321 dot-atom local part, LDH
 * domain labels), length limits, and that the domain is an approved one or a
 * sub-domain of one. Look-alikes (`nhs.net.example.com`, `nhsnet.com`,
 * `nhs-net.com`, non-ASCII homoglyphs) are refused.
 *
 * @param raw - as typed; surrounding spaces are removed and letters lower-cased
 * @param approved - approved domains, lower-case, e.g. `['nhs.net', 'gov.uk']`
 * @returns the normalised address, or a reason
 */
export function checkEmail(raw: string, approved: readonly string[]): Checked<string> {
  const email = raw.trim().toLowerCase();
  if (email === '') return { ok: false, reason: 'Enter your work email address.' };
  if (email.length > 254) return { ok: false, reason: 'That email address is too long.' };
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(email)) return { ok: false, reason: 'The email address can only use plain letters, digits and the usual symbols (no spaces or accented letters).' };
  const at = email.lastIndexOf('@');
  if (at <= 0 || at !== email.indexOf('@') || at === email.length - 1) return { ok: false, reason: 'That is not an email address: it needs one @ with a name before it and a domain after it.' };
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (local.length > 64 || !LOCAL_PART.test(local)) return { ok: false, reason: 'The part before the @ is not valid.' };
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return { ok: false, reason: 'The domain after the @ is not valid.' };
  if (labels.some((l) => l.startsWith('xn--'))) return { ok: false, reason: 'Use your work email address on an approved domain.' };
  const ok = approved.some((d) => domain === d || domain.endsWith(`.${d}`));
  if (!ok) return { ok: false, reason: `Use your work email address: it must end in ${formatList(approved.map((d) => `@${d}`))} (or a sub-domain of one).` };
  return { ok: true, value: email };
}

function formatList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/**
 * Check a UK mobile number and return it in E.164 (`+447...`).
 *
 * Accepts `07xxx xxxxxx`, `+44 7xxx xxxxxx`, `+44 (0)7xxx...`, `0044 7...`,
 * `447...`, with spaces, dashes, dots or brackets. UK mobile ranges are 071-075,
 * 077-079 and 07624 (Ofcom National Telephone Numbering Plan); 070 (personal
 * numbers) and 076 (pagers) are refused.
 *
 * @param raw - as typed; empty means "no mobile number" (the field is optional)
 * @returns `null` for empty, the E.164 number, or a reason
 */
export function checkUkMobile(raw: string): Checked<string | null> {
  const trimmed = raw.trim();
  if (trimmed === '') return { ok: true, value: null };
  if (!/^[0-9+\s().-]+$/.test(trimmed)) return { ok: false, reason: 'A mobile number can only have digits, spaces and + ( ) - .' };
  let digits = trimmed.replace(/\(0\)/g, '').replace(/[\s().-]/g, '');
  if (digits.startsWith('+44')) digits = `0${digits.slice(3)}`;
  else if (digits.startsWith('0044')) digits = `0${digits.slice(4)}`;
  else if (digits.startsWith('44') && digits.length === 12) digits = `0${digits.slice(2)}`;
  if (digits.includes('+')) return { ok: false, reason: 'Enter a UK mobile number, like 07700 900123 or +44 7700 900123.' };
  if (!/^07[0-9]{9}$/.test(digits)) return { ok: false, reason: 'Enter a UK mobile number: 11 digits starting 07, like 07700 900123.' };
  const range = digits.slice(0, 3);
  const mobileRange = ['071', '072', '073', '074', '075', '077', '078', '079'].includes(range) || digits.startsWith('07624');
  if (!mobileRange) return { ok: false, reason: 'That is not a UK mobile number (mobile numbers start 071-075 or 077-079).' };
  return { ok: true, value: `+44${digits.slice(1)}` };
}

/** Shortest answer accepted, in characters after normalisation (issue #3). */
export const MIN_ANSWER_CHARS = 3;

/**
 * Check the 4 chosen questions and their answers.
 *
 * @param questionIds - ids chosen on the card (q1..q4), from the bank of 20
 * @param answers - the answers, same order
 * @returns the pairs, or a reason naming what to change (never repeating an answer)
 */
export function checkQuestionsAndAnswers(questionIds: readonly string[], answers: readonly string[]): Checked<Array<{ questionId: string; answer: string }>> {
  if (questionIds.length !== 4 || answers.length !== 4) return { ok: false, reason: 'Choose 4 questions and answer each one.' };
  if (!questionIds.every(isQuestionId)) return { ok: false, reason: 'Choose each question from the list.' };
  if (new Set(questionIds).size !== 4) return { ok: false, reason: 'Choose 4 different questions.' };
  const normalised = answers.map((a) => normaliseAnswer(a));
  const short = normalised.findIndex((a) => a.length < MIN_ANSWER_CHARS);
  if (short >= 0) return { ok: false, reason: `Answer ${short + 1} is too short: answers need at least ${MIN_ANSWER_CHARS} characters.` };
  const long = answers.findIndex((a) => a.trim().length > 200);
  if (long >= 0) return { ok: false, reason: `Answer ${long + 1} is too long: at most 200 characters.` };
  if (new Set(normalised).size !== 4) return { ok: false, reason: 'Two of your answers are the same. Give a different answer to each question.' };
  return { ok: true, value: questionIds.map((questionId, i) => ({ questionId, answer: answers[i] as string })) };
}

/**
 * Normalise a typed one-time code: spaces and dashes removed.
 * @returns 8 digits, or null when it cannot be a code
 */
export function normaliseTypedCode(raw: string): string | null {
  const c = raw.replace(/[\s-]/g, '');
  return /^[0-9]{8}$/.test(c) ? c : null;
}

/** Registration code rules (issue #3). */
export const REGISTRATION_CODE_RULES = {
  /** Lifetime, ms. */
  ttlMs: 15 * 60_000,
  /** Wrong tries allowed in one registration, across codes (a new code does not reset them). */
  maxWrongTries: 5,
  /** Codes per person in any rolling hour. */
  maxCodesPerHour: 3,
  hourMs: 60 * 60_000,
} as const;

/**
 * Can another code be issued now?
 * @param issuedAt - ISO times codes were issued to this person (any run)
 * @returns ok, or the time (ms epoch) from which the next code may be sent
 */
export function canIssueCode(issuedAt: readonly string[], now: Date): { ok: true } | { ok: false; nextAt: number } {
  const cutoff = now.getTime() - REGISTRATION_CODE_RULES.hourMs;
  const recent = issuedAt.map((t) => Date.parse(t)).filter((t) => t > cutoff).sort((a, b) => a - b);
  if (recent.length < REGISTRATION_CODE_RULES.maxCodesPerHour) return { ok: true };
  return { ok: false, nextAt: (recent[recent.length - REGISTRATION_CODE_RULES.maxCodesPerHour] as number) + REGISTRATION_CODE_RULES.hourMs };
}
