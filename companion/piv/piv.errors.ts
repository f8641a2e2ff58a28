/**
 * Card-layer errors (STYLE.md 10, 11). Every error has a `CARD.*` code that
 * survives a process boundary. No PIN or PUK is ever put in a message or `meta`.
 */
import { AppError } from '../../common/app-error';
import { swHex, swName } from './piv.constants';

/** Every code a card-layer error can carry. */
export const CARD_ERROR_CODE = {
  /** The card was pulled (or lost power) during or before the operation. PC/SC 0x80100069 / 0x80100016. */
  REMOVED: 'CARD.REMOVED',
  /** No card in the reader. PC/SC 0x8010000C. */
  NOT_PRESENT: 'CARD.NOT_PRESENT',
  /** The reader or the PC/SC service (pcscd) is not there. */
  READER_UNAVAILABLE: 'CARD.READER_UNAVAILABLE',
  /** Another connection holds the reader (this process or an exclusive one elsewhere). */
  IN_USE: 'CARD.IN_USE',
  /** The card is in the reader but does not answer. PC/SC 0x80100066. */
  UNRESPONSIVE: 'CARD.UNRESPONSIVE',
  /** Any other transport failure. */
  TRANSMIT_FAILED: 'CARD.TRANSMIT_FAILED',
  /** The card answered with fewer than 2 bytes (no SW1 SW2). */
  RESPONSE_TOO_SHORT: 'CARD.RESPONSE_TOO_SHORT',
  /** The card answered with data this layer cannot parse (bad TLV, missing GUID). */
  MALFORMED_RESPONSE: 'CARD.MALFORMED_RESPONSE',
  /** A certificate object on the card is not a usable X.509 certificate (bad layout, bad DER, bad dates). */
  MALFORMED_CERTIFICATE: 'CARD.MALFORMED_CERTIFICATE',
  /** A command returned a status word other than 9000 that no more specific error covers. */
  APDU_FAILED: 'CARD.APDU_FAILED',
  /** SELECT of the PIV application failed: not a PIV card. */
  APPLICATION_NOT_FOUND: 'CARD.APPLICATION_NOT_FOUND',
  /** Wrong PIN; `meta.attemptsLeft` tries remain (63Cx). */
  PIN_INVALID: 'CARD.PIN_INVALID',
  /** PIN retry counter is 0 (6983). */
  PIN_BLOCKED: 'CARD.PIN_BLOCKED',
  /** Wrong PUK; `meta.attemptsLeft` tries remain (63Cx). */
  PUK_INVALID: 'CARD.PUK_INVALID',
  /** PUK retry counter is 0 (6983): only a card re-issue helps. */
  PUK_BLOCKED: 'CARD.PUK_BLOCKED',
  /** A PIN or PUK handed to the card layer has the wrong format (refused before anything is sent). */
  BAD_REFERENCE_DATA_FORMAT: 'CARD.BAD_REFERENCE_DATA_FORMAT',
} as const;
export type CardErrorCode = (typeof CARD_ERROR_CODE)[keyof typeof CARD_ERROR_CODE];

type Meta = Record<string, string | number | boolean | null>;

/** Base of every card-layer error; `code` is one of {@link CARD_ERROR_CODE}. */
export class CardError extends AppError {
  declare readonly code: CardErrorCode;

  /**
   * @param code - one of {@link CARD_ERROR_CODE}
   * @param message - what happened, for logs and support; never a PIN or PUK
   * @param options.cause - the underlying error (e.g. the PC/SC error)
   * @param options.meta - non-sensitive facts (reader name, SW, PC/SC code)
   */
  constructor(code: CardErrorCode, message: string, options?: { cause?: unknown; meta?: Meta }) {
    super(code, message, options);
  }
}

/**
 * A command answered with a status word other than 9000 (STYLE.md 11: carries the SW and the command).
 * Thrown only by the transmit path; {@link PivSession} turns the SWs it knows into the specific errors below.
 */
export class ApduError extends CardError {
  /** Status word SW1SW2 as a 16-bit number. */
  readonly sw: number;
  /** Name of the command that failed, e.g. `VERIFY`. */
  readonly command: string;
  /** Response data that came with the SW (usually empty). */
  readonly data: Buffer;

  /**
   * @param command - command name, e.g. `RESET_RETRY_COUNTER`
   * @param sw - status word as a 16-bit number
   * @param data - response data before the SW
   */
  constructor(command: string, sw: number, data: Buffer = Buffer.alloc(0), options?: { code?: CardErrorCode; message?: string; cause?: unknown }) {
    super(options?.code ?? CARD_ERROR_CODE.APDU_FAILED, options?.message ?? `${command} failed: SW ${swHex(sw)} (${swName(sw)})`, {
      cause: options?.cause,
      meta: { sw: swHex(sw), swName: swName(sw), command },
    });
    this.sw = sw;
    this.command = command;
    this.data = data;
  }

  /** Status word as 4 upper-case hex digits, e.g. `6983`. */
  get swHex(): string {
    return swHex(this.sw);
  }
}

/** The card answered with fewer than 2 bytes: it lost power mid-APDU or the transport dropped the SW. */
export class ResponseTooShortError extends CardError {
  /**
   * @param command - command name
   * @param length - number of bytes received (0 or 1)
   */
  constructor(readonly command: string, readonly length: number) {
    super(CARD_ERROR_CODE.RESPONSE_TOO_SHORT, `${command}: response of ${length} byte(s) has no SW1 SW2 (card removed or not answering?)`, {
      meta: { command, length },
    });
  }
}

/** SELECT of the PIV application failed (SP 800-73-4 Part 2, 3.1.1): the card has no PIV application. */
export class ApplicationNotFoundError extends ApduError {
  /** @param sw - the status word SELECT returned (usually 6A82) */
  constructor(sw: number) {
    super('SELECT', sw, undefined, {
      code: CARD_ERROR_CODE.APPLICATION_NOT_FOUND,
      message: `PIV application not found on the card: SELECT returned SW ${swHex(sw)} (${swName(sw)})`,
    });
  }
}

/** Wrong PIN (63Cx, SP 800-73-4 Part 2, 3.2.1). `attemptsLeft` 0 means the PIN is now blocked. */
export class InvalidPinError extends ApduError {
  /**
   * @param attemptsLeft - further tries before the PIN blocks (the x of 63Cx)
   * @param command - command that failed (VERIFY or CHANGE_REFERENCE_DATA)
   */
  constructor(readonly attemptsLeft: number, command = 'VERIFY') {
    super(command, 0x63c0 | (attemptsLeft & 0x0f), undefined, {
      code: CARD_ERROR_CODE.PIN_INVALID,
      message: `${command}: wrong PIN, ${attemptsLeft} tries left`,
    });
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), attemptsLeft: this.attemptsLeft };
  }
}

/** PIN retry counter is 0 (6983, SP 800-73-4 Part 2, 3.2.1): only RESET RETRY COUNTER with the PUK unblocks it. */
export class PinBlockedError extends ApduError {
  /** @param command - command that failed */
  constructor(command = 'VERIFY') {
    super(command, 0x6983, undefined, { code: CARD_ERROR_CODE.PIN_BLOCKED, message: `${command}: PIN is blocked (SW 6983)` });
  }
}

/** Wrong PUK (63Cx, SP 800-73-4 Part 2, 3.2.3 / 3.2.2). `attemptsLeft` 0 means the PUK is now blocked. */
export class InvalidPukError extends ApduError {
  /**
   * @param attemptsLeft - further tries before the PUK blocks
   * @param command - command that failed (RESET_RETRY_COUNTER or CHANGE_REFERENCE_DATA)
   */
  constructor(readonly attemptsLeft: number, command = 'RESET_RETRY_COUNTER') {
    super(command, 0x63c0 | (attemptsLeft & 0x0f), undefined, {
      code: CARD_ERROR_CODE.PUK_INVALID,
      message: `${command}: wrong PUK, ${attemptsLeft} tries left`,
    });
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), attemptsLeft: this.attemptsLeft };
  }
}

/** PUK retry counter is 0 (6983): the card cannot be unblocked any more. */
export class PukBlockedError extends ApduError {
  /** @param command - command that failed */
  constructor(command = 'RESET_RETRY_COUNTER') {
    super(command, 0x6983, undefined, { code: CARD_ERROR_CODE.PUK_BLOCKED, message: `${command}: PUK is blocked (SW 6983)` });
  }
}

/**
 * A certificate object read from the card is not usable: its SP 800-73-4 layout (53 { 70, 71, FE }) is
 * broken, the certificate is not DER X.509 that `node:crypto` accepts, or its dates cannot be read.
 * `meta.slot` names the slot (`9A`, `9E`); the message says what is wrong, never the bytes.
 */
export class CertificateError extends CardError {
  /**
   * @param slot - key reference of the slot, e.g. `9A`
   * @param reason - what is wrong, for logs and support
   * @param options.cause - the parser's error
   */
  constructor(readonly slot: string, reason: string, options?: { cause?: unknown }) {
    super(CARD_ERROR_CODE.MALFORMED_CERTIFICATE, `certificate in slot ${slot} is not usable: ${reason}`, { cause: options?.cause, meta: { slot } });
  }
}

/**
 * Narrow an unknown error to a {@link CardError}, optionally with a given code.
 *
 * @param error - anything caught
 * @param code - when given, also require this code
 */
export function isCardError(error: unknown, code?: CardErrorCode): error is CardError {
  return error instanceof CardError && (code === undefined || error.code === code);
}
