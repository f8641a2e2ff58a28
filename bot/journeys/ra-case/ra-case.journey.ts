/**
 * An RA case as a pure state machine (DESIGN.md "Hand off to RA"; issue #12):
 * `stepRaCase(journey, event, ctx) -> { journey, effects, changed, verdict }`.
 *
 * States: `new` (no record yet) -> `open` -> `claimed` -> `assisted` (an
 * RA-assisted unlock was started) -> `closed` (with an outcome). `claimed` may
 * go straight to `closed`.
 *
 * Every rule an RA action depends on is decided here, from the case as read in
 * the engine's one compare-and-set write (a lost race is stepped again from a
 * fresh read), in this order:
 * 1. only RA members act on a case (the role is resolved from configuration by
 *    the caller, `ra-roles.ts`); helpdesk members and others are refused;
 * 2. a closed case refuses every action;
 * 3. a claim of a case someone else owns is refused naming the owner (so of two
 *    claims at once, one owns the case and the other is told who has it); a
 *    claim by the owner changes nothing (double click);
 * 4. a click from a card older than the case (its `step` is not the case's
 *    step) is refused as stale: a repeated click changes nothing;
 * 5. reset, assisted unlock and close need the actor to own the case; a note
 *    may be added by any RA member.
 *
 * Every applied action writes its audit entry (actor, time, outcome) as an
 * effect of the same write; refusals change nothing here and are audited by
 * the caller (`ra-desk.service.ts`). No secret ever enters the state: notes are
 * staff text shown on the card.
 */
import type { RA_CASE_OUTCOMES } from '../../../cards/card-actions';
import type { RaCase } from '../../../storage/storage.port';
import type { Effect } from '../journey.effects';

/** Where a case is. */
export type RaCaseStatus = 'new' | 'open' | 'claimed' | 'assisted' | 'closed';

/** How a case may be closed (one list with the case card's outcome picker). */
export type CaseOutcome = (typeof RA_CASE_OUTCOMES)[number];

/** The RA actions on a case card. */
export type RaAction = 'claim' | 'note' | 'reset_attempts' | 'assist_unlock' | 'close';

/** Who clicks, with the role configuration gives them. */
export interface RaActor {
  /** Entra object id (Teams `from.aadObjectId`), or the channel user id when there is none. */
  id: string;
  /** Display name, shown on the card. */
  name: string;
  role: 'ra' | 'helpdesk' | 'none';
}

/** The person's journey that was running when the case opened (paused, not lost). */
export interface PausedJourney {
  kind: 'unlock' | 'registration';
  runId: string;
  phase: string;
  step: number;
}

/** One line of the case's own history (what RA did). */
export interface CaseHistoryEntry {
  at: string;
  /** `system`, `person:<id>`, `helpdesk:<id>` or `ra:<id>`. */
  actor: string;
  actorName: string;
  action: 'opened' | RaAction;
  /** Note text, or the outcome of a close; null otherwise. */
  detail: string | null;
}

export interface RaCaseState {
  status: RaCaseStatus;
  /** Counts applied changes; every card button carries it (stale clicks are recognised). */
  step: number;
  personId: string | null;
  reason: RaCase['reason'] | null;
  openedAt: string | null;
  /** Non-secret context from what opened the case (card id, attempts, run id). */
  context: Record<string, string | number | boolean | null>;
  owner: { id: string; name: string; at: string } | null;
  paused: PausedJourney | null;
  /** Oldest first, at most {@link MAX_HISTORY} entries (the oldest are dropped). */
  history: CaseHistoryEntry[];
  outcome: { code: CaseOutcome; at: string } | null;
}

export interface RaCaseJourney {
  /** The case reference (also the journey record's subject). */
  caseRef: string;
  runId: string;
  state: RaCaseState;
}

/** History entries kept on a case. */
export const MAX_HISTORY = 100;

/** Longest note, in characters after trimming. */
export const MAX_NOTE_LENGTH = 1000;

export type RaCaseEvent =
  | {
      type: 'open';
      personId: string;
      reason: RaCase['reason'];
      context: Record<string, string | number | boolean | null>;
      paused: PausedJourney | null;
      /** Who opened it: `system` (lockout), `person:<id>` (asked), `helpdesk:<id>`. */
      actor: string;
      actorName: string;
      /** Why, in the opener's words (a helpdesk handoff); shown on the card with the opening. */
      note?: string;
    }
  | { type: 'act'; action: RaAction; actor: RaActor; step: number; note?: string; outcome?: CaseOutcome };

/** Why an action was refused (nothing changed). */
export type RaRefusal = 'not_member' | 'not_open' | 'closed' | 'owned' | 'stale' | 'not_claimed' | 'not_owner' | 'empty_note' | 'no_outcome';

/** What a step decided, for the answer to the clicker and the audit of refusals. */
export type RaVerdict =
  | { kind: 'applied'; action: 'open' | RaAction }
  | { kind: 'unchanged'; reason: 'already_open' | 'already_yours' }
  | { kind: 'refused'; reason: RaRefusal; owner: { id: string; name: string } | null };

export interface RaCaseStepResult {
  journey: RaCaseJourney;
  effects: Effect[];
  changed: boolean;
  verdict: RaVerdict;
}

/** Fresh values the shell passes in (no clock or randomness of the step's own). */
export interface RaCaseContext {
  now: Date;
  newId: () => string;
}

/** A case before anything was stored. */
export function newRaCaseJourney(caseRef: string, runId: string): RaCaseJourney {
  return {
    caseRef,
    runId,
    state: { status: 'new', step: 0, personId: null, reason: null, openedAt: null, context: {}, owner: null, paused: null, history: [], outcome: null },
  };
}

/** The `RaCase.status` a journey status is mirrored as. */
function storedStatus(status: RaCaseStatus): RaCase['status'] {
  return status === 'closed' ? 'closed' : status === 'claimed' || status === 'assisted' ? 'claimed' : 'open';
}

/** What the person is told in their chat after each applied action (plain words; "passcode", never PIN). */
function personMessage(caseRef: string, action: 'open' | RaAction, owner: string | null, outcome: CaseOutcome | null, opener: { reason: RaCase['reason'] | null; name: string | null }): string | null {
  switch (action) {
    case 'open':
      if (opener.reason === 'helpdesk') {
        return `${opener.name ?? 'The IT helpdesk'} from the IT helpdesk has asked your RA team to help you with your smartcard: your case is ${caseRef}. Someone from your RA team will pick it up and contact you; quote ${caseRef} if you speak to them. You do not need to do anything now.`;
      }
      // The person who asked is answered in their own turn with the reference: told once, not twice.
      if (opener.reason === 'requested') return null;
      return `Your case ${caseRef} is with your RA team. Someone will pick it up and contact you; quote ${caseRef} if you speak to them.`;
    case 'claim':
      return `${owner ?? 'An RA team member'} from your RA team is now looking after your case ${caseRef}. They will contact you; you can also reply here with "talk to RA" to check on it.`;
    case 'reset_attempts':
      return `Your RA team has reset your self-service attempts (case ${caseRef}). Say "unlock" to unlock your card yourself.`;
    case 'assist_unlock':
      return `Your RA team has started an assisted unlock for you (case ${caseRef}): you do not need to answer your security questions. Keep your card in the reader; we will email you an unlock code to type at the Smartcard Assist companion, with your new passcode.`;
    case 'close':
      return `Your case ${caseRef} is closed (${OUTCOME_TEXT[outcome ?? 'no_action']}). ${NEXT_STEP[outcome ?? 'no_action']} If you still cannot use your card, say "talk to RA" and a new case opens.`;
    case 'note':
      return null;
  }
}

/** What the person does next after a close, by outcome (plain words; "passcode", never PIN). */
const NEXT_STEP: Record<CaseOutcome, string> = {
  unlocked_in_person: 'Your card is unlocked: use it with your passcode as usual.',
  assisted_unlock: 'Your card should now be unlocked: use it with your passcode as usual.',
  attempts_reset: 'You can unlock your card yourself again: say "unlock".',
  referred: 'Your RA team has passed your case on; whoever picks it up will contact you.',
  no_action: 'Your RA team found nothing that needed doing.',
};

/** Outcomes in words, for the person and the card. */
export const OUTCOME_TEXT: Record<CaseOutcome, string> = {
  unlocked_in_person: 'card unlocked in person',
  assisted_unlock: 'RA-assisted unlock',
  attempts_reset: 'self-service attempts reset',
  referred: 'referred elsewhere',
  no_action: 'no action needed',
};

const refuse = (journey: RaCaseJourney, reason: RaRefusal, owner: RaCaseState['owner'] = null): RaCaseStepResult => ({
  journey,
  effects: [],
  changed: false,
  verdict: { kind: 'refused', reason, owner: owner ? { id: owner.id, name: owner.name } : null },
});

/**
 * Apply one event to a case.
 *
 * @param journey - the case as read (not mutated)
 * @param event - `open` (from a lockout, the person, or helpdesk) or an RA `act` from the case card
 * @param ctx - time and id source
 * @returns the new journey, its effects (audit, card update, person message, status mirror,
 *   self-service reset), whether anything changed, and the verdict (see the module rules)
 */
export function stepRaCase(journey: RaCaseJourney, event: RaCaseEvent, ctx: RaCaseContext): RaCaseStepResult {
  const s = journey.state;
  const at = ctx.now.toISOString();
  if (event.type === 'open') {
    if (s.status !== 'new') return { journey, effects: [], changed: false, verdict: { kind: 'unchanged', reason: 'already_open' } };
    const state: RaCaseState = {
      ...s,
      status: 'open',
      step: s.step + 1,
      personId: event.personId,
      reason: event.reason,
      openedAt: at,
      context: event.context,
      paused: event.paused,
      history: [{ at, actor: event.actor, actorName: event.actorName, action: 'opened', detail: event.note?.trim().slice(0, MAX_NOTE_LENGTH) || null }],
    };
    const next = { ...journey, state };
    const effects = effectsFor(next, 'open', event.actor, ctx, { reason: event.reason, actorName: event.actorName });
    return { journey: next, effects, changed: true, verdict: { kind: 'applied', action: 'open' } };
  }

  const { actor, action } = event;
  if (actor.role !== 'ra') return refuse(journey, 'not_member');
  if (s.status === 'new') return refuse(journey, 'not_open');
  if (s.status === 'closed') return refuse(journey, 'closed');
  if (action === 'claim' && s.owner) {
    if (s.owner.id === actor.id) return { journey, effects: [], changed: false, verdict: { kind: 'unchanged', reason: 'already_yours' } };
    return refuse(journey, 'owned', s.owner);
  }
  if (event.step !== s.step) return refuse(journey, 'stale', s.owner);
  if (action !== 'claim' && action !== 'note') {
    if (!s.owner) return refuse(journey, 'not_claimed');
    if (s.owner.id !== actor.id) return refuse(journey, 'not_owner', s.owner);
  }
  const note = event.note?.trim() ?? '';
  if (action === 'note' && note.length === 0) return refuse(journey, 'empty_note', s.owner);
  if (action === 'close' && !event.outcome) return refuse(journey, 'no_outcome', s.owner);

  const who = `ra:${actor.id}`;
  const entry = (detail: string | null): CaseHistoryEntry => ({ at, actor: who, actorName: actor.name, action, detail });
  let state: RaCaseState;
  switch (action) {
    case 'claim':
      state = { ...s, status: 'claimed', owner: { id: actor.id, name: actor.name, at } };
      break;
    case 'note':
      state = { ...s };
      break;
    case 'reset_attempts':
      state = { ...s };
      break;
    case 'assist_unlock':
      state = { ...s, status: 'assisted' };
      break;
    case 'close':
      state = { ...s, status: 'closed', outcome: { code: event.outcome!, at } };
      break;
  }
  const detail = action === 'note' ? note.slice(0, MAX_NOTE_LENGTH) : action === 'close' ? OUTCOME_TEXT[event.outcome!] : null;
  state = { ...state, step: s.step + 1, history: [...s.history, entry(detail)].slice(-MAX_HISTORY) };
  const next = { ...journey, state };
  const details: Record<string, string | number | boolean | null> = { actorName: actor.name, ...(action === 'close' ? { outcome: event.outcome! } : {}), ...(action === 'note' ? { noteLength: note.length } : {}) };
  const effects = effectsFor(next, action, who, ctx, details);
  if (action === 'reset_attempts' && s.personId) {
    effects.push({ type: 'ra.reset_self_service', id: ctx.newId(), personId: s.personId, caseRef: journey.caseRef, actor: who });
  }
  if (action === 'assist_unlock' && s.personId) {
    effects.push({ type: 'ra.assist_unlock', id: ctx.newId(), personId: s.personId, caseRef: journey.caseRef, actor: who });
  }
  return { journey: next, effects, changed: true, verdict: { kind: 'applied', action } };
}

/** The effects of an applied action: audit, the card in the RA channel, the status mirror, the person's message. */
function effectsFor(next: RaCaseJourney, action: 'open' | RaAction, actor: string, ctx: RaCaseContext, details: Record<string, string | number | boolean | null>): Effect[] {
  const s = next.state;
  const personId = s.personId ?? '';
  const effects: Effect[] = [
    { type: 'audit', id: ctx.newId(), personId, actor, action: action === 'open' ? 'ra_case.opened' : `ra_case.${action}`, details: { caseRef: next.caseRef, outcome: 'applied', ...(typeof s.context['raTeam'] === 'string' ? { team: s.context['raTeam'] } : {}), ...details } },
    { type: 'ra.case_status', id: ctx.newId(), caseRef: next.caseRef, status: storedStatus(s.status) },
    { type: 'ra.case_card', id: ctx.newId(), caseRef: next.caseRef },
  ];
  const opened = s.history[0];
  const text = personMessage(next.caseRef, action, s.owner?.name ?? null, s.outcome?.code ?? null, { reason: s.reason, name: opened?.action === 'opened' ? opened.actorName : null });
  if (text && s.personId) effects.push({ type: 'ra.tell_person', id: ctx.newId(), personId: s.personId, caseRef: next.caseRef, text });
  return effects;
}
