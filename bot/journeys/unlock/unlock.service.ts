/**
 * The imperative shell around the unlock journey (STYLE.md 2).
 *
 * For each event it loads the journey record, gathers what the pure step needs
 * (the card status from the companion, answer checks, a fresh code), runs the
 * step, and stores the new state together with its effects in one
 * compare-and-set write (transactional outbox, DESIGN.md). Only then are the
 * effects carried out, each idempotently on its id, and removed. A write that
 * loses a race is retried from a fresh read, so a double click counts once.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../../../common/app-error';
import type { Logger } from '../../../common/logger';
import type { CardStatus, Request, Response } from '../../../protocol/companion-link.protocol';
import type { Device, JourneyRecord, Person, Storage } from '../../../storage/storage.port';
import type { CompanionLink } from '../../link/companion-link.server';
import { verifyAnswers } from '../../security/answers';
import type { DirectoryContact } from '../../directory/directory.port';
import { cardClaim, holderTag } from '../../puk/puk.rules';
import { checkEmail, checkUkMobile } from '../registration/registration.rules';
import { provisionalPersonId } from '../registration/registration.service';
import type { DerivedKeys } from '../../security/keys';
import { journeyKey, type JourneyEngine } from '../journey.engine';
import { decodeRaCase } from '../ra-case/ra-case.state';
import {
  ASSIST_KEEPING_OUTCOMES,
  isActive,
  newUnlockJourney,
  PAUSABLE_PHASES,
  promptCommand,
  type CodeOnlyFacts,
  type UnlockPhase,
  type PersonFacts,
  type StepResult,
  type UnlockEvent,
  type UnlockJourney,
  type UnlockRules,
} from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';
import { unlockCodeHash } from './unlock.definition';
import { resetSelfService, type SelfServiceResetResult } from './self-service-reset';

const toJourney = decodeUnlock;

/** An Entra object id (a GUID): what a directory profile is looked up by. */
const ENTRA_OBJECT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An RA case reference (`bot/security/codes.ts` generateCaseRef). */
const CASE_REF = /^RA-[A-Z0-9]{6}$/;

/** What {@link UnlockService.startAssistedUnlock} did. */
export type AssistedUnlockOutcome =
  | { kind: 'started' | 'resumed'; runId: string; phase: UnlockPhase }
  | { kind: 'refused'; reason: 'no_person' | 'bad_input' };

/** Longest a click waits for another click's answer check before it gets the current card, ms. */
export const CLICK_WAIT_MS = 5_000;

export interface UnlockServiceDeps {
  storage: Storage;
  engine: JourneyEngine;
  link: CompanionLink;
  keys: DerivedKeys;
  rules: UnlockRules;
  logger: Logger;
  timeZone: string;
  raContact: string;
  commandTimeoutMs: number;
  /** Proactive refresh of the person's unlock card in Teams. */
  notify: (personId: string, message: string | null) => Promise<void>;
  /** Picks the person's device to use now. */
  currentDevice: (personId: string) => Promise<Device | null>;
  now?: () => Date;
  /**
   * Code-only (issue #14): the person's directory profile by Entra object id (Graph prefill;
   * `bot/directory/`), or null when there is none or no directory is configured.
   */
  directoryLookup?: (aadObjectId: string) => Promise<DirectoryContact | null>;
  /**
   * Code-only: whether a directory is configured (then a person's stored email and mobile are never
   * used for a code; only their current profile is). Absent: configured when `directoryLookup` is given.
   */
  hasDirectory?: () => boolean;
  /** APPROVED_EMAIL_DOMAINS: a code-only code goes only to an address on one of these (or a sub-domain). */
  approvedDomains?: readonly string[];
}

export class UnlockService {
  constructor(private readonly deps: UnlockServiceDeps) {}

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  private codeHash(runId: string, code: string): string {
    return unlockCodeHash(this.deps.keys, runId, code);
  }

  /** Facts about a person that every step needs (no code-only contacts: see {@link personFacts}). */
  private baseFacts(person: Person): PersonFacts {
    return {
      personId: person.id,
      registered: person.answers.length >= 3,
      boundCardId: person.cardId,
      questionIds: person.answers.map((a) => a.questionId),
      storedLock: person.selfServiceLock,
    };
  }

  /**
   * Facts about a person that the journey needs; under `code-only` also where a code may go
   * (`enrolment`), taken from the person's CURRENT directory profile, looked up on every call (as
   * {@link startCodeOnly} does; issue #14): a mobile typed on a registration form, or one the directory
   * has since changed or removed, gets no code. An email counts only when it is on an approved domain
   * AND is the address on the person's record (the code mail goes to that address). No profile (the
   * directory has no such user), a failed lookup, or a Teams id that is not an Entra object id: no
   * contacts, so the run stops at `no_contact`. The stored `Person.email` / `Person.mobile` are used
   * instead ONLY when no directory is configured at all (`hasDirectory`).
   *
   * @param person - the stored person
   * @returns the facts; `enrolment` present only under `code-only`
   */
  async personFacts(person: Person): Promise<PersonFacts> {
    const base = this.baseFacts(person);
    if (!this.codeOnly()) return base;
    const stored = { personStored: true, teamsUserId: person.teamsUserId, displayName: person.displayName };
    if (!this.hasDirectory()) return { ...base, enrolment: this.contactsOf({ ...stored, email: person.email, mobile: person.mobile }) };
    const profile = ENTRA_OBJECT_ID.test(person.teamsUserId) ? await this.lookupProfile(person.teamsUserId) : null;
    const contacts = this.contactsOf({ ...stored, email: profile?.email ?? null, mobile: profile?.mobile ?? null });
    // The code mail goes to the record's address: offer email only when that is the profile's approved one.
    const sameEmail = contacts.email !== null && contacts.email === person.email.trim().toLowerCase();
    return { ...base, enrolment: { ...contacts, email: sameEmail ? contacts.email : null } };
  }

  /** True when a directory is configured ({@link UnlockServiceDeps.hasDirectory}). */
  private hasDirectory(): boolean {
    return this.deps.hasDirectory ? this.deps.hasDirectory() : this.deps.directoryLookup !== undefined;
  }

  /** The directory profile for an Entra object id; null when none, none configured, or the lookup failed (logged, no details). */
  private async lookupProfile(aadObjectId: string): Promise<DirectoryContact | null> {
    if (!this.deps.directoryLookup) return null;
    try {
      return await this.deps.directoryLookup(aadObjectId);
    } catch (err) {
      this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'directory lookup failed; no code-only contacts');
      return null;
    }
  }

  /** True under UNLOCK_POLICY=code-only. */
  codeOnly(): boolean {
    return this.deps.rules.policy === 'code-only';
  }

  /** The code-only facts for a profile: the email only when on an approved domain, the mobile only when a UK mobile (E.164). */
  private contactsOf(p: { personStored: boolean; teamsUserId: string; displayName: string; email: string | null; mobile: string | null }): CodeOnlyFacts {
    const profileEmail = p.email ? p.email.trim().toLowerCase() : null;
    const approved = profileEmail ? checkEmail(profileEmail, this.deps.approvedDomains ?? []) : null;
    const mobile = p.mobile ? checkUkMobile(p.mobile) : null;
    return {
      personStored: p.personStored,
      teamsUserId: p.teamsUserId,
      displayName: p.displayName,
      profileEmail: profileEmail && /^[^@\s]+@[^@\s]+$/.test(profileEmail) ? profileEmail : null,
      email: approved?.ok ? approved.value : null,
      mobile: mobile?.ok ? mobile.value : null,
    };
  }

  /**
   * Code-only (issue #14): begin an unlock for someone with no person record (never registered):
   * their directory profile (by Entra object id) gives where a code may go; the card their companion
   * reads must be one the card-management import named them holder of (by that email), and binds to
   * them then (enrolment), with no questions. A person who has a record uses {@link start}.
   *
   * @param identity - the Teams identity (`from.aadObjectId` or `from.id`, display name, Entra object id)
   * @returns the unlock record after the card check (e.g. `choosing_channel`, `code_sent`, or a
   *   `card_problem` such as `not_enrolled` or `no_contact`); the journey is keyed by the person id
   *   pairing used for this identity (`provisionalPersonId`)
   * @throws AppError `UNLOCK.POLICY` when the policy is not `code-only` (callers check {@link codeOnly})
   */
  async startCodeOnly(identity: { teamsUserId: string; displayName: string; aadObjectId: string | null }): Promise<JourneyRecord> {
    if (!this.codeOnly()) throw new AppError('UNLOCK.POLICY', 'startCodeOnly is for UNLOCK_POLICY=code-only');
    const personId = provisionalPersonId(identity.teamsUserId);
    const contact = identity.aadObjectId ? await this.lookupProfile(identity.aadObjectId) : null;
    const facts: PersonFacts = {
      personId,
      registered: false,
      boundCardId: null,
      questionIds: [],
      storedLock: null,
      enrolment: this.contactsOf({ personStored: false, teamsUserId: identity.teamsUserId, displayName: identity.displayName, email: contact?.email ?? null, mobile: contact?.mobile ?? null }),
    };
    const device = await this.deps.currentDevice(personId);
    const { record } = await this.apply(personId, async () => ({ type: 'start', person: facts, deviceId: device?.id ?? null }));
    return this.checkCardWith(facts, record);
  }

  /**
   * Code-only: the person picked where the code goes (`unlock.choose_channel` on the card).
   *
   * @param person - the person (enrolled by then)
   * @param runId - run id from the card
   * @param step - step from the card; a stale or repeated click changes nothing
   * @param channel - `email` or `sms`
   * @returns the record after the step
   */
  async chooseChannel(person: Person, runId: string, step: string, channel: 'email' | 'sms'): Promise<JourneyRecord> {
    const { record } = await this.apply(person.id, async (j) => (j.runId === runId && String(j.state.step) === step ? { type: 'channel_chosen', step: j.state.step, channel } : null));
    return record;
  }

  private initial = (): { state: unknown; counters: Record<string, number> } => encodeUnlock(newUnlockJourney('', ''));

  /** Answer checks in flight in this process, per person (a duplicate click waits for it instead of hashing). */
  private readonly checking = new Map<string, Promise<unknown>>();

  /**
   * The record as it stands now, or a fresh idle one (not stored): due expiries are stepped
   * first (e.g. an answer check whose process is gone is abandoned), so what is shown is current.
   * Costs one read when nothing is due.
   */
  async load(personId: string): Promise<JourneyRecord> {
    const { record } = await this.apply(personId, async () => ({ type: 'refresh' }));
    return record;
  }

  /**
   * Step the journey through the engine (load, step with its definition, store
   * state and effects in one compare-and-set write, then run the effects).
   *
   * @param personId - whose journey
   * @param makeEvent - builds the event from the journey as freshly read; null = nothing to do
   * @returns the record after the step and the step's result (null when no event applied)
   */
  async apply(personId: string, makeEvent: (journey: UnlockJourney, rec: JourneyRecord) => Promise<UnlockEvent | null>, deferEffects = false): Promise<{ record: JourneyRecord; result: StepResult | null }> {
    const { record, result } = await this.deps.engine.run(this.deps.engine.definitions.unlock, personId, makeEvent, { deferEffects });
    return { record, result };
  }

  // -------------------------------------------------------------------------
  // Teams-side entry points
  // -------------------------------------------------------------------------

  /** "unlock" typed, or the welcome card's button: begin a new run and check the card. */
  /**
   * Begin a new run and check the card.
   *
   * @param options.keepActiveRun - show a run in progress instead of replacing it (a click on
   *   an old welcome card, or a double click, must not throw away an emailed code); typed
   *   "unlock" starts afresh, except while answers are being checked (the step keeps that run,
   *   so its result applies; the person gets the current card). A card check left hanging by a
   *   crash is replaced after 30 s.
   */
  async start(person: Person, options: { keepActiveRun?: boolean } = {}): Promise<JourneyRecord> {
    await this.endAssistIfCaseClosed(person.id);
    const device = await this.deps.currentDevice(person.id);
    // Under code-only: the directory profile as it is now (one lookup per start).
    const facts = await this.personFacts(person);
    const { record, result } = await this.apply(person.id, async (j, rec) => {
      const stuckCheck = j.state.phase === 'checking_card' && this.now().getTime() - Date.parse(rec.updatedAt) > 30_000;
      if (options.keepActiveRun && isActive(j.state) && !stuckCheck) return null;
      return { type: 'start', person: facts, deviceId: device?.id ?? null };
    });
    // Kept a run whose card check is under way (a double click, here or on another instance): wait for
    // that check instead of asking the companion a second time (one card check per run).
    if (result === null && toJourney(record).state.phase === 'checking_card') return this.awaitCardCheck(person.id, record.runId);
    return this.checkCardWith(facts, record);
  }

  /**
   * Wait (reading the store, no command) until the run's card check has a result, then return the
   * record; gives up after {@link CLICK_WAIT_MS} and returns the record as it stands (a check whose
   * process is gone is replaced by the next start after 30 s).
   */
  private awaitCardCheck(personId: string, runId: string): Promise<JourneyRecord> {
    return this.awaitRecord(personId, Date.now() + CLICK_WAIT_MS, (rec) => rec.runId === runId && toJourney(rec).state.phase === 'checking_card');
  }

  private async checkCardWith(facts: PersonFacts, record: JourneyRecord): Promise<JourneyRecord> {
    const s = toJourney(record).state;
    if (s.phase !== 'checking_card') return record;
    const deviceId = s.deviceId;
    const result = await this.readCard(deviceId, facts.personId, facts.enrolment);
    const { record: after } = await this.apply(facts.personId, async (j) => {
      if (j.state.phase !== 'checking_card' || j.state.deviceId !== deviceId || j.runId !== record.runId) return null;
      return { type: 'card_status', person: facts, result };
    });
    return after;
  }

  private async readCard(deviceId: string, personId: string, enrolment?: CodeOnlyFacts): Promise<Extract<UnlockEvent, { type: 'card_status' }>['result']> {
    try {
      const reply = await this.deps.link.sendCommand(deviceId, { kind: 'card.read_status' }, this.deps.commandTimeoutMs);
      if (reply.kind === 'card.status') {
        const card = reply.status.present ? await this.deps.storage.cards.get(reply.status.cardId) : null;
        if (enrolment && this.codeOnly()) {
          // Code-only: the card may be bound to them already, or named (by the import) for their profile's email.
          const binding = cardClaim(card, personId, enrolment.profileEmail ? holderTag(this.deps.keys.codeHashKey, enrolment.profileEmail) : '');
          return { ok: true, status: reply.status, pukEnrolled: !!card?.puk && (binding === 'bound' || binding === 'bindable'), binding };
        }
        // A PUK counts only on a card bound to this person (registered and confirmed).
        const pukEnrolled = !!card?.puk && card.personId === personId;
        return { ok: true, status: reply.status, pukEnrolled };
      }
      if (reply.kind === 'error' && reply.code === 'CARD.NOT_PRESENT') return { ok: true, status: { present: false, reader: null }, pukEnrolled: false };
      this.deps.logger.warn({ deviceId, reply: reply.kind === 'error' ? reply.code : reply.kind }, 'card status not read');
      return { ok: false, problem: 'card_unreadable' };
    } catch (err) {
      this.deps.logger.warn({ deviceId, code: err instanceof AppError ? err.code : 'UNKNOWN' }, 'companion unreachable for card status');
      return { ok: false, problem: 'companion_offline' };
    }
  }

  /**
   * End an RA-assisted unlock whose case RA has closed with an outcome other than an assisted unlock or
   * an unlock in person (journey event `assist_revoked`): read from the case's own record, so it holds
   * however the close was made. Called before a start and before a code from the companion is taken.
   * Costs one read when no assist is on the record, two when there is.
   *
   * @param personId - whose unlock
   * @returns true when the assist (and its run, if no code was accepted yet) was ended
   */
  async endAssistIfCaseClosed(personId: string): Promise<boolean> {
    const rec = await this.deps.storage.journeys.get(journeyKey(personId, 'unlock'));
    const assist = rec ? toJourney(rec).assist ?? null : null;
    if (!assist) return false;
    const caseRec = await this.deps.storage.journeys.get(journeyKey(assist.caseRef, 'ra-case'));
    if (!caseRec) return false;
    const c = decodeRaCase(caseRec).state;
    if (c.status !== 'closed' || !c.outcome || ASSIST_KEEPING_OUTCOMES.includes(c.outcome.code)) return false;
    const outcome = c.outcome.code;
    const { result } = await this.apply(personId, async (j) => (j.assist?.caseRef === assist.caseRef ? { type: 'assist_revoked', caseRef: assist.caseRef, outcome } : null));
    return !!result?.changed;
  }

  /** "Try again" / "Check again" on a problem card: re-check the card if the click is current. */
  async checkAgain(person: Person, runId: string, step: string): Promise<JourneyRecord> {
    const rec = await this.load(person.id);
    const j = toJourney(rec);
    if (rec.runId !== runId || String(j.state.step) !== step) return rec;
    if (j.state.phase === 'card_problem' || j.state.phase === 'checking_card') return this.start(person);
    return rec;
  }

  /**
   * Answers from the questions card, in three steps:
   * 1. claim (`answers_submitted`): one CAS write checks lock, run, step and the
   *    attempt count on the record and counts the attempt; only one click wins it.
   *    A stale, repeated or locked click ends here, having cost no hash.
   * 2. the winner hashes the answers (scrypt, off the event loop);
   * 3. `answers_checked` (matched on the claim id) decides pass, fail or lock.
   * A click that loses the claim to a check running in this process waits for
   * that check and shows its outcome.
   */
  async submitAnswers(person: Person, runId: string, step: string, answers: [string, string, string]): Promise<JourneyRecord> {
    const claimId = randomUUID();
    const { record } = await this.apply(person.id, async (j) => {
      if (j.runId !== runId || String(j.state.step) !== step) return null;
      return { type: 'answers_submitted', person: this.baseFacts(person), runId, step: j.state.step, claimId };
    });
    const claimed = toJourney(record);
    if (claimed.state.phase !== 'checking_answers' || claimed.state.claimId !== claimId) {
      // Lost the claim to a check in flight (this process or another): wait for its outcome, hashing nothing.
      if (claimed.state.phase === 'checking_answers') return this.awaitCheck(person.id, claimed.runId, claimed.state.claimId);
      return record;
    }
    const questionIds = claimed.state.questionIds;
    const check = (async () => {
      const checks = await verifyAnswers(person.answers, questionIds.map((questionId, i) => ({ questionId, answer: answers[i] ?? '' })));
      const results = checks.map((c) => c.correct);
      return (await this.apply(person.id, async (j) => (j.runId === claimed.runId ? { type: 'answers_checked', runId: claimed.runId, claimId, results } : null))).record;
    })();
    this.checking.set(person.id, check);
    try {
      return await check;
    } finally {
      if (this.checking.get(person.id) === check) this.checking.delete(person.id);
    }
  }

  /**
   * Wait (no hashing) until the claimed answer check `claimId` has a result,
   * then return the record; gives up after {@link CLICK_WAIT_MS} (or the claim timeout, if
   * shorter) and returns the record as it stands (a claim whose process is gone is abandoned by then).
   */
  private awaitCheck(personId: string, runId: string, claimId: string): Promise<JourneyRecord> {
    // A click is answered within CLICK_WAIT_MS (Teams waits less for an invoke than the claim timeout).
    const deadline = Date.now() + Math.min(CLICK_WAIT_MS, this.deps.rules.answerCheckTimeoutMs);
    const waiting = (rec: JourneyRecord): boolean => {
      const s = toJourney(rec).state;
      return rec.runId === runId && s.phase === 'checking_answers' && s.claimId === claimId;
    };
    return this.awaitRecord(personId, deadline, waiting, () => this.checking.get(personId));
  }

  /**
   * Re-read the person's record (due expiries stepped) until `waiting` is false or `deadline` (epoch ms)
   * passes; between reads, wait for the in-flight work `inFlight` names, else 50 ms.
   */
  private async awaitRecord(personId: string, deadline: number, waiting: (rec: JourneyRecord) => boolean, inFlight?: () => Promise<unknown> | undefined): Promise<JourneyRecord> {
    for (;;) {
      const work = inFlight?.();
      if (work) await Promise.race([work.catch(() => undefined), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      else await new Promise((r) => setTimeout(r, 50));
      const rec = await this.load(personId);
      if (!waiting(rec) || Date.now() >= deadline) return rec;
    }
  }

  /**
   * Clear the person's self-service lock and attempt count: the one reset
   * operation (admin CLI, and the RA desk later). See {@link resetSelfService}.
   */
  async resetSelfService(personId: string, actor: string, note: string | null = null): Promise<SelfServiceResetResult> {
    return resetSelfService(this.deps.engine, personId, actor, note);
  }

  /**
   * Start, or resume, the person's unlock as an RA-assisted unlock (issue #12, "start an RA-assisted
   * unlock" on the case card): RA confirmed the person's identity in person, so the security
   * questions are skipped, the self-service lock and attempt count are reset, and the person
   * finishes at their companion with an emailed code. A run paused by "talk to RA" resumes where
   * it stopped; otherwise a new run checks the card and the code follows. The person is told in
   * their chat (their unlock card, updated in place or posted). Audited `unlock.assisted_started`
   * with `actor`; the completion is audited `unlock.completed` with `assisted: true` and `caseRef`.
   * Repeated for the same case while its run is under way, it changes nothing.
   *
   * @param input.personId - the person's id (UUID), as on the case
   * @param input.caseRef - the RA case, `RA-` and 6 letters or digits
   * @param input.actor - who started it, `ra:<Entra object id>` (1..200 characters)
   * @returns `started` (a new run) or `resumed` (the run kept), with the run id and its phase now
   *   (`code_sent` once the card checked out; a `card_problem` the person sees on their card, e.g.
   *   `no_companion`); or `refused` with `no_person` or `bad_input` (nothing changed)
   * @throws AppError `JOURNEY.BUSY` when the record kept changing; storage errors
   */
  async startAssistedUnlock(input: { personId: string; caseRef: string; actor: string }): Promise<AssistedUnlockOutcome> {
    if (!CASE_REF.test(input.caseRef) || !/^ra:.{1,197}$/.test(input.actor)) return { kind: 'refused', reason: 'bad_input' };
    const person = await this.deps.storage.persons.get(input.personId);
    if (!person) return { kind: 'refused', reason: 'no_person' };
    const device = await this.deps.currentDevice(person.id);
    // Under code-only the assisted code goes where a code-only code may go (the current directory profile).
    const facts = await this.personFacts(person);
    let before: { runId: string; phase: UnlockPhase } | null = null;
    const { record } = await this.apply(person.id, async (j) => {
      before = { runId: j.runId, phase: j.state.phase };
      return { type: 'assisted_start', person: facts, deviceId: device?.id ?? null, caseRef: input.caseRef, actor: input.actor };
    });
    const after = await this.checkCardWith(facts, record);
    await this.deps.notify(person.id, null).catch((err: unknown) => this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'teams refresh failed'));
    const was = before as { runId: string; phase: UnlockPhase } | null;
    const resumed = was !== null && was.runId === after.runId && !['idle', 'done', 'ended', 'locked_out'].includes(was.phase);
    return { kind: resumed ? 'resumed' : 'started', runId: after.runId, phase: toJourney(after).state.phase };
  }

  /**
   * The person asked to talk to RA (issue #12): pause their unlock run where it stands, so it is
   * not lost and an RA-assisted unlock resumes it ({@link startAssistedUnlock}). Only a run
   * before its code was accepted and with no answer check in flight pauses (`checking_card`,
   * `card_problem`, `answering`, `code_sent`; an open code form on the companion is closed).
   * Their unlock card shows it. Audited `unlock.paused`.
   *
   * @param personId - the person's id
   * @param caseRef - their RA case
   * @returns the run that was paused (id, phase it stopped at, step), or null when none was
   */
  async pauseForRa(personId: string, caseRef: string): Promise<{ paused: { runId: string; phase: string; step: number } | null }> {
    const { record, result } = await this.apply(personId, async (j) => ((PAUSABLE_PHASES as readonly string[]).includes(j.state.phase) ? { type: 'pause', caseRef } : null));
    const s = toJourney(record).state;
    if (!result?.changed || s.phase !== 'paused') return { paused: null };
    await this.deps.notify(personId, null).catch((err: unknown) => this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'teams refresh failed'));
    return { paused: { runId: record.runId, phase: s.from.phase, step: s.from.step } };
  }

  async resendCode(person: Person, runId: string, step: string): Promise<JourneyRecord> {
    const { record } = await this.apply(person.id, async (j) => (j.runId === runId && String(j.state.step) === step ? { type: 'resend_code', person: this.baseFacts(person), step: j.state.step } : null));
    return record;
  }

  /** Cancel the current run (card button with its step, or typed "cancel" with none). */
  async cancel(person: Person, click?: { runId: string; step: string }): Promise<{ record: JourneyRecord; cancelled: boolean }> {
    const { record, result } = await this.apply(person.id, async (j) => {
      if (click && (j.runId !== click.runId || String(j.state.step) !== click.step)) return null;
      return { type: 'cancel', step: j.state.step };
    });
    return { record, cancelled: !!result?.changed };
  }

  /** Remember which Teams activity shows this run's card (for in-place updates). */
  async setCardActivity(personId: string, runId: string, activityId: string): Promise<void> {
    await this.deps.engine.setCardActivity(personId, 'unlock', runId, activityId);
  }

  // -------------------------------------------------------------------------
  // Companion-side entry points
  // -------------------------------------------------------------------------

  /**
   * A request from a paired companion (see protocol).
   *
   * @param device - the paired device that sent it (credential checked on this message)
   * @param request - the parsed request
   * @param link - the link session it came on (`welcome.session`): the PUK pair goes only to the
   *   session that presented the accepted code, and a resume from another session needs the code
   *   again (issue #10); null when unknown (then a resume always needs the code)
   * @returns the response for the companion
   */
  async onCompanionRequest(device: Device, request: Request, link: { linkSession: string | null } = { linkSession: null }): Promise<Response> {
    switch (request.kind) {
      case 'unlock.submit_code':
      case 'unlock.resume': {
        // A code from an RA-assisted run whose case RA closed (not as an assisted unlock) is not taken.
        await this.endAssistIfCaseClosed(device.personId);
        const { result } = await this.apply(device.personId, async (j) => {
          if (j.runId !== request.journeyId) return null;
          if (request.kind === 'unlock.submit_code') {
            return { type: 'code_submitted', deviceId: device.id, cardId: request.cardId, codeHash: this.codeHash(j.runId, request.code), linkSession: link.linkSession };
          }
          const codeHash = request.code !== undefined ? this.codeHash(j.runId, request.code) : null;
          return { type: 'resume', deviceId: device.id, cardId: request.cardId, linkSession: link.linkSession, codeHash };
        }, true);
        const verdict = result?.verdict ?? { kind: 'refused' as const, reason: 'not_waiting' as const };
        // Accepted: the step stored a `puk.release` effect; bot/puk sends the pair as the
        // `unlock.authorised` command just after this answer (deferred effects).
        if (verdict.kind === 'authorised') return { kind: 'unlock.accepted', journeyId: request.journeyId };
        return { kind: 'unlock.refused', reason: verdict.reason, message: refusalText(verdict.reason, verdict.triesLeft), ...(verdict.triesLeft !== undefined ? { triesLeft: verdict.triesLeft } : {}) };
      }
      case 'unlock.result': {
        // `pukOnCard: 'new'` makes the step emit `puk.commit` (only for the run unblocking this card with this device).
        await this.apply(device.personId, async (j) =>
          j.runId === request.journeyId
            ? { type: 'unblock_result', deviceId: device.id, cardId: request.cardId, outcome: request.outcome, pukOnCard: request.pukOnCard, workstation: device.workstation }
            : null,
          true,
        );
        return { kind: 'ok' };
      }
      default:
        return { kind: 'unlock.refused', reason: 'not_waiting', message: 'There is no unlock waiting for this.' };
    }
  }

  /**
   * A companion (re)connected: if this person's run is waiting for the emailed code
   * on that device, show the code form again (a restarted companion forgot it).
   */
  async onCompanionConnected(device: Device): Promise<void> {
    const rec = await this.deps.storage.journeys.get(journeyKey(device.personId, 'unlock'));
    if (!rec) return;
    const s = toJourney(rec).state;
    if (s.phase !== 'code_sent' || s.deviceId !== device.id || !s.code.mailed) return;
    if (this.now().getTime() >= Date.parse(s.code.expiresAt)) return;
    await this.deps.link.sendCommand(device.id, promptCommand(rec.runId, s.cardId, s.code), this.deps.commandTimeoutMs);
  }

  /** Card inserted or removed: a problem card waiting on the card re-checks by itself. */
  async onCardEvent(device: Device, status: CardStatus): Promise<void> {
    const person = await this.deps.storage.persons.get(device.personId);
    if (!person) return;
    const card = status.present ? await this.deps.storage.cards.get(status.cardId) : null;
    const pukEnrolled = !!card?.puk && card.personId === person.id;
    let facts: PersonFacts | null = null;
    const { result } = await this.apply(person.id, async (j) => {
      const s = j.state;
      if (s.phase !== 'card_problem' || s.deviceId !== device.id) return null;
      if (!['no_card', 'wrong_card', 'not_blocked', 'card_unreadable'].includes(s.problem)) return null;
      if (!status.present) return null;
      // Looked up only when the event applies (under code-only: the current directory profile).
      facts ??= await this.personFacts(person);
      return { type: 'card_status', person: facts, result: { ok: true, status, pukEnrolled } };
    });
    if (result?.changed) await this.deps.notify(person.id, null).catch((err: unknown) => this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'teams refresh failed'));
  }

  /** Carry out effects still pending for this person's unlock journey. */
  async drain(personId: string): Promise<void> {
    await this.deps.engine.drain(personId, 'unlock');
  }
}

function refusalText(reason: string, triesLeft?: number): string {
  switch (reason) {
    case 'wrong_code':
      return `That code is not right. ${triesLeft ?? 0} ${triesLeft === 1 ? 'try' : 'tries'} left.`;
    case 'too_many_tries':
      return 'Too many wrong codes. Ask for a new code in Teams.';
    case 'expired':
      return 'That code has expired. Start again in Teams.';
    case 'used':
      return 'That code has already been used.';
    case 'wrong_card':
      return 'This is not the card the code was sent for.';
    case 'not_waiting':
      return 'There is no unlock waiting for a code. Start in Teams.';
    case 'code_needed':
      return 'The connection to this computer changed since your code was accepted. Type your unlock code again to finish.';
    default:
      return 'Smartcard Assist could not complete that just now. Try again shortly.';
  }
}
