/**
 * End to end, UNLOCK_POLICY=code-only (issue #14) in the Microsoft 365 Agents Playground driven by Chromium,
 * through every real part: the bot process (embedded store, outbox mail, SMS through the GOV.UK Notify
 * client against the local Notify contract fake), the directory lookup through the Graph directory adapter
 * against the local Graph fake (`DIRECTORY=graph`, the person's Entra profile gives email + mobile), the
 * companion processes on pcscd's vpcd readers with the project's virtual PIV cards served from this test.
 *
 * Nobody here is registered: no questions, no `add-person`. Each card is bound to its holder only by the
 * card-management import (`admin import-puks` with `holder_email`), and the code goes where the directory says.
 *
 * - Alex (both channels) picks "Text me": the code comes by SMS (the Notify fake answered 201 for his mobile);
 * - Megan (both channels) picks "Email me": the code comes by email (the outbox);
 * each types the code and a new passcode twice on the companion's page, which the companion opened by itself
 * (`COMPANION_OPEN_PAGE=browser`, the "browser" being a command that hands the link to this test's Chromium).
 * Each card, read back over PC/SC, takes the new passcode and not the old one.
 *
 * The person's effort is counted from "my card is locked" to the card unlocked, on first use (nobody registered,
 * the computer's companion not yet paired): each message typed, click, field typed and page / email / SMS opened.
 * Code-only must take at most 8; the steps are printed and written to `artifacts/reports/effort-code-only-*.json`.
 * Done by the product, not counted: the companion, unpaired, seeing the locked card raises a notification with
 * its pairing code ("send pair CODE, then unlock"; `notify-send` here is a script that records it), and it opens
 * its page when the code is sent.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { maskEmail } from '../../cards/mask-email';
import { maskMobile } from '../../cards/mask-mobile';
import { artifactPath } from '../support/artifacts';
import type { PlaygroundPage } from '../support/browser';
import {
  E2E_TEST_MS,
  E2E_WAIT_MS,
  e2eGate,
  EffortLog,
  randomCardId,
  randomPasscode,
  runAdmin,
  startE2eStack,
  unlockCodeFrom,
  VPCD_READER,
  VPCD_READER_2,
  type BotStack,
  type E2eSeat,
  type E2eStack,
  recordingDesktop,
} from '../support/e2e-fixture';
import { GraphFake, type GraphFakeUser } from '../support/graph-fake/graph-fake.server';
import { createTestPki, type TestPki } from '../support/graph-fake/test-pki';
import { startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';

// mail: 'graph' only adds the openssl check (the Graph directory fake's test PKI); mail itself goes to the outbox.
const gate = await e2eGate({ chromium: true, mail: 'graph' });

interface CodeOnlyPerson {
  teams: { id: string; name: string; aadObjectId: string };
  email: string;
  /** As the Entra profile holds it. */
  mobile: string;
  /** The digits Notify is asked to text (E.164 without `+`). */
  mobileDigits: string;
  cardId: string;
  pin: string;
  puk: string;
  newPin: string;
  channel: 'sms' | 'email';
}

const taken: string[] = [];
function person(id: string, name: string, email: string, channel: 'sms' | 'email'): CodeOnlyPerson {
  const last = String(randomInt(100, 1000));
  const pin = randomPasscode(taken);
  const puk = randomPasscode([...taken, pin]);
  const newPin = randomPasscode([...taken, pin, puk]);
  taken.push(pin, puk, newPin);
  return {
    teams: { id, name, aadObjectId: randomUUID() },
    email,
    mobile: `+44 7700 900${last}`,
    mobileDigits: `447700900${last}`,
    cardId: randomCardId(),
    pin,
    puk,
    newPin,
    channel,
  };
}

const ALEX = person('user-id-0', 'Alex Wilber', 'alex.wilber@nhs.net', 'sms');
const MEGAN = person('user-id-1', 'Megan Bowen', 'megan.bowen@nhs.net', 'email');

describe.skipIf(gate.skip)('code-only unlock end to end in the Agents Playground (SMS through Notify, email; directory from Graph; card from the import)', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let bot: BotStack;
  let notify: NotifyContractFixture;
  let graph: GraphFake;
  let pki: TestPki;
  let openedDir: string;
  const efforts: EffortLog[] = [];
  /** Channels whose person got as far as an unlocked card. */
  const unlocked: string[] = [];

  beforeAll(async () => {
    notify = await startNotifyContractFixture();
    pki = createTestPki();
    const tenantId = randomUUID();
    const clientId = randomUUID();
    const clientSecret = `Zx8Q~${randomBytes(24).toString('base64url')}`;
    const users: GraphFakeUser[] = [ALEX, MEGAN].map((p) => ({
      id: p.teams.aadObjectId,
      userPrincipalName: p.email.replace('@nhs.net', '@trust.example.org'),
      displayName: p.teams.name,
      mail: p.email,
      mobilePhone: p.mobile,
    }));
    graph = new GraphFake({ tenantId, clientId, clientSecret, roles: ['User.Read.All'], mailboxes: [], users }, { certPem: pki.serverCertPem, keyPem: pki.serverKeyPem });
    await graph.start();
    openedDir = mkdtempSync(path.join(tmpdir(), 'e2e-code-only-opened-'));
    e2e = await startE2eStack({
      name: 'e2e-code-only',
      mail: 'outbox',
      botEnv: {
        UNLOCK_POLICY: 'code-only',
        DIRECTORY: 'graph',
        GRAPH_CREDENTIAL: 'client-secret',
        GRAPH_TENANT_ID: tenantId,
        GRAPH_CLIENT_ID: clientId,
        GRAPH_CLIENT_SECRET: clientSecret,
        GRAPH_BASE_URL: graph.origin,
        GRAPH_AUTHORITY_HOST: graph.origin,
        NODE_EXTRA_CA_CERTS: pki.caCertPath,
        ...notify.env(),
      },
    });
    bot = e2e.bot;
    // The card-management import names each card's holder by email (no registration, no questions).
    const csv = ['card_id,puk,holder_email', ...[ALEX, MEGAN].map((p) => `${p.cardId},${p.puk},${p.email}`)].join('\n') + '\n';
    const imported = await runAdmin(bot, ['import-puks', '--file', '-'], csv);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const e of efforts) writeFileSync(artifactPath('reports', `effort-${e.title.replace(/\W+/g, '-')}.json`), JSON.stringify({ title: e.title, count: e.count, steps: e.steps }, null, 2));
    await e2e?.stop();
    await graph?.stop();
    await notify?.fake.stop();
    pki?.cleanup();
    if (openedDir) rmSync(openedDir, { recursive: true, force: true });
  });

  /** The companion's recording desktop (test/support/e2e-fixture.ts `recordingDesktop`). */
  const browserCommand = (seatName: string): ReturnType<typeof recordingDesktop> => recordingDesktop(openedDir, seatName);

  async function waitForNotice(file: string, pattern: RegExp): Promise<RegExpExecArray> {
    const deadline = Date.now() + E2E_WAIT_MS;
    for (;;) {
      const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
      for (const l of lines) {
        const m = pattern.exec(l);
        if (m) return m;
      }
      if (Date.now() > deadline) throw new Error(`no notification matching ${String(pattern)}; notify-send got: ${lines.join(' | ') || '(nothing)'}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function waitForOpenedLink(file: string): Promise<string> {
    const deadline = Date.now() + E2E_WAIT_MS;
    for (;;) {
      const links = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
      if (links.length > 0) return links.at(-1)!;
      if (Date.now() > deadline) throw new Error(`the companion did not open its page (nothing in ${file})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function unlockAs(p: CodeOnlyPerson, reader: typeof VPCD_READER | typeof VPCD_READER_2, workstation: string): Promise<void> {
    const suffix = p.channel === 'sms' ? '-sms' : '-email';
    const opener = browserCommand(`seat${suffix}`);
    const seat: E2eSeat = await e2e.addSeat({
      suffix,
      card: { cardId: p.cardId, pin: p.pin, puk: p.puk, blocked: true },
      reader,
      workstation,
      companionEnv: opener.env,
      teams: { user: p.teams, client: 'chromium' },
    });
    const ui: PlaygroundPage = seat.ui;
    const card = seat.card;
    let tab: Page | undefined;
    onTestFailed(async () => {
      await ui.screenshot('teams-at-failure').catch(() => undefined);
      await tab?.screenshot({ path: artifactPath('screenshots', `e2e-code-only${suffix}-companion-at-failure.png`), fullPage: true }).catch(() => undefined);
    });
    expect(await card.pinRetries()).toBe(0);
    const smsBefore = notify.fake.accepted.length;
    const mailsBefore = (await bot.outbox()).filter((m) => m.kind === 'unlock_code').length;

    const effort = new EffortLog(`code-only ${p.channel}`);
    efforts.push(effort);

    // First use: nobody registered, this computer not paired. The companion sees the locked card and tells the
    // person how to start, with its pairing code (a notification: no tray menu or terminal to open).
    const notice = await waitForNotice(opener.notices, /your smartcard is locked.*send "pair ([A-Z0-9]{4}-[A-Z0-9]{4})" to Smartcard Assist in Teams, then "unlock"/);
    expect(notice[1]).toBe(await seat.companion.pairingCode());
    effort.auto('the companion saw the locked card and showed a notification: send "pair CODE" in Teams, then "unlock"');
    // 1. "pair CODE" in Teams (the fixture types exactly that and checks "This computer is paired").
    await seat.pair();
    effort.did('message', 'types "pair CODE" (from the notification) in the Teams chat');

    // 2. "unlock" in Teams: no registration, no questions; both channels, masked, to pick from.
    await ui.sendChat('unlock');
    effort.did('message', 'types "unlock" in the Teams chat');
    const choose = await ui.waitForCardWithText('Where should we send your unlock code?', E2E_WAIT_MS);
    const chooseText = (await choose.textContent()) ?? '';
    expect(chooseText).toContain(maskEmail(p.email));
    expect(chooseText).toContain(maskMobile(p.mobile));
    expect(maskMobile(p.mobile)).toMatch(new RegExp(`^07.*${p.mobile.slice(-3)}$`));
    expect(chooseText).not.toContain(p.email);
    expect(chooseText).not.toMatch(/security question/i);

    // 3. Pick the channel.
    await ui.clickAction(p.channel === 'sms' ? 'Text me' : 'Email me', choose);
    effort.did('click', p.channel === 'sms' ? 'clicks "Text me" on the card' : 'clicks "Email me" on the card');
    await ui.waitForCardWithText(p.channel === 'sms' ? 'Check your phone' : 'Check your email', E2E_WAIT_MS);

    // 4. The code arrives: by SMS (Notify answered 201, to this mobile only) or by email (to this address only).
    let code: string;
    if (p.channel === 'sms') {
      await expect.poll(() => notify.fake.accepted.length, { timeout: E2E_WAIT_MS }).toBe(smsBefore + 1);
      const sms = notify.fake.accepted.at(-1)!;
      expect(sms.type).toBe('sms');
      expect(sms.to.replace(/\D/g, '').replace(/^0/, '44')).toBe(p.mobileDigits);
      code = String(sms.personalisation['code']);
      expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(mailsBefore);
      effort.did('open', 'opens the text message and reads the code');
    } else {
      const mail = await e2e.waitForMail((m) => m.kind === 'unlock_code' && (m.headers['to'] ?? '').includes(p.email));
      code = unlockCodeFrom(mail);
      expect(notify.fake.accepted.length).toBe(smsBefore);
      effort.did('open', 'opens the email and reads the code');
    }
    expect(code).toMatch(/^\d{8}$/);

    // The companion opened its page by itself when the code was sent (no step for the person).
    const link = await waitForOpenedLink(opener.file);
    effort.auto('the companion opened its passcode page in the browser when the code was sent');
    tab = await ui.context.newPage();
    await tab.goto(link);
    await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');

    // 5-7. The code and the new passcode twice; 8. the button.
    await tab.getByLabel('Unlock code').fill(code);
    effort.did('field', 'types the unlock code on the companion page');
    await tab.getByLabel('New passcode', { exact: true }).fill(p.newPin);
    effort.did('field', 'types a new passcode');
    await tab.getByLabel('Confirm new passcode').fill(p.newPin);
    effort.did('field', 'types the new passcode again');
    await tab.getByRole('button', { name: 'Unlock my card' }).click();
    effort.did('click', 'clicks "Unlock my card"');
    await tab.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: E2E_WAIT_MS });
    await tab.screenshot({ path: artifactPath('screenshots', `e2e-code-only${suffix}-companion-unlocked.png`), fullPage: true });

    // Teams shows it too (nothing to do there).
    await ui.page.bringToFront();
    await ui.waitForCardWithText('Your smartcard is unlocked', E2E_WAIT_MS);
    effort.auto('Teams updated the card to "Your smartcard is unlocked"');
    await ui.screenshot('teams-unlocked');

    // On the card, over PC/SC: the old passcode is refused, the new one verifies, all tries back.
    expect(await card.verifies(p.pin)).toBe(false);
    expect(await card.verifies(p.newPin)).toBe(true);
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
    expect(card.card.pinBlocked).toBe(false);
    // The bot rotated the PUK the import gave it.
    expect(card.seen.newPuks).toHaveLength(1);
    expect(card.seen.newPuks[0]).not.toBe(p.puk);

    unlocked.push(p.channel);
    console.log(effort.text());
    expect(effort.count, effort.text()).toBeLessThanOrEqual(8);
  }

  it('Alex (no registration, card from the import, email + mobile from the directory) gets the code by SMS through Notify and unlocks in at most 8 steps', async () => {
    await unlockAs(ALEX, VPCD_READER, 'WS-ALEX-CODE');
  });

  it('Megan (same, picks email) gets the code by email and unlocks in at most 8 steps', async () => {
    await unlockAs(MEGAN, VPCD_READER_2, 'WS-MEGAN-CODE');
  });

  it('no code, passcode or PUK reached a log or Teams; the directory was asked for both people', () => {
    expect(unlocked.sort(), 'an unlock above did not finish').toEqual(['email', 'sms']);
    const lookups = graph.requests.filter((r) => /\/v1\.0\/users\//i.test(r.pathname));
    expect(lookups.length).toBeGreaterThanOrEqual(2);
    const botLog = bot.process.output();
    for (const p of [ALEX, MEGAN]) for (const s of [p.pin, p.newPin, p.puk]) expect(botLog.includes(s)).toBe(false);
    for (const sms of notify.fake.accepted) expect(botLog.includes(String(sms.personalisation['code']))).toBe(false);
  });
});
