/**
 * Reader choice over several readers: in-process virtual readers joined into one
 * port (as pcscd shows several), with the real card service on top reading the
 * virtual cards, so every status asserted was read from a card.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import type { CardStatus } from '../../protocol/companion-link.protocol';
import { CardService } from '../card/card.service';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { CARD_ERROR_CODE, type CardError } from '../piv/piv.errors';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../virtual-card/virtual-piv-card';
import { ReaderChoicePort } from './reader-choice.port';

const logger = createLogger({ name: 'reader-choice-spec', level: 'silent' });
const A = 'Reader A 00';
const B = 'Reader B 01';
const ID_A = 'aa'.repeat(16);
const ID_B = 'bb'.repeat(16);

/** Several in-process readers seen as one port; readers can be unplugged and plugged back. */
class MultiReaderPort implements CardReaderPort {
  readonly ports = new Map<string, InProcessReaderAdapter>();
  private readonly plugged = new Set<string>();
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private readonly subscriptions = new Map<string, () => void>();

  constructor(names: string[]) {
    for (const name of names) {
      this.ports.set(name, new InProcessReaderAdapter({ readerName: name }));
      this.plug(name);
    }
  }

  port(name: string): InProcessReaderAdapter {
    return this.ports.get(name)!;
  }

  plug(name: string): void {
    this.plugged.add(name);
    this.subscriptions.set(
      name,
      this.port(name).onEvent((event) => this.emit(event)),
    );
  }

  unplug(name: string): void {
    this.subscriptions.get(name)?.();
    this.plugged.delete(name);
    if (this.port(name).card) this.emit({ type: 'card.removed', reader: name });
    this.emit({ type: 'reader.removed', reader: name });
  }

  readers(): string[] {
    return [...this.plugged];
  }

  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    for (const name of this.plugged) {
      listener({ type: 'reader.added', reader: name });
      const card = this.port(name).card;
      if (card) listener({ type: 'card.inserted', reader: name, atr: card.atr });
    }
    return () => this.listeners.delete(listener);
  }

  connect(reader: string): Promise<CardConnection> {
    return this.port(reader).connect(reader);
  }

  async close(): Promise<void> {
    for (const p of this.ports.values()) await p.close();
  }

  private emit(event: ReaderEvent): void {
    for (const l of [...this.listeners]) l(event);
  }
}

const card = (cardId: string): VirtualPivCard => new VirtualPivCard({ cardId, pin: '123456', puk: '12345678' });

let multi: MultiReaderPort;
let choice: ReaderChoicePort;
let service: CardService;
afterEach(async () => {
  service?.stop();
  await choice?.close();
});

function setup(chosen: string | null = null): CardStatus[] {
  multi = new MultiReaderPort([A, B]);
  choice = new ReaderChoicePort(multi, { chosen, logger });
  service = new CardService({ reader: choice, readerName: null, logger, insertSettleMs: 1 });
  const statuses: CardStatus[] = [];
  service.onStatus((s) => statuses.push(s));
  service.start();
  return statuses;
}

describe('ReaderChoicePort', () => {
  it('with no choice uses the reader that holds a card, whichever it is', async () => {
    setup();
    multi.port(B).insert(card(ID_B));
    expect(choice.readers()).toEqual([B, A]);
    expect(await service.readStatus()).toMatchObject({ present: true, reader: B, cardId: ID_B });
    expect(choice.listReaders()).toEqual([
      { name: B, hasCard: true, chosen: false },
      { name: A, hasCard: false, chosen: false },
    ]);
  });

  it('a chosen reader is the only one used; choosing another re-reads and reports its card', async () => {
    const statuses = setup(A);
    multi.port(A).insert(card(ID_A));
    multi.port(B).insert(card(ID_B));
    await expect.poll(() => statuses.at(-1)).toMatchObject({ present: true, reader: A, cardId: ID_A });
    expect(choice.readers()).toEqual([A]);
    expect(await service.readStatus()).toMatchObject({ reader: A, cardId: ID_A });
    // B's card is not seen while A is chosen.
    expect(statuses.some((s) => s.present && s.cardId === ID_B)).toBe(false);
    expect(((await choice.connect(B).catch((e: unknown) => e)) as CardError).code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);

    expect(choice.chooseReader(B)).toEqual({ ok: true, chosen: B });
    await expect.poll(() => statuses.at(-1)).toMatchObject({ present: true, reader: B, cardId: ID_B });
    expect(statuses).toContainEqual({ present: false, reader: A });
    expect(await service.readStatus()).toMatchObject({ reader: B, cardId: ID_B });
    expect(choice.listReaders().find((r) => r.chosen)?.name).toBe(B);
  });

  it('clearing the choice goes back to any reader with a card', async () => {
    const statuses = setup(A);
    multi.port(B).insert(card(ID_B));
    expect(await service.readStatus()).toEqual({ present: false, reader: A });
    expect(choice.chooseReader(null)).toEqual({ ok: true, chosen: null });
    await expect.poll(() => statuses.at(-1)).toMatchObject({ present: true, reader: B, cardId: ID_B });
  });

  it('refuses an unknown or empty reader name and keeps the choice', () => {
    setup(A);
    const outcome = choice.chooseReader('No Such Reader');
    expect(outcome).toMatchObject({ ok: false, reason: 'unknown_reader', readers: [A, B] });
    expect(outcome.ok ? '' : outcome.message).toContain('No Such Reader');
    expect(choice.chooseReader('  ')).toMatchObject({ ok: false, reason: 'bad_name' });
    expect(choice.chooseReader('x'.repeat(128))).toMatchObject({ ok: false, reason: 'bad_name' });
    expect(choice.chosenReader()).toBe(A);
  });

  it('a chosen reader unplugged and plugged back is used again, its card reported again', async () => {
    const statuses = setup(A);
    const c = card(ID_A);
    multi.port(A).insert(c);
    await expect.poll(() => statuses.at(-1)).toMatchObject({ present: true, cardId: ID_A });
    multi.unplug(A);
    expect(statuses.at(-1)).toEqual({ present: false, reader: A });
    expect(choice.readers()).toEqual([]);
    expect(choice.listReaders()).toEqual([
      { name: B, hasCard: false, chosen: false },
      { name: A, hasCard: false, chosen: true },
    ]);
    // Choosing it again from the menu while it is unplugged keeps the choice.
    expect(choice.chooseReader(A)).toEqual({ ok: true, chosen: A });
    multi.plug(A);
    await expect.poll(() => statuses.at(-1)).toMatchObject({ present: true, reader: A, cardId: ID_A });
    expect(await service.readStatus()).toMatchObject({ reader: A, cardId: ID_A });
  });

  it('tells onChosen about a change, and close() closes the reader port under it', async () => {
    multi = new MultiReaderPort([A, B]);
    const seen: Array<string | null> = [];
    choice = new ReaderChoicePort(multi, { onChosen: (c) => seen.push(c) });
    choice.chooseReader(B);
    choice.chooseReader(B);
    choice.chooseReader(null);
    expect(seen).toEqual([B, null]);
    multi.port(A).insert(card(ID_A));
    await choice.close();
    expect(multi.port(A).readers()).toEqual([]);
  });
});
