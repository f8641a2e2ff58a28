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
} as const;

/** A verb this service understands. */
export type CardVerb = (typeof CARD_VERBS)[keyof typeof CARD_VERBS];

/** Longest accepted security answer, in characters after trimming. */
export const MAX_ANSWER_LENGTH = 200;

/** Ids of the three answer inputs on the questions card; Teams merges them into `data`. */
export const ANSWER_INPUT_IDS = ['a1', 'a2', 'a3'] as const;
export type AnswerInputId = (typeof ANSWER_INPUT_IDS)[number];

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
  'unlock.answers': z.object({ ...runStep, a1: answerField, a2: answerField, a3: answerField }),
  'unlock.cancel': z.object(runStep),
  'unlock.resend_code': z.object(runStep),
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
export type CardActionButtonData<V extends CardVerb> = Omit<z.input<(typeof CARD_ACTION_SCHEMAS)[V]>, AnswerInputId>;

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
