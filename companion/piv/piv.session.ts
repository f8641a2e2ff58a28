/**
 * PIV card-application session (NIST SP 800-73-4 Part 2) over a
 * {@link CardConnection}: no driver knowledge here (STYLE.md 1).
 */
import type { Logger } from '../../common/logger';
import { transceive, type CommandApdu } from './apdu';
import type { CardConnection } from './card-connection';
import { parseCertificateObject, type CardCertificate } from './piv-certificate';
import {
  AID,
  CERTIFICATE_SLOT,
  CERTIFICATE_SLOTS,
  type CertificateSlot,
  GET_DATA_P1P2,
  GUID_LENGTH,
  INS,
  KEY_REF,
  PIN_BLOCK_LENGTH,
  PIN_MAX_LENGTH,
  PIN_MIN_LENGTH,
  PIN_PAD_BYTE,
  SELECT_P1_BY_AID,
  SW,
  TAG,
  VERIFY_P1,
} from './piv.constants';
import {
  ApduError,
  ApplicationNotFoundError,
  CARD_ERROR_CODE,
  CardError,
  CertificateError,
  InvalidPinError,
  InvalidPukError,
  PinBlockedError,
  PukBlockedError,
} from './piv.errors';
import { encodeTlv, findTlv, TlvError } from './tlv';

/** What an empty VERIFY says about the PIN (SP 800-73-4 Part 2, 3.2.1). */
export interface PinStatus {
  /** The PIN is verified in the current card session (SW 9000). */
  verified: boolean;
  /**
   * PIN retry counter: tries left before the PIN blocks; 0 = blocked.
   * NOTE: while the PIN is verified the card does not report the counter; it is
   * then a lower bound (at least 1): the largest counter this session has read, or 1.
   */
  retries: number;
}

/**
 * What reading one certificate slot gave: a returned value for every answer the card can give
 * (STYLE.md 10). `absent`: the card has no such object (GET DATA answered 6A82). `unusable`: the
 * object is there but malformed ({@link CertificateError}), or GET DATA answered another status word
 * ({@link ApduError}); either way the slot has no usable certificate.
 */
export type CertificateReading =
  | { slot: CertificateSlot; status: 'present'; certificate: CardCertificate }
  | { slot: CertificateSlot; status: 'absent' }
  | { slot: CertificateSlot; status: 'unusable'; error: CardError };

const PIN_PATTERN = /^[0-9]+$/;
const PUK_PATTERN = /^[\x21-\x7e]+$/;

type RefKind = 'PIN' | 'PUK';

/**
 * Pad a PIN or PUK to the 8-byte reference-data block (SP 800-73-4 Part 2, 2.4.3).
 *
 * @param value - PIN (6-8 ASCII digits) or PUK (6-8 printable ASCII characters)
 * @param kind - which rule to apply
 * @returns 8 bytes: the ASCII characters then 0xFF padding
 * @throws CardError `CARD.BAD_REFERENCE_DATA_FORMAT` (the message names the rule, never the value)
 */
export function padReferenceData(value: string, kind: RefKind): Buffer {
  const ok = value.length >= PIN_MIN_LENGTH && value.length <= PIN_MAX_LENGTH && (kind === 'PIN' ? PIN_PATTERN : PUK_PATTERN).test(value);
  if (!ok) {
    const rule = kind === 'PIN' ? `${PIN_MIN_LENGTH}-${PIN_MAX_LENGTH} digits` : `${PIN_MIN_LENGTH}-${PIN_MAX_LENGTH} printable ASCII characters`;
    throw new CardError(CARD_ERROR_CODE.BAD_REFERENCE_DATA_FORMAT, `${kind} must be ${rule} (NIST SP 800-73-4 Part 2, 2.4.3); nothing was sent to the card`, {
      meta: { kind, length: value.length },
    });
  }
  const block = Buffer.alloc(PIN_BLOCK_LENGTH, PIN_PAD_BYTE);
  block.write(value, 'latin1');
  return block;
}

/** 63Cx -> x, else undefined. */
function retriesFromSw(sw: number): number | undefined {
  return (sw & 0xfff0) === SW.VERIFY_FAILED ? sw & 0x0f : undefined;
}

/** A PIV card application, selected on an open connection. */
export class PivSession {
  /** The connection this session speaks over; the caller owns it and closes it. */
  readonly connection: CardConnection;
  private readonly logger: Logger | undefined;
  /** Largest PIN retry counter seen in this session (for {@link PinStatus.retries} when verified). */
  private pinRetriesSeen = 0;

  private constructor(connection: CardConnection, logger: Logger | undefined) {
    this.connection = connection;
    this.logger = logger;
  }

  /**
   * SELECT the PIV card application (SP 800-73-4 Part 2, 3.1.1) and return a session on it.
   *
   * @param conn - open connection to the card
   * @param logger - optional; APDUs are logged at trace level with PIN/PUK data redacted
   * @returns a session whose commands go to the PIV application
   * @throws ApplicationNotFoundError when SELECT answers anything but 9000 (e.g. 6A82: not a PIV card)
   * @throws CardError from the transport (`CARD.REMOVED`, `CARD.RESPONSE_TOO_SHORT`, ...)
   */
  static async open(conn: CardConnection, logger?: Logger): Promise<PivSession> {
    const session = new PivSession(conn, logger);
    try {
      await session.send({ ins: INS.SELECT, p1: SELECT_P1_BY_AID, p2: 0x00, data: AID.PIV, le: 256 }, 'SELECT');
    } catch (error) {
      if (error instanceof ApduError) throw new ApplicationNotFoundError(error.sw);
      throw error;
    }
    logger?.debug({ reader: conn.reader }, 'PIV application selected');
    return session;
  }

  /**
   * Read the card identifier: the GUID of the CHUID (GET DATA `5FC102`; SP 800-73-4 Part 1, 3.1.2; Part 2, 3.1.2).
   *
   * @returns 32 lower-case hex digits (16 bytes)
   * @throws ApduError when GET DATA fails (6A82: no CHUID on the card)
   * @throws CardError `CARD.MALFORMED_RESPONSE` when the CHUID has no 16-byte GUID, or it is all zeros
   */
  async readCardId(): Promise<string> {
    const tagList = encodeTlv(TAG.TAG_LIST, [(TAG.CHUID >> 16) & 0xff, (TAG.CHUID >> 8) & 0xff, TAG.CHUID & 0xff]);
    const data = await this.send({ ins: INS.GET_DATA, p1: GET_DATA_P1P2.P1, p2: GET_DATA_P1P2.P2, data: tagList, le: 256 }, 'GET_DATA');
    let guid: Buffer | undefined;
    try {
      const chuid = findTlv(data, TAG.DATA);
      if (chuid === undefined) throw new TlvError('no data object (tag 53) in the response');
      guid = findTlv(chuid, TAG.GUID);
    } catch (error) {
      if (!(error instanceof TlvError)) throw error;
      throw new CardError(CARD_ERROR_CODE.MALFORMED_RESPONSE, `CHUID could not be decoded: ${error.message}`, { cause: error });
    }
    if (guid === undefined || guid.length !== GUID_LENGTH) {
      throw new CardError(CARD_ERROR_CODE.MALFORMED_RESPONSE, `CHUID has no ${GUID_LENGTH}-byte GUID (tag 34)`, { meta: { guidLength: guid?.length ?? null } });
    }
    if (guid.every((b) => b === 0)) {
      throw new CardError(CARD_ERROR_CODE.MALFORMED_RESPONSE, 'CHUID GUID is all zeros: the card has no identifier assigned');
    }
    return guid.toString('hex');
  }

  /**
   * Read one certificate: GET DATA of the slot's object (`00 CB 3F FF 05 5C 03 <tag> 00`; SP 800-73-4
   * Part 2, 3.1.2; object tags in Part 1, Table 3) and decode it (Part 1, Appendix A, Tables 10 and 15).
   *
   * @param slot - `9A` (PIV Authentication, object `5FC105`) or `9E` (Card Authentication, object `5FC101`)
   * @returns the certificate's slot, validity (ISO 8601 UTC), subject and fingerprint; null when the card
   *   has no such object (6A82)
   * @throws CertificateError (`CARD.MALFORMED_CERTIFICATE`) when the object is there but is not a usable certificate
   * @throws ApduError when GET DATA answers any other status word than 9000 or 6A82
   * @throws CardError from the transport (`CARD.REMOVED`, ...)
   */
  async readCertificate(slot: CertificateSlot): Promise<CardCertificate | null> {
    const tag = CERTIFICATE_SLOT[slot].tag;
    const tagList = encodeTlv(TAG.TAG_LIST, [(tag >> 16) & 0xff, (tag >> 8) & 0xff, tag & 0xff]);
    let data: Buffer;
    try {
      data = await this.send({ ins: INS.GET_DATA, p1: GET_DATA_P1P2.P1, p2: GET_DATA_P1P2.P2, data: tagList, le: 256 }, 'GET_DATA');
    } catch (error) {
      if (error instanceof ApduError && error.sw === SW.FILE_NOT_FOUND) return null;
      throw error;
    }
    return parseCertificateObject(slot, data);
  }

  /**
   * Read the PIV Authentication (9A) and Card Authentication (9E) certificates, one slot after the other.
   *
   * @returns one reading per slot, in the order 9A, 9E: `present` with the certificate, `absent` (6A82),
   *   or `unusable` with the typed error (malformed object, or another status word); never throws for those
   * @throws CardError from the transport (`CARD.REMOVED`, `CARD.RESPONSE_TOO_SHORT`, ...): the card went away
   */
  async readCertificates(): Promise<CertificateReading[]> {
    const readings: CertificateReading[] = [];
    for (const slot of CERTIFICATE_SLOTS) {
      try {
        const certificate = await this.readCertificate(slot);
        readings.push(certificate === null ? { slot, status: 'absent' } : { slot, status: 'present', certificate });
      } catch (error) {
        const unusable =
          error instanceof CertificateError || error instanceof ApduError || (error instanceof CardError && error.code === CARD_ERROR_CODE.MALFORMED_RESPONSE);
        if (!unusable) throw error;
        this.logger?.debug({ slot, errorCode: error.code }, 'certificate on the card is not usable');
        readings.push({ slot, status: 'unusable', error });
      }
    }
    return readings;
  }

  /**
   * Read the PIN state with an empty VERIFY (SP 800-73-4 Part 2, 3.2.1); tries nothing, changes nothing.
   *
   * @returns `{ verified, retries }`: 9000 -> verified; 63Cx -> x tries left; 6983 -> retries 0 (blocked)
   * @throws ApduError for any other SW
   */
  async readPinStatus(): Promise<PinStatus> {
    try {
      await this.send({ ins: INS.VERIFY, p1: VERIFY_P1.VERIFY, p2: KEY_REF.PIN }, 'VERIFY');
      return { verified: true, retries: Math.max(this.pinRetriesSeen, 1) };
    } catch (error) {
      if (!(error instanceof ApduError)) throw error;
      if (error.sw === SW.AUTH_METHOD_BLOCKED) return { verified: false, retries: 0 };
      const retries = retriesFromSw(error.sw);
      if (retries === undefined) throw error;
      this.pinRetriesSeen = Math.max(this.pinRetriesSeen, retries);
      return { verified: false, retries };
    }
  }

  /**
   * VERIFY the PIN (SP 800-73-4 Part 2, 3.2.1); on success the PIN is verified until the card is reset.
   *
   * @param pin - 6-8 ASCII digits; sent padded to 8 bytes with 0xFF
   * @throws CardError `CARD.BAD_REFERENCE_DATA_FORMAT` before sending when the PIN breaks the format
   * @throws InvalidPinError (63Cx) with `attemptsLeft` = x; x = 0 means the PIN is now blocked
   * @throws PinBlockedError (6983) when the PIN was already blocked
   */
  async verifyPin(pin: string): Promise<void> {
    const block = padReferenceData(pin, 'PIN');
    await this.sendSecret({ ins: INS.VERIFY, p1: VERIFY_P1.VERIFY, p2: KEY_REF.PIN, data: block }, 'VERIFY', 'PIN');
  }

  /**
   * CHANGE REFERENCE DATA for the PIN (SP 800-73-4 Part 2, 3.2.2).
   *
   * @param oldPin - current PIN, 6-8 digits
   * @param newPin - new PIN, 6-8 digits (the passcode policy is checked by the caller)
   * @throws CardError `CARD.BAD_REFERENCE_DATA_FORMAT` before sending
   * @throws InvalidPinError (63Cx) when `oldPin` is wrong; PinBlockedError (6983)
   * @throws ApduError for other SWs (e.g. 6A80 when the card refuses the new PIN)
   */
  async changePin(oldPin: string, newPin: string): Promise<void> {
    const data = Buffer.concat([padReferenceData(oldPin, 'PIN'), padReferenceData(newPin, 'PIN')]);
    await this.sendSecret({ ins: INS.CHANGE_REFERENCE_DATA, p1: 0x00, p2: KEY_REF.PIN, data }, 'CHANGE_REFERENCE_DATA', 'PIN');
  }

  /**
   * RESET RETRY COUNTER (SP 800-73-4 Part 2, 3.2.3): with the PUK, set a new PIN and reset the PIN retry counter.
   *
   * @param puk - the card's PUK, 6-8 printable ASCII characters (this service issues 8 digits)
   * @param newPin - new PIN, 6-8 digits
   * @throws CardError `CARD.BAD_REFERENCE_DATA_FORMAT` before sending
   * @throws InvalidPukError (63Cx) when the PUK is wrong (it burns a PUK try); PukBlockedError (6983)
   * @throws ApduError for other SWs (e.g. 6A80 when the card refuses the new PIN)
   */
  async resetRetryCounter(puk: string, newPin: string): Promise<void> {
    const data = Buffer.concat([padReferenceData(puk, 'PUK'), padReferenceData(newPin, 'PIN')]);
    await this.sendSecret({ ins: INS.RESET_RETRY_COUNTER, p1: 0x00, p2: KEY_REF.PIN, data }, 'RESET_RETRY_COUNTER', 'PUK');
  }

  /**
   * CHANGE REFERENCE DATA for the PUK (SP 800-73-4 Part 2, 3.2.2).
   *
   * @param oldPuk - current PUK
   * @param newPuk - new PUK, 6-8 printable ASCII characters
   * @throws CardError `CARD.BAD_REFERENCE_DATA_FORMAT` before sending
   * @throws InvalidPukError (63Cx) when `oldPuk` is wrong; PukBlockedError (6983)
   */
  async changePuk(oldPuk: string, newPuk: string): Promise<void> {
    const data = Buffer.concat([padReferenceData(oldPuk, 'PUK'), padReferenceData(newPuk, 'PUK')]);
    await this.sendSecret({ ins: INS.CHANGE_REFERENCE_DATA, p1: 0x00, p2: KEY_REF.PUK, data }, 'CHANGE_REFERENCE_DATA', 'PUK');
  }

  private send(command: CommandApdu, name: string): Promise<Buffer> {
    return transceive(this.connection, command, { name, ...(this.logger ? { logger: this.logger } : {}) });
  }

  /** Send a command whose data is a PIN/PUK block; map 63Cx / 6983 to the typed errors of `kind`. */
  private async sendSecret(command: CommandApdu, name: string, kind: RefKind): Promise<void> {
    try {
      await this.send(command, name);
    } catch (error) {
      if (!(error instanceof ApduError)) throw error;
      const retries = retriesFromSw(error.sw);
      if (retries !== undefined) throw kind === 'PIN' ? new InvalidPinError(retries, name) : new InvalidPukError(retries, name);
      if (error.sw === SW.AUTH_METHOD_BLOCKED) throw kind === 'PIN' ? new PinBlockedError(name) : new PukBlockedError(name);
      throw error;
    } finally {
      command.data?.fill(0);
    }
  }
}
