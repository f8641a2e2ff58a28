/**
 * Readers that come and go (issue #13), on the PACKAGED companion: the single
 * executable `npm run package:companion` builds (built here into a scratch
 * directory, run from there with no node_modules near it), over pcscd + vpcd's
 * second reader, with the project's virtual PIV card served from this test and
 * a bot stand-in speaking the real link protocol (FakeBot).
 *
 * - the reader unplugged and plugged back (the virtual card's vpcd connection
 *   dropped and made again), while idle and while an unlock waits for the card;
 * - pcscd stopped and started again (the project's own pcscd, through
 *   scripts/pcscd.sh, never a system one), while idle and while an unlock waits.
 *
 * Each is recovered without restarting the companion: the bot is told the card is
 * present again (card.event read from the card), and a waiting unlock finishes;
 * the new passcode is then checked on the card over PC/SC from this test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { CredentialStore } from '../../companion/pairing/credential.store';
import { PageBrowser, pageState } from '../../companion/passcode-page/page-browser.fake';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { INS, KEY_REF } from '../../companion/piv/piv.constants';
import { InvalidPinError, InvalidPukError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import { waitForCardState } from '../../companion/piv/reader-events';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import type { CardStatus, Request, Response } from '../../protocol/companion-link.protocol';
import { COMPANION_PACKAGE, packageCompanion } from '../../scripts/package-companion';
import { artifactPath, REPO_ROOT } from '../support/artifacts';
import { ensurePcscd, insertVirtualCard, requireService, VPCD_READER, VPCD_READER_2 } from '../support/pcscd';
import { startProcess, type ManagedProcess } from '../support/processes';

const execFileAsync = promisify(execFile);
const pcscd = ensurePcscd();
const run = requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);

const READER = VPCD_READER_2.name;
const CARD_ID = '5e1f0a2b3c4d5e6f708192a3b4c5d6e7';
const OLD_PIN = '582917';
const PUK = '40718263';
const NEW_PUK = '93728164';
const NEW_PASSCODE = '716284';
const CODE = '52830917';
const EVENT_TIMEOUT_MS = 10_000;
/** pcscd back, a new PC/SC context (the companion retries every 2 s), the card re-read. */
const RECOVERY_TIMEOUT_MS = 25_000;

/** scripts/pcscd.sh: stops or starts only the pcscd this project started. */
async function pcscdScript(command: 'start' | 'stop'): Promise<void> {
  await execFileAsync('bash', [join(REPO_ROOT, 'scripts', 'pcscd.sh'), command], { timeout: 60_000 });
}

/** Scratch directory of this file, and the executable under test (built once for every describe). */
let root: string;
let executable: string;
beforeAll(async () => {
  if (!run) return;
  root = await mkdtemp(join(tmpdir(), 'companion-readers-'));
  // Built now from this tree (about 5 s), run from a directory with no node_modules.
  executable = await packageCompanion(join(root, 'package'));
  expect(existsSync(join(root, 'package', COMPANION_PACKAGE.addon))).toBe(true);
}, 120_000);
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** A device credential the bot stand-in accepts, written where the companion in `dataDir` reads it. */
async function pairedWith(bot: FakeBot, botUrl: URL, dataDir: string): Promise<void> {
  const deviceId = randomUUID();
  const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
  bot.credentials.set(credential, { deviceId, personName: 'Alex Wilber' });
  await new CredentialStore(dataDir, createLogger({ name: 't', level: 'silent' })).write({ deviceId, credential, personName: 'Alex Wilber', botUrl: botUrl.href, pairedAt: new Date().toISOString() });
}

/** Start the packaged companion against the bot stand-in (tray, browser and notifications off: no desktop here). */
function startPackaged(name: string, botUrl: URL, dataDir: string, args: string[]): ManagedProcess {
  return startProcess({
    name,
    command: executable,
    args: ['--reader', 'pcsc', ...args],
    cwd: root,
    env: {
      SMARTCARD_BOT_URL: botUrl.href,
      COMPANION_DATA_DIR: dataDir,
      COMPANION_LOG_FILE: artifactPath('logs', `${name}.companion.log`),
      COMPANION_LOG_LEVEL: 'debug',
      COMPANION_TRAY: 'off',
      COMPANION_OPEN_PAGE: 'off',
      COMPANION_NOTIFICATIONS: 'off',
      NODE_OPTIONS: undefined,
      NODE_PATH: undefined,
    },
  });
}

describe.skipIf(!run)('packaged companion: readers that come and go, pcscd restarts (pcscd + vpcd, bot stand-in)', () => {
  let bot: FakeBot;
  let proc: ManagedProcess;
  let card: VirtualPivCard;
  let vpcd: VpcdClient;
  let pcsc: PcscReaderAdapter;
  let browser: PageBrowser;
  let pageLink: string;

  /** What these tests check of a status: presence, reader, card id and retries (the certificates read are another test's). */
  const facts = (s: CardStatus): CardStatus => (s.present ? { present: true, reader: s.reader, cardId: s.cardId, pinRetries: s.pinRetries } : { present: false, reader: s.reader });
  const cardEvents = (): CardStatus[] => bot.received.flatMap((r) => (r.frame.type === 'card.event' ? [facts(r.frame.status)] : []));
  /** The card as the companion reads it when the bot asks. */
  const readStatus = async (): Promise<CardStatus | null> => {
    const reply = await bot.command({ kind: 'card.read_status' });
    return reply.kind === 'card.status' ? facts(reply.status) : null;
  };
  const lastCardEvent = (): CardStatus | undefined => cardEvents().at(-1);
  const present: CardStatus = { present: true, reader: READER, cardId: CARD_ID, pinRetries: 0 };
  const absent: CardStatus = { present: false, reader: READER };

  /** True when `pin` verifies on the card (checked over PC/SC from this test, then the card is reset). */
  async function verifies(pin: string): Promise<boolean> {
    const conn = await pcsc.connect(READER);
    try {
      await (await PivSession.open(conn)).verifyPin(pin);
      return true;
    } catch (err) {
      if (err instanceof InvalidPinError) return false;
      throw err;
    } finally {
      await conn.close('reset');
    }
  }

  /** True when the card takes `puk` as its PUK (a no-op PUK change, over PC/SC from this test). */
  async function pukIs(puk: string): Promise<boolean> {
    const conn = await pcsc.connect(READER);
    try {
      await (await PivSession.open(conn)).changePuk(puk, puk);
      return true;
    } catch (err) {
      if (err instanceof InvalidPukError) return false;
      throw err;
    } finally {
      await conn.close('reset');
    }
  }

  /**
   * Stop pcscd from inside the card, right after it carried out the command `ins` (and, for
   * CHANGE REFERENCE DATA, only for the PUK): the command took effect on the card but its answer
   * never reaches the companion. Blocking on purpose: the card (served from this process) says
   * nothing more until pcscd is gone.
   */
  function stopPcscdAfter(ins: number): void {
    card.afterCommand = (seen, apdu) => {
      if (seen !== ins || (ins === INS.CHANGE_REFERENCE_DATA && apdu[3] !== KEY_REF.PUK)) return;
      card.afterCommand = undefined;
      execFileSync('bash', [join(REPO_ROOT, 'scripts', 'pcscd.sh'), 'stop'], { stdio: 'ignore', timeout: 30_000 });
    };
  }

  /** Start an unlock and wait until the page shows its form. */
  async function prompt(): Promise<string> {
    const journeyId = randomUUID();
    await bot.command({ kind: 'unlock.prompt', journeyId, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: 5000 }).toBe('awaiting_unlock');
    return journeyId;
  }

  /** The statuses with repeats in a row folded (a service restart reports the card gone and the reader gone: two "absent"). */
  const changes = (statuses: CardStatus[]): CardStatus[] => statuses.filter((s, i) => i === 0 || JSON.stringify(s) !== JSON.stringify(statuses[i - 1]));
  const results = (journeyId: string): Request[] => bot.requests().filter((r) => r.kind === 'unlock.result' && r.journeyId === journeyId);

  beforeAll(async () => {
    pcsc = await PcscReaderAdapter.open({ retryDelayMs: 200, waitForService: true });
    card = new VirtualPivCard({ cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true });
    // reconnectDelayMs: when pcscd (and so vpcd) comes back, the card is put back in by itself.
    vpcd = new VpcdClient({ card, port: VPCD_READER_2.port, reconnectDelayMs: 200 });
    await vpcd.connect();
    await waitForCardState(pcsc, READER, 'present', EVENT_TIMEOUT_MS);

    bot = new FakeBot();
    const botUrl = await bot.start();
    bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK });
    bot.onRequest = (request: Request): Response => {
      if (request.kind === 'unlock.submit_code') {
        return request.code === CODE ? { kind: 'unlock.accepted', journeyId: request.journeyId } : { kind: 'unlock.refused', reason: 'wrong_code', message: 'no', triesLeft: 4 };
      }
      if (request.kind === 'unlock.resume') return { kind: 'unlock.accepted', journeyId: request.journeyId };
      return { kind: 'ok' };
    };
    await pairedWith(bot, botUrl, join(root, 'data'));
    proc = startPackaged('companion-readers-packaged', botUrl, join(root, 'data'), ['--reader-name', READER]);
    [, pageLink] = (await proc.waitForLine(/^PASSCODE PAGE: (\S+)$/, 20_000)) as [string, string];
    browser = new PageBrowser(pageLink);
    await browser.open();
    await proc.waitForLine(/^STATUS: connected to Smartcard Assist/, 20_000);
  }, 120_000);

  afterAll(async () => {
    await proc?.stop();
    await bot?.stop();
    await vpcd?.disconnect();
    await pcsc?.close();
    // Whatever a failed test left: pcscd runs again for the next file.
    await pcscdScript('start').catch(() => undefined);
  });

  beforeEach(async () => {
    card.afterCommand = undefined;
    // A test that failed half-way may have left pcscd stopped (idempotent when it runs).
    await pcscdScript('start');
    card.restoreFactoryState({ pin: OLD_PIN, puk: PUK, blocked: true });
    if (!vpcd.connected) await vpcd.connect();
    await waitForCardState(pcsc, READER, 'present', RECOVERY_TIMEOUT_MS);
    await expect.poll(lastCardEvent, { timeout: RECOVERY_TIMEOUT_MS }).toMatchObject({ present: true, reader: READER, cardId: CARD_ID });
  });

  it('runs from its own directory with the PC/SC addon beside it and reports the card to the bot', async () => {
    expect(proc.hasExited()).toBe(false);
    expect(await readStatus()).toEqual(present);
  });

  it('reader unplugged and plugged back while idle: the bot is told the card left and is back, and it can be read', async () => {
    const before = cardEvents().length;
    await vpcd.disconnect();
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual(absent);
    expect(await readStatus()).toEqual(absent);
    await vpcd.connect();
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual(present);
    expect(cardEvents().slice(before)).toEqual([absent, present]);
    expect(await readStatus()).toEqual(present);
  });

  it('reader unplugged while an unlock waits for the card: plugged back, the unlock finishes and the new passcode verifies', async () => {
    const journeyId = await prompt();
    await vpcd.disconnect();
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual(absent);
    const waiting = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(waiting.body)).toBe('card_removed');
    await expect.poll(() => results(journeyId), { timeout: EVENT_TIMEOUT_MS }).toMatchObject([{ outcome: 'card_removed' }]);

    await vpcd.connect();
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: RECOVERY_TIMEOUT_MS, interval: 250 }).toBe('done');
    await expect.poll(() => results(journeyId).at(-1), { timeout: EVENT_TIMEOUT_MS }).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await verifies(OLD_PIN)).toBe(false);
  });

  it('pcscd restarted while idle: the companion makes a new PC/SC context by itself and reports the card again', async () => {
    const before = cardEvents().length;
    await pcscdScript('stop');
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual(absent);
    await pcscdScript('start');
    await expect.poll(lastCardEvent, { timeout: RECOVERY_TIMEOUT_MS, interval: 250 }).toEqual(present);
    expect(changes(cardEvents().slice(before))).toEqual([absent, present]);
    expect(await readStatus()).toEqual(present);
    expect(proc.hasExited()).toBe(false);
  });

  it('pcscd restarted while an unlock waits for the card: the unlock finishes once pcscd is back, and the new passcode verifies', async () => {
    const journeyId = await prompt();
    await pcscdScript('stop');
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual(absent);
    const waiting = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    // Not "done": nothing reached the card, and the page says so.
    expect(pageState(waiting.body)).toBe('card_removed');
    await expect.poll(() => results(journeyId), { timeout: EVENT_TIMEOUT_MS }).toMatchObject([{ outcome: 'card_removed' }]);

    await pcscdScript('start');
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: RECOVERY_TIMEOUT_MS, interval: 250 }).toBe('done');
    await expect.poll(() => results(journeyId).at(-1), { timeout: EVENT_TIMEOUT_MS }).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    await waitForCardState(pcsc, READER, 'present', RECOVERY_TIMEOUT_MS);
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await verifies(OLD_PIN)).toBe(false);
  });

  // A reader (here: pcscd) lost mid-APDU: the command may have taken effect on the card while its
  // answer never came. The page must not say the passcode was set, and must not send the person
  // to a failure that spends a PUK try; it waits for the card and finishes when the service is back.
  it('pcscd lost right after RESET RETRY COUNTER took effect: the page waits for the card (never "done" early), then finishes', async () => {
    const journeyId = await prompt();
    stopPcscdAfter(INS.RESET_RETRY_COUNTER);
    const waiting = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(waiting.body)).toBe('card_removed');
    await expect.poll(() => results(journeyId), { timeout: EVENT_TIMEOUT_MS }).toMatchObject([{ outcome: 'card_removed', pukOnCard: 'current' }]);

    await pcscdScript('start');
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: RECOVERY_TIMEOUT_MS, interval: 250 }).toBe('done');
    await expect.poll(() => results(journeyId).at(-1), { timeout: EVENT_TIMEOUT_MS }).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    await waitForCardState(pcsc, READER, 'present', RECOVERY_TIMEOUT_MS);
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await pukIs(NEW_PUK)).toBe(true);
  });

  it('pcscd lost right after the PUK change took effect: the PUK on the card is "unknown" to the bot, and the unlock finishes with the new PUK', async () => {
    const journeyId = await prompt();
    stopPcscdAfter(INS.CHANGE_REFERENCE_DATA);
    const waiting = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(waiting.body)).toBe('card_removed');
    await expect.poll(() => results(journeyId), { timeout: EVENT_TIMEOUT_MS }).toMatchObject([{ outcome: 'card_removed', pukOnCard: 'unknown' }]);

    await pcscdScript('start');
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: RECOVERY_TIMEOUT_MS, interval: 250 }).toBe('done');
    await expect.poll(() => results(journeyId).at(-1), { timeout: EVENT_TIMEOUT_MS }).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    await waitForCardState(pcsc, READER, 'present', RECOVERY_TIMEOUT_MS);
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await pukIs(NEW_PUK)).toBe(true);
  });
});

describe.skipIf(!run)('packaged companion with two readers and no reader named: it uses the reader that holds the card', () => {
  const ID_A = 'a1'.repeat(16);
  const ID_B = 'b2'.repeat(16);
  let bot: FakeBot;
  let proc: ManagedProcess;
  let pcsc: PcscReaderAdapter;
  let cardA: VirtualPivCard;
  let cardB: VirtualPivCard;
  let inFirst: VpcdClient;
  let inSecond: VpcdClient;
  let browser: PageBrowser;

  const facts = (s: CardStatus): CardStatus => (s.present ? { present: true, reader: s.reader, cardId: s.cardId, pinRetries: s.pinRetries } : { present: false, reader: s.reader });
  const lastCardEvent = (): CardStatus | undefined => bot.received.flatMap((r) => (r.frame.type === 'card.event' ? [facts(r.frame.status)] : [])).at(-1);
  async function pinVerifies(reader: string, pin: string): Promise<boolean> {
    const conn = await pcsc.connect(reader);
    try {
      await (await PivSession.open(conn)).verifyPin(pin);
      return true;
    } catch (err) {
      if (err instanceof InvalidPinError) return false;
      throw err;
    } finally {
      await conn.close('reset');
    }
  }

  beforeAll(async () => {
    pcsc = await PcscReaderAdapter.open({ retryDelayMs: 200, waitForService: true });
    cardA = new VirtualPivCard({ cardId: ID_A, pin: OLD_PIN, puk: PUK, blocked: true });
    cardB = new VirtualPivCard({ cardId: ID_B, pin: OLD_PIN, puk: PUK, blocked: true });
    inFirst = new VpcdClient({ card: cardA, port: VPCD_READER.port });
    inSecond = new VpcdClient({ card: cardB, port: VPCD_READER_2.port });
    bot = new FakeBot();
    const botUrl = await bot.start();
    bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK });
    bot.onRequest = (request: Request): Response =>
      request.kind === 'unlock.submit_code' || request.kind === 'unlock.resume' ? { kind: 'unlock.accepted', journeyId: request.journeyId } : { kind: 'ok' };
    await pairedWith(bot, botUrl, join(root, 'data-two'));
    proc = startPackaged('companion-readers-two', botUrl, join(root, 'data-two'), []);
    const [, link] = (await proc.waitForLine(/^PASSCODE PAGE: (\S+)$/, 20_000)) as [string, string];
    browser = new PageBrowser(link);
    await browser.open();
    await proc.waitForLine(/^STATUS: connected to Smartcard Assist/, 20_000);
  }, 120_000);

  afterAll(async () => {
    await proc?.stop();
    await bot?.stop();
    await inFirst?.disconnect();
    await inSecond?.disconnect();
    await pcsc?.close();
  });

  it('reports the card of whichever reader holds it, and unlocks the card the journey is for when both readers hold one', async () => {
    await insertVirtualCard(pcsc, inSecond, VPCD_READER_2.name, EVENT_TIMEOUT_MS);
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual({ present: true, reader: VPCD_READER_2.name, cardId: ID_B, pinRetries: 0 });
    await inSecond.disconnect();
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual({ present: false, reader: VPCD_READER_2.name });
    await insertVirtualCard(pcsc, inFirst, VPCD_READER.name, EVENT_TIMEOUT_MS);
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual({ present: true, reader: VPCD_READER.name, cardId: ID_A, pinRetries: 0 });

    // Both readers hold a card: the unlock for card B goes to the reader holding B, and A is not touched.
    await insertVirtualCard(pcsc, inSecond, VPCD_READER_2.name, EVENT_TIMEOUT_MS);
    // Once the companion has read it (a card pcscd reports a moment before the companion sees it would be
    // "put your card back" first, then finish by itself: the waiting cases above).
    await expect.poll(lastCardEvent, { timeout: EVENT_TIMEOUT_MS }).toEqual({ present: true, reader: VPCD_READER_2.name, cardId: ID_B, pinRetries: 0 });
    const journeyId = randomUUID();
    await bot.command({ kind: 'unlock.prompt', journeyId, cardId: ID_B, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    const done = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body)).toBe('done');
    await expect.poll(() => bot.requests().filter((r) => r.kind === 'unlock.result' && r.journeyId === journeyId), { timeout: EVENT_TIMEOUT_MS }).toMatchObject([{ outcome: 'unblocked', cardId: ID_B }]);
    expect(await pinVerifies(VPCD_READER_2.name, NEW_PASSCODE)).toBe(true);
    expect(cardA.pinRetries).toBe(0); // still blocked: nothing was sent to it but reads
  });
});
