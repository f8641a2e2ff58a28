/**
 * The RA case card for a case as stored: the case journey, the person, and
 * what the person did (read from the audit log, which holds no secret).
 */
import type { AdaptiveCard, RaCaseCardInput } from '../../../cards';
import { raCaseCard } from '../../../cards';
import type { AuditEntry, Person } from '../../../storage/storage.port';
import { OUTCOME_TEXT, type RaCaseJourney, type RaVerdict } from './ra-case.journey';

/** The person's journey steps the card lists, in words (other audit actions are left out). */
const STEP_TEXT: Record<string, string> = {
  'unlock.started': 'Started an unlock',
  'unlock.wrong_card': 'Put in a card that is not bound to them',
  'unlock.answers_failed': 'Security answers did not match',
  'unlock.answers_passed': 'Security answers matched; unlock code emailed',
  'unlock.code_resent': 'Asked for a new unlock code',
  'unlock.code_mail_failed': 'The unlock code email failed',
  'unlock.code_wrong': 'Entered a wrong unlock code',
  'unlock.code_accepted': 'Unlock code accepted',
  'unlock.unblock_interrupted': 'Unlock interrupted at the card',
  'unlock.completed': 'Card unlocked',
  'unlock.cancelled': 'Cancelled the unlock',
  'unlock.self_service_locked': 'Self-service locked',
  'unlock.self_service_reset': 'Self-service attempts reset',
  'unlock.paused': 'Paused their unlock to talk to RA',
  'unlock.assisted_started': 'RA-assisted unlock started',
  'unlock.questions_skipped': 'Security questions skipped; unlock code sent',
  'unlock.certificates_expired': 'Card certificates found expired',
};

/** Steps shown on a card (the most recent). */
const MAX_STEPS = 12;

const REASON_TEXT = {
  answers_failed: 'security answers did not match 3 times',
  requested: 'the person asked to talk to RA',
  helpdesk: 'opened by the helpdesk',
  no_puk_enrolled: 'the card has no enrolled unblock key',
  certificates_expired: 'the card\'s certificates have expired: it needs renewing',
} as const;

const ACTION_TEXT = { opened: 'opened the case', claim: 'claimed the case', note: 'added a note', reset_attempts: 'reset self-service attempts (identity confirmed in person)', assist_unlock: 'started an RA-assisted unlock', close: 'closed the case' } as const;

/**
 * What to tell the clicker about a verdict, or null when the action simply applied.
 *
 * @returns plain text for the viewer (no secret)
 */
export function verdictNotice(verdict: RaVerdict): string | null {
  if (verdict.kind === 'applied') return null;
  if (verdict.kind === 'unchanged') return verdict.reason === 'already_yours' ? 'You already have this case.' : 'This case is already open.';
  const owner = verdict.owner?.name ?? 'Another RA member';
  switch (verdict.reason) {
    case 'not_member':
      return 'Only RA team members can act on RA cases. Nothing was changed, and your click was recorded.';
    case 'not_open':
      return 'This case is not open yet. Nothing was changed.';
    case 'closed':
      return 'This case is closed. Nothing was changed.';
    case 'owned':
      return `${owner} already has this case. Nothing was changed.`;
    case 'stale':
      return 'The case changed since this card was shown. Here it is now; nothing was changed.';
    case 'not_claimed':
      return 'Claim the case first. Nothing was changed.';
    case 'not_owner':
      return `${owner} has this case; only they can do that. Nothing was changed.`;
    case 'empty_note':
      return 'Write a note first. Nothing was changed.';
    case 'no_outcome':
      return 'Choose an outcome first. Nothing was changed.';
  }
}

/**
 * Build the case card.
 *
 * @param journey - the case as stored
 * @param person - the person the case is about, or null when unknown
 * @param audit - the person's audit entries, oldest first
 * @param viewer.canAct - whether the viewer may act (an RA member)
 * @param viewer.notice - text for the viewer, or null
 * @param viewer.team - the case's RA team, shown when there are several; null or absent: not shown
 * @param refreshUserIds - Teams user ids (MRIs) of RA members, for the card's `refresh.userIds`
 */
export function renderRaCaseCard(journey: RaCaseJourney, person: Person | null, audit: readonly AuditEntry[], viewer: { canAct: boolean; notice: string | null; team?: string | null }, refreshUserIds: readonly string[]): AdaptiveCard {
  const s = journey.state;
  // What happened since the last reset counts for attempts and codes.
  // (An RA-assisted unlock resets the attempt count too.)
  const lastReset = Math.max(audit.map((e) => e.action).lastIndexOf('unlock.self_service_reset'), audit.map((e) => e.action).lastIndexOf('unlock.assisted_started'));
  const sinceReset = audit.slice(lastReset + 1);
  const attemptsFromAudit = sinceReset.filter((e) => e.action === 'unlock.answers_failed').length;
  const contextAttempts = typeof s.context['failedAttempts'] === 'number' ? s.context['failedAttempts'] : 0;
  const steps = audit.filter((e) => STEP_TEXT[e.action]).slice(-MAX_STEPS);
  const cardId = person?.cardId ?? (typeof s.context['cardId'] === 'string' ? s.context['cardId'] : null);
  const input: RaCaseCardInput = {
    caseRef: journey.caseRef,
    step: s.step,
    status: s.status === 'new' ? 'open' : s.status,
    ownerName: s.owner?.name ?? null,
    person: { displayName: person?.displayName ?? 'Unknown person', email: person?.email ?? 'no email on record', cardId },
    reasonText: s.reason ? REASON_TEXT[s.reason] : 'not recorded',
    openedAt: new Date(s.openedAt ?? 0),
    journeySteps: steps.map((e) => ({ at: new Date(e.at), text: STEP_TEXT[e.action]! })),
    // The count the case opened with holds until a reset (in person, or an RA-assisted unlock) starts afresh.
    attemptsUsed: lastReset >= 0 ? attemptsFromAudit : Math.max(attemptsFromAudit, contextAttempts),
    codesSent: sinceReset.filter((e) => e.action === 'unlock.answers_passed' || e.action === 'unlock.code_resent' || e.action === 'unlock.questions_skipped').length,
    pausedText: s.paused ? `their ${s.paused.kind} journey (at ${s.paused.phase.replace(/_/g, ' ')})` : null,
    caseHistory: s.history.map((h) => ({ at: new Date(h.at), who: h.actorName, text: ACTION_TEXT[h.action], note: h.action === 'note' || h.action === 'opened' ? h.detail : null })),
    outcomeText: s.outcome ? OUTCOME_TEXT[s.outcome.code] : null,
    canAct: viewer.canAct,
    notice: viewer.notice,
    refreshUserIds,
    ...(viewer.team ? { teamName: viewer.team } : {}),
    outcomeTitles: { unlocked_in_person: 'Card unlocked in person', assisted_unlock: 'RA-assisted unlock', attempts_reset: 'Self-service attempts reset', referred: 'Referred elsewhere', no_action: 'No action needed' },
  };
  return raCaseCard(input);
}
