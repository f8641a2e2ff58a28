/**
 * Ways for a person to get a new passcode page link from a running companion,
 * so a closed browser never shuts them out (issue #10 finding 6):
 * - a line on the companion's terminal (Enter), see {@link watchLinkRequests};
 * - `companion --page-link` from another terminal: it asks the running
 *   companion over a Unix domain socket in the companion's data directory
 *   (`page-link.sock`, the directory 0700 and the socket 0600, so only the same
 *   user can connect - the same user who can read the device credential there).
 *   The asker sends `link`, the companion answers with a fresh link and closes; see {@link PageLinkControl}
 *   and {@link requestPageLink}.
 *
 * The page itself never mints links: anything that can reach 127.0.0.1 could
 * ask it. The link is a secret until used; it is written to the asker only
 * (and printed on the companion's own stdout, as every link is).
 *
 * NOTE: POSIX only. On Windows the socket is not offered (a named pipe's
 * default access is wider than the data directory's); the terminal and the
 * link printed on every prompt remain.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../../common/logger';

/** File name of the control socket inside the companion's data directory. */
export const PAGE_LINK_SOCKET = 'page-link.sock' as const;

/** What a client sends to ask for a link (one line). */
const LINK_REQUEST = 'link';

/** What a second companion sends to ask this one to show itself (one line; answered `shown`). */
const SHOW_REQUEST = 'show';
const SHOWN_ANSWER = 'shown';

/** What `companion --unpair` sends to the running companion (one line; answered `unpaired` or `unreachable`). */
const UNPAIR_REQUEST = 'unpair';

/** The shape of a link the companion hands out (loopback, one-time token of 32 bytes base64url). */
export const PAGE_LINK_PATTERN = /^http:\/\/127\.0\.0\.1:\d{1,5}\/\?t=[A-Za-z0-9_-]{43}$/;

/**
 * Path of the control socket for a data directory.
 *
 * @param dataDir - the companion's data directory (absolute)
 * @returns `<dataDir>/page-link.sock`
 */
export function pageLinkSocketPath(dataDir: string): string {
  return join(dataDir, PAGE_LINK_SOCKET);
}

export interface PageLinkControlOptions {
  /** Where to listen (see {@link pageLinkSocketPath}). */
  socketPath: string;
  /** Mint (and print) a new link; called once per `link` connection. */
  issue: () => string;
  /**
   * Show this companion to the person (a second start asked; `desktop/single-instance.ts`):
   * e.g. open the passcode page and print a new link. Absent = `show` requests are refused.
   */
  show?: () => void;
  /**
   * Unpair over this companion's own link (`companion --unpair` while it runs: the bot keeps one link per
   * device, so the command line cannot open its own). Absent = `unpair` requests are refused.
   */
  unpair?: () => Promise<'unpaired' | 'unreachable'>;
  logger: Logger;
}

/** Outcome of {@link PageLinkControl.start}. */
export type PageLinkControlStart = { listening: true } | { listening: false; reason: 'not_supported' | 'in_use' | 'failed' };

/** The companion's side of `--page-link`: answers each connection with a fresh link. */
export class PageLinkControl {
  private server: Server | null = null;

  constructor(private readonly options: PageLinkControlOptions) {}

  /**
   * Listen on the socket. A socket file left by a companion that died is replaced; one that
   * another running companion answers on is left alone.
   *
   * @returns `{ listening: true }`, or why not (`not_supported` on Windows, `in_use` by another
   *   companion with the same data directory, `failed` for anything else; logged, not thrown)
   */
  async start(): Promise<PageLinkControlStart> {
    const { socketPath, logger } = this.options;
    if (process.platform === 'win32') return { listening: false, reason: 'not_supported' };
    try {
      await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
      await chmod(dirname(socketPath), 0o700);
      if (await answers(socketPath)) {
        logger.warn('another companion answers on the page link socket of this data directory; --page-link reaches that one');
        return { listening: false, reason: 'in_use' };
      }
      await rm(socketPath, { force: true });
      const server = createServer((socket) => {
        socket.on('error', () => undefined);
        socket.setTimeout(5000, () => socket.destroy());
        socket.setEncoding('utf8');
        let asked = '';
        socket.on('data', (chunk: string) => {
          asked += chunk;
          if (asked.length > 64) {
            socket.destroy();
            return;
          }
          if (!asked.includes('\n')) return;
          // `companion --unpair` while this one runs (`unpair\n`): answered with the outcome.
          if (asked === `${UNPAIR_REQUEST}\n` && this.options.unpair) {
            socket.setTimeout(0);
            this.options.unpair().then(
              (outcome) => {
                logger.info({ outcome }, 'unpair asked for from the command line');
                socket.end(`${outcome}\n`);
              },
              () => socket.end('unreachable\n'),
            );
            return;
          }
          // A second companion start asks this one to show itself (`show\n`), answered `shown\n`.
          if (asked === `${SHOW_REQUEST}\n` && this.options.show) {
            try {
              this.options.show();
            } catch (err) {
              logger.warn({ errorCode: (err as { code?: string }).code ?? null }, 'could not show the companion on request');
              socket.end('\n');
              return;
            }
            logger.info('a second start asked this companion to show itself');
            socket.end(`${SHOWN_ANSWER}\n`);
            return;
          }
          // One request per connection: `link\n` (a connection that asks nothing mints nothing).
          if (asked !== `${LINK_REQUEST}\n`) {
            socket.destroy();
            return;
          }
          let link: string;
          try {
            link = this.options.issue();
          } catch (err) {
            logger.warn({ errorCode: (err as { code?: string }).code ?? null }, 'no page link for a --page-link request');
            socket.end('\n');
            return;
          }
          logger.info('new passcode page link handed out on request');
          socket.end(`${link}\n`);
        });
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
      await chmod(socketPath, 0o600);
      this.server = server;
      return { listening: true };
    } catch (err) {
      logger.warn({ errorCode: (err as NodeJS.ErrnoException).code ?? null }, 'page link socket not available; --page-link will not reach this companion');
      return { listening: false, reason: 'failed' };
    }
  }

  /** Stop listening and remove the socket file. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.options.socketPath, { force: true }).catch(() => undefined);
  }
}

/** What {@link requestPageLink} got. */
export type PageLinkAnswer = { ok: true; link: string } | { ok: false; reason: 'not_running' | 'no_answer'; message: string };

/**
 * Ask the companion running on a data directory for a new page link.
 *
 * @param socketPath - see {@link pageLinkSocketPath}
 * @param timeoutMs - give up after this many ms (default 5000)
 * @returns the link, or why there is none with a sentence for the person (never throws)
 */
export function requestPageLink(socketPath: string, timeoutMs = 5000): Promise<PageLinkAnswer> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const done = (answer: PageLinkAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const noAnswer: PageLinkAnswer = { ok: false, reason: 'no_answer', message: 'The companion did not give a page link. Look at the companion window, or restart the companion.' };
    const socket = connect(socketPath, () => socket.write(`${LINK_REQUEST}\n`));
    const timer = setTimeout(() => done(noAnswer), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 512) done(noAnswer);
    });
    socket.on('end', () => {
      const link = text.trim();
      done(PAGE_LINK_PATTERN.test(link) ? { ok: true, link } : noAnswer);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      done(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? { ok: false, reason: 'not_running', message: 'No companion is running for this data directory. Start the companion; it prints a page link.' }
          : noAnswer,
      );
    });
  });
}

/**
 * Ask the companion running on a data directory to show itself (a second start of the companion:
 * `desktop/single-instance.ts`). It opens its passcode page (when opening is on) and prints a new link.
 *
 * @param socketPath - see {@link pageLinkSocketPath}
 * @param timeoutMs - give up after this many ms (default 5000)
 * @returns true when the running companion answered that it showed itself (never throws)
 */
export function requestShow(socketPath: string, timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const done = (shown: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(shown);
    };
    const socket = connect(socketPath, () => socket.write(`${SHOW_REQUEST}\n`));
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 64) done(false);
    });
    socket.on('end', () => done(text.trim() === SHOWN_ANSWER));
    socket.on('error', () => done(false));
  });
}

/**
 * Ask the companion running on a data directory to unpair over its own link (`companion --unpair` while it runs).
 *
 * @param socketPath - see {@link pageLinkSocketPath}
 * @param timeoutMs - give up after this many ms (default 30 000: the bot is asked over the link)
 * @returns `unpaired`, `unreachable` (the running companion could not reach the bot: nothing changed), or
 *   `no_answer` (no companion answered, or it cannot unpair); never throws
 */
export function requestUnpair(socketPath: string, timeoutMs = 30_000): Promise<'unpaired' | 'unreachable' | 'no_answer'> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const done = (outcome: 'unpaired' | 'unreachable' | 'no_answer'): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const socket = connect(socketPath, () => socket.write(`${UNPAIR_REQUEST}\n`));
    const timer = setTimeout(() => done('no_answer'), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 64) done('no_answer');
    });
    socket.on('end', () => {
      const answer = text.trim();
      done(answer === 'unpaired' || answer === 'unreachable' ? answer : 'no_answer');
    });
    socket.on('error', () => done('no_answer'));
  });
}

/**
 * Call `onRequest` for every line typed on `input` (the companion's terminal: Enter asks for a new link).
 *
 * @param input - a readable text stream (normally `process.stdin` when it is a TTY)
 * @param onRequest - called once per line; what was typed is not used
 * @returns a function that stops watching
 */
export function watchLinkRequests(input: NodeJS.ReadableStream, onRequest: () => void): () => void {
  const lines = createInterface({ input, terminal: false });
  lines.on('line', () => onRequest());
  return () => lines.close();
}

/** True when something accepts connections on `socketPath` now. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
