/**
 * The companion's local passcode page: the only place a passcode is typed.
 *
 * Served by node:http on 127.0.0.1 only. A person opens it through a URL with
 * a one-time token (`/?t=TOKEN`, 32 random bytes). Using it starts the one
 * browser session (any earlier session ends) and answers with:
 * - a session cookie scoped to a random path: `Path=/p/<scope>/` (scope = 16
 *   random bytes, new for every session), HttpOnly, SameSite=Strict. Cookies
 *   are not isolated by port (RFC 6265 8.5): a browser sends a `Path=/` cookie
 *   to every server on 127.0.0.1. Scoped to a path no other server knows, the
 *   browser sends it nowhere else (`__Host-` would need https);
 * - a same-origin refresh to `/p/<scope>/`, so the token leaves the address bar.
 *
 * The page answers only under its session's scope, and only with the cookie:
 * reading it needs both the cookie and the path. Every form also carries the
 * session's form token (32 random bytes, in the page only, never a cookie):
 * a POST needs the cookie, the path and the token, so a cookie that reached
 * another port is not enough to read the page or send a form. A session ends
 * after {@link PAGE_SESSION_LIFETIME} idle or in all, and when the next link is
 * used; the companion prints a link on every prompt (the unused one, else a new
 * one) and a new link when asked.
 *
 * Every request must carry `Host: 127.0.0.1:PORT` or `localhost:PORT`
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
import { FORM_TOKEN_FIELD, renderContinue, renderNotice, renderPage, UNLOCK_ACTIONS, UNLOCK_FIELDS, VERIFY_FIELDS, type PageView } from './page-view';

/** The only address the page binds. */
export const PAGE_HOST = '127.0.0.1' as const;

/** Content-Security-Policy of every response (the brief's three directives plus framing and base-uri locks). */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" as const;

/** Name of the session cookie. */
export const SESSION_COOKIE = 'sa_companion_session' as const;

/** Path prefix of a session's page: `/p/<scope>/`, scope = 16 random bytes base64url (22 characters). */
export const PAGE_SCOPE_PREFIX = '/p/' as const;

/**
 * How long a browser session lives, in ms. Idle: 20 minutes, longer than an unlock code's
 * 15 minutes (bot `codeTtlMs`), so a person waiting on the form for the email is not sent away;
 * the pages that change by themselves reload every few seconds and so keep an open tab alive.
 * In all: 8 hours (a working day). A new link is always available, so ending sooner costs little.
 */
export const PAGE_SESSION_LIFETIME = { idleMs: 20 * 60 * 1000, maxMs: 8 * 60 * 60 * 1000 } as const;

/** How long a typed unlock code is kept for the next render of the form, in ms. */
const KEEP_TYPED_CODE_MS = 60 * 1000;

/** What to say when a page is asked for without a live session (link used, expired, replaced, or none). */
const NEW_LINK_HINT =
  'For a new link, choose "Open passcode page" in the Smartcard Assist tray menu, press Enter in the companion window, or run the companion again with --page-link. Each link starts with http://127.0.0.1 and works once.';

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
  /** The person pressed "Choose a different passcode" on the form that kept one after a wrong code. */
  changePasscode(): void;
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
  /** Idle lifetime of a session, in ms; default {@link PAGE_SESSION_LIFETIME}.idleMs. */
  sessionIdleMs?: number;
  /** Longest life of a session, in ms; default {@link PAGE_SESSION_LIFETIME}.maxMs. */
  sessionMaxMs?: number;
}

/** The one browser session. Its secrets are held in memory only and never logged. */
interface Session {
  /** The page lives at `/p/<scope>/`; the cookie's Path. */
  scope: string;
  /** SHA-256 of the cookie value. */
  sidHash: Buffer;
  /** Carried by every form of the page (hidden field), checked on every POST. */
  formToken: string;
  /** Ends when idle past this (ms since epoch); every request of the session moves it on. */
  idleUntil: number;
  /** Ends at this time whatever happens (ms since epoch). */
  endsAt: number;
  /** When the browser last asked for the session's page (ms since epoch): an open page refreshes itself every few seconds. */
  lastSeen: number;
  /** The unlock code as typed in a refused form, for the next render of the form only. */
  typedCode: { value: string; until: number } | null;
}

const MAX_BODY_BYTES = 4096;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The local page server. */
export class PasscodePageServer {
  private server: Server | null = null;
  private boundPort = 0;
  /** The one unused link (secret, memory only) and the SHA-256 of its token; null when none is outstanding. */
  private outstanding: { link: string; tokenHash: Buffer } | null = null;
  /** The one live browser session; null when none. */
  private session: Session | null = null;

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
    const link = `http://${PAGE_HOST}:${this.boundPort}/?t=${token}`;
    this.outstanding = { link, tokenHash: sha256(token) };
    return link;
  }

  /**
   * The unused link if there is one (the same link again: one printed earlier keeps working),
   * else a new one from {@link issueLink}.
   *
   * @returns `http://127.0.0.1:PORT/?t=TOKEN` (a secret until used)
   * @throws PasscodePageError `PAGE.NOT_STARTED` before {@link start}
   */
  currentLink(): string {
    if (!this.server) throw new PasscodePageError('NOT_STARTED', 'the passcode page is not listening');
    return this.outstanding?.link ?? this.issueLink();
  }

  /** True when a link was issued and has not been used yet. */
  hasOutstandingLink(): boolean {
    return this.outstanding !== null;
  }

  /**
   * True when a browser has the page open now: its session is live and asked for the page within
   * `withinMs` (an open page refreshes itself every 2-10 s while nothing is typed; page-view.ts).
   *
   * @param withinMs - how recent the last request must be, ms (default 15 000)
   */
  isOpenInBrowser(withinMs = 15_000): boolean {
    const session = this.liveSession();
    return session !== null && Date.now() - session.lastSeen <= withinMs;
  }

  /** True when a browser session is live. */
  hasSession(): boolean {
    return this.liveSession() !== null;
  }

  /** Stop listening and forget the session and token. */
  async stop(): Promise<void> {
    this.outstanding = null;
    this.session = null;
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

    // One-time token exchange: GET /?t=TOKEN starts the session (and ends any earlier one).
    if (method === 'GET' && url.pathname === '/' && url.searchParams.has('t')) {
      const token = url.searchParams.get('t') ?? '';
      if (this.takeToken(token)) {
        const sid = randomBytes(32).toString('base64url');
        const now = Date.now();
        const ended = this.liveSession() !== null;
        const session: Session = {
          scope: randomBytes(16).toString('base64url'),
          sidHash: sha256(sid),
          formToken: randomBytes(32).toString('base64url'),
          idleUntil: now + this.idleMs(),
          endsAt: now + (this.options.sessionMaxMs ?? PAGE_SESSION_LIFETIME.maxMs),
          lastSeen: now,
          typedCode: null,
        };
        this.session = session;
        const pagePath = `${PAGE_SCOPE_PREFIX}${session.scope}/`;
        res.setHeader('Set-Cookie', `${SESSION_COOKIE}=${sid}; Path=${pagePath}; HttpOnly; SameSite=Strict`);
        log.info({ endedEarlierSession: ended }, 'passcode page link used; browser session started');
        this.send(res, 200, renderContinue(pagePath));
        return;
      }
      log.warn('passcode page refused a used or unknown link');
      this.send(res, 403, renderNotice('This link has expired', `Each link works once, and a newer link replaces it. ${NEW_LINK_HINT}`));
      return;
    }

    const session = this.sessionFor(req, url.pathname);
    if (!session) {
      req.resume();
      this.send(res, 401, renderNotice('Open the page from a new link', `This page needs a new link. ${NEW_LINK_HINT}`));
      return;
    }
    const route = url.pathname.slice(PAGE_SCOPE_PREFIX.length + session.scope.length);

    if (route === '/') {
      if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
      const view = this.options.backend.view();
      const typed = session.typedCode !== null && session.typedCode.until > Date.now() ? session.typedCode.value : null;
      if (method === 'GET') session.typedCode = null; // put back once
      this.send(res, 200, renderPage(view, { formToken: session.formToken, typedCode: typed }), method === 'HEAD');
      return;
    }
    const pagePath = `${PAGE_SCOPE_PREFIX}${session.scope}/`;
    if (route === `/${UNLOCK_ACTIONS.changePasscode}`) {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res, session);
      if (!form) return;
      this.options.backend.changePasscode();
      this.redirect(res, pagePath);
      return;
    }
    if (route === `/${UNLOCK_ACTIONS.submit}`) {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res, session);
      if (!form) return;
      const code = form.get(UNLOCK_FIELDS.code) ?? '';
      session.typedCode = null;
      await this.waitForOutcome(
        this.options.backend.submitUnlock({
          code,
          passcode: form.get(UNLOCK_FIELDS.passcode) ?? '',
          confirmation: form.get(UNLOCK_FIELDS.confirmation) ?? '',
        }),
      );
      const after = this.options.backend.view();
      if (after.state === 'awaiting_unlock' && after.keepTypedCode === true && this.session === session) {
        session.typedCode = { value: code.slice(0, 32), until: Date.now() + KEEP_TYPED_CODE_MS };
      }
      this.redirect(res, pagePath);
      return;
    }
    if (route === '/verify') {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res, session);
      if (!form) return;
      await this.waitForOutcome(this.options.backend.submitPasscode({ passcode: form.get(VERIFY_FIELDS.passcode) ?? '' }));
      this.redirect(res, pagePath);
      return;
    }
    if (route === '/retry') {
      if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
      const form = await this.readForm(req, res, session);
      if (!form) return;
      this.options.backend.retry();
      this.redirect(res, pagePath);
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
    if (this.outstanding === null || token.length === 0 || token.length > 128) return false;
    const ok = timingSafeEqual(sha256(token), this.outstanding.tokenHash);
    if (ok) this.outstanding = null; // one use
    return ok;
  }

  /**
   * The live session when the request is for its page (`/p/<scope>/...`) and carries its cookie;
   * moves the idle deadline on. Anything else (no scope, another scope, no or wrong cookie) is null.
   */
  private sessionFor(req: IncomingMessage, pathname: string): Session | null {
    const session = this.liveSession();
    if (!session) return null;
    const prefix = `${PAGE_SCOPE_PREFIX}${session.scope}`;
    if (!safeEqual(pathname.slice(0, prefix.length), prefix) || pathname[prefix.length] !== '/') return null;
    // A server on another port may have set a same-named cookie for 127.0.0.1 too: any value may match.
    const ok = readCookies(req.headers.cookie, SESSION_COOKIE).some((sid) => sid.length <= 128 && timingSafeEqual(sha256(sid), session.sidHash));
    if (!ok) return null;
    session.idleUntil = Math.min(Date.now() + this.idleMs(), session.endsAt);
    session.lastSeen = Date.now();
    return session;
  }

  /** The session if it has not ended (idle or in all); an ended one is forgotten. */
  private liveSession(): Session | null {
    const s = this.session;
    if (s && Math.min(s.idleUntil, s.endsAt) <= Date.now()) {
      this.session = null;
      this.options.logger.info('passcode page session ended (idle or too old)');
      return null;
    }
    return s;
  }

  private idleMs(): number {
    return this.options.sessionIdleMs ?? PAGE_SESSION_LIFETIME.idleMs;
  }

  /** Read an urlencoded form of at most 4 KiB and check its form token; null when refused (answered here). */
  private async readForm(req: IncomingMessage, res: ServerResponse, session: Session): Promise<URLSearchParams | null> {
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
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (!safeEqual(form.get(FORM_TOKEN_FIELD) ?? '', session.formToken)) {
      this.options.logger.warn('passcode page refused a form without the page\'s form token');
      this.send(res, 403, renderNotice('Request refused', 'This form can only be sent from the companion page itself.'));
      return null;
    }
    return form;
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

/** Every value of the cookie `name` in a Cookie header (a browser may send several with one name). */
function readCookies(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values.slice(0, 8);
}

/** Constant-time comparison of two strings (by their SHA-256, so the lengths may differ). */
function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}
