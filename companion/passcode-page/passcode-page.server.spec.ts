import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { renderPage, type PageView } from './page-view';
import { PAGE_CSP, PasscodePageServer, SESSION_COOKIE, type UnlockForm, type VerifyForm } from './passcode-page.server';

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

/** Exchange a fresh link for a session cookie header value. */
async function session(page: PasscodePageServer, port: number): Promise<string> {
  const link = new URL(page.issueLink());
  const res = await send(port, { path: `${link.pathname}${link.search}` });
  expect(res.status).toBe(200);
  const setCookie = res.headers['set-cookie']?.[0] ?? '';
  return setCookie.split(';')[0]!;
}

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
    expect(Buffer.from(a.searchParams.get('t')!, 'base64url')).toHaveLength(32);
    expect(a.searchParams.get('t')).not.toBe(b.searchParams.get('t'));
  });
});

describe('passcode page: one-time link and session', () => {
  it('exchanges the token once for an HttpOnly SameSite=Strict cookie and moves on to / by a same-origin refresh', async () => {
    const { page, port } = await startPage();
    const link = new URL(page.issueLink());
    const first = await send(port, { path: `/?t=${link.searchParams.get('t')}` });
    expect(first.status).toBe(200);
    expect(first.body).toContain('<meta http-equiv="refresh" content="0;url=/">');
    expect(first.body).not.toContain('K7QF-M2XD');
    const cookie = first.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43};`));
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');

    const shown = await send(port, { headers: { cookie: cookie.split(';')[0]! } });
    expect(shown.status).toBe(200);
    expect(shown.body).toContain('pair K7QF-M2XD');

    const again = await send(port, { path: `/?t=${link.searchParams.get('t')}` });
    expect(again.status).toBe(403);
    expect(again.headers['set-cookie']).toBeUndefined();
    expect(again.body).not.toContain('K7QF-M2XD');
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

  it('a newer link replaces an unused older one', async () => {
    const { page, port } = await startPage();
    const old = new URL(page.issueLink());
    page.issueLink();
    expect((await send(port, { path: `/?t=${old.searchParams.get('t')}` })).status).toBe(403);
  });

  it('does not spend the token on HEAD (link previews)', async () => {
    const { page, port } = await startPage();
    const link = new URL(page.issueLink());
    const head = await send(port, { method: 'HEAD', path: `/?t=${link.searchParams.get('t')}` });
    expect(head.status).toBe(401);
    expect((await send(port, { path: `/?t=${link.searchParams.get('t')}` })).status).toBe(200);
  });
});

describe('passcode page: Host and Origin checks', () => {
  it.each(['evil.example', 'evil.example:PORT', '127.0.0.1', '127.0.0.1:1', '127.0.0.2:PORT', '[::1]:PORT', ''])('refuses Host %j even with a session', async (hostTemplate) => {
    const { page, port } = await startPage();
    const cookie = await session(page, port);
    const res = await send(port, { headers: { host: hostTemplate.replace('PORT', String(port)), cookie } });
    expect(res.status).toBe(421);
    expect(res.body).not.toContain('K7QF-M2XD');
    expect(res.headers['content-security-policy']).toBe(PAGE_CSP);
  });

  it('accepts localhost:PORT as well as 127.0.0.1:PORT', async () => {
    const { page, port } = await startPage();
    const cookie = await session(page, port);
    expect((await send(port, { headers: { host: `localhost:${port}`, cookie } })).status).toBe(200);
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

  const form = 'code=1234-5678&passcode=284719&confirmation=284719';
  it.each([
    ['missing', undefined],
    ['foreign', 'http://evil.example'],
    ['null', 'null'],
    ['other port', 'http://127.0.0.1:1'],
    ['https scheme', 'https://127.0.0.1:PORT'],
  ])('refuses a POST with a %s Origin, and the form never reaches the controller', async (_name, originTemplate) => {
    const { fake, page, port } = await startPage();
    fake.view = { state: 'awaiting_unlock', codeExpiresAt: new Date(Date.now() + 600_000), error: null };
    const cookie = await session(page, port);
    const headers: Record<string, string> = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
    if (originTemplate !== undefined) headers['origin'] = originTemplate.replace('PORT', String(port));
    const res = await send(port, { method: 'POST', path: '/unlock', headers, body: form });
    expect(res.status).toBe(403);
    expect(fake.forms).toEqual([]);
  });

  it('refuses a cross-site POST flagged by Sec-Fetch-Site even with a matching Origin', async () => {
    const { fake, page, port } = await startPage();
    const cookie = await session(page, port);
    const res = await send(port, {
      method: 'POST',
      path: '/unlock',
      headers: { cookie, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    expect(res.status).toBe(403);
    expect(fake.forms).toEqual([]);
  });

  it('refuses a same-origin POST without a session', async () => {
    const { fake, port } = await startPage();
    const res = await send(port, { method: 'POST', path: '/unlock', headers: { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    expect(res.status).toBe(401);
    expect(fake.forms).toEqual([]);
  });

  it('takes a same-origin POST, answers after the outcome is known, then redirects to the page', async () => {
    const { fake, page, port } = await startPage();
    fake.submitDelayMs = 300;
    const cookie = await session(page, port);
    const started = Date.now();
    const res = await send(port, {
      method: 'POST',
      path: '/unlock',
      headers: { cookie, origin: `http://127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(fake.forms).toEqual([{ code: '1234-5678', passcode: '284719', confirmation: '284719' }]);
  });

  it('stops waiting at the cap and shows the page (which then follows the outcome)', async () => {
    const { fake, page, port } = await startPage(new FakeBackend(), 150);
    fake.submitDelayMs = 5_000;
    const cookie = await session(page, port);
    const started = Date.now();
    const res = await send(port, {
      method: 'POST',
      path: '/unlock',
      headers: { cookie, origin: `http://localhost:${port}`, host: `localhost:${port}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    expect(res.status).toBe(303);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('refuses a form that is not urlencoded or too large', async () => {
    const { fake, page, port } = await startPage();
    const cookie = await session(page, port);
    const base = { cookie, origin: `http://127.0.0.1:${port}` };
    expect((await send(port, { method: 'POST', path: '/unlock', headers: { ...base, 'content-type': 'application/json' }, body: '{}' })).status).toBe(415);
    expect(
      (await send(port, { method: 'POST', path: '/unlock', headers: { ...base, 'content-type': 'application/x-www-form-urlencoded' }, body: `code=${'1'.repeat(5000)}` })).status,
    ).toBe(413);
    expect(fake.forms).toEqual([]);
  });
});

describe('passcode page: headers and markup', () => {
  it('sends the CSP and the no-store, no-frame, same-origin-referrer headers on every answer', async () => {
    const { page, port } = await startPage();
    const cookie = await session(page, port);
    for (const res of [await send(port, { headers: { cookie } }), await send(port, {}), await send(port, { path: '/nope', headers: { cookie } })]) {
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
  it.each(views.map((v) => [v.state, v] as const))('%s renders without script, external resources or the word PIN', (_s, view) => {
    const html = renderPage(view);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)=/i);
    expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    expect(html).not.toMatch(/\bPIN\b/);
    expect(html).toContain(`data-state="${view.state}"`);
  });

  it('the unlock form has visible labels tied to its inputs and the button text', () => {
    const html = renderPage({ state: 'awaiting_unlock', codeExpiresAt: future, error: null });
    for (const [id, label] of [['code', 'Unlock code'], ['passcode', 'New passcode'], ['confirmation', 'Confirm new passcode']]) {
      expect(html).toContain(`<label for="${id}">${label}</label>`);
      expect(html).toMatch(new RegExp(`<input id="${id}" name="${id}"`));
    }
    expect(html).toMatch(/<input id="passcode"[^>]*type="password"/);
    expect(html).toContain('<button type="submit">Unlock my card</button>');
    expect(html).toContain('<form method="post" action="/unlock">');
  });

  it('escapes text from elsewhere', () => {
    expect(renderPage({ state: 'awaiting_unlock', codeExpiresAt: future, error: '<script>alert(1)</script>' })).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(renderPage({ state: 'idle', personName: 'Alex <b>Wilber</b>', connected: true, notice: null })).toContain('Alex &lt;b&gt;Wilber&lt;/b&gt;');
  });

  it('takes the registration form at /verify only from the page itself', async () => {
    const { fake, page, port } = await startPage();
    const cookie = await session(page, port);
    const body = 'current_passcode=204817';
    const foreign = await send(port, { method: 'POST', path: '/verify', headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(foreign.status).toBe(403);
    expect(fake.verifyForms).toEqual([]);
    const own = await send(port, { method: 'POST', path: '/verify', headers: { cookie, origin: `http://127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(own.status).toBe(303);
    expect(fake.verifyForms).toEqual([{ passcode: '204817' }]);
    const html = renderPage({ state: 'awaiting_passcode', error: null });
    expect(html).toContain('<form method="post" action="/verify">');
    expect(html).toContain('<button type="submit">Check my passcode</button>');
  });

  it('routes "Try again" to the backend', async () => {
    const { fake, page, port } = await startPage();
    const cookie = await session(page, port);
    const res = await send(port, { method: 'POST', path: '/retry', headers: { cookie, origin: `http://127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    expect(res.status).toBe(303);
    expect(fake.retries).toBe(1);
  });
});
