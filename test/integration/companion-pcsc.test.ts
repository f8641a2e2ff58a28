/**
 * The companion process over real PC/SC: pcscd with vpcd's second reader
 * ("Virtual PCD 00 01"), the project's virtual PIV card connected to it over
 * TCP from this test, the companion started with `COMPANION_READER=pcsc`, and a
 * local bot stand-in speaking the real link protocol (FakeBot). The card is read
 * back over PC/SC from this test: the new passcode verifies, the old does not,
 * the PUK was changed. The second case pulls the card mid-unblock (vpcd
 * disconnect right after the PUK change took effect) and puts it back.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { CredentialStore } from '../../companion/pairing/credential.store';
import { PageBrowser, pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { INS, KEY_REF } from '../../companion/piv/piv.constants';
import { InvalidPinError, InvalidPukError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import { waitForCardState } from '../../companion/piv/reader-events';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import type { CardStatus, Request, Response } from '../../protocol/companion-link.protocol';
import { ensurePcscd, requireService, VPCD_READER_2 } from '../support/pcscd';
import { startProcess, type ManagedProcess } from '../support/processes';

const pcscd = ensurePcscd();
const run = requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);

const CARD_ID = '2c9d4e5f60718293a4b5c6d7e8f90a1b';
const OLD_PIN = '415926';
const PUK = '27182818';
const NEW_PUK = '31415926';
const NEW_PASSCODE = '602714';
const CODE = '80417263';
const EVENT_TIMEOUT_MS = 8000;

describe.skipIf(!run)('companion over pcscd + vpcd with the virtual PIV card (bot stand-in speaks the real link protocol)', () => {
  let bot: FakeBot;
  let proc: ManagedProcess;
  let root: string;
  let card: VirtualPivCard;
  let vpcd: VpcdClient;
  let pcsc: PcscReaderAdapter;
  let browser: PageBrowser;

  /** Open a PC/SC session from this test, run `fn`, close with RESET. */
  async function onCard<T>(fn: (s: PivSession) => Promise<T>): Promise<T> {
    const conn = await pcsc.connect(VPCD_READER_2.name);
    try {
      return await fn(await PivSession.open(conn));
    } finally {
      await conn.close('reset');
    }
  }
  const verifies = (pin: string): Promise<boolean> =>
    onCard((s) => s.verifyPin(pin)).then(
      () => true,
      (err: unknown) => {
        if (err instanceof InvalidPinError) return false;
        throw err;
      },
    );
  const pukIs = (puk: string): Promise<boolean> =>
    onCard((s) => s.changePuk(puk, puk)).then(
      () => true,
      (err: unknown) => {
        if (err instanceof InvalidPukError) return false;
        throw err;
      },
    );
  const cardEvents = (): CardStatus[] => bot.received.flatMap((r) => (r.frame.type === 'card.event' ? [r.frame.status] : []));

  beforeAll(async () => {
    pcsc = await PcscReaderAdapter.open();
    card = new VirtualPivCard({ cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true });
    vpcd = new VpcdClient({ card, port: VPCD_READER_2.port });
    await vpcd.connect();
    await waitForCardState(pcsc, VPCD_READER_2.name, 'present', EVENT_TIMEOUT_MS);

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
      if (request.kind === 'unlock.resume') return { kind: 'unlock.accepted', journeyId: request.journeyId };
      return { kind: 'ok' };
    };
    root = await mkdtemp(join(tmpdir(), 'companion-pcsc-'));
    const deviceId = randomUUID();
    const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
    bot.credentials.set(credential, { deviceId, personName: 'Alex Wilber' });
    await new CredentialStore(join(root, 'data'), createLogger({ name: 't', level: 'silent' })).write({
      deviceId,
      credential,
      personName: 'Alex Wilber',
      botUrl: botUrl.href,
      pairedAt: new Date().toISOString(),
    });
    proc = startProcess({
      name: 'companion-pcsc',
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts', '--reader', 'pcsc', '--reader-name', VPCD_READER_2.name],
      env: {
        SMARTCARD_BOT_URL: botUrl.href,
        COMPANION_DATA_DIR: join(root, 'data'),
        COMPANION_LOG_FILE: join(root, 'companion.log'),
        COMPANION_LOG_LEVEL: 'debug',
      },
    });
    const [, url] = await proc.waitForLine(/^PASSCODE PAGE: (\S+)$/);
    browser = new PageBrowser(url!);
    await browser.open();
    await proc.waitForLine(/^STATUS: connected to Smartcard Assist/, 20_000);
  });

  afterAll(async () => {
    await proc?.stop();
    await bot?.stop();
    await vpcd?.disconnect();
    await pcsc?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  beforeEach(async () => {
    card.onCommand = undefined;
    card.afterCommand = undefined;
    card.restoreFactoryState({ pin: OLD_PIN, puk: PUK, blocked: true });
    if (!vpcd.connected) {
      await vpcd.connect();
      await waitForCardState(pcsc, VPCD_READER_2.name, 'present', EVENT_TIMEOUT_MS);
    }
  });

  it('reads the card over PC/SC and unlocks it: the new passcode verifies, the old does not, the PUK changed', async () => {
    await expect.poll(cardEvents, { timeout: EVENT_TIMEOUT_MS }).toContainEqual({ present: true, reader: VPCD_READER_2.name, cardId: CARD_ID, pinRetries: 0, certificates: [] });
    expect(await bot.command({ kind: 'card.read_status' })).toEqual({
      kind: 'card.status',
      status: { present: true, reader: VPCD_READER_2.name, cardId: CARD_ID, pinRetries: 0, certificates: [] },
    });
    const journeyId = randomUUID();
    await bot.command({ kind: 'unlock.prompt', journeyId, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    const done = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body)).toBe('done');
    await expect
      .poll(() => bot.requests().filter((r) => r.kind === 'unlock.result' && r.journeyId === journeyId), { timeout: 5000 })
      .toEqual([{ kind: 'unlock.result', journeyId, cardId: CARD_ID, outcome: 'unblocked', pukOnCard: 'new' }]);
    expect(card.isPinVerified).toBe(false); // the companion reset the card after its session
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await verifies(OLD_PIN)).toBe(false);
    expect(await pukIs(NEW_PUK)).toBe(true);
    expect(await pukIs(PUK)).toBe(false);
  });

  it('card pulled right after the PUK change: "put your card back", and the unlock finishes when it returns', async () => {
    const journeyId = randomUUID();
    await bot.command({ kind: 'unlock.prompt', journeyId, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() });
    card.afterCommand = (ins, apdu) => {
      if (ins === INS.CHANGE_REFERENCE_DATA && apdu[3] === KEY_REF.PUK) {
        card.afterCommand = undefined;
        void vpcd.disconnect();
      }
    };
    const removed = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(removed.body)).toBe('card_removed');
    expect(pageText(removed.body)).toContain('Put your card back to finish');
    await expect
      .poll(() => bot.requests().filter((r) => r.kind === 'unlock.result' && r.journeyId === journeyId), { timeout: 5000 })
      .toEqual([{ kind: 'unlock.result', journeyId, cardId: CARD_ID, outcome: 'card_removed', pukOnCard: 'unknown' }]);
    await waitForCardState(pcsc, VPCD_READER_2.name, 'absent', EVENT_TIMEOUT_MS);
    await expect.poll(() => cardEvents().at(-1), { timeout: EVENT_TIMEOUT_MS }).toEqual({ present: false, reader: VPCD_READER_2.name });

    // Put it back: pcscd reports the insertion, the companion resumes on its own.
    await vpcd.connect();
    await expect.poll(async () => pageState((await browser.get()).body), { timeout: 15_000, interval: 200 }).toBe('done');
    await expect
      .poll(() => bot.requests().filter((r) => 'journeyId' in r && r.journeyId === journeyId).map((r) => r.kind), { timeout: 5000 })
      .toEqual(['unlock.submit_code', 'unlock.result', 'unlock.resume', 'unlock.result']);
    expect(bot.requests().filter((r) => 'journeyId' in r && r.journeyId === journeyId).at(-1)).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    await waitForCardState(pcsc, VPCD_READER_2.name, 'present', EVENT_TIMEOUT_MS);
    expect(await verifies(NEW_PASSCODE)).toBe(true);
    expect(await pukIs(NEW_PUK)).toBe(true);
  });
});
