import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCertificateAuthority, derBySlot, type TestCardCertificates } from '../../test/support/test-certs';
import type { ReaderEvent } from '../piv/card-connection';
import { CARD_ERROR_CODE, CardError, CertificateError, InvalidPinError, InvalidPukError, PinBlockedError, PukBlockedError } from '../piv/piv.errors';
import { PivSession } from '../piv/piv.session';
import { decodeTlvs } from '../piv/tlv';
import { InProcessReaderAdapter } from './in-process-reader.adapter';
import { DEFAULT_ATR, VirtualPivCard, type VirtualPivCardOptions } from './virtual-piv-card';

const CARD_ID = '00112233445566778899aabbccddeeff';
const PIN = '246813';
const PUK = '97531864';

function makeCard(extra: Partial<VirtualPivCardOptions> = {}): VirtualPivCard {
  const card = new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, ...extra });
  card.powerOn();
  return card;
}

/** Send hex, get hex (upper case) back. */
function raw(card: VirtualPivCard, hex: string): string {
  const out = card.transmit(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
  if (out === null) throw new Error('card has no power');
  return out.toString('hex').toUpperCase();
}

const SELECT = '00A404000BA000000308000010000100 00';
const pinBlock = (pin: string): string => Buffer.concat([Buffer.from(pin), Buffer.alloc(8 - pin.length, 0xff)]).toString('hex');

async function session(card: VirtualPivCard): Promise<{ reader: InProcessReaderAdapter; piv: PivSession }> {
  const reader = new InProcessReaderAdapter();
  reader.insert(card);
  const conn = await reader.connect(reader.readerName);
  return { reader, piv: await PivSession.open(conn) };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('VirtualPivCard APDU processing', () => {
  it('answers SELECT of the PIV AID with an application property template', () => {
    const card = makeCard();
    const response = Buffer.from(raw(card, SELECT), 'hex');
    expect(response.subarray(-2).toString('hex')).toBe('9000');
    const [apt] = decodeTlvs(response.subarray(0, -2));
    expect(apt?.tag).toBe(0x61);
    const inner = decodeTlvs(apt!.value);
    expect(inner.find((t) => t.tag === 0x4f)?.value.toString('hex')).toBe('000010000100');
    expect(inner.find((t) => t.tag === 0x79)?.value.toString('hex')).toBe('4f05a000000308');
    expect(card.isSelected).toBe(true);
  });

  it('accepts the right-truncated AID and refuses another AID with 6A82', () => {
    const card = makeCard();
    expect(raw(card, '00A4040009A00000030800001000 00').slice(-4)).toBe('9000');
    card.reset();
    expect(raw(card, '00A4040007A0000000031010 00')).toBe('6A82');
    expect(card.isSelected).toBe(false);
  });

  it('refuses an unknown INS (6D00), another CLA (6E00) and bad lengths (6700) once selected', () => {
    const card = makeCard();
    raw(card, SELECT);
    expect(raw(card, '00870000')).toBe('6D00');
    expect(raw(card, '80200080')).toBe('6E00');
    expect(raw(card, '002000')).toBe('6700');
    expect(raw(card, '0020008008313233')).toBe('6700');
  });

  it('serves the CHUID with the configured GUID in tag 34 and refuses other objects with 6A82', () => {
    const card = makeCard();
    raw(card, SELECT);
    const response = Buffer.from(raw(card, '00CB3FFF055C035FC10200'), 'hex');
    expect(response.subarray(-2).toString('hex')).toBe('9000');
    const [chuid] = decodeTlvs(response.subarray(0, -2));
    expect(chuid?.tag).toBe(0x53);
    const fields = decodeTlvs(chuid!.value);
    expect(fields.find((t) => t.tag === 0x34)?.value.toString('hex')).toBe(CARD_ID);
    expect(fields.find((t) => t.tag === 0x30)?.value.length).toBe(25);
    expect(raw(card, '00CB3FFF055C035FC10500')).toBe('6A82');
    expect(raw(card, '00CB3FFE055C035FC10200')).toBe('6A86');
  });

  it('chains a long response with 61xx and GET RESPONSE when the chunk size is small', () => {
    const plain = makeCard();
    raw(plain, SELECT);
    const whole = raw(plain, '00CB3FFF055C035FC10200');
    const card = makeCard({ responseChunkSize: 16 });
    raw(card, SELECT);
    const sws: string[] = [];
    let got = raw(card, '00CB3FFF055C035FC10200');
    let data = '';
    for (;;) {
      sws.push(got.slice(-4));
      data += got.slice(0, -4);
      expect(got.length - 4).toBeLessThanOrEqual(32);
      if (!got.endsWith('9000')) got = raw(card, `00C00000${got.slice(-2)}`);
      else break;
    }
    expect(data + '9000').toBe(whole);
    const total = whole.length / 2 - 2;
    expect(sws[0]).toBe(`61${(total - 16).toString(16).toUpperCase().padStart(2, '0')}`);
    expect(sws.at(-1)).toBe('9000');
    expect(sws.length).toBe(Math.ceil(total / 16));
    expect(raw(card, '00C0000000')).toBe('6985');
  });

  it('VERIFY: empty = status, right PIN verifies, wrong PIN counts down 63C2 63C1 63C0 then 6983', () => {
    const card = makeCard();
    raw(card, SELECT);
    expect(raw(card, '00200080')).toBe('63C3');
    expect(raw(card, `0020008008${pinBlock(PIN)}`)).toBe('9000');
    expect(raw(card, '00200080')).toBe('9000');
    expect(raw(card, `0020008008${pinBlock('111111')}`)).toBe('63C2');
    expect(card.isPinVerified).toBe(false);
    expect(raw(card, `0020008008${pinBlock('111111')}`)).toBe('63C1');
    expect(raw(card, `0020008008${pinBlock('111111')}`)).toBe('63C0');
    expect(card.pinRetries).toBe(0);
    expect(raw(card, `0020008008${pinBlock(PIN)}`)).toBe('6983');
    expect(raw(card, '00200080')).toBe('6983');
    expect(card.pinRetries).toBe(0);
  });

  it('VERIFY P1=FF resets the security status; a card reset and a power cycle clear it too', () => {
    const card = makeCard();
    raw(card, SELECT);
    raw(card, `0020008008${pinBlock(PIN)}`);
    expect(raw(card, '0020FF80')).toBe('9000');
    expect(raw(card, '00200080')).toBe('63C3');
    raw(card, `0020008008${pinBlock(PIN)}`);
    card.reset();
    raw(card, SELECT);
    expect(raw(card, '00200080')).toBe('63C3');
    raw(card, `0020008008${pinBlock(PIN)}`);
    card.powerOff();
    expect(card.transmit(Buffer.from('00200080', 'hex'))).toBeNull();
    card.powerOn();
    raw(card, SELECT);
    expect(raw(card, '00200080')).toBe('63C3');
  });

  it('VERIFY refuses other key references with 6A88 and a non-8-byte block with 6A80 without using a try', () => {
    const card = makeCard();
    raw(card, SELECT);
    expect(raw(card, '00200081')).toBe('6A88');
    expect(raw(card, `0020008006${Buffer.from(PIN).toString('hex')}`)).toBe('6A80');
    expect(card.pinRetries).toBe(3);
  });

  it('starts blocked when asked, with the PUK intact', () => {
    const card = makeCard({ blocked: true, pinRetries: 5, pukRetries: 10 });
    raw(card, SELECT);
    expect(raw(card, '00200080')).toBe('6983');
    expect(card.pinRetriesMax).toBe(5);
    expect(card.pukRetries).toBe(10);
  });
});

describe('VirtualPivCard through PivSession (in-process reader)', () => {
  it('reads the card id and the PIN status', async () => {
    const { piv } = await session(makeCard({ pinRetries: 4 }));
    expect(await piv.readCardId()).toBe(CARD_ID);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 4 });
  });

  it('reads the card id through 61xx chaining', async () => {
    const { piv } = await session(makeCard({ responseChunkSize: 7 }));
    expect(await piv.readCardId()).toBe(CARD_ID);
  });

  it('changes the PIN: the new one verifies, the old one does not', async () => {
    const card = makeCard();
    const { piv } = await session(card);
    const wrong = (await caught(piv.changePin('135790', '112358'))) as InvalidPinError;
    expect(wrong).toBeInstanceOf(InvalidPinError);
    expect(wrong.attemptsLeft).toBe(2);
    await piv.changePin(PIN, '112358');
    expect(card.pinRetries).toBe(3);
    await piv.verifyPin('112358');
    const old = (await caught(piv.verifyPin(PIN))) as InvalidPinError;
    expect(old.attemptsLeft).toBe(2);
  });

  it('refuses a badly formed new PIN with 6A80 and touches no counter', () => {
    const card = makeCard();
    raw(card, SELECT);
    const badNew = Buffer.concat([Buffer.from('12345'), Buffer.alloc(3, 0xff)]).toString('hex');
    expect(raw(card, `0024008010${pinBlock(PIN)}${badNew}`)).toBe('6A80');
    const letters = Buffer.from('1234567a').toString('hex');
    expect(raw(card, `0024008010${pinBlock(PIN)}${letters}`)).toBe('6A80');
    const gap = Buffer.from([0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0xff, 0x37]).toString('hex');
    expect(raw(card, `0024008010${pinBlock(PIN)}${gap}`)).toBe('6A80');
    expect(card.pinRetries).toBe(3);
    expect(raw(card, `0020008008${pinBlock(PIN)}`)).toBe('9000');
  });

  it('unblocks with the PUK: PIN counter back to max, new PIN verifies, old does not', async () => {
    const card = makeCard({ blocked: true });
    const { piv } = await session(card);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 0 });
    expect(await caught(piv.verifyPin(PIN))).toBeInstanceOf(PinBlockedError);
    await piv.resetRetryCounter(PUK, '864200');
    expect(card.pinRetries).toBe(3);
    expect(card.pukRetries).toBe(3);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 3 });
    expect(((await caught(piv.verifyPin(PIN))) as InvalidPinError).attemptsLeft).toBe(2);
    await piv.verifyPin('864200');
    expect(card.pinRetries).toBe(3);
  });

  it('a wrong PUK burns PUK tries down to PukBlockedError; the right PUK then fails too', async () => {
    const card = makeCard({ blocked: true });
    const { piv } = await session(card);
    for (const left of [2, 1, 0]) {
      const error = (await caught(piv.resetRetryCounter('00000000', '864200'))) as InvalidPukError;
      expect(error).toBeInstanceOf(InvalidPukError);
      expect(error.attemptsLeft).toBe(left);
      expect(card.pukRetries).toBe(left);
    }
    expect(await caught(piv.resetRetryCounter(PUK, '864200'))).toBeInstanceOf(PukBlockedError);
    expect(card.pinRetries).toBe(0);
  });

  it('changes the PUK; the old PUK then fails', async () => {
    const card = makeCard({ blocked: true });
    const { piv } = await session(card);
    await piv.changePuk(PUK, '13572468');
    expect(((await caught(piv.resetRetryCounter(PUK, '864200'))) as InvalidPukError).attemptsLeft).toBe(2);
    await piv.resetRetryCounter('13572468', '864200');
    expect(card.pukRetries).toBe(3);
    expect(card.pinRetries).toBe(3);
  });

  it('restoreFactoryState puts PIN, PUK and counters back', async () => {
    const card = makeCard();
    const { piv } = await session(card);
    await piv.changePuk(PUK, '13572468');
    await caught(piv.verifyPin('999999'));
    card.restoreFactoryState();
    expect(card.pinRetries).toBe(3);
    const again = await PivSession.open(piv.connection);
    await again.verifyPin(PIN);
    await again.changePuk(PUK, PUK);
  });
});

describe('VirtualPivCard.restoreFactoryState overrides', () => {
  it('re-personalises (blocked, other retries) and refuses a bad override without changing anything', () => {
    const card = makeCard();
    card.restoreFactoryState({ blocked: true, pukRetries: 5 });
    expect(card.pinRetries).toBe(0);
    expect(card.pukRetries).toBe(5);
    expect(() => card.restoreFactoryState({ pin: '12' })).toThrow(/PIN/);
    expect(card.pinRetries).toBe(0);
    card.restoreFactoryState({ blocked: false });
    expect(card.pinRetries).toBe(3);
    raw(card, SELECT);
    expect(raw(card, `0020008008${pinBlock(PIN)}`)).toBe('9000');
  });
});

describe('InProcessReaderAdapter', () => {
  it('replays current state to a new listener, then reports removal and insertion', () => {
    const reader = new InProcessReaderAdapter();
    const card = makeCard();
    card.powerOff();
    reader.insert(card);
    const events: ReaderEvent[] = [];
    reader.onEvent((e) => events.push(e));
    reader.remove();
    reader.insert(card);
    expect(events.map((e) => e.type)).toEqual(['reader.added', 'card.inserted', 'card.removed', 'card.inserted']);
    expect(events[1]).toMatchObject({ atr: DEFAULT_ATR });
    expect(reader.readers()).toEqual([reader.readerName]);
  });

  it('connect: NOT_PRESENT without a card, READER_UNAVAILABLE for an unknown reader', async () => {
    const reader = new InProcessReaderAdapter();
    expect(((await caught(reader.connect(reader.readerName))) as CardError).code).toBe(CARD_ERROR_CODE.NOT_PRESENT);
    expect(((await caught(reader.connect('No Such Reader'))) as CardError).code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);
  });

  it('card pulled before the card acts (onCommand): CARD.REMOVED and the card is unchanged', async () => {
    const card = makeCard({ blocked: true });
    const { reader, piv } = await session(card);
    card.onCommand = (ins) => {
      if (ins === 0x2c) reader.remove();
    };
    const error = (await caught(piv.resetRetryCounter(PUK, '864200'))) as CardError;
    expect(error.code).toBe(CARD_ERROR_CODE.REMOVED);
    expect(card.pinRetries).toBe(0);
    expect(card.pukRetries).toBe(3);
    card.onCommand = undefined;
    reader.insert(card);
    const again = await PivSession.open(await reader.connect(reader.readerName));
    await again.resetRetryCounter(PUK, '864200');
    await again.verifyPin('864200');
  });

  it('card pulled after the card acted (afterCommand): CARD.REMOVED but the new PIN is set', async () => {
    const card = makeCard({ blocked: true });
    const { reader, piv } = await session(card);
    card.afterCommand = (ins) => {
      if (ins === 0x2c) reader.remove();
    };
    expect(((await caught(piv.resetRetryCounter(PUK, '864200'))) as CardError).code).toBe(CARD_ERROR_CODE.REMOVED);
    card.afterCommand = undefined;
    reader.insert(card);
    const again = await PivSession.open(await reader.connect(reader.readerName));
    expect(await again.readPinStatus()).toEqual({ verified: false, retries: 3 });
    await again.verifyPin('864200');
  });

  it('an old connection fails with CARD.REMOVED after the card was swapped', async () => {
    const card = makeCard();
    const { reader, piv } = await session(card);
    reader.remove();
    reader.insert(card);
    expect(((await caught(piv.readPinStatus())) as CardError).code).toBe(CARD_ERROR_CODE.REMOVED);
  });

  it('close("reset") clears the verified state, close("leave") keeps it', async () => {
    const card = makeCard();
    const reader = new InProcessReaderAdapter();
    reader.insert(card);
    let piv = await PivSession.open(await reader.connect(reader.readerName));
    await piv.verifyPin(PIN);
    await piv.connection.close('leave');
    expect(card.isPinVerified).toBe(true);
    piv = await PivSession.open(await reader.connect(reader.readerName));
    await piv.connection.close('reset');
    expect(card.isPinVerified).toBe(false);
  });
});

/** Send a command and follow 61xx with GET RESPONSE; returns all data + the final SW, hex upper case. */
function rawAll(card: VirtualPivCard, hex: string): string {
  let got = raw(card, hex);
  let data = '';
  while (got.slice(-4, -2) === '61') {
    data += got.slice(0, -4);
    got = raw(card, `00C00000${got.slice(-2)}`);
  }
  return data + got;
}

const CHUID_GET = '00CB3FFF055C035FC10200';
const pinHex = (pin: string): string => pinBlock(pin).toUpperCase();

describe('VirtualPivCard status words like a real PIV card (issue #14)', () => {
  it('before SELECT each PIV instruction answers 6985 (no application selected) and acts on nothing; an unknown INS answers 6D00', () => {
    const card = makeCard();
    expect(raw(card, CHUID_GET)).toBe('6985');
    expect(raw(card, '00200080')).toBe('6985');
    expect(raw(card, `0020008008${pinHex(PIN)}`)).toBe('6985');
    expect(raw(card, `0024008010${pinHex(PIN)}${pinHex('135790')}`)).toBe('6985');
    expect(raw(card, `002C008010${Buffer.from(PUK).toString('hex')}${pinHex('135790')}`)).toBe('6985');
    expect(raw(card, '00870000')).toBe('6D00');
    expect(card.isPinVerified).toBe(false);
    expect(card.pinRetries).toBe(3);
    expect(card.pukRetries).toBe(3);
    // The PIN is still the first one: nothing above acted.
    raw(card, SELECT);
    expect(raw(card, `0020008008${pinHex(PIN)}`)).toBe('9000');
  });

  it('after a reset the PIV application is no longer selected: GET DATA answers 6985 until SELECT', () => {
    const card = makeCard();
    raw(card, SELECT);
    expect(raw(card, CHUID_GET).slice(-4)).toBe('9000');
    card.reset();
    expect(raw(card, CHUID_GET)).toBe('6985');
    raw(card, SELECT);
    expect(raw(card, CHUID_GET).slice(-4)).toBe('9000');
  });

  it('SELECT of another AID answers 6A82 with P2=0C as with P2=00; the PIV AID with P2=0C selects and returns no data; P2=04 answers 6A86', () => {
    const card = makeCard();
    expect(raw(card, '00A4040C07A0000000031010')).toBe('6A82');
    expect(raw(card, '00A4040007A0000000031010 00')).toBe('6A82');
    expect(card.isSelected).toBe(false);
    expect(raw(card, '00A4040C0BA000000308000010000100')).toBe('9000');
    expect(card.isSelected).toBe(true);
    expect(raw(card, CHUID_GET).slice(-4)).toBe('9000');
    expect(raw(card, '00A404040BA000000308000010000100 00')).toBe('6A86');
  });

  it('a failed SELECT of another application leaves PIV selected and the PIN verified', () => {
    const card = makeCard();
    raw(card, SELECT);
    expect(raw(card, `0020008008${pinHex(PIN)}`)).toBe('9000');
    expect(raw(card, '00A4040C07A0000000031010')).toBe('6A82');
    expect(raw(card, '00A4040007A0000000031010 00')).toBe('6A82');
    expect(raw(card, '00200080')).toBe('9000');
    expect(card.isPinVerified).toBe(true);
    expect(card.isSelected).toBe(true);
    expect(raw(card, CHUID_GET).slice(-4)).toBe('9000');
  });

  it('command chaining (CLA 10): a VERIFY split in two parts verifies; each part but the last answers 9000 and acts on nothing', () => {
    const card = makeCard();
    raw(card, SELECT);
    const block = pinHex(PIN);
    expect(raw(card, `1020008003${block.slice(0, 6)}`)).toBe('9000');
    expect(card.isPinVerified).toBe(false);
    expect(raw(card, `1020008002${block.slice(6, 10)}`)).toBe('9000');
    expect(raw(card, `0020008003${block.slice(10)}`)).toBe('9000');
    expect(card.isPinVerified).toBe(true);
    // A wrong PIN sent chained uses one try, as unchained.
    const wrong = pinHex('111111');
    expect(raw(card, `1020008004${wrong.slice(0, 8)}`)).toBe('9000');
    expect(raw(card, `0020008004${wrong.slice(8)}`)).toBe('63C2');
    expect(card.pinRetries).toBe(2);
  });

  it('command chaining: GET DATA with the tag list split across two commands returns the CHUID', () => {
    const card = makeCard();
    raw(card, SELECT);
    const whole = raw(card, CHUID_GET);
    expect(raw(card, '10CB3FFF025C03')).toBe('9000');
    expect(raw(card, '00CB3FFF035FC10200')).toBe(whole);
  });

  it('command chaining: SELECT and GET RESPONSE answer 6884; another command mid-chain answers 6883 and drops the chain; before SELECT a chained VERIFY answers 6985', () => {
    const card = makeCard();
    expect(raw(card, `1020008004${pinHex(PIN).slice(0, 8)}`)).toBe('6985');
    expect(raw(card, '10A404000BA000000308000010000100')).toBe('6884');
    raw(card, SELECT);
    expect(raw(card, '10C0000000')).toBe('6884');
    expect(raw(card, `1020008004${pinHex(PIN).slice(0, 8)}`)).toBe('9000');
    expect(raw(card, CHUID_GET)).toBe('6883');
    // The chain is gone: the second half alone is a 4-byte VERIFY (6A80, no try used).
    expect(raw(card, `0020008004${pinHex(PIN).slice(8)}`)).toBe('6A80');
    expect(card.pinRetries).toBe(3);
    expect(raw(card, '10870000')).toBe('6D00');
  });

  it('command chaining: a chain longer than the card takes answers 6700 and is dropped', () => {
    const card = makeCard();
    raw(card, SELECT);
    const part = `10CB3FFFFF${'00'.repeat(255)}`;
    const answers = [0, 1, 2, 3, 4].map(() => raw(card, part));
    expect(answers).toEqual(['9000', '9000', '9000', '9000', '6700']);
    expect(raw(card, CHUID_GET).slice(-4)).toBe('9000');
  });
});

describe('VirtualPivCard certificates (SP 800-73-4 Part 1, Appendix A)', () => {
  let ca: TestCertificateAuthority;
  let valid: TestCardCertificates;
  let expired: TestCardCertificates;

  beforeAll(() => {
    ca = TestCertificateAuthority.create();
    valid = ca.validCardCertificates('Val Card');
    expired = ca.expiredCardCertificates('Exp Card', 10);
  });
  afterAll(() => ca?.cleanup());

  it('GET DATA of 5FC105 (9A) and 5FC101 (9E) returns 53 { 70 DER, 71 00, FE 00 } through 61xx chaining', () => {
    const card = makeCard({ certificates: derBySlot(valid) });
    raw(card, SELECT);
    for (const [tag, slot] of [['5FC105', '9A'], ['5FC101', '9E']] as const) {
      const answer = rawAll(card, `00CB3FFF055C03${tag}00`);
      expect(answer.slice(-4)).toBe('9000');
      const [object, ...rest] = decodeTlvs(Buffer.from(answer.slice(0, -4), 'hex'));
      expect(rest).toEqual([]);
      expect(object?.tag).toBe(0x53);
      const fields = decodeTlvs(object!.value);
      expect(fields.map((f) => f.tag)).toEqual([0x70, 0x71, 0xfe]);
      expect(fields[0]!.value.equals(valid[slot].der)).toBe(true);
      expect(fields[1]!.value.toString('hex')).toBe('00');
      expect(fields[2]!.value.length).toBe(0);
    }
  });

  it('a card without certificates answers 6A82 for both objects; one with only 9E answers 6A82 for 9A', () => {
    const none = makeCard();
    raw(none, SELECT);
    expect(raw(none, '00CB3FFF055C035FC10500')).toBe('6A82');
    expect(raw(none, '00CB3FFF055C035FC10100')).toBe('6A82');
    const only9e = makeCard({ certificates: { '9E': valid['9E'].der } });
    raw(only9e, SELECT);
    expect(raw(only9e, '00CB3FFF055C035FC10500')).toBe('6A82');
    expect(rawAll(only9e, '00CB3FFF055C035FC10100').slice(-4)).toBe('9000');
  });

  it('PivSession reads both certificates back with their notAfter (valid, then expired after restoreFactoryState)', async () => {
    const card = makeCard({ certificates: derBySlot(valid), responseChunkSize: 100 });
    const { piv } = await session(card);
    const readings = await piv.readCertificates();
    expect(readings.map((r) => [r.slot, r.status])).toEqual([['9A', 'present'], ['9E', 'present']]);
    for (const r of readings) {
      if (r.status !== 'present') throw new Error('expected a certificate');
      expect(r.certificate.notAfter).toBe(valid[r.slot].notAfter.toISOString());
      expect(new Date(r.certificate.notAfter).getTime()).toBeGreaterThan(Date.now());
    }
    card.restoreFactoryState({ certificates: derBySlot(expired) });
    const again = await PivSession.open(piv.connection);
    const after = await again.readCertificates();
    for (const r of after) {
      if (r.status !== 'present') throw new Error('expected a certificate');
      expect(r.certificate.notAfter).toBe(expired[r.slot].notAfter.toISOString());
      expect(new Date(r.certificate.notAfter).getTime()).toBeLessThan(Date.now());
    }
  });

  it('PivSession: no objects -> both absent; malformed bytes -> unusable with CARD.MALFORMED_CERTIFICATE, the other slot still read', async () => {
    const { piv } = await session(makeCard());
    expect(await piv.readCertificates()).toEqual([{ slot: '9A', status: 'absent' }, { slot: '9E', status: 'absent' }]);
    const { piv: bad } = await session(makeCard({ certificates: { '9A': Buffer.from('not a certificate at all'), '9E': valid['9E'].der } }));
    const readings = await bad.readCertificates();
    expect(readings[0]).toMatchObject({ slot: '9A', status: 'unusable' });
    const first = readings[0];
    const error = first?.status === 'unusable' ? first.error : undefined;
    expect(error).toBeInstanceOf(CertificateError);
    expect(error?.code).toBe(CARD_ERROR_CODE.MALFORMED_CERTIFICATE);
    expect(readings[1]).toMatchObject({ slot: '9E', status: 'present', certificate: { notAfter: valid['9E'].notAfter.toISOString() } });
    await expect(bad.readCertificate('9A')).rejects.toBeInstanceOf(CertificateError);
  });
});

describe('VirtualPivCard options', () => {
  it.each([
    [{ cardId: 'abc' }, /cardId/],
    [{ pin: '12345' }, /PIN must be 6-8 digits/],
    [{ pin: '12345a' }, /PIN/],
    [{ puk: '123456789' }, /PUK/],
    [{ pinRetries: 0 }, /pinRetries/],
    [{ pukRetries: 16 }, /pukRetries/],
    [{ fascn: Buffer.alloc(3) }, /FASC-N/],
  ])('refuses %o', (bad, message) => {
    expect(() => new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, ...bad })).toThrow(message);
  });

  it('refuses an empty certificate and one longer than 4096 bytes', () => {
    expect(() => new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, certificates: { '9A': Buffer.alloc(0) } })).toThrow(/certificate for 9A/);
    expect(() => new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, certificates: { '9E': Buffer.alloc(5000) } })).toThrow(/certificate for 9E/);
  });

  it('builds an ATR with a correct TCK', () => {
    let x = 0;
    for (const b of DEFAULT_ATR.subarray(1)) x ^= b;
    expect(x).toBe(0);
    expect(DEFAULT_ATR[0]).toBe(0x3b);
  });
});
