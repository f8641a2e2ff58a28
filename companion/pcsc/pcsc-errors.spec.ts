import { describe, expect, it } from 'vitest';
import { CARD_ERROR_CODE, CardError } from '../piv/piv.errors';
import { pcscCode, toCardError } from './pcsc-errors';

// Messages exactly as pcsclite 1.0.1 builds them (error_msg: "<call> error: <pcsc_stringify_error>(0x...)").
describe('PC/SC error mapping', () => {
  it.each([
    ['SCardTransmit error: Card was removed.(0x80100069)', CARD_ERROR_CODE.REMOVED, '0x80100069'],
    ['SCardTransmit error: Transaction failed.(0x80100016)', CARD_ERROR_CODE.REMOVED, '0x80100016'],
    ['SCardConnect error: No smart card inserted.(0x8010000c)', CARD_ERROR_CODE.NOT_PRESENT, '0x8010000c'],
    ['SCardConnect error: Card is unresponsive.(0x80100066)', CARD_ERROR_CODE.UNRESPONSIVE, '0x80100066'],
    ['SCardConnect error: Sharing violation.(0x8010000b)', CARD_ERROR_CODE.IN_USE, '0x8010000b'],
    ['SCardGetStatusChange error: RPC transport error.(0x80100013)', CARD_ERROR_CODE.READER_UNAVAILABLE, '0x80100013'],
    ['SCardEstablishContext error: Service not available.(0x8010001d)', CARD_ERROR_CODE.READER_UNAVAILABLE, '0x8010001d'],
    ['SCardConnect error: Unknown reader specified.(0x80100009)', CARD_ERROR_CODE.READER_UNAVAILABLE, '0x80100009'],
    ['SCardTransmit error: Card was reset.(0x80100068)', CARD_ERROR_CODE.TRANSMIT_FAILED, '0x80100068'],
    ['Card Reader not connected', CARD_ERROR_CODE.TRANSMIT_FAILED, null],
  ])('%s -> %s', (message, code, hex) => {
    const error = toCardError(new Error(message), 'transmit', 'Virtual PCD 00 00');
    expect(error).toBeInstanceOf(CardError);
    expect(error.code).toBe(code);
    expect(error.meta).toMatchObject({ operation: 'transmit', reader: 'Virtual PCD 00 00', pcscCode: hex });
    expect(error.message).toContain('Virtual PCD 00 00');
  });

  it('names pcscd in the message when the service is gone', () => {
    expect(toCardError(new Error('SCardEstablishContext error: Service not available.(0x8010001d)'), 'establish PC/SC context').message).toMatch(/pcscd\) is not running/);
  });

  it('reads the code as an unsigned number and passes CardErrors through', () => {
    expect(pcscCode(new Error('x (0x80100069)'))).toBe(0x80100069);
    expect(pcscCode('no code here')).toBeUndefined();
    const original = new CardError(CARD_ERROR_CODE.REMOVED, 'gone');
    expect(toCardError(original, 'transmit')).toBe(original);
  });
});
