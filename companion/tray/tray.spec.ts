import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import type { CompanionEvent, CompanionSnapshot } from '../companion.runtime';
import { FakeNotifier } from '../desktop/desktop.fake';
import type { Notice } from '../desktop/desktop.port';
import type { UnpairOutcome } from '../pairing/unpair';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { ReaderChoicePort } from '../pcsc/reader-choice.port';
import { ReaderChoiceStore } from './reader-choice.store';
import { SYSTRAY_VERSION, SystrayTray } from './systray.adapter';
import { icoFromPng, TRAY_ICONS } from './tray-icons';
import { TrayController } from './tray.controller';
import { FakeTray } from './tray.fake';
import { READER_SLOTS, trayView } from './tray.view';

const logger = createLogger({ name: 'tray-spec', level: 'silent' });
const expiresAt = new Date(Date.now() + 600_000);

const snap = (over: Partial<CompanionSnapshot>): CompanionSnapshot => ({ pairing: { kind: 'paired', personName: 'Alex Wilber' }, link: 'up', card: { kind: 'none' }, ...over });

describe('tray view', () => {
  it('the icon and first line follow the state: not paired / paired, link up / down, no card / card OK / card locked', () => {
    const cases: Array<[Partial<CompanionSnapshot>, string, string]> = [
      [{ pairing: { kind: 'not_paired', code: null }, link: 'down', card: { kind: 'unknown' } }, 'grey', 'Not paired · not connected · card not read yet'],
      [{ link: 'down' }, 'grey', 'Paired with Alex Wilber · not connected · no card'],
      [{}, 'blue', 'Paired with Alex Wilber · connected · no card'],
      [{ card: { kind: 'ok', reader: 'R1' } }, 'green', 'Paired with Alex Wilber · connected · card OK'],
      [{ card: { kind: 'locked', reader: 'R1' } }, 'red', 'Paired with Alex Wilber · connected · card locked'],
    ];
    for (const [over, icon, text] of cases) {
      const view = trayView(snap(over), [], null);
      expect([view.icon, view.tooltip, view.items[0]!.title, view.items[0]!.enabled]).toEqual([icon, `Smartcard Assist: ${text}`, text, false]);
    }
  });

  it('pairing code shown while not paired (what to send in Teams), hidden once paired; unpair only when paired, enabled only when connected', () => {
    const notPaired = trayView(snap({ pairing: { kind: 'not_paired', code: { userCode: 'ABCD-EFGH', expiresAt } }, link: 'down' }), [], null);
    expect(notPaired.items.map((i) => [i.id, i.hidden])).toEqual([
      ['status', false],
      ['pairing_code', false],
      ['open_page', false],
      ['choose_reader', false],
      ['unpair', true],
      ['quit', false],
    ]);
    expect(notPaired.items[1]).toMatchObject({ title: 'Pairing code: ABCD-EFGH (send "pair ABCD-EFGH" in Teams)', enabled: true });
    const paired = trayView(snap({}), [], null);
    expect(paired.items[1]!.hidden).toBe(true);
    expect(paired.items[4]).toMatchObject({ hidden: false, enabled: true });
    expect(trayView(snap({ link: 'down' }), [], null).items[4]).toMatchObject({ hidden: false, enabled: false });
  });

  it('choose reader: "any" first, then the readers in slots, the chosen one ticked (and listed while unplugged)', () => {
    const view = trayView(snap({}), ['R1', 'R2'], 'R2');
    const sub = view.items[3]!.items!;
    expect(sub).toHaveLength(1 + READER_SLOTS);
    expect(sub.filter((i) => !i.hidden).map((i) => [i.id, i.title, i.checked])).toEqual([
      ['reader_any', 'Any reader (the one that holds a card)', false],
      ['reader:0', 'R1', false],
      ['reader:1', 'R2', true],
    ]);
    const unplugged = trayView(snap({}), ['R1'], 'R9').items[3]!.items!;
    expect(unplugged.filter((i) => !i.hidden).map((i) => [i.title, i.checked])).toEqual([
      ['Any reader (the one that holds a card)', false],
      ['R9', true],
      ['R1', false],
    ]);
  });
});

/** A reader port stand-in: readers with or without a card; replays the state to a new listener. */
class StubReaders implements CardReaderPort {
  readonly cards = new Map<string, Buffer | null>();
  private readonly listeners = new Set<(e: ReaderEvent) => void>();
  readers(): string[] {
    return [...this.cards.keys()];
  }
  onEvent(listener: (e: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    for (const [reader, atr] of this.cards) {
      listener({ type: 'reader.added', reader });
      if (atr) listener({ type: 'card.inserted', reader, atr });
    }
    return () => this.listeners.delete(listener);
  }
  connect(reader: string): Promise<CardConnection> {
    return Promise.resolve({ reader, atr: Buffer.alloc(0), transmit: () => Promise.resolve(Buffer.from([0x90, 0])), close: () => Promise.resolve() });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  event(e: ReaderEvent): void {
    if (e.type === 'reader.added') this.cards.set(e.reader, null);
    if (e.type === 'reader.removed') this.cards.delete(e.reader);
    if (e.type === 'card.inserted') this.cards.set(e.reader, e.atr);
    if (e.type === 'card.removed') this.cards.set(e.reader, null);
    for (const l of this.listeners) l(e);
  }
}

class StubRuntime {
  readonly listeners = new Set<(e: CompanionEvent) => void>();
  state: CompanionSnapshot = snap({ pairing: { kind: 'not_paired', code: { userCode: 'WXYZ-2345', expiresAt } }, link: 'down' });
  unpairs: UnpairOutcome['kind'][] = ['unpaired'];
  onEvent(l: (e: CompanionEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  snapshot(): CompanionSnapshot {
    return this.state;
  }
  unpair(): Promise<UnpairOutcome['kind']> {
    return Promise.resolve(this.unpairs.shift() ?? 'unreachable');
  }
  set(state: CompanionSnapshot): void {
    this.state = state;
    for (const l of this.listeners) l({ kind: 'state' });
  }
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

const saved: Array<string | null> = [];

describe('tray controller (menu actions)', () => {
  function setup(): { tray: FakeTray; runtime: StubRuntime; notifier: FakeNotifier; pages: number[]; choice: ReaderChoicePort; inner: StubReaders; quits: number[]; controller: TrayController } {
    const tray = new FakeTray();
    const runtime = new StubRuntime();
    const notifier = new FakeNotifier();
    const pages: number[] = [];
    const inner = new StubReaders();
    inner.cards.set('Reader A', null);
    inner.cards.set('Reader B', null);
    const choice = new ReaderChoicePort(inner);
    const quits: number[] = [];
    saved.length = 0;
    const controller = new TrayController({
      saveReaderChoice: (name) => {
        saved.push(name);
        return Promise.resolve();
      },
      tray,
      runtime,
      desktop: { showPage: () => Promise.resolve(`link-${pages.push(1)}`), notify: (n: Notice) => notifier.notify(n) },
      readers: choice,
      quit: () => void quits.push(1),
      logger,
      readerPollMs: 10,
    });
    return { tray, runtime, notifier, pages, choice, inner, quits, controller };
  }

  it('shows the pairing code; its item notifies the code and opens the page; follows the state; unpair, reader choice and quit', async () => {
    const { tray, runtime, notifier, pages, choice, inner, quits, controller } = setup();
    expect(await controller.start()).toEqual({ shown: true });
    expect(tray.item('pairing_code').title).toBe('Pairing code: WXYZ-2345 (send "pair WXYZ-2345" in Teams)');

    tray.click('pairing_code');
    await settle();
    expect(notifier.notices).toEqual([{ kind: 'pairing_code', title: 'Smartcard Assist pairing code: WXYZ-2345', body: 'Send "pair WXYZ-2345" to Smartcard Assist in Teams to pair this computer.' }]);
    expect(pages).toHaveLength(1);
    tray.click('open_page');
    await settle();
    expect(pages).toHaveLength(2);

    runtime.set(snap({ card: { kind: 'locked', reader: 'Reader A' } }));
    expect(tray.view!.icon).toBe('red');
    expect(tray.item('pairing_code').hidden).toBe(true);

    // Readers: chosen in the menu; one plugged in later appears within a poll.
    tray.click('reader:1');
    await settle();
    expect(choice.chosenReader()).toBe('Reader B');
    expect(tray.item('reader:1').checked).toBe(true);
    inner.event({ type: 'reader.added', reader: 'Reader C' });
    await settle();
    await settle();
    expect(tray.item('reader:2').title).toBe('Reader C');
    tray.click('reader_any');
    await settle();
    expect(choice.chosenReader()).toBeNull();
    expect(saved).toEqual(['Reader B', null]);

    tray.click('unpair');
    await settle();
    expect(notifier.notices.at(-1)!.title).toBe('Smartcard Assist: this computer is unpaired');
    tray.click('unpair');
    await settle();
    expect(notifier.notices.at(-1)!.title).toBe('Smartcard Assist: not unpaired');

    expect(() => tray.click('status')).toThrow(/cannot be clicked/);
    tray.click('quit');
    expect(quits).toEqual([1]);
    await controller.stop();
    expect(tray.stopped).toBe(true);
  });

  it('a tray that cannot be shown leaves the companion running without it', async () => {
    const { tray, controller } = setup();
    tray.start = () => Promise.resolve({ shown: false, reason: 'no tray program for aix' });
    expect(await controller.start()).toEqual({ shown: false, reason: 'no tray program for aix' });
    await controller.stop();
    expect(tray.stopped).toBe(false);
  });
});

describe('reader choice store', () => {
  it('keeps the choice (a name or any) in reader-choice.json 0600; nothing or garbage reads as no choice', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reader-choice-'));
    try {
      const store = new ReaderChoiceStore(dir);
      expect(await store.read()).toBeUndefined();
      await store.write('Reader B');
      expect(await store.read()).toEqual({ reader: 'Reader B' });
      expect((await stat(join(dir, 'reader-choice.json'))).mode & 0o777).toBe(0o600);
      await store.write(null);
      expect(await store.read()).toEqual({ reader: null });
      await writeFile(join(dir, 'reader-choice.json'), '{"reader": 5}');
      expect(await store.read()).toBeUndefined();
      await writeFile(join(dir, 'reader-choice.json'), 'not json');
      expect(await store.read()).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('tray pictures and program', () => {
  it('the pinned systray2 version is the one installed (its program runs from a folder named after it)', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'node_modules', 'systray2', 'package.json'), 'utf8')) as { version: string };
    expect(SYSTRAY_VERSION).toBe(pkg.version);
  });

  it.skipIf(process.platform !== 'linux')('a tray program that cannot reach a display ends: not shown, nothing thrown; its copy is 0700 in the data directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'systray-'));
    const display = process.env['DISPLAY'];
    process.env['DISPLAY'] = ':9999'; // no X server there
    try {
      const tray = new SystrayTray({ dataDir: dir, logger });
      const outcome = await tray.start(trayView(snap({}), [], null), () => undefined);
      expect(outcome).toMatchObject({ shown: false, reason: expect.stringMatching(/^the tray program ended \(exit /) });
      expect((await stat(join(dir, 'tray', SYSTRAY_VERSION, 'tray_linux_release'))).mode & 0o777).toBe(0o700);
      tray.update(trayView(snap({ link: 'down' }), [], null)); // nothing to update, nothing thrown
      await tray.stop();
    } finally {
      if (display === undefined) delete process.env['DISPLAY'];
      else process.env['DISPLAY'] = display;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('icons are 22x22 PNGs; the ICO wrapper points at the PNG', () => {
    for (const base64 of Object.values(TRAY_ICONS)) {
      const png = Buffer.from(base64, 'base64');
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([22, 22]);
      const ico = icoFromPng(png, 22);
      expect([ico.readUInt16LE(2), ico.readUInt16LE(4), ico[6], ico.readUInt32LE(14), ico.readUInt32LE(18)]).toEqual([1, 1, 22, png.length, 22]);
      expect(ico.subarray(22).equals(png)).toBe(true);
    }
  });
});
