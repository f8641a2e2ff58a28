/**
 * Card actions: the verbs this service puts on `Action.Execute` buttons and the
 * zod schema of each verb's `data`.
 *
 * Teams delivers a click as an invoke named `adaptiveCard/action` whose
 * `value.action` holds `{ type: 'Action.Execute', verb, data }`, with the
 * card's inputs (for example `a1`..`a3`) merged into `data` (Universal Actions
 * for Adaptive Cards, "Action.Execute" invoke schema). {@link parseCardAction}
 * turns that value into a {@link CardAction}, a union keyed on the verb, so an
 * unknown verb can never be routed by accident (STYLE.md 7).
 *
 * Messages from the parser name the field and what is wrong with it; they
 * never repeat the value sent, because answer fields hold security answers.
 */
import { z } from 'zod';

/** Every verb, with the journey it belongs to. */
export const CARD_VERBS = {
  UNLOCK_START: 'unlock.start',
  REGISTER_START: 'register.start',
  PAIR_HELP: 'pair.help',
  HELP_SHOW: 'help.show',
  UNLOCK_CHECK_CARD: 'unlock.check_card',
  UNLOCK_ANSWERS: 'unlock.answers',
  UNLOCK_CANCEL: 'unlock.cancel',
  UNLOCK_RESEND_CODE: 'unlock.resend_code',
  UNLOCK_CHOOSE_CHANNEL: 'unlock.choose_channel',
  REGISTER_CONTACT: 'register.contact',
  REGISTER_CHECK_CARD: 'register.check_card',
  REGISTER_QUESTIONS: 'register.questions',
  REGISTER_SEND_CODE: 'register.send_code',
  REGISTER_CODE: 'register.code',
  REGISTER_RESEND_CODE: 'register.resend_code',
  REGISTER_CANCEL: 'register.cancel',
  JOURNEY_SHOW: 'journey.show',
  RA_CLAIM: 'ra.claim',
  RA_NOTE: 'ra.note',
  RA_RESET_ATTEMPTS: 'ra.reset_attempts',
  RA_ASSIST_UNLOCK: 'ra.assist_unlock',
  RA_CLOSE: 'ra.close',
  /** Universal Actions `refresh` of an RA case card (sent by Teams when a member views it). */
  RA_CASE_REFRESH: 'ra.case_refresh',
  /** Helpdesk: show the "open an RA case for someone" form. */
  HELPDESK_FORM: 'helpdesk.form',
  /** Helpdesk: open an RA case for the person whose email the form holds. */
  HELPDESK_OPEN_CASE: 'helpdesk.open_case',
} as const;

/** A verb this service understands. */
export type CardVerb = (typeof CARD_VERBS)[keyof typeof CARD_VERBS];

/** Longest accepted security answer, in characters after trimming. */
export const MAX_ANSWER_LENGTH = 200;

/** Ids of the three answer inputs on the questions card; Teams merges them into `data`. */
export const ANSWER_INPUT_IDS = ['a1', 'a2', 'a3'] as const;
type AnswerInputId = (typeof ANSWER_INPUT_IDS)[number];

/** Number of security questions a person chooses and answers when registering. */
export const REGISTER_QUESTION_COUNT = 4;

/** Ids of the question pickers on the registration questions card (values are question ids such as `q07`). */
export const REGISTER_QUESTION_INPUT_IDS = ['q1', 'q2', 'q3', 'q4'] as const;

/** Ids of the answer inputs on the registration questions card, paired in order with {@link REGISTER_QUESTION_INPUT_IDS}. */
export const REGISTER_ANSWER_INPUT_IDS = ['a1', 'a2', 'a3', 'a4'] as const;

/** Form of a question id in the question bank: `q` and two digits, e.g. `q07`. */
export const QUESTION_ID_PATTERN = /^q\d{2}$/;

/** Longest accepted email address, in characters (RFC 5321 4.5.3.1.3 path limit of 256 less the angle brackets). */
export const MAX_EMAIL_LENGTH = 254;

/** Longest accepted mobile number as typed, in characters (spaces, brackets and a +44 prefix included). */
export const MAX_MOBILE_LENGTH = 32;

/** Longest accepted registration code as typed, in characters (8 digits plus any spaces or dashes). */
export const MAX_CODE_INPUT_LENGTH = 20;

/**
 * Every id of a card input whose value Teams merges into a click's `data`. A builder never puts these
 * on a button's own data ({@link CardActionButtonData}).
 */
export const CARD_INPUT_IDS = [...REGISTER_ANSWER_INPUT_IDS, ...REGISTER_QUESTION_INPUT_IDS, 'email', 'mobile', 'code', 'note', 'outcome', 'reason'] as const;

/** Longest RA note, in characters after trimming. */
export const MAX_RA_NOTE_LENGTH = 1000;

/** Longest helpdesk handoff reason, in characters after trimming. */
export const MAX_HANDOFF_REASON_LENGTH = 500;

/** How an RA case may be closed (values of the `outcome` input on the case card). */
export const RA_CASE_OUTCOMES = ['unlocked_in_person', 'assisted_unlock', 'attempts_reset', 'referred', 'no_action'] as const;
export type CardInputId = (typeof CARD_INPUT_IDS)[number];

const missingOr = (otherwise: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'is missing' : otherwise);

const runIdField = z.uuid({ error: missingOr('must be a UUID') });
const stepField = z
  .string({ error: missingOr('must be text') })
  .trim()
  .min(1, { error: 'is empty' })
  .max(64, { error: 'is longer than 64 characters' });
const answerField = z
  .string({ error: missingOr('must be text') })
  .trim()
  .min(1, { error: 'is empty' })
  .max(MAX_ANSWER_LENGTH, { error: `is longer than ${MAX_ANSWER_LENGTH} characters` });

const runStep = { runId: runIdField, step: stepField };

const caseRefField = z.string({ error: missingOr('must be text') }).regex(/^RA-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$/, { error: 'must be a case reference such as RA-7K2Q9D' });
/** An RA case card's button: the case and the case step the card showed. */
const caseStep = { caseRef: caseRefField, step: z.string({ error: missingOr('must be text') }).regex(/^\d{1,9}$/, { error: 'must be a whole number' }) };

/** Trimmed text of at most `max` characters; `allowEmpty` false refuses an empty (or all-space) value. */
const textField = (max: number, allowEmpty: boolean) => {
  const text = z.string({ error: missingOr('must be text') }).trim();
  return (allowEmpty ? text : text.min(1, { error: 'is empty' })).max(max, { error: `is longer than ${max} characters` });
};

const questionIdField = z
  .string({ error: missingOr('must be text') })
  .trim()
  .regex(QUESTION_ID_PATTERN, { error: 'must be a question id such as q07' });

/**
 * The schema of `value.action.data` for each verb. Unknown keys are dropped
 * (Teams may merge extra fields); known keys must be valid.
 */
export const CARD_ACTION_SCHEMAS = {
  'unlock.start': z.object({}),
  'register.start': z.object({}),
  'pair.help': z.object({}),
  'help.show': z.object({}),
  'unlock.check_card': z.object(runStep),
  /** Code-only (issue #14): where the code goes. */
  'unlock.choose_channel': z.object({ ...runStep, channel: z.enum(['email', 'sms'], { error: 'must be email or sms' }) }),
  'unlock.answers': z.object({ ...runStep, a1: answerField, a2: answerField, a3: answerField }),
  'unlock.cancel': z.object(runStep),
  'unlock.resend_code': z.object(runStep),
  // The server validates the address and number; the schema only bounds their lengths. Hosts leave an
  // empty input out of `data` (adaptivecards 3.0.6, Action.prepareForExecution), so a missing mobile is ''.
  'register.contact': z.object({ ...runStep, email: textField(MAX_EMAIL_LENGTH, false), mobile: textField(MAX_MOBILE_LENGTH, true).default('') }),
  'register.check_card': z.object(runStep),
  // The server checks that the 4 questions differ and applies the answer rules.
  'register.questions': z.object({
    ...runStep,
    q1: questionIdField,
    q2: questionIdField,
    q3: questionIdField,
    q4: questionIdField,
    a1: answerField,
    a2: answerField,
    a3: answerField,
    a4: answerField,
  }),
  // Missing or empty `email` means: send to the address already confirmed.
  'register.send_code': z.object({ ...runStep, email: textField(MAX_EMAIL_LENGTH, true).optional() }),
  // The server removes spaces and dashes and checks the digits.
  'register.code': z.object({ ...runStep, code: textField(MAX_CODE_INPUT_LENGTH, false) }),
  'register.resend_code': z.object(runStep),
  'register.cancel': z.object(runStep),
  // Show the current card of a journey (after a failure that could not render it).
  'journey.show': z.object({ journey: z.enum(['unlock', 'registration'], { error: 'must be unlock or registration' }) }),
  'ra.claim': z.object(caseStep),
  // An empty note is answered by the case ("write a note first"); hosts leave an empty input out of `data`.
  'ra.note': z.object({ ...caseStep, note: textField(MAX_RA_NOTE_LENGTH, true).default('') }),
  'ra.reset_attempts': z.object(caseStep),
  'ra.assist_unlock': z.object(caseStep),
  'ra.close': z.object({ ...caseStep, outcome: z.enum(RA_CASE_OUTCOMES, { error: `must be one of ${RA_CASE_OUTCOMES.join(', ')}` }) }),
  'ra.case_refresh': z.object({ caseRef: caseRefField }),
  'helpdesk.form': z.object({}),
  // Empty values are answered by the desk ("say why", "not an email address"); hosts leave an empty input
  // out of `data`. A value over the length bound is refused here (400), naming the field.
  'helpdesk.open_case': z.object({ email: textField(MAX_EMAIL_LENGTH, true).default(''), reason: textField(MAX_HANDOFF_REASON_LENGTH, true).default('') }),
} as const satisfies Record<CardVerb, z.ZodType>;

/** A parsed card action: the verb and its validated data (answers trimmed). */
export type CardAction = {
  [V in CardVerb]: { verb: V; data: z.output<(typeof CARD_ACTION_SCHEMAS)[V]> };
}[CardVerb];

/** The parsed action of one verb, e.g. `CardActionOf<'unlock.answers'>`. */
export type CardActionOf<V extends CardVerb> = Extract<CardAction, { verb: V }>;

/**
 * The `data` a builder puts on a button of verb `V`: the verb's data without
 * the fields that come from the card's inputs.
 */
export type CardActionButtonData<V extends CardVerb> = Omit<z.input<(typeof CARD_ACTION_SCHEMAS)[V]>, CardInputId>;

/** Why an invoke value was refused. */
export type CardActionRefusal = 'not_an_action' | 'unknown_verb' | 'invalid_data';

/** Result of {@link parseCardAction}: refusal is an expected outcome, so it is returned, not thrown. */
export type CardActionParseResult =
  | { ok: true; action: CardAction }
  | { ok: false; reason: CardActionRefusal; message: string };

const KNOWN_VERBS = new Set<string>(Object.values(CARD_VERBS));

/** True when `verb` is one this service understands. */
export function isCardVerb(verb: unknown): verb is CardVerb {
  return typeof verb === 'string' && KNOWN_VERBS.has(verb);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Show at most 40 printable characters of a refused verb, quoted. */
function quoteVerb(verb: string): string {
  const printable = verb.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(printable.length > 40 ? `${printable.slice(0, 40)}…` : printable);
}

/**
 * Parse the `value` of an `adaptiveCard/action` invoke into a typed card action.
 *
 * @param invokeValue - the activity's `value`: `{ action: { type?: 'Action.Execute', verb: string, data?: object } }`
 * @returns `{ ok: true, action }` with the verb and its validated data (strings trimmed), or
 *   `{ ok: false, reason, message }` where `message` says what is wrong in plain words, e.g.
 *   `Unknown card action "x.y"; expected one of: unlock.start, ...` or
 *   `Card action "unlock.answers" refused: runId is missing; a2 is empty`. Never contains a submitted value
 *   other than the (truncated) verb.
 */
export function parseCardAction(invokeValue: unknown): CardActionParseResult {
  const action = isRecord(invokeValue) ? invokeValue['action'] : undefined;
  if (!isRecord(action)) {
    return { ok: false, reason: 'not_an_action', message: 'The invoke has no card action (value.action is missing or not an object).' };
  }
  if (action['type'] !== undefined && action['type'] !== 'Action.Execute') {
    return { ok: false, reason: 'not_an_action', message: 'Only Action.Execute card actions are accepted.' };
  }
  const verb = action['verb'];
  if (typeof verb !== 'string' || verb.length === 0) {
    return { ok: false, reason: 'not_an_action', message: 'The card action has no verb.' };
  }
  if (!isCardVerb(verb)) {
    return {
      ok: false,
      reason: 'unknown_verb',
      message: `Unknown card action ${quoteVerb(verb)}; expected one of: ${[...KNOWN_VERBS].join(', ')}.`,
    };
  }
  const rawData = action['data'] ?? {};
  if (!isRecord(rawData)) {
    return { ok: false, reason: 'invalid_data', message: `Card action "${verb}" refused: data must be an object.` };
  }
  const parsed = CARD_ACTION_SCHEMAS[verb].safeParse(rawData);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.map(String).join('.') || 'data'} ${issue.message}`);
    return { ok: false, reason: 'invalid_data', message: `Card action "${verb}" refused: ${problems.join('; ')}.` };
  }
  return { ok: true, action: { verb, data: parsed.data } as CardAction };
}
