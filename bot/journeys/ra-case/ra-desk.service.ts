/**
 * The RA desk: opens case journeys (on a lockout, or when the person asks),
 * steps RA card actions through the journey engine, audits refusals, and
 * renders the case card for a viewer.
 *
 * Every decision is the pure step's (`ra-case.journey.ts`), taken inside the
 * engine's one compare-and-set write of the case's journey record (key
 * `<caseRef>:ra-case`). Roles come from configuration (`ra-roles.ts`).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { MAX_HANDOFF_REASON_LENGTH, type AdaptiveCard } from '../../../cards';
import type { Logger } from '../../../common/logger';
import type { Person, RaCase, Storage } from '../../../storage/storage.port';
import { generateCaseRef } from '../../security/codes';
import type { JourneyEngine } from '../journey.engine';
import { journeyKey } from '../journey.key';
import { decodeUnlock } from '../unlock/unlock.state';
import { isActive } from '../unlock/unlock.journey';
import type { RaCaseDefinition } from './ra-case.definition';
import type { CaseOutcome, PausedJourney, RaAction, RaCaseJourney, RaVerdict } from './ra-case.journey';
import { decodeRaCase } from './ra-case.state';
import { renderRaCaseCard, verdictNotice } from './ra-case.view';
import { roleOf, teamForEmail, teamNamed, type RaDeskConfig, type RaTeam } from './ra-roles';
import { reportRangeFromDates, type UsageReport } from '../../report/usage-report';
import { loadUsageReport } from '../../report/usage-report.loader';
import { resetSelfService } from '../unlock/self-service-reset';
import type { UnlockForRa } from './unlock-for-ra.port';
import { AppError } from '../../../common/app-error';

/** A Teams sender as the desk sees them. */
export interface DeskSender {
  /** Entra object id (`from.aadObjectId`), or null. Roles are decided on this only. */
  aadObjectId: string | null;
  /** Channel user id (`from.id`), used as the actor id when there is no object id. */
  channelUserId: string | null;
  name: string;
}

export interface RaDeskDeps {
  storage: Storage;
  engine: JourneyEngine;
  definition: RaCaseDefinition;
  config: RaDeskConfig;
  now: () => Date;
  logger: Logger;
  /**
   * The unlock journey's side (pause on "talk to RA", the RA-assisted unlock); absent until it is built:
   * then nothing is paused and an assisted unlock falls back to the self-service reset (logged).
   */
  unlock?: UnlockForRa;
}

/** What a helpdesk handoff did (`openForPerson`); only `opened` changed anything. */
export type HandoffOutcome =
  | { kind: 'opened' | 'exists'; caseRef: string; person: { displayName: string; email: string }; personTold: boolean }
  | { kind: 'not_helpdesk' | 'bad_email' | 'no_reason' | 'reason_too_long' }
  | { kind: 'not_registered' | 'ambiguous'; email: string };

/** Longest helpdesk handoff reason, in characters after trimming (one bound with the helpdesk form's input). */
export const MAX_HANDOFF_REASON = MAX_HANDOFF_REASON_LENGTH;

const EMAIL = z.string().email().max(254);

/** Audit entries read to show what the person did. */
const AUDIT_WINDOW = 2000;

/**
 * Key of the stored map from RA members' Entra object ids to their Teams user ids (`29:...` MRIs), in the
 * conversations store (not a person id). Universal Actions `refresh.userIds` takes Teams user MRIs, while
 * configuration names members by Entra object id: the map is learned from what Teams sends.
 */
const RA_MEMBER_IDS_KEY = 'ra-member-ids';

export class RaDeskService {
  /** The learned map (Entra object id -> Teams user id), as last read or written by this process. */
  private memberIds: Record<string, string> | null = null;

  constructor(private readonly deps: RaDeskDeps) {}

  private async learnedMemberIds(): Promise<Record<string, string>> {
    if (this.memberIds) return this.memberIds;
    const rec = await this.deps.storage.conversations.get(RA_MEMBER_IDS_KEY);
    const ids = (rec?.reference as { ids?: unknown } | undefined)?.ids;
    const map: Record<string, string> = {};
    if (ids && typeof ids === 'object') for (const [k, v] of Object.entries(ids)) if (typeof v === 'string') map[k] = v;
    this.memberIds = map;
    return map;
  }

  /**
   * Remember the Teams user ids of RA members from what Teams sent (a click, a message, members added
   * when the bot was installed in the team), for the case card's `refresh.userIds`. Only configured RA
   * members are kept; one write per change. A failed write is logged, never fails the turn.
   *
   * @param members - `{ aadObjectId, channelUserId }` pairs (Teams `from` or `membersAdded` entries)
   */
  async rememberMembers(members: ReadonlyArray<{ aadObjectId: string | null; channelUserId: string | null }>): Promise<void> {
    const known = await this.learnedMemberIds();
    const next = { ...known };
    for (const m of members) {
      const aad = m.aadObjectId?.trim().toLowerCase();
      const teamsId = m.channelUserId?.trim();
      if (!aad || !teamsId || teamsId.length > 200 || !this.deps.config.raMemberIds.includes(aad)) continue;
      next[aad] = teamsId;
    }
    if (Object.keys(next).every((k) => known[k] === next[k]) && Object.keys(next).length === Object.keys(known).length) return;
    try {
      await this.deps.storage.conversations.put({ personId: RA_MEMBER_IDS_KEY, reference: { ids: next }, updatedAt: this.deps.now().toISOString() });
      this.memberIds = next;
    } catch (err) {
      this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'RA member ids not stored');
    }
  }

  /** Teams user ids a case card of `team` refreshes for: the learned ids of that team's members. */
  private async refreshUserIds(team: RaTeam): Promise<string[]> {
    // Another instance may have learned more: read the store again when some member is still unknown.
    if (this.memberIds && team.memberIds.some((id) => !this.memberIds![id])) this.memberIds = null;
    const learned = await this.learnedMemberIds();
    return team.memberIds.map((id) => learned[id]).filter((x): x is string => !!x);
  }

  /**
   * Open the journey of a stored case (posts the card to the RA channel and tells the person, as effects).
   * Repeated, it changes nothing.
   *
   * @param raCase - the stored case
   * @param paused - the person's journey that was running, or null
   * @param opener - who opened it: `system`, `person:<id>` or `helpdesk:<id>`, and a display name
   * @param note - why, in the opener's words (helpdesk handoff), shown on the card
   */
  async caseOpened(raCase: RaCase, paused: PausedJourney | null = null, opener = { actor: 'system', name: 'Smartcard Assist' }, note?: string): Promise<void> {
    // The team that takes it (by the person's email domain; RA_TEAMS), kept on the case.
    const person = await this.deps.storage.persons.get(raCase.personId);
    const team = teamForEmail(this.deps.config, person?.email ?? null);
    await this.deps.engine.run(this.deps.definition, raCase.ref, async () => ({
      type: 'open' as const,
      personId: raCase.personId,
      reason: raCase.reason,
      context: { ...raCase.context, raTeam: team.name },
      paused,
      actor: opener.actor,
      actorName: opener.name,
      ...(note !== undefined ? { note } : {}),
    }));
  }

  /**
   * The person asks to talk to RA: open a case (reason `requested`) unless one is already open for them.
   * Their running unlock journey is recorded on the case as paused (it is not cancelled).
   *
   * @returns the case reference and whether a new case was opened
   */
  async requestByPerson(person: Person): Promise<{ caseRef: string; created: boolean }> {
    return this.openCase(person, 'requested', { actor: `person:${person.id}`, name: person.displayName });
  }

  /**
   * May this sender open cases for someone else (the helpdesk form)? Anyone else is refused, and the
   * refusal audited as `ra_case.helpdesk_open` (`form: true`), as a refused handoff is.
   *
   * @param sender - who asks (role from `from.aadObjectId`)
   * @returns true for helpdesk and RA members
   */
  async mayHandOff(sender: DeskSender): Promise<boolean> {
    const role = roleOf(this.deps.config, sender);
    if (role !== 'none') return true;
    await this.auditHandoffRefusal(sender, true);
    return false;
  }

  private async auditHandoffRefusal(sender: DeskSender, form: boolean): Promise<void> {
    const actorId = sender.aadObjectId ?? sender.channelUserId ?? 'unknown';
    await this.deps.storage.audit.append({
      id: randomUUID(),
      at: this.deps.now().toISOString(),
      actor: `teams:${actorId}`.slice(0, 200),
      action: 'ra_case.helpdesk_open',
      personId: null,
      details: { outcome: 'refused', reason: 'not_helpdesk', role: 'none', ...(form ? { form: true } : {}) },
    });
  }

  /**
   * A helpdesk member opens a case for someone from Teams (issue #12, helpdesk handoff).
   * Only helpdesk members (and RA members) may; anyone else is refused and audited. The email must be
   * registered with exactly one person; otherwise nothing changes. A person who already has a case
   * keeps it (its reference is returned).
   *
   * @param sender - who asks (role from `from.aadObjectId`)
   * @param email - the person's registered email, as typed
   * @param reason - why, in the helpdesk member's words (1..{@link MAX_HANDOFF_REASON} characters; shown to RA)
   * @returns what happened: `opened` / `exists` with the case and person, or why nothing was done
   */
  async openForPerson(sender: DeskSender, email: string, reason: string): Promise<HandoffOutcome> {
    const role = roleOf(this.deps.config, sender);
    const actorId = sender.aadObjectId ?? sender.channelUserId ?? 'unknown';
    if (role === 'none') {
      await this.auditHandoffRefusal(sender, false);
      return { kind: 'not_helpdesk' };
    }
    const address = email.trim().toLowerCase();
    if (!EMAIL.safeParse(address).success) return { kind: 'bad_email' };
    const why = reason.trim();
    if (why.length === 0) return { kind: 'no_reason' };
    if (why.length > MAX_HANDOFF_REASON) return { kind: 'reason_too_long' };
    const persons = await this.deps.storage.persons.listByEmail(address);
    if (persons.length === 0) return { kind: 'not_registered', email: address };
    if (persons.length > 1) return { kind: 'ambiguous', email: address };
    const person = persons[0]!;
    const opener = { actor: `${role}:${actorId}`.slice(0, 200), name: sender.name || 'Helpdesk' };
    const { caseRef, created } = await this.openCase(person, 'helpdesk', opener, why);
    const reachable = (await this.deps.storage.conversations.get(person.id)) !== null;
    return { kind: created ? 'opened' : 'exists', caseRef, person: { displayName: person.displayName, email: person.email }, personTold: created && reachable };
  }

  /**
   * Open a case for a person unless one is active, single-winner: the case's `sourceId` is derived from
   * the person and how many cases they had, so of two opens racing from the same read one inserts the
   * case and the other gets that same case back (`exists`), never a second one.
   */
  private async openCase(person: Person, reason: 'requested' | 'helpdesk', opener: { actor: string; name: string }, note?: string): Promise<{ caseRef: string; created: boolean }> {
    const cases = await this.deps.storage.cases.listByPerson(person.id);
    const existing = cases.find((c) => c.status !== 'closed');
    if (existing) return { caseRef: existing.ref, created: false };
    let paused: PausedJourney | null = null;
    const unlock = await this.deps.storage.journeys.get(journeyKey(person.id, 'unlock'));
    if (unlock) {
      const j = decodeUnlock(unlock);
      if (isActive(j.state)) paused = { kind: 'unlock', runId: j.runId, phase: j.state.phase, step: j.state.step };
    }
    const at = this.deps.now().toISOString();
    const raCase: RaCase = {
      ref: generateCaseRef(),
      personId: person.id,
      reason,
      status: 'open',
      context: { cardId: person.cardId, pausedJourney: paused ? `${paused.kind}:${paused.phase}` : null, ...(reason === 'helpdesk' ? { openedBy: opener.name.slice(0, 200) } : {}) },
      // One open per person and case count: racing opens insert one case (the port's unique sourceId).
      sourceId: `person-open:${person.id}:${cases.length}`,
      createdAt: at,
      updatedAt: at,
      version: 1,
    };
    const stored = await this.deps.storage.cases.insert(raCase);
    // Lost the race: the winner's case is the person's case.
    if (stored.status === 'exists') return { caseRef: stored.record.ref, created: false };
    await this.caseOpened(stored.record, paused, opener, note);
    if (reason === 'requested' && this.deps.unlock) {
      // "Talk to RA" pauses the running unlock (kept, not lost); the case is open whatever happens here.
      await this.deps.unlock.pause(person.id, stored.record.ref).catch((err: unknown) => this.deps.logger.warn({ caseRef: stored.record.ref, code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'unlock journey not paused'));
    }
    return { caseRef: stored.record.ref, created: true };
  }

  /**
   * Carry out "Start an RA-assisted unlock" (the case journey's effect `ra.assist_unlock`): the unlock
   * journey starts or resumes the person's unlock with the questions skipped. Without the unlock side
   * ({@link RaDeskDeps.unlock}) the same self-service reset as "identity confirmed in person" is done
   * instead, so the person can at least unlock themselves (logged as a warning).
   *
   * @param personId - the person's id
   * @param caseRef - the case
   * @param actor - `ra:<Entra object id>`
   * @throws what the unlock side throws (the effect is tried again)
   */
  async startAssistedUnlock(personId: string, caseRef: string, actor: string): Promise<void> {
    if (this.deps.unlock) {
      await this.deps.unlock.startAssisted(personId, caseRef, actor);
      return;
    }
    this.deps.logger.warn({ caseRef }, 'RA-assisted unlock is not available in this build: self-service attempts reset instead');
    await resetSelfService(this.deps.engine, personId, actor, `RA case ${caseRef} (assisted unlock)`);
  }

  /**
   * The usage report for an RA member (the "report" command in the RA channel).
   *
   * @param sender - who asks; only RA members get the report, others are refused and audited
   * @param dates - first and last UTC day as `YYYY-MM-DD` (both included); null for the last 7 days up to today
   * @returns the report, `{ kind: 'not_member' }`, or `{ kind: 'bad_dates', message }` saying what is wrong
   */
  async report(sender: DeskSender, dates: { from: string | null; to: string | null }): Promise<{ kind: 'report'; report: UsageReport } | { kind: 'not_member' } | { kind: 'bad_dates'; message: string }> {
    const role = roleOf(this.deps.config, sender);
    if (role !== 'ra') {
      const actorId = sender.aadObjectId ?? sender.channelUserId ?? 'unknown';
      await this.deps.storage.audit.append({ id: randomUUID(), at: this.deps.now().toISOString(), actor: `${role === 'helpdesk' ? 'helpdesk' : 'teams'}:${actorId}`.slice(0, 200), action: 'report.requested', personId: null, details: { outcome: 'refused', reason: 'not_member', role } });
      return { kind: 'not_member' };
    }
    await this.rememberMembers([sender]);
    const today = this.deps.now().toISOString().slice(0, 10);
    const weekAgo = new Date(Date.parse(`${today}T00:00:00.000Z`) - 6 * 86_400_000).toISOString().slice(0, 10);
    const r = reportRangeFromDates(dates.from ?? weekAgo, dates.to ?? today);
    if (!r.ok) return { kind: 'bad_dates', message: r.message.replace(/--(from|to)/g, (_m, w: string) => (w === 'from' ? 'the first date' : 'the last date')) };
    return { kind: 'report', report: await loadUsageReport(this.deps.storage, r.range, { teams: this.deps.config }) };
  }

  /**
   * An RA action from the case card. Refusals and no-ops change nothing and are audited here.
   *
   * @param caseRef - from the card (validated `RA-XXXXXX`)
   * @param action - the verb's action
   * @param sender - who clicked
   * @param step - the case step the card showed
   * @param input - the note text or the close outcome from the card's inputs
   * @returns the case after the step (null when there is no such case) and the verdict
   */
  async act(caseRef: string, action: RaAction, sender: DeskSender, step: number, input: { note?: string; outcome?: CaseOutcome } = {}): Promise<{ journey: RaCaseJourney | null; verdict: RaVerdict }> {
    const actorId = sender.aadObjectId ?? sender.channelUserId ?? 'unknown';
    if (roleOf(this.deps.config, sender) === 'ra') await this.rememberMembers([sender]);
    const existing = await this.deps.storage.journeys.get(journeyKey(caseRef, 'ra-case'));
    if (!existing) {
      await this.auditRefusal(caseRef, null, actorId, roleOf(this.deps.config, sender), action, 'no_such_case');
      return { journey: null, verdict: { kind: 'refused', reason: 'not_open', owner: null } };
    }
    // Only the case's own team acts on it: a member of another RA team is refused as a non-member.
    const role = this.roleForCase(sender, this.teamOf(decodeRaCase(existing)));
    const { journey, result } = await this.deps.engine.run(this.deps.definition, caseRef, async () => ({
      type: 'act' as const,
      action,
      actor: { id: actorId, name: sender.name || 'RA member', role },
      step,
      ...(input.note !== undefined ? { note: input.note } : {}),
      ...(input.outcome !== undefined ? { outcome: input.outcome } : {}),
    }));
    const verdict: RaVerdict = result?.verdict ?? { kind: 'refused', reason: 'not_open', owner: null };
    if (verdict.kind !== 'applied') await this.auditRefusal(caseRef, journey.state.personId, actorId, role, action, verdict.kind === 'refused' ? verdict.reason : verdict.reason);
    return { journey, verdict };
  }

  /**
   * The case card for a viewer.
   *
   * @param caseRef - the case
   * @param viewer - who will see it (null: the card posted to the channel, with the RA buttons)
   * @param notice - text for the viewer, or null
   * @returns the card, or null when there is no such case
   */
  async card(caseRef: string, viewer: DeskSender | null, notice: string | null = null): Promise<AdaptiveCard | null> {
    const rec = await this.deps.storage.journeys.get(journeyKey(caseRef, 'ra-case'));
    if (!rec) return null;
    const journey = decodeRaCase(rec);
    const personId = journey.state.personId;
    const person = personId ? await this.deps.storage.persons.get(personId) : null;
    const audit = personId ? await this.deps.storage.audit.list({ personId, limit: AUDIT_WINDOW }) : [];
    const team = this.teamOf(journey);
    const canAct = viewer === null || this.roleForCase(viewer, team) === 'ra';
    if (viewer && roleOf(this.deps.config, viewer) === 'ra') await this.rememberMembers([viewer]);
    return renderRaCaseCard(journey, person, audit, { canAct, notice, team: this.deps.config.teams.length > 1 ? team.name : null }, await this.refreshUserIds(team));
  }

  /** The team a case belongs to (stored on it when it opened; the first team for older cases). */
  teamOf(journey: RaCaseJourney): RaTeam {
    return teamNamed(this.deps.config, journey.state.context['raTeam']);
  }

  /** A sender's role on a case of `team`: `ra` only for that team's members. */
  private roleForCase(sender: DeskSender, team: RaTeam): 'ra' | 'helpdesk' | 'none' {
    const role = roleOf(this.deps.config, sender);
    if (role !== 'ra') return role;
    const id = sender.aadObjectId?.trim().toLowerCase() ?? '';
    return team.memberIds.includes(id) ? 'ra' : roleOf({ raMemberIds: [], helpdeskMemberIds: this.deps.config.helpdeskMemberIds }, sender);
  }

  /** The notice for a verdict (re-exported for the Teams layer). */
  notice(verdict: RaVerdict): string | null {
    return verdictNotice(verdict);
  }

  private async auditRefusal(caseRef: string, personId: string | null, actorId: string, role: string, action: RaAction, reason: string): Promise<void> {
    await this.deps.storage.audit.append({
      id: randomUUID(),
      at: this.deps.now().toISOString(),
      actor: `${role === 'ra' ? 'ra' : role === 'helpdesk' ? 'helpdesk' : 'teams'}:${actorId}`.slice(0, 200),
      action: `ra_case.${action}`,
      personId,
      details: { caseRef, outcome: reason === 'already_yours' || reason === 'already_open' ? 'unchanged' : 'refused', reason, role },
    });
  }
}
