import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import type { CompanionEvent, CompanionSnapshot } from '../companion.runtime';
import { FakeNotifier, FakePageOpener } from './desktop.fake';
import { DesktopPresenter, type PresenterRuntime } from './desktop.presenter';

const logger = createLogger({ name: 'presenter-pairing-spec', level: 'silent' });

/** A runtime stand-in whose snapshot the spec sets, emitting a state event each time. */
class StateRuntime implements PresenterRuntime {
  private readonly listeners = new Set<(e: CompanionEvent) => void>();
  state: CompanionSnapshot = { pairing: { kind: 'not_paired', code: null }, link: 'down', card: { kind: 'unknown' } };
  onEvent(listener: (e: CompanionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  snapshot(): CompanionSnapshot {
    return this.state;
  }
  printPageLink(): string {
    return 'http://127.0.0.1:4000/?t=' + 'A'.repeat(43);
  }
  currentPageLink(): string {
    return this.printPageLink();
  }
  pageIsOpen(): boolean {
    return false;
  }
  set(state: Partial<CompanionSnapshot>): void {
    this.state = { ...this.state, ...state };
    for (const l of this.listeners) l({ kind: 'state' });
  }
}

const code = (userCode: string): CompanionSnapshot['pairing'] => ({ kind: 'not_paired', code: { userCode, expiresAt: new Date(Date.now() + 600_000) } });

describe('an unpaired companion that sees a locked card (issue #14: the pairing code comes to the person)', () => {
  it('says how to start once per pairing code, with the code, only for a locked card, never when paired', () => {
    const runtime = new StateRuntime();
    const notifier = new FakeNotifier();
    new DesktopPresenter({ runtime, opener: new FakePageOpener(), notifier, openPage: 'browser', logger }).start();

    runtime.set({ card: { kind: 'locked', reader: 'R' } }); // no code yet
    runtime.set({ pairing: code('ABCD-2345'), card: { kind: 'ok', reader: 'R' } }); // card not locked
    expect(notifier.notices).toEqual([]);

    runtime.set({ card: { kind: 'locked', reader: 'R' } });
    runtime.set({ link: 'down' }); // another state change: not said twice
    expect(notifier.kinds()).toEqual(['pairing_code']);
    expect(notifier.notices[0]!.title).toBe('Smartcard Assist: your smartcard is locked');
    expect(notifier.notices[0]!.body).toBe('To unlock it, send "pair ABCD-2345" to Smartcard Assist in Teams, then "unlock".');
    expect(notifier.notices[0]!.body).not.toMatch(/\bPIN\b/);

    runtime.set({ pairing: code('WXYZ-6789') }); // a new code (the old one expired): said again
    expect(notifier.notices.map((n) => n.body.match(/pair (\S+)"/)?.[1])).toEqual(['ABCD-2345', 'WXYZ-6789']);

    runtime.set({ pairing: { kind: 'paired', personName: 'Alex' } });
    runtime.set({ card: { kind: 'none' } });
    runtime.set({ card: { kind: 'locked', reader: 'R' } });
    expect(notifier.notices).toHaveLength(2);
  });

  it('without notifications nothing is said', () => {
    const runtime = new StateRuntime();
    new DesktopPresenter({ runtime, opener: null, notifier: null, openPage: 'off', logger }).start();
    expect(() => runtime.set({ pairing: code('ABCD-2345'), card: { kind: 'locked', reader: 'R' } })).not.toThrow();
  });
});
