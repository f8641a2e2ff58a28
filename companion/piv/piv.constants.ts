/**
 * PIV card-application constants (NIST SP 800-73-4 Part 2) and ISO/IEC 7816-4
 * status words, as `as const` objects with reverse lookups for display
 * (STYLE.md 8).
 */

/** Class byte of every command this project sends (ISO/IEC 7816-4 5.4.1: interindustry, no SM, last of chain). */
export const CLA = 0x00 as const;

/**
 * Bit of the class byte that marks a command as "not the last of a chain" (ISO/IEC 7816-4 5.1.1.1:
 * b5 of an interindustry CLA); `CLA | CLA_CHAINING` is `10`.
 */
export const CLA_CHAINING = 0x10 as const;

/** Instruction bytes (SP 800-73-4 Part 2, Table 13 "PIV Card Application Card Commands"; ISO/IEC 7816-4 for GET RESPONSE). */
export const INS = {
  SELECT: 0xa4,
  GET_DATA: 0xcb,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  RESET_RETRY_COUNTER: 0x2c,
  GET_RESPONSE: 0xc0,
  PUT_DATA: 0xdb,
  GENERAL_AUTHENTICATE: 0x87,
  GENERATE_ASYMMETRIC_KEY_PAIR: 0x47,
} as const;
export type InsName = keyof typeof INS;

/**
 * Instructions whose command data holds a PIN or PUK: never logged, even at trace
 * level (STYLE.md 14).
 */
export const SECRET_BEARING_INS: ReadonlySet<number> = new Set([INS.VERIFY, INS.CHANGE_REFERENCE_DATA, INS.RESET_RETRY_COUNTER]);

/** Application identifiers (SP 800-73-4 Part 2, 2.2). */
export const AID = {
  /** Full PIV Card Application AID, version 1.0: `A0 00 00 03 08 00 00 10 00 01 00`. */
  PIV: Buffer.from([0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00]),
  /** Right-truncated PIV AID (the NIST RID plus the PIX without version), which a card also accepts on SELECT. */
  PIV_TRUNCATED: Buffer.from([0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00]),
  /** NIST registered application provider identifier (RID). */
  NIST_RID: Buffer.from([0xa0, 0x00, 0x00, 0x03, 0x08]),
} as const;

/** P1 of SELECT: select by DF name / AID (ISO/IEC 7816-4 7.1.1). */
export const SELECT_P1_BY_AID = 0x04 as const;

/** P1 P2 of GET DATA for PIV data objects (SP 800-73-4 Part 2, 3.1.2). */
export const GET_DATA_P1P2 = { P1: 0x3f, P2: 0xff } as const;

/** P1 of VERIFY (SP 800-73-4 Part 2, 3.2.1): `00` verify / query, `FF` reset the security status. */
export const VERIFY_P1 = { VERIFY: 0x00, RESET_SECURITY_STATUS: 0xff } as const;

/** Key references (SP 800-73-4 Part 2, Table 4b). */
export const KEY_REF = {
  /** Global PIN (not supported by this project's card). */
  GLOBAL_PIN: 0x00,
  /** PIV Card Application PIN. */
  PIN: 0x80,
  /** PIN Unblocking Key. */
  PUK: 0x81,
} as const;
type KeyRefName = keyof typeof KEY_REF;

/** Length in bytes of a padded PIN or PUK reference-data block (SP 800-73-4 Part 2, 2.4.3). */
export const PIN_BLOCK_LENGTH = 8 as const;
/** Byte a PIN or PUK shorter than 8 bytes is padded with (SP 800-73-4 Part 2, 2.4.3). */
export const PIN_PAD_BYTE = 0xff as const;
/** Shortest PIN a PIV card accepts, in digits (SP 800-73-4 Part 2, 2.4.3). */
export const PIN_MIN_LENGTH = 6 as const;
/** Longest PIN, in digits. */
export const PIN_MAX_LENGTH = 8 as const;

/** Data-object tags (SP 800-73-4 Part 1, Table 3 and Appendix A; Part 2, Table 3). */
export const TAG = {
  /** Tag list in a GET DATA command. */
  TAG_LIST: 0x5c,
  /** Data-object wrapper in a GET DATA response. */
  DATA: 0x53,
  /** Card Holder Unique Identifier object identifier (BER-TLV tag `5FC102`). */
  CHUID: 0x5fc102,
  /** CHUID: FASC-N (25 bytes). */
  FASC_N: 0x30,
  /** CHUID: Organisational identifier. */
  ORGANIZATIONAL_ID: 0x32,
  /** CHUID: DUNS. */
  DUNS: 0x33,
  /** CHUID: GUID (16 bytes) - this project's card identifier. */
  GUID: 0x34,
  /** CHUID: expiration date, `YYYYMMDD` (8 ASCII bytes). */
  EXPIRATION_DATE: 0x35,
  /** CHUID: cardholder UUID. */
  CARDHOLDER_UUID: 0x36,
  /** CHUID: issuer asymmetric signature. */
  ISSUER_SIGNATURE: 0x3e,
  /** Error detection code (empty). */
  ERROR_DETECTION_CODE: 0xfe,
  /** SELECT response: application property template. */
  APPLICATION_PROPERTY_TEMPLATE: 0x61,
  /** APT: application identifier (PIX). */
  APPLICATION_IDENTIFIER: 0x4f,
  /** APT: coexistent tag allocation authority. */
  TAG_ALLOCATION_AUTHORITY: 0x79,
  /** APT: application label. */
  APPLICATION_LABEL: 0x50,
  /** APT: cryptographic algorithms supported. */
  CRYPTOGRAPHIC_ALGORITHMS: 0xac,
  /** Inside `AC`: one algorithm identifier. */
  ALGORITHM_IDENTIFIER: 0x80,
  /** Inside `AC`: object identifier (terminates the list, empty). */
  OBJECT_IDENTIFIER: 0x06,
  /** X.509 Certificate for PIV Authentication (key 9A) object identifier (BER-TLV tag `5FC105`; SP 800-73-4 Part 1, Table 3). */
  CERT_PIV_AUTHENTICATION: 0x5fc105,
  /** X.509 Certificate for Card Authentication (key 9E) object identifier (BER-TLV tag `5FC101`; SP 800-73-4 Part 1, Table 3). */
  CERT_CARD_AUTHENTICATION: 0x5fc101,
  /** Certificate object: the DER certificate (SP 800-73-4 Part 1, Appendix A, Tables 10 and 15). */
  CERTIFICATE: 0x70,
  /** Certificate object: CertInfo, 1 byte; bit 0 set = the certificate is gzip-compressed (SP 800-73-4 Part 1, 5.6). */
  CERT_INFO: 0x71,
  /** Certificate object: MSCUID (optional, deprecated). */
  MSCUID: 0x72,
} as const;

/** CertInfo bit 0: the certificate in tag 70 is gzip-compressed (SP 800-73-4 Part 1, 5.6). */
export const CERT_INFO_GZIP = 0x01 as const;

/**
 * The certificate slots this project reads, by key reference (SP 800-73-4 Part 1, Table 3;
 * Part 2, Table 4b): PIV Authentication `9A` (object `5FC105`), Card Authentication `9E` (object `5FC101`).
 */
export const CERTIFICATE_SLOT = {
  '9A': { tag: TAG.CERT_PIV_AUTHENTICATION, name: 'PIV Authentication' },
  '9E': { tag: TAG.CERT_CARD_AUTHENTICATION, name: 'Card Authentication' },
} as const;
export type CertificateSlot = keyof typeof CERTIFICATE_SLOT;
/** Every slot of {@link CERTIFICATE_SLOT}, in the order they are read. */
export const CERTIFICATE_SLOTS: readonly CertificateSlot[] = ['9A', '9E'];

/** Length of the CHUID GUID in bytes (SP 800-73-4 Part 1, 3.1.2). */
export const GUID_LENGTH = 16 as const;

/**
 * Status words (ISO/IEC 7816-4 5.1.3; SP 800-73-4 Part 2, Table 6). Ranges whose
 * low nibble or byte carries a number (`61xx`, `6Cxx`, `63Cx`) are listed by their
 * base value; use {@link swName} to name any SW.
 */
export const SW = {
  SUCCESS: 0x9000,
  /** `61xx`: xx more bytes available, fetch with GET RESPONSE. */
  BYTES_AVAILABLE: 0x6100,
  /** `63Cx`: verification failed, x further tries allowed. */
  VERIFY_FAILED: 0x63c0,
  MEMORY_FAILURE: 0x6581,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  /** Authentication method blocked: the PIN or PUK retry counter is 0. */
  AUTH_METHOD_BLOCKED: 0x6983,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  /** Command chaining: the card expected the last command of the chain (ISO/IEC 7816-4 5.1.3). */
  LAST_COMMAND_OF_CHAIN_EXPECTED: 0x6883,
  /** Command chaining is not supported for this command (ISO/IEC 7816-4 5.1.3). */
  CHAINING_NOT_SUPPORTED: 0x6884,
  COMMAND_NOT_ALLOWED: 0x6986,
  INCORRECT_DATA: 0x6a80,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  /** Data object or application not found. */
  FILE_NOT_FOUND: 0x6a82,
  NOT_ENOUGH_MEMORY: 0x6a84,
  INCORRECT_P1P2: 0x6a86,
  /** Key reference not found. */
  REFERENCE_DATA_NOT_FOUND: 0x6a88,
  WRONG_P1P2: 0x6b00,
  /** `6Cxx`: wrong Le, resend with Le = xx. */
  WRONG_LE: 0x6c00,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  NO_PRECISE_DIAGNOSIS: 0x6f00,
} as const;
export type SwName = keyof typeof SW;

const SW_BY_VALUE: ReadonlyMap<number, SwName> = new Map(Object.entries(SW).map(([name, value]) => [value, name as SwName]));

/**
 * Name a status word for display, e.g. `0x6983` -> `AUTH_METHOD_BLOCKED`, `0x63C2` -> `VERIFY_FAILED(2)`.
 *
 * @param sw - status word SW1SW2 as a 16-bit number
 * @returns a name from {@link SW}, with the count for `61xx`, `63Cx` and `6Cxx`; `UNKNOWN` otherwise
 */
export function swName(sw: number): string {
  const exact = SW_BY_VALUE.get(sw);
  if (exact !== undefined) return exact;
  if ((sw & 0xff00) === 0x6100) return `BYTES_AVAILABLE(${sw & 0xff})`;
  if ((sw & 0xff00) === 0x6c00) return `WRONG_LE(${sw & 0xff})`;
  if ((sw & 0xfff0) === 0x63c0) return `VERIFY_FAILED(${sw & 0x0f})`;
  return 'UNKNOWN';
}

/**
 * Format a status word as 4 upper-case hex digits, e.g. `6983`.
 *
 * @param sw - status word as a 16-bit number
 */
export function swHex(sw: number): string {
  return (sw & 0xffff).toString(16).toUpperCase().padStart(4, '0');
}

const INS_BY_VALUE: ReadonlyMap<number, InsName> = new Map(Object.entries(INS).map(([name, value]) => [value, name as InsName]));

/**
 * Name an instruction byte for display, e.g. `0x2C` -> `RESET_RETRY_COUNTER`.
 *
 * @param ins - INS byte
 * @returns the name from {@link INS}, or `INS_xx` (hex) for an instruction this project does not know
 */
export function insName(ins: number): string {
  return INS_BY_VALUE.get(ins) ?? `INS_${ins.toString(16).toUpperCase().padStart(2, '0')}`;
}
