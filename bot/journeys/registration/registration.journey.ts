/**
 * Self-service registration as a pure state machine (issue #3, DESIGN.md
 * "Register for self-service"): contact details -> card passcode verified on
 * the companion -> 4 questions and answers -> email confirmed -> code emailed
 * -> code typed in Teams -> registered.
 *
 * `stepRegistration(journey, event, ctx) -> { journey, effects }`; no I/O.
 * The shell validates nothing the journey does not also check: validation
 * rules are pure ({@link ./registration.rules}) and run here; only the slow
 * answer hashing is done by the shell and handed in.
 */
import type { AnswerHash, Sealed } from '../../../storage/storage.port';
import type { Effect } from '../journey.effects';
import { canIssueCode, checkEmail, checkUkMobile, REGISTRATION_CODE_RULES } from './registration.rules';

export type CardCheck = 'waiting' | 'wrong_passcode' | 'no_card' | 'no_companion' | 'companion_offline' | 'card_error';

export interface RegistrationCode {
  hash: string;
  issuedAt: string;
  expiresAt: string;
  /** True once the mail service accepted the email; the code works only then. */
  mailed: boolean;
}

interface Carried {
  /** Times codes were issued to this person, kept across runs for the hourly limit. */
  codeTimes: string[];
}

export type RegistrationState =
  | ({ phase: 'idle'; step: number } & Carried)
  | ({
      phase: 'contact';
      step: number;
      email: string;
      mobile: string;
      prefilled: 'directory' | 'registered' | 'none';
      errors: { email?: string; mobile?: string };
    } & Carried)
  | ({ phase: 'card_check'; step: number; email: string; mobile: string | null; deviceId: string | null; check: CardCheck; triesLeft: number | null } & Carried)
  | ({ phase: 'questions'; step: number; email: string; mobile: string | null; deviceId: string; cardId: string; chosen: string[]; error: string | null } & Carried)
  | ({
      phase: 'confirm_email';
      step: number;
      email: string;
      mobile: string | null;
      deviceId: string;
      cardId: string;
      answers: AnswerHash[];
      error: string | null;
      /** A refused different address, shown again as typed. */
      typedEmail?: string;
    } & Carried)
  | ({
      phase: 'code_sent';
      step: number;
      email: string;
      /** Where the code went (the registered address when re-registering). */
      sentTo: string;
      mobile: string | null;
      deviceId: string;
      cardId: string;
      answers: AnswerHash[];
      code: RegistrationCode;
      wrongTries: number;
      error: string | null;
    } & Carried)
  | ({ phase: 'done'; step: number; at: string; email: string; mobile: string | null; selfUnlockReady: boolean } & Carried)
  | ({ phase: 'problem'; step: number; problem: 'ra_locked' | 'card_taken' | 'card_blocked'; detail: string } & Carried)
  | ({ phase: 'ended'; step: number; reason: 'cancelled' | 'expired' | 'failed' | 'too_many_tries'; detail: string } & Carried);

/** Who is registering, as the shell found them. */
export interface Registrant {
  personId: string;
  teamsUserId: string;
  displayName: string;
  /** Set when the person is already registered (re-registration). */
  existing: { email: string; mobile: string | null; lockCaseRef: string | null } | null;
  /** Contact details from the directory, when a lookup is configured and found them. */
  directory: { email: string | null; mobile: string | null } | null;
}

export type RegistrationEvent =
  | { type: 'start'; who: Registrant; deviceId: string | null }
  | { type: 'contact_submitted'; step: number; email: string; mobile: string; deviceId: string | null }
  | { type: 'check_card'; step: number; deviceId: string | null; companionOnline: boolean }
  | {
      type: 'passcode_checked';
      runId: string;
      deviceId: string;
      result:
        | { outcome: 'verified'; cardId: string; cardOwner: string | null }
        | { outcome: 'wrong_passcode'; cardId: string; triesLeft: number }
        | { outcome: 'blocked'; cardId: string }
        | { outcome: 'no_card' }
        | { outcome: 'card_error' };
    }
  | { type: 'companion_unreachable'; runId: string }
  | { type: 'questions_submitted'; step: number; chosen: string[]; result: { ok: true; hashes: AnswerHash[] } | { ok: false; reason: string } }
  | { type: 'send_code'; step: number; who: Registrant; newEmail: string }
  | { type: 'resend_code'; step: number; who: Registrant }
  | { type: 'code_mailed'; runId: string; codeHash: string; at: string }
  | { type: 'code_mail_failed'; runId: string; codeHash: string }
  | { type: 'code_submitted'; step: number; who: Registrant; codeHash: string | null; pukEnrolled: boolean; workstation: string | null }
  | { type: 'cancel'; step: number };

export interface RegistrationContext {
  now: Date;
  approvedDomains: readonly string[];
  newId: () => string;
  freshCode: { hash: string; sealed: (runId: string) => Sealed };
  freshCaseRef: string;
  hashesEqual: (a: string, b: string) => boolean;
}

export interface RegistrationJourney {
  personId: string;
  runId: string;
  state: RegistrationState;
}

export interface RegistrationStepResult {
  journey: RegistrationJourney;
  effects: Effect[];
  changed: boolean;
}

export function newRegistrationJourney(personId: string, runId: string): RegistrationJourney {
  return { personId, runId, state: { phase: 'idle', step: 0, codeTimes: [] } };
}

const ACTIVE: ReadonlySet<RegistrationState['phase']> = new Set(['contact', 'card_check', 'questions', 'confirm_email', 'code_sent']);

export function isRegistrationActive(state: RegistrationState): boolean {
  return ACTIVE.has(state.phase);
}

function same(journey: RegistrationJourney): RegistrationStepResult {
  return { journey, effects: [], changed: false };
}

function audit(ctx: RegistrationContext, personId: string, action: string, details: Record<string, string | number | boolean | null> = {}): Effect {
  return { type: 'audit', id: ctx.newId(), personId, actor: `person:${personId}`, action, details };
}

function promptCompanion(ctx: RegistrationContext, deviceId: string, runId: string): Effect {
  return { type: 'companion.command', id: ctx.newId(), deviceId, command: { kind: 'register.prompt_passcode', journeyId: runId } };
}

function closeCompanion(ctx: RegistrationContext, deviceId: string, runId: string, outcome: 'verified' | 'cancelled' | 'expired' | 'failed', message: string): Effect {
  return { type: 'companion.command', id: ctx.newId(), deviceId, command: { kind: 'register.closed', journeyId: runId, outcome, message } };
}

function refresh(ctx: RegistrationContext, personId: string, message: string | null = null): Effect {
  return { type: 'teams.refresh', id: ctx.newId(), personId, message, journey: 'registration' };
}

/**
 * Apply one event to the registration journey.
 *
 * @returns the next journey and the effects to store with it; `changed: false`
 *   for a stale or out-of-place event (nothing to save, nothing sent)
 */
export function stepRegistration(journey: RegistrationJourney, event: RegistrationEvent, ctx: RegistrationContext): RegistrationStepResult {
  const s = journey.state;
  const personId = journey.personId;
  const codeTimes = s.codeTimes;
  const next = (state: RegistrationState, effects: Effect[] = [], runId = journey.runId): RegistrationStepResult => ({ journey: { ...journey, runId, state }, effects, changed: true });

  // An expired code is refused without counting a wrong try; the person can ask for a new one.
  if (s.phase === 'code_sent' && s.code.mailed && ctx.now.getTime() >= Date.parse(s.code.expiresAt) && event.type === 'code_submitted' && event.step === s.step) {
    return next({ ...s, step: s.step + 1, error: 'That code has expired (codes work for 15 minutes). Send a new code.' }, [audit(ctx, personId, 'registration.code_expired', { runId: journey.runId })]);
  }

  switch (event.type) {
    case 'start': {
      const runId = ctx.newId();
      const step = s.step + 1;
      const effects: Effect[] = [];
      if ((s.phase === 'card_check' || s.phase === 'questions') && s.deviceId) effects.push(closeCompanion(ctx, s.deviceId, journey.runId, 'cancelled', 'A new registration was started in Teams.'));
      const who = event.who;
      if (who.existing?.lockCaseRef) {
        return next({ phase: 'problem', step, problem: 'ra_locked', detail: who.existing.lockCaseRef, codeTimes }, effects, runId);
      }
      const email = who.existing?.email ?? who.directory?.email ?? '';
      const mobile = who.existing?.mobile ?? who.directory?.mobile ?? '';
      const prefilled = who.existing ? 'registered' : who.directory && (who.directory.email || who.directory.mobile) ? 'directory' : 'none';
      effects.push(audit(ctx, personId, who.existing ? 'registration.restarted' : 'registration.started', { runId }));
      return next({ phase: 'contact', step, email, mobile: mobile ? displayMobile(mobile) : '', prefilled, errors: {}, codeTimes }, effects, runId);
    }

    case 'contact_submitted': {
      if (s.phase !== 'contact' || event.step !== s.step) return same(journey);
      const email = checkEmail(event.email, ctx.approvedDomains);
      const mobile = checkUkMobile(event.mobile);
      if (!email.ok || !mobile.ok) {
        // Keep what was typed, with a plain reason per field.
        return next({
          ...s,
          step: s.step + 1,
          email: event.email.trim().slice(0, 254),
          mobile: event.mobile.trim().slice(0, 32),
          errors: { ...(email.ok ? {} : { email: email.reason }), ...(mobile.ok ? {} : { mobile: mobile.reason }) },
        });
      }
      const base = { step: s.step + 1, email: email.value, mobile: mobile.value, codeTimes };
      if (!event.deviceId) return next({ phase: 'card_check', ...base, deviceId: null, check: 'no_companion', triesLeft: null });
      return next({ phase: 'card_check', ...base, deviceId: event.deviceId, check: 'waiting', triesLeft: null }, [promptCompanion(ctx, event.deviceId, journey.runId)]);
    }

    case 'check_card': {
      if (s.phase !== 'card_check' || event.step !== s.step) return same(journey);
      if (!event.deviceId) return next({ ...s, step: s.step + 1, deviceId: null, check: 'no_companion' });
      if (!event.companionOnline) return next({ ...s, step: s.step + 1, deviceId: event.deviceId, check: 'companion_offline' });
      return next({ ...s, step: s.step + 1, deviceId: event.deviceId, check: 'waiting' }, [promptCompanion(ctx, event.deviceId, journey.runId)]);
    }

    case 'companion_unreachable': {
      if (s.phase !== 'card_check' || event.runId !== journey.runId || s.check !== 'waiting') return same(journey);
      return next({ ...s, step: s.step + 1, check: 'companion_offline' }, [refresh(ctx, personId)]);
    }

    case 'passcode_checked': {
      if (s.phase !== 'card_check' || event.runId !== journey.runId || event.deviceId !== s.deviceId) return same(journey);
      const r = event.result;
      const step = s.step + 1;
      switch (r.outcome) {
        case 'verified': {
          if (r.cardOwner && r.cardOwner !== personId) {
            return next({ phase: 'problem', step, problem: 'card_taken', detail: '', codeTimes }, [
              audit(ctx, personId, 'registration.card_taken', { runId: journey.runId, cardId: r.cardId }),
              closeCompanion(ctx, s.deviceId as string, journey.runId, 'failed', 'This card is registered to someone else.'),
              refresh(ctx, personId),
            ]);
          }
          return next({ phase: 'questions', step, email: s.email, mobile: s.mobile, deviceId: s.deviceId as string, cardId: r.cardId, chosen: [], error: null, codeTimes }, [
            audit(ctx, personId, 'registration.card_verified', { runId: journey.runId, cardId: r.cardId }),
            closeCompanion(ctx, s.deviceId as string, journey.runId, 'verified', 'Passcode checked. Carry on in Teams.'),
            refresh(ctx, personId),
          ]);
        }
        case 'wrong_passcode':
          return next({ ...s, step, check: 'wrong_passcode', triesLeft: r.triesLeft }, [audit(ctx, personId, 'registration.passcode_wrong', { runId: journey.runId, triesLeft: r.triesLeft }), refresh(ctx, personId)]);
        case 'blocked':
          return next({ phase: 'problem', step, problem: 'card_blocked', detail: '', codeTimes }, [
            audit(ctx, personId, 'registration.card_blocked', { runId: journey.runId, cardId: r.cardId }),
            closeCompanion(ctx, s.deviceId as string, journey.runId, 'failed', 'This card is locked. Unlock it first.'),
            refresh(ctx, personId),
          ]);
        case 'no_card':
          return next({ ...s, step, check: 'no_card' }, [refresh(ctx, personId)]);
        case 'card_error':
          return next({ ...s, step, check: 'card_error' }, [refresh(ctx, personId)]);
      }
      return same(journey);
    }

    case 'questions_submitted': {
      if (s.phase !== 'questions' || event.step !== s.step) return same(journey);
      if (!event.result.ok) return next({ ...s, step: s.step + 1, chosen: event.chosen, error: event.result.reason });
      return next({ phase: 'confirm_email', step: s.step + 1, email: s.email, mobile: s.mobile, deviceId: s.deviceId, cardId: s.cardId, answers: event.result.hashes, error: null, codeTimes }, [
        audit(ctx, personId, 'registration.answers_chosen', { runId: journey.runId, questions: event.chosen.join(',') }),
      ]);
    }

    case 'send_code':
    case 'resend_code': {
      if (event.step !== s.step) return same(journey);
      if (event.type === 'send_code' && s.phase !== 'confirm_email') return same(journey);
      if (event.type === 'resend_code' && s.phase !== 'code_sent') return same(journey);
      if (s.phase !== 'confirm_email' && s.phase !== 'code_sent') return same(journey);
      let email = s.email;
      if (event.type === 'send_code' && event.newEmail.trim() !== '' && !event.who.existing) {
        const checked = checkEmail(event.newEmail, ctx.approvedDomains);
        if (!checked.ok) return next({ ...s, step: s.step + 1, error: checked.reason, ...(s.phase === 'confirm_email' ? { typedEmail: event.newEmail.trim().slice(0, 254) } : {}) } as RegistrationState);
        email = checked.value;
      }
      const limit = canIssueCode(codeTimes, ctx.now);
      if (!limit.ok) {
        const mins = Math.max(1, Math.ceil((limit.nextAt - ctx.now.getTime()) / 60_000));
        return next({ ...s, step: s.step + 1, email, error: `You have asked for 3 codes in the last hour. Try again in ${mins} minute${mins === 1 ? '' : 's'}.` } as RegistrationState);
      }
      // Re-registration: the code goes to the address already registered.
      const sentTo = event.who.existing?.email ?? email;
      const issuedAt = ctx.now.toISOString();
      const code: RegistrationCode = { hash: ctx.freshCode.hash, issuedAt, expiresAt: new Date(ctx.now.getTime() + REGISTRATION_CODE_RULES.ttlMs).toISOString(), mailed: false };
      const wrongTries = s.phase === 'code_sent' ? s.wrongTries : 0;
      return next(
        { phase: 'code_sent', step: s.step + 1, email, sentTo, mobile: s.mobile, deviceId: s.deviceId, cardId: s.cardId, answers: s.answers, code, wrongTries, error: null, codeTimes: [...codeTimes.filter((t) => ctx.now.getTime() - Date.parse(t) < REGISTRATION_CODE_RULES.hourMs), issuedAt] },
        [
          audit(ctx, personId, 'registration.code_issued', { runId: journey.runId, toRegisteredAddress: !!event.who.existing }),
          { type: 'mail.registration_code', id: ctx.newId(), personId, to: sentTo, displayName: event.who.displayName, codeSealed: ctx.freshCode.sealed(journey.runId), codeHash: code.hash, runId: journey.runId, expiresAt: code.expiresAt },
        ],
      );
    }

    case 'code_mailed': {
      if (s.phase !== 'code_sent' || event.runId !== journey.runId || s.code.hash !== event.codeHash || s.code.mailed) return same(journey);
      return next({ ...s, code: { ...s.code, mailed: true, issuedAt: event.at, expiresAt: new Date(Date.parse(event.at) + REGISTRATION_CODE_RULES.ttlMs).toISOString() } });
    }

    case 'code_mail_failed': {
      if (s.phase !== 'code_sent' || event.runId !== journey.runId || s.code.hash !== event.codeHash) return same(journey);
      return next({ phase: 'ended', step: s.step + 1, reason: 'failed', detail: 'We could not send the email with your registration code, so no code is valid. Try again in a few minutes.', codeTimes }, [
        audit(ctx, personId, 'registration.code_mail_failed', { runId: journey.runId }),
        refresh(ctx, personId, 'Sorry: the email with your registration code could not be sent. Try again in a few minutes; if it keeps failing, contact your RA team.'),
      ]);
    }

    case 'code_submitted': {
      if (s.phase !== 'code_sent' || event.step !== s.step) return same(journey);
      if (!s.code.mailed) return next({ ...s, step: s.step + 1, error: 'The email with your code is still on its way. Wait a moment, then enter the code.' });
      if (s.wrongTries >= REGISTRATION_CODE_RULES.maxWrongTries) return same(journey);
      if (!event.codeHash || !ctx.hashesEqual(event.codeHash, s.code.hash)) {
        const wrongTries = s.wrongTries + 1;
        const left = REGISTRATION_CODE_RULES.maxWrongTries - wrongTries;
        if (left <= 0) {
          return next({ phase: 'ended', step: s.step + 1, reason: 'too_many_tries', detail: 'Too many wrong codes. Start registration again later.', codeTimes }, [audit(ctx, personId, 'registration.code_locked', { runId: journey.runId })]);
        }
        const reason = event.codeHash ? 'That code is not right.' : 'A registration code is 8 digits.';
        return next({ ...s, step: s.step + 1, wrongTries, error: `${reason} ${left} ${left === 1 ? 'try' : 'tries'} left.` }, [audit(ctx, personId, 'registration.code_wrong', { runId: journey.runId, wrongTries })]);
      }
      const at = ctx.now.toISOString();
      const who = event.who;
      const effects: Effect[] = [
        { type: 'person.register', id: ctx.newId(), personId, teamsUserId: who.teamsUserId, displayName: who.displayName, email: s.email, mobile: s.mobile, cardId: s.cardId, answers: s.answers },
        audit(ctx, personId, who.existing ? 'registration.replaced' : 'registration.completed', { runId: journey.runId, cardId: s.cardId, pukEnrolled: event.pukEnrolled }),
        { type: 'mail.registration_confirmed', id: ctx.newId(), personId, to: s.sentTo, displayName: who.displayName, at, email: s.email, mobile: s.mobile ? displayMobile(s.mobile) : null, workstation: event.workstation, selfUnlockReady: event.pukEnrolled },
      ];
      if (!event.pukEnrolled) {
        effects.push({ type: 'case.open', id: ctx.newId(), personId, ref: ctx.freshCaseRef, reason: 'no_puk_enrolled', context: { cardId: s.cardId, runId: journey.runId } });
      }
      return next({ phase: 'done', step: s.step + 1, at, email: s.email, mobile: s.mobile, selfUnlockReady: event.pukEnrolled, codeTimes }, effects);
    }

    case 'cancel': {
      if (!isRegistrationActive(s) || event.step !== s.step) return same(journey);
      const effects: Effect[] = [audit(ctx, personId, 'registration.cancelled', { runId: journey.runId })];
      if (s.phase === 'card_check' && s.deviceId) effects.push(closeCompanion(ctx, s.deviceId, journey.runId, 'cancelled', 'Registration cancelled in Teams.'));
      return next({ phase: 'ended', step: s.step + 1, reason: 'cancelled', detail: 'You cancelled registration.', codeTimes }, effects);
    }
  }
}

/** `+447700900123` -> `07700 900123` for display on the card. */
export function displayMobile(e164: string): string {
  const m = /^\+44(7\d{3})(\d{6})$/.exec(e164);
  return m ? `0${m[1]} ${m[2]}` : e164;
}
