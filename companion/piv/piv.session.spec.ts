import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CARD_ERROR_CODE, CardError, ApduError, ApplicationNotFoundError, InvalidPinError, InvalidPukError, PinBlockedError, PukBlockedError, ResponseTooShortError } from './piv.errors';
import { PivSession, padReferenceData } from './piv.session';
import { ScriptedCardConnection, type ScriptStep } from './scripted-card-connection.fake';

const SELECT = '00 A4 04 00 0B A0000003080000100001 00 00';
const SELECT_OK = '61 11 4F 06 000010000100 79 07 4F 05 A000000308 90 00';
const GET_CHUID = '00 CB 3F FF 05 5C 03 5FC102 00';
const VERIFY_EMPTY = '00 20 00 80';

const GUID = '0123456789abcdeffedcba9876543210';
const FASCN = 'd4e739da739ced39ce739d836858210842108421c84210c3eb';
const CHUID_BODY = `3019${FASCN}3410${GUID}3508${Buffer.from('20301231').toString('hex')}3e00fe00`;
const CHUID = `53${(CHUID_BODY.length / 2).toString(16).padStart(2, '0')}${CHUID_BODY}`;

async function openWith(steps: ScriptStep[]): Promise<{ session: PivSession; conn: ScriptedCardConnection }> {
  const conn = new ScriptedCardConnection([{ expect: SELECT, respond: SELECT_OK }, ...steps]);
  const session = await PivSession.open(conn);
  return { session, conn };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('PivSession.open', () => {
  it('selects the PIV AID A0 00 00 03 08 00 00 10 00 01 00', async () => {
    const { conn } = await openWith([]);
    expect(conn.sent).toEqual([SELECT.replace(/\s/g, '').toLowerCase()]);
    expect(conn.remaining).toBe(0);
  });

  it('turns 6A82 on SELECT into ApplicationNotFoundError', async () => {
    const conn = new ScriptedCardConnection([{ expect: SELECT, respond: '6A82' }]);
    const error = await caught(PivSession.open(conn));
    expect(error).toBeInstanceOf(ApplicationNotFoundError);
    expect((error as ApplicationNotFoundError).code).toBe(CARD_ERROR_CODE.APPLICATION_NOT_FOUND);
    expect((error as ApplicationNotFoundError).sw).toBe(0x6a82);
    expect((error as Error).message).toContain('6A82');
  });

  it('follows 61xx on SELECT with GET RESPONSE', async () => {
    const conn = new ScriptedCardConnection([
      { expect: SELECT, respond: '61 13' },
      { expect: '00 C0 00 00 13', respond: '61 11 4F 06 000010000100 79 07 4F 05 A000000308 90 00' },
    ]);
    await PivSession.open(conn);
    expect(conn.remaining).toBe(0);
  });

  it('passes transport errors through unchanged', async () => {
    const removed = new CardError(CARD_ERROR_CODE.REMOVED, 'card removed');
    const conn = new ScriptedCardConnection([{ expect: SELECT, fail: removed }]);
    expect(await caught(PivSession.open(conn))).toBe(removed);
  });
});

describe('PivSession.readCardId', () => {
  it('reads the GUID (tag 34) of the CHUID as 32 lower-case hex digits', async () => {
    const { session } = await openWith([{ expect: GET_CHUID, respond: `${CHUID}9000` }]);
    expect(await session.readCardId()).toBe(GUID);
  });

  it('reassembles a CHUID delivered in 61xx GET RESPONSE chunks', async () => {
    const bytes = Buffer.from(CHUID, 'hex');
    const a = bytes.subarray(0, 20).toString('hex');
    const b = bytes.subarray(20, 40).toString('hex');
    const c = bytes.subarray(40).toString('hex');
    const { session, conn } = await openWith([
      { expect: GET_CHUID, respond: `${a}6114` },
      { expect: '00 C0 00 00 14', respond: `${b}61${(bytes.length - 40).toString(16).padStart(2, '0')}` },
      { expect: `00 C0 00 00 ${(bytes.length - 40).toString(16).padStart(2, '0')}`, respond: `${c}9000` },
    ]);
    expect(await session.readCardId()).toBe(GUID);
    expect(conn.remaining).toBe(0);
  });

  it('resends with the corrected Le on 6Cxx', async () => {
    const len = (CHUID.length / 2).toString(16).padStart(2, '0');
    const { session, conn } = await openWith([
      { expect: GET_CHUID, respond: `6C${len}` },
      { expect: `00 CB 3F FF 05 5C 03 5FC102 ${len}`, respond: `${CHUID}9000` },
    ]);
    expect(await session.readCardId()).toBe(GUID);
    expect(conn.remaining).toBe(0);
  });

  it('refuses a CHUID without a GUID', async () => {
    const body = `3019${FASCN}3508${Buffer.from('20301231').toString('hex')}`;
    const { session } = await openWith([{ expect: GET_CHUID, respond: `53${(body.length / 2).toString(16)}${body}9000` }]);
    const error = await caught(session.readCardId());
    expect((error as CardError).code).toBe(CARD_ERROR_CODE.MALFORMED_RESPONSE);
  });

  it('refuses a truncated CHUID', async () => {
    const { session } = await openWith([{ expect: GET_CHUID, respond: `533B3019${FASCN.slice(0, 10)}9000` }]);
    expect(((await caught(session.readCardId())) as CardError).code).toBe(CARD_ERROR_CODE.MALFORMED_RESPONSE);
  });

  it('reports 6A82 on GET DATA as an ApduError naming the command', async () => {
    const { session } = await openWith([{ expect: GET_CHUID, respond: '6A82' }]);
    const error = (await caught(session.readCardId())) as ApduError;
    expect(error).toBeInstanceOf(ApduError);
    expect(error.code).toBe(CARD_ERROR_CODE.APDU_FAILED);
    expect(error.command).toBe('GET_DATA');
    expect(error.message).toBe('GET_DATA failed: SW 6A82 (FILE_NOT_FOUND)');
  });
});

describe('response shorter than 2 bytes', () => {
  it.each([[''], ['90']])('throws ResponseTooShortError for response %j', async (respond) => {
    const { session } = await openWith([{ expect: VERIFY_EMPTY, respond }]);
    const error = await caught(session.readPinStatus());
    expect(error).toBeInstanceOf(ResponseTooShortError);
    expect((error as ResponseTooShortError).code).toBe(CARD_ERROR_CODE.RESPONSE_TOO_SHORT);
    expect((error as ResponseTooShortError).length).toBe(respond.length / 2);
  });

  it('checks every part of a GET RESPONSE chain', async () => {
    const { session } = await openWith([
      { expect: GET_CHUID, respond: '53 02 61 10' },
      { expect: '00 C0 00 00 10', respond: '' },
    ]);
    expect(((await caught(session.readCardId())) as CardError).code).toBe(CARD_ERROR_CODE.RESPONSE_TOO_SHORT);
  });
});

describe('PivSession.readPinStatus', () => {
  it.each([
    ['63C3', { verified: false, retries: 3 }],
    ['63C1', { verified: false, retries: 1 }],
    ['63C0', { verified: false, retries: 0 }],
    ['6983', { verified: false, retries: 0 }],
  ])('maps %s', async (sw, status) => {
    const { session, conn } = await openWith([{ expect: VERIFY_EMPTY, respond: sw }]);
    expect(await session.readPinStatus()).toEqual(status);
    expect(conn.sent[1]).toBe('00200080');
  });

  it('reports verified on 9000 with the largest counter seen as a lower bound', async () => {
    const { session } = await openWith([
      { expect: VERIFY_EMPTY, respond: '63C2' },
      { expect: '00 20 00 80 08 313233343536FFFF', respond: '9000' },
      { expect: VERIFY_EMPTY, respond: '9000' },
    ]);
    await session.readPinStatus();
    await session.verifyPin('123456');
    expect(await session.readPinStatus()).toEqual({ verified: true, retries: 2 });
  });

  it('throws ApduError for an unexpected SW', async () => {
    const { session } = await openWith([{ expect: VERIFY_EMPTY, respond: '6A88' }]);
    const error = (await caught(session.readPinStatus())) as ApduError;
    expect(error.sw).toBe(0x6a88);
    expect(error.message).toContain('REFERENCE_DATA_NOT_FOUND');
  });
});

describe('PivSession.verifyPin', () => {
  it.each([
    ['123456', '313233343536FFFF'],
    ['1234567', '31323334353637FF'],
    ['12345678', '3132333435363738'],
  ])('pads %s to 8 bytes with 0xFF', async (pin, block) => {
    const { session, conn } = await openWith([{ expect: `00 20 00 80 08 ${block}`, respond: '9000' }]);
    await session.verifyPin(pin);
    expect(conn.sent[1]).toBe(`0020008008${block}`.toLowerCase());
  });

  it('maps 63C2 to InvalidPinError(2)', async () => {
    const { session } = await openWith([{ expect: '00 20 00 80 08 393939393939FFFF', respond: '63C2' }]);
    const error = (await caught(session.verifyPin('999999'))) as InvalidPinError;
    expect(error).toBeInstanceOf(InvalidPinError);
    expect(error.attemptsLeft).toBe(2);
    expect(error.code).toBe(CARD_ERROR_CODE.PIN_INVALID);
  });

  it('maps 63C0 to InvalidPinError(0): the last try is gone', async () => {
    const { session } = await openWith([{ expect: '00 20 00 80 08 393939393939FFFF', respond: '63C0' }]);
    const error = (await caught(session.verifyPin('999999'))) as InvalidPinError;
    expect(error).toBeInstanceOf(InvalidPinError);
    expect(error.attemptsLeft).toBe(0);
    expect(error.sw).toBe(0x63c0);
    expect(error.toJSON()).toMatchObject({ code: 'CARD.PIN_INVALID', attemptsLeft: 0 });
  });

  it('maps 6983 to PinBlockedError', async () => {
    const { session } = await openWith([{ expect: '00 20 00 80 08 393939393939FFFF', respond: '6983' }]);
    const error = (await caught(session.verifyPin('999999'))) as PinBlockedError;
    expect(error).toBeInstanceOf(PinBlockedError);
    expect(error.code).toBe(CARD_ERROR_CODE.PIN_BLOCKED);
    expect(error.swHex).toBe('6983');
  });

  it.each(['12345', '123456789', '12345a', '', '１２３４５６'])('refuses PIN %j before sending anything, without echoing it', async (pin) => {
    const { session, conn } = await openWith([]);
    const error = (await caught(session.verifyPin(pin))) as CardError;
    expect(error.code).toBe(CARD_ERROR_CODE.BAD_REFERENCE_DATA_FORMAT);
    if (pin.length > 0) expect(error.message).not.toContain(pin);
    expect(JSON.stringify(error.toJSON())).not.toContain(pin || 'x'.repeat(9));
    expect(conn.sent).toHaveLength(1);
  });
});

describe('PivSession PIN and PUK management', () => {
  it('changePin sends CHANGE REFERENCE DATA to key 80 with both padded blocks', async () => {
    const { session, conn } = await openWith([{ expect: '00 24 00 80 10 313233343536FFFF 3837363534333231', respond: '9000' }]);
    await session.changePin('123456', '87654321');
    expect(conn.remaining).toBe(0);
  });

  it('changePin maps a wrong old PIN to InvalidPinError naming the command', async () => {
    const { session } = await openWith([{ expect: '00 24 00 80 10 313233343536FFFF 3837363534333231', respond: '63C1' }]);
    const error = (await caught(session.changePin('123456', '87654321'))) as InvalidPinError;
    expect(error.attemptsLeft).toBe(1);
    expect(error.command).toBe('CHANGE_REFERENCE_DATA');
  });

  it('changePin reports 6A80 as ApduError with the SW in hex and its name', async () => {
    const { session } = await openWith([{ expect: '00 24 00 80 10 313233343536FFFF 3837363534333231', respond: '6A80' }]);
    const error = (await caught(session.changePin('123456', '87654321'))) as ApduError;
    expect(error.constructor).toBe(ApduError);
    expect(error.message).toBe('CHANGE_REFERENCE_DATA failed: SW 6A80 (INCORRECT_DATA)');
    expect(error.meta).toEqual({ sw: '6A80', swName: 'INCORRECT_DATA', command: 'CHANGE_REFERENCE_DATA' });
  });

  it('resetRetryCounter sends PUK block then new PIN block to key 80', async () => {
    const { session, conn } = await openWith([{ expect: '00 2C 00 80 10 3132333435363738 373533313539FFFF', respond: '9000' }]);
    await session.resetRetryCounter('12345678', '753159');
    expect(conn.remaining).toBe(0);
  });

  it('resetRetryCounter maps 63C2 to InvalidPukError(2) and 6983 to PukBlockedError', async () => {
    const cmd = '00 2C 00 80 10 3131313131313131 373533313539FFFF';
    const { session } = await openWith([
      { expect: cmd, respond: '63C2' },
      { expect: cmd, respond: '6983' },
    ]);
    const first = (await caught(session.resetRetryCounter('11111111', '753159'))) as InvalidPukError;
    expect(first).toBeInstanceOf(InvalidPukError);
    expect(first.attemptsLeft).toBe(2);
    expect(first.code).toBe(CARD_ERROR_CODE.PUK_INVALID);
    const second = await caught(session.resetRetryCounter('11111111', '753159'));
    expect(second).toBeInstanceOf(PukBlockedError);
    expect((second as PukBlockedError).code).toBe(CARD_ERROR_CODE.PUK_BLOCKED);
  });

  it('changePuk sends CHANGE REFERENCE DATA to key 81', async () => {
    const { session } = await openWith([
      { expect: '00 24 00 81 10 3132333435363738 3837363534333231', respond: '63C0' },
      { expect: '00 24 00 81 10 3132333435363738 3837363534333231', respond: '6983' },
    ]);
    const first = (await caught(session.changePuk('12345678', '87654321'))) as InvalidPukError;
    expect(first.attemptsLeft).toBe(0);
    expect(await caught(session.changePuk('12345678', '87654321'))).toBeInstanceOf(PukBlockedError);
  });
});

describe('trace logging', () => {
  it('logs APDU hex at trace level with PIN and PUK data redacted', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ name: 'piv-test', level: 'trace', destination });
    const conn = new ScriptedCardConnection([
      { expect: SELECT, respond: SELECT_OK },
      { expect: '00 20 00 80 08 313233343536FFFF', respond: '63C2' },
      { expect: '00 2C 00 80 10 3837363534333231 373533313539FFFF', respond: '9000' },
    ]);
    const session = await PivSession.open(conn, logger);
    await caught(session.verifyPin('123456'));
    await session.resetRetryCounter('87654321', '753159');
    const log = lines.join('');
    expect(log).toContain('00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00 00');
    expect(log).toContain('00 20 00 80 08 [redacted 8 bytes]');
    expect(log).toContain('00 2C 00 80 10 [redacted 16 bytes]');
    expect(log).toContain('"sw":"63C2"');
    for (const secret of ['123456', '87654321', '753159', '31 32 33 34 35 36', '38 37 36 35', '37 35 33 31']) {
      expect(log).not.toContain(secret);
    }
  });
});

describe('padReferenceData', () => {
  it('pads a 6-character PUK with 0xFF', () => {
    expect(padReferenceData('ab12CD', 'PUK').toString('hex')).toBe('616231324344ffff');
  });
  it('refuses a PUK with a space or over 8 characters', () => {
    expect(() => padReferenceData('1234 678', 'PUK')).toThrow(/PUK must be 6-8 printable ASCII/);
    expect(() => padReferenceData('123456789', 'PUK')).toThrow(CardError);
  });
});
