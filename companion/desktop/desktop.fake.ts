/**
 * Test doubles of the desktop ports (`desktop.port.ts`): they record what the
 * companion asked for, so specs assert on it.
 */
import type { DesktopNotifier, Notice, OpenOutcome, PageOpener } from './desktop.port';

/** Records every link it is asked to open; answers `opened` (or what `answer` says). */
export class FakePageOpener implements PageOpener {
  readonly opened: string[] = [];
  answer: OpenOutcome = { opened: true };

  open(url: string): Promise<OpenOutcome> {
    this.opened.push(url);
    return Promise.resolve(this.answer);
  }
}

/** Records every notice; `click(kind)` runs the latest such notice's action as a person's click would. */
export class FakeNotifier implements DesktopNotifier {
  readonly notices: Notice[] = [];
  closed = false;

  notify(notice: Notice): void {
    this.notices.push(notice);
  }

  close(): void {
    this.closed = true;
  }

  /** The kinds raised so far, in order. */
  kinds(): Notice['kind'][] {
    return this.notices.map((n) => n.kind);
  }

  /**
   * Click "Open passcode page" on the latest notice of this kind.
   *
   * @throws Error when there is no such notice, or it has no action
   */
  click(kind: Notice['kind']): void {
    const notice = [...this.notices].reverse().find((n) => n.kind === kind);
    if (!notice?.onOpen) throw new Error(`no ${kind} notice with an action`);
    notice.onOpen();
  }
}
