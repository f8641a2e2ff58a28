/**
 * The passcode page in Debian's Chromium (playwright-core): the companion
 * runtime with the in-process virtual PIV card and a local bot stand-in
 * speaking the real link protocol (FakeBot). A person opens the printed link,
 * fills the form by its visible labels and presses "Unlock my card"; the card
 * is read back. A page on another loopback port (same site, other origin) that
 * posts to the companion is refused by the Origin check. No CSP violation may be
 * reported by the browser.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
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
    attacker = createServer((_req, res) => {
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
    await page.waitForURL((u) => u.pathname === '/' && u.search === '');
    await expect.poll(() => page.locator('body').getAttribute('data-state')).toBe('idle');

    await bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    await page.reload();
    await page.getByLabel('Unlock code').fill('1111 2222');
    await page.getByLabel('New passcode', { exact: true }).fill(NEW_PASSCODE);
    await page.getByLabel('Confirm new passcode').fill(NEW_PASSCODE);
    await page.getByRole('button', { name: 'Unlock my card' }).click();
    await page.getByText('That unlock code is not right. You can try 4 more times.').waitFor();
    expect(await page.getByLabel('New passcode', { exact: true }).inputValue()).toBe(''); // never sent back to the browser

    await page.getByLabel('Unlock code').fill(CODE);
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
    await page.goto(`${new URL(link).origin}/`);
    await expect.poll(() => page.locator('body').getAttribute('data-state')).toBe('awaiting_unlock');
  });
});
