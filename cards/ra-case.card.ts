/**
 * The RA case card, posted to the RA team's channel (issue #12). It shows who
 * the person is and which card, why the case opened, what the person already
 * did (the journey's steps with times, attempts used, codes sent) and what RA
 * did; never a secret (no passcode, PUK, code or answer is ever given to it).
 *
 * Buttons are `Action.Execute` (Universal Actions) carrying the case
 * reference and the case step the card shows, so a stale or repeated click is
 * recognised; `refresh` with `userIds` lets Teams fetch the current card for
 * RA members when they view it.
 */
import type { AdaptiveCard, CardElement, ExecuteAction, Fact } from './adaptive-card.types';
import { CARD_VERBS, MAX_RA_NOTE_LENGTH, RA_CASE_OUTCOMES } from './card-actions';
import { adaptiveCard, execute, heading, literal, paragraph, run } from './card-elements';

/** One dated line: `text` is the service's own wording (markdown allowed), never a value from a person. */
export interface DatedLine {
  at: Date;
  text: string;
}

/** What the RA case card shows. */
export interface RaCaseCardInput {
  /** e.g. `RA-7K2Q9D`. */
  caseRef: string;
  /** The case step (echoed by every button). */
  step: number;
  status: 'open' | 'claimed' | 'assisted' | 'closed';
  /** Owner's display name, shown literally, or null. */
  ownerName: string | null;
  /** Shown literally. */
  person: { displayName: string; email: string; cardId: string | null };
  /** Why the case opened (own wording). */
  reasonText: string;
  openedAt: Date;
  /** The person's journey steps, oldest first (own wording). */
  journeySteps: DatedLine[];
  attemptsUsed: number;
  codesSent: number;
  /** What was paused when the case opened (own wording), or null. */
  pausedText: string | null;
  /** RA's history on the case, oldest first: `who` and `note` shown literally, `text` own wording. */
  caseHistory: Array<DatedLine & { who: string; note: string | null }>;
  /** Outcome in words (own wording), when closed. */
  outcomeText: string | null;
  /** True: show the RA buttons (the viewer is an RA member and the case is not closed). */
  canAct: boolean;
  /** A message for the viewer above everything (e.g. who owns the case), shown literally; or null. */
  notice: string | null;
  /** Teams user ids (MRIs such as `29:1a2b...`) Teams refreshes the card for (at most 60 are used); none: no `refresh`. */
  refreshUserIds: readonly string[];
  /** The RA team the case is with (shown literally), when there are several; absent: not shown. */
  teamName?: string;
  /** Titles of the close outcomes (own wording). */
  outcomeTitles: Record<(typeof RA_CASE_OUTCOMES)[number], string>;
}

/** RFC 3339 UTC without fractional seconds, the form the Adaptive Cards DATE/TIME functions accept. */
function ts(at: Date): string {
  if (Number.isNaN(at.getTime())) throw new RangeError('raCaseCard needs valid dates');
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A date and time in the viewer's own time zone (Adaptive Cards DATE/TIME functions). */
function when(at: Date): string {
  const t = ts(at);
  return `{{DATE(${t}, SHORT)}} {{TIME(${t})}}`;
}

const STATUS_TEXT = { open: 'Open: nobody has claimed it yet', claimed: 'Claimed', assisted: 'Claimed: RA-assisted unlock started', closed: 'Closed' } as const;

/**
 * Build the RA case card.
 *
 * @param input - see {@link RaCaseCardInput}
 * @returns a schema 1.5 card; with `canAct`, a note input, an outcome picker and the buttons
 *   Claim (`ra.claim`), Add note (`ra.note`), "Identity confirmed in person: reset attempts"
 *   (`ra.reset_attempts`), "Start an RA-assisted unlock" (`ra.assist_unlock`) and Close (`ra.close`);
 *   `refresh` (`ra.case_refresh`) for `refreshUserIds` unless closed
 * @throws RangeError on an invalid date
 */
export function raCaseCard(input: RaCaseCardInput): AdaptiveCard {
  const body: CardElement[] = [];
  if (input.notice) body.push(literal(run(input.notice, { weight: 'Bolder', color: 'Attention' })));
  body.push(
    heading('RA case'),
    literal(run(input.caseRef, { size: 'Large', weight: 'Bolder', fontType: 'Monospace' })),
    literal('Status: ', run(STATUS_TEXT[input.status], { weight: 'Bolder' }), ...(input.ownerName ? [' by ', run(input.ownerName, { weight: 'Bolder' })] : [])),
    ...(input.teamName ? [literal('Team: ', run(input.teamName, { weight: 'Bolder' }))] : []),
    literal('Person: ', run(input.person.displayName, { weight: 'Bolder' }), ' (', run(input.person.email), ')'),
    literal('Card: ', run(input.person.cardId ?? 'not known', { fontType: 'Monospace' })),
    paragraph(`Why: ${input.reasonText}. Opened ${when(input.openedAt)}.`),
    paragraph(`Attempts used: ${input.attemptsUsed}. Codes sent: ${input.codesSent}.`),
  );
  if (input.pausedText) body.push(paragraph(`Paused: ${input.pausedText}.`, { isSubtle: true }));
  body.push(paragraph('What the person did', { weight: 'Bolder', separator: true }));
  if (input.journeySteps.length === 0) body.push(paragraph('Nothing recorded.', { isSubtle: true }));
  else body.push({ type: 'FactSet', facts: input.journeySteps.map((s): Fact => ({ title: when(s.at), value: s.text })) });
  body.push(paragraph('What RA did', { weight: 'Bolder', separator: true }));
  for (const h of input.caseHistory) {
    body.push(literal(run(`${ts(h.at).replace('T', ' ').replace('Z', ' UTC')} `, { isSubtle: true }), run(h.who, { weight: 'Bolder' }), ` ${h.text}`, ...(h.note ? [': ', run(h.note, { italic: true })] : [])));
  }
  if (input.outcomeText) body.push(paragraph(`Outcome: ${input.outcomeText}.`, { weight: 'Bolder', color: 'Good' }));

  const ids = { caseRef: input.caseRef, step: String(input.step) };
  const actions: ExecuteAction[] = [];
  if (input.canAct && input.status !== 'closed') {
    body.push(
      { type: 'Input.Text', id: 'note', label: 'Note (for Add note)', maxLength: MAX_RA_NOTE_LENGTH, placeholder: 'What you checked or did. Never a passcode or code.', spacing: 'Medium' },
      {
        type: 'Input.ChoiceSet',
        id: 'outcome',
        label: 'Outcome (for Close)',
        style: 'compact',
        value: 'unlocked_in_person',
        choices: RA_CASE_OUTCOMES.map((o) => ({ title: input.outcomeTitles[o], value: o })),
      },
    );
    if (!input.ownerName) actions.push(execute(CARD_VERBS.RA_CLAIM, 'Claim', ids, { style: 'positive' }));
    actions.push(
      execute(CARD_VERBS.RA_NOTE, 'Add note', ids, { associatedInputs: 'auto' }),
      execute(CARD_VERBS.RA_RESET_ATTEMPTS, 'Identity confirmed in person: reset attempts', ids),
      execute(CARD_VERBS.RA_ASSIST_UNLOCK, 'Start an RA-assisted unlock', ids),
      execute(CARD_VERBS.RA_CLOSE, 'Close', ids, { associatedInputs: 'auto', style: 'destructive' }),
    );
  }
  const card = adaptiveCard(body, actions);
  const userIds = input.refreshUserIds.slice(0, 60);
  if (input.status !== 'closed' && userIds.length > 0) card.refresh = { action: execute(CARD_VERBS.RA_CASE_REFRESH, 'Refresh', { caseRef: input.caseRef }), userIds: [...userIds] };
  return card;
}
