/**
 * Cards of the registration journey (issue 3), one per step the person sees.
 * Every button carries the run id and step, so a stale or repeated click can be
 * recognised and answered with the current card (DESIGN.md, "Shape of the code").
 *
 * Two rules shape these cards:
 * - No card asks for the passcode: Teams keeps card input in the conversation,
 *   so the passcode is typed only in the companion.
 * - No card shows a security answer, not even the person's own after a refused
 *   attempt: a card's content stays in the Teams chat history. Chosen questions
 *   may be shown again; answers never are.
 */
import type { AdaptiveCard, CardElement, ChoiceSetInput, TextInput } from './adaptive-card.types';
import {
  CARD_VERBS,
  MAX_ANSWER_LENGTH,
  MAX_CODE_INPUT_LENGTH,
  MAX_EMAIL_LENGTH,
  MAX_MOBILE_LENGTH,
  QUESTION_ID_PATTERN,
  REGISTER_ANSWER_INPUT_IDS,
  REGISTER_QUESTION_COUNT,
  REGISTER_QUESTION_INPUT_IDS,
} from './card-actions';
import { adaptiveCard, execute, heading, literal, literalHeading, paragraph, run } from './card-elements';
import { EXAMPLE_PAIRING_CODE, PAIRING_CODE_MINUTES } from './pairing.card';
import type { RunStep } from './unlock.card';

/**
 * "Coming soon" answer to `register.start`, kept until the bot routes `register.start` to the journey.
 *
 * @returns a schema 1.5 card with a `help.show` button
 */
export function registerComingSoonCard(): AdaptiveCard {
  return adaptiveCard(
    [
      heading('Registration is coming soon'),
      paragraph('Soon you will be able to register for self-service unlock here: your contact details, proof that your card works, and your security questions.'),
      paragraph('Until then, your RA team can register you.'),
    ],
    [execute(CARD_VERBS.HELP_SHOW, 'Help', {})],
  );
}

const TITLE = 'Register for self-service';

function cancelButton(ids: RunStep) {
  return execute(CARD_VERBS.REGISTER_CANCEL, 'Cancel', { runId: ids.runId, step: ids.step });
}

/** A refusal or error text from the server, shown literally in the attention colour; nothing when empty. */
function errorLine(text: string | undefined): CardElement[] {
  return text !== undefined && text.trim().length > 0 ? [literal(run(text.trim(), { color: 'Attention', weight: 'Bolder' }))] : [];
}

/** An error under one field, shown literally, small and in the attention colour; nothing when empty. */
function fieldError(text: string | undefined): CardElement[] {
  return text !== undefined && text.trim().length > 0 ? [{ ...literal(run(text.trim(), { color: 'Attention', size: 'Small' })), spacing: 'Small' }] : [];
}

/** Where the contact details on the card came from. */
export type ContactPrefill = 'directory' | 'registered' | 'none';

const PREFILL_TEXT: Record<ContactPrefill, string> = {
  directory: 'We filled these in from your directory profile. Correct them if they are wrong.',
  registered: 'These are the details you registered before. Change them if they have changed.',
  none: 'Enter your work email address and, if you like, your mobile number.',
};

/**
 * Step 1: the contact details that registration codes and notices about the card go to.
 *
 * The inputs show `email` and `mobile` as given: the directory's values at first, and after a refusal the
 * values the person typed, so the card keeps what was typed.
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step, 1..64 characters
 * @param input.email - value for the `email` input (empty for none), max 254 characters
 * @param input.mobile - value for the `mobile` input (empty for none), max 32 characters
 * @param input.prefilled - where the values came from: `directory` (Microsoft Graph profile), `registered`
 *   (an earlier registration) or `none`
 * @param input.errors - why the server refused a field, e.g. `{ email: 'Use an address on nhs.net, gov.uk or mod.uk.' }`,
 *   each shown literally under its field
 * @param input.approvedDomains - optional list of approved email domains to name on the card, shown literally
 * @returns a card with inputs `email` (required, style Email) and `mobile` (optional, style Tel), "Continue"
 *   (`register.contact`, sends and validates the inputs) and "Cancel" (`register.cancel`)
 */
export function registerContactCard(
  input: RunStep & {
    email: string;
    mobile: string;
    prefilled: ContactPrefill;
    errors?: { email?: string; mobile?: string };
    approvedDomains?: ReadonlyArray<string>;
  },
): AdaptiveCard {
  const email: TextInput = {
    type: 'Input.Text',
    id: 'email',
    label: 'Work email address',
    style: 'Email',
    isRequired: true,
    errorMessage: 'Enter your work email address.',
    maxLength: MAX_EMAIL_LENGTH,
    spacing: 'Medium',
    ...(input.email.length > 0 ? { value: input.email } : {}),
  };
  const mobile: TextInput = {
    type: 'Input.Text',
    id: 'mobile',
    label: 'Mobile number (UK)',
    style: 'Tel',
    isRequired: false,
    placeholder: 'For example 07700 900123',
    maxLength: MAX_MOBILE_LENGTH,
    spacing: 'Medium',
    ...(input.mobile.length > 0 ? { value: input.mobile } : {}),
  };
  const domains = (input.approvedDomains ?? []).map((d) => d.trim()).filter((d) => d.length > 0);
  const body: CardElement[] = [
    heading(TITLE),
    paragraph('First, check your contact details. Your registration code is emailed to this address, and we use these details to tell you about your card, for example when it is unlocked.'),
    paragraph(PREFILL_TEXT[input.prefilled], { isSubtle: true }),
  ];
  if (domains.length > 0) {
    body.push(literal('Use your work email address: it must end in ', run(domains.join(', ')), ' (sub-domains are fine).'));
  }
  body.push(email, ...fieldError(input.errors?.email), mobile, ...fieldError(input.errors?.mobile));
  return adaptiveCard(body, [
    execute(CARD_VERBS.REGISTER_CONTACT, 'Continue', { runId: input.runId, step: input.step }, { associatedInputs: 'auto', style: 'positive' }),
    cancelButton(input),
  ]);
}

/** What the companion last said about the card check. */
export type CardCheckState = 'waiting' | 'wrong_passcode' | 'no_card' | 'no_companion' | 'companion_offline' | 'card_error';

function triesText(n: number): string {
  return `${n} ${n === 1 ? 'try' : 'tries'} left`;
}

function cardCheckStateBody(input: { state: CardCheckState; triesLeft?: number; workstation?: string }): CardElement[] {
  const where = input.workstation?.trim();
  switch (input.state) {
    case 'waiting':
      return [
        where
          ? literal('The Smartcard Assist companion on ', run(where, { weight: 'Bolder' }), ' is waiting for your passcode.')
          : literal('The Smartcard Assist companion is waiting for your passcode.'),
        paragraph('Keep your card in the reader. This card updates when the companion has checked your passcode.', { isSubtle: true }),
      ];
    case 'wrong_passcode': {
      if (input.triesLeft === undefined) {
        return [literal(run('The passcode was not right.', { color: 'Attention', weight: 'Bolder' })), paragraph('Try again in the companion. Each wrong passcode uses up one of your card\'s tries.')];
      }
      if (input.triesLeft === 0) {
        return [
          literal(run('The passcode was not right, and your card is now locked.', { color: 'Attention', weight: 'Bolder' })),
          paragraph('You need to unlock your card before you can register it: say "unlock" if you registered before, or contact your RA team.'),
        ];
      }
      return [
        literal(run(`The passcode was not right. Your card has ${triesText(input.triesLeft)}.`, { color: 'Attention', weight: 'Bolder' })),
        paragraph('When no tries are left, the card locks and you cannot use it until it is unlocked. If you are not sure of your passcode, stop here and contact your RA team.', {
          color: 'Warning',
        }),
      ];
    }
    case 'no_card':
      return [paragraph('There is no card in your reader. Put your smartcard in the reader, then choose Check again.')];
    case 'no_companion':
      return [
        paragraph('The Smartcard Assist companion is not paired with your account yet. Pair it once on the computer where your card reader is:'),
        paragraph('1. Open the Smartcard Assist companion (its icon is in the system tray).'),
        paragraph(`2. It shows a pairing code like ${EXAMPLE_PAIRING_CODE}.`, { spacing: 'Small' }),
        paragraph(`3. Send "pair ${EXAMPLE_PAIRING_CODE}" here, with your own code, then choose Check again.`, { spacing: 'Small' }),
        paragraph(`The code works for ${PAIRING_CODE_MINUTES} minutes. If it runs out, the companion shows a new one.`, { isSubtle: true }),
      ];
    case 'companion_offline':
      return [
        where
          ? literal('Your Smartcard Assist companion on ', run(where, { weight: 'Bolder' }), ' is not connected.')
          : literal('Your Smartcard Assist companion is not connected.'),
        paragraph('Make sure that computer is switched on and the companion is running (its icon is in the system tray), then choose Check again.'),
      ];
    case 'card_error':
      return [
        paragraph('The companion could not read your card.'),
        paragraph('Take the card out of the reader, put it back in, and choose Check again. If this keeps happening, contact your RA team.'),
      ];
  }
}

/**
 * Step 2: prove the person holds a working card by typing its passcode in the companion (PIV VERIFY on the card).
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step
 * @param input.state - `waiting` (companion prompting), `wrong_passcode`, `no_card`, `no_companion` (not paired:
 *   shows how to pair), `companion_offline`, `card_error`
 * @param input.triesLeft - with `wrong_passcode`: the card's PIN retry counter, a whole number >= 0, shown as
 *   "Your card has N tries left."
 * @param input.workstation - the paired companion's workstation name, shown literally
 * @returns a card with "Check again" (`register.check_card`) and "Cancel" (`register.cancel`)
 * @throws RangeError when `triesLeft` is given and is not a whole number >= 0
 */
export function registerCardCheckCard(input: RunStep & { state: CardCheckState; triesLeft?: number; workstation?: string }): AdaptiveCard {
  if (input.triesLeft !== undefined && (!Number.isInteger(input.triesLeft) || input.triesLeft < 0)) {
    throw new RangeError(`registerCardCheckCard needs triesLeft as a whole number >= 0, got ${input.triesLeft}`);
  }
  return adaptiveCard(
    [
      heading('Check your card'),
      paragraph('Prove you hold a working card: open the Smartcard Assist companion on this computer and type your current passcode there.'),
      paragraph('Never type your passcode in Teams.', { weight: 'Bolder', color: 'Attention' }),
      ...cardCheckStateBody(input),
    ],
    [execute(CARD_VERBS.REGISTER_CHECK_CARD, 'Check again', { runId: input.runId, step: input.step }, { style: 'positive' }), cancelButton(input)],
  );
}

/** One question of the bank: id such as `q07` and its text (the service's own wording). */
export interface BankQuestion {
  id: string;
  text: string;
}

/**
 * Step 3: choose 4 different questions from the bank and answer each.
 *
 * WARNING: this builder takes no answers, on purpose. A card's content stays in the Teams chat history, so
 * after a refusal the card comes back with the chosen questions and empty answers.
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step
 * @param input.bank - the question bank (20 in the design): at least 4 questions with distinct ids matching
 *   `/^q\d{2}$/`; every picker offers all of them, in this order
 * @param input.chosen - question ids to pre-select in pickers `q1`..`q4`; an id not in the bank is left out
 * @param input.error - why the last attempt was refused, shown literally, e.g. "Choose 4 different questions."
 * @returns a card with pickers `q1`..`q4` (required, compact) each followed by answer input `a1`..`a4`
 *   (required, plain text, max 200 characters), "Save my answers" (`register.questions`, sends and validates the
 *   inputs) and "Cancel" (`register.cancel`)
 * @throws RangeError when the bank has fewer than 4 questions, a repeated id, or an id not like `q07`
 */
export function registerQuestionsCard(
  input: RunStep & {
    bank: ReadonlyArray<BankQuestion>;
    chosen?: { q1?: string; q2?: string; q3?: string; q4?: string };
    error?: string;
  },
): AdaptiveCard {
  if (input.bank.length < REGISTER_QUESTION_COUNT) {
    throw new RangeError(`registerQuestionsCard needs at least ${REGISTER_QUESTION_COUNT} questions in the bank, got ${input.bank.length}`);
  }
  const ids = new Set<string>();
  for (const q of input.bank) {
    if (!QUESTION_ID_PATTERN.test(q.id)) throw new RangeError(`registerQuestionsCard: bank question id ${JSON.stringify(q.id)} is not like q07`);
    if (ids.has(q.id)) throw new RangeError(`registerQuestionsCard: bank question id ${q.id} appears twice`);
    ids.add(q.id);
  }
  const choices = input.bank.map((q) => ({ title: q.text, value: q.id }));
  const body: CardElement[] = [
    heading('Choose your security questions'),
    paragraph(
      `Choose ${REGISTER_QUESTION_COUNT} different questions and answer each one. When you unlock your card, we ask you 3 of them, so choose answers you will remember and that others cannot look up.`,
    ),
    paragraph('Each answer needs at least 3 characters, and no two answers can be the same. Capital letters and extra spaces do not matter.', { isSubtle: true }),
    paragraph('Your answers are stored only as a one-way hash: nobody can read them, and they are never shown again, here or anywhere else. Do not use your passcode as an answer.', {
      isSubtle: true,
    }),
    ...errorLine(input.error),
  ];
  REGISTER_QUESTION_INPUT_IDS.forEach((qid, i) => {
    const chosen = input.chosen?.[qid];
    const picker: ChoiceSetInput = {
      type: 'Input.ChoiceSet',
      id: qid,
      label: `Question ${i + 1}`,
      style: 'compact',
      choices: choices.map((c) => ({ ...c })),
      isRequired: true,
      errorMessage: 'Choose a question.',
      placeholder: 'Choose a question',
      wrap: true,
      spacing: 'Large',
      ...(chosen !== undefined && ids.has(chosen) ? { value: chosen } : {}),
    };
    const answer: TextInput = {
      type: 'Input.Text',
      id: REGISTER_ANSWER_INPUT_IDS[i]!,
      label: `Answer ${i + 1}`,
      isRequired: true,
      errorMessage: 'Enter your answer to this question.',
      maxLength: MAX_ANSWER_LENGTH,
    };
    body.push(picker, answer);
  });
  return adaptiveCard(body, [
    execute(CARD_VERBS.REGISTER_QUESTIONS, 'Save my answers', { runId: input.runId, step: input.step }, { associatedInputs: 'auto', style: 'positive' }),
    cancelButton(input),
  ]);
}

/**
 * Step 4: confirm the address the registration code goes to.
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step
 * @param input.email - the address the code will go to, shown literally
 * @param input.canChange - true for a first registration (offers input `email` for another work address);
 *   false when re-registering (the code goes to the address already registered)
 * @param input.error - why a different address was refused, shown literally
 * @param input.typedEmail - with `canChange`: the different address the person typed, put back in the input
 *   after a refusal
 * @returns a card with "Email me the code" (`register.send_code`; sends the `email` input only when
 *   `canChange`, where missing or empty means "use `email`") and "Cancel" (`register.cancel`)
 */
export function registerConfirmEmailCard(input: RunStep & { email: string; canChange: boolean; error?: string; typedEmail?: string }): AdaptiveCard {
  const body: CardElement[] = [
    heading('Confirm your email address'),
    literal('We will email a registration code to ', run(input.email, { weight: 'Bolder' }), '.'),
    ...errorLine(input.error),
  ];
  if (input.canChange) {
    const typed = input.typedEmail?.trim() ?? '';
    body.push({
      type: 'Input.Text',
      id: 'email',
      label: 'Send it to a different work address (optional)',
      style: 'Email',
      isRequired: false,
      maxLength: MAX_EMAIL_LENGTH,
      spacing: 'Medium',
      ...(typed.length > 0 ? { value: typed } : {}),
    });
    body.push(paragraph('Leave this empty to use the address above. A different address is checked in the same way.', { isSubtle: true, spacing: 'Small' }));
  } else {
    body.push(
      paragraph('You are already registered, so for your security the code goes to the address you registered before. If you can no longer read email there, contact your RA team.', {
        isSubtle: true,
      }),
    );
  }
  return adaptiveCard(body, [
    execute(
      CARD_VERBS.REGISTER_SEND_CODE,
      'Email me the code',
      { runId: input.runId, step: input.step },
      { associatedInputs: input.canChange ? 'auto' : 'none', style: 'positive' },
    ),
    cancelButton(input),
  ]);
}

/**
 * Step 5: enter the emailed registration code.
 *
 * @param input.runId - journey run id (UUID)
 * @param input.step - current step
 * @param input.maskedEmail - the address, already masked (see `maskEmail`), shown literally
 * @param input.expiresAtText - local expiry time as text, e.g. "09:45", shown literally
 * @param input.minutes - how long the code works, in minutes (15 by the design)
 * @param input.error - why the last code was refused, shown literally, e.g. "That code is not right. 4 tries left."
 * @param input.canResend - true to offer "Send a new code" (false once the hourly limit is reached)
 * @returns a card with input `code` (required, max 20 characters), "Confirm" (`register.code`, sends and
 *   validates the input), "Send a new code" (`register.resend_code`, only when `canResend`) and "Cancel"
 */
export function registerCodeCard(
  input: RunStep & { maskedEmail: string; expiresAtText: string; minutes: number; error?: string; canResend: boolean },
): AdaptiveCard {
  const code: TextInput = {
    type: 'Input.Text',
    id: 'code',
    label: 'Registration code',
    isRequired: true,
    errorMessage: 'Enter the code from the email.',
    placeholder: '8 digits',
    maxLength: MAX_CODE_INPUT_LENGTH,
    spacing: 'Medium',
  };
  return adaptiveCard(
    [
      heading('Enter your registration code'),
      literal(
        'We have emailed a registration code to ',
        run(input.maskedEmail, { weight: 'Bolder' }),
        `. It works for ${input.minutes} minutes (until `,
        run(input.expiresAtText),
        ').',
      ),
      ...errorLine(input.error),
      code,
      paragraph(
        input.canResend
          ? 'No email after a few minutes? Look in your junk mail folder, or send a new code.'
          : 'No email after a few minutes? Look in your junk mail folder.',
        { isSubtle: true },
      ),
    ],
    [
      execute(CARD_VERBS.REGISTER_CODE, 'Confirm', { runId: input.runId, step: input.step }, { associatedInputs: 'auto', style: 'positive' }),
      ...(input.canResend ? [execute(CARD_VERBS.REGISTER_RESEND_CODE, 'Send a new code', { runId: input.runId, step: input.step })] : []),
      cancelButton(input),
    ],
  );
}

/**
 * Registration is complete: what was registered (never the answers).
 *
 * @param input.email - the registered address, shown literally
 * @param input.mobile - the registered mobile number (E.164 or as displayed), shown literally; null when none
 * @param input.questionsCount - number of security questions registered (4)
 * @param input.cardRegistered - always true: the card was verified and bound (a registration always binds one)
 * @param input.selfUnlockReady - false when the card has no enrolled PUK yet, so unlocking still needs RA
 * @param input.raContact - how to reach the RA team, shown literally
 * @returns a card with no buttons
 */
export function registerDoneCard(input: {
  email: string;
  mobile: string | null;
  questionsCount: 4;
  cardRegistered: true;
  selfUnlockReady: boolean;
  raContact: string;
}): AdaptiveCard {
  const mobile = input.mobile?.trim();
  const body: CardElement[] = [
    heading('You are registered for self-service', 'Good'),
    paragraph('This is what we registered:'),
    literal('Email: ', run(input.email, { weight: 'Bolder' })),
    mobile ? literal('Mobile: ', run(mobile, { weight: 'Bolder' })) : literal('Mobile: ', run('none given', { isSubtle: true })),
    paragraph('Smartcard: the card you checked with your passcode', { spacing: 'Small' }),
    paragraph(`Security questions: ${input.questionsCount}. Your answers are stored only as a one-way hash and are never shown.`, { spacing: 'Small' }),
  ];
  if (input.selfUnlockReady) {
    body.push(paragraph('If your card ever locks, you can unlock it yourself: say "unlock" here.', { spacing: 'Medium' }));
  } else {
    body.push(
      literal(
        run('Your card is not yet enrolled for self-unlock: until it is, contact ', { color: 'Warning', weight: 'Bolder' }),
        run(input.raContact, { color: 'Warning', weight: 'Bolder' }),
        run(' to unlock it. We have let them know.', { color: 'Warning', weight: 'Bolder' }),
      ),
    );
  }
  body.push(paragraph('We have also sent you an email to confirm this. If you did not register, contact your RA team straight away.', { isSubtle: true }));
  return adaptiveCard(body);
}

/**
 * The registration ended without completing: cancelled, expired or failed.
 *
 * @param input.title - e.g. "Registration cancelled", shown literally
 * @param input.message - what happened and what to do, shown literally
 * @returns a card with "Start again" (`register.start`)
 */
export function registerEndedCard(input: { title: string; message: string }): AdaptiveCard {
  return adaptiveCard([literalHeading(input.title), literal(input.message)], [execute(CARD_VERBS.REGISTER_START, 'Start again', {})]);
}

/**
 * A problem that stops the registration, e.g. self-service locked by RA, the card is bound to someone else,
 * the card is blocked.
 *
 * @param input.title - short title, shown literally, e.g. "Your card is locked"
 * @param input.message - what to do, shown literally, e.g. 'Say "unlock" to unlock it first, or contact your RA team.'
 * @param input.canRetry - true to offer "Try again" (`register.check_card`); needs `runId` and `step`
 * @param input.runId - journey run id (UUID), when the run is still open
 * @param input.step - current step, with `runId`; together they add "Cancel" (`register.cancel`)
 * @param input.offerUnlock - true to offer "Unlock my smartcard" (`unlock.start`), e.g. for a blocked card
 * @returns a card with "Try again", "Unlock my smartcard" and "Cancel" as asked; with none of them, "Help" (`help.show`)
 * @throws RangeError when `canRetry` is true without `runId` and `step`
 */
export function registerProblemCard(input: {
  title: string;
  message: string;
  canRetry: boolean;
  runId?: string;
  step?: string;
  offerUnlock?: boolean;
}): AdaptiveCard {
  const ids = input.runId !== undefined && input.step !== undefined ? { runId: input.runId, step: input.step } : undefined;
  if (input.canRetry && !ids) throw new RangeError('registerProblemCard needs runId and step when canRetry is true');
  const actions = [
    ...(input.canRetry && ids ? [execute(CARD_VERBS.REGISTER_CHECK_CARD, 'Try again', ids, { style: 'positive' })] : []),
    ...(input.offerUnlock ? [execute(CARD_VERBS.UNLOCK_START, 'Unlock my smartcard', {})] : []),
    ...(ids ? [cancelButton(ids)] : []),
  ];
  return adaptiveCard(
    [literalHeading(input.title, 'Attention'), literal(input.message)],
    actions.length > 0 ? actions : [execute(CARD_VERBS.HELP_SHOW, 'Help', {})],
  );
}
