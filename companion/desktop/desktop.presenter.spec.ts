import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../common/logger';
import type { CompanionEvent, CompanionSnapshot } from '../companion.runtime';
import { FakeNotifier, FakePageOpener } from './desktop.fake';
import { DesktopPresenter, type PresenterRuntime } from './desktop.presenter';

const logger = createLogger({ name: 'presenter-spec', level: 'silent' });

/** A runtime stand-in: emits events, holds a snapshot, mints numbered links. */
class FakeRuntime implements PresenterRuntime {
  private readonly listeners = new Set<(e: CompanionEvent) => void>();
  state: CompanionSnapshot = { pairing: { kind: 'paired', personName: 'Alex' }, link: 'down', card: { kind: 'unknown' } };
  minted = 0;
  printed: string[] = [];
  current = 'http://127.0.0.1:4000/?t=' + 'C'.repeat(43);

  onEvent(listener: (e: CompanionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  snapshot(): CompanionSnapshot {
    return this.state;
  }
  printPageLink(): string {
    const link = `http://127.0.0.1:4000/?t=${String(++this.minted).padStart(43, 'A')}`;
    this.printed.push(link);
    return link;
  }
  currentPageLink(): string {
    return this.current;
  }
  open = false;
  pageIsOpen(): boolean {
    return this.open;
  }
  emit(event: CompanionEvent): void {
    for (const l of this.listeners) l(event);
  }
  link(state: 'up' | 'down'): void {
    this.state = { ...this.state, link: state };
    this.emit({ kind: 'state' });
  }
}

function setup(openPage: 'browser' | 'notify' | 'off', withNotifier = true): { runtime: FakeRuntime; opener: FakePageOpener; notifier: FakeNotifier; presenter: DesktopPresenter } {
  const runtime = new FakeRuntime();
  const opener = new FakePageOpener();
  const notifier = new FakeNotifier();
  const presenter = new DesktopPresenter({ runtime, opener, notifier: withNotifier ? notifier : null, openPage, logger, linkLostAfterMs: 60_000 });
  presenter.start();
  return { runtime, opener, notifier, presenter };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

afterEach(() => {
  vi.useRealTimers();
});

describe('the page comes to the person', () => {
  it('browser: the code request opens the link printed with the prompt, and the notification says so; its Open mints a new link', async () => {
    const { runtime, opener, notifier } = setup('browser');
    runtime.emit({ kind: 'prompt', flow: 'unlock' });
    await settle();
    expect(opener.opened).toEqual([runtime.current]);
    expect(notifier.kinds()).toEqual(['code_request']);
    expect(notifier.notices[0]!.body).toMatch(/unlock code .* new passcode on the passcode page\. It has opened in your browser\.$/);
    expect(notifier.notices[0]!.body).not.toMatch(/\bPIN\b/);
    notifier.click('code_request');
    await settle();
    expect(runtime.printed).toEqual([`http://127.0.0.1:4000/?t=${'1'.padStart(43, 'A')}`]);
    expect(opener.opened).toEqual([runtime.current, runtime.printed[0]]);
  });

  it('browser with the page already open (a live session): no second tab; the notification offers Open', async () => {
    const { runtime, opener, notifier } = setup('browser');
    runtime.open = true;
    runtime.emit({ kind: 'prompt', flow: 'unlock' });
    await settle();
    expect(opener.opened).toEqual([]);
    expect(notifier.kinds()).toEqual(['code_request']);
    expect(notifier.notices[0]!.body).not.toContain('opened');
    expect(notifier.notices[0]!.onOpen).toBeTypeOf('function');
  });

  it('browser that fails: the notification does not claim the page opened', async () => {
    const { runtime, opener, notifier } = setup('browser');
    opener.answer = { opened: false, reason: 'ENOENT' };
    runtime.emit({ kind: 'prompt', flow: 'register' });
    await settle();
    expect(notifier.kinds()).toEqual(['passcode_request']);
    expect(notifier.notices[0]!.body).not.toContain('opened');
  });

  it('notify: nothing opens by itself; clicking Open opens a new link', async () => {
    const { runtime, opener, notifier } = setup('notify');
    runtime.emit({ kind: 'prompt', flow: 'unlock' });
    await settle();
    expect(opener.opened).toEqual([]);
    notifier.click('code_request');
    await settle();
    expect(opener.opened).toEqual(runtime.printed);
    expect(runtime.printed).toHaveLength(1);
  });

  it('off without notifications: nothing opens and nothing is said', async () => {
    const { runtime, opener, notifier } = setup('off', false);
    runtime.emit({ kind: 'prompt', flow: 'unlock' });
    runtime.emit({ kind: 'unlocked' });
    await settle();
    expect(opener.opened).toEqual([]);
    expect(notifier.notices).toEqual([]);
  });

  it('showPage (a second start, the tray) prints a new link and opens it', async () => {
    const { runtime, opener, presenter } = setup('off');
    const link = await presenter.showPage();
    expect(runtime.printed).toEqual([link]);
    expect(opener.opened).toEqual([link]);
  });
});

describe('desktop notifications', () => {
  it('card inserted while a journey waits (with Open), unlock done', async () => {
    const { runtime, notifier } = setup('off');
    runtime.emit({ kind: 'card_inserted_while_waiting' });
    runtime.emit({ kind: 'unlocked' });
    expect(notifier.kinds()).toEqual(['card_inserted', 'unlocked']);
    expect(notifier.notices[0]!.onOpen).toBeTypeOf('function');
    expect(notifier.notices[1]!.body).toBe('Your smartcard is unlocked. Use your new passcode.');
  });

  it('link lost: said after more than a minute down (not before, not if it came back), once, and "connected again" after', () => {
    vi.useFakeTimers();
    const { runtime, notifier, presenter } = setup('off');
    runtime.link('down'); // never up yet: starting, not lost
    vi.advanceTimersByTime(120_000);
    expect(notifier.kinds()).toEqual([]);

    runtime.link('up');
    runtime.link('down');
    vi.advanceTimersByTime(59_000);
    runtime.link('up'); // back within the minute: nothing said
    vi.advanceTimersByTime(120_000);
    expect(notifier.kinds()).toEqual([]);

    runtime.link('down');
    vi.advanceTimersByTime(30_000);
    runtime.link('down'); // another "down" state event does not restart the minute
    vi.advanceTimersByTime(30_001);
    expect(notifier.kinds()).toEqual(['link_lost']);
    expect(notifier.notices[0]!.body).toBe('This computer has not reached Smartcard Assist for more than a minute. It keeps trying.');
    vi.advanceTimersByTime(600_000);
    expect(notifier.kinds()).toEqual(['link_lost']);
    runtime.link('up');
    expect(notifier.kinds()).toEqual(['link_lost', 'link_back']);

    presenter.stop();
    runtime.link('down');
    vi.advanceTimersByTime(120_000);
    expect(notifier.kinds()).toEqual(['link_lost', 'link_back']);
    expect(notifier.closed).toBe(true);
  });
});

describe('the prompt says how the page came to the person (the unlock.prompt ack, issue #13)', () => {
  /** Emit a prompt and return what the presenter reported through `shown`. */
  async function shownFor(runtime: FakeRuntime, flow: 'unlock' | 'register' = 'unlock'): Promise<string | null> {
    let reported: Promise<string> | null = null;
    runtime.emit({ kind: 'prompt', flow, shown: (p) => void (reported = p) });
    return reported === null ? null : await reported;
  }

  it('browser that opens: opened', async () => {
    const { runtime, opener } = setup('browser');
    expect(await shownFor(runtime)).toBe('opened');
    expect(opener.opened).toEqual([runtime.current]);
  });

  it('browser already showing the page: opened (it shows the new form by itself), no second tab', async () => {
    const { runtime, opener } = setup('notify');
    runtime.open = true;
    expect(await shownFor(runtime)).toBe('opened');
    expect(opener.opened).toEqual([]);
  });

  it('browser that fails: notified when there is a notifier, none without', async () => {
    const a = setup('browser');
    a.opener.answer = { opened: false, reason: 'ENOENT' };
    expect(await shownFor(a.runtime)).toBe('notified');
    expect(a.notifier.kinds()).toEqual(['code_request']);
    const b = setup('browser', false);
    b.opener.answer = { opened: false, reason: 'ENOENT' };
    expect(await shownFor(b.runtime)).toBe('none');
  });

  it('notify: notified; off without notifications: none', async () => {
    const a = setup('notify');
    expect(await shownFor(a.runtime)).toBe('notified');
    expect(a.opener.opened).toEqual([]);
    const b = setup('off', false);
    expect(await shownFor(b.runtime, 'register')).toBe('none');
    expect(b.notifier.notices).toEqual([]);
  });
});
