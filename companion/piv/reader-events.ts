/**
 * Waiting on a {@link CardReaderPort}: for the companion (wait for a card) and
 * for tests (wait until pcscd has seen the virtual card come or go).
 */
import type { CardReaderPort, ReaderEvent } from './card-connection';
import { CARD_ERROR_CODE, CardError } from './piv.errors';

/**
 * Resolve when a reader has (or has not) a card, as the port reports it. Both
 * adapters replay the current state to a new listener, so a card already in
 * resolves `present` at once.
 *
 * @param port - the reader port
 * @param reader - reader name
 * @param want - `present` or `absent`
 * @param timeoutMs - how long to wait, in ms
 * @returns the ATR when `want` is `present`, else an empty buffer
 * @throws CardError on timeout: `CARD.NOT_PRESENT` when waiting for `present`, `CARD.TRANSMIT_FAILED`
 *   when waiting for `absent`; the message names the reader and the wait
 */
export function waitForCardState(port: CardReaderPort, reader: string, want: 'present' | 'absent', timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let present = false;
    let atr: Buffer = Buffer.alloc(0);
    let done = false;
    let subscribed = false;
    let unsubscribe: (() => void) | undefined;
    const finish = (outcome: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe?.();
      outcome();
    };
    const check = (): void => {
      if (!subscribed) return;
      if (want === 'present' && present) finish(() => resolve(atr));
      if (want === 'absent' && !present) finish(() => resolve(Buffer.alloc(0)));
    };
    const timer = setTimeout(() => {
      finish(() =>
        reject(
          new CardError(
            want === 'present' ? CARD_ERROR_CODE.NOT_PRESENT : CARD_ERROR_CODE.TRANSMIT_FAILED,
            `reader "${reader}": card still ${want === 'present' ? 'absent' : 'present'} after ${timeoutMs} ms`,
            { meta: { reader, want, timeoutMs } },
          ),
        ),
      );
    }, timeoutMs);
    unsubscribe = port.onEvent((event: ReaderEvent) => {
      if (event.reader !== reader) return;
      if (event.type === 'card.inserted') {
        present = true;
        atr = event.atr;
      } else if (event.type === 'card.removed' || event.type === 'reader.removed') {
        present = false;
      }
      check();
    });
    subscribed = true;
    check();
  });
}

/**
 * Resolve with the next event that matches, or reject after a timeout. Replayed
 * state counts (see {@link CardReaderPort.onEvent} of the adapters).
 *
 * @param port - the reader port
 * @param predicate - which event to wait for
 * @param timeoutMs - how long to wait, in ms
 * @throws Error on timeout
 */
export function waitForReaderEvent(port: CardReaderPort, predicate: (event: ReaderEvent) => boolean, timeoutMs: number): Promise<ReaderEvent> {
  return new Promise<ReaderEvent>((resolve, reject) => {
    let done = false;
    let unsubscribe: (() => void) | undefined;
    const timer = setTimeout(() => {
      done = true;
      unsubscribe?.();
      reject(new Error(`no matching reader event within ${timeoutMs} ms`));
    }, timeoutMs);
    unsubscribe = port.onEvent((event) => {
      if (done || !predicate(event)) return;
      done = true;
      clearTimeout(timer);
      // The replay runs before onEvent returns: unsubscribe once it has.
      queueMicrotask(() => unsubscribe?.());
      resolve(event);
    });
    if (done) unsubscribe();
  });
}
