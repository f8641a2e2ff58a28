/**
 * Card service against the project's virtual PIV card in the in-process reader:
 * every assertion reads the card back (PIN verifies, PUK accepted or refused,
 * retry counters), never the service's own word alone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { TestCertificateAuthority, derBySlot, type TestCardCertificates } from '../../test/support/test-certs';
import type { CardStatus } from '../../protocol/companion-link.protocol';
import { INS, KEY_REF } from '../piv/piv.constants';
import { InvalidPinError, InvalidPukError } from '../piv/piv.errors';
import { PivSession } from '../piv/piv.session';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../virtual-card/virtual-piv-card';
import { CardService } from './card.service';

const logger = createLogger({ name: 'card-spec', level: 'silent' });
const CARD_ID = '00112233445566778899aabbccddeeff';
const OTHER_ID = 'ffeeddccbbaa99887766554433221100';
const PIN = '204817';
const PUK = '73920184';
const NEW_PUK = '51846203';
const NEW_PASSCODE = '583920';

let reader: InProcessReaderAdapter;
afterEach(async () => {
  await reader?.close();
});

function setup(cardOptions: Partial<ConstructorParameters<typeof VirtualPivCard>[0]> = {}) {
  reader = new InProcessReaderAdapter();
  const card = new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, blocked: true, ...cardOptions });
  reader.insert(card);
  const service = new CardService({ reader, readerName: null, logger, insertSettleMs: 5 });
  return { card, service };
}

/** Open a fresh session on the card in the reader (as a second party would). */
async function onCard<T>(fn: (s: PivSession) => Promise<T>): Promise<T> {
  const conn = await reader.connect(reader.readerName);
  try {
    return await fn(await PivSession.open(conn));
  } finally {
    await conn.close('reset');
  }
}

/** True when the card accepts `puk` as its PUK (checked with a no-op PUK change). */
async function pukIs(puk: string): Promise<boolean> {
  try {
    await onCard((s) => s.changePuk(puk, puk));
    return true;
  } catch (err) {
    if (err instanceof InvalidPukError) return false;
    throw err;
  }
}

const isPukChange = (ins: number, apdu: Buffer): boolean => ins === INS.CHANGE_REFERENCE_DATA && apdu[3] === KEY_REF.PUK;

describe('CardService.readStatus', () => {
  it('reads the card id and the PIN retry counter, and resets the card afterwards', async () => {
    const { service, card } = setup({ blocked: false });
    await onCard((s) => s.verifyPin('111111').catch(() => undefined)); // one wrong try: 2 left
    expect(await service.readStatus()).toEqual({ present: true, reader: reader.readerName, cardId: CARD_ID, pinRetries: 2, certificates: [] });
    expect(card.isPinVerified).toBe(false);
  });

  it('reports a blocked card as 0 retries, and no card as not present', async () => {
    const { service } = setup();
    expect(await service.readStatus()).toMatchObject({ present: true, pinRetries: 0 });
    reader.remove();
    expect(await service.readStatus()).toEqual({ present: false, reader: reader.readerName });
  });

  it('reports only the configured reader', async () => {
    reader = new InProcessReaderAdapter();
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK }));
    const service = new CardService({ reader, readerName: 'Some Other Reader', logger });
    expect(await service.readStatus()).toEqual({ present: false, reader: null });
  });
});

describe('CardService.unblock', () => {
  it('resets the retry counter with the new passcode and changes the PUK', async () => {
    const { service, card } = setup();
    const outcome = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(outcome).toEqual({ outcome: 'unblocked', pukOnCard: 'new', passcodeSet: true });
    expect(card.isPinVerified).toBe(false); // the session ended with a reset
    await onCard((s) => s.verifyPin(NEW_PASSCODE));
    await expect(onCard((s) => s.verifyPin(PIN))).rejects.toBeInstanceOf(InvalidPinError);
    expect(await pukIs(NEW_PUK)).toBe(true);
    expect(await pukIs(PUK)).toBe(false);
  });

  it('refuses another card and leaves it untouched', async () => {
    const { service, card } = setup({ cardId: OTHER_ID });
    const outcome = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(outcome).toMatchObject({ outcome: 'wrong_card', cardIdFound: OTHER_ID, pukOnCard: 'current' });
    expect(card.pinBlocked).toBe(true);
    expect(card.pukRetries).toBe(card.pukRetriesMax);
  });

  it('reports a wrong PUK with its status word and leaves the card blocked', async () => {
    const { service, card } = setup();
    const outcome = await service.unblock({ cardId: CARD_ID, puk: '11112222', newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(outcome).toEqual({ outcome: 'puk_rejected', pukOnCard: 'current', passcodeSet: false, sw: '63C2', pukBlocked: false });
    expect(card.pinBlocked).toBe(true);
    expect(card.pukRetries).toBe(2);
  });

  it('reports card_removed when there is no card', async () => {
    const { service } = setup();
    reader.remove();
    expect(await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' })).toEqual({
      outcome: 'card_removed',
      pukOnCard: 'current',
      passcodeSet: false,
    });
  });

  it('card pulled during RESET RETRY COUNTER: PUK unchanged, finishes after reinsertion', async () => {
    const { service, card } = setup();
    card.onCommand = (ins) => {
      if (ins === INS.RESET_RETRY_COUNTER) {
        card.onCommand = undefined;
        reader.remove();
      }
    };
    const first = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(first).toEqual({ outcome: 'card_removed', pukOnCard: 'current', passcodeSet: false });
    reader.insert(card);
    expect(card.pinBlocked).toBe(true);
    const second = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: first.pukOnCard });
    expect(second.outcome).toBe('unblocked');
    await onCard((s) => s.verifyPin(NEW_PASSCODE));
    expect(await pukIs(NEW_PUK)).toBe(true);
  });

  it('card pulled after the PUK change took effect: PUK unknown; the retry tries the old PUK, then the new one', async () => {
    const { service, card } = setup();
    card.afterCommand = (ins, apdu) => {
      if (isPukChange(ins, apdu)) {
        card.afterCommand = undefined;
        reader.remove();
      }
    };
    const first = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(first).toEqual({ outcome: 'card_removed', pukOnCard: 'unknown', passcodeSet: true });
    reader.insert(card);
    const seen: string[] = [];
    card.onCommand = (ins, apdu) => {
      if (ins === INS.RESET_RETRY_COUNTER) seen.push('reset');
      if (isPukChange(ins, apdu)) seen.push('change-puk');
    };
    const second = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'unknown' });
    expect(second).toEqual({ outcome: 'unblocked', pukOnCard: 'new', passcodeSet: true });
    expect(seen).toEqual(['reset', 'reset']); // old PUK refused, new PUK accepted; no change needed
    await onCard((s) => s.verifyPin(NEW_PASSCODE));
    expect(await pukIs(NEW_PUK)).toBe(true);
  });

  it('card pulled before the PUK change took effect: the retry finds the old PUK still there and changes it', async () => {
    const { service, card } = setup();
    card.onCommand = (ins, apdu) => {
      if (isPukChange(ins, apdu)) {
        card.onCommand = undefined;
        reader.remove();
      }
    };
    const first = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' });
    expect(first).toEqual({ outcome: 'card_removed', pukOnCard: 'unknown', passcodeSet: true });
    reader.insert(card);
    expect(await pukIs(PUK)).toBe(true);
    const second = await service.unblock({ cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'unknown' });
    expect(second.outcome).toBe('unblocked');
    expect(await pukIs(NEW_PUK)).toBe(true);
    expect(card.pukRetries).toBe(card.pukRetriesMax);
  });
});

describe('CardService events', () => {
  it('reports insert (read from the card) and remove', async () => {
    const { service, card } = setup();
    const statuses: CardStatus[] = [];
    service.onStatus((s) => statuses.push(s));
    service.start(); // the reader reports the card already in it
    await new Promise((r) => setTimeout(r, 100));
    reader.remove();
    reader.insert(card);
    await new Promise((r) => setTimeout(r, 100));
    service.stop();
    expect(statuses).toEqual([
      { present: true, reader: reader.readerName, cardId: CARD_ID, pinRetries: 0, certificates: [] },
      { present: false, reader: reader.readerName },
      { present: true, reader: reader.readerName, cardId: CARD_ID, pinRetries: 0, certificates: [] },
    ]);
  });
});

describe('CardService certificates in the card status (issue #14)', () => {
  let ca: TestCertificateAuthority;
  let valid: TestCardCertificates;
  let expired: TestCardCertificates;
  beforeAll(() => {
    ca = TestCertificateAuthority.create();
    valid = ca.validCardCertificates('Status Valid');
    expired = ca.expiredCardCertificates('Status Expired', 3);
  });
  afterAll(() => ca?.cleanup());

  it('reports each certificate with its notAfter, read from the card (valid, then expired after a re-issue of the objects)', async () => {
    const { service, card } = setup({ certificates: derBySlot(valid) });
    expect(await service.readStatus()).toEqual({
      present: true,
      reader: reader.readerName,
      cardId: CARD_ID,
      pinRetries: 0,
      certificates: [
        { slot: '9A', notAfter: valid['9A'].notAfter.toISOString() },
        { slot: '9E', notAfter: valid['9E'].notAfter.toISOString() },
      ],
    });
    card.restoreFactoryState({ certificates: derBySlot(expired) });
    const status = await service.readStatus();
    expect(status.present && status.certificates?.map((c) => c.notAfter)).toEqual([expired['9A'].notAfter.toISOString(), expired['9E'].notAfter.toISOString()]);
  });

  it('a malformed certificate is refused and logged, reported as no certificate; the status still comes', async () => {
    const lines: Array<Record<string, unknown>> = [];
    reader = new InProcessReaderAdapter();
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, certificates: { '9A': Buffer.from('3082ffff00', 'hex'), '9E': valid['9E'].der } }));
    const capture = createLogger({ name: 'card-spec', level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
    const service = new CardService({ reader, readerName: null, logger: capture });
    expect(await service.readStatus()).toMatchObject({ present: true, cardId: CARD_ID, certificates: [{ slot: '9E', notAfter: valid['9E'].notAfter.toISOString() }] });
    expect(lines).toContainEqual(expect.objectContaining({ slot: '9A', errorCode: 'CARD.MALFORMED_CERTIFICATE', cardId: CARD_ID }));
  });

  it('the insert event carries the certificates too', async () => {
    const { service } = setup({ certificates: { '9A': expired['9A'].der } });
    const statuses: CardStatus[] = [];
    service.onStatus((s) => statuses.push(s));
    service.start();
    await expect.poll(() => statuses.length).toBe(1);
    service.stop();
    expect(statuses[0]).toMatchObject({ present: true, certificates: [{ slot: '9A', notAfter: expired['9A'].notAfter.toISOString() }] });
  });
});
