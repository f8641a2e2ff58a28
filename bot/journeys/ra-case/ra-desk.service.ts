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
import type { AdaptiveCard } from '../../../cards';
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
import { roleOf, type RaDeskConfig } from './ra-roles';

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
}

/** Audit entries read to show what the person did. */
const AUDIT_WINDOW = 2000;

export class RaDeskService {
  constructor(private readonly deps: RaDeskDeps) {}

  /**
   * Open the journey of a stored case (posts the card to the RA channel and tells the person, as effects).
   * Repeated, it changes nothing.
   *
   * @param raCase - the stored case
   * @param paused - the person's journey that was running, or null
   * @param opener - who opened it: `system`, `person:<id>` or `helpdesk:<id>`, and a display name
   */
  async caseOpened(raCase: RaCase, paused: PausedJourney | null = null, opener = { actor: 'system', name: 'Smartcard Assist' }): Promise<void> {
    await this.deps.engine.run(this.deps.definition, raCase.ref, async () => ({
      type: 'open' as const,
      personId: raCase.personId,
      reason: raCase.reason,
      context: raCase.context,
      paused,
      actor: opener.actor,
      actorName: opener.name,
    }));
  }

  /**
   * The person asks to talk to RA: open a case (reason `requested`) unless one is already open for them.
   * Their running unlock journey is recorded on the case as paused (it is not cancelled).
   *
   * @returns the case reference and whether a new case was opened
   */
  async requestByPerson(person: Person): Promise<{ caseRef: string; created: boolean }> {
    const existing = (await this.deps.storage.cases.listByPerson(person.id)).find((c) => c.status !== 'closed');
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
      reason: 'requested',
      status: 'open',
      context: { cardId: person.cardId, pausedJourney: paused ? `${paused.kind}:${paused.phase}` : null },
      sourceId: randomUUID(),
      createdAt: at,
      updatedAt: at,
      version: 1,
    };
    const stored = await this.deps.storage.cases.insert(raCase);
    await this.caseOpened(stored.record, paused, { actor: `person:${person.id}`, name: person.displayName });
    return { caseRef: stored.record.ref, created: true };
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
    const role = roleOf(this.deps.config, sender);
    const actorId = sender.aadObjectId ?? sender.channelUserId ?? 'unknown';
    const existing = await this.deps.storage.journeys.get(journeyKey(caseRef, 'ra-case'));
    if (!existing) {
      await this.auditRefusal(caseRef, null, actorId, role, action, 'no_such_case');
      return { journey: null, verdict: { kind: 'refused', reason: 'not_open', owner: null } };
    }
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
    const canAct = viewer === null || roleOf(this.deps.config, viewer) === 'ra';
    return renderRaCaseCard(journey, person, audit, { canAct, notice }, this.deps.config.raMemberIds);
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
