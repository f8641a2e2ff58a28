/**
 * The helpdesk handoff form (issue #12): a helpdesk member opens an RA case
 * for someone from Teams by typing the person's registered email and a reason
 * on a card (the same as typing "open case for name@nhs.net: reason"). The
 * click is an `Action.Execute` (`helpdesk.open_case`) whose inputs `email` and
 * `reason` Teams merges into its data. The answer replaces the form: the case
 * reference when a case is open for the person, else the form again with what
 * was wrong and the values as typed.
 */
import type { AdaptiveCard, CardElement, TextInput } from './adaptive-card.types';
import { CARD_VERBS, MAX_EMAIL_LENGTH, MAX_HANDOFF_REASON_LENGTH } from './card-actions';
import { adaptiveCard, execute, heading, literal, paragraph, run } from './card-elements';

/** What the helpdesk form shows. */
export interface HelpdeskFormInput {
  /** The email as typed last time (kept after a refusal), or ''. Shown literally. */
  email: string;
  /** The reason as typed last time, or ''. Shown literally. */
  reason: string;
  /** What was wrong with the last try (server wording, shown literally), or null. */
  error: string | null;
}

/**
 * Build the helpdesk handoff form.
 *
 * @param input - values to keep and the last error; see {@link HelpdeskFormInput}
 * @returns a schema 1.5 card with the inputs `email` (required, max {@link MAX_EMAIL_LENGTH}) and
 *   `reason` (required, max {@link MAX_HANDOFF_REASON_LENGTH}) and one button, "Open RA case"
 *   (`helpdesk.open_case`, associatedInputs auto)
 */
export function helpdeskFormCard(input: HelpdeskFormInput): AdaptiveCard {
  const email: TextInput = {
    type: 'Input.Text',
    id: 'email',
    label: "Person's registered email",
    style: 'Email',
    isRequired: true,
    errorMessage: "Enter the person's email address.",
    placeholder: 'name@nhs.net',
    maxLength: MAX_EMAIL_LENGTH,
    spacing: 'Medium',
    ...(input.email.length > 0 ? { value: input.email } : {}),
  };
  const reason: TextInput = {
    type: 'Input.Text',
    id: 'reason',
    label: 'Reason (the RA team sees it)',
    isRequired: true,
    errorMessage: 'Say why the person needs their RA team.',
    placeholder: 'For example: locked out, identity checked by phone. Never a passcode or code.',
    maxLength: MAX_HANDOFF_REASON_LENGTH,
    spacing: 'Medium',
    ...(input.reason.length > 0 ? { value: input.reason } : {}),
  };
  const body: CardElement[] = [
    heading('Open an RA case for someone'),
    paragraph('The RA team gets a case card in their channel, and the person is told in their Teams chat with Smartcard Assist.'),
  ];
  if (input.error) body.push(literal(run(input.error, { color: 'Attention', weight: 'Bolder' })));
  body.push(email, reason);
  return adaptiveCard(body, [execute(CARD_VERBS.HELPDESK_OPEN_CASE, 'Open RA case', {}, { associatedInputs: 'auto', style: 'positive' })]);
}

/**
 * The answer to a handoff that found the person: the case reference, big, and what happened.
 *
 * @param input.caseRef - e.g. `RA-7K2Q9D`
 * @param input.person - whom the case is for (shown literally)
 * @param input.created - true: a case was opened now; false: the person already had this one
 * @param input.personTold - whether the person could be told in Teams (a new case only)
 * @returns a schema 1.5 card with one button to open another case (`helpdesk.form`)
 */
export function helpdeskCaseCard(input: { caseRef: string; person: { displayName: string; email: string }; created: boolean; personTold: boolean }): AdaptiveCard {
  const body: CardElement[] = [
    heading(input.created ? 'RA case opened' : 'This person already has an RA case', input.created ? 'Good' : 'Warning'),
    literal(run(input.caseRef, { size: 'Large', weight: 'Bolder', fontType: 'Monospace' })),
    literal('For ', run(input.person.displayName, { weight: 'Bolder' }), ' (', run(input.person.email), ')'),
  ];
  if (input.created) {
    body.push(
      paragraph(
        input.personTold
          ? 'The RA team has the case, and the person has been told in their Teams chat with Smartcard Assist.'
          : 'The RA team has the case. The person has not chatted with Smartcard Assist yet, so they could not be told in Teams: give them the reference.',
      ),
    );
  } else {
    body.push(paragraph('Nothing new was opened. Quote this reference to the RA team.'));
  }
  return adaptiveCard(body, [execute(CARD_VERBS.HELPDESK_FORM, 'Open another case', {})]);
}

/**
 * The answer to someone who is not helpdesk staff (no form).
 *
 * @returns a schema 1.5 card with no buttons
 */
export function helpdeskRefusedCard(): AdaptiveCard {
  return adaptiveCard([
    heading('Only helpdesk staff can open RA cases for someone else', 'Attention'),
    paragraph('Nothing was opened, and your request was recorded. If this is about your own card, say "talk to RA".'),
  ]);
}
