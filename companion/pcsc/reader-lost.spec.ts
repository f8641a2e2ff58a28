/**
 * A reader lost mid-APDU, as the PC/SC adapter reports it (`CARD.READER_UNAVAILABLE`
 * from a transmit whose reader was unplugged or whose pcscd went away): the card
 * carried the command out, the answer never came. The card service must treat
 * it as "the card went away, result unknown" (issue #13: never let the person
 * believe a passcode was set when it was not, nor turn a success into a failure).
 * The card is the project's virtual PIV card; results are read back from it.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CardService } from '../card/card.service';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { INS, KEY_REF } from '../piv/piv.constants';
import { CARD_ERROR_CODE, CardError } from '../piv/piv.errors';
import { PivSession } from '../piv/piv.session';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../virtual-card/virtual-piv-card';

const logger = createLogger({ name: 'reader-lost-spec', level: 'silent' });
const CARD_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const PIN = '350291';
const PUK = '61820473';
const NEW_PUK = '27364518';
const NEW_PASSCODE = '804152';

/** The in-process reader, whose transmits fail with READER_UNAVAILABLE after the card ran `lostAfter`. */
class LosingReaderPort implements CardReaderPort {
  lostAfter: ((apdu: Buffer) => boolean) | null = null;
  constructor(readonly inner: InProcessReaderAdapter) {}
  readers(): string[] {
    return this.inner.readers();
  }
  onEvent(listener: (event: ReaderEvent) => void): () => void {
    return this.inner.onEvent(listener);
  }
  async connect(reader: string): Promise<CardConnection> {
    const conn = await this.inner.connect(reader);
    return {
      reader: conn.reader,
      atr: conn.atr,
      transmit: async (apdu: Buffer): Promise<Buffer> => {
        const response = await conn.transmit(apdu);
        if (this.lostAfter?.(apdu)) {
          this.lostAfter = null;
          throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `transmit on reader "${reader}" failed: the PC/SC smart-card service (pcscd) is not running or not reachable`, {
            meta: { reader, operation: 'transmit', pcscCode: null },
          });
        }
        return response;
      },
      close: (disposition) => conn.close(disposition),
    };
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function setup(): { card: VirtualPivCard; port: LosingReaderPort; service: CardService } {
  const inner = new InProcessReaderAdapter();
  const card = new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, blocked: true });
  inner.insert(card);
  const port = new LosingReaderPort(inner);
  return { card, port, service: new CardService({ reader: port, readerName: null, logger, insertSettleMs: 1 }) };
}

async function pinVerifies(inner: InProcessReaderAdapter, pin: string): Promise<boolean> {
  const conn = await inner.connect(inner.readerName);
  try {
    await (await PivSession.open(conn)).verifyPin(pin);
    return true;
  } catch {
    return false;
  } finally {
    await conn.close('reset');
  }
}

const request = { cardId: CARD_ID, puk: PUK, newPuk: NEW_PUK, newPasscode: NEW_PASSCODE, pukOnCard: 'current' as const };

describe('reader lost mid-APDU (READER_UNAVAILABLE from transmit)', () => {
  it('during RESET RETRY COUNTER: card_removed with the PUK unchanged, and a second run finishes', async () => {
    const { port, service } = setup();
    port.lostAfter = (apdu) => apdu[1] === INS.RESET_RETRY_COUNTER;
    const first = await service.unblock(request);
    expect(first).toEqual({ outcome: 'card_removed', pukOnCard: 'current', passcodeSet: false });
    // The card did take the new passcode: the outcome only says it is not known.
    expect(await pinVerifies(port.inner, NEW_PASSCODE)).toBe(true);
    expect(await service.unblock({ ...request, pukOnCard: first.pukOnCard })).toEqual({ outcome: 'unblocked', pukOnCard: 'new', passcodeSet: true });
  });

  it('during the PUK change: card_removed with the PUK "unknown", and a second run finishes (the old PUK tried, then the new one)', async () => {
    const { port, service } = setup();
    port.lostAfter = (apdu) => apdu[1] === INS.CHANGE_REFERENCE_DATA && apdu[3] === KEY_REF.PUK;
    const first = await service.unblock(request);
    expect(first).toEqual({ outcome: 'card_removed', pukOnCard: 'unknown', passcodeSet: true });
    const second = await service.unblock({ ...request, pukOnCard: first.pukOnCard });
    expect(second).toEqual({ outcome: 'unblocked', pukOnCard: 'new', passcodeSet: true });
    expect(await pinVerifies(port.inner, NEW_PASSCODE)).toBe(true);
    const conn = await port.inner.connect(port.inner.readerName);
    try {
      await (await PivSession.open(conn)).changePuk(NEW_PUK, NEW_PUK); // throws when the card holds another PUK
    } finally {
      await conn.close('reset');
    }
  });
});
