/**
 * Cards of the unlock journey, one per step the person sees. Every button
 * carries the run id and step, so a stale or repeated click can be recognised
 * and answered with the current card (DESIGN.md, "Shape of the code").
 *
 * No card ever asks for a passcode: Teams stores card input in the
 * conversation, so the passcode is typed only in the companion.
 */
import type { AdaptiveCard, CardElement, TextInput } from './adaptive-card.types';
import { ANSWER_INPUT_IDS, CARD_VERBS, MAX_ANSWER_LENGTH } from './card-actions';
import { adaptiveCard, execute, heading, literal, literalHeading, paragraph, run } from './card-elements';

/** Identifies the journey run and the step a card belongs to. */
export interface RunStep {
  /** Journey run id (UUID). */
  runId: string;
  /** Step name or counter, 1..64 characters; echoed back by every button. */
  step: string;
}

/** Number of security questions asked in one unlock attempt. */
export const QUESTIONS_PER_ATTEMPT = 3;

function cancelButton(ids: RunStep) {
  return execute(CARD_VERBS.UNLOCK_CANCEL, 'Cancel', { runId: ids.runId, step: ids.step });
}

/**
 * "Checking the card in your reader…" while the companion reports the card.
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step
 * @param input.message - what is happening, shown literally
 * @returns a card with "Check again" (`unlock.check_card`) and "Cancel" (`unlock.cancel`)
 */
export function unlockCheckingCard(input: RunStep & { message: string }): AdaptiveCard {
  return adaptiveCard(
    [heading('Unlock your smartcard'), literal(input.message), paragraph('Keep your card in the reader.', { isSubtle: true })],
    [execute(CARD_VERBS.UNLOCK_CHECK_CARD, 'Check again', { runId: input.runId, step: input.step }), cancelButton(input)],
  );
}

/**
 * A problem that stops the unlock for now: no card, wrong card, card not locked, companion offline.
 *
 * @param input.title - short title, shown literally, e.g. "This is not your registered card"
 * @param input.message - what to do, shown literally
 * @param input.canRetry - true to offer a retry (`unlock.check_card`)
 * @param input.tone - `problem` (default): something is wrong, the title in the attention colour and a
 *   "Try again" button; `information`: nothing is wrong but there is nothing to do (e.g. the card is not
 *   locked), the title in the accent colour and a plain "Check again" button
 * @returns a card with the retry button (when `canRetry`) and "Cancel"
 */
export function unlockProblemCard(input: RunStep & { title: string; message: string; canRetry: boolean; tone?: 'problem' | 'information' }): AdaptiveCard {
  const information = input.tone === 'information';
  const retry = information
    ? execute(CARD_VERBS.UNLOCK_CHECK_CARD, 'Check again', { runId: input.runId, step: input.step })
    : execute(CARD_VERBS.UNLOCK_CHECK_CARD, 'Try again', { runId: input.runId, step: input.step }, { style: 'positive' });
  return adaptiveCard([literalHeading(input.title, information ? 'Accent' : 'Attention'), literal(input.message)], [...(input.canRetry ? [retry] : []), cancelButton(input)]);
}

/**
 * The three security questions on one card.
 *
 * WARNING: anything put in `values` is stored by Teams in the conversation with the card. Pass
 * answers back only if the journey has a reason to; after a failed check, send the card empty.
 *
 * @param input.questions - exactly 3 questions; `text` becomes the label of inputs `a1`, `a2`, `a3` (in order)
 * @param input.attemptsLeft - attempts left including this one (integer >= 1), shown as "N attempts left"
 * @param input.error - why the last attempt failed, shown literally, e.g. "One or more answers did not match."
 * @param input.values - values to pre-fill the inputs with
 * @returns a card with "Check my answers" (`unlock.answers`, sends and validates the inputs) and "Cancel"
 * @throws RangeError when there are not exactly 3 questions or `attemptsLeft` is not a whole number >= 0
 */
export function unlockQuestionsCard(
  input: RunStep & {
    questions: ReadonlyArray<{ id: string; text: string }>;
    attemptsLeft: number;
    error?: string;
    values?: { a1?: string; a2?: string; a3?: string };
  },
): AdaptiveCard {
  if (input.questions.length !== QUESTIONS_PER_ATTEMPT) {
    throw new RangeError(`unlockQuestionsCard needs exactly ${QUESTIONS_PER_ATTEMPT} questions, got ${input.questions.length}`);
  }
  if (!Number.isInteger(input.attemptsLeft) || input.attemptsLeft < 0) {
    throw new RangeError(`unlockQuestionsCard needs attemptsLeft as a whole number >= 0, got ${input.attemptsLeft}`);
  }
  const inputs: TextInput[] = ANSWER_INPUT_IDS.map((id, i) => {
    const value = input.values?.[id];
    return {
      type: 'Input.Text',
      id,
      label: input.questions[i]!.text,
      isRequired: true,
      errorMessage: 'Enter your answer to this question.',
      maxLength: MAX_ANSWER_LENGTH,
      spacing: 'Medium',
      ...(value !== undefined ? { value } : {}),
    };
  });
  const attempts = `${input.attemptsLeft} ${input.attemptsLeft === 1 ? 'attempt' : 'attempts'} left`;
  const body: CardElement[] = [
    heading('Answer your security questions'),
    paragraph('Answer as you did when you registered. Capital letters and extra spaces do not matter.'),
    literal(run(attempts, { weight: 'Bolder', ...(input.attemptsLeft <= 1 ? { color: 'Warning' as const } : {}) })),
  ];
  if (input.error !== undefined && input.error.trim().length > 0) {
    body.push(literal(run(input.error, { color: 'Attention', weight: 'Bolder' })));
  }
  body.push(...inputs);
  return adaptiveCard(body, [
    execute(CARD_VERBS.UNLOCK_ANSWERS, 'Check my answers', { runId: input.runId, step: input.step }, { associatedInputs: 'auto', style: 'positive' }),
    cancelButton(input),
  ]);
}

/**
 * The unlock code was emailed; the person continues in the companion.
 *
 * @param input.maskedEmail - the address, already masked (see `maskEmail`), shown literally
 * @param input.expiresAtText - local expiry time as text, e.g. "09:45"
 * @param input.minutes - how long the code works, in minutes
 * @param input.note - a line above the rest, shown as given (e.g. why no security questions were asked)
 * @param input.maskedMobile - set when the code went by SMS: the number, already masked (`maskMobile`)
 * @param input.page - set when the companion said it brought its page to the person (issue #13): `opened`
 *   (in the browser) or `notified` (a notification opens it), and the paired computer's name (null: unknown);
 *   absent: the general "open the companion" line
 * @returns a card with "Send a new code" (`unlock.resend_code`) and "Cancel"
 */
export function unlockCodeSentCard(
  input: RunStep & { maskedEmail: string; expiresAtText: string; minutes: number; note?: string; maskedMobile?: string; page?: { shown: 'opened' | 'notified'; workstation: string | null } },
): AdaptiveCard {
  const sms = input.maskedMobile !== undefined;
  return adaptiveCard(
    [
      heading(sms ? 'Check your phone' : 'Check your email'),
      ...(input.note ? [paragraph(input.note, { weight: 'Bolder' as const })] : []),
      literal(
        sms ? 'We have sent an unlock code by text message to ' : 'We have emailed an unlock code to ',
        run(sms ? input.maskedMobile! : input.maskedEmail, { weight: 'Bolder' }),
        `. It works for ${input.minutes} minutes (until `,
        run(input.expiresAtText),
        ').',
      ),
      paragraph(whereToEnterCode(input.page)),
      paragraph('Never type your passcode in Teams.', { weight: 'Bolder', color: 'Attention' }),
      paragraph(sms ? 'No text after a few minutes? Send a new code.' : 'No email after a few minutes? Look in your junk mail folder, or send a new code.', { isSubtle: true }),
    ],
    [execute(CARD_VERBS.UNLOCK_RESEND_CODE, 'Send a new code', { runId: input.runId, step: input.step }), cancelButton(input)],
  );
}

/** The line saying where the person enters the code: on the page the companion brought to them, or the general one. */
function whereToEnterCode(page: { shown: 'opened' | 'notified'; workstation: string | null } | undefined): string {
  if (!page) return 'Open the Smartcard Assist companion on this computer and enter the code there with your new passcode.';
  const where = page.workstation ? `on ${page.workstation}` : 'on your computer';
  return page.shown === 'opened'
    ? `The companion's page has opened ${where}: enter the code there with your new passcode.`
    : `A notification ${where} opens the companion's page: enter the code there with your new passcode.`;
}

/**
 * The code was accepted and the companion is setting the new passcode on the card.
 *
 * @param input.message - what is happening, shown literally, e.g. "Code accepted. Setting your new passcode on the card…"
 * @returns a card with no buttons (nothing should interrupt the card while it is being unlocked)
 */
export function unlockWorkingCard(input: RunStep & { message: string }): AdaptiveCard {
  return adaptiveCard([heading('Unlocking your smartcard'), literal(input.message), paragraph('Keep your card in the reader until this finishes.', { isSubtle: true })]);
}

/**
 * The card is unlocked.
 *
 * @param input.at - when, as display text with its zone, e.g. "19:10 GMT" (from `clockTime` in
 *   common/clock-time.ts), shown literally. Not the Adaptive Cards `{{TIME()}}` function: the host
 *   renders that in its own format ("6:55 PM"), unlike every other time the person sees.
 * @param input.workstation - the workstation where it happened, shown literally
 * @returns a card with no buttons
 */
export function unlockDoneCard(input: { at: string; workstation?: string }): AdaptiveCard {
  const body: CardElement[] = [heading('Your smartcard is unlocked', 'Good'), literal('Your new passcode was set at ', run(input.at), '.')];
  const where = input.workstation?.trim();
  if (where) body.push(literal('Computer: ', run(where, { weight: 'Bolder' })));
  body.push(
    paragraph('You can use your card with its new passcode now.'),
    paragraph('We have also sent you an email to confirm this. If you did not unlock your card, contact your RA team straight away.', { isSubtle: true }),
  );
  return adaptiveCard(body);
}

/**
 * Self-service is locked after 3 failed attempts; an RA case was opened.
 *
 * @param input.caseRef - the RA case reference, e.g. "RA-7K2Q9D", shown literally
 * @returns a card with no buttons
 */
export function unlockLockedOutCard(input: { caseRef: string }): AdaptiveCard {
  return adaptiveCard([
    heading('Self-service unlock is locked', 'Attention'),
    paragraph('Your answers did not match 3 times, so self-service unlock is now locked for your account. This protects your card.'),
    paragraph('Contact your RA team to unlock your card, and quote this reference:'),
    literal(run(input.caseRef, { size: 'Large', weight: 'Bolder', fontType: 'Monospace' })),
  ]);
}

/**
 * The unlock ended without unlocking: cancelled, expired or failed.
 *
 * @param input.title - e.g. "Unlock cancelled", shown literally
 * @param input.message - what happened and what to do, shown literally
 * @returns a card with "Start again" (`unlock.start`)
 */
export function unlockEndedCard(input: { title: string; message: string }): AdaptiveCard {
  return adaptiveCard([literalHeading(input.title), literal(input.message)], [execute(CARD_VERBS.UNLOCK_START, 'Start again', {})]);
}

/**
 * Code-only (issue #14): the person has an approved email and a UK mobile; they pick where the code goes.
 *
 * @param input.maskedEmail - the address, already masked (`maskEmail`), e.g. `a•••@nhs.net`
 * @param input.maskedMobile - the number, already masked (`maskMobile`), e.g. `07••• •••123`
 * @returns a card with "Email me" and "Text me" (`unlock.choose_channel` with `channel`) and "Cancel"
 */
export function unlockChooseChannelCard(input: RunStep & { maskedEmail: string; maskedMobile: string }): AdaptiveCard {
  return adaptiveCard(
    [
      heading('Where should we send your unlock code?'),
      paragraph('Your card checked out. We will send a one-time code; you then enter it in the Smartcard Assist companion with your new passcode.'),
      literal('Email: ', run(input.maskedEmail, { weight: 'Bolder' })),
      literal('Mobile: ', run(input.maskedMobile, { weight: 'Bolder' })),
    ],
    [
      execute(CARD_VERBS.UNLOCK_CHOOSE_CHANNEL, 'Email me', { runId: input.runId, step: input.step, channel: 'email' }, { style: 'positive' }),
      execute(CARD_VERBS.UNLOCK_CHOOSE_CHANNEL, 'Text me', { runId: input.runId, step: input.step, channel: 'sms' }),
      cancelButton(input),
    ],
  );
}
