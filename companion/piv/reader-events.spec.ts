import { describe, expect, it } from 'vitest';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { DEFAULT_ATR, VirtualPivCard } from '../virtual-card/virtual-piv-card';
import { CARD_ERROR_CODE, type CardError } from './piv.errors';
import { waitForCardState, waitForReaderEvent } from './reader-events';

const card = (): VirtualPivCard => new VirtualPivCard({ cardId: 'ab'.repeat(16), pin: '123456', puk: '12345678' });

describe('waitForCardState', () => {
  it('resolves at once for a card already in, with its ATR', async () => {
    const port = new InProcessReaderAdapter();
    port.insert(card());
    expect(await waitForCardState(port, port.readerName, 'present', 50)).toEqual(DEFAULT_ATR);
  });

  it('waits for a later insertion and removal', async () => {
    const port = new InProcessReaderAdapter();
    const c = card();
    const inserted = waitForCardState(port, port.readerName, 'present', 1000);
    setTimeout(() => port.insert(c), 10);
    await inserted;
    const removed = waitForCardState(port, port.readerName, 'absent', 1000);
    setTimeout(() => port.remove(), 10);
    expect((await removed).length).toBe(0);
  });

  it('times out with CARD.NOT_PRESENT naming the reader', async () => {
    const port = new InProcessReaderAdapter();
    const error = (await waitForCardState(port, port.readerName, 'present', 30).catch((e: unknown) => e)) as CardError;
    expect(error.code).toBe(CARD_ERROR_CODE.NOT_PRESENT);
    expect(error.message).toContain(port.readerName);
  });
});

describe('waitForReaderEvent', () => {
  it('resolves with the first matching event and stops listening', async () => {
    const port = new InProcessReaderAdapter();
    const c = card();
    const p = waitForReaderEvent(port, (e) => e.type === 'card.removed', 1000);
    port.insert(c);
    port.remove();
    expect((await p).type).toBe('card.removed');
  });
});
