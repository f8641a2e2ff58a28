/**
 * Effects a journey step asks for. They are stored with the new state in one
 * write (the journey record's outbox) and then carried out by the shell
 * (`journey.engine.ts`). Every handler is idempotent on the effect `id`, so a
 * crash between carrying out an effect and removing it repeats nothing a
 * person would notice.
 *
 * Payloads never hold a plaintext secret: the one-time code travels sealed
 * (AES-256-GCM) and is unsealed only to write the email.
 */
import type { Command } from '../../protocol/companion-link.protocol';
import type { AnswerHash, JourneyKind, Sealed } from '../../storage/storage.port';
import type { PukCommitEffect, PukReleaseEffect } from '../puk/puk.effects';

/**
 * Error code a runner throws for an effect this process cannot carry out at all
 * (e.g. the admin CLI has no mail, link or Teams): the effect stays pending,
 * uncounted and never abandoned, for the bot's drain or sweep to carry out.
 */
export const EFFECT_NOT_HERE = 'EFFECT.NOT_HERE';

export type Effect =
  /** Release the card's PUK pair to the companion unblocking it (carried out by `bot/puk/`). */
  | PukReleaseEffect
  /** The card holds the new PUK: make it current (carried out by `bot/puk/`). */
  | PukCommitEffect
  | {
      type: 'mail.unlock_code';
      id: string;
      personId: string;
      /** The code, sealed with AAD `code:<runId>`. */
      codeSealed: Sealed;
      /** Keyed hash of the code, to tell the journey which code was mailed. */
      codeHash: string;
      runId: string;
      expiresAt: string;
    }
  | { type: 'mail.unlock_notice'; id: string; personId: string; at: string; workstation: string | null }
  /**
   * Send the unlock code by text message (`bot/notify/`, issue #14). Answered like `mail.unlock_code`:
   * `code_mailed` once the carrier accepted it (GOV.UK Notify: 201), `code_mail_failed` when it finally failed.
   */
  | {
      type: 'sms.unlock_code';
      id: string;
      personId: string;
      /** Mobile number in E.164 form, e.g. `+447700900123`. */
      to: string;
      /** The code, sealed with AAD `code:<runId>`. */
      codeSealed: Sealed;
      /** Keyed hash of the code, to tell the journey which code was sent. */
      codeHash: string;
      runId: string;
      expiresAt: string;
    }
  | {
      type: 'companion.command';
      id: string;
      deviceId: string;
      command: Command;
      /** Carry this out only if the effect with this id succeeded (e.g. prompt for a code only once it was mailed). */
      onlyAfter?: string;
    }
  | {
      type: 'audit';
      id: string;
      personId: string;
      actor: string;
      action: string;
      details: Record<string, string | number | boolean | null>;
    }
  | {
      type: 'case.open';
      id: string;
      personId: string;
      ref: string;
      reason: 'answers_failed' | 'requested' | 'no_puk_enrolled' | 'certificates_expired';
      context: Record<string, string | number | boolean | null>;
    }
  /**
   * Mirror the unlock journey's lock onto `Person.selfServiceLock` (display and listing only;
   * no rule reads it back). `at` is the lock's time (absent in effects stored by older versions).
   */
  | { type: 'person.lock_self_service'; id: string; personId: string; caseRef: string; reason: 'answers_failed'; at?: string }
  /** Clear the mirror after a reset (also a lock stored there by older versions). */
  | { type: 'person.clear_self_service_lock'; id: string; personId: string }
  /** Post the RA case's card to the RA channel, or update the posted one in place (carried out by the RA desk). */
  | { type: 'ra.case_card'; id: string; caseRef: string }
  /** Tell the person in their personal chat what happened to their RA case (plain text, no secret). */
  | { type: 'ra.tell_person'; id: string; personId: string; caseRef: string; text: string }
  /** Mirror the case journey's status onto the stored `RaCase` (listing only; no rule reads it back). */
  | { type: 'ra.case_status'; id: string; caseRef: string; status: 'open' | 'claimed' | 'closed' }
  /** RA confirmed the holder in person: the one self-service reset (`unlock/self-service-reset.ts`), actor `ra:<id>`. */
  | { type: 'ra.reset_self_service'; id: string; personId: string; caseRef: string; actor: string }
  /** RA started an assisted unlock: the person's unlock starts or resumes with the questions skipped (`ra-case/unlock-for-ra.port.ts`), actor `ra:<id>`. */
  | { type: 'ra.assist_unlock'; id: string; personId: string; caseRef: string; actor: string }
  /** Update this run's card in Teams in place (proactively) and optionally post a short message below it. */
  | { type: 'teams.refresh'; id: string; personId: string; message: string | null; journey?: JourneyKind }
  | {
      type: 'mail.registration_code';
      id: string;
      personId: string;
      to: string;
      displayName: string;
      /** The code, sealed with AAD `code:<runId>`. */
      codeSealed: Sealed;
      codeHash: string;
      runId: string;
      expiresAt: string;
    }
  | {
      type: 'mail.registration_confirmed';
      id: string;
      personId: string;
      to: string;
      displayName: string;
      at: string;
      email: string;
      mobile: string | null;
      workstation: string | null;
      selfUnlockReady: boolean;
    }
  /** Create the person, or replace their contact details, answers and card binding (re-registration). */
  | {
      type: 'person.register';
      id: string;
      personId: string;
      teamsUserId: string;
      displayName: string;
      email: string;
      mobile: string | null;
      cardId: string;
      answers: AnswerHash[];
    };

type EffectType = Effect['type'];
