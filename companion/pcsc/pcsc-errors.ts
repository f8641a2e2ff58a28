/**
 * PC/SC return codes (pcsc-lite `pcsclite.h`, Microsoft WinSCard) and their
 * mapping to card-layer error codes. No `pcsclite` import here, so the mapping
 * is unit-testable without a PC/SC service.
 */
import { CARD_ERROR_CODE, CardError, type CardErrorCode } from '../piv/piv.errors';

/** The PC/SC return codes this project treats specially. */
export const PCSC_CODE = {
  /** Blocking call cancelled (SCardCancel; seen when a context is closed). */
  SCARD_E_CANCELLED: 0x80100002,
  SCARD_E_INVALID_HANDLE: 0x80100003,
  SCARD_E_UNKNOWN_READER: 0x80100009,
  SCARD_E_SHARING_VIOLATION: 0x8010000b,
  SCARD_E_NO_SMARTCARD: 0x8010000c,
  /** The card was pulled mid-transaction. */
  SCARD_E_NOT_TRANSACTED: 0x80100016,
  SCARD_E_READER_UNAVAILABLE: 0x80100017,
  /** RPC transport error: pcscd went away or restarted; the context never recovers. */
  SCARD_F_COMM_ERROR: 0x80100013,
  SCARD_E_NO_SERVICE: 0x8010001d,
  SCARD_E_SERVICE_STOPPED: 0x8010001e,
  SCARD_E_NO_READERS_AVAILABLE: 0x8010002e,
  SCARD_W_UNRESPONSIVE_CARD: 0x80100066,
  SCARD_W_UNPOWERED_CARD: 0x80100067,
  SCARD_W_RESET_CARD: 0x80100068,
  SCARD_W_REMOVED_CARD: 0x80100069,
} as const;

/** Codes after which the PC/SC context is useless and a new one must be made. */
export const CONTEXT_LOST_CODES: ReadonlySet<number> = new Set([PCSC_CODE.SCARD_F_COMM_ERROR, PCSC_CODE.SCARD_E_NO_SERVICE, PCSC_CODE.SCARD_E_SERVICE_STOPPED]);

const CODE_TO_CARD_ERROR: ReadonlyMap<number, CardErrorCode> = new Map<number, CardErrorCode>([
  [PCSC_CODE.SCARD_W_REMOVED_CARD, CARD_ERROR_CODE.REMOVED],
  [PCSC_CODE.SCARD_E_NOT_TRANSACTED, CARD_ERROR_CODE.REMOVED],
  [PCSC_CODE.SCARD_E_NO_SMARTCARD, CARD_ERROR_CODE.NOT_PRESENT],
  [PCSC_CODE.SCARD_W_UNPOWERED_CARD, CARD_ERROR_CODE.NOT_PRESENT],
  [PCSC_CODE.SCARD_W_UNRESPONSIVE_CARD, CARD_ERROR_CODE.UNRESPONSIVE],
  [PCSC_CODE.SCARD_E_SHARING_VIOLATION, CARD_ERROR_CODE.IN_USE],
  [PCSC_CODE.SCARD_F_COMM_ERROR, CARD_ERROR_CODE.READER_UNAVAILABLE],
  [PCSC_CODE.SCARD_E_NO_SERVICE, CARD_ERROR_CODE.READER_UNAVAILABLE],
  [PCSC_CODE.SCARD_E_SERVICE_STOPPED, CARD_ERROR_CODE.READER_UNAVAILABLE],
  [PCSC_CODE.SCARD_E_UNKNOWN_READER, CARD_ERROR_CODE.READER_UNAVAILABLE],
  [PCSC_CODE.SCARD_E_READER_UNAVAILABLE, CARD_ERROR_CODE.READER_UNAVAILABLE],
  [PCSC_CODE.SCARD_E_NO_READERS_AVAILABLE, CARD_ERROR_CODE.READER_UNAVAILABLE],
]);

/** Message used whenever the PC/SC service itself is missing. */
export const PCSC_SERVICE_DOWN_MESSAGE = 'the PC/SC smart-card service (pcscd) is not running or not reachable';

/**
 * Read the PC/SC return code out of a `pcsclite` error, whose message ends in `(0x8010xxxx)`.
 *
 * @param error - anything the binding threw or passed to a callback
 * @returns the code as an unsigned 32-bit number, or `undefined` when there is none
 */
export function pcscCode(error: unknown): number | undefined {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : '';
  const match = /\(0x([0-9a-fA-F]{1,8})\)\s*$/.exec(message);
  return match ? Number.parseInt(match[1]!, 16) >>> 0 : undefined;
}

/** `0x80100069` style hex of a PC/SC code. */
export function pcscCodeHex(code: number): string {
  return `0x${(code >>> 0).toString(16).padStart(8, '0')}`;
}

/**
 * Map a `pcsclite` error to a {@link CardError}.
 *
 * @param error - the binding's error
 * @param operation - what was being done, e.g. `connect`, `transmit`
 * @param reader - reader name, when there is one
 * @returns `CARD.REMOVED` (0x80100069, 0x80100016), `CARD.NOT_PRESENT` (0x8010000C, 0x80100067),
 *   `CARD.UNRESPONSIVE` (0x80100066), `CARD.IN_USE` (0x8010000B), `CARD.READER_UNAVAILABLE` (service or
 *   reader gone: 0x80100013, 0x8010001D, 0x8010001E, 0x80100009, 0x80100017, 0x8010002E), else `CARD.TRANSMIT_FAILED`;
 *   `meta.pcscCode` holds the hex code
 */
export function toCardError(error: unknown, operation: string, reader?: string): CardError {
  if (error instanceof CardError) return error;
  const code = pcscCode(error);
  const mapped = (code !== undefined ? CODE_TO_CARD_ERROR.get(code) : undefined) ?? CARD_ERROR_CODE.TRANSMIT_FAILED;
  const detail = error instanceof Error ? error.message : String(error);
  const where = reader !== undefined ? ` on reader "${reader}"` : '';
  const message =
    code !== undefined && CONTEXT_LOST_CODES.has(code)
      ? `${operation}${where} failed: ${PCSC_SERVICE_DOWN_MESSAGE} (${detail})`
      : mapped === CARD_ERROR_CODE.REMOVED
        ? `${operation}${where} failed: the card was removed (${detail})`
        : mapped === CARD_ERROR_CODE.NOT_PRESENT
          ? `${operation}${where} failed: no card in the reader (${detail})`
          : `${operation}${where} failed: ${detail}`;
  return new CardError(mapped, message, {
    cause: error,
    meta: { operation, reader: reader ?? null, pcscCode: code !== undefined ? pcscCodeHex(code) : null },
  });
}
