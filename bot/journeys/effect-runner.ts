/**
 * Carries out journey effects against the ports (storage, mail, companion link,
 * Teams). Every handler is idempotent on the effect id: an audit entry or case
 * with that id is stored once, the outbox and Graph adapters key mail on it,
 * a lock or registration already applied is left as it is.
 */
import type { KeyObject } from 'node:crypto';
import { AppError } from '../../common/app-error';
import type { JourneyKind, Person, RaCase, Storage } from '../../storage/storage.port';
import type { CompanionLink } from '../link/companion-link.server';
import type { MailPort } from '../mail/mail.port';
import type { NotifyPort } from '../notify/notify.port';
import { formatLocalDateTime, registrationCodeMail, registrationConfirmedMail, unlockCodeMail, unlockedNoticeMail } from '../mail/mail.templates';
import { unseal } from '../security/seal';
import { PukCustody } from '../puk/puk.custody';
import { cardClaim, holderTag } from '../puk/puk.rules';
import { journeyKey } from './journey.key';
import { decodeUnlock } from './unlock/unlock.state';
import { EFFECT_NOT_HERE, type Effect } from './journey.effects';
import type { UnlockEvent } from './unlock/unlock.journey';
import type { RegistrationEvent } from './registration/registration.journey';

/** Events an effect may produce, per journey kind (fed back to that journey's step). */
export interface FollowUpEvents {
  unlock: Extract<UnlockEvent, { type: 'code_mailed' | 'code_mail_failed' | 'prompt_shown' }>;
  registration: Extract<RegistrationEvent, { type: 'code_mailed' | 'code_mail_failed' }>;
  /** No effect of an RA case produces an event for it. */
  'ra-case': never;
}

/** An event an effect produced, for the journey of `kind`. */
export type FollowUp = { [K in JourneyKind]: { kind: K; event: FollowUpEvents[K] } }[JourneyKind];

/** Proactive delivery to Teams, implemented by the Teams layer. */
export interface TeamsNotifier {
  /** Re-render this person's current card for `journey` in place and, if given, post `message` under it. */
  refresh(personId: string, journey: JourneyKind, message: string | null): Promise<void>;
}

/** The RA desk's side of the effects (`bot/journeys/ra-case/`, `bot/teams/ra-channel.notifier.ts`). */
export interface RaDeskEffects {
  /** A case was stored (lockout, request): open its case journey (idempotent: an open case is left as it is). */
  caseOpened(raCase: RaCase): Promise<void>;
  /** Post the case card to the RA channel, or update the posted one in place. */
  postCaseCard(caseRef: string): Promise<void>;
  /** Tell the person in their personal chat (plain text). */
  tellPerson(personId: string, text: string): Promise<void>;
  /** The one self-service reset (lock and attempt count), audited with `actor`. */
  resetSelfService(personId: string, actor: string, note: string | null): Promise<void>;
  /** Start (or resume) the person's unlock with the questions skipped (RA-assisted unlock), audited with `actor`. */
  startAssistedUnlock(personId: string, caseRef: string, actor: string): Promise<void>;
}

export interface EffectRunnerDeps {
  storage: Storage;
  link: CompanionLink;
  mail: MailPort;
  /** Text messages (`bot/notify/`); absent in processes that send none (the admin CLI): `sms.*` effects stay for the bot. */
  sms?: NotifyPort;
  sealKey: KeyObject;
  /** Key for holder tags (`bot/puk/puk.rules.ts` `holderTag`). */
  codeHashKey: KeyObject;
  timeZone: string;
  raContact: string;
  codeTtlMinutes: number;
  commandTimeoutMs: number;
  now: () => Date;
  /** Proactive Teams updates (`bot/teams/teams-notifier.adapter.ts`). */
  notifier: TeamsNotifier;
  /** The RA desk; absent in processes without Teams (the admin CLI): its effects stay for the bot. */
  raDesk?: RaDeskEffects;
  /**
   * False in a process with no companion link (the admin CLI): `puk.release` throws
   * `EFFECT.NOT_HERE` before anything is unsealed or written, and stays for the bot. Default true.
   */
  reachesCompanions?: boolean;
}

export class EffectRunner {

  /** The one place a PUK is unsealed and sent, or rotated (`puk.release`, `puk.commit`). */
  private readonly custody: PukCustody;

  constructor(private readonly deps: EffectRunnerDeps) {
    this.custody = new PukCustody({
      storage: deps.storage,
      link: deps.link,
      sealKey: deps.sealKey,
      commandTimeoutMs: deps.commandTimeoutMs,
      now: deps.now,
      releasesHere: deps.reachesCompanions ?? true,
      // Defence in depth: at carry-out time the person's unlock run must still be the one
      // unblocking that card with that device, and self-service not locked.
      unblockingRun: async (personId) => {
        const rec = await deps.storage.journeys.get(journeyKey(personId, 'unlock'));
        if (!rec) return null;
        const j = decodeUnlock(rec);
        if (j.lock || j.state.phase !== 'unblocking') return null;
        return { runId: j.runId, cardId: j.state.cardId, deviceId: j.state.deviceId, linkSession: j.state.linkSession };
      },
    });
  }


  /**
   * The event to give the journey when `effect` finally fails, or null when its
   * failure is retried later (up to the engine's limit).
   */
  onFinalFailure(effect: Effect): FollowUp | null {
    switch (effect.type) {
      case 'mail.unlock_code':
      case 'sms.unlock_code':
        return { kind: 'unlock', event: { type: 'code_mail_failed', runId: effect.runId, codeHash: effect.codeHash } };
      case 'mail.registration_code':
        return { kind: 'registration', event: { type: 'code_mail_failed', runId: effect.runId, codeHash: effect.codeHash } };
      default:
        return null;
    }
  }

  /**
   * Carry out one effect.
   *
   * @returns an event for the journey (e.g. "code mailed at"), or null
   * @throws whatever the port threw; the engine counts the attempt and retries later
   */
  async carryOut(effect: Effect): Promise<FollowUp | null> {
    const { storage } = this.deps;
    const at = this.deps.now().toISOString();
    switch (effect.type) {
      case 'audit':
        await storage.audit.append({ id: effect.id, at, actor: effect.actor, action: effect.action, personId: effect.personId, details: effect.details });
        return null;
      case 'case.open': {
        const stored = await storage.cases.insert({ ref: effect.ref, personId: effect.personId, reason: effect.reason, status: 'open', context: effect.context, sourceId: effect.id, createdAt: at, updatedAt: at, version: 1 });
        // The RA desk opens the case's journey (posts the card, tells the person); repeated, it changes nothing.
        if (this.deps.raDesk) await this.deps.raDesk.caseOpened(stored.record);
        return null;
      }
      case 'ra.case_card':
        await this.raDesk().postCaseCard(effect.caseRef);
        return null;
      case 'ra.tell_person':
        await this.raDesk().tellPerson(effect.personId, effect.text);
        return null;
      case 'ra.reset_self_service':
        await this.raDesk().resetSelfService(effect.personId, effect.actor, `RA case ${effect.caseRef}`);
        return null;
      case 'ra.assist_unlock':
        await this.raDesk().startAssistedUnlock(effect.personId, effect.caseRef, effect.actor);
        return null;
      case 'ra.case_status': {
        for (let i = 0; i < 5; i++) {
          const c = await storage.cases.get(effect.caseRef);
          if (!c || c.status === effect.status) return null;
          if ((await storage.cases.save({ ...c, status: effect.status, updatedAt: at, version: c.version + 1 }, c.version)) === 'saved') return null;
        }
        throw new AppError('STORAGE.CONFLICT', 'could not mirror the case status after retries');
      }
      case 'person.lock_self_service': {
        for (let i = 0; i < 5; i++) {
          const p = await storage.persons.get(effect.personId);
          if (!p || p.selfServiceLock) return null;
          if ((await storage.persons.save({ ...p, selfServiceLock: { at: effect.at ?? at, caseRef: effect.caseRef, reason: effect.reason }, updatedAt: at, version: p.version + 1 }, p.version)) === 'saved') return null;
        }
        throw new AppError('STORAGE.CONFLICT', 'could not mirror the self-service lock after retries');
      }
      case 'person.clear_self_service_lock': {
        for (let i = 0; i < 5; i++) {
          const p = await storage.persons.get(effect.personId);
          if (!p || !p.selfServiceLock) return null;
          if ((await storage.persons.save({ ...p, selfServiceLock: null, updatedAt: at, version: p.version + 1 }, p.version)) === 'saved') return null;
        }
        throw new AppError('STORAGE.CONFLICT', 'could not clear the self-service lock mirror after retries');
      }
      case 'person.register':
        await this.register(effect, at);
        return null;
      case 'mail.unlock_code': {
        const person = await this.mustPerson(effect.personId);
        const code = unseal(this.deps.sealKey, effect.codeSealed, `code:${effect.runId}`);
        const m = unlockCodeMail({ displayName: person.displayName, code, expiresAt: new Date(effect.expiresAt), minutes: this.deps.codeTtlMinutes, timeZone: this.deps.timeZone, raContact: this.deps.raContact });
        await this.deps.mail.send({ id: effect.id, to: person.email, subject: m.subject, text: m.text, html: m.html, kind: 'unlock_code' });
        return { kind: 'unlock', event: { type: 'code_mailed', runId: effect.runId, codeHash: effect.codeHash, at: this.deps.now().toISOString() } };
      }
      case 'sms.unlock_code': {
        const sms = this.sms();
        // Unsealed only to send; the notify adapters keep it out of logs and errors.
        const code = unseal(this.deps.sealKey, effect.codeSealed, `code:${effect.runId}`);
        const until = formatLocalDateTime(new Date(effect.expiresAt), this.deps.timeZone);
        await sms.send({
          id: effect.id,
          channel: 'sms',
          kind: 'unlock_code',
          to: effect.to,
          reference: effect.id,
          personalisation: { code, minutes: String(this.deps.codeTtlMinutes), expires_at: until.clock },
        });
        return { kind: 'unlock', event: { type: 'code_mailed', runId: effect.runId, codeHash: effect.codeHash, at: this.deps.now().toISOString() } };
      }
      case 'mail.unlock_notice': {
        const person = await this.mustPerson(effect.personId);
        const m = unlockedNoticeMail({ displayName: person.displayName, at: new Date(effect.at), workstation: effect.workstation, timeZone: this.deps.timeZone, raContact: this.deps.raContact });
        await this.deps.mail.send({ id: effect.id, to: person.email, subject: m.subject, text: m.text, html: m.html, kind: 'unlock_notice' });
        return null;
      }
      case 'mail.registration_code': {
        const code = unseal(this.deps.sealKey, effect.codeSealed, `code:${effect.runId}`);
        const m = registrationCodeMail({ displayName: effect.displayName, code, expiresAt: new Date(effect.expiresAt), minutes: this.deps.codeTtlMinutes, timeZone: this.deps.timeZone, raContact: this.deps.raContact });
        await this.deps.mail.send({ id: effect.id, to: effect.to, subject: m.subject, text: m.text, html: m.html, kind: 'registration_code' });
        return { kind: 'registration', event: { type: 'code_mailed', runId: effect.runId, codeHash: effect.codeHash, at: this.deps.now().toISOString() } };
      }
      case 'mail.registration_confirmed': {
        const m = registrationConfirmedMail({
          displayName: effect.displayName,
          at: new Date(effect.at),
          email: effect.email,
          mobile: effect.mobile,
          workstation: effect.workstation,
          selfUnlockReady: effect.selfUnlockReady,
          timeZone: this.deps.timeZone,
          raContact: this.deps.raContact,
        });
        await this.deps.mail.send({ id: effect.id, to: effect.to, subject: m.subject, text: m.text, html: m.html, kind: 'registration_notice' });
        return null;
      }
      case 'companion.command': {
        const reply = await this.deps.link.sendCommand(effect.deviceId, effect.command, this.deps.commandTimeoutMs);
        if (reply.kind === 'error') throw new AppError('LINK.COMMAND_FAILED', `companion refused ${effect.command.kind}: ${reply.code}`);
        // Issue #13: a companion that says how it brought its page to the person (opened, a notification,
        // neither) lets the card name the computer; an older one's plain ack changes nothing.
        if (effect.command.kind === 'unlock.prompt' && reply.kind === 'ack' && reply.page) {
          return { kind: 'unlock', event: { type: 'prompt_shown', runId: effect.command.journeyId, page: reply.page } };
        }
        return null;
      }
      case 'puk.release':
        await this.custody.release(effect);
        return null;
      case 'puk.commit':
        await this.custody.commit(effect);
        return null;
      case 'teams.refresh':
        await this.deps.notifier.refresh(effect.personId, effect.journey ?? 'unlock', effect.message);
        return null;
    }
  }

  /** Create or update the registered person and bind the card (idempotent). */
  private async register(effect: Extract<Effect, { type: 'person.register' }>, at: string): Promise<void> {
    const { storage } = this.deps;
    for (let i = 0; i < 5; i++) {
      const existing = await storage.persons.get(effect.personId);
      if (!existing) {
        const person: Person = {
          id: effect.personId,
          teamsUserId: effect.teamsUserId,
          displayName: effect.displayName,
          email: effect.email,
          mobile: effect.mobile,
          answers: effect.answers,
          cardId: effect.cardId,
          selfServiceLock: null,
          createdAt: at,
          updatedAt: at,
          version: 1,
        };
        const r = await storage.persons.insert(person);
        if (r.status === 'exists' && r.record.id !== effect.personId) {
          throw new AppError('REGISTRATION.CONFLICT', 'another person holds this Teams identity or card', { meta: { personId: effect.personId } });
        }
        if (r.status === 'exists') continue;
      } else {
        const next: Person = { ...existing, displayName: effect.displayName, email: effect.email, mobile: effect.mobile, answers: effect.answers, cardId: effect.cardId, updatedAt: at, version: existing.version + 1 };
        const same = existing.email === next.email && existing.cardId === next.cardId && JSON.stringify(existing.answers) === JSON.stringify(next.answers) && existing.mobile === next.mobile;
        if (!same && (await storage.persons.save(next, existing.version)) === 'conflict') continue;
      }
      const card = await storage.cards.get(effect.cardId);
      const claim = cardClaim(card, effect.personId, holderTag(this.deps.codeHashKey, effect.email));
      if (claim === 'new') {
        await storage.cards.insert({ cardId: effect.cardId, personId: effect.personId, puk: null, pendingPuk: null, updatedAt: at, version: 1 });
      } else if (claim === 'bindable' && card) {
        // Enrolled from the card-management system for this holder: bind it now.
        if ((await storage.cards.save({ ...card, personId: effect.personId, updatedAt: at, version: card.version + 1 }, card.version)) === 'conflict') continue;
      } else if (claim === 'taken') {
        throw new AppError('REGISTRATION.CARD_TAKEN', 'the card is bound to another person', { meta: { cardId: effect.cardId } });
      }
      // 'unconfirmed': the person is registered with the card, but the card record stays
      // unbound (no self-unlock) until RA confirms the holder.
      return;
    }
    throw new AppError('STORAGE.CONFLICT', 'could not store the registration after retries');
  }

  private sms(): NotifyPort {
    if (!this.deps.sms) throw new AppError(EFFECT_NOT_HERE, 'text messages are sent by the bot, not here');
    return this.deps.sms;
  }

  private raDesk(): RaDeskEffects {
    if (!this.deps.raDesk) throw new AppError(EFFECT_NOT_HERE, 'the RA desk runs in the bot, not here');
    return this.deps.raDesk;
  }

  private async mustPerson(personId: string): Promise<Person> {
    const p = await this.deps.storage.persons.get(personId);
    if (!p) throw new AppError('PERSON.NOT_FOUND', 'person no longer exists', { meta: { personId } });
    return p;
  }
}
