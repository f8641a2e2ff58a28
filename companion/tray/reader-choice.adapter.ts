/**
 * "Choose reader" (issue #13): a {@link CardReaderPort} in front of the real
 * one that shows the card service only the reader the person chose in the
 * tray menu, or every reader ("any reader": the card service then uses the one
 * that holds a card). Changing the choice tells the card service as if the
 * readers had come and gone: the card in a reader leaving the view is
 * reported removed, the card in a reader coming into view inserted.
 *
 * The list of readers comes from the real port (`readers()`), so readers that
 * come and go there (companion/pcsc) come and go here.
 */
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';

/** A reader port filtered to the chosen reader. */
export class ReaderChoicePort implements CardReaderPort {
  private chosenName: string | null;
  /** Card in each reader, by what the real port reported (ATR), or null without a card. */
  private readonly cards = new Map<string, Buffer | null>();
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private readonly unsubscribe: () => void;

  /**
   * @param inner - the real reader port (PC/SC or the in-process virtual reader)
   * @param chosen - the reader to start with (`COMPANION_READER_NAME`); null = any reader
   */
  constructor(
    private readonly inner: CardReaderPort,
    chosen: string | null,
  ) {
    this.chosenName = chosen;
    // The real port replays what it sees now to a new listener, so the map starts complete.
    this.unsubscribe = inner.onEvent((event) => this.onInner(event));
  }

  /** The reader chosen now; null = any reader. */
  get chosen(): string | null {
    return this.chosenName;
  }

  /** Every reader the real port sees now (for the menu), in its order. */
  allReaders(): string[] {
    return this.inner.readers();
  }

  /**
   * Choose a reader (null = any). The card service hears the change as cards leaving and entering its view.
   *
   * @param name - a reader name (need not be present now: it is used when it appears) or null
   */
  choose(name: string | null): void {
    if (name === this.chosenName) return;
    const before = this.visibleNow();
    this.chosenName = name;
    const after = this.visibleNow();
    for (const reader of before) {
      if (after.includes(reader)) continue;
      if (this.cards.get(reader)) this.send({ type: 'card.removed', reader });
    }
    for (const reader of after) {
      if (before.includes(reader)) continue;
      this.send({ type: 'reader.added', reader });
      const atr = this.cards.get(reader);
      if (atr) this.send({ type: 'card.inserted', reader, atr });
    }
  }

  readers(): string[] {
    return this.inner.readers().filter((r) => this.visible(r));
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    // As the real adapters do: the current state first.
    for (const reader of this.visibleNow()) {
      listener({ type: 'reader.added', reader });
      const atr = this.cards.get(reader);
      if (atr) listener({ type: 'card.inserted', reader, atr });
    }
    return () => this.listeners.delete(listener);
  }

  connect(reader: string): Promise<CardConnection> {
    return this.inner.connect(reader);
  }

  async close(): Promise<void> {
    this.unsubscribe();
    this.listeners.clear();
    await this.inner.close();
  }

  private visible(reader: string): boolean {
    return this.chosenName === null || reader === this.chosenName;
  }

  private visibleNow(): string[] {
    return [...this.cards.keys()].filter((r) => this.visible(r));
  }

  private onInner(event: ReaderEvent): void {
    if (event.type === 'reader.added') this.cards.set(event.reader, this.cards.get(event.reader) ?? null);
    else if (event.type === 'reader.removed') this.cards.delete(event.reader);
    else if (event.type === 'card.inserted') this.cards.set(event.reader, event.atr);
    else this.cards.set(event.reader, null);
    if (this.visible(event.reader)) this.send(event);
  }

  private send(event: ReaderEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}
