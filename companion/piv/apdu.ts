/**
 * Command and response APDUs (ISO/IEC 7816-4 5.1) and the one transmit path
 * of the card layer: GET RESPONSE chaining (61xx), Le correction (6Cxx), the
 * "at least SW1 SW2" check, trace logging with PIN/PUK data redacted
 * (STYLE.md 14), and {@link ApduError} for any SW other than 9000 (STYLE.md 11).
 */
import type { Logger } from '../../common/logger';
import type { CardConnection } from './card-connection';
import { CLA, INS, SECRET_BEARING_INS, SW, insName, swHex, swName } from './piv.constants';
import { ApduError, CARD_ERROR_CODE, CardError, ResponseTooShortError } from './piv.errors';

/** A short command APDU (ISO/IEC 7816-4 5.1, cases 1-4). */
export interface CommandApdu {
  /** Class byte; defaults to {@link CLA} `00`. */
  cla?: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data, 1-255 bytes; absent or empty for cases 1 and 2. */
  data?: Buffer;
  /** Expected response length Ne, 1-256 (256 is encoded as Le `00`); absent for cases 1 and 3. */
  le?: number;
}

/** A response APDU split into data and status word. */
export interface ResponseApdu {
  data: Buffer;
  /** SW1SW2 as a 16-bit number. */
  sw: number;
}

/**
 * Encode a short command APDU.
 *
 * @param command - header, optional data (1-255 bytes) and optional Ne (1-256)
 * @returns `CLA INS P1 P2 [Lc data] [Le]`
 * @throws RangeError when a header byte is not 0-255, data is longer than 255 bytes or Ne is not 1-256
 */
export function encodeCommand(command: CommandApdu): Buffer {
  const cla = command.cla ?? CLA;
  for (const [name, value] of [['CLA', cla], ['INS', command.ins], ['P1', command.p1], ['P2', command.p2]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError(`${name} must be a byte (0-255), got ${value}`);
  }
  const parts: Buffer[] = [Buffer.from([cla, command.ins, command.p1, command.p2])];
  const data = command.data;
  if (data !== undefined && data.length > 0) {
    if (data.length > 255) throw new RangeError(`command data must be at most 255 bytes (short APDU), got ${data.length}`);
    parts.push(Buffer.from([data.length]), data);
  }
  if (command.le !== undefined) {
    if (!Number.isInteger(command.le) || command.le < 1 || command.le > 256) throw new RangeError(`Ne must be 1-256, got ${command.le}`);
    parts.push(Buffer.from([command.le & 0xff]));
  }
  return Buffer.concat(parts);
}

/**
 * Split a response APDU into data and SW.
 *
 * @param response - raw response bytes from the card
 * @param command - command name, for the error
 * @throws ResponseTooShortError when fewer than 2 bytes arrived
 */
export function parseResponse(response: Buffer, command: string): ResponseApdu {
  if (response.length < 2) throw new ResponseTooShortError(command, response.length);
  const n = response.length;
  return { data: response.subarray(0, n - 2), sw: (response[n - 2]! << 8) | response[n - 1]! };
}

/**
 * Hex for a trace log line with the data of VERIFY / CHANGE REFERENCE DATA /
 * RESET RETRY COUNTER replaced by `[redacted N bytes]` (STYLE.md 14).
 *
 * @param apdu - raw command APDU
 * @returns upper-case hex, bytes separated by spaces
 */
export function redactedCommandHex(apdu: Buffer): string {
  const ins = apdu[1];
  if (apdu.length > 5 && ins !== undefined && SECRET_BEARING_INS.has(ins)) {
    const lc = apdu[4]!;
    const rest = apdu.length - 5 - lc;
    return `${toHex(apdu.subarray(0, 5))} [redacted ${lc} bytes]${rest > 0 ? ` ${toHex(apdu.subarray(5 + lc))}` : ''}`;
  }
  return toHex(apdu);
}

/** Upper-case hex with spaces between bytes, for logs. */
export function toHex(bytes: Buffer): string {
  return bytes.toString('hex').toUpperCase().replace(/(..)(?=.)/g, '$1 ');
}

/** Longest response this layer reassembles from GET RESPONSE chains, in bytes (a PIV data object is at most a few KB). */
export const MAX_CHAINED_RESPONSE_BYTES = 65_536;

/**
 * Send a command and return its full response data, following 61xx chains
 * with GET RESPONSE and resending once with the corrected Le on 6Cxx.
 *
 * NOTE: this is the only place in the card layer that calls
 * `CardConnection.transmit`, so every response gets the SW-length check and
 * every command goes through the redacting trace log.
 *
 * @param connection - open card connection
 * @param command - the command APDU
 * @param options.name - command name for logs and errors; defaults to the INS name
 * @param options.logger - trace-level APDU logging (data redacted for PIN/PUK commands)
 * @returns the response data (chained parts concatenated) when the final SW is 9000
 * @throws ApduError for any final SW other than 9000 (carries the SW and the command name)
 * @throws ResponseTooShortError when a response has fewer than 2 bytes
 * @throws CardError `CARD.MALFORMED_RESPONSE` when a chain grows past {@link MAX_CHAINED_RESPONSE_BYTES}
 * @throws CardError from the connection (`CARD.REMOVED`, `CARD.READER_UNAVAILABLE`, `CARD.TRANSMIT_FAILED`)
 */
export async function transceive(connection: CardConnection, command: CommandApdu, options: { name?: string; logger?: Logger } = {}): Promise<Buffer> {
  const name = options.name ?? insName(command.ins);
  const logger = options.logger;
  const send = async (apdu: Buffer, what: string): Promise<ResponseApdu> => {
    if (logger?.isLevelEnabled('trace')) logger.trace({ command: what, apdu: redactedCommandHex(apdu) }, 'card command');
    const raw = await connection.transmit(apdu);
    const response = parseResponse(raw, what);
    if (logger?.isLevelEnabled('trace')) {
      logger.trace({ command: what, sw: swHex(response.sw), swName: swName(response.sw), dataLength: response.data.length }, 'card response');
    }
    return response;
  };

  let response = await send(encodeCommand(command), name);
  if ((response.sw & 0xff00) === SW.WRONG_LE) {
    // 6Cxx: the card wants Le = xx; resend the same command once (ISO/IEC 7816-3 T=0 case 2).
    const le = response.sw & 0xff || 256;
    response = await send(encodeCommand({ ...command, le }), name);
  }
  const parts: Buffer[] = [response.data];
  let total = response.data.length;
  while ((response.sw & 0xff00) === SW.BYTES_AVAILABLE) {
    const le = response.sw & 0xff || 256;
    response = await send(encodeCommand({ cla: command.cla ?? CLA, ins: INS.GET_RESPONSE, p1: 0, p2: 0, le }), `${name}/GET_RESPONSE`);
    parts.push(response.data);
    total += response.data.length;
    if (total > MAX_CHAINED_RESPONSE_BYTES) {
      throw new CardError(CARD_ERROR_CODE.MALFORMED_RESPONSE, `${name}: chained response longer than ${MAX_CHAINED_RESPONSE_BYTES} bytes`, { meta: { command: name } });
    }
  }
  const data = Buffer.concat(parts);
  if (response.sw !== SW.SUCCESS) throw new ApduError(name, response.sw, data);
  return data;
}
