/**
 * The unlock journey as a pure state machine (STYLE.md 2):
 * `stepUnlock(journey, event, ctx) -> { journey, effects, reply }`.
 *
 * No I/O, no clock, no randomness of its own: the shell passes the time, fresh
 * random values (question draw, a new code's hash and sealed value, a case
 * reference) and anything it looked up (the card status from the companion,
 * whether each answer matched). Unit tests drive it with plain values.
 *
 * Rules (DESIGN.md "Unlock a locked card", issues #2 and #9):
 * - The card in the reader must be the one bound to the person, and blocked
 *   (PIN retry counter 0).
 * - 3 of the person's 4 questions, drawn at random, on one card; all three right
 *   is a pass. Every evaluated submission uses one of 3 attempts, counted across
 *   runs until a reset; a failed submission that uses the last attempt locks
 *   self-service and opens an RA case. A run that reaches the questions with no
 *   attempt left (the earlier ones passed but the run never finished) locks too.
 * - The unlock code is 8 digits, valid 15 minutes, single use, at most 5 wrong
 *   tries (`UNLOCK_CODE_*` settings within those bounds, `unlock-policy.config.ts`);
 *   at most 3 codes an hour per person, across runs; only a right code lets the
 *   companion have the PUK.
 * - The PUK pair goes only to the link session that presented the accepted code;
 *   a resume from another link session needs the code again (issue #10, finding 8).
 *
 * The journey record (one per person, key `<personId>:unlock`) is the single
 * source of truth for the run's phase and step, the attempt count and the
 * self-service lock. Every step decides from the record as read in its own
 * compare-and-set write (the engine retries a lost race from a fresh read); the
 * `Person.selfServiceLock` field is only a mirror written by an effect, except
 * that a lock stored there by older versions (or newer than the last reset) still
 * counts and is copied into the record by the next step that sees it.
 *
 * Invariants (checked by the interleaving property test, issue #9), for any
 * interleaving of typed messages, clicks (repeated, stale), companion messages
 * and bot restarts:
 * - I1: at most `maxAnswerFailures` (3) answer submissions are evaluated per
 *   person between two resets (a successful unlock, or an RA reset). An attempt
 *   is counted by the claim (`answers_submitted`, one CAS write that moves the
 *   run to `checking_answers`) BEFORE the answers are hashed, so a crash
 *   mid-check cannot give an attempt back; only the click that wins the claim
 *   hashes, and a claim is refused once the count is used up.
 * - I2: once locked, no answers are evaluated, no code is sent or accepted and
 *   no PUK is released (`code_submitted` / `resume` are refused) until a reset.
 * - I3: each lockout opens exactly one RA case: a case is opened only by the
 *   step that sets the record's lock, and a locked record is never locked again.
 * - A reset during an answer check keeps the claim and counts it as the first
 *   attempt after the reset (its result still applies).
 * - A claim left by a crash (its process gone, as `claimAlive` tells from the boot
 *   id recorded on the claim; or no `answers_checked` within
 *   `answerCheckTimeoutMs`, 30 s) returns the run to the questions at the next
 *   step WITHOUT giving the attempt back (its answers may have been evaluated);
 *   if it was the last attempt, self-service locks.
 */
import type { CardStatus, Command } from '../../../protocol/companion-link.protocol';
import type { CardClaim } from '../../puk/puk.rules';
import type { Sealed, SelfServiceLock } from '../../../storage/storage.port';
import type { Effect } from '../journey.effects';

/** Tunable limits; defaults from issue #2. */
export interface UnlockRules {
  /** Failed answer attempts before self-service locks. */
  maxAnswerFailures: number;
  /** Lifetime of an unlock code, milliseconds. */
  codeTtlMs: number;
  /** Wrong tries allowed per code. */
  maxCodeTries: number;
  /** Codes that may be issued in one run (first + resends). */
  maxCodesPerRun: number;
  /** How long after a code is accepted the companion may finish (card pulled and put back), ms. */
  unblockWindowMs: number;
  /** After this long a claimed answer check with no result is abandoned (a crash), ms. */
  answerCheckTimeoutMs: number;
  /** Digits in a code (UNLOCK_CODE_DIGITS; at least 6). */
  codeDigits: number;
  /**
   * Codes one person may be sent in any 60 minutes (UNLOCK_CODES_PER_HOUR; at most 3: issue #14,
   * "at most 3 codes an hour"). A sliding window over the send times on the record
   * ({@link UnlockJourney.codeTimes}), across runs and channels; first codes and resends count alike.
   * Nothing restarts the count but time: not a successful unlock, a cancel, a code that expired or
   * was used up, a reset or an RA-assisted start (an unlock that succeeded still sent its code, and a
   * count restarted by success would let a person who unlocks again and again be sent codes without
   * bound). Only the attempt count starts afresh after an unlock.
   */
  maxCodesPerHour: number;
  /** UNLOCK_POLICY: `questions` (security questions, emailed code) or `code-only` (issue #14). */
  policy: 'questions' | 'code-only';
  /** Channels a `code-only` code may go by (UNLOCK_CODE_CHANNELS). */
  codeChannels: ReadonlyArray<'email' | 'sms'>;
}

export const DEFAULT_UNLOCK_RULES: UnlockRules = {
  maxAnswerFailures: 3,
  codeTtlMs: 15 * 60_000,
  maxCodeTries: 5,
  maxCodesPerRun: 3,
  unblockWindowMs: 15 * 60_000,
  answerCheckTimeoutMs: 30_000,
  codeDigits: 8,
  maxCodesPerHour: 3,
  policy: 'questions',
  codeChannels: ['email', 'sms'],
};

/** The window of {@link UnlockRules.maxCodesPerHour}, ms. */
export const CODE_RATE_WINDOW_MS = 60 * 60_000;

export type CardProblem =
  | 'not_registered'
  | 'no_companion'
  | 'companion_offline'
  | 'no_card'
  | 'wrong_card'
  | 'not_blocked'
  | 'card_unreadable'
  | 'no_puk'
  /** {@link UnlockRules.maxCodesPerHour} codes were sent in the last hour (issue #14). */
  | 'too_many_codes'
  /** Code-only: the card in the reader is not one the card-management import named this person as holder of. */
  | 'not_enrolled'
  /** Code-only: the person's profile gives no approved email and no UK mobile to send a code to. */
  | 'no_contact'
  /** The card's certificates have expired (by the bot's clock): it needs renewing by RA, not unlocking (issue #14). */
  | 'certificates_expired';

export interface IssuedCode {
  /** Keyed hash (HMAC-SHA-256 hex) of the code. */
  hash: string;
  issuedAt: string;
  expiresAt: string;
  wrongTries: number;
  /**
   * True once the mail service accepted the email (Graph: 202). Until then the
   * code cannot be used, and its lifetime restarts from the moment of acceptance.
   */
  mailed: boolean;
  /** How the code went (absent: email, as before issue #14). */
  channel?: 'email' | 'sms';
  /** The mobile an SMS code went to (E.164), for a resend; absent for email. */
  to?: string;
}

export type UnlockState =
  | { phase: 'idle'; step: number }
  | {
      phase: 'checking_card';
      step: number;
      deviceId: string;
      /**
       * An RA-assisted resume of a run that had a code out: that code, kept while the card is read
       * again (its certificates may have expired meanwhile). Re-used only for the same device and card
       * while still valid; otherwise a new code follows the check.
       */
      kept?: { deviceId: string; cardId: string; code: IssuedCode; codesIssued: number };
    }
  | {
      phase: 'card_problem';
      step: number;
      problem: CardProblem;
      deviceId: string | null;
      /** `certificates_expired`: the RA case opened for the renewal, and the earliest `notAfter` (ISO 8601). */
      caseRef?: string;
      expiredAt?: string;
    }
  | {
      phase: 'answering';
      step: number;
      deviceId: string;
      cardId: string;
      questionIds: string[];
      /** Set after a failed attempt, for the card. */
      lastResult: 'wrong' | null;
    }
  /** One click won the claim for this submission; its answers are being hashed. The attempt is already counted. */
  | {
      phase: 'checking_answers';
      step: number;
      deviceId: string;
      cardId: string;
      questionIds: string[];
      /** Id of the claim; only the `answers_checked` carrying it applies. */
      claimId: string;
      /** ISO 8601 time of the claim. */
      claimedAt: string;
      /** Boot id of the process that claimed it (absent in claims stored by older versions). */
      claimedBy?: string;
    }
  /** Code-only (issue #14): the person has an approved email and a UK mobile, and picks where the code goes. */
  | { phase: 'choosing_channel'; step: number; deviceId: string; cardId: string; email: string; mobile: string }
  | {
      phase: 'code_sent';
      step: number;
      deviceId: string;
      cardId: string;
      code: IssuedCode;
      codesIssued: number;
      /**
       * How the companion brought its passcode page to the person for the last prompt (the `unlock.prompt`
       * ack's `page`, issue #13): the card then names the computer. Absent: not known (an older companion).
       */
      page?: 'opened' | 'notified' | 'none';
    }
  | {
      phase: 'unblocking';
      step: number;
      deviceId: string;
      cardId: string;
      authorisedAt: string;
      interrupted: boolean;
      /**
       * The link session that presented the accepted code (issue #10): a PUK pair goes only to
       * it, and a resume from another session must present the code again. Null for runs stored
       * before issue #10 (a resume then always needs the code).
       */
      linkSession: string | null;
      /** Keyed hash of the accepted code, to check it when presented again on another link; null before issue #10. */
      codeHash: string | null;
      /** Wrong codes counted on this run's code so far (before and after it was accepted). */
      codeWrongTries: number;
    }
  /**
   * The person asked to talk to RA mid-run (issue #12): the run is kept as it stood (`from`), not
   * lost; an RA-assisted unlock resumes it where it stopped, and "unlock" starts afresh.
   */
  | { phase: 'paused'; step: number; caseRef: string; at: string; from: PausableState }
  | { phase: 'done'; step: number; at: string; cardId: string }
  | { phase: 'locked_out'; step: number; caseRef: string }
  | { phase: 'ended'; step: number; reason: 'cancelled' | 'expired' | 'failed'; detail: string };

export type UnlockPhase = UnlockState['phase'];

/** Phases a run can be paused in ("talk to RA"): before a code was accepted and with no answer check in flight. */
export const PAUSABLE_PHASES = ['checking_card', 'card_problem', 'answering', 'code_sent'] as const;
export type PausableState = Extract<UnlockState, { phase: (typeof PAUSABLE_PHASES)[number] }>;

/**
 * An RA-assisted unlock in force (issue #12): RA confirmed the person's identity in person, so
 * the run it started (or the one it resumed) skips the security questions. It is bound to that run
 * ({@link UnlockAssist.runId}) and ends with it: with the unlock, or when the run ends otherwise
 * (cancelled, code expired or not sent, locked out), and at the latest after {@link ASSIST_WINDOW_MS}.
 * A new run started while the assisted one is still under way (`start`: "try again" on a card
 * problem, "unlock" typed mid-run) carries it on. Once it has ended, "unlock" asks the questions again.
 */
export interface UnlockAssist {
  caseRef: string;
  /** Who started it, `ra:<Entra object id>`. */
  actor: string;
  /** ISO 8601 time it was started. */
  at: string;
  /**
   * The run it belongs to (absent in assists stored before it was bound: then only the window ends it,
   * until the next `start`).
   */
  runId?: string;
}

/** How long an RA-assisted unlock stays in force once started, ms (the person has an hour to finish). */
export const ASSIST_WINDOW_MS = 60 * 60_000;

/** What the shell hands the journey about the person. */
export interface PersonFacts {
  personId: string;
  registered: boolean;
  boundCardId: string | null;
  /** Question ids the person registered (4). */
  questionIds: string[];
  /**
   * `Person.selfServiceLock` as read (a mirror of the record's lock, or a lock
   * stored by older versions). It counts only when newer than the record's last
   * reset, so a stale copy cannot undo a reset nor stand in for the record's lock.
   */
  storedLock: SelfServiceLock | null;
  /**
   * Code-only (issue #14): where a code may go and who the person is, as the shell found them;
   * absent under `questions`.
   */
  enrolment?: CodeOnlyFacts;
}

/** What the shell found for a code-only unlock (directory profile, or the stored person). */
export interface CodeOnlyFacts {
  /** True when a `Person` record exists already (registered, or enrolled before): nothing is created. */
  personStored: boolean;
  teamsUserId: string;
  displayName: string;
  /** The profile's email whatever its domain (the person record needs one), or null. */
  profileEmail: string | null;
  /** The profile's email when its domain is approved (APPROVED_EMAIL_DOMAINS), else null. */
  email: string | null;
  /** The profile's mobile when it is a UK mobile, in E.164 (`+447...`), else null. */
  mobile: string | null;
}

export type UnlockEvent =
  /** Person asked to unlock (text, welcome card, or "try again"). */
  | { type: 'start'; person: PersonFacts; deviceId: string | null }
  /** The companion answered `card.read_status` (or could not be reached). */
  | {
      type: 'card_status';
      person: PersonFacts;
      result:
        | {
            ok: true;
            status: CardStatus;
            pukEnrolled: boolean;
            /** Code-only: how the person stands to the card record (`bot/puk/puk.rules.ts` cardClaim); absent under `questions`. */
            binding?: CardClaim;
          }
        | { ok: false; problem: 'companion_offline' | 'card_unreadable' };
    }
  /** A click on the questions card: claim the one answer check (counts an attempt). */
  | { type: 'answers_submitted'; person: PersonFacts; runId: string; step: number; claimId: string }
  /** The claimed check's result (one boolean per question, in card order). */
  | { type: 'answers_checked'; runId: string; claimId: string; results: boolean[] }
  /** RA or an admin clears the lock and the attempt count (audited as `actor`). */
  | { type: 'reset'; actor: string; note: string | null }
  | { type: 'resend_code'; person: PersonFacts; step: number }
  /** Code-only: the person picked where the code goes, on the card of step `step`. */
  | { type: 'channel_chosen'; step: number; channel: 'email' | 'sms' }
  /** The mail service accepted the code email at `at` (ISO 8601). */
  | { type: 'code_mailed'; runId: string; codeHash: string; at: string }
  /** The code email could not be sent, finally (after the adapter's retries). */
  | { type: 'code_mail_failed'; runId: string; codeHash: string }
  /** The companion answered run `runId`'s `unlock.prompt`, saying how it brought its page to the person (issue #13). */
  | { type: 'prompt_shown'; runId: string; page: 'opened' | 'notified' | 'none' }
  | { type: 'cancel'; step: number }
  /**
   * The companion sent the code the person typed. `codeHash` is the keyed hash of what was typed;
   * `linkSession` the link session it came on (the PUK pair goes only there).
   */
  | { type: 'code_submitted'; deviceId: string; cardId: string; codeHash: string; linkSession: string | null }
  /**
   * The companion asks for the PUK pair again (card pulled and back, or its link was lost).
   * From another link session than the one that presented the code, `codeHash` (the code typed
   * again) must match the accepted code.
   */
  | { type: 'resume'; deviceId: string; cardId: string; linkSession: string | null; codeHash: string | null }
  /** Look at the journey as it stands now: due expiries (a dead answer check, a code) apply; nothing else changes. */
  | { type: 'refresh' }
  /** The person asked to talk to RA (case `caseRef`): keep the run as it stands, paused (issue #12). */
  | { type: 'pause'; caseRef: string }
  /**
   * RA confirmed the person's identity in person and started an assisted unlock (case `caseRef`,
   * by `actor` = `ra:<id>`): the lock and attempt count are reset, and the run (a paused one resumed
   * where it stopped, else a new one) goes on without security questions.
   */
  | { type: 'assisted_start'; person: PersonFacts; deviceId: string | null; caseRef: string; actor: string }
  /**
   * RA closed case `caseRef` with `outcome` other than an assisted unlock or an unlock in person (the
   * shell reads it from the case): an assist of that case ends, and its run, if no code was accepted yet, ends too.
   */
  | { type: 'assist_revoked'; caseRef: string; outcome: string }
  | {
      type: 'unblock_result';
      deviceId: string;
      cardId: string;
      outcome: 'unblocked' | 'card_removed' | 'puk_rejected' | 'card_error';
      /** Which PUK the card holds now, as the companion knows it; `new` commits the rotation. */
      pukOnCard: 'current' | 'new' | 'unknown';
      workstation: string | null;
    };

/** Fresh values from the shell (random, time, ids), so the step stays pure. */
export interface StepContext {
  now: Date;
  rules: UnlockRules;
  /** New UUID per call. */
  newId: () => string;
  /** Random permutation indexes used to draw questions: a shuffled copy of [0..n). */
  shuffle: <T>(items: readonly T[]) => T[];
  /** A freshly generated code, should the step issue one. */
  freshCode: { hash: string; sealed: (runId: string) => Sealed };
  /** A fresh RA case reference, should the step open a case. */
  freshCaseRef: string;
  /** Constant-time comparison of two hex hashes. */
  hashesEqual: (a: string, b: string) => boolean;
  /** This process's boot id, recorded on an answer claim it makes (absent: not recorded). */
  bootId?: string;
  /**
   * Whether the process of boot `claimedBy` may still be checking the answers it claimed
   * (false: it is gone, e.g. the bot restarted; the claim is abandoned at once). Absent: always true
   * (only the claim timeout ends a claim).
   */
  claimAlive?: (claimedBy: string) => boolean;
}

/** The part of the journey record the step reads and writes. */
export interface UnlockJourney {
  personId: string;
  runId: string;
  state: UnlockState;
  /** Evaluated (or claimed) answer submissions since the last reset. */
  counters: { answerAttempts: number };
  /** The self-service lock; only a reset clears it. */
  lock: SelfServiceLock | null;
  /** ISO 8601 time of the last reset, or null. */
  resetAt: string | null;
  /**
   * ISO 8601 times codes were issued to this person in the last hour, across runs (the hourly cap,
   * issue #14). Absent in records stored before it: none counted.
   */
  codeTimes?: string[];
  /** An RA-assisted unlock in force, or absent/null (records stored before issue #12 have none). */
  assist?: UnlockAssist | null;
  /** The RA case opened for a card whose certificates expired, so checking it again opens no second case. */
  renewal?: { cardId: string; caseRef: string } | null;
}

/** A synchronous answer to the companion for `code_submitted` / `resume`. */
export type CompanionVerdict =
  | { kind: 'authorised' }
  | {
      kind: 'refused';
      reason: 'wrong_code' | 'expired' | 'used' | 'too_many_tries' | 'wrong_card' | 'not_waiting' | 'code_needed';
      triesLeft?: number;
    };

export interface StepResult {
  journey: UnlockJourney;
  effects: Effect[];
  /** Set for events that need an answer beyond the state (companion requests). */
  verdict?: CompanionVerdict;
  /** False when the event did not apply (stale click, wrong phase): nothing to save. */
  changed: boolean;
}

const ACTIVE_PHASES: ReadonlySet<UnlockPhase> = new Set(['checking_card', 'answering', 'checking_answers', 'choosing_channel', 'code_sent', 'unblocking']);

/** True while a run is in progress (a new `start` would replace it). */
export function isActive(state: UnlockState): boolean {
  return ACTIVE_PHASES.has(state.phase);
}

/** A fresh journey for a person with no record yet. */
export function newUnlockJourney(personId: string, runId: string): UnlockJourney {
  return { personId, runId, state: { phase: 'idle', step: 0 }, counters: { answerAttempts: 0 }, lock: null, resetAt: null };
}

/**
 * The lock in force: the record's own, else a lock stored on the person that is
 * newer than the record's last reset (older versions wrote it only there).
 *
 * @returns the lock, or null when self-service is open
 */
export function effectiveLock(journey: UnlockJourney, person: PersonFacts | null): SelfServiceLock | null {
  if (journey.lock) return journey.lock;
  const stored = person?.storedLock ?? null;
  if (!stored) return null;
  if (journey.resetAt && Date.parse(stored.at) <= Date.parse(journey.resetAt)) return null;
  return stored;
}

/** Attempts left before the next failure locks self-service. */
export function attemptsLeft(journey: UnlockJourney, rules: UnlockRules): number {
  return Math.max(0, rules.maxAnswerFailures - journey.counters.answerAttempts);
}

function unchanged(journey: UnlockJourney, verdict?: CompanionVerdict): StepResult {
  return { journey, effects: [], changed: false, ...(verdict ? { verdict } : {}) };
}

function audit(ctx: StepContext, personId: string, action: string, details: Record<string, string | number | boolean | null> = {}, actor = `person:${personId}`): Effect {
  return { type: 'audit', id: ctx.newId(), personId, actor, action, details };
}

/**
 * Apply one event to the journey.
 *
 * @param journey - current journey (not mutated)
 * @param event - what happened
 * @param ctx - time, rules and fresh values from the shell
 * @returns the next journey, effects to store with it, and a verdict for companion requests.
 *   `changed: false` means the event was stale or out of place and nothing needs saving.
 */
export function stepUnlock(journey: UnlockJourney, event: UnlockEvent, ctx: StepContext): StepResult {
  // Lazy expiry: a code or unblock window that has run out ends the run first.
  const expired = expireIfDue(journey, ctx);
  // A start replaces an expired code or unblock window anyway; a dead answer check is
  // abandoned first (audited, attempt kept, maybe a lock) so the start sees the outcome.
  if (expired && (event.type !== 'start' || journey.state.phase === 'checking_answers')) {
    const r = stepUnlockLive(expired.journey, event, ctx);
    return { journey: r.journey, effects: [...expired.effects, ...r.effects], changed: true, ...(r.verdict ? { verdict: r.verdict } : {}) };
  }
  return stepUnlockLive(journey, event, ctx);
}

function expireIfDue(journey: UnlockJourney, ctx: StepContext): { journey: UnlockJourney; effects: Effect[] } | null {
  const s = journey.state;
  const now = ctx.now.getTime();
  if (s.phase === 'code_sent' && now >= Date.parse(s.code.expiresAt)) {
    return {
      journey: { ...journey, state: { phase: 'ended', step: s.step + 1, reason: 'expired', detail: 'The unlock code expired before it was used.' } },
      effects: [
        audit(ctx, journey.personId, 'unlock.code_expired', { runId: journey.runId }, 'system'),
        closeOnCompanion(ctx, s.deviceId, journey.runId, 'expired', 'The unlock code expired. Start again in Teams.'),
      ],
    };
  }
  const claimerGone = s.phase === 'checking_answers' && s.claimedBy !== undefined && ctx.claimAlive !== undefined && !ctx.claimAlive(s.claimedBy);
  if (s.phase === 'checking_answers' && (claimerGone || now >= Date.parse(s.claimedAt) + ctx.rules.answerCheckTimeoutMs)) {
    // A claim left by a crash (its process is gone, or no result in time): the attempt stays
    // counted (its answers may have been evaluated).
    const abandoned = audit(ctx, journey.personId, 'unlock.answer_check_abandoned', { runId: journey.runId, attempt: journey.counters.answerAttempts, reason: claimerGone ? 'claimer_gone' : 'timeout' }, 'system');
    const back: UnlockJourney = { ...journey, state: { phase: 'answering', step: s.step + 1, deviceId: s.deviceId, cardId: s.cardId, questionIds: s.questionIds, lastResult: null } };
    if (attemptsLeft(journey, ctx.rules) === 0) {
      const locked = lockOut(back, ctx, s.step + 1, { runId: journey.runId, cardId: s.cardId, attempt: journey.counters.answerAttempts, wrongAnswers: null });
      return { journey: locked.journey, effects: [abandoned, ...locked.effects] };
    }
    return { journey: back, effects: [abandoned] };
  }
  if (s.phase === 'unblocking' && now >= Date.parse(s.authorisedAt) + ctx.rules.unblockWindowMs) {
    return {
      journey: { ...journey, state: { phase: 'ended', step: s.step + 1, reason: 'expired', detail: 'The card was not unlocked in time.' } },
      effects: [
        audit(ctx, journey.personId, 'unlock.unblock_expired', { runId: journey.runId, cardId: s.cardId }, 'system'),
        closeOnCompanion(ctx, s.deviceId, journey.runId, 'expired', 'Time ran out. Start again in Teams.'),
      ],
    };
  }
  return null;
}

/**
 * Lock self-service (the record's lock) and open the one RA case for this lockout.
 * Only called on an unlocked journey, so each lockout opens exactly one case (I3).
 */
function lockOut(journey: UnlockJourney, ctx: StepContext, step: number, context: { runId: string; cardId: string; attempt: number; wrongAnswers: number | null }): { journey: UnlockJourney; effects: Effect[] } {
  const personId = journey.personId;
  const caseRef = ctx.freshCaseRef;
  const lock: SelfServiceLock = { at: ctx.now.toISOString(), caseRef, reason: 'answers_failed' };
  const effects: Effect[] = [];
  if (context.wrongAnswers !== null) effects.push(audit(ctx, personId, 'unlock.answers_failed', { runId: context.runId, attempt: context.attempt, wrongAnswers: context.wrongAnswers }));
  effects.push(
    { type: 'case.open', id: ctx.newId(), personId, ref: caseRef, reason: 'answers_failed', context: { runId: context.runId, cardId: context.cardId, failedAttempts: context.attempt } },
    // Mirror for display and listing; no rule reads it back.
    { type: 'person.lock_self_service', id: ctx.newId(), personId, caseRef, reason: 'answers_failed', at: lock.at },
    audit(ctx, personId, 'unlock.self_service_locked', { runId: context.runId, caseRef }, 'system'),
  );
  return { journey: { ...journey, lock, state: { phase: 'locked_out', step, caseRef } }, effects };
}

/** Show the lock in force (copying a lock found only on the person into the record). */
function showLock(journey: UnlockJourney, lock: SelfServiceLock, ctx: StepContext, newRun: boolean): StepResult {
  const s = journey.state;
  if (journey.lock && s.phase === 'locked_out' && s.caseRef === lock.caseRef) return unchanged(journey);
  const effects: Effect[] = [];
  if ('deviceId' in s && s.deviceId && isActive(s) && s.phase !== 'checking_card') effects.push(closeOnCompanion(ctx, s.deviceId, journey.runId, 'locked_out', 'Self-service unlock is locked. Contact your RA team.'));
  const runId = newRun ? ctx.newId() : journey.runId;
  return { journey: { ...journey, runId, lock, state: { phase: 'locked_out', step: s.step + 1, caseRef: lock.caseRef } }, effects, changed: true };
}

function closeOnCompanion(ctx: StepContext, deviceId: string, runId: string, outcome: 'unlocked' | 'cancelled' | 'locked_out' | 'expired' | 'failed', message: string): Effect {
  return { type: 'companion.command', id: ctx.newId(), deviceId, command: { kind: 'unlock.closed', journeyId: runId, outcome, message } };
}

function stepUnlockLive(journey: UnlockJourney, event: UnlockEvent, ctx: StepContext): StepResult {
  const s = journey.state;
  const personId = journey.personId;
  switch (event.type) {
    case 'start': {
      // Locked (as the record says, or a lock only the person holds): show it, start nothing.
      const lock = effectiveLock(journey, event.person);
      if (lock) return showLock(journey, lock, ctx, true);
      // Answers being checked (a live claim; a dead one was abandoned above): keep the run, so the
      // check's result applies to it; the person sees the current card (typed or clicked alike).
      if (s.phase === 'checking_answers') return unchanged(journey);
      // Otherwise a start begins a new run, replacing an unfinished one (its code dies with it).
      const runId = ctx.newId();
      const step = s.step + 1;
      const effects: Effect[] = [];
      if (s.phase === 'code_sent' || s.phase === 'unblocking' || s.phase === 'answering') {
        effects.push(closeOnCompanion(ctx, s.deviceId, journey.runId, 'cancelled', 'A new unlock was started in Teams.'));
      }
      // An RA-assisted unlock is bound to its run: a start that replaces that run while it is still
      // under way (a card problem retried, "unlock" typed mid-run) carries it on; after the run ended
      // (cancelled, expired, failed, done) it is over, and the questions are asked again.
      const inForce = assistInForce(journey, ctx.now);
      const carried = inForce !== null && runUnderWay(s, ctx) ? { ...inForce, runId } : null;
      const base: UnlockJourney = { ...journey, runId, ...(journey.assist ? { assist: carried } : {}) };
      const p = event.person;
      // An RA-assisted unlock asks no questions: a bound card is enough.
      const assisted = carried !== null;
      // Code-only (issue #14): no registration; the card read next decides whether the person is enrolled.
      const codeOnly = ctx.rules.policy === 'code-only' && p.enrolment !== undefined;
      if (!codeOnly && (!p.boundCardId || (!assisted && (!p.registered || p.questionIds.length < 3)))) {
        return { journey: { ...base, state: { phase: 'card_problem', step, problem: 'not_registered', deviceId: null } }, effects, changed: true };
      }
      if (!event.deviceId) {
        return { journey: { ...base, state: { phase: 'card_problem', step, problem: 'no_companion', deviceId: null } }, effects, changed: true };
      }
      effects.push(audit(ctx, personId, 'unlock.started', { runId }));
      return { journey: { ...base, state: { phase: 'checking_card', step, deviceId: event.deviceId } }, effects, changed: true };
    }

    case 'card_status': {
      if (s.phase !== 'checking_card' && !(s.phase === 'card_problem' && s.deviceId)) return unchanged(journey);
      const deviceId = s.deviceId as string;
      const step = s.step + 1;
      const problem = (p: CardProblem): StepResult => ({ journey: { ...journey, state: { phase: 'card_problem', step, problem: p, deviceId } }, effects: [], changed: true });
      const r = event.result;
      if (!r.ok) return problem(r.problem);
      if (!r.status.present) return problem('no_card');
      const codeOnly = ctx.rules.policy === 'code-only' && event.person.enrolment !== undefined;
      if (codeOnly && !event.person.boundCardId) {
        // Not enrolled yet: the card must be one the card-management import named them holder of.
        if (r.binding !== 'bindable' && r.binding !== 'bound') {
          return { ...problem('not_enrolled'), effects: [audit(ctx, personId, 'unlock.card_not_enrolled', { runId: journey.runId, presentedCardId: r.status.cardId, binding: r.binding ?? null })] };
        }
      } else if (r.status.cardId !== event.person.boundCardId) {
        return { ...problem('wrong_card'), effects: [audit(ctx, personId, 'unlock.wrong_card', { runId: journey.runId, presentedCardId: r.status.cardId })] };
      }
      // Expired certificates (by this clock): the card needs renewing, not unlocking (issue #14).
      const expired = expiredCertificates(r.status, ctx.now);
      if (expired.length > 0) return certificatesExpired(journey, ctx, step, deviceId, r.status.cardId, expired);
      if (r.status.pinRetries > 0) return problem('not_blocked');
      if (!r.pukEnrolled) return problem('no_puk');
      const lock = effectiveLock(journey, event.person);
      if (lock) return showLock(journey, lock, ctx, false);
      // RA confirmed the person in person (issue #12): no questions, the code goes now.
      const assist = assistInForce(journey, ctx.now);
      if (assist) {
        // A resumed run's code, kept while the card was read again: the same code, if still good for this device and card.
        const kept = s.phase === 'checking_card' ? s.kept : undefined;
        if (kept && kept.deviceId === deviceId && kept.cardId === r.status.cardId && codeUsable(kept.code, ctx)) {
          return {
            journey: { ...journey, state: { phase: 'code_sent', step, deviceId, cardId: kept.cardId, code: kept.code, codesIssued: kept.codesIssued } },
            effects: [{ type: 'companion.command', id: ctx.newId(), deviceId, command: promptCommand(journey.runId, kept.cardId, kept.code) }],
            changed: true,
          };
        }
        const skipped = audit(ctx, personId, 'unlock.questions_skipped', { runId: journey.runId, caseRef: assist.caseRef, reason: 'ra_assisted' }, assist.actor);
        // Under code-only the code goes where a code-only code may go (approved email, UK mobile, or the person's choice).
        if (codeOnly) return codeOnlyCode(journey, event.person, ctx, step, deviceId, r.status.cardId, skipped);
        return sendCodeNow(journey, ctx, step, deviceId, r.status.cardId, [skipped]);
      }
      if (codeOnly) return codeOnlyCode(journey, event.person, ctx, step, deviceId, r.status.cardId);
      if (attemptsLeft(journey, ctx.rules) === 0) {
        // Every attempt was used (the last ones passed, but no unlock followed): no more evaluations.
        const locked = lockOut(journey, ctx, step, { runId: journey.runId, cardId: r.status.cardId, attempt: journey.counters.answerAttempts, wrongAnswers: null });
        return { ...locked, changed: true };
      }
      // No code could follow the answers this hour: ask nothing (an attempt would be spent for nothing).
      if (!mayIssueCode(journey, ctx)) return problem('too_many_codes');
      const questionIds = ctx.shuffle(event.person.questionIds).slice(0, 3);
      return {
        journey: { ...journey, state: { phase: 'answering', step, deviceId, cardId: r.status.cardId, questionIds, lastResult: null } },
        effects: [],
        changed: true,
      };
    }

    case 'answers_submitted': {
      // Decided from the record as read in this write: the lock, the run, the step, the count.
      const lock = effectiveLock(journey, event.person);
      if (lock) return showLock(journey, lock, ctx, false);
      if (s.phase !== 'answering' || event.runId !== journey.runId || event.step !== s.step) return unchanged(journey);
      if (attemptsLeft(journey, ctx.rules) === 0) {
        const locked = lockOut(journey, ctx, s.step + 1, { runId: journey.runId, cardId: s.cardId, attempt: journey.counters.answerAttempts, wrongAnswers: null });
        return { ...locked, changed: true };
      }
      // The claim: only one click wins this write; it counts the attempt before any hashing (I1).
      return {
        journey: {
          ...journey,
          counters: { ...journey.counters, answerAttempts: journey.counters.answerAttempts + 1 },
          state: {
            phase: 'checking_answers',
            step: s.step + 1,
            deviceId: s.deviceId,
            cardId: s.cardId,
            questionIds: s.questionIds,
            claimId: event.claimId,
            claimedAt: ctx.now.toISOString(),
            ...(ctx.bootId !== undefined ? { claimedBy: ctx.bootId } : {}),
          },
        },
        effects: [],
        changed: true,
      };
    }

    case 'answers_checked': {
      if (s.phase !== 'checking_answers' || event.runId !== journey.runId || event.claimId !== s.claimId) return unchanged(journey);
      // A lock is only ever set by a step that leaves `checking_answers`; kept as a guard (I2).
      if (journey.lock) return showLock(journey, journey.lock, ctx, false);
      const step = s.step + 1;
      const attempt = journey.counters.answerAttempts;
      const passed = event.results.length === 3 && event.results.every(Boolean);
      if (passed) {
        if (!mayIssueCode(journey, ctx)) {
          return {
            journey: { ...journey, state: { phase: 'card_problem', step, problem: 'too_many_codes', deviceId: s.deviceId } },
            effects: [audit(ctx, personId, 'unlock.answers_passed', { runId: journey.runId, attempt }), audit(ctx, personId, 'unlock.code_refused', { runId: journey.runId, reason: 'too_many_codes' }, 'system')],
            changed: true,
          };
        }
        const code = issueCode(ctx);
        const mailId = ctx.newId();
        return {
          journey: { ...countCode(journey, ctx), state: { phase: 'code_sent', step, deviceId: s.deviceId, cardId: s.cardId, code, codesIssued: 1 } },
          effects: [
            audit(ctx, personId, 'unlock.answers_passed', { runId: journey.runId, attempt }),
            { type: 'mail.unlock_code', id: mailId, personId, codeSealed: ctx.freshCode.sealed(journey.runId), codeHash: code.hash, runId: journey.runId, expiresAt: code.expiresAt },
            { type: 'companion.command', id: ctx.newId(), deviceId: s.deviceId, command: promptCommand(journey.runId, s.cardId, code), onlyAfter: mailId },
          ],
          changed: true,
        };
      }
      const wrongCount = event.results.filter((ok) => !ok).length;
      if (attemptsLeft(journey, ctx.rules) === 0) {
        const locked = lockOut(journey, ctx, step, { runId: journey.runId, cardId: s.cardId, attempt, wrongAnswers: wrongCount });
        return { ...locked, changed: true };
      }
      return {
        journey: { ...journey, state: { phase: 'answering', step, deviceId: s.deviceId, cardId: s.cardId, questionIds: s.questionIds, lastResult: 'wrong' } },
        effects: [audit(ctx, personId, 'unlock.answers_failed', { runId: journey.runId, attempt, wrongAnswers: wrongCount })],
        changed: true,
      };
    }

    case 'reset': {
      // The one way to clear a lock and the attempt count (admin CLI now, the RA desk later).
      // An answer check in flight (a live claim) stays, and counts as the first attempt of
      // the new period: its result still applies, and at most 3 evaluations follow the reset (I1).
      const inFlightCheck = s.phase === 'checking_answers';
      const effects: Effect[] = [
        audit(ctx, personId, 'unlock.self_service_reset', { caseRef: journey.lock?.caseRef ?? null, attemptsBefore: journey.counters.answerAttempts, inFlightCheck, note: event.note }, event.actor),
        { type: 'person.clear_self_service_lock', id: ctx.newId(), personId },
      ];
      const state: UnlockState = s.phase === 'locked_out' ? { phase: 'idle', step: s.step + 1 } : s;
      return { journey: { ...journey, state, lock: null, resetAt: ctx.now.toISOString(), counters: { ...journey.counters, answerAttempts: inFlightCheck ? 1 : 0 } }, effects, changed: true };
    }

    case 'resend_code': {
      if (s.phase !== 'code_sent' || event.step !== s.step) return unchanged(journey);
      if (s.codesIssued >= ctx.rules.maxCodesPerRun || !mayIssueCode(journey, ctx)) return unchanged(journey);
      const code = withChannel(issueCode(ctx), s.code.channel === 'sms' && s.code.to ? { channel: 'sms', to: s.code.to } : { channel: 'email' });
      return {
        journey: { ...countCode(journey, ctx), state: { ...s, step: s.step + 1, code, codesIssued: s.codesIssued + 1 } },
        effects: (() => {
          const mailId = ctx.newId();
          return [
            audit(ctx, personId, 'unlock.code_resent', { runId: journey.runId, codesIssued: s.codesIssued + 1 }),
            codeEffect(mailId, personId, ctx, journey.runId, code, s.code.channel === 'sms' && s.code.to ? { channel: 'sms', to: s.code.to } : { channel: 'email' }),
            { type: 'companion.command', id: ctx.newId(), deviceId: s.deviceId, command: promptCommand(journey.runId, s.cardId, code), onlyAfter: mailId },
          ] satisfies Effect[];
        })(),
        changed: true,
      };
    }

    case 'code_mailed': {
      if (s.phase !== 'code_sent' || event.runId !== journey.runId || s.code.hash !== event.codeHash || s.code.mailed) return unchanged(journey);
      const at = Date.parse(event.at);
      return {
        journey: { ...journey, state: { ...s, code: { ...s.code, mailed: true, issuedAt: event.at, expiresAt: new Date(at + ctx.rules.codeTtlMs).toISOString() } } },
        effects: [],
        changed: true,
      };
    }

    case 'prompt_shown': {
      // Recorded for the card ("the companion's page has opened on WS-123"); the card is refreshed in place.
      if (s.phase !== 'code_sent' || event.runId !== journey.runId || s.page === event.page) return unchanged(journey);
      return {
        journey: { ...journey, state: { ...s, page: event.page } },
        effects: [{ type: 'teams.refresh', id: ctx.newId(), personId, message: null }],
        changed: true,
      };
    }

    case 'code_mail_failed': {
      if (s.phase !== 'code_sent' || event.runId !== journey.runId || s.code.hash !== event.codeHash) return unchanged(journey);
      // An SMS code (issue #14) fails in the same words, naming the text message.
      const sms = s.code.channel === 'sms';
      const what = sms ? 'text message' : 'email';
      return {
        journey: {
          ...journey,
          state: { phase: 'ended', step: s.step + 1, reason: 'failed', detail: `We could not send the ${what} with your unlock code, so no code is valid. Try again in a few minutes; if it keeps failing, contact your RA team.` },
        },
        effects: [
          audit(ctx, personId, 'unlock.code_mail_failed', { runId: journey.runId, ...(sms ? { channel: 'sms' } : {}) }, 'system'),
          closeOnCompanion(ctx, s.deviceId, journey.runId, 'failed', `The unlock code ${what} could not be sent. Start again in Teams later.`),
          { type: 'teams.refresh', id: ctx.newId(), personId, message: `Sorry: the ${what} with your unlock code could not be sent. No code is valid. Try again in a few minutes, or contact your RA team.` },
        ],
        changed: true,
      };
    }

    case 'cancel': {
      if (!isActive(s) && s.phase !== 'card_problem') return unchanged(journey);
      if (event.step !== s.step) return unchanged(journey);
      const effects: Effect[] = [audit(ctx, personId, 'unlock.cancelled', { runId: journey.runId })];
      if ('deviceId' in s && s.deviceId && s.phase !== 'card_problem' && s.phase !== 'checking_card') {
        effects.push(closeOnCompanion(ctx, s.deviceId, journey.runId, 'cancelled', 'Unlock cancelled in Teams.'));
      }
      return { journey: { ...journey, state: { phase: 'ended', step: s.step + 1, reason: 'cancelled', detail: 'You cancelled the unlock.' } }, effects, changed: true };
    }

    case 'code_submitted': {
      if (journey.lock) return unchanged(journey, { kind: 'refused', reason: 'not_waiting' });
      if (s.phase === 'unblocking') return unchanged(journey, { kind: 'refused', reason: 'used' });
      if (s.phase === 'ended' && s.reason === 'expired') return unchanged(journey, { kind: 'refused', reason: 'expired' });
      if (s.phase !== 'code_sent') return unchanged(journey, { kind: 'refused', reason: 'not_waiting' });
      if (event.deviceId !== s.deviceId || event.cardId !== s.cardId) {
        return {
          journey,
          effects: [audit(ctx, personId, 'unlock.code_from_wrong_device_or_card', { runId: journey.runId, deviceId: event.deviceId, cardId: event.cardId }, `device:${event.deviceId}`)],
          verdict: { kind: 'refused', reason: 'wrong_card' },
          changed: true,
        };
      }
      if (!s.code.mailed) return unchanged(journey, { kind: 'refused', reason: 'not_waiting' });
      if (s.code.wrongTries >= ctx.rules.maxCodeTries) return unchanged(journey, { kind: 'refused', reason: 'too_many_tries', triesLeft: 0 });
      if (!ctx.hashesEqual(event.codeHash, s.code.hash)) {
        const wrongTries = s.code.wrongTries + 1;
        const triesLeft = Math.max(0, ctx.rules.maxCodeTries - wrongTries);
        return {
          journey: { ...journey, state: { ...s, code: { ...s.code, wrongTries } } },
          effects: [audit(ctx, personId, 'unlock.code_wrong', { runId: journey.runId, wrongTries }, `device:${event.deviceId}`)],
          verdict: triesLeft === 0 ? { kind: 'refused', reason: 'too_many_tries', triesLeft: 0 } : { kind: 'refused', reason: 'wrong_code', triesLeft },
          changed: true,
        };
      }
      return {
        journey: {
          ...journey,
          state: {
            phase: 'unblocking',
            step: s.step + 1,
            deviceId: s.deviceId,
            cardId: s.cardId,
            authorisedAt: ctx.now.toISOString(),
            interrupted: false,
            linkSession: event.linkSession,
            codeHash: s.code.hash,
            codeWrongTries: s.code.wrongTries,
          },
        },
        effects: [
          audit(ctx, personId, 'unlock.code_accepted', { runId: journey.runId, cardId: s.cardId }, `device:${event.deviceId}`),
          // The PUK pair goes to this companion, on the link that presented the code, through the
          // outbox (bot/puk re-checks before sending).
          pukRelease(ctx, personId, s.deviceId, s.cardId, journey.runId, event.linkSession),
          { type: 'teams.refresh', id: ctx.newId(), personId, message: null },
        ],
        verdict: { kind: 'authorised' },
        changed: true,
      };
    }

    case 'refresh':
      // Due expiries were applied before this step (stepUnlock); nothing else to do.
      return unchanged(journey);

    case 'channel_chosen': {
      if (s.phase !== 'choosing_channel' || event.step !== s.step) return unchanged(journey);
      const via: CodeVia = event.channel === 'sms' ? { channel: 'sms', to: s.mobile } : { channel: 'email' };
      return sendCodeNow(journey, ctx, s.step + 1, s.deviceId, s.cardId, [audit(ctx, personId, 'unlock.channel_chosen', { runId: journey.runId, channel: event.channel })], via);
    }

    case 'pause': {
      if (!(PAUSABLE_PHASES as readonly string[]).includes(s.phase)) return unchanged(journey);
      const from = s as PausableState;
      const effects: Effect[] = [audit(ctx, personId, 'unlock.paused', { runId: journey.runId, caseRef: event.caseRef, phase: s.phase })];
      // The companion's code form would only refuse the code now: close it (the resume shows it again).
      if (from.phase === 'code_sent') effects.push(closeOnCompanion(ctx, from.deviceId, journey.runId, 'cancelled', 'Paused while your RA team helps you. Carry on in Teams.'));
      return { journey: { ...journey, state: { phase: 'paused', step: s.step + 1, caseRef: event.caseRef, at: ctx.now.toISOString(), from } }, effects, changed: true };
    }

    case 'assisted_start':
      return assistedStart(journey, event, ctx);

    case 'assist_revoked':
      return assistRevoked(journey, event, ctx);

    case 'resume': {
      if (journey.lock) return unchanged(journey, { kind: 'refused', reason: 'not_waiting' });
      if (s.phase !== 'unblocking') return unchanged(journey, { kind: 'refused', reason: 'not_waiting' });
      if (event.deviceId !== s.deviceId || event.cardId !== s.cardId) return unchanged(journey, { kind: 'refused', reason: 'wrong_card' });
      const actor = `device:${event.deviceId}`;
      // The link that presented the code: the pair goes to it again (the card was pulled and is back).
      if (event.linkSession !== null && event.linkSession === s.linkSession) {
        return {
          journey,
          effects: [audit(ctx, personId, 'unlock.resumed', { runId: journey.runId, newLink: false }, actor), pukRelease(ctx, personId, s.deviceId, s.cardId, journey.runId, s.linkSession)],
          verdict: { kind: 'authorised' },
          changed: true,
        };
      }
      // Another link session (issue #10, finding 8): only the code again proves it is the person's companion.
      if (event.codeHash === null || s.codeHash === null) {
        return {
          journey,
          effects: [audit(ctx, personId, 'unlock.resume_refused', { runId: journey.runId, reason: 'code_needed' }, actor)],
          verdict: { kind: 'refused', reason: 'code_needed' },
          changed: true,
        };
      }
      if (s.codeWrongTries >= ctx.rules.maxCodeTries) return unchanged(journey, { kind: 'refused', reason: 'too_many_tries', triesLeft: 0 });
      if (!ctx.hashesEqual(event.codeHash, s.codeHash)) {
        const wrongTries = s.codeWrongTries + 1;
        const triesLeft = Math.max(0, ctx.rules.maxCodeTries - wrongTries);
        return {
          journey: { ...journey, state: { ...s, codeWrongTries: wrongTries } },
          effects: [audit(ctx, personId, 'unlock.code_wrong', { runId: journey.runId, wrongTries }, actor)],
          verdict: triesLeft === 0 ? { kind: 'refused', reason: 'too_many_tries', triesLeft: 0 } : { kind: 'refused', reason: 'wrong_code', triesLeft },
          changed: true,
        };
      }
      // The code again, on a new link: that link now holds the run (an older session's release is withheld).
      return {
        journey: { ...journey, state: { ...s, linkSession: event.linkSession } },
        effects: [audit(ctx, personId, 'unlock.resumed', { runId: journey.runId, newLink: true }, actor), pukRelease(ctx, personId, s.deviceId, s.cardId, journey.runId, event.linkSession)],
        verdict: { kind: 'authorised' },
        changed: true,
      };
    }

    case 'unblock_result': {
      if (s.phase !== 'unblocking' || event.deviceId !== s.deviceId || event.cardId !== s.cardId) return unchanged(journey);
      // The card holds the new PUK (whatever else happened): make it current before anything else.
      const rotation: Effect[] = event.pukOnCard === 'new' ? [{ type: 'puk.commit', id: ctx.newId(), personId, deviceId: s.deviceId, cardId: s.cardId, runId: journey.runId }] : [];
      if (event.outcome === 'unblocked') {
        const at = ctx.now.toISOString();
        return {
          // A successful unlock is a reset of the attempt count (not of a lock: only `reset` clears that).
          journey: { ...journey, counters: { ...journey.counters, answerAttempts: 0 }, state: { phase: 'done', step: s.step + 1, at, cardId: s.cardId }, ...(journey.assist ? { assist: null } : {}) },
          effects: [
            ...rotation,
            audit(ctx, personId, 'unlock.completed', { runId: journey.runId, cardId: s.cardId, workstation: event.workstation, ...assistedDetails(journey, ctx) }, `device:${event.deviceId}`),
            { type: 'teams.refresh', id: ctx.newId(), personId, message: 'Your smartcard is unlocked. You can use it with your new passcode now.' },
            { type: 'mail.unlock_notice', id: ctx.newId(), personId, at, workstation: event.workstation },
            closeOnCompanion(ctx, s.deviceId, journey.runId, 'unlocked', 'Your card is unlocked.'),
          ],
          changed: true,
        };
      }
      // Not finished: the card was pulled or refused. Stay in `unblocking` so the
      // companion can resume when the card is back, within the window.
      const effects: Effect[] = [...rotation, audit(ctx, personId, 'unlock.unblock_interrupted', { runId: journey.runId, outcome: event.outcome }, `device:${event.deviceId}`)];
      if (!s.interrupted) effects.push({ type: 'teams.refresh', id: ctx.newId(), personId, message: null });
      return { journey: { ...journey, state: { ...s, interrupted: true } }, effects, changed: true };
    }
  }
}

/** `assisted` and `caseRef` for the completion audit of an RA-assisted run (the usage report counts it as RA-assisted). */
function assistedDetails(journey: UnlockJourney, ctx: StepContext): Record<string, string | boolean> {
  const a = journey.assist ?? null;
  // A run the assist covered: in force now, or started before the code was accepted (the window may close mid-unblock).
  if (!a || ctx.now.getTime() >= Date.parse(a.at) + ASSIST_WINDOW_MS + ctx.rules.unblockWindowMs) return {};
  return { assisted: true, caseRef: a.caseRef };
}

/**
 * RA started an assisted unlock (issue #12): reset the lock and attempts (RA confirmed the person in
 * person), record the assist (bound to the run), and carry the run on without questions:
 * - a run that is unblocking (its code accepted) carries on;
 * - any other run kept (paused, waiting for answers, with a code out, checking the card, a card
 *   problem) goes back to `checking_card` on the same run: the card is read again before any code
 *   (a certificate may have expired while it was paused; issue #14). A code that was out is kept
 *   through the check and re-used when still valid for the same device and card (the companion is
 *   prompted again); otherwise the code follows the check (under `code-only`, by the code-only
 *   channel choice);
 * - otherwise (none, finished, or an answer check in flight, whose result then no longer applies)
 *   a new run checks the card; the code follows the check.
 */
function assistedStart(journey: UnlockJourney, event: Extract<UnlockEvent, { type: 'assisted_start' }>, ctx: StepContext): StepResult {
  const s = journey.state;
  const personId = journey.personId;
  // The same start again (a retried effect, a double click): the run it started goes on; nothing new.
  const current = assistInForce(journey, ctx.now);
  if (current && current.caseRef === event.caseRef && (s.phase === 'checking_card' || s.phase === 'code_sent' || s.phase === 'unblocking')) return unchanged(journey);
  const at = ctx.now.toISOString();
  const lockBefore = effectiveLock(journey, event.person);
  const from: UnlockState = s.phase === 'paused' ? s.from : s;
  const keepsRun = s.phase === 'paused' || from.phase === 'answering' || from.phase === 'code_sent' || from.phase === 'unblocking' || from.phase === 'checking_card' || from.phase === 'card_problem';
  const runId = keepsRun ? journey.runId : ctx.newId();
  const base: UnlockJourney = {
    ...journey,
    runId,
    lock: null,
    resetAt: at,
    counters: { ...journey.counters, answerAttempts: 0 },
    assist: { caseRef: event.caseRef, actor: event.actor, at, runId },
  };
  const first: Effect[] = [
    audit(ctx, personId, 'unlock.assisted_started', { runId, caseRef: event.caseRef, resumedFrom: keepsRun ? from.phase : null, lockCleared: lockBefore?.caseRef ?? null, attemptsBefore: journey.counters.answerAttempts }, event.actor),
  ];
  if (lockBefore || journey.lock) first.push({ type: 'person.clear_self_service_lock', id: ctx.newId(), personId });
  const step = s.step + 1;
  const done = (state: UnlockState, more: Effect[] = []): StepResult => ({ journey: { ...base, state }, effects: [...first, ...more], changed: true });
  if (from.phase === 'unblocking') {
    // The code was accepted already: the companion finishes; nothing to skip.
    return done(from);
  }
  if (!event.person.boundCardId) return done({ phase: 'card_problem', step, problem: 'not_registered', deviceId: null });
  if (!event.deviceId) return done({ phase: 'card_problem', step, problem: 'no_companion', deviceId: null });
  // Every code, kept or new, follows a fresh read of the card (its certificates may have expired while
  // the run was paused). A code that was out is kept for the check and re-used if still good.
  const kept = from.phase === 'code_sent' ? { deviceId: from.deviceId, cardId: from.cardId, code: from.code, codesIssued: from.codesIssued } : null;
  const close: Effect[] =
    s.phase === 'code_sent' ? [closeOnCompanion(ctx, s.deviceId, runId, 'cancelled', 'Your RA team started an assisted unlock. Checking your card again…')] : [];
  return done({ phase: 'checking_card', step, deviceId: event.deviceId, ...(kept ? { kept } : {}) }, close);
}

/** Outcomes of a case close that leave its RA-assisted unlock standing (the unlock was its point). */
export const ASSIST_KEEPING_OUTCOMES: readonly string[] = ['assisted_unlock', 'unlocked_in_person'];

/**
 * RA closed the case of the assist in force with another outcome (e.g. `no_action` after identity
 * doubts): the assist ends, so "unlock" asks the questions again, and the run it covered ends too:
 * a code that was out is no longer taken (the companion's form closes). A run whose code was accepted
 * already (`unblocking`: the PUK pair was released) is left to finish, assisted. Another case's close, an
 * outcome in {@link ASSIST_KEEPING_OUTCOMES}, or no assist: nothing changes.
 */
function assistRevoked(journey: UnlockJourney, event: Extract<UnlockEvent, { type: 'assist_revoked' }>, ctx: StepContext): StepResult {
  const a = journey.assist ?? null;
  if (!a || a.caseRef !== event.caseRef || ASSIST_KEEPING_OUTCOMES.includes(event.outcome)) return unchanged(journey);
  const s = journey.state;
  const personId = journey.personId;
  const ownRun = assistInForce(journey, ctx.now) !== null;
  // Its code was accepted already: the companion finishes, and the completion is still the assisted one (ends at `done`).
  if (ownRun && s.phase === 'unblocking') return unchanged(journey);
  const effects: Effect[] = [audit(ctx, personId, 'unlock.assist_ended', { runId: journey.runId, caseRef: a.caseRef, outcome: event.outcome }, 'system')];
  const endsRun = ownRun && (isActive(s) || s.phase === 'card_problem' || s.phase === 'paused');
  if (!endsRun) return { journey: { ...journey, assist: null }, effects, changed: true };
  if (s.phase === 'code_sent' || s.phase === 'answering') effects.push(closeOnCompanion(ctx, s.deviceId, journey.runId, 'cancelled', 'Your RA team closed your case. Start again in Teams.'));
  if (s.phase === 'paused' && s.from.phase === 'code_sent') effects.push(closeOnCompanion(ctx, s.from.deviceId, journey.runId, 'cancelled', 'Your RA team closed your case. Start again in Teams.'));
  effects.push({ type: 'teams.refresh', id: ctx.newId(), personId, message: null });
  return {
    journey: { ...journey, assist: null, state: { phase: 'ended', step: s.step + 1, reason: 'cancelled', detail: `Your RA team closed case ${a.caseRef}, so the assisted unlock has ended. To unlock your card, start again.` } },
    effects,
    changed: true,
  };
}

/** True while an issued code can still be used: accepted by the mail or SMS service, not expired, tries left. */
function codeUsable(code: IssuedCode, ctx: Pick<StepContext, 'now' | 'rules'>): boolean {
  return code.mailed && ctx.now.getTime() < Date.parse(code.expiresAt) && code.wrongTries < ctx.rules.maxCodeTries;
}

/** Release the card's PUK pair to `deviceId`, on link session `linkSession`, for this run (carried out by `bot/puk/`). */
function pukRelease(ctx: StepContext, personId: string, deviceId: string, cardId: string, runId: string, linkSession: string | null): Effect {
  return { type: 'puk.release', id: ctx.newId(), personId, deviceId, cardId, runId, linkSession };
}

/** Codes issued to the person within the last hour (before `ctx.now`), as recorded on the journey. */
export function codesInLastHour(journey: UnlockJourney, now: Date): string[] {
  const from = now.getTime() - CODE_RATE_WINDOW_MS;
  return (journey.codeTimes ?? []).filter((t) => Date.parse(t) > from);
}

/**
 * True when one more code may be issued now: fewer than {@link UnlockRules.maxCodesPerHour} codes were
 * sent in the last hour. A successful unlock does not restart the count (see there).
 */
export function mayIssueCode(journey: UnlockJourney, ctx: Pick<StepContext, 'now' | 'rules'>): boolean {
  return codesInLastHour(journey, ctx.now).length < ctx.rules.maxCodesPerHour;
}

/**
 * True while a run is still under way for an RA-assisted unlock to carry over to the run that replaces it:
 * active or at a card problem, and not run out (a code or unblock window past its time, which a `start`
 * replaces without ending it first).
 */
function runUnderWay(s: UnlockState, ctx: StepContext): boolean {
  const now = ctx.now.getTime();
  if (s.phase === 'code_sent') return now < Date.parse(s.code.expiresAt);
  if (s.phase === 'unblocking') return now < Date.parse(s.authorisedAt) + ctx.rules.unblockWindowMs;
  return isActive(s) || s.phase === 'card_problem';
}

/** Phases in which a run is over (nothing of it goes on). */
const RUN_OVER: ReadonlySet<UnlockPhase> = new Set(['idle', 'done', 'ended', 'locked_out']);

/**
 * The RA-assisted unlock in force at `now`, or null: within {@link ASSIST_WINDOW_MS} of its start and,
 * when bound to a run ({@link UnlockAssist.runId}), only while that run is the journey's and not over.
 */
export function assistInForce(journey: UnlockJourney, now: Date): UnlockAssist | null {
  const a = journey.assist ?? null;
  if (!a) return null;
  if (a.runId !== undefined && (a.runId !== journey.runId || RUN_OVER.has(journey.state.phase))) return null;
  return now.getTime() < Date.parse(a.at) + ASSIST_WINDOW_MS ? a : null;
}

/**
 * Issue a code now, with no questions (an RA-assisted unlock; code-only policy): the code is
 * mailed and the companion prompted once it was, as after passed answers. Over the hourly cap
 * the run stops with `too_many_codes` instead.
 */
function sendCodeNow(journey: UnlockJourney, ctx: StepContext, step: number, deviceId: string, cardId: string, first: Effect[], via: CodeVia = { channel: 'email' }): StepResult {
  const personId = journey.personId;
  if (!mayIssueCode(journey, ctx)) {
    return {
      journey: { ...journey, state: { phase: 'card_problem', step, problem: 'too_many_codes', deviceId } },
      effects: [...first, audit(ctx, personId, 'unlock.code_refused', { runId: journey.runId, reason: 'too_many_codes' }, 'system')],
      changed: true,
    };
  }
  const code = withChannel(issueCode(ctx), via);
  const mailId = ctx.newId();
  return {
    journey: { ...countCode(journey, ctx), state: { phase: 'code_sent', step, deviceId, cardId, code, codesIssued: 1 } },
    effects: [
      ...first,
      codeEffect(mailId, personId, ctx, journey.runId, code, via),
      { type: 'companion.command', id: ctx.newId(), deviceId, command: promptCommand(journey.runId, cardId, code), onlyAfter: mailId },
    ],
    changed: true,
  };
}

/**
 * The certificates the card reported that have expired at `now` (`notAfter` at or before it;
 * RFC 5280 4.1.2.5: the certificate is valid through `notAfter` inclusive, so expiry is strictly after:
 * a `notAfter` equal to now still counts as valid).
 *
 * @param status - the card status from the companion; `certificates` absent (not read) or `[]` gives none
 * @param now - the bot's clock
 * @returns the expired ones, earliest first
 */
export function expiredCertificates(status: CardStatus, now: Date): Array<{ slot: '9A' | '9E'; notAfter: string }> {
  if (!status.present || !status.certificates) return [];
  return status.certificates.filter((c) => Date.parse(c.notAfter) < now.getTime()).sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter));
}

/**
 * A card whose certificates expired: not unlocked. The person is told plainly it needs renewing and one
 * RA case opens with reason `certificates_expired` (a later check of the same card shows the same case).
 */
function certificatesExpired(journey: UnlockJourney, ctx: StepContext, step: number, deviceId: string, cardId: string, expired: Array<{ slot: '9A' | '9E'; notAfter: string }>): StepResult {
  const personId = journey.personId;
  const known = journey.renewal && journey.renewal.cardId === cardId ? journey.renewal.caseRef : null;
  const caseRef = known ?? ctx.freshCaseRef;
  const expiredAt = expired[0]!.notAfter;
  const effects: Effect[] = [audit(ctx, personId, 'unlock.certificates_expired', { runId: journey.runId, cardId, slots: expired.map((c) => c.slot).join(','), expiredAt, caseRef, newCase: known === null }, 'system')];
  if (!known) {
    effects.push({ type: 'case.open', id: ctx.newId(), personId, ref: caseRef, reason: 'certificates_expired', context: { runId: journey.runId, cardId, expiredSlots: expired.map((c) => c.slot).join(','), expiredAt } });
  }
  return { journey: { ...journey, renewal: { cardId, caseRef }, state: { phase: 'card_problem', step, problem: 'certificates_expired', deviceId, caseRef, expiredAt } }, effects, changed: true };
}

/**
 * The companion's `unlock.prompt` for `code`: the page asks for the code and a new passcode, and says
 * where the code went (`codeChannel`: "in your text message" for SMS, "in your email" otherwise).
 *
 * @param runId - the run (the command's `journeyId`)
 * @param cardId - the card to unlock
 * @param code - the code out: its expiry (ISO 8601) and channel (absent = email)
 * @returns the command, `codeChannel` always set (`email` or `sms`)
 */
export function promptCommand(runId: string, cardId: string, code: Pick<IssuedCode, 'expiresAt' | 'channel'>): Extract<Command, { kind: 'unlock.prompt' }> {
  return { kind: 'unlock.prompt', journeyId: runId, cardId, codeExpiresAt: code.expiresAt, codeChannel: code.channel === 'sms' ? 'sms' : 'email' };
}

/** Where a code goes: the person's email (their record's address), or a UK mobile by SMS. */
type CodeVia = { channel: 'email' } | { channel: 'sms'; to: string };

/** The code with its channel recorded (email stays unmarked, as before issue #14). */
function withChannel(code: IssuedCode, via: CodeVia): IssuedCode {
  return via.channel === 'sms' ? { ...code, channel: 'sms', to: via.to } : code;
}

/** The effect that sends `code` (sealed; the runner unseals it only to send): `mail.unlock_code` or `sms.unlock_code`. */
function codeEffect(id: string, personId: string, ctx: StepContext, runId: string, code: IssuedCode, via: CodeVia): Effect {
  const common = { id, personId, codeSealed: ctx.freshCode.sealed(runId), codeHash: code.hash, runId, expiresAt: code.expiresAt };
  return via.channel === 'sms' ? { type: 'sms.unlock_code', ...common, to: via.to } : { type: 'mail.unlock_code', ...common };
}

/**
 * Code-only (issue #14), once the card checked out: enrol the person if they have no record yet
 * (the card-management import named them holder: the card binds to them, with no questions), then
 * send the code by the one channel they have, or let them pick when they have an approved email and
 * a UK mobile. No channel: `no_contact`. Also the route of an RA-assisted code under `code-only`.
 *
 * @param skipped - the `unlock.questions_skipped` audit to record (an RA-assisted run's, by RA);
 *   absent: the code-only one, by `system`
 */
function codeOnlyCode(journey: UnlockJourney, person: PersonFacts, ctx: StepContext, step: number, deviceId: string, cardId: string, skipped?: Effect): StepResult {
  const e = person.enrolment;
  const personId = journey.personId;
  const email = e?.email && ctx.rules.codeChannels.includes('email') ? e.email : null;
  const mobile = e?.mobile && ctx.rules.codeChannels.includes('sms') ? e.mobile : null;
  const problem = (p: CardProblem, effects: Effect[] = []): StepResult => ({ journey: { ...journey, state: { phase: 'card_problem', step, problem: p, deviceId } }, effects, changed: true });
  if (!e || (!email && !mobile)) return problem('no_contact', [audit(ctx, personId, 'unlock.no_contact', { runId: journey.runId })]);
  const first: Effect[] = [];
  if (!e.personStored && !person.boundCardId) {
    const recordEmail = e.email ?? e.profileEmail;
    if (!recordEmail) return problem('no_contact', [audit(ctx, personId, 'unlock.no_contact', { runId: journey.runId })]);
    // Enrolment: the person record and the card binding (the runner binds only a card named for this email).
    first.push(
      { type: 'person.register', id: ctx.newId(), personId, teamsUserId: e.teamsUserId, displayName: e.displayName, email: recordEmail, mobile: e.mobile, cardId, answers: [] },
      audit(ctx, personId, 'unlock.enrolled', { runId: journey.runId, cardId, email: email !== null, mobile: mobile !== null }, 'system'),
    );
  }
  if (email && mobile) {
    return { journey: { ...journey, state: { phase: 'choosing_channel', step, deviceId, cardId, email, mobile } }, effects: [...first, ...(skipped ? [skipped] : [])], changed: true };
  }
  return sendCodeNow(journey, ctx, step, deviceId, cardId, [...first, skipped ?? audit(ctx, personId, 'unlock.questions_skipped', { runId: journey.runId, reason: 'code_only' }, 'system')], mobile ? { channel: 'sms', to: mobile } : { channel: 'email' });
}

/** The journey with one more code counted now (times older than an hour dropped). */
function countCode(journey: UnlockJourney, ctx: StepContext): UnlockJourney {
  return { ...journey, codeTimes: [...codesInLastHour(journey, ctx.now), ctx.now.toISOString()] };
}

function issueCode(ctx: StepContext): IssuedCode {
  return {
    hash: ctx.freshCode.hash,
    issuedAt: ctx.now.toISOString(),
    expiresAt: new Date(ctx.now.getTime() + ctx.rules.codeTtlMs).toISOString(),
    wrongTries: 0,
    mailed: false,
  };
}

