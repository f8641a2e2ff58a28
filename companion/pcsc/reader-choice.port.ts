/**
 * Which reader the companion uses when there are several: the one the person
 * chose (tray menu "Choose reader", or `COMPANION_READER_NAME`), else any reader,
 * readers that hold a card first.
 *
 * A {@link CardReaderPort} over another port (PC/SC or the in-process virtual
 * reader). It shows the card service only the chosen reader; with no choice it
 * shows every reader. Changing the choice is reported as events, so the card
 * service re-reads without a restart: the readers that leave the view are
 * reported removed (`card.removed` then `reader.removed`), the readers that come
 * into view added (`reader.added`, then `card.inserted` when they hold a card).
 *
 * Readers that come and go underneath (unplugged, pcscd restarted) pass through
 * as they come: a chosen reader that is unplugged stays chosen and is used again
 * when it is plugged back.
 */
import type { Logger } from '../../common/logger';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { CARD_ERROR_CODE, CardError } from '../piv/piv.errors';

/** One reader as the tray menu lists it. */
export interface ReaderInfo {
  /** Reader name as PC/SC reports it, e.g. `Virtual PCD 00 00`. */
  name: string;
  /** A card is in the reader (as last reported; a mute card does not count). */
  hasCard: boolean;
  /** The person chose this reader. */
  chosen: boolean;
}

/** Outcome of {@link ReaderChoicePort.chooseReader}: a returned value, never a throw. */
export type ChooseReaderOutcome =
  | { ok: true; chosen: string | null }
  /** No reader of that name is connected now; nothing changed. `readers` are the names there are. */
  | { ok: false; reason: 'unknown_reader'; message: string; readers: string[] }
  /** The name is empty or too long (PC/SC reader names are at most 128 bytes, pcsclite.h MAX_READERNAME). */
  | { ok: false; reason: 'bad_name'; message: string; readers: string[] };

/** Options for {@link ReaderChoicePort}. */
export interface ReaderChoiceOptions {
  /** The reader chosen at start (config `COMPANION_READER_NAME`); it need not be connected yet. Default null: any reader. */
  chosen?: string | null;
  logger?: Logger;
  /** Called after the choice changed (e.g. to remember it); errors are logged and ignored. */
  onChosen?: (chosen: string | null) => void;
}

/** Longest reader name PC/SC knows, in characters (pcsclite.h MAX_READERNAME = 128 bytes incl. NUL). */
const MAX_READER_NAME = 127;

interface ReaderState {
  present: boolean;
  atr: Buffer;
}

/** The person's reader choice over a {@link CardReaderPort}. */
export class ReaderChoicePort implements CardReaderPort {
  private readonly inner: CardReaderPort;
  private readonly logger: Logger | undefined;
  private readonly onChosen: ((chosen: string | null) => void) | undefined;
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  /** Every reader of the inner port, in the order it reported them. */
  private readonly known = new Map<string, ReaderState>();
  private chosen: string | null;
  private readonly unsubscribe: () => void;
  private closed = false;

  /**
   * @param inner - the port that talks to the readers; closed by {@link close}
   * @param options - see {@link ReaderChoiceOptions}
   */
  constructor(inner: CardReaderPort, options: ReaderChoiceOptions = {}) {
    this.inner = inner;
    this.logger = options.logger;
    this.onChosen = options.onChosen;
    this.chosen = options.chosen ?? null;
    // The inner port replays its current state to a new listener synchronously.
    this.unsubscribe = inner.onEvent((event) => this.onInnerEvent(event));
  }

  /**
   * Every connected reader, for the tray menu: readers holding a card first, then the rest,
   * each in the order the reader port reported them. A chosen reader that is unplugged is
   * listed too (with `hasCard: false`), so the menu still shows the choice.
   */
  listReaders(): ReaderInfo[] {
    const list = this.ordered([...this.known.keys()]).map((name) => ({ name, hasCard: this.known.get(name)!.present, chosen: name === this.chosen }));
    if (this.chosen !== null && !this.known.has(this.chosen)) list.push({ name: this.chosen, hasCard: false, chosen: true });
    return list;
  }

  /** The reader the person chose, or null when any reader may be used. */
  chosenReader(): string | null {
    return this.chosen;
  }

  /**
   * Use only `name` from now on, or any reader again (`null`). The card service is told
   * through reader events (see the module comment), so it reports the card of the newly
   * chosen reader to the bot within its insert settle time.
   *
   * @param name - a reader name from {@link listReaders}, or null for "any reader (the one with a card)"
   * @returns `{ ok: true, chosen }`; `{ ok: false, reason: 'unknown_reader' }` when no such reader is
   *   connected now, `bad_name` when the name is empty or longer than 127 characters; nothing changes then
   */
  chooseReader(name: string | null): ChooseReaderOutcome {
    const readers = [...this.known.keys()];
    // Choosing the reader already chosen is fine even while it is unplugged (the menu lists it).
    if (name === this.chosen) return { ok: true, chosen: name };
    if (name !== null) {
      if (name.trim() === '' || name.length > MAX_READER_NAME) {
        return { ok: false, reason: 'bad_name', message: `a reader name must be 1-${MAX_READER_NAME} characters`, readers };
      }
      if (!this.known.has(name)) {
        const now = readers.length ? readers.map((r) => `"${r}"`).join(', ') : 'none';
        return { ok: false, reason: 'unknown_reader', message: `no reader "${name}" is connected; readers now: ${now}`, readers };
      }
    }
    const before = new Set(this.visible());
    this.chosen = name;
    const after = new Set(this.visible());
    this.logger?.info({ chosen: name }, name === null ? 'reader choice cleared: any reader' : 'reader chosen');
    for (const reader of before) {
      if (after.has(reader)) continue;
      if (this.known.get(reader)?.present) this.emit({ type: 'card.removed', reader });
      this.emit({ type: 'reader.removed', reader });
    }
    for (const reader of after) {
      if (before.has(reader)) continue;
      this.emit({ type: 'reader.added', reader });
      const state = this.known.get(reader);
      if (state?.present) this.emit({ type: 'card.inserted', reader, atr: state.atr });
    }
    try {
      this.onChosen?.(name);
    } catch (error) {
      this.logger?.warn({ err: error }, 'remembering the reader choice failed');
    }
    return { ok: true, chosen: name };
  }

  /**
   * Readers the card service may use now: the chosen one (when connected), else all of them,
   * readers holding a card first.
   */
  readers(): string[] {
    return this.visible();
  }

  /**
   * Subscribe to events of the readers in view. The listener is first called, synchronously,
   * with their current state (`reader.added` per reader, `card.inserted` per card present).
   */
  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    for (const reader of this.visible()) {
      this.call(listener, { type: 'reader.added', reader });
      const state = this.known.get(reader)!;
      if (state.present) this.call(listener, { type: 'card.inserted', reader, atr: state.atr });
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Connect to the card in `reader`, which must be in view.
   *
   * @throws CardError `CARD.READER_UNAVAILABLE` when another reader was chosen, or the port's own
   *   errors (`CARD.NOT_PRESENT`, `CARD.READER_UNAVAILABLE`, `CARD.IN_USE`)
   */
  connect(reader: string): Promise<CardConnection> {
    if (this.chosen !== null && reader !== this.chosen) {
      return Promise.reject(
        new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `reader "${reader}" is not the chosen reader ("${this.chosen}")`, { meta: { reader, chosen: this.chosen } }),
      );
    }
    return this.inner.connect(reader);
  }

  /** Stop listening and close the inner port. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.listeners.clear();
    await this.inner.close();
  }

  // ---------------------------------------------------------------------------

  private visible(): string[] {
    if (this.chosen !== null) return this.known.has(this.chosen) ? [this.chosen] : [];
    return this.ordered([...this.known.keys()]);
  }

  /** Readers holding a card first, each group in the inner port's order. */
  private ordered(names: string[]): string[] {
    return [...names.filter((n) => this.known.get(n)?.present), ...names.filter((n) => !this.known.get(n)?.present)];
  }

  private inView(reader: string): boolean {
    return this.chosen === null || this.chosen === reader;
  }

  private onInnerEvent(event: ReaderEvent): void {
    const { reader } = event;
    switch (event.type) {
      case 'reader.added':
        if (!this.known.has(reader)) this.known.set(reader, { present: false, atr: Buffer.alloc(0) });
        break;
      case 'reader.removed':
        this.known.delete(reader);
        break;
      case 'card.inserted': {
        const state = this.known.get(reader) ?? { present: false, atr: Buffer.alloc(0) };
        state.present = true;
        state.atr = event.atr;
        this.known.set(reader, state);
        break;
      }
      case 'card.removed': {
        const state = this.known.get(reader);
        if (state) {
          state.present = false;
          state.atr = Buffer.alloc(0);
        }
        break;
      }
    }
    if (this.inView(reader)) this.emit(event);
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
