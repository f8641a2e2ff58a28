import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../common/logger';
import { renderContinue, renderPage, type PageView } from './page-view';
import { PAGE_CSP, PAGE_SESSION_LIFETIME, PasscodePageServer, SESSION_COOKIE, type UnlockForm, type VerifyForm } from './passcode-page.server';

const logger = createLogger({ name: 'page-spec', level: 'silent' });

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function send(port: number, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: { host: `127.0.0.1:${port}`, ...options.headers }, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

class FakeBackend {
  view: PageView = { state: 'pairing', userCode: 'K7QF-M2XD', expiresAt: new Date(Date.now() + 600_000) };
  forms: UnlockForm[] = [];
  verifyForms: VerifyForm[] = [];
  retries = 0;
  passcodeChanges = 0;
  submitDelayMs = 0;
  backend = {
    view: (): PageView => this.view,
    submitUnlock: async (form: UnlockForm): Promise<void> => {
      this.forms.push(form);
      if (this.submitDelayMs > 0) await new Promise((r) => setTimeout(r, this.submitDelayMs));
    },
    submitPasscode: async (form: VerifyForm): Promise<void> => {
      this.verifyForms.push(form);
    },
    retry: (): void => {
      this.retries += 1;
    },
    changePasscode: (): void => {
      this.passcodeChanges += 1;
    },
  };
}

let server: PasscodePageServer | null = null;
afterEach(async () => {
  await server?.stop();
  server = null;
});

async function startPage(fake = new FakeBackend(), submitWaitMs?: number): Promise<{ fake: FakeBackend; port: number; page: PasscodePageServer }> {
  server = new PasscodePageServer({ backend: fake.backend, logger, port: 0, ...(submitWaitMs !== undefined ? { submitWaitMs } : {}) });
  const port = await server.start();
  return { fake, port, page: server };
}

interface Session {
  /** `name=value` of the session cookie. */
  cookie: string;
  /** The cookie's Path attribute. */
  cookiePath: string;
  /** The page's path, `/p/<scope>/`. */
  path: string;
  /** The form token from the page's forms. */
  token: string;
}

/** Exchange a fresh link for a session: the cookie, the page's path and its form token. */
async function session(page: PasscodePageServer, port: number, fake: FakeBackend): Promise<Session> {
  const link = new URL(page.issueLink());
  const res = await send(port, { path: `${link.pathname}${link.search}` });
  expect(res.status).toBe(200);
  const setCookie = res.headers['set-cookie']?.[0] ?? '';
  const path = /content="0;url=([^"]+)"/.exec(res.body)?.[1] ?? '';
  // The token is in every form; show a form once to read it.
  const view = fake.view;
  fake.view = { state: 'awaiting_passcode', error: null };
  const shown = await send(port, { path, headers: { cookie: setCookie.split(';')[0]! } });
  fake.view = view;
  const token = /name="form_token" value="([^"]+)"/.exec(shown.body)?.[1] ?? '';
  return { cookie: setCookie.split(';')[0]!, cookiePath: /Path=([^;]+)/.exec(setCookie)?.[1] ?? '', path, token };
}

const formBody = (s: Session, fields: string): string => `form_token=${s.token}&${fields}`;

const FORM = 'code=1234-5678&passcode=284719&confirmation=284719';
const URLENCODED = 'application/x-www-form-urlencoded';
const awaitingUnlock = (): Extract<PageView, { state: 'awaiting_unlock' }> => ({ state: 'awaiting_unlock', codeExpiresAt: new Date(Date.now() + 600_000), error: null });

describe('passcode page: binding', () => {
  it.each(['0.0.0.0', '::', '192.0.2.1', 'localhost', '::1'])('refuses to bind %s', async (host) => {
    const page = new PasscodePageServer({ backend: new FakeBackend().backend, logger, port: 0, host });
    await expect(page.start()).rejects.toMatchObject({ code: 'PAGE.NOT_LOOPBACK' });
    expect(page.port).toBe(0);
  });

  it('binds 127.0.0.1 and issues links of 32 random bytes on it', async () => {
    const { page, port } = await startPage();
    const a = new URL(page.issueLink());
    const b = new URL(page.issueLink());
    expect(a.host).toBe(`127.0.0.1:${port}`);
    expect(a.pathname).toBe('/');
    expect(Buffer.from(a.searchParams.get('t')!, 'base64url')).toHaveLength(32);
    expect(a.searchParams.get('t')).not.toBe(b.searchParams.get('t'));
  });
});

describe('passcode page: one-time link and a session scoped to its own path', () => {
  it('exchanges the token once for an HttpOnly SameSite=Strict cookie scoped to /p/<16 random bytes>/, and refreshes there', async () => {
    const { page, port } = await startPage();
    const link = new URL(page.issueLink());
    const first = await send(port, { path: `/?t=${link.searchParams.get('t')}` });
    expect(first.status).toBe(200);
    const target = /<meta http-equiv="refresh" content="0;url=(\/p\/([A-Za-z0-9_-]{22})\/)">/.exec(first.body);
    expect(target, first.body).not.toBeNull();
    expect(Buffer.from(target![2]!, 'base64url')).toHaveLength(16);
    expect(first.body).not.toContain('K7QF-M2XD');
    const cookie = first.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Path=${target![1]}; HttpOnly; SameSite=Strict$`));

    const shown = await send(port, { path: target![1], headers: { cookie: cookie.split(';')[0]! } });
    expect(shown.status).toBe(200);
    expect(shown.body).toContain('pair K7QF-M2XD');

    const again = await send(port, { path: `/?t=${link.searchParams.get('t')}` });
    expect(again.status).toBe(403);
    expect(again.headers['set-cookie']).toBeUndefined();
    expect(again.body).not.toContain('K7QF-M2XD');
    expect(again.body).toContain('--page-link');
  });

  it('reading the page needs both the cookie and the path', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const other = `/p/${Buffer.alloc(16, 9).toString('base64url')}/`;
    for (const [path, cookie] of [
      ['/', s.cookie],
      ['/unlock', s.cookie],
      [other, s.cookie],
      [s.path.slice(0, -1), s.cookie], // no trailing slash
      [`${s.path.slice(0, -2)}x/`, s.cookie], // one character off
      [s.path, ''],
      [s.path, `${SESSION_COOKIE}=${Buffer.alloc(32, 1).toString('base64url')}`],
    ] as const) {
      const res = await send(port, { path, headers: cookie ? { cookie } : {} });
      expect(res.status, `${path} ${cookie ? 'with' : 'without'} cookie`).toBe(401);
      expect(res.body).not.toContain('K7QF-M2XD');
      expect(res.body).toContain('data-state="refused"');
    }
    expect((await send(port, { path: `${s.path}nope`, headers: { cookie: s.cookie } })).status).toBe(404);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(200);
  });

  it('takes the session cookie among others of the same name (one set by a server on another port)', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const tossed = `${SESSION_COOKIE}=${Buffer.alloc(32, 3).toString('base64url')}`;
    expect((await send(port, { path: s.path, headers: { cookie: `${tossed}; ${s.cookie}` } })).status).toBe(200);
    expect((await send(port, { path: s.path, headers: { cookie: `${s.cookie}; ${tossed}` } })).status).toBe(200);
  });

  it('refuses a request with no token and no session, and an unknown token', async () => {
    const { page, port } = await startPage();
    page.issueLink();
    const none = await send(port, {});
    expect(none.status).toBe(401);
    expect(none.body).not.toContain('K7QF-M2XD');
    const wrong = await send(port, { path: `/?t=${Buffer.alloc(32, 7).toString('base64url')}` });
    expect(wrong.status).toBe(403);
    expect(wrong.body).not.toContain('K7QF-M2XD');
    const forged = await send(port, { headers: { cookie: `${SESSION_COOKIE}=forged` } });
    expect(forged.status).toBe(401);
  });

  it('currentLink() gives the unused link again, and a new one once it was used', async () => {
    const { page, port } = await startPage();
    const first = page.currentLink();
    expect(page.currentLink()).toBe(first);
    expect(page.hasOutstandingLink()).toBe(true);
    expect((await send(port, { path: `/?t=${new URL(first).searchParams.get('t')}` })).status).toBe(200);
    expect(page.hasOutstandingLink()).toBe(false);
    const second = page.currentLink();
    expect(second).not.toBe(first);
    expect((await send(port, { path: `/?t=${new URL(second).searchParams.get('t')}` })).status).toBe(200);
  });

  it('a newer link replaces an unused older one', async () => {
    const { page, port } = await startPage();
    const old = new URL(page.issueLink());
    page.issueLink();
    expect((await send(port, { path: `/?t=${old.searchParams.get('t')}` })).status).toBe(403);
  });

  it('using a new link ends the earlier session (one session at a time); minting one does not', async () => {
    const { fake, page, port } = await startPage();
    const first = await session(page, port, fake);
    const link = new URL(page.issueLink());
    expect((await send(port, { path: first.path, headers: { cookie: first.cookie } })).status).toBe(200);
    expect(page.hasSession()).toBe(true);
    expect((await send(port, { path: `/?t=${link.searchParams.get('t')}` })).status).toBe(200);
    const old = await send(port, { path: first.path, headers: { cookie: first.cookie } });
    expect(old.status).toBe(401);
    expect(old.body).toContain('new link');
  });

  it('does not spend the token on HEAD (link previews)', async () => {
    const { page, port } = await startPage();
    const link = new URL(page.issueLink());
    const head = await send(port, { method: 'HEAD', path: `/?t=${link.searchParams.get('t')}` });
    expect(head.status).toBe(401);
    expect((await send(port, { path: `/?t=${link.searchParams.get('t')}` })).status).toBe(200);
  });
});

describe('passcode page: session lifetime', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is 20 minutes idle (longer than a 15-minute unlock code) and 8 hours in all', () => {
    expect(PAGE_SESSION_LIFETIME).toEqual({ idleMs: 20 * 60_000, maxMs: 8 * 60 * 60_000 });
  });

  it('ends after the idle time without a request; every request of the session moves it on', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    vi.setSystemTime(Date.now() + PAGE_SESSION_LIFETIME.idleMs - 60_000);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(200);
    vi.setSystemTime(Date.now() + PAGE_SESSION_LIFETIME.idleMs - 60_000);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(200);
    expect(page.hasSession()).toBe(true);
    vi.setSystemTime(Date.now() + PAGE_SESSION_LIFETIME.idleMs + 1);
    expect(page.hasSession()).toBe(false);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('isOpenInBrowser (issue #13): true only while the session\'s page was asked for in the last 15 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { fake, page, port } = await startPage();
    expect(page.isOpenInBrowser()).toBe(false);
    const s = await session(page, port, fake);
    expect(page.isOpenInBrowser()).toBe(true);
    vi.setSystemTime(Date.now() + 16_000);
    expect(page.isOpenInBrowser()).toBe(false); // closed tab: the session lives on, the page is not open
    expect(page.hasSession()).toBe(true);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(200);
    expect(page.isOpenInBrowser()).toBe(true);
    vi.setSystemTime(Date.now() + 10_000);
    expect((await send(port, { path: '/', headers: { cookie: s.cookie } })).status).toBe(401); // not the session's page
    vi.setSystemTime(Date.now() + 6_000);
    expect(page.isOpenInBrowser()).toBe(false);
  });

  it('requests that are not the session\'s own do not keep it alive', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    for (let i = 0; i < 3; i += 1) {
      vi.setSystemTime(Date.now() + PAGE_SESSION_LIFETIME.idleMs / 2);
      expect((await send(port, { path: '/', headers: { cookie: s.cookie } })).status).toBe(401);
    }
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('ends after 8 hours however busy', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const end = Date.now() + PAGE_SESSION_LIFETIME.maxMs;
    while (Date.now() + 10 * 60_000 < end) {
      vi.setSystemTime(Date.now() + 10 * 60_000);
      expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(200);
    }
    vi.setSystemTime(end);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).status).toBe(401);
  });
});

describe('passcode page: Host, Origin and form token checks', () => {
  it.each(['evil.example', 'evil.example:PORT', '127.0.0.1', '127.0.0.1:1', '127.0.0.2:PORT', '[::1]:PORT', ''])('refuses Host %j even with a session', async (hostTemplate) => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const res = await send(port, { path: s.path, headers: { host: hostTemplate.replace('PORT', String(port)), cookie: s.cookie } });
    expect(res.status).toBe(421);
    expect(res.body).not.toContain('K7QF-M2XD');
    expect(res.headers['content-security-policy']).toBe(PAGE_CSP);
  });

  it('accepts localhost:PORT as well as 127.0.0.1:PORT', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    expect((await send(port, { path: s.path, headers: { host: `localhost:${port}`, cookie: s.cookie } })).status).toBe(200);
  });

  it('a token link sent with a wrong Host is refused and stays unspent', async () => {
    const { page, port } = await startPage();
    const link = new URL(page.issueLink());
    const res = await send(port, { path: `/?t=${link.searchParams.get('t')}`, headers: { host: 'attacker.example' } });
    expect(res.status).toBe(421);
    const later = await send(port, { path: `/?t=${link.searchParams.get('t')}` });
    expect(later.status).toBe(200);
    expect(later.headers['set-cookie']?.[0]).toContain(SESSION_COOKIE);
  });

  it.each([
    ['missing', undefined],
    ['foreign', 'http://evil.example'],
    ['null', 'null'],
    ['other port', 'http://127.0.0.1:1'],
    ['https scheme', 'https://127.0.0.1:PORT'],
  ])('refuses a POST with a %s Origin, and the form never reaches the controller', async (_name, originTemplate) => {
    const { fake, page, port } = await startPage();
    fake.view = awaitingUnlock();
    const s = await session(page, port, fake);
    const headers: Record<string, string> = { cookie: s.cookie, 'content-type': URLENCODED };
    if (originTemplate !== undefined) headers['origin'] = originTemplate.replace('PORT', String(port));
    const res = await send(port, { method: 'POST', path: `${s.path}unlock`, headers, body: formBody(s, FORM) });
    expect(res.status).toBe(403);
    expect(fake.forms).toEqual([]);
  });

  it('refuses a cross-site POST flagged by Sec-Fetch-Site even with a matching Origin', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const res = await send(port, {
      method: 'POST',
      path: `${s.path}unlock`,
      headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site', 'content-type': URLENCODED },
      body: formBody(s, FORM),
    });
    expect(res.status).toBe(403);
    expect(fake.forms).toEqual([]);
  });

  it('refuses a same-origin POST without a session, or outside the session\'s path', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const origin = `http://127.0.0.1:${port}`;
    expect((await send(port, { method: 'POST', path: `${s.path}unlock`, headers: { origin, 'content-type': URLENCODED }, body: formBody(s, FORM) })).status).toBe(401);
    expect((await send(port, { method: 'POST', path: '/unlock', headers: { origin, cookie: s.cookie, 'content-type': URLENCODED }, body: formBody(s, FORM) })).status).toBe(401);
    expect(fake.forms).toEqual([]);
  });

  it.each([
    ['no form token', (_s: Session) => FORM],
    ['an empty form token', (_s: Session) => `form_token=&${FORM}`],
    ['a made-up form token', (_s: Session) => `form_token=${Buffer.alloc(32, 5).toString('base64url')}&${FORM}`],
    ['the form token cut short', (s: Session) => `form_token=${s.token.slice(0, -1)}&${FORM}`],
  ])('refuses a POST with the cookie and the path but %s', async (_name, body) => {
    const { fake, page, port } = await startPage();
    fake.view = awaitingUnlock();
    const s = await session(page, port, fake);
    for (const action of ['unlock', 'verify', 'retry', 'change-passcode']) {
      const res = await send(port, { method: 'POST', path: `${s.path}${action}`, headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body: body(s) });
      expect(res.status, action).toBe(403);
    }
    expect(fake.forms).toEqual([]);
    expect(fake.verifyForms).toEqual([]);
    expect(fake.retries).toBe(0);
    expect(fake.passcodeChanges).toBe(0);
  });

  it('the form token of an ended session does not work in the next one', async () => {
    const { fake, page, port } = await startPage();
    const first = await session(page, port, fake);
    const second = await session(page, port, fake);
    expect(second.token).not.toBe(first.token);
    expect(second.path).not.toBe(first.path);
    const res = await send(port, { method: 'POST', path: `${second.path}unlock`, headers: { cookie: second.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body: formBody(first, FORM) });
    expect(res.status).toBe(403);
    expect(fake.forms).toEqual([]);
  });

  it('takes a same-origin POST with the form token, answers after the outcome is known, then redirects to the page', async () => {
    const { fake, page, port } = await startPage();
    fake.submitDelayMs = 300;
    const s = await session(page, port, fake);
    const started = Date.now();
    const res = await send(port, { method: 'POST', path: `${s.path}unlock`, headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body: formBody(s, FORM) });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(s.path);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(fake.forms).toEqual([{ code: '1234-5678', passcode: '284719', confirmation: '284719' }]);
  });

  it('stops waiting at the cap and shows the page (which then follows the outcome)', async () => {
    const { fake, page, port } = await startPage(new FakeBackend(), 150);
    fake.submitDelayMs = 5_000;
    const s = await session(page, port, fake);
    const started = Date.now();
    const res = await send(port, {
      method: 'POST',
      path: `${s.path}unlock`,
      headers: { cookie: s.cookie, origin: `http://localhost:${port}`, host: `localhost:${port}`, 'content-type': URLENCODED },
      body: formBody(s, FORM),
    });
    expect(res.status).toBe(303);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('refuses a form that is not urlencoded or too large', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const base = { cookie: s.cookie, origin: `http://127.0.0.1:${port}` };
    expect((await send(port, { method: 'POST', path: `${s.path}unlock`, headers: { ...base, 'content-type': 'application/json' }, body: '{}' })).status).toBe(415);
    expect((await send(port, { method: 'POST', path: `${s.path}unlock`, headers: { ...base, 'content-type': URLENCODED }, body: formBody(s, `code=${'1'.repeat(5000)}`) })).status).toBe(413);
    expect(fake.forms).toEqual([]);
  });
});

describe('passcode page: the typed unlock code after a passcode refusal', () => {
  it('is put back in its field on the next page only when the view asks for it, once; the passcodes never are', async () => {
    const { fake, page, port } = await startPage();
    fake.view = awaitingUnlock();
    const s = await session(page, port, fake);
    const headers = { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED };
    // The controller refuses the passcode only: the view asks to keep the code.
    fake.backend.submitUnlock = async (form: UnlockForm): Promise<void> => {
      fake.forms.push(form);
      fake.view = { ...awaitingUnlock(), error: 'Your new passcode cannot be the unlock code from your email.', keepTypedCode: true };
    };
    const body = formBody(s, 'code=4072+9163&passcode=40729163&confirmation=40729163');
    expect((await send(port, { method: 'POST', path: `${s.path}unlock`, headers, body })).status).toBe(303);
    const shown = await send(port, { path: s.path, headers: { cookie: s.cookie } });
    expect(shown.body).toMatch(/<input id="code" [^>]*value="4072 9163">/);
    expect(shown.body).not.toMatch(/<input id="(passcode|confirmation)" [^>]*value=/);
    // Once: a reload shows the field empty.
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).body).not.toMatch(/<input id="code" [^>]*value=/);

    // A refusal of the code itself (the view does not ask) keeps nothing.
    fake.backend.submitUnlock = async (form: UnlockForm): Promise<void> => {
      fake.forms.push(form);
      fake.view = { ...awaitingUnlock(), error: 'That unlock code is not right.' };
    };
    expect((await send(port, { method: 'POST', path: `${s.path}unlock`, headers, body })).status).toBe(303);
    expect((await send(port, { path: s.path, headers: { cookie: s.cookie } })).body).not.toMatch(/<input id="code" [^>]*value=/);
  });
});

describe('passcode page: headers and markup', () => {
  it('sends the CSP and the no-store, no-frame, same-origin-referrer headers on every answer', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    for (const res of [
      await send(port, { path: s.path, headers: { cookie: s.cookie } }),
      await send(port, {}),
      await send(port, { path: `${s.path}nope`, headers: { cookie: s.cookie } }),
    ]) {
      expect(res.headers['content-security-policy']).toBe(PAGE_CSP);
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('same-origin');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    expect(PAGE_CSP).toContain("default-src 'none'");
    expect(PAGE_CSP).toContain("style-src 'unsafe-inline'");
    expect(PAGE_CSP).toContain("form-action 'self'");
  });

  const future = new Date(Date.now() + 600_000);
  const context = { formToken: 'T0KEN_abc-123' };
  const views: PageView[] = [
    { state: 'starting' },
    { state: 'pairing', userCode: 'K7QF-M2XD', expiresAt: future },
    { state: 'idle', personName: 'Alex <b>Wilber</b>', connected: true, notice: 'Done & dusted' },
    { state: 'awaiting_unlock', codeExpiresAt: future, error: '<script>alert(1)</script>' },
    { state: 'working', step: 'checking_code' },
    { state: 'working', step: 'unlocking' },
    { state: 'card_removed', wrongCard: false },
    { state: 'card_removed', wrongCard: true },
    { state: 'done' },
    { state: 'error', message: 'Something', canRetry: true },
    { state: 'working', step: 'checking_passcode' },
    { state: 'awaiting_passcode', error: 'That passcode is not right.' },
    { state: 'passcode_verified' },
    { state: 'error', title: 'Your passcode was not checked', message: 'x', canRetry: false },
  ];
  it.each(views.map((v) => [v.state, v] as const))('%s renders without script, external resources or the word PIN; each form carries the token', (_s, view) => {
    const html = renderPage(view, context);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)=/i);
    expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    expect(html).not.toMatch(/\bPIN\b/);
    expect(html).toContain(`data-state="${view.state}"`);
    const forms = html.match(/<form [^>]*>[\s\S]*?<\/form>/g) ?? [];
    for (const f of forms) {
      expect(f).toMatch(/^<form method="post" action="(unlock|verify|retry)">/); // relative: under the session's path
      expect(f).toContain('<input type="hidden" name="form_token" value="T0KEN_abc-123">');
    }
  });

  it('the unlock form has visible labels tied to its inputs and the button text', () => {
    const html = renderPage({ state: 'awaiting_unlock', codeExpiresAt: future, error: null }, context);
    for (const [id, label] of [['code', 'Unlock code'], ['passcode', 'New passcode'], ['confirmation', 'Confirm new passcode']]) {
      expect(html).toContain(`<label for="${id}">${label}</label>`);
      expect(html).toMatch(new RegExp(`<input id="${id}" name="${id}"`));
    }
    expect(html).toMatch(/<input id="passcode"[^>]*type="password"/);
    expect(html).toContain('<button type="submit">Unlock my card</button>');
    expect(html).toContain('<form method="post" action="unlock">');
  });

  it('puts a typed code back only when the view asks, escaped', () => {
    const view: PageView = { state: 'awaiting_unlock', codeExpiresAt: future, error: 'x', keepTypedCode: true };
    expect(renderPage(view, { ...context, typedCode: '1234"><b>' })).toContain('value="1234&quot;&gt;&lt;b&gt;"');
    expect(renderPage({ ...view, keepTypedCode: false }, { ...context, typedCode: '12345678' })).not.toContain('12345678');
    expect(renderPage(view, context)).not.toMatch(/<input id="code" [^>]*value=/);
  });

  it('escapes text from elsewhere', () => {
    expect(renderPage({ state: 'awaiting_unlock', codeExpiresAt: future, error: '<script>alert(1)</script>' }, context)).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(renderPage({ state: 'idle', personName: 'Alex <b>Wilber</b>', connected: true, notice: null }, context)).toContain('Alex &lt;b&gt;Wilber&lt;/b&gt;');
    expect(renderPage({ state: 'awaiting_passcode', error: null }, { formToken: '"><script>' })).not.toContain('"><script>');
  });

  it('the continue page refreshes to the session\'s path', () => {
    expect(renderContinue('/p/abc/')).toContain('<meta http-equiv="refresh" content="0;url=/p/abc/">');
  });

  it('takes the registration form at /verify only from the page itself', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const body = formBody(s, 'current_passcode=204817');
    const foreign = await send(port, { method: 'POST', path: `${s.path}verify`, headers: { cookie: s.cookie, origin: 'http://evil.example', 'content-type': URLENCODED }, body });
    expect(foreign.status).toBe(403);
    expect(fake.verifyForms).toEqual([]);
    const own = await send(port, { method: 'POST', path: `${s.path}verify`, headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body });
    expect(own.status).toBe(303);
    expect(fake.verifyForms).toEqual([{ passcode: '204817' }]);
    const html = renderPage({ state: 'awaiting_passcode', error: null }, context);
    expect(html).toContain('<form method="post" action="verify">');
    expect(html).toContain('<button type="submit">Check my passcode</button>');
  });

  it('routes "Try again" to the backend', async () => {
    const { fake, page, port } = await startPage();
    const s = await session(page, port, fake);
    const res = await send(port, { method: 'POST', path: `${s.path}retry`, headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body: formBody(s, '') });
    expect(res.status).toBe(303);
    expect(fake.retries).toBe(1);
  });

  it('routes "Choose a different passcode" to the backend (POST with the form token only)', async () => {
    const { fake, page, port } = await startPage();
    fake.view = { ...awaitingUnlock(), passcodeKept: true };
    const s = await session(page, port, fake);
    const shown = await send(port, { path: s.path, headers: { cookie: s.cookie } });
    expect(shown.body).toContain('<form method="post" action="change-passcode">');
    expect(shown.body).not.toContain('name="passcode"');
    expect((await send(port, { path: `${s.path}change-passcode`, headers: { cookie: s.cookie } })).status).toBe(405);
    const res = await send(port, { method: 'POST', path: `${s.path}change-passcode`, headers: { cookie: s.cookie, origin: `http://127.0.0.1:${port}`, 'content-type': URLENCODED }, body: formBody(s, '') });
    expect(res.status).toBe(303);
    expect(fake.passcodeChanges).toBe(1);
  });
});
