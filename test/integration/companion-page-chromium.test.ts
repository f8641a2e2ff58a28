/**
 * The passcode page in Debian's Chromium (playwright-core): the companion
 * runtime with the in-process virtual PIV card and a local bot stand-in
 * speaking the real link protocol (FakeBot). A person opens the printed link,
 * fills the form by its visible labels and presses "Unlock my card"; the card
 * is read back. A page on another loopback port (same site, other origin) that
 * posts to the companion is refused by the Origin check. No CSP violation may be
 * reported by the browser.
 *
 * Issue #10 finding 6: cookies are not scoped by port, so the test records the
 * Cookie header Chromium sends to that other port, and uses the session cookie
 * Chromium holds from a plain HTTP client (which forges Host and Origin at will):
 * it must read nothing and spend no try. Finding 7: a new passcode equal to the
 * unlock code is refused on the page and the typed code stays in its field.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CardService } from '../../companion/card/card.service';
import { CompanionRuntime } from '../../companion/companion.runtime';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { CredentialStore } from '../../companion/pairing/credential.store';
import { InvalidPinError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import { InProcessReaderAdapter } from '../../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import type { Request, Response } from '../../protocol/companion-link.protocol';
import { artifactDir, artifactPath } from '../support/artifacts';
import { CHROMIUM_ARGS } from '../support/browser';
import { chromiumExecutable, chromiumService, requireServices } from '../support/services';

const gate = await requireServices([chromiumService()]);

const CARD_ID = '9a8b7c6d5e4f30211203f4e5d6c7b8a9';
const OLD_PIN = '480213';
const PUK = '66051937';
const NEW_PUK = '40726185';
const NEW_PASSCODE = '915046';
const CODE = '37150864';
const JOURNEY = randomUUID();

describe.skipIf(gate.skip)('passcode page in Chromium (in-process virtual card, bot stand-in speaking the real link protocol)', () => {
  let bot: FakeBot;
  let reader: InProcessReaderAdapter;
  let card: VirtualPivCard;
  let runtime: CompanionRuntime;
  let link: string;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let dataDir: string;
  let attacker: Server;
  /** Cookie headers the server on the other port received, by path. */
  const attackerSaw: Array<{ path: string; cookie: string }> = [];
  /** The page's address after the link: `http://127.0.0.1:PORT/p/<scope>/`. */
  let pageUrl = '';
  const cspReports: string[] = [];
  const offsite: string[] = [];

  beforeAll(async () => {
    const logger = createLogger({ name: 'page-chromium', level: 'silent' });
    bot = new FakeBot();
    const botUrl = await bot.start();
    // As the bot's PUK custody does: the pair follows an accepted code as the unlock.authorised command.
    bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK });
    bot.onRequest = (request: Request): Response => {
      if (request.kind === 'unlock.submit_code') {
        return request.code === CODE
          ? { kind: 'unlock.accepted', journeyId: request.journeyId }
          : { kind: 'unlock.refused', reason: 'wrong_code', message: 'no', triesLeft: 4 };
      }
      return { kind: 'ok' };
    };
    reader = new InProcessReaderAdapter();
    card = new VirtualPivCard({ cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true });
    reader.insert(card);
    dataDir = mkdtempSync(path.join(artifactDir('tmp'), 'companion-page-'));
    const credentials = new CredentialStore(dataDir, logger);
    const deviceId = randomUUID();
    const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
    bot.credentials.set(credential, { deviceId, personName: 'Alex Wilber' });
    await credentials.write({ deviceId, credential, personName: 'Alex Wilber', botUrl: botUrl.href, pairedAt: new Date().toISOString() });
    runtime = new CompanionRuntime({
      botUrl,
      workstation: 'WS-Chromium',
      pagePort: 0,
      credentials,
      card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
      logger,
      print: () => undefined,
    });
    link = await runtime.start();
    for (const end = Date.now() + 5000; runtime.linkState !== 'ready'; ) {
      if (Date.now() > end) throw new Error('the companion did not connect to the bot stand-in');
      await new Promise((r) => setTimeout(r, 20));
    }

    // A page on another loopback port: same site as 127.0.0.1, different origin.
    const target = new URL(link);
    attacker = createServer((req, res) => {
      attackerSaw.push({ path: req.url ?? '', cookie: req.headers.cookie ?? '' });
      res.writeHead(200, { 'content-type': 'text/html' }).end(
        `<!doctype html><form method="post" action="http://127.0.0.1:${target.port}/unlock"><input name="code" value="${CODE}"><input name="passcode" value="135790"><input name="confirmation" value="135790"><button>Win a prize</button></form>`,
      );
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));

    profile = mkdtempSync(path.join(artifactDir('tmp'), 'chromium-companion-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: chromiumExecutable(), headless: true, args: [...CHROMIUM_ARGS], locale: 'en-GB' });
    await context.route('**/*', async (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') return route.continue();
      offsite.push(u.origin);
      return route.abort('blockedbyclient');
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspReports.push(m.text());
    });
  });

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    attacker?.closeAllConnections();
    await new Promise<void>((r) => (attacker ? attacker.close(() => r()) : r()));
    await runtime?.stop();
    await reader?.close();
    await bot?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('opens from the printed link, takes the form by its labels, and unlocks the card', async () => {
    await page.goto(link);
    await page.waitForURL((u) => /^\/p\/[A-Za-z0-9_-]{22}\/$/.test(u.pathname) && u.search === '');
    pageUrl = page.url();
    await expect.poll(() => page.locator('body').getAttribute('data-state')).toBe('idle');

    await bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    await page.reload();
    await page.getByLabel('Unlock code').fill('1111 2222');
    await page.getByLabel('New passcode', { exact: true }).fill(NEW_PASSCODE);
    await page.getByLabel('Confirm new passcode').fill(NEW_PASSCODE);
    await page.getByRole('button', { name: 'Unlock my card' }).click();
    await page.getByText('That unlock code is not right. You can try 4 more times.').waitFor();
    // Issue #14: the companion keeps the new passcode (in its memory, never sent back to the browser)
    // and asks for the code only; "Choose a different passcode" brings the passcode fields back.
    await page.getByText('Your new passcode is kept').waitFor();
    expect(await page.getByLabel('New passcode', { exact: true }).count()).toBe(0);
    expect(await page.content()).not.toContain(NEW_PASSCODE);
    await page.getByRole('button', { name: 'Choose a different passcode' }).click();
    await page.getByLabel('New passcode', { exact: true }).waitFor();
    expect(await page.getByLabel('New passcode', { exact: true }).inputValue()).toBe('');

    // Finding 7: the unlock code itself as the new passcode is refused on the page; the code stays typed.
    await page.getByLabel('Unlock code').fill(CODE);
    await page.getByLabel('New passcode', { exact: true }).fill(CODE);
    await page.getByLabel('Confirm new passcode').fill(CODE);
    await page.getByRole('button', { name: 'Unlock my card' }).click();
    await page.getByText('Your new passcode cannot be the unlock code you were sent.').waitFor();
    expect(await page.getByLabel('Unlock code').inputValue()).toBe(CODE);
    expect(await page.getByLabel('New passcode', { exact: true }).inputValue()).toBe('');
    expect(bot.requests().filter((r) => r.kind === 'unlock.submit_code')).toHaveLength(1); // only the wrong code so far

    // The person types only the new passcodes; the code is still there.
    await page.getByLabel('New passcode', { exact: true }).fill(NEW_PASSCODE);
    await page.getByLabel('Confirm new passcode').fill(NEW_PASSCODE);
    await page.getByRole('button', { name: 'Unlock my card' }).click();
    await page.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: 20_000 });
    await page.screenshot({ path: artifactPath('screenshots', 'companion-page-unlocked.png'), fullPage: true });

    const conn = await reader.connect(reader.readerName);
    try {
      const piv = await PivSession.open(conn);
      await piv.verifyPin(NEW_PASSCODE);
      await expect(piv.verifyPin(OLD_PIN)).rejects.toBeInstanceOf(InvalidPinError);
    } finally {
      await conn.close('reset');
    }
    expect(bot.requests().filter((r) => r.kind === 'unlock.submit_code').map((r) => (r as { code: string }).code)).toEqual(['11112222', CODE]);
    expect(cspReports).toEqual([]);
    expect(offsite).toEqual([]);
  });

  it('refuses a form posted from another origin on the same site, and nothing reaches the bot', async () => {
    // A fresh journey waiting for a code, so a forged post would otherwise be taken.
    const journeyId = randomUUID();
    await bot.command({ kind: 'unlock.prompt', journeyId, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    const before = bot.requests().length;
    await page.goto(`http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`);
    await page.getByRole('button', { name: 'Win a prize' }).click();
    await page.getByRole('heading', { name: 'Request refused' }).waitFor();
    expect(bot.requests().length).toBe(before);
    // The person's own page still shows the form.
    await page.goto(pageUrl);
    await expect.poll(() => page.locator('body').getAttribute('data-state')).toBe('awaiting_unlock');
  });

  it('finding 6: Chromium sends the session cookie to no other 127.0.0.1 port, and the cookie it holds, used elsewhere, reads nothing and spends no try', async () => {
    const other = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`;
    attackerSaw.length = 0;
    for (const p of ['/', '/unlock', '/p/', '/p/x/', '/anything/else']) await page.goto(`${other}${p}`);
    expect(attackerSaw.length).toBeGreaterThanOrEqual(5);
    expect(attackerSaw.filter((r) => r.cookie.includes('sa_companion_session')), 'the session cookie reached another port').toEqual([]);

    // What Chromium holds: one cookie, scoped to the page's random path.
    const target = new URL(pageUrl);
    const held = (await context.cookies(`http://127.0.0.1:${target.port}${target.pathname}`)).filter((c) => c.name === 'sa_companion_session');
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ path: target.pathname, httpOnly: true, sameSite: 'Strict' });
    const cookie = `sa_companion_session=${held[0]!.value}`;

    // Used from a plain HTTP client with every header forged, without the page's path: nothing.
    const plain = (method: string, p: string, body?: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: Number(target.port),
            method,
            path: p,
            setHost: false,
            headers: { host: target.host, cookie, origin: target.origin, 'sec-fetch-site': 'same-origin', ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const before = bot.requests().length;
    const read = await plain('GET', '/');
    expect(read.status).toBe(401);
    expect(read.body).not.toContain('Unlock code');
    const form = new URLSearchParams({ code: CODE, passcode: '135790', confirmation: '135790' }).toString();
    for (const p of ['/unlock', '/verify', '/retry']) expect((await plain('POST', p, form)).status, p).toBe(401);
    // With the path as well, but not the page's form token: refused.
    expect((await plain('POST', `${target.pathname}unlock`, form)).status).toBe(403);
    await new Promise((r) => setTimeout(r, 200));
    expect(bot.requests().length, 'a request reached the bot').toBe(before);
    await page.goto(pageUrl);
    await expect.poll(() => page.locator('body').getAttribute('data-state')).toBe('awaiting_unlock');
  });
});
