/**
 * The shell around the registration journey: looks things up (the person,
 * their directory profile, the paired companion, the card's owner), hashes
 * answers off the event loop, runs the pure step through the journey engine
 * and renders the card for the current state.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../../../common/logger';
import type { Request, Response } from '../../../protocol/companion-link.protocol';
import type { Device, JourneyRecord, Person, Storage } from '../../../storage/storage.port';
import {
  registerCardCheckCard,
  registerCodeCard,
  registerConfirmEmailCard,
  registerContactCard,
  registerDoneCard,
  registerEndedCard,
  registerProblemCard,
  registerQuestionsCard,
  maskEmail,
  type AdaptiveCard,
} from '../../../cards';
import type { DirectoryPort } from '../../directory/directory.port';
import { timeText } from '../unlock/unlock.view';
import { hashAnswerSet } from '../../security/answers';
import type { DerivedKeys } from '../../security/keys';
import { journeyKey, type JourneyEngine } from '../journey.engine';
import { QUESTION_BANK } from './question-bank';
import { decodeRegistration } from './registration.state';
import { decodeUnlock } from '../unlock/unlock.state';
import { effectiveLock, newUnlockJourney } from '../unlock/unlock.journey';
import { registrationCodeHash } from './registration.definition';
import { displayMobile, newRegistrationJourney, type Registrant, type RegistrationEvent, type RegistrationJourney } from './registration.journey';
import { checkQuestionsAndAnswers, normaliseTypedCode, REGISTRATION_CODE_RULES } from './registration.rules';
import { cardClaim, holderTag, isUnconfirmedOwner } from '../../puk/puk.rules';

/** The Teams identity of the person in a turn. */
export interface TeamsIdentity {
  /** `from.aadObjectId` when present, else `from.id`. */
  teamsUserId: string;
  /** Other ids the person may be registered under (e.g. `from.id` when the above is the AAD id). */
  altIds: string[];
  displayName: string;
  /** Entra object id, for the directory lookup. */
  aadObjectId: string | null;
}

/**
 * Stable person id for someone not registered yet, derived from their Teams
 * identity, so a companion can be paired (and a registration run) before the
 * person record exists. Formatted as a UUID (version nibble 4, variant 10).
 */
export function provisionalPersonId(teamsUserId: string): string {
  const h = createHash('sha256').update(`smartcard-assist:person:${teamsUserId}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const toJourney = decodeRegistration;

export class RegistrationService {
  constructor(
    private readonly deps: {
      storage: Storage;
      engine: JourneyEngine;
      keys: DerivedKeys;
      logger: Logger;
      approvedDomains: readonly string[];
      directory: DirectoryPort | null;
      timeZone: string;
      raContact: string;
      currentDevice: (personId: string) => Promise<Device | null>;
      /** Whether the device's companion can be reached now (this instance or, with a bus, another). */
      isReachable: (device: Device) => boolean;
      now?: () => Date;
    },
  ) {}

  private initial = (): { state: unknown; counters: Record<string, number> } => ({ state: newRegistrationJourney('', '').state, counters: {} });

  /** The registered person for this identity, if any, and the person id to use. */
  async resolve(identity: TeamsIdentity): Promise<{ personId: string; person: Person | null }> {
    for (const id of [identity.teamsUserId, ...identity.altIds]) {
      const p = await this.deps.storage.persons.findByTeamsUserId(id);
      if (p) return { personId: p.id, person: p };
    }
    return { personId: provisionalPersonId(identity.teamsUserId), person: null };
  }

  /**
   * The self-service lock in force, as the unlock journey record says (the
   * `Person.selfServiceLock` mirror counts only as `effectiveLock` allows).
   */
  private async lockCaseRef(person: Person): Promise<string | null> {
    const rec = await this.deps.storage.journeys.get(journeyKey(person.id, 'unlock'));
    const journey = rec ? decodeUnlock(rec) : newUnlockJourney(person.id, '');
    const facts = { personId: person.id, registered: true, boundCardId: person.cardId, questionIds: [], storedLock: person.selfServiceLock };
    return effectiveLock(journey, facts)?.caseRef ?? null;
  }

  private async registrant(identity: TeamsIdentity, withDirectory: boolean): Promise<Registrant> {
    const { personId, person } = await this.resolve(identity);
    let directory: Registrant['directory'] = null;
    if (withDirectory && !person && this.deps.directory && identity.aadObjectId) {
      try {
        directory = await this.deps.directory.lookup(identity.aadObjectId);
      } catch (err) {
        this.deps.logger.warn({ err: { message: (err as Error).message } }, 'directory lookup failed; the person types their details');
      }
    }
    return {
      personId,
      teamsUserId: person?.teamsUserId ?? identity.teamsUserId,
      displayName: person?.displayName ?? identity.displayName,
      existing: person ? { email: person.email, mobile: person.mobile, lockCaseRef: await this.lockCaseRef(person) } : null,
      directory,
    };
  }

  private codeHash(runId: string, code: string): string {
    return registrationCodeHash(this.deps.keys, runId, code);
  }

  /** Step the journey through the engine (one CAS write with its effects). `make` reads the fresh journey; null = nothing to do. */
  private async apply(personId: string, make: (j: RegistrationJourney) => Promise<RegistrationEvent | null>, deferEffects = false): Promise<JourneyRecord> {
    const { record } = await this.deps.engine.run(this.deps.engine.definitions.registration, personId, make, { deferEffects });
    return record;
  }

  /** "Register for self-service": a new run showing the contact details. */
  async start(identity: TeamsIdentity): Promise<JourneyRecord> {
    const who = await this.registrant(identity, true);
    const device = await this.deps.currentDevice(who.personId);
    return this.apply(who.personId, async () => ({ type: 'start', who, deviceId: device?.id ?? null }));
  }

  async submitContact(identity: TeamsIdentity, runId: string, step: string, email: string, mobile: string): Promise<JourneyRecord> {
    const { personId } = await this.resolve(identity);
    const device = await this.deps.currentDevice(personId);
    const deviceId = device && this.deps.isReachable(device) ? device.id : null;
    return this.apply(personId, async (j) => (j.runId === runId && String(j.state.step) === step ? { type: 'contact_submitted', step: j.state.step, email, mobile, deviceId } : null));
  }

  async checkCard(identity: TeamsIdentity, runId: string, step: string): Promise<JourneyRecord> {
    const { personId } = await this.resolve(identity);
    const device = await this.deps.currentDevice(personId);
    return this.apply(personId, async (j) =>
      j.runId === runId && String(j.state.step) === step ? { type: 'check_card', step: j.state.step, deviceId: device?.id ?? null, companionOnline: !!device && this.deps.isReachable(device) } : null,
    );
  }

  async submitQuestions(identity: TeamsIdentity, runId: string, step: string, chosen: string[], answers: string[]): Promise<JourneyRecord> {
    const { personId } = await this.resolve(identity);
    return this.apply(personId, async (j) => {
      if (j.runId !== runId || String(j.state.step) !== step || j.state.phase !== 'questions') return null;
      const checked = checkQuestionsAndAnswers(chosen, answers);
      if (!checked.ok) return { type: 'questions_submitted', step: j.state.step, chosen, result: { ok: false, reason: checked.reason } };
      // One scrypt hash per 3-of-4 triple of answers (issue #15), never one per answer.
      const hashes = await hashAnswerSet(checked.value);
      return { type: 'questions_submitted', step: j.state.step, chosen, result: { ok: true, hashes } };
    });
  }

  async sendCode(identity: TeamsIdentity, runId: string, step: string, newEmail: string, resend: boolean): Promise<JourneyRecord> {
    const who = await this.registrant(identity, false);
    return this.apply(who.personId, async (j) => {
      if (j.runId !== runId || String(j.state.step) !== step) return null;
      return resend ? { type: 'resend_code', step: j.state.step, who } : { type: 'send_code', step: j.state.step, who, newEmail };
    });
  }

  async submitCode(identity: TeamsIdentity, runId: string, step: string, typed: string): Promise<JourneyRecord> {
    const who = await this.registrant(identity, false);
    return this.apply(who.personId, async (j) => {
      const s = j.state;
      if (j.runId !== runId || String(s.step) !== step || s.phase !== 'code_sent') return null;
      const code = normaliseTypedCode(typed);
      const card = await this.deps.storage.cards.get(s.cardId);
      const device = await this.deps.storage.devices.get(s.deviceId);
      // Self-unlock is ready only when the card's PUK is enrolled AND the card is this person's
      // (or the card-management system named them, by the address the code went to).
      const claim = cardClaim(card, who.personId, holderTag(this.deps.keys.codeHashKey, s.sentTo));
      const selfUnlockReady = !!card?.puk && (claim === 'bound' || claim === 'bindable');
      return { type: 'code_submitted', step: s.step, who, codeHash: code ? this.codeHash(j.runId, code) : null, pukEnrolled: selfUnlockReady, workstation: device?.workstation ?? null };
    });
  }

  async cancel(identity: TeamsIdentity, runId: string, step: string): Promise<JourneyRecord> {
    const { personId } = await this.resolve(identity);
    return this.apply(personId, async (j) => (j.runId === runId && String(j.state.step) === step ? { type: 'cancel', step: j.state.step } : null));
  }

  /** The current record (or a fresh idle one) for rendering a stale click. */
  async current(identity: TeamsIdentity): Promise<JourneyRecord> {
    const { personId } = await this.resolve(identity);
    return this.deps.engine.load(personId, 'registration', this.initial);
  }

  async setCardActivity(personId: string, runId: string, activityId: string): Promise<void> {
    await this.deps.engine.setCardActivity(personId, 'registration', runId, activityId);
  }

  /** `register.passcode_checked` from the person's paired companion. */
  async onCompanionRequest(device: Device, request: Request): Promise<Response> {
    if (request.kind !== 'register.passcode_checked') return { kind: 'register.refused', message: 'Not a registration request.' };
    const rec = await this.deps.storage.journeys.get(journeyKey(device.personId, 'registration'));
    if (!rec || rec.runId !== request.journeyId || (toJourney(rec).state).phase !== 'card_check') {
      return { kind: 'register.refused', message: 'There is no registration waiting for a passcode check. Start in Teams.' };
    }
    const r = request.result;
    let result: Extract<RegistrationEvent, { type: 'passcode_checked' }>['result'];
    if (r.outcome === 'verified') {
      const owner = await this.deps.storage.persons.findByCardId(r.cardId);
      const card = await this.deps.storage.cards.get(r.cardId);
      const cardOwner = owner?.id ?? (card && !isUnconfirmedOwner(card.personId) ? card.personId : null);
      result = { outcome: 'verified', cardId: r.cardId, cardOwner };
    } else result = r;
    await this.apply(device.personId, async (j) => (j.runId === request.journeyId ? { type: 'passcode_checked', runId: j.runId, deviceId: device.id, result } : null), true);
    return { kind: 'ok' };
  }

  /** A companion (re)connected: if this person's registration waits for its passcode check, ask again. */
  async onCompanionConnected(device: Device, send: (deviceId: string, journeyId: string) => Promise<void>): Promise<void> {
    const rec = await this.deps.storage.journeys.get(journeyKey(device.personId, 'registration'));
    if (!rec) return;
    const s = toJourney(rec).state;
    if (s.phase !== 'card_check' || s.deviceId !== device.id || s.check !== 'waiting') return;
    await send(device.id, rec.runId);
  }

  /** The card for the record's current state. */
  async view(record: JourneyRecord, person: Person | null): Promise<AdaptiveCard> {
    const s = toJourney(record).state;
    const runId = record.runId;
    const step = String(s.step);
    switch (s.phase) {
      case 'idle':
      case 'contact':
        return registerContactCard({
          runId,
          step,
          email: s.phase === 'contact' ? s.email : '',
          mobile: s.phase === 'contact' ? s.mobile : '',
          prefilled: s.phase === 'contact' ? s.prefilled : 'none',
          ...(s.phase === 'contact' && (s.errors.email || s.errors.mobile) ? { errors: s.errors } : {}),
        });
      case 'card_check': {
        const device = s.deviceId ? await this.deps.storage.devices.get(s.deviceId) : null;
        return registerCardCheckCard({ runId, step, state: s.check, ...(s.triesLeft !== null ? { triesLeft: s.triesLeft } : {}), ...(device ? { workstation: device.workstation } : {}) });
      }
      case 'questions': {
        const [q1, q2, q3, q4] = s.chosen;
        return registerQuestionsCard({ runId, step, bank: QUESTION_BANK, chosen: { ...(q1 ? { q1 } : {}), ...(q2 ? { q2 } : {}), ...(q3 ? { q3 } : {}), ...(q4 ? { q4 } : {}) }, ...(s.error ? { error: s.error } : {}) });
      }
      case 'confirm_email':
        return registerConfirmEmailCard({ runId, step, email: person ? person.email : s.email, canChange: !person, ...(s.error ? { error: s.error } : {}), ...(s.typedEmail ? { typedEmail: s.typedEmail } : {}) });
      case 'code_sent':
        return registerCodeCard({
          runId,
          step,
          maskedEmail: maskEmail(s.sentTo),
          expiresAtText: timeText(s.code.expiresAt, this.deps.timeZone),
          minutes: Math.round(REGISTRATION_CODE_RULES.ttlMs / 60_000),
          ...(s.error ? { error: s.error } : {}),
          canResend: true,
        });
      case 'done':
        return registerDoneCard({ email: s.email, mobile: s.mobile ? displayMobile(s.mobile) : null, questionsCount: 4, cardRegistered: true, selfUnlockReady: s.selfUnlockReady, raContact: this.deps.raContact });
      case 'problem':
        if (s.problem === 'ra_locked') {
          return registerProblemCard({ title: 'Self-service is locked for you', message: `Your RA team has locked self-service for you (case ${s.detail}). Contact ${this.deps.raContact}.`, canRetry: false });
        }
        if (s.problem === 'card_taken') {
          return registerProblemCard({ title: 'This card is registered to someone else', message: `The card in the reader is registered to another person. Use your own card, or contact ${this.deps.raContact}.`, canRetry: false });
        }
        return registerProblemCard({ title: 'Your card is locked', message: `Your card's passcode is locked, so it cannot prove who you are. If you are registered, say "unlock"; otherwise contact ${this.deps.raContact}.`, canRetry: false });
      case 'ended':
        return registerEndedCard({
          title: s.reason === 'cancelled' ? 'Registration cancelled' : s.reason === 'too_many_tries' ? 'Too many wrong codes' : s.reason === 'expired' ? 'Registration timed out' : 'Registration stopped',
          message: s.detail,
        });
    }
  }
}
