/**
 * A {@link CardReaderPort} with one reader and a {@link VirtualPivCard} that is
 * inserted and removed in process: for the demo and for unit specs that need a
 * card without pcscd.
 */
import type { Logger } from '../../common/logger';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { CARD_ERROR_CODE, CardError } from '../piv/piv.errors';
import type { VirtualPivCard } from './virtual-piv-card';

/** Default name of the in-process reader. */
export const IN_PROCESS_READER_NAME = 'Smartcard Assist Virtual Reader 00';

/** One reader holding at most one virtual card. */
export class InProcessReaderAdapter implements CardReaderPort {
  /** Name of the one reader. */
  readonly readerName: string;
  private readonly logger: Logger | undefined;
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private current: VirtualPivCard | undefined;
  /** Bumped on every insert and remove, so a connection knows its card went away. */
  private generation = 0;
  private closed = false;

  /**
   * @param options.readerName - reader name; default {@link IN_PROCESS_READER_NAME}
   * @param options.logger - for listener errors only
   */
  constructor(options: { readerName?: string; logger?: Logger } = {}) {
    this.readerName = options.readerName ?? IN_PROCESS_READER_NAME;
    this.logger = options.logger;
  }

  /** The card in the reader, if any. */
  get card(): VirtualPivCard | undefined {
    return this.current;
  }

  /**
   * Insert a card: it powers on and `card.inserted` is emitted.
   *
   * @throws Error when a card is already in the reader or the adapter is closed
   */
  insert(card: VirtualPivCard): void {
    if (this.closed) throw new Error('in-process reader is closed');
    if (this.current !== undefined) throw new Error('a card is already in the reader; remove() it first');
    this.current = card;
    this.generation++;
    const atr = card.powerOn();
    this.emit({ type: 'card.inserted', reader: this.readerName, atr });
  }

  /** Pull the card (may be called from a card hook, mid-command): it loses power and `card.removed` is emitted. No-op when empty. */
  remove(): void {
    const card = this.current;
    if (card === undefined) return;
    this.current = undefined;
    this.generation++;
    card.powerOff();
    this.emit({ type: 'card.removed', reader: this.readerName });
  }

  readers(): string[] {
    return this.closed ? [] : [this.readerName];
  }

  /**
   * Subscribe to events. The listener is first called, synchronously, with the current
   * state (`reader.added`, then `card.inserted` when a card is in); later events are
   * delivered synchronously as they happen.
   */
  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.closed) {
      this.call(listener, { type: 'reader.added', reader: this.readerName });
      if (this.current) this.call(listener, { type: 'card.inserted', reader: this.readerName, atr: this.current.atr });
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Open a connection to the card in the reader.
   *
   * @throws CardError `CARD.READER_UNAVAILABLE` for another reader name or after close(); `CARD.NOT_PRESENT` when empty
   */
  async connect(reader: string): Promise<CardConnection> {
    if (this.closed || reader !== this.readerName) {
      throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `reader "${reader}" is not available`, { meta: { reader } });
    }
    const card = this.current;
    if (card === undefined) throw new CardError(CARD_ERROR_CODE.NOT_PRESENT, `no card in reader "${reader}"`, { meta: { reader } });
    const generation = this.generation;
    const stillThere = (): boolean => this.current === card && this.generation === generation && card.isPowered;
    let open = true;
    const readerName = this.readerName;
    return {
      reader: readerName,
      atr: card.atr,
      async transmit(apdu: Buffer): Promise<Buffer> {
        if (!open) throw new CardError(CARD_ERROR_CODE.TRANSMIT_FAILED, 'connection is closed', { meta: { reader: readerName } });
        if (!stillThere()) throw new CardError(CARD_ERROR_CODE.REMOVED, `card was removed from "${readerName}"`, { meta: { reader: readerName } });
        const response = card.transmit(apdu);
        if (response === null || !stillThere()) {
          throw new CardError(CARD_ERROR_CODE.REMOVED, `card was removed from "${readerName}" during the command`, { meta: { reader: readerName } });
        }
        return response;
      },
      async close(disposition: 'reset' | 'leave' = 'reset'): Promise<void> {
        if (!open) return;
        open = false;
        if (disposition === 'reset' && stillThere()) card.reset();
      },
    };
  }

  /** Stop: the card (if any) is taken out without a `card.removed` event, listeners are dropped, connections fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.current?.powerOff();
    this.current = undefined;
    this.generation++;
    this.listeners.clear();
  }

  private emit(event: ReaderEvent): void {
    for (const listener of [...this.listeners]) this.call(listener, event);
  }

  private call(listener: (event: ReaderEvent) => void, event: ReaderEvent): void {
    try {
      listener(event);
    } catch (error) {
      this.logger?.error({ err: error, event: event.type }, 'reader event listener threw');
    }
  }
}
