/**
 * The project's own virtual PIV card: processes command APDUs as a PIV card
 * application does (NIST SP 800-73-4 Part 2), with a PIN and a PUK and their
 * retry counters, and X.509 certificates in the PIV Authentication (9A) and
 * Card Authentication (9E) objects. Used in-process by the demo and behind
 * pcscd's vpcd reader in tests (see `vpcd-client.ts`).
 *
 * Status words follow a real card (issue #14): before SELECT the card's own
 * instructions answer 6985 (conditions of use not satisfied: no application
 * selected) and an unknown INS 6D00; SELECT of another AID answers 6A82 for
 * P2 00 and 0C alike and leaves the PIV application selected and the PIN
 * verified; command chaining (CLA 10) is supported for GET DATA, VERIFY, CHANGE
 * REFERENCE DATA and RESET RETRY COUNTER, and answered 6884 for SELECT and GET RESPONSE.
 *
 * WARNING: a test and demo double. It holds the PIN and PUK in memory and
 * implements only what this project uses: SELECT, GET DATA (CHUID and the
 * certificate objects), VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER and
 * GET RESPONSE. It has no private keys: the certificates are only stored.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  AID,
  CERTIFICATE_SLOT,
  CLA,
  CLA_CHAINING,
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
} from '../piv/piv.constants';
import { encodeTlv } from '../piv/tlv';

/** A hook called with the INS byte and the raw command APDU. */
export type CardCommandHook = (ins: number, apdu: Buffer) => void;
/** A hook called after the card has acted on a command, with the response it is about to send. */
export type CardResponseHook = (ins: number, apdu: Buffer, response: Buffer) => void;

/** How to personalise a {@link VirtualPivCard}. */
export interface VirtualPivCardOptions {
  /** Card identifier: the 16-byte CHUID GUID as 32 hex digits. */
  cardId: string;
  /** Initial PIN, 6-8 digits. */
  pin: string;
  /** Initial PUK, 6-8 printable ASCII characters (this service issues 8 digits). */
  puk: string;
  /** PIN retry counter maximum (1-15); default 3. */
  pinRetries?: number;
  /** PUK retry counter maximum (1-15); default 3. */
  pukRetries?: number;
  /** Start with the PIN blocked (PIN retry counter 0). */
  blocked?: boolean;
  /** FASC-N for the CHUID, 25 bytes; default a fixed test FASC-N. */
  fascn?: Buffer;
  /** Answer-to-reset; default {@link DEFAULT_ATR}. */
  atr?: Buffer;
  /**
   * Certificates by slot, DER bytes, served by GET DATA as `53 { 70 DER, 71 00, FE 00 }`
   * (SP 800-73-4 Part 1, Appendix A, Tables 10 and 15). The bytes are stored as given, not checked,
   * so a test can store a malformed certificate. A slot left out has no object (GET DATA answers 6A82).
   */
  certificates?: Partial<Record<CertificateSlot, Buffer>>;
  /**
   * Most response-data bytes the card returns at once (1-256); longer data is
   * delivered with 61xx and GET RESPONSE (ISO/IEC 7816-4 5.3.4). Default 256.
   */
  responseChunkSize?: number;
  /**
   * Called before the card acts on a command. A test may pull the card here
   * (disconnect the vpcd client or `remove()` the in-process reader): the card
   * then loses power and never acts on the command.
   */
  onCommand?: CardCommandHook;
  /**
   * Called after the card acted on a command, before the response leaves it.
   * Pulling the card here models a command that took effect but whose answer was lost.
   */
  afterCommand?: CardResponseHook;
}

/**
 * ATR of the virtual card: T=0 and T=1 offered, historical bytes
 * `80 5A` + "VIRTUALPIV" (category 80, compact-TLV tag 5 "card issuer's data"), with TCK.
 */
export const DEFAULT_ATR: Buffer = (() => {
  const historical = Buffer.concat([Buffer.from([0x80, 0x5a]), Buffer.from('VIRTUALPIV', 'ascii')]);
  // TS=3B, T0 = TD1 present + K historical bytes, TD1 = TD2 present + T=0, TD2 = T=1.
  const body = Buffer.concat([Buffer.from([0x80 | historical.length, 0x80, 0x01]), historical]);
  let tck = 0;
  for (const b of body) tck ^= b;
  return Buffer.concat([Buffer.from([0x3b]), body, Buffer.from([tck])]);
})();

/** A fixed, well-formed test FASC-N (agency 9999, system 9999, credential 999999), 25 bytes BCD-encoded. */
export const DEFAULT_FASCN = Buffer.from('d4e739da739ced39ce739d836858210842108421c84210c3eb', 'hex');

const DIGITS = /^[0-9]+$/;
const PRINTABLE = /^[\x21-\x7e]+$/;

/** Throws RangeError unless `value` is a valid PIN (digits) or PUK (printable ASCII) of 6-8 characters. */
function requireRefValue(value: string, kind: 'PIN' | 'PUK'): Buffer {
  const ok = value.length >= PIN_MIN_LENGTH && value.length <= PIN_MAX_LENGTH && (kind === 'PIN' ? DIGITS : PRINTABLE).test(value);
  if (!ok) throw new RangeError(`virtual card ${kind} must be 6-8 ${kind === 'PIN' ? 'digits' : 'printable ASCII characters'}`);
  const block = Buffer.alloc(PIN_BLOCK_LENGTH, PIN_PAD_BYTE);
  block.write(value, 'latin1');
  return block;
}

/**
 * Is an 8-byte block well formed (SP 800-73-4 Part 2, 2.4.3): 6-8 value bytes then 0xFF padding;
 * PIN bytes are ASCII digits, PUK bytes anything but 0xFF.
 */
function wellFormedBlock(block: Buffer, kind: 'PIN' | 'PUK'): boolean {
  if (block.length !== PIN_BLOCK_LENGTH) return false;
  let end = block.indexOf(PIN_PAD_BYTE);
  if (end === -1) end = PIN_BLOCK_LENGTH;
  if (end < PIN_MIN_LENGTH) return false;
  for (let i = end; i < PIN_BLOCK_LENGTH; i++) if (block[i] !== PIN_PAD_BYTE) return false;
  if (kind === 'PIN') for (let i = 0; i < end; i++) if (block[i]! < 0x30 || block[i]! > 0x39) return false;
  return true;
}

function retryMax(value: number | undefined, what: string): number {
  const n = value ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 15) throw new RangeError(`${what} must be an integer 1-15`);
  return n;
}

const sw = (value: number): Buffer => Buffer.from([value >> 8, value & 0xff]);

/** Instructions of the PIV application this card implements (SELECT and GET RESPONSE aside). */
const PIV_INS: ReadonlySet<number> = new Set([INS.GET_DATA, INS.VERIFY, INS.CHANGE_REFERENCE_DATA, INS.RESET_RETRY_COUNTER]);

/** Longest command data a chain may collect, in bytes (the largest command this card takes is 16 bytes). */
const MAX_CHAIN_BYTES = 1024;

/** P2 of SELECT (ISO/IEC 7816-4 7.1.1): `00` return the FCI (the APT here), `0C` return no data. */
const SELECT_P2 = { FCI: 0x00, NO_DATA: 0x0c } as const;

/** Encode one certificate object (SP 800-73-4 Part 1, Appendix A, Table 10): certificate, CertInfo 00 (not compressed), empty EDC. */
function certificateObject(der: Buffer): Buffer {
  return encodeTlv(
    TAG.DATA,
    Buffer.concat([encodeTlv(TAG.CERTIFICATE, der), encodeTlv(TAG.CERT_INFO, [0x00]), encodeTlv(TAG.ERROR_DETECTION_CODE, Buffer.alloc(0))]),
  );
}

/** A command chain being collected (ISO/IEC 7816-4 5.1.1.1): the header it started with and its data so far. */
interface Chain {
  ins: number;
  p1: number;
  p2: number;
  data: Buffer;
}

/** One reference (PIN or PUK): value block, counter and its maximum. */
interface Reference {
  block: Buffer;
  retries: number;
  readonly max: number;
}

/** A virtual PIV card. Power state and counters are inspectable; the PIN and PUK are not. */
export class VirtualPivCard {
  /** Answer-to-reset. */
  readonly atr: Buffer;
  /** Card identifier (32 lower-case hex digits). */
  readonly cardId: string;
  /** See {@link VirtualPivCardOptions.onCommand}; may be set or cleared at any time. */
  onCommand: CardCommandHook | undefined;
  /** See {@link VirtualPivCardOptions.afterCommand}; may be set or cleared at any time. */
  afterCommand: CardResponseHook | undefined;

  private readonly options: VirtualPivCardOptions;
  private readonly chuid: Buffer;
  /** Data objects by tag: the CHUID and the certificate objects present. */
  private objects = new Map<number, Buffer>();
  private readonly chunkSize: number;
  private pin!: Reference;
  private puk!: Reference;
  private powered = false;
  private selected = false;
  private pinVerified = false;
  private pending: Buffer | undefined;
  private chain: Chain | undefined;
  private commandCount = 0;

  /**
   * @param options - personalisation; see {@link VirtualPivCardOptions}
   * @throws RangeError when the card id is not 32 hex digits, the PIN/PUK breaks the 6-8 rule,
   *   a retry maximum is not 1-15, the FASC-N is not 25 bytes or a certificate is empty or longer than 4096 bytes
   */
  constructor(options: VirtualPivCardOptions) {
    if (!/^[0-9a-fA-F]{32}$/.test(options.cardId)) throw new RangeError('virtual card cardId must be 32 hex digits (16-byte GUID)');
    const fascn = options.fascn ?? DEFAULT_FASCN;
    if (fascn.length !== 25) throw new RangeError('virtual card FASC-N must be 25 bytes');
    const chunk = options.responseChunkSize ?? 256;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > 256) throw new RangeError('responseChunkSize must be 1-256');
    this.options = { ...options };
    this.cardId = options.cardId.toLowerCase();
    this.atr = options.atr ?? DEFAULT_ATR;
    this.chunkSize = chunk;
    this.onCommand = options.onCommand;
    this.afterCommand = options.afterCommand;
    const guid = Buffer.from(this.cardId, 'hex');
    // CHUID (SP 800-73-4 Part 1, 3.1.2): FASC-N, GUID, expiration date, issuer signature (empty here), EDC.
    this.chuid = encodeTlv(
      TAG.DATA,
      Buffer.concat([
        encodeTlv(TAG.FASC_N, fascn),
        encodeTlv(TAG.GUID, guid.subarray(0, GUID_LENGTH)),
        encodeTlv(TAG.EXPIRATION_DATE, Buffer.from('20351231', 'ascii')),
        encodeTlv(TAG.ISSUER_SIGNATURE, Buffer.alloc(0)),
        encodeTlv(TAG.ERROR_DETECTION_CODE, Buffer.alloc(0)),
      ]),
    );
    this.personalise();
  }

  /**
   * Put PIN, PUK and retry counters back to the values the card was built with and clear the card
   * session (verified state, selection), e.g. between tests. Power is left as it is.
   *
   * @param overrides - personalise differently from now on (e.g. `{ blocked: true }`, or other
   *   `certificates`: the given map replaces the card's); merged into the options
   * @throws RangeError when an override breaks the rules of {@link VirtualPivCardOptions}
   */
  restoreFactoryState(overrides: Partial<Pick<VirtualPivCardOptions, 'pin' | 'puk' | 'pinRetries' | 'pukRetries' | 'blocked' | 'certificates'>> = {}): void {
    const previous = { ...this.options };
    Object.assign(this.options, overrides);
    try {
      this.personalise();
    } catch (error) {
      Object.assign(this.options, previous);
      throw error;
    }
    this.clearVolatileState();
  }

  private personalise(): void {
    const pinMax = retryMax(this.options.pinRetries, 'pinRetries');
    const pukMax = retryMax(this.options.pukRetries, 'pukRetries');
    const pin = requireRefValue(this.options.pin, 'PIN');
    const puk = requireRefValue(this.options.puk, 'PUK');
    const objects = new Map<number, Buffer>([[TAG.CHUID, this.chuid]]);
    for (const [slot, der] of Object.entries(this.options.certificates ?? {}) as Array<[CertificateSlot, Buffer | undefined]>) {
      if (der === undefined) continue;
      if (!(slot in CERTIFICATE_SLOT)) throw new RangeError(`virtual card certificate slot must be 9A or 9E, got ${slot}`);
      if (der.length === 0 || der.length > 4096) throw new RangeError(`virtual card certificate for ${slot} must be 1-4096 bytes`);
      objects.set(CERTIFICATE_SLOT[slot].tag, certificateObject(der));
    }
    this.pin = { block: pin, retries: this.options.blocked ? 0 : pinMax, max: pinMax };
    this.puk = { block: puk, retries: pukMax, max: pukMax };
    this.objects = objects;
  }

  /** PIN retry counter now (0 = blocked). */
  get pinRetries(): number {
    return this.pin.retries;
  }
  /** PIN retry counter maximum. */
  get pinRetriesMax(): number {
    return this.pin.max;
  }
  /** PUK retry counter now (0 = blocked). */
  get pukRetries(): number {
    return this.puk.retries;
  }
  /** PUK retry counter maximum. */
  get pukRetriesMax(): number {
    return this.puk.max;
  }
  /** PIN retry counter is 0. */
  get pinBlocked(): boolean {
    return this.pin.retries === 0;
  }
  /** PUK retry counter is 0. */
  get pukBlocked(): boolean {
    return this.puk.retries === 0;
  }
  /** PIN verified in the current card session (cleared by reset and power-off). */
  get isPinVerified(): boolean {
    return this.pinVerified;
  }
  /** The card has power (inserted and not reset-in-progress). */
  get isPowered(): boolean {
    return this.powered;
  }
  /** The PIV application is selected. */
  get isSelected(): boolean {
    return this.selected;
  }
  /** Number of command APDUs the card has acted on since it was built. */
  get commandsProcessed(): number {
    return this.commandCount;
  }

  /** Power the card on (insertion, vpcd control 0x01). Clears the card session. @returns the ATR */
  powerOn(): Buffer {
    this.powered = true;
    this.clearVolatileState();
    return this.atr;
  }

  /** Power the card off (removal, vpcd control 0x00). Clears the card session. */
  powerOff(): void {
    this.powered = false;
    this.clearVolatileState();
  }

  /** Warm reset (vpcd control 0x02, PC/SC SCARD_RESET_CARD): clears verified state and selection. @returns the ATR */
  reset(): Buffer {
    this.clearVolatileState();
    return this.atr;
  }

  private clearVolatileState(): void {
    this.selected = false;
    this.pinVerified = false;
    this.pending = undefined;
    this.dropChain();
  }

  private dropChain(): void {
    this.chain?.data.fill(0);
    this.chain = undefined;
  }

  /**
   * Process one command APDU.
   *
   * @param apdu - raw command APDU (short lengths)
   * @returns response data + SW1 SW2; `null` when the card has no power, or lost it in
   *   {@link onCommand} / {@link afterCommand} (the answer never leaves the card)
   */
  transmit(apdu: Buffer): Buffer | null {
    if (!this.powered) return null;
    const ins = apdu.length >= 2 ? apdu[1]! : -1;
    this.onCommand?.(ins, apdu);
    if (!this.powered) return null;
    const response = this.process(apdu);
    this.commandCount++;
    this.afterCommand?.(ins, apdu, response);
    if (!this.powered) return null;
    return response;
  }

  private process(apdu: Buffer): Buffer {
    if (apdu.length < 4) return sw(SW.WRONG_LENGTH);
    const [cla, ins, p1, p2] = [apdu[0]!, apdu[1]!, apdu[2]!, apdu[3]!];
    // Body: case 1 (none), 2 (Le), 3 (Lc data), 4 (Lc data Le); extended lengths are not supported.
    let data: Buffer = Buffer.alloc(0);
    let ne: number | undefined;
    if (apdu.length === 5) {
      ne = apdu[4]! || 256;
    } else if (apdu.length > 5) {
      const lc = apdu[4]!;
      if (lc === 0) return sw(SW.WRONG_LENGTH);
      if (apdu.length === 5 + lc) data = apdu.subarray(5, 5 + lc);
      else if (apdu.length === 6 + lc) {
        data = apdu.subarray(5, 5 + lc);
        ne = apdu[5 + lc]! || 256;
      } else return sw(SW.WRONG_LENGTH);
    }
    // Interindustry class, no secure messaging, basic channel; b5 (10) marks "more of the chain follows".
    if ((cla & ~CLA_CHAINING) !== CLA) return sw(SW.CLA_NOT_SUPPORTED);
    const chained = (cla & CLA_CHAINING) !== 0;

    // Command chaining (ISO/IEC 7816-4 5.1.1.1): the parts of a chain share INS P1 P2; anything else
    // while a chain is open abandons it and answers 6883.
    const open = this.chain;
    if (open !== undefined && (ins !== open.ins || p1 !== open.p1 || p2 !== open.p2)) {
      this.dropChain();
      this.pending = undefined;
      return sw(SW.LAST_COMMAND_OF_CHAIN_EXPECTED);
    }
    if (chained) return this.collect(ins, p1, p2, data);
    let whole = data;
    if (open !== undefined) {
      // The last command of the chain: act on all the data collected.
      this.chain = undefined;
      if (open.data.length + data.length > MAX_CHAIN_BYTES) {
        open.data.fill(0);
        return sw(SW.WRONG_LENGTH);
      }
      whole = Buffer.concat([open.data, data]);
      open.data.fill(0);
    }
    try {
      return this.dispatch(ins, p1, p2, whole, ne, whole.length > 0 || apdu.length > 5);
    } finally {
      if (whole !== data) whole.fill(0);
    }
  }

  /** Act on one whole command (a plain command or the last of a chain). */
  private dispatch(ins: number, p1: number, p2: number, data: Buffer, ne: number | undefined, hasBody: boolean): Buffer {
    if (ins === INS.GET_RESPONSE) return this.getResponse(ne);
    this.pending = undefined;

    if (ins === INS.SELECT) return this.select(p1, p2, data, ne);
    if (!this.selected) return this.beforeSelect(ins);
    switch (ins) {
      case INS.GET_DATA:
        return this.getData(p1, p2, data, ne);
      case INS.VERIFY:
        return this.verify(p1, p2, data, hasBody);
      case INS.CHANGE_REFERENCE_DATA:
        return this.changeReferenceData(p1, p2, data);
      case INS.RESET_RETRY_COUNTER:
        return this.resetRetryCounter(p1, p2, data);
      default:
        return sw(SW.INS_NOT_SUPPORTED);
    }
  }

  /**
   * A command with CLA 10 (not the last of a chain): keep its data and answer 9000.
   * SELECT and GET RESPONSE take no chain (6884); an unknown INS answers 6D00; before SELECT the
   * PIV instructions answer as they do unchained (6985).
   */
  private collect(ins: number, p1: number, p2: number, data: Buffer): Buffer {
    this.pending = undefined;
    if (ins === INS.SELECT || ins === INS.GET_RESPONSE) return sw(SW.CHAINING_NOT_SUPPORTED);
    if (!PIV_INS.has(ins)) return sw(SW.INS_NOT_SUPPORTED);
    if (!this.selected) return this.beforeSelect(ins);
    const sofar = this.chain?.data ?? Buffer.alloc(0);
    if (sofar.length + data.length > MAX_CHAIN_BYTES) {
      this.dropChain();
      return sw(SW.WRONG_LENGTH);
    }
    const next = Buffer.concat([sofar, data]);
    sofar.fill(0);
    this.chain = { ins, p1, p2, data: next };
    return sw(SW.SUCCESS);
  }

  /**
   * Answer to a command that needs the PIV application while none is selected (after power-on or reset).
   * A real card answers per instruction, not 6D00: its PIV instructions exist, but their conditions of
   * use are not met (6985, ISO/IEC 7816-4 5.1.3); an instruction it does not know is 6D00.
   */
  private beforeSelect(ins: number): Buffer {
    return sw(PIV_INS.has(ins) ? SW.CONDITIONS_NOT_SATISFIED : SW.INS_NOT_SUPPORTED);
  }

  /** Return data, chaining with 61xx when it is longer than Ne or the chunk size. */
  private respond(data: Buffer, ne: number | undefined): Buffer {
    const limit = Math.min(ne ?? 256, this.chunkSize);
    if (data.length <= limit) return Buffer.concat([data, sw(SW.SUCCESS)]);
    this.pending = data.subarray(limit);
    const left = this.pending.length;
    return Buffer.concat([data.subarray(0, limit), sw(SW.BYTES_AVAILABLE | (left >= 256 ? 0 : left))]);
  }

  private getResponse(ne: number | undefined): Buffer {
    const pending = this.pending;
    this.pending = undefined;
    if (pending === undefined) return sw(SW.CONDITIONS_NOT_SATISFIED);
    return this.respond(pending, ne);
  }

  /**
   * SELECT by AID (SP 800-73-4 Part 2, 3.1.1): full or right-truncated PIV AID -> application property
   * template (P2 00) or no data (P2 0C, ISO/IEC 7816-4 7.1.1). Another AID answers 6A82 and changes
   * nothing: the current application stays selected and the PIN stays verified (ISO/IEC 7816-4 7.1.1:
   * a failed selection leaves the current selection as it was).
   */
  private select(p1: number, p2: number, aid: Buffer, ne: number | undefined): Buffer {
    if (p1 !== SELECT_P1_BY_AID || (p2 !== SELECT_P2.FCI && p2 !== SELECT_P2.NO_DATA)) return sw(SW.INCORRECT_P1P2);
    const matches = aid.length >= AID.NIST_RID.length && aid.length <= AID.PIV.length && AID.PIV.subarray(0, aid.length).equals(aid);
    if (!matches) return sw(SW.FILE_NOT_FOUND);
    this.selected = true;
    if (p2 === SELECT_P2.NO_DATA) return sw(SW.SUCCESS);
    const apt = encodeTlv(
      TAG.APPLICATION_PROPERTY_TEMPLATE,
      Buffer.concat([
        encodeTlv(TAG.APPLICATION_IDENTIFIER, AID.PIV.subarray(AID.NIST_RID.length)),
        encodeTlv(TAG.TAG_ALLOCATION_AUTHORITY, encodeTlv(TAG.APPLICATION_IDENTIFIER, AID.NIST_RID)),
        encodeTlv(TAG.APPLICATION_LABEL, Buffer.from('Smartcard Assist virtual PIV', 'ascii')),
        // Algorithms: 11 = ECC P-256 (SP 800-78-4 Table 6-2), terminated by an empty OID.
        encodeTlv(TAG.CRYPTOGRAPHIC_ALGORITHMS, Buffer.concat([encodeTlv(TAG.ALGORITHM_IDENTIFIER, [0x11]), encodeTlv(TAG.OBJECT_IDENTIFIER, [])])),
      ]),
    );
    return this.respond(apt, ne);
  }

  /** GET DATA (SP 800-73-4 Part 2, 3.1.2): the CHUID and the certificate objects the card was given; any other tag 6A82. */
  private getData(p1: number, p2: number, data: Buffer, ne: number | undefined): Buffer {
    if (p1 !== GET_DATA_P1P2.P1 || p2 !== GET_DATA_P1P2.P2) return sw(SW.INCORRECT_P1P2);
    // Data field: 5C, length, tag of the object (1-3 bytes).
    if (data.length < 3 || data[0] !== TAG.TAG_LIST || data[1] !== data.length - 2 || data[1]! > 3) return sw(SW.INCORRECT_DATA);
    const tag = data.subarray(2).reduce((acc, b) => acc * 256 + b, 0);
    const object = this.objects.get(tag);
    if (object === undefined) return sw(SW.FILE_NOT_FOUND);
    return this.respond(object, ne);
  }

  /** VERIFY (SP 800-73-4 Part 2, 3.2.1) for the PIN. */
  private verify(p1: number, p2: number, data: Buffer, hasBody: boolean): Buffer {
    if (p2 !== KEY_REF.PIN) return sw(SW.REFERENCE_DATA_NOT_FOUND);
    if (p1 === VERIFY_P1.RESET_SECURITY_STATUS) {
      if (hasBody) return sw(SW.INCORRECT_P1P2);
      this.pinVerified = false;
      return sw(SW.SUCCESS);
    }
    if (p1 !== VERIFY_P1.VERIFY) return sw(SW.INCORRECT_P1P2);
    if (data.length === 0) {
      // Status query: no try is used.
      if (this.pin.retries === 0) return sw(SW.AUTH_METHOD_BLOCKED);
      if (this.pinVerified) return sw(SW.SUCCESS);
      return sw(SW.VERIFY_FAILED | this.pin.retries);
    }
    if (data.length !== PIN_BLOCK_LENGTH) return sw(SW.INCORRECT_DATA);
    if (this.pin.retries === 0) return sw(SW.AUTH_METHOD_BLOCKED);
    if (this.check(this.pin, data)) {
      this.pinVerified = true;
      return sw(SW.SUCCESS);
    }
    this.pinVerified = false;
    return sw(SW.VERIFY_FAILED | this.pin.retries);
  }

  /** CHANGE REFERENCE DATA (SP 800-73-4 Part 2, 3.2.2) for the PIN (80) or the PUK (81). */
  private changeReferenceData(p1: number, p2: number, data: Buffer): Buffer {
    if (p1 !== 0x00) return sw(SW.INCORRECT_P1P2);
    const kind = p2 === KEY_REF.PIN ? 'PIN' : p2 === KEY_REF.PUK ? 'PUK' : undefined;
    if (kind === undefined) return sw(SW.REFERENCE_DATA_NOT_FOUND);
    if (data.length !== 2 * PIN_BLOCK_LENGTH) return sw(SW.INCORRECT_DATA);
    const ref = kind === 'PIN' ? this.pin : this.puk;
    if (ref.retries === 0) return sw(SW.AUTH_METHOD_BLOCKED);
    const next = data.subarray(PIN_BLOCK_LENGTH);
    if (!wellFormedBlock(next, kind)) return sw(SW.INCORRECT_DATA);
    if (!this.check(ref, data.subarray(0, PIN_BLOCK_LENGTH))) {
      if (kind === 'PIN') this.pinVerified = false;
      return sw(SW.VERIFY_FAILED | ref.retries);
    }
    ref.block = Buffer.from(next);
    return sw(SW.SUCCESS);
  }

  /** RESET RETRY COUNTER (SP 800-73-4 Part 2, 3.2.3): PUK + new PIN; resets the PIN counter. */
  private resetRetryCounter(p1: number, p2: number, data: Buffer): Buffer {
    if (p1 !== 0x00) return sw(SW.INCORRECT_P1P2);
    if (p2 !== KEY_REF.PIN) return sw(SW.REFERENCE_DATA_NOT_FOUND);
    if (data.length !== 2 * PIN_BLOCK_LENGTH) return sw(SW.INCORRECT_DATA);
    if (this.puk.retries === 0) return sw(SW.AUTH_METHOD_BLOCKED);
    const newPin = data.subarray(PIN_BLOCK_LENGTH);
    if (!wellFormedBlock(newPin, 'PIN')) return sw(SW.INCORRECT_DATA);
    if (!this.check(this.puk, data.subarray(0, PIN_BLOCK_LENGTH))) return sw(SW.VERIFY_FAILED | this.puk.retries);
    this.pin.block = Buffer.from(newPin);
    this.pin.retries = this.pin.max;
    this.pinVerified = false;
    return sw(SW.SUCCESS);
  }

  /** Compare in constant time; a match resets the counter to its maximum, a miss uses one try. */
  private check(ref: Reference, candidate: Buffer): boolean {
    const ok = candidate.length === ref.block.length && timingSafeEqual(candidate, ref.block);
    ref.retries = ok ? ref.max : Math.max(0, ref.retries - 1);
    return ok;
  }
}
