/**
 * Card service: what the companion does with the card in the reader, on top of
 * the PIV session layer. Reads the status the bot asks for (card id and PIN
 * retry counter), runs the unblock (RESET RETRY COUNTER, then CHANGE
 * REFERENCE DATA of the PUK), and reports card insert/remove as statuses.
 *
 * One card operation runs at a time; every session ends by resetting the card
 * (disposition `reset`), so no PIN-verified state outlives it
 * (test-services.md: "PIN verified state survives a disconnect with LEAVE_CARD").
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../../common/logger';
import type { CardStatus, Request } from '../../protocol/companion-link.protocol';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { ApduError, CARD_ERROR_CODE, InvalidPinError, InvalidPukError, PinBlockedError, PukBlockedError, isCardError, type CardErrorCode } from '../piv/piv.errors';
import type { CertificateSlot } from '../piv/piv.constants';
import { PivSession, type CertificateReading } from '../piv/piv.session';

/** Which PUK the card holds, as far as the companion knows (protocol `unlock.result.pukOnCard`). */
export type PukOnCard = 'current' | 'new' | 'unknown';

/** What the unblock needs. `puk`, `newPuk` and `newPasscode` are secrets: never logged, never stored. */
export interface UnblockRequest {
  /** The card the journey is for (CHUID GUID, 32 lower-case hex digits). */
  cardId: string;
  /** The PUK the bot says is on the card. */
  puk: string;
  /** The PUK to change it to. */
  newPuk: string;
  /** The new passcode (PIN), already policy-checked. */
  newPasscode: string;
  /**
   * What the companion believes the card holds before this run: `current` (first try),
   * or what an interrupted earlier run reported. With `unknown`, `puk` is tried first and,
   * if the card rejects it as wrong, `newPuk` (each wrong try costs a PUK try).
   */
  pukOnCard: PukOnCard;
}

/**
 * Outcome of an unblock: a returned value, never a throw (STYLE.md 10).
 * `passcodeSet` says whether RESET RETRY COUNTER is known to have succeeded.
 */
export type UnblockOutcome =
  | { outcome: 'unblocked'; pukOnCard: 'new'; passcodeSet: true }
  /** The card went away (pulled, dead mid-APDU, or never there) before the work was known to be done. */
  | { outcome: 'card_removed'; pukOnCard: PukOnCard; passcodeSet: boolean }
  /** A card is in the reader but it is not `cardId`. Nothing was sent to it beyond reading its id. */
  | { outcome: 'wrong_card'; pukOnCard: PukOnCard; passcodeSet: false; cardIdFound: string }
  /** The card refused the PUK (63Cx wrong, 6983 blocked). */
  | { outcome: 'puk_rejected'; pukOnCard: PukOnCard; passcodeSet: false; sw: string; pukBlocked: boolean }
  /** Any other failure; `sw` when the card answered with a status word. */
  | { outcome: 'card_error'; pukOnCard: PukOnCard; passcodeSet: boolean; code: string; sw?: string };

/** Outcome of VERIFY with a typed passcode: the protocol's `register.passcode_checked` result. */
export type VerifyOutcome = Extract<Request, { kind: 'register.passcode_checked' }>['result'];

export interface CardServiceOptions {
  reader: CardReaderPort;
  /** Use only this reader; null = the first reader with a card. */
  readerName: string | null;
  logger: Logger;
  /** Pause before reading a freshly inserted card, in ms (pcscd reports insertion before the card settles); default 150. */
  insertSettleMs?: number;
}

/** Codes that mean "the card is not there (any more)": the result of the command in flight is unknown. */
const GONE_CODES: ReadonlySet<CardErrorCode> = new Set([
  CARD_ERROR_CODE.REMOVED,
  // The reader unplugged or pcscd gone mid-command (issue #13): the card may have carried it out.
  CARD_ERROR_CODE.READER_UNAVAILABLE,
  CARD_ERROR_CODE.NOT_PRESENT,
  CARD_ERROR_CODE.RESPONSE_TOO_SHORT,
  CARD_ERROR_CODE.UNRESPONSIVE,
  CARD_ERROR_CODE.TRANSMIT_FAILED,
]);

/** True when `err` says the card went away or could not be reached mid-command. */
export function isCardGone(err: unknown): boolean {
  return isCardError(err) && GONE_CODES.has(err.code);
}

/** Status word of a card error, 4 upper-case hex digits, when there is one. */
function swOf(err: unknown): string | undefined {
  return err instanceof ApduError ? err.swHex : undefined;
}

/** Reads and unblocks the card; reports insert/remove. */
export class CardService {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(status: CardStatus) => void>();
  private unsubscribe: (() => void) | null = null;
  /** Reader whose card was last reported present (for remove events when no reader is configured). */
  private activeReader: string | null = null;

  constructor(private readonly options: CardServiceOptions) {}

  /** Start watching the reader(s); statuses go to {@link onStatus} listeners. */
  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.options.reader.onEvent((event) => this.onReaderEvent(event));
  }

  /**
   * Subscribe to card statuses caused by insert/remove events.
   *
   * @param listener - called with `{present: true, cardId, pinRetries, reader, certificates}` after an insert
   *   (read from the card), `{present: false, reader}` after a remove
   * @returns unsubscribe
   */
  onStatus(listener: (status: CardStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stop watching (the reader port itself is closed by its owner). */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /**
   * Read the card in the reader: card id (CHUID GUID), PIN retry counter (empty VERIFY, SP 800-73-4 Part 2, 3.2.1)
   * and the validity of its 9A and 9E certificates (GET DATA 5FC105 / 5FC101, SP 800-73-4 Part 1, Table 3).
   *
   * @returns `{present: true, reader, cardId, pinRetries, certificates}` (`certificates`: one
   *   `{slot, notAfter}` per usable certificate; `[]` when the card has none, or only malformed ones);
   *   `{present: false, reader}` when no reader holds a card
   *   (`reader` is the configured or first reader, null when there is none)
   * @throws CardError when a card is there but cannot be read (e.g. `CARD.APPLICATION_NOT_FOUND`: not a PIV card),
   *   or `CARD.READER_UNAVAILABLE`
   */
  readStatus(): Promise<CardStatus> {
    return this.exclusive(async () => {
      const readers = this.candidateReaders();
      let firstError: unknown;
      for (const reader of readers) {
        try {
          return await this.withTransientRetry(reader, () => this.readStatusOf(reader));
        } catch (err) {
          if (isCardGone(err)) {
            this.options.logger.debug({ reader, errorCode: codeOf(err) }, 'no readable card in this reader');
            continue;
          }
          firstError ??= err;
        }
      }
      if (firstError !== undefined) throw firstError;
      return { present: false, reader: readers[0] ?? null };
    });
  }

  /**
   * Unblock the card: RESET RETRY COUNTER with the PUK and the new passcode (SP 800-73-4 Part 2, 3.2.3),
   * then CHANGE REFERENCE DATA of the PUK to `newPuk` (3.2.2).
   *
   * NOTE: RESET RETRY COUNTER does not change the PUK, so a card pulled during it still holds the
   * PUK it had; a card pulled during the PUK change may hold either (`pukOnCard: 'unknown'`).
   *
   * @param request - card id, PUK, new PUK, new passcode and what the card is believed to hold
   * @returns the outcome (never throws for card trouble): `unblocked` with `pukOnCard: 'new'`,
   *   `card_removed`, `wrong_card`, `puk_rejected` (with `sw`) or `card_error`
   */
  unblock(request: UnblockRequest): Promise<UnblockOutcome> {
    return this.exclusive(() => this.runUnblock(request));
  }

  /**
   * VERIFY a passcode on the card in the reader (SP 800-73-4 Part 2, 3.2.1), then reset the card so the
   * verified state does not outlive this check.
   *
   * @param passcode - the passcode as typed, 6-8 digits (secret; refused before sending otherwise)
   * @returns `verified` / `wrong_passcode` (with `triesLeft`, from 63Cx) / `blocked` (6983), each with the
   *   card id; `no_card`; or `card_error` (with `sw` when the card answered one). Never throws for card trouble.
   */
  verifyPasscode(passcode: string): Promise<VerifyOutcome> {
    return this.exclusive(async () => {
      const log = this.options.logger;
      let sawError: string | null = null;
      for (const reader of this.candidateReaders()) {
        let opened: { conn: CardConnection; session: PivSession; cardId: string };
        try {
          opened = await this.withTransientRetry(reader, async () => {
            const conn = await this.options.reader.connect(reader);
            try {
              const session = await PivSession.open(conn, this.options.logger);
              return { conn, session, cardId: await session.readCardId() };
            } catch (err) {
              await conn.close('reset').catch(() => undefined);
              throw err;
            }
          });
        } catch (err) {
          if (!isCardGone(err)) sawError ??= swOf(err) ?? '';
          log.debug({ reader, errorCode: codeOf(err) }, 'no card to verify in this reader');
          continue;
        }
        const { conn, session, cardId } = opened;
        try {
          await session.verifyPin(passcode);
          log.info({ reader, cardId }, 'passcode verified on the card');
          return { outcome: 'verified', cardId };
        } catch (err) {
          if (err instanceof InvalidPinError) {
            log.info({ reader, cardId, attemptsLeft: err.attemptsLeft }, 'card refused the passcode');
            // 63C0 is still a wrong passcode (now with no tries left); 6983 below is a card that was already blocked.
            return { outcome: 'wrong_passcode', cardId, triesLeft: err.attemptsLeft };
          }
          if (err instanceof PinBlockedError) return { outcome: 'blocked', cardId };
          if (isCardGone(err)) return { outcome: 'no_card' };
          log.warn({ err: describe(err) }, 'VERIFY failed');
          const sw = swOf(err);
          return { outcome: 'card_error', ...(sw ? { sw } : {}) };
        } finally {
          await conn.close('reset').catch(() => undefined);
        }
      }
      if (sawError !== null) return { outcome: 'card_error', ...(sawError ? { sw: sawError } : {}) };
      return { outcome: 'no_card' };
    });
  }

  // -------------------------------------------------------------------------

  private async runUnblock(request: UnblockRequest): Promise<UnblockOutcome> {
    const log = this.options.logger;
    const before = request.pukOnCard;
    const found = await this.connectToCard(request.cardId);
    if (found.kind === 'absent') return { outcome: 'card_removed', pukOnCard: before, passcodeSet: false };
    if (found.kind === 'other') return { outcome: 'wrong_card', pukOnCard: before, passcodeSet: false, cardIdFound: found.cardId };
    if (found.kind === 'error') return { outcome: 'card_error', pukOnCard: before, passcodeSet: false, code: found.code };
    const { conn, session } = found;
    try {
      const candidates = before === 'current' ? [request.puk] : before === 'new' ? [request.newPuk] : [...new Set([request.puk, request.newPuk])];
      let usedPuk: string | null = null;
      for (let i = 0; i < candidates.length && usedPuk === null; i += 1) {
        const puk = candidates[i]!;
        try {
          await session.resetRetryCounter(puk, request.newPasscode);
          usedPuk = puk;
        } catch (err) {
          if (err instanceof InvalidPukError && i + 1 < candidates.length && err.attemptsLeft > 0) {
            log.info({ attemptsLeft: err.attemptsLeft }, 'card refused the first PUK candidate; trying the other');
            continue;
          }
          if (err instanceof InvalidPukError || err instanceof PukBlockedError) {
            log.warn({ sw: err.swHex, errorCode: err.code }, 'card refused the PUK');
            return { outcome: 'puk_rejected', pukOnCard: before, passcodeSet: false, sw: err.swHex, pukBlocked: err instanceof PukBlockedError || err.attemptsLeft === 0 };
          }
          // RESET RETRY COUNTER leaves the PUK as it was, whatever happened.
          if (isCardGone(err)) {
            log.warn({ errorCode: codeOf(err) }, 'card went away during RESET RETRY COUNTER');
            return { outcome: 'card_removed', pukOnCard: before, passcodeSet: false };
          }
          log.warn({ err: describe(err) }, 'RESET RETRY COUNTER failed');
          const sw = swOf(err);
          return { outcome: 'card_error', pukOnCard: before, passcodeSet: false, code: codeOf(err), ...(sw ? { sw } : {}) };
        }
      }
      log.info({ reader: conn.reader }, 'PIN retry counter reset with the new passcode');
      const holdsNew = usedPuk === request.newPuk && request.newPuk !== request.puk;
      if (!holdsNew) {
        const onCard: PukOnCard = usedPuk === request.puk ? 'current' : 'new';
        try {
          await session.changePuk(usedPuk!, request.newPuk);
        } catch (err) {
          if (isCardGone(err)) {
            log.warn({ errorCode: codeOf(err) }, 'card went away during the PUK change; PUK on card unknown');
            return { outcome: 'card_removed', pukOnCard: 'unknown', passcodeSet: true };
          }
          log.warn({ err: describe(err) }, 'PUK change failed');
          const sw = swOf(err);
          return { outcome: 'card_error', pukOnCard: onCard, passcodeSet: true, code: codeOf(err), ...(sw ? { sw } : {}) };
        }
      }
      log.info({ reader: conn.reader }, 'card unblocked and PUK changed');
      return { outcome: 'unblocked', pukOnCard: 'new', passcodeSet: true };
    } finally {
      await conn.close('reset').catch(() => undefined);
    }
  }

  /** Find the card `cardId` among the candidate readers and open a PIV session on it. */
  private async connectToCard(
    cardId: string,
  ): Promise<{ kind: 'found'; conn: CardConnection; session: PivSession } | { kind: 'absent' } | { kind: 'other'; cardId: string } | { kind: 'error'; code: string }> {
    let other: string | null = null;
    let error: string | null = null;
    for (const reader of this.candidateReaders()) {
      try {
        // Nothing secret is sent before the card id matches, so a transient failure here is retried.
        const opened = await this.withTransientRetry(reader, async () => {
          const conn = await this.options.reader.connect(reader);
          try {
            const session = await PivSession.open(conn, this.options.logger);
            return { conn, session, id: await session.readCardId() };
          } catch (err) {
            await conn.close('reset').catch(() => undefined);
            throw err;
          }
        });
        if (opened.id === cardId) return { kind: 'found', conn: opened.conn, session: opened.session };
        other ??= opened.id;
        await opened.conn.close('reset').catch(() => undefined);
      } catch (err) {
        this.options.logger.debug({ reader, errorCode: codeOf(err) }, 'card not reachable in this reader');
        if (!isCardGone(err)) error ??= codeOf(err);
      }
    }
    if (other !== null) return { kind: 'other', cardId: other };
    if (error !== null) return { kind: 'error', code: error };
    return { kind: 'absent' };
  }

  /**
   * Run `fn` again (up to 2 more times, 150 ms then 300 ms later) when the card was there but a
   * command failed in passing (PC/SC "card was reset" by another handle, a poll racing the connect).
   * `CARD.NOT_PRESENT` is final at once.
   */
  private async withTransientRetry<T>(reader: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 2 || !isCardGone(err) || isCardError(err, CARD_ERROR_CODE.NOT_PRESENT)) throw err;
        this.options.logger.debug({ reader, errorCode: codeOf(err), attempt }, 'card command failed in passing; trying again');
        await delay(150 * (attempt + 1));
      }
    }
  }

  private async readStatusOf(reader: string): Promise<CardStatus> {
    const conn = await this.options.reader.connect(reader);
    try {
      const session = await PivSession.open(conn, this.options.logger);
      const cardId = await session.readCardId();
      const pin = await session.readPinStatus();
      const certificates = certificatesForStatus(await session.readCertificates(), this.options.logger, cardId);
      return { present: true, reader, cardId, pinRetries: Math.min(pin.retries, 15), certificates };
    } finally {
      await conn.close('reset').catch(() => undefined);
    }
  }

  private candidateReaders(): string[] {
    const all = this.options.reader.readers();
    if (this.options.readerName !== null) return all.includes(this.options.readerName) ? [this.options.readerName] : [];
    // The reader that last had our card first, then the rest in the order the port lists them.
    return this.activeReader !== null && all.includes(this.activeReader) ? [this.activeReader, ...all.filter((r) => r !== this.activeReader)] : all;
  }

  private onReaderEvent(event: ReaderEvent): void {
    if (this.options.readerName !== null && event.reader !== this.options.readerName) return;
    if (event.type === 'card.inserted') {
      void this.reportInserted(event.reader);
    } else if (event.type === 'card.removed' || event.type === 'reader.removed') {
      if (this.options.readerName === null && this.activeReader !== null && event.reader !== this.activeReader) return;
      this.activeReader = null;
      this.emit({ present: false, reader: event.reader });
    }
  }

  private async reportInserted(reader: string): Promise<void> {
    const log = this.options.logger;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await delay((this.options.insertSettleMs ?? 150) * (attempt + 1));
      try {
        const status = await this.exclusive(() => this.readStatusOf(reader));
        if (status.present) this.activeReader = reader;
        this.emit(status);
        return;
      } catch (err) {
        if (isCardError(err, CARD_ERROR_CODE.REMOVED) || isCardError(err, CARD_ERROR_CODE.NOT_PRESENT)) {
          log.debug({ reader }, 'card left again before it could be read');
          return;
        }
        if (!isCardGone(err)) {
          log.warn({ reader, err: describe(err) }, 'inserted card could not be read (not a PIV card?)');
          return;
        }
      }
    }
    log.warn({ reader }, 'inserted card did not answer');
  }

  private emit(status: CardStatus): void {
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch (err) {
        this.options.logger.error({ err: describe(err) }, 'card status listener failed');
      }
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/**
 * The protocol's `certificates` from what the card gave: the usable ones, with their `notAfter`.
 * An absent object (6A82) is simply not listed; an unusable one (malformed bytes, another status word)
 * is not listed either and is logged (slot and error code; a certificate is public, but its bytes are
 * not logged).
 *
 * @param readings - {@link PivSession.readCertificates}, in slot order
 * @param logger - for the warning about an unusable certificate
 * @param cardId - for the log line
 * @returns `[{ slot, notAfter }]`, possibly empty
 */
function certificatesForStatus(readings: CertificateReading[], logger: Logger, cardId: string): Array<{ slot: CertificateSlot; notAfter: string }> {
  const usable: Array<{ slot: CertificateSlot; notAfter: string }> = [];
  for (const reading of readings) {
    if (reading.status === 'present') usable.push({ slot: reading.slot, notAfter: reading.certificate.notAfter });
    else if (reading.status === 'unusable') {
      logger.warn({ cardId, slot: reading.slot, errorCode: reading.error.code, message: reading.error.message }, 'certificate on the card not usable; reported as no certificate');
    }
  }
  return usable;
}

function codeOf(err: unknown): string {
  return isCardError(err) ? err.code : 'CARD.TRANSMIT_FAILED';
}

/** Error facts for a log line: code and message only (card-layer messages carry no PIN or PUK by rule). */
function describe(err: unknown): Record<string, unknown> {
  if (isCardError(err)) return { errorCode: err.code, message: err.message, meta: err.meta };
  return { name: err instanceof Error ? err.name : typeof err, message: err instanceof Error ? err.message : 'non-error thrown' };
}
