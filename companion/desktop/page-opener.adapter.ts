/**
 * Open the passcode page in the person's browser with the platform's URL
 * handler: `xdg-open` (freedesktop.org xdg-utils) on Linux and other Unix,
 * `open` on macOS, `rundll32 url.dll,FileProtocolHandler` on Windows (the
 * shell's default-browser handler, without `cmd`'s own parsing of the line),
 * or a program of the person's choosing (`COMPANION_BROWSER_COMMAND`), given
 * the link as its one argument. No shell is involved.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../../common/logger';
import { PAGE_LINK_PATTERN } from '../passcode-page/page-link.control';
import type { OpenOutcome, PageOpener } from './desktop.port';

/** How long to wait for the opener to fail before taking it as started, ms (xdg-open may keep running). */
const SETTLE_MS = 3000;

/**
 * The platform's program and arguments that open a URL.
 *
 * @param platform - `process.platform`
 * @returns program and the arguments before the URL
 */
export function platformOpenCommand(platform: NodeJS.Platform): { program: string; args: string[] } {
  if (platform === 'darwin') return { program: 'open', args: [] };
  if (platform === 'win32') return { program: 'rundll32', args: ['url.dll,FileProtocolHandler'] };
  return { program: 'xdg-open', args: [] };
}

/** Opens page links with a program. */
export class CommandPageOpener implements PageOpener {
  private readonly program: string;
  private readonly args: string[];

  /**
   * @param options.command - program to run with the link as its last argument; null = the platform's ({@link platformOpenCommand})
   * @param options.logger - non-secret facts only (never the link)
   * @param options.platform - default `process.platform`
   */
  constructor(private readonly options: { command: string | null; logger: Logger; platform?: NodeJS.Platform }) {
    const platform = platformOpenCommand(options.platform ?? process.platform);
    this.program = options.command ?? platform.program;
    this.args = options.command ? [] : platform.args;
  }

  open(url: string): Promise<OpenOutcome> {
    const { logger } = this.options;
    if (!PAGE_LINK_PATTERN.test(url)) return Promise.resolve({ opened: false, reason: 'not a passcode page link' });
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: OpenOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (outcome.opened) logger.info({ program: this.program }, 'passcode page opened in the browser');
        else logger.warn({ program: this.program, reason: outcome.reason }, 'could not open the passcode page in the browser');
        resolve(outcome);
      };
      const child = spawn(this.program, [...this.args, url], { stdio: 'ignore', detached: process.platform !== 'win32', windowsHide: true });
      const timer = setTimeout(() => done({ opened: true }), SETTLE_MS);
      child.once('error', (err: NodeJS.ErrnoException) => done({ opened: false, reason: err.code ?? 'spawn failed' }));
      child.once('exit', (code) => done(code === 0 ? { opened: true } : { opened: false, reason: `exit code ${String(code)}` }));
      child.unref();
    });
  }
}
