/**
 * Issue #10 findings 6 and 7, in-process: the companion runtime (its real page
 * server, unlock controller and card service on the in-process virtual PIV card)
 * against a bot stand-in speaking the real link protocol (FakeBot).
 *
 * - Finding 6a: the page's session cookie must not work from anywhere but its
 *   own page. The test takes the cookie a browser would send to another server
 *   on 127.0.0.1 (cookies are not scoped by port: RFC 6265 8.5, so only Path
 *   decides) and uses it from a plain HTTP client, which can forge any header.
 *   What counts: what that client reads, and whether an `unlock.submit_code`
 *   (a spent try) reached the bot.
 * - Finding 6b: a person whose browser closed is never shut out: a new link is
 *   printed on every prompt and on request, and opening it ends the old session.
 * - Finding 7: a new passcode equal to the emailed unlock code is refused on the
 *   page, the typed code stays in its field, and nothing reaches the bot.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as nodeRequest } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CardService } from '../../companion/card/card.service';
import { CompanionRuntime, OUTPUT_PREFIX } from '../../companion/companion.runtime';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { CredentialStore } from '../../companion/pairing/credential.store';
import { pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import { PageLinkControl, pageLinkSocketPath, requestPageLink } from '../../companion/passcode-page/page-link.control';
import { InProcessReaderAdapter } from '../../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import type { Request, Response } from '../../protocol/companion-link.protocol';
import { artifactDir } from '../support/artifacts';

const CARD_ID = '5e4f30211203f4e5d6c7b8a99a8b7c6d';
const OLD_PIN = '480213';
const PUK = '66051937';
/** An 8-digit unlock code that passes the passcode policy by itself (not a run, not one digit repeated). */
const CODE = '40729163';
const NEW_PASSCODE = '915046';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A plain HTTP client: every header is what the caller says (a non-browser client forges Host, Origin, Cookie at will). */
function http(port: number, target: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = nodeRequest(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: target, headers: { host: `127.0.0.1:${port}`, ...options.headers }, setHost: false },
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

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

/** Parse Set-Cookie headers as a browser stores them for a host-only cookie (RFC 6265 5.2; default-path 5.1.4). */
function storeCookies(setCookie: string | string[] | undefined, requestPath: string): StoredCookie[] {
  return ([] as string[]).concat(setCookie ?? []).map((line) => {
    const [pair, ...attrs] = line.split(';');
    const eq = pair!.indexOf('=');
    const attr = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='));
    const slash = requestPath.lastIndexOf('/');
    const defaultPath = slash <= 0 ? '/' : requestPath.slice(0, slash);
    const p = attr?.slice(5);
    return { name: pair!.slice(0, eq).trim(), value: pair!.slice(eq + 1).trim(), path: p && p.startsWith('/') ? p : defaultPath };
  });
}

/**
 * The Cookie header a browser sends to `url` from cookies stored for 127.0.0.1: any port (RFC 6265 8.5, cookies
 * do not isolate by port), so only the path-match of 5.1.4 decides.
 */
function cookieHeaderFor(jar: StoredCookie[], url: string): string {
  const p = new URL(url).pathname;
  const matches = (c: StoredCookie): boolean => p === c.path || (p.startsWith(c.path) && (c.path.endsWith('/') || p[c.path.length] === '/'));
  return jar
    .filter(matches)
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');
}

/** The person's browser, minimal: opens the link, keeps the cookie jar, follows the page's own refresh and 303s. */
class Person {
  jar: StoredCookie[] = [];
  /** Path of the page after the link's refresh. */
  pagePath = '/';
  lastPage = '';
  constructor(private readonly port: number) {}

  async open(link: string): Promise<Reply> {
    const u = new URL(link);
    const first = await http(this.port, `${u.pathname}${u.search}`);
    this.jar = storeCookies(first.headers['set-cookie'], u.pathname);
    const next = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(first.body)?.[1];
    if (first.status !== 200 || !next) return first;
    this.pagePath = next;
    return this.get();
  }

  async get(): Promise<Reply> {
    const r = await http(this.port, this.pagePath, { headers: { cookie: cookieHeaderFor(this.jar, `http://127.0.0.1:${this.port}${this.pagePath}`) } });
    this.lastPage = r.body;
    return r;
  }

  /** Submit the page's form as the browser would: its action, its hidden inputs, same-origin headers. */
  async submit(fields: Record<string, string>): Promise<Reply> {
    const form = /<form method="post" action="([^"]+)">([\s\S]*?)<\/form>/.exec(this.lastPage);
    if (!form) throw new Error(`no form on the page: ${pageText(this.lastPage)}`);
    const action = new URL(form[1]!, `http://127.0.0.1:${this.port}${this.pagePath}`).pathname;
    const hidden = Object.fromEntries([...form[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1]!, m[2]!]));
    const origin = `http://127.0.0.1:${this.port}`;
    const res = await http(this.port, action, {
      method: 'POST',
      headers: { origin, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeaderFor(this.jar, `${origin}${action}`) },
      body: new URLSearchParams({ ...hidden, ...fields }).toString(),
    });
    if (res.status !== 303) return res;
    this.pagePath = new URL(String(res.headers['location']), `${origin}${action}`).pathname;
    return this.get();
  }
}

describe('page session stays on its page; a closed browser is not a dead end; passcode differs from the code (issue #10 findings 6, 7)', () => {
  let bot: FakeBot;
  let reader: InProcessReaderAdapter;
  let runtime: CompanionRuntime;
  let dataDir: string;
  let port: number;
  const lines: string[] = [];
  const submitted = (): number => bot.requests().filter((r) => r.kind === 'unlock.submit_code').length;
  const pageLinks = (): string[] => lines.filter((l) => l.startsWith(OUTPUT_PREFIX.page)).map((l) => l.slice(OUTPUT_PREFIX.page.length));
  const prompt = async (): Promise<void> => {
    await bot.command({ kind: 'unlock.prompt', journeyId: randomUUID(), cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
  };

  beforeAll(async () => {
    const logger = createLogger({ name: 'page-session', level: 'silent' });
    bot = new FakeBot();
    const botUrl = await bot.start();
    bot.onRequest = (request: Request): Response =>
      request.kind === 'unlock.submit_code'
        ? request.code === CODE
          ? { kind: 'unlock.accepted', journeyId: request.journeyId }
          : { kind: 'unlock.refused', reason: 'wrong_code', message: 'no', triesLeft: 4 }
        : { kind: 'ok' };
    bot.releaseOnAccept({ puk: PUK, newPuk: '40726185' });
    reader = new InProcessReaderAdapter();
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true }));
    dataDir = mkdtempSync(path.join(artifactDir('tmp'), 'page-session-'));
    const credentials = new CredentialStore(dataDir, logger);
    const deviceId = randomUUID();
    const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
    bot.credentials.set(credential, { deviceId, personName: 'Sam Session' });
    await credentials.write({ deviceId, credential, personName: 'Sam Session', botUrl: botUrl.href, pairedAt: new Date().toISOString() });
    runtime = new CompanionRuntime({
      botUrl,
      workstation: 'WS-Session',
      pagePort: 0,
      credentials,
      card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
      logger,
      print: (l) => lines.push(l),
    });
    await runtime.start();
    port = runtime.page.port;
    for (const end = Date.now() + 5000; runtime.linkState !== 'ready'; ) {
      if (Date.now() > end) throw new Error('the companion did not connect to the bot stand-in');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  afterAll(async () => {
    await runtime?.stop();
    await reader?.close();
    await bot?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('finding 6: the cookie a browser would send to another 127.0.0.1 port reads nothing and spends no try', async () => {
    const person = new Person(port);
    expect(pageState((await person.open(pageLinks().at(-1)!)).body)).toBe('idle');
    await prompt();
    expect(pageState((await person.get()).body)).toBe('awaiting_unlock');

    // A server on another local port, and the Cookie header the person's browser sends it on an ordinary visit.
    const elsewhere = ['/', '/unlock', '/favicon.ico', '/p/', '/p/x/'].map((p) => cookieHeaderFor(person.jar, `http://127.0.0.1:${port + 1}${p}`));
    expect.soft(elsewhere, 'the session cookie is sent to other local ports').toEqual(['', '', '', '', '']);

    // Suppose it leaked anyway (the cookie alone): a plain client with it reads nothing and sends no form.
    const leaked = person.jar.map((c) => `${c.name}=${c.value}`).join('; ');
    expect(leaked).toMatch(/^sa_companion_session=/);
    const origin = `http://127.0.0.1:${port}`;
    const form = new URLSearchParams({ code: '11112222', passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE }).toString();
    for (const target of ['/', '/?t=', '/unlock', '/p/', `/p/${randomBytes(16).toString('base64url')}/`]) {
      const read = await http(port, target, { headers: { cookie: leaked } });
      expect.soft(read.status, `GET ${target}`).toBeGreaterThanOrEqual(400);
      expect.soft(pageState(read.body), `GET ${target}`).toBe('refused');
      expect.soft(read.body, `GET ${target}`).not.toContain('Unlock code');
    }
    for (const action of ['/unlock', '/verify', '/retry', `/p/${randomBytes(16).toString('base64url')}/unlock`]) {
      const sent = await http(port, action, { method: 'POST', headers: { cookie: leaked, origin, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      expect.soft(sent.status, `POST ${action}`).toBeGreaterThanOrEqual(400);
    }
    // Even with the page's path as well (cookie + path, but not the page's own form token), a POST spends no try.
    const action = new URL('unlock', `${origin}${person.pagePath}`).pathname;
    const noToken = await http(port, action, { method: 'POST', headers: { cookie: leaked, origin, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    expect.soft(noToken.status, 'POST with cookie and path but no form token').toBe(403);
    const wrongToken = await http(port, action, {
      method: 'POST',
      headers: { cookie: leaked, origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: `${form}&form_token=${randomBytes(32).toString('base64url')}`,
    });
    expect.soft(wrongToken.status, 'POST with cookie and path and a made-up form token').toBe(403);
    // Sent to the page from another port's origin with everything: refused by Host.
    const otherHost = await http(port, person.pagePath, { headers: { cookie: leaked, host: `127.0.0.1:${port + 1}` } });
    expect(otherHost.status).toBe(421);
    await new Promise((r) => setTimeout(r, 200));
    expect(submitted(), 'a try was spent by a client holding the leaked cookie').toBe(0);
    // The person's own page is untouched and still takes the form.
    expect(pageState((await person.get()).body)).toBe('awaiting_unlock');
  });

  it('finding 7: a new passcode equal to the emailed unlock code is refused on the page, the code stays typed, nothing reaches the bot', async () => {
    const person = new Person(port);
    expect(pageState((await person.open(runtime.page.issueLink())).body)).toBe('awaiting_unlock');
    const before = submitted();
    const refused = await person.submit({ code: CODE, passcode: CODE, confirmation: CODE });
    expect(pageState(refused.body)).toBe('awaiting_unlock');
    expect(pageText(refused.body)).toContain('Your new passcode cannot be the unlock code you were sent');
    // The code field keeps what was typed; the passcode fields are never sent back to the browser.
    expect(refused.body).toMatch(new RegExp(`<input id="code" [^>]*value="${CODE}"`));
    expect(refused.body).not.toMatch(/<input id="(passcode|confirmation)" [^>]*value=/);
    // The same with spaces and a dash in the typed code (the code is compared as digits).
    const spaced = await person.submit({ code: `${CODE.slice(0, 4)} ${CODE.slice(4)}`, passcode: CODE, confirmation: CODE });
    expect(pageText(spaced.body)).toContain('Your new passcode cannot be the unlock code you were sent');
    await new Promise((r) => setTimeout(r, 200));
    expect(submitted() - before, 'the code went to the bot with a passcode equal to it').toBe(0);
    // A different passcode then unlocks the card.
    const done = await person.submit({ code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body), pageText(done.body)).toBe('done');
    expect(submitted() - before).toBe(1);
  });

  it('finding 6: with a live session whose browser closed, a prompt prints a new link, and opening it ends the old session', async () => {
    const first = new Person(port);
    expect(pageState((await first.open(runtime.page.issueLink())).body)).not.toBeNull();
    expect((await first.get()).status).toBe(200);
    // The browser closes (its session cookie is gone with it). Then the bot asks for the code.
    const linksBefore = pageLinks().length;
    const linesBefore = lines.length;
    await prompt();
    expect(pageLinks().length, 'no new page link was printed while an old session lived').toBe(linksBefore + 1);
    // The link comes before the UNLOCK line, so whoever sees the prompt line can already use it.
    const after = lines.slice(linesBefore);
    expect(after.findIndex((l) => l.startsWith(OUTPUT_PREFIX.page))).toBeLessThan(after.findIndex((l) => l.startsWith(OUTPUT_PREFIX.unlock)));

    const second = new Person(port);
    expect(pageState((await second.open(pageLinks().at(-1)!)).body)).toBe('awaiting_unlock');
    // One session at a time: the old one has ended.
    const old = await first.get();
    expect(old.status).toBe(401);
    expect(pageState(old.body)).toBe('refused');
    expect(pageText(old.body)).toMatch(/new link/i);
  });

  it('finding 6: a new link is printed whenever asked, each replaces the unused one before it, and the newest always opens', async () => {
    const a = await runtime.printPageLink();
    const b = await runtime.printPageLink();
    expect(pageLinks().slice(-2)).toEqual([a, b]);
    expect(a).not.toBe(b);
    expect((await new Person(port).open(a)).status).toBe(403);
    const person = new Person(port);
    expect((await person.open(b)).status).toBe(200);
    expect(pageState(person.lastPage)).toBe('awaiting_unlock');
  });

  it.skipIf(process.platform === 'win32')('finding 6: `--page-link` from another terminal gets a fresh link that opens the page and ends the old session', async () => {
    const before = new Person(port);
    expect((await before.open(runtime.page.issueLink())).status).toBe(200);
    // As main.ts wires it: the control socket in the data directory mints through the runtime.
    const control = new PageLinkControl({ socketPath: pageLinkSocketPath(dataDir), issue: () => runtime.printPageLink(), logger: createLogger({ name: 'page-link', level: 'silent' }) });
    expect(await control.start()).toEqual({ listening: true });
    try {
      const answer = await requestPageLink(pageLinkSocketPath(dataDir));
      expect(answer.ok).toBe(true);
      const link = answer.ok ? answer.link : '';
      expect(pageLinks().at(-1)).toBe(link);
      const person = new Person(port);
      expect((await person.open(link)).status).toBe(200);
      expect(pageState(person.lastPage)).not.toBe('refused');
      expect((await before.get()).status).toBe(401);
    } finally {
      await control.stop();
    }
  });

  it('finding 6: a prompt while a printed link is still unused prints that same link again, and it opens', async () => {
    const unused = runtime.printPageLink();
    const linesBefore = lines.length;
    await prompt();
    const printed = lines.slice(linesBefore).filter((l) => l.startsWith(OUTPUT_PREFIX.page));
    expect(printed).toEqual([`${OUTPUT_PREFIX.page}${unused}`]);
    const person = new Person(port);
    expect((await person.open(unused)).status).toBe(200);
    expect(pageState(person.lastPage)).toBe('awaiting_unlock');
  });
});

