/**
 * PUK custody: the only module that opens a sealed PUK (DESIGN.md "Trust
 * boundaries": the PUK is sent to the paired companion only at the unblock step,
 * after every check, then rotated).
 *
 * - Release ({@link PukCustody.release}): re-checks, at the moment of sending,
 *   that the card is bound to the person with a PUK enrolled, that the device is
 *   theirs and not revoked, and that the unlock run is still the one unblocking
 *   that card with that device and link session (the one that presented the accepted
 *   code, issue #10); ensures a pending rotation PUK on the card record
 *   by compare-and-set (so racing releases share one); unseals current and new and
 *   sends them as the `unlock.authorised` command to that one companion, on that
 *   link session only (a newer link of the same device gets nothing).
 * - Commit ({@link PukCustody.commit}): the card holds the new PUK, so the
 *   pending PUK becomes the current one (compare-and-set, once).
 *
 * Both run as effects of the unlock journey through its outbox and write their
 * audit entries keyed on the effect id, so carrying one out twice stores one
 * entry. No PUK appears in an audit entry, a log line or an error message.
 */
import type { KeyObject } from 'node:crypto';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { Command, Reply } from '../../protocol/companion-link.protocol';
import type { CardRecord, Sealed, Storage } from '../../storage/storage.port';
import { generatePuk } from '../security/codes';
import { seal, unseal } from '../security/seal';
import type { PukCommitEffect, PukReleaseEffect } from './puk.effects';
import { mayReceivePuk, pukAad, type PukRefusal } from './puk.rules';

/** Compare-and-set attempts on the card record before giving up (`CARD.BUSY`). */
export const CARD_WRITE_ATTEMPTS = 5;

/** The unlock run that is unblocking a card now, as the journey's stored state says. */
export interface UnblockingRun {
  runId: string;
  cardId: string;
  deviceId: string;
  /** The link session that presented the accepted code (or resumed with it); null for runs stored before issue #10. */
  linkSession: string | null;
}

export interface PukCustodyDeps {
  storage: Pick<Storage, 'cards' | 'devices' | 'audit'>;
  /**
   * Sends one command to a companion and waits for its reply (the companion link). With
   * `options.linkSession`, only on that link session: another (newer) session of the device
   * gets nothing and the call throws `LINK.SESSION_CHANGED`.
   */
  link: { sendCommand(deviceId: string, command: Command, timeoutMs: number, options?: { linkSession?: string }): Promise<Reply> };
  /** Key the PUKs are sealed with (`DerivedKeys.sealKey`). */
  sealKey: KeyObject;
  /** The person's unlock run in the `unblocking` phase, or null when it is in any other phase. */
  unblockingRun: (personId: string) => Promise<UnblockingRun | null>;
  /** How long to wait for the companion's `ack`, in ms. */
  commandTimeoutMs: number;
  now: () => Date;
  logger?: Logger;
  /** A fresh PUK (8 digits); default {@link generatePuk}. */
  newPuk?: () => string;
  /**
   * False in a process that reaches no companion (the admin CLI): a release then throws
   * `EFFECT.NOT_HERE` before any check, write or unseal, and stays pending for the bot. Default true.
   */
  releasesHere?: boolean;
}

/** Error code of an effect this process cannot carry out (same as the engine's `EFFECT_NOT_HERE`). */
const NOT_HERE = 'EFFECT.NOT_HERE';

/** Why a release sent nothing. */
export type WithheldReason = PukRefusal | 'device_not_paired' | 'stale_run';

export type ReleaseOutcome =
  /** The pair went to the companion (it acknowledged). `pukUncertain`: a pending PUK existed before. */
  | { kind: 'sent'; pukUncertain: boolean; pendingIssued: boolean }
  /** A check failed at carry-out time: nothing was sent (audited). */
  | { kind: 'withheld'; reason: WithheldReason }
  /** The checks passed but the companion could not be reached or refused it (audited; its resume asks again). */
  | { kind: 'undelivered'; errorCode: string };

export type CommitOutcome = { kind: 'committed' } | { kind: 'nothing_pending' } | { kind: 'skipped'; reason: PukRefusal };

/**
 * Seal a PUK for storage on its card record (the admin import and enrolment use this;
 * only {@link PukCustody} opens one).
 *
 * @param key - `DerivedKeys.sealKey`
 * @param puk - 8 digits
 * @param cardId - the card it belongs to (bound in as AAD `puk:<cardId>`)
 * @returns the sealed value (`v1.<iv>.<ct>.<tag>`)
 */
export function sealPuk(key: KeyObject, puk: string, cardId: string): Sealed {
  return seal(key, puk, pukAad(cardId));
}

/** Releases and rotates card PUKs; see the module comment. */
export class PukCustody {
  constructor(private readonly deps: PukCustodyDeps) {}

  /**
   * Carry out a `puk.release` effect.
   *
   * @param effect - person, device, card and run the journey step accepted the code for
   * @returns what happened; every outcome is audited (`puk.released`, `puk.withheld`,
   *   `puk.release_undelivered`, keyed on the effect id)
   * @throws AppError `CARD.BUSY` when the card record kept changing ({@link CARD_WRITE_ATTEMPTS}
   *   lost compare-and-sets), or a storage error; the outbox retries the effect later
   * @throws SecurityError `CRYPTO.UNSEAL_FAILED` when a stored PUK does not open (no value in the message)
   * @throws AppError `EFFECT.NOT_HERE` in a process that reaches no companion (`releasesHere: false`,
   *   or a link that throws it): the outbox leaves the effect pending and uncounted for the bot
   */
  async release(effect: PukReleaseEffect): Promise<ReleaseOutcome> {
    // Not for this process: unseal nothing, write nothing, leave it pending for the bot.
    if (this.deps.releasesHere === false) throw new AppError(NOT_HERE, 'this process reaches no companion; the PUK release is left to the bot');
    const withheld = await this.releaseCheck(effect);
    if (withheld) {
      await this.audit(effect, 'withheld', 'puk.withheld', { reason: withheld });
      this.deps.logger?.warn({ effectId: effect.id, cardId: effect.cardId, reason: withheld }, 'PUK release withheld');
      return { kind: 'withheld', reason: withheld };
    }
    const { card, pending, pukUncertain, pendingIssued } = await this.ensurePending(effect);
    // Revoked while the pending PUK was being stored (e.g. `admin revoke-device` from its own process):
    // look again right before anything is unsealed, so the window left is the send itself.
    if (!(await this.devicePaired(effect))) {
      await this.audit(effect, 'withheld', 'puk.withheld', { reason: 'device_not_paired', pendingIssued });
      this.deps.logger?.warn({ effectId: effect.id, cardId: effect.cardId, reason: 'device_not_paired' }, 'PUK release withheld');
      return { kind: 'withheld', reason: 'device_not_paired' };
    }
    const aad = pukAad(effect.cardId);
    const command: Command = {
      kind: 'unlock.authorised',
      journeyId: effect.runId,
      cardId: effect.cardId,
      puk: unseal(this.deps.sealKey, card.puk as Sealed, aad),
      newPuk: unseal(this.deps.sealKey, pending, aad),
      ...(pukUncertain ? { pukUncertain: true } : {}),
    };
    let errorCode: string | null = null;
    try {
      const reply = await this.deps.link.sendCommand(effect.deviceId, command, this.deps.commandTimeoutMs, typeof effect.linkSession === 'string' ? { linkSession: effect.linkSession } : {});
      if (reply.kind === 'error') errorCode = reply.code;
    } catch (err) {
      errorCode = err instanceof AppError ? err.code : 'UNEXPECTED';
      // A link that is not here at all (not an offline companion): the effect stays pending, uncounted.
      if (errorCode === NOT_HERE) throw err;
    }
    if (errorCode !== null) {
      // Revoked during the send: the pair may have reached that link before it was cut, so the audit says
      // the PUKs may be exposed (RA should rotate them), not merely undelivered.
      const exposed = !(await this.devicePaired(effect).catch(() => true));
      // Not retried by the outbox: the companion asks again with `unlock.resume` (re-checked then).
      await this.audit(effect, 'undelivered', exposed ? 'puk.release_maybe_exposed' : 'puk.release_undelivered', { errorCode, pendingIssued, ...(exposed ? { revokedDuringSend: true } : {}) });
      this.deps.logger?.warn({ effectId: effect.id, cardId: effect.cardId, errorCode }, 'PUK release not delivered');
      return { kind: 'undelivered', errorCode };
    }
    await this.audit(effect, 'released', 'puk.released', { pukUncertain, pendingIssued });
    return { kind: 'sent', pukUncertain, pendingIssued };
  }

  /**
   * Carry out a `puk.commit` effect: the pending PUK becomes the current one, once.
   *
   * NOTE: it commits whatever PUK is pending when it runs; the journey emits it only
   * while its run is unblocking that card and the companion reported the new PUK on it.
   *
   * @param effect - person, device, card and run the companion reported for
   * @returns `committed` (audited `card.puk_rotated`), `nothing_pending` (already done, or
   *   nothing was issued), or `skipped` when the card is no longer bound to the person (audited)
   * @throws AppError `CARD.BUSY` after {@link CARD_WRITE_ATTEMPTS} lost compare-and-sets, or a storage error
   */
  async commit(effect: PukCommitEffect): Promise<CommitOutcome> {
    const { storage } = this.deps;
    for (let i = 0; i < CARD_WRITE_ATTEMPTS; i++) {
      const card = await storage.cards.get(effect.cardId);
      const may = mayReceivePuk(card, effect.personId);
      if (!may.ok) {
        await this.audit(effect, 'skipped', 'puk.commit_skipped', { reason: may.reason });
        return { kind: 'skipped', reason: may.reason };
      }
      if (!card || !card.pendingPuk) return { kind: 'nothing_pending' };
      const saved = await storage.cards.save({ ...card, puk: card.pendingPuk, pendingPuk: null, updatedAt: this.deps.now().toISOString(), version: card.version + 1 }, card.version);
      if (saved === 'saved') {
        await this.audit(effect, 'rotated', 'card.puk_rotated', {});
        return { kind: 'committed' };
      }
    }
    throw new AppError('CARD.BUSY', 'the card record kept changing; the PUK rotation is retried later', { meta: { cardId: effect.cardId } });
  }

  /** The effect's device is still paired to its person (not revoked, not re-paired to someone else). */
  private async devicePaired(effect: PukReleaseEffect): Promise<boolean> {
    const device = await this.deps.storage.devices.get(effect.deviceId);
    return !!device && device.personId === effect.personId && device.revokedAt === null;
  }

  /** The first check that fails at carry-out time, or null when the release may go ahead. */
  private async releaseCheck(effect: PukReleaseEffect): Promise<WithheldReason | null> {
    const card = await this.deps.storage.cards.get(effect.cardId);
    const may = mayReceivePuk(card, effect.personId);
    if (!may.ok) return may.reason;
    if (!(await this.devicePaired(effect))) return 'device_not_paired';
    const run = await this.deps.unblockingRun(effect.personId);
    if (!run || run.runId !== effect.runId || run.cardId !== effect.cardId || run.deviceId !== effect.deviceId) return 'stale_run';
    // The run moved to another link session (the code was presented again there): this release is for the old one.
    if (effect.linkSession !== undefined && effect.linkSession !== run.linkSession) return 'stale_run';
    return null;
  }

  /**
   * The card record with a pending rotation PUK: the one already there, or a fresh one
   * stored by compare-and-set (a lost race re-reads and takes the winner's).
   */
  private async ensurePending(effect: PukReleaseEffect): Promise<{ card: CardRecord; pending: Sealed; pukUncertain: boolean; pendingIssued: boolean }> {
    const { storage } = this.deps;
    for (let i = 0; i < CARD_WRITE_ATTEMPTS; i++) {
      const card = await storage.cards.get(effect.cardId);
      const may = mayReceivePuk(card, effect.personId);
      if (!card || !may.ok) throw new AppError('CARD.CHANGED', 'the card record changed during the PUK release; retried later', { meta: { cardId: effect.cardId } });
      // A pending PUK from before this release: an earlier attempt may have put it on the card.
      if (card.pendingPuk) return { card, pending: card.pendingPuk, pukUncertain: true, pendingIssued: false };
      const pending = sealPuk(this.deps.sealKey, (this.deps.newPuk ?? generatePuk)(), effect.cardId);
      const next: CardRecord = { ...card, pendingPuk: pending, updatedAt: this.deps.now().toISOString(), version: card.version + 1 };
      if ((await storage.cards.save(next, card.version)) === 'saved') return { card: next, pending, pukUncertain: false, pendingIssued: true };
    }
    throw new AppError('CARD.BUSY', 'the card record kept changing; the PUK release is retried later', { meta: { cardId: effect.cardId } });
  }

  private async audit(effect: PukReleaseEffect | PukCommitEffect, suffix: string, action: string, details: Record<string, string | number | boolean | null>): Promise<void> {
    await this.deps.storage.audit.append({
      id: `${effect.id}:${suffix}`,
      at: this.deps.now().toISOString(),
      actor: `device:${effect.deviceId}`,
      action,
      personId: effect.personId,
      details: { cardId: effect.cardId, runId: effect.runId, ...details },
    });
  }
}
