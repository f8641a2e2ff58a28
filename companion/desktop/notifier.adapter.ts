/**
 * Desktop notifications through the platform's own tool: `notify-send`
 * (libnotify, Debian package `libnotify-bin`, 0.7.9 or later for actions) on
 * Linux, which talks to the session's notification service (freedesktop.org
 * Desktop Notifications Specification 1.2); `osascript`'s `display notification`
 * on macOS (no action button there). Windows: none yet (logged once).
 *
 * A notification with `onOpen` carries the action "Open passcode page":
 * `notify-send --action` waits until the person clicks it or the notification
 * closes, and prints the action's name, on which `onOpen` runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../../common/logger';
import type { DesktopNotifier, Notice } from './desktop.port';

/** The action's name on the notify-send command line and in its answer. */
const OPEN_ACTION = 'open';

/** Longest a notification's action is waited for, ms (then the wait is ended; the notification may stay). */
const ACTION_WAIT_MS = 30 * 60_000;

/** Raises notifications with notify-send (Linux) or osascript (macOS). */
export class CommandNotifier implements DesktopNotifier {
  private readonly waiting = new Set<ChildProcess>();
  private readonly byKind = new Map<Notice['kind'], ChildProcess>();
  private saidUnsupported = false;

  /**
   * @param options.logger - the notice kind only, never its text
   * @param options.platform - default `process.platform`
   * @param options.program - notify-send's path (default `notify-send`; tests)
   */
  constructor(private readonly options: { logger: Logger; platform?: NodeJS.Platform; program?: string }) {}

  notify(notice: Notice): void {
    const platform = this.options.platform ?? process.platform;
    if (platform === 'darwin') {
      this.run('osascript', ['-e', 'on run argv', '-e', 'display notification (item 2 of argv) with title (item 1 of argv)', '-e', 'end run', notice.title, notice.body], notice);
    } else if (platform === 'win32') {
      if (!this.saidUnsupported) this.options.logger.info('desktop notifications are not available on Windows yet; the tray icon and the browser remain');
      this.saidUnsupported = true;
    } else {
      const action = notice.onOpen ? [`--action=${OPEN_ACTION}=Open passcode page`] : [];
      this.run(this.options.program ?? 'notify-send', ['--app-name=Smartcard Assist', '--icon=dialog-information', ...action, '--', notice.title, notice.body], notice);
    }
  }

  close(): void {
    for (const child of this.waiting) child.kill();
    this.waiting.clear();
    this.byKind.clear();
  }

  private run(program: string, args: string[], notice: Notice): void {
    const { logger } = this.options;
    // A newer notice of the same kind replaces the wait for the older one's action (one notify-send each).
    const older = this.byKind.get(notice.kind);
    if (older) older.kill();
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'ignore'], windowsHide: true });
    this.waiting.add(child);
    this.byKind.set(notice.kind, child);
    let answer = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      if (answer.length < 256) answer += chunk;
    });
    const timer = setTimeout(() => child.kill(), ACTION_WAIT_MS);
    const forget = (): void => {
      clearTimeout(timer);
      this.waiting.delete(child);
      if (this.byKind.get(notice.kind) === child) this.byKind.delete(notice.kind);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      forget();
      logger.warn({ notice: notice.kind, program, errorCode: err.code ?? null }, 'desktop notification not shown: the program cannot be started');
    });
    child.once('exit', (code, signal) => {
      forget();
      if (signal !== null) return; // replaced by a newer notice, or the companion stopped
      if (code !== 0 && code !== null) {
        logger.warn({ notice: notice.kind, program, exitCode: code }, 'desktop notification not shown (no notification service in this session?)');
        return;
      }
      logger.debug({ notice: notice.kind }, 'desktop notification shown');
      if (answer.trim() === OPEN_ACTION) notice.onOpen?.();
    });
  }
}
