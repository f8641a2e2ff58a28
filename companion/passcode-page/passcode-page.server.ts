/**
 * The companion's local passcode page: the only place a passcode is typed.
 *
 * Served by node:http on 127.0.0.1 only. A person opens it through a URL with
 * a one-time token (`/?t=TOKEN`, 32 random bytes), which is exchanged at once
 * for an HttpOnly, SameSite=Strict session cookie; the answer moves on to `/`
 * with a same-origin refresh, so the token leaves the address bar. Every request must carry `Host: 127.0.0.1:PORT` or `localhost:PORT`
 * exactly (a DNS-rebinding page cannot), and every POST an `Origin` that
 * matches it (a cross-site form cannot). The CSP allows nothing but inline
 * style and same-origin form posts; no script is needed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../../common/logger';
import { PasscodePageError } from '../companion.errors';
import { renderContinue, renderNotice, renderPage, UNLOCK_FIELDS, VERIFY_FIELDS, type PageView } from './page-view';

/** The only address the page binds. */
export const PAGE_HOST = '127.0.0.1' as const;

/** Content-Security-Policy of every response (the brief's three directives plus framing and base-uri locks). */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" as const;

/** Name of the session cookie. */
export const SESSION_COOKIE = 'sa_companion_session' as const;

/** What the person typed in the unlock form. Secrets: held in memory only, never logged. */
export interface UnlockForm {
  code: string;
  passcode: string;
  confirmation: string;
}

/** What the person typed in the registration form. Secret: held in memory only, never logged. */
export interface VerifyForm {
  passcode: string;
}

/** What the page asks of the rest of the companion. */
export interface PasscodePageBackend {
  /** The screen to show now. */
  view(): PageView;
  /**
   * Take the unlock form; resolve once the outcome is known (or the page stops waiting).
   * @param form - code and passcodes as typed
   */
  submitUnlock(form: UnlockForm): Promise<void>;
  /**
   * Take the registration form (current passcode); resolve once the outcome is known.
   * @param form - the passcode as typed
   */
  submitPasscode(form: VerifyForm): Promise<void>;
  /** The person pressed "Try again" on an error screen. */
  retry(): void;
}

export interface PasscodePageOptions {
  backend: PasscodePageBackend;
  logger: Logger;
  /** TCP port; 0 = any free port. */
  port: number;
  /** Address to bind; anything but 127.0.0.1 is refused. Default 127.0.0.1. */
  host?: string;
  /** Longest time a POST waits for the outcome before answering, in ms; default 60 000. */
  submitWaitMs?: number;
  /** Idle lifetime of a session, in ms; default 12 hours. */
  sessionIdleMs?: number;
}

const MAX_BODY_BYTES = 4096;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The local page server. */
export class PasscodePageServer {
  private server: Server | null = null;
  private boundPort = 0;
  /** SHA-256 of the one live link token; null when none is outstanding. */
  private tokenHash: Buffer | null = null;
  /** SHA-256 (hex) of session id -> expiry (ms since epoch). */
  private readonly sessions = new Map<string, number>();

  constructor(private readonly options: PasscodePageOptions) {}

  /** Port the page listens on (after {@link start}). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Listen on 127.0.0.1.
   *
   * @returns the bound port
   * @throws PasscodePageError `PAGE.NOT_LOOPBACK` when asked to bind any other address (nothing is bound)
   */
  async start(): Promise<number> {
    const host = this.options.host ?? PAGE_HOST;
    if (host !== PAGE_HOST) {
      throw new PasscodePageError('NOT_LOOPBACK', `the passcode page binds ${PAGE_HOST} only; refused to bind ${host}`, { host });
    }
    const server = createServer({ maxHeaderSize: 8192 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.options.logger.error({ err: { name: err instanceof Error ? err.name : 'unknown', message: err instanceof Error ? err.message : '' } }, 'passcode page request failed');
        if (!res.headersSent) this.send(res, 500, renderNotice('Something went wrong', 'Reload the page to try again.'));
        else res.end();
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = (this.options.submitWaitMs ?? 60_000) + 15_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: PAGE_HOST, port: this.options.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
    this.options.logger.info({ port: this.boundPort }, 'passcode page listening on 127.0.0.1');
    return this.boundPort;
  }

  /**
   * Mint a new one-time link (any earlier unused link stops working).
   *
   * @returns `http://127.0.0.1:PORT/?t=TOKEN`, TOKEN = 32 random bytes base64url; a secret until used
   * @throws PasscodePageError `PAGE.NOT_STARTED` before {@link start}
   */
  issueLink(): string {
    if (!this.server) throw new PasscodePageError('NOT_STARTED', 'the passcode page is not listening');
    const token = randomBytes(32).toString('base64url');
    this.tokenHash = sha256(token);
    return `http://${PAGE_HOST}:${this.boundPort}/?t=${token}`;
  }

  /** True when a link was issued and has not been used yet. */
  hasOutstandingLink(): boolean {
    return this.tokenHash !== null;
  }

  /** True when at least one browser session is live. */
  hasSession(): boolean {
    this.pruneSessions();
    return this.sessions.size > 0;
  }

  /** Stop listening and forget every session and token. */
  async stop(): Promise<void> {
    this.tokenHash = null;
    this.sessions.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // -------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const log = this.options.logger;
    const host = (req.headers.host ?? '').toLowerCase();
    if (host !== `${PAGE_HOST}:${this.boundPort}` && host !== `localhost:${this.boundPort}`) {
      log.warn({ method: req.method }, 'passcode page refused a request with a wrong Host header');
      req.resume();
      this.send(res, 421, renderNotice('Wrong address', `Open this page at http://${PAGE_HOST}:${this.boundPort}/ from the link the companion printed.`));
      return;
    }
    const url = new URL(req.url ?? '/', `http://${host}`);
    const method = req.method ?? 'GET';

    if (method === 'POST') {
      const origin = req.headers.origin;
      if (origin !== `http://${host}`) {
        log.warn({ path: url.pathname, hasOrigin: origin !== undefined }, 'passcode page refused a POST with a missing or foreign Origin');
        req.resume();
        this.send(res, 403, renderNotice('Request refused', 'This form can only be sent from the companion page itself.'));
        return;
      }
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') {
        req.resume();
        this.send(res, 403, renderNotice('Request refused', 'This form can only be sent from the companion page itself.'));
        return;
      }
    }

    // One-time token exchange: GET /?t=TOKEN
    if (method === 'GET' && url.pathname === '/' && url.searchParams.has('t')) {
      const token = url.searchParams.get('t') ?? '';
      if (this.takeToken(token)) {
        const sid = randomBytes(32).toString('base64url');
        this.sessions.set(sha256(sid).toString('hex'), Date.now() + this.sessionIdleMs());
        res.setHeader('Set-Cookie', `${SESSION_COOKIE}=${sid}; HttpOnly; SameSite=Strict; Path=/`);
        log.info('passcode page link used; browser session started');
        this.send(res, 200, renderContinue());
        return;
      }
      if (this.hasValidSession(req)) {
        this.redirect(res, '/');
        return;
      }
      log.warn('passcode page refused a used or unknown link');
      this.send(res, 403, renderNotice('This link has expired', 'Each link works once. Use the newest link the companion printed.'));
      return;
    }

    if (!this.hasValidSession(req)) {
      req.resume();
      this.send(res, 401, renderNotice('Open the page from its link', 'Use the link the companion printed (it starts with http://127.0.0.1 and works once).'));
      return;
    }

    if (url.pathname === '/') {
      if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
      this.send(res, 200, renderPage(this.options.backend.view()), method === 'HEAD');
      return;
    }
    if (url.pathname === '/unlock') {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res);
      if (!form) return;
      await this.waitForOutcome(
        this.options.backend.submitUnlock({
          code: form.get(UNLOCK_FIELDS.code) ?? '',
          passcode: form.get(UNLOCK_FIELDS.passcode) ?? '',
          confirmation: form.get(UNLOCK_FIELDS.confirmation) ?? '',
        }),
      );
      this.redirect(res, '/');
      return;
    }
    if (url.pathname === '/verify') {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res);
      if (!form) return;
      await this.waitForOutcome(this.options.backend.submitPasscode({ passcode: form.get(VERIFY_FIELDS.passcode) ?? '' }));
      this.redirect(res, '/');
      return;
    }
    if (url.pathname === '/retry') {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res);
      if (!form) return;
      this.options.backend.retry();
      this.redirect(res, '/');
      return;
    }
    this.send(res, 404, renderNotice('Not found', 'There is nothing here. Go back to the companion page.'));
  }

  /** Wait for a submission's outcome, at most `submitWaitMs`; the page then follows the state. */
  private async waitForOutcome(submitted: Promise<void>): Promise<void> {
    const ac = new AbortController();
    await Promise.race([submitted.catch(() => undefined), delay(this.options.submitWaitMs ?? 60_000, undefined, { signal: ac.signal }).catch(() => undefined)]);
    ac.abort();
  }

  private takeToken(token: string): boolean {
    if (this.tokenHash === null || token.length === 0 || token.length > 128) return false;
    const ok = timingSafeEqual(sha256(token), this.tokenHash);
    if (ok) this.tokenHash = null; // one use
    return ok;
  }

  private hasValidSession(req: IncomingMessage): boolean {
    const sid = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (!sid) return false;
    this.pruneSessions();
    const key = sha256(sid).toString('hex');
    if (!this.sessions.has(key)) return false;
    this.sessions.set(key, Date.now() + this.sessionIdleMs());
    return true;
  }

  private pruneSessions(): void {
    const now = Date.now();
    for (const [key, expiry] of this.sessions) if (expiry <= now) this.sessions.delete(key);
  }

  private sessionIdleMs(): number {
    return this.options.sessionIdleMs ?? 12 * 60 * 60 * 1000;
  }

  private async readForm(req: IncomingMessage, res: ServerResponse): Promise<URLSearchParams | null> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      req.resume();
      this.send(res, 415, renderNotice('Request refused', 'The form was sent in a format this page does not take.'));
      return null;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        this.send(res, 413, renderNotice('Request refused', 'The form was too large.'));
        req.destroy();
        return null;
      }
      chunks.push(chunk as Buffer);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  private methodNotAllowed(res: ServerResponse, allow: string): void {
    res.setHeader('Allow', allow);
    this.send(res, 405, renderNotice('Not allowed', 'Go back to the companion page.'));
  }

  private redirect(res: ServerResponse, location: string): void {
    this.setSecurityHeaders(res);
    res.writeHead(303, { Location: location, 'Content-Length': '0' });
    res.end();
  }

  private send(res: ServerResponse, status: number, html: string, headOnly = false): void {
    this.setSecurityHeaders(res);
    const body = Buffer.from(html, 'utf8');
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(body.length) });
    res.end(headOnly ? undefined : body);
  }

  private setSecurityHeaders(res: ServerResponse): void {
    res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    // Not `no-referrer`: with it a browser sends `Origin: null` on the page's own form POST (Fetch
    // standard, "append a request Origin header"), and the Origin check would refuse it.
    res.setHeader('Referrer-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  }
}

function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
