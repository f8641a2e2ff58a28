/**
 * PIV over real PC/SC: pcscd with the vpcd reader, the project's virtual PIV
 * card connected to vpcd over TCP, the PC/SC adapter (pcsclite) and PivSession.
 * Every assertion is on what the card answers over PC/SC (retry counters read
 * back with an empty VERIFY, PINs that verify or not), cross-checked with the
 * card's own counters.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CardConnection } from '../../companion/piv/card-connection';
import { CARD_ERROR_CODE, CardError, InvalidPinError, InvalidPukError, PinBlockedError, PukBlockedError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import { waitForCardState } from '../../companion/piv/reader-events';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import { ensurePcscd, insertVirtualCard, requireService, VPCD_READER } from '../support/pcscd';
import { isCI } from '../support/services';

const execFileAsync = promisify(execFile);

const pcscd = ensurePcscd();
const run = requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);

const CARD_ID = '5a17c0de0000400080001234abcdef01';
const PIN = '284619';
const PUK = '60718293';
const NEW_PIN = '951753';
const WRONG_PIN = '111222';
const WRONG_PUK = '00000000';
/** pcscd polls vpcd every ~400 ms; insertion/removal events can take a little over that. */
const EVENT_TIMEOUT_MS = 5000;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (error) {
    return error;
  }
  throw new Error('expected the card operation to fail');
}

describe.skipIf(!run)('PIV over pcscd + vpcd + the virtual card (PC/SC adapter)', () => {
  let adapter: PcscReaderAdapter;
  let card: VirtualPivCard;
  let client: VpcdClient;
  const open: CardConnection[] = [];

  /** Connect through PC/SC and SELECT PIV; the connection is closed with RESET after the test. */
  async function session(): Promise<PivSession> {
    const conn = await adapter.connect(VPCD_READER.name);
    open.push(conn);
    return PivSession.open(conn);
  }

  async function insert(): Promise<void> {
    await insertVirtualCard(adapter, client, VPCD_READER.name, EVENT_TIMEOUT_MS);
  }

  async function remove(): Promise<void> {
    await client.disconnect();
    await waitForCardState(adapter, VPCD_READER.name, 'absent', EVENT_TIMEOUT_MS);
  }

  beforeAll(async () => {
    adapter = await PcscReaderAdapter.open();
    card = new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK });
    client = new VpcdClient({ card, port: VPCD_READER.port });
    await insert();
  });

  beforeEach(async () => {
    // Reset the card between tests: factory PIN/PUK/counters, card in the reader, no hooks.
    card.onCommand = undefined;
    card.afterCommand = undefined;
    card.restoreFactoryState({ blocked: false });
    if (!client.connected) await insert();
  });

  afterEach(async () => {
    card.onCommand = undefined;
    card.afterCommand = undefined;
    while (open.length > 0) await open.pop()!.close('reset');
  });

  afterAll(async () => {
    while (open.length > 0) await open.pop()!.close('reset');
    await client?.disconnect();
    await adapter?.close();
  });

  it('reads the card id (CHUID GUID) and the PIN retry counter over PC/SC', async () => {
    const piv = await session();
    expect(piv.connection.reader).toBe(VPCD_READER.name);
    expect(piv.connection.atr).toEqual(card.atr);
    expect(await piv.readCardId()).toBe(CARD_ID);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 3 });
  });

  it('verifies the right PIN; closing with RESET clears the verified state', async () => {
    const piv = await session();
    await piv.verifyPin(PIN);
    expect((await piv.readPinStatus()).verified).toBe(true);
    expect(card.isPinVerified).toBe(true);
    await open.pop()!.close('reset');
    const again = await session();
    expect(await again.readPinStatus()).toEqual({ verified: false, retries: 3 });
  });

  it('a wrong PIN uses one try (63C2 read back), the right PIN restores the counter', async () => {
    const piv = await session();
    const error = (await rejection(piv.verifyPin(WRONG_PIN))) as InvalidPinError;
    expect(error).toBeInstanceOf(InvalidPinError);
    expect(error.attemptsLeft).toBe(2);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 2 });
    expect(card.pinRetries).toBe(2);
    await piv.verifyPin(PIN);
    await open.pop()!.close('reset');
    expect(await (await session()).readPinStatus()).toEqual({ verified: false, retries: 3 });
  });

  it('blocks after 3 wrong PINs: 63C2, 63C1, 63C0, then 6983 even for the right PIN', async () => {
    const piv = await session();
    const left: number[] = [];
    for (let i = 0; i < 3; i++) {
      const error = await rejection(piv.verifyPin(WRONG_PIN));
      expect(error).toBeInstanceOf(InvalidPinError);
      left.push((error as InvalidPinError).attemptsLeft);
    }
    expect(left).toEqual([2, 1, 0]);
    const blocked = (await rejection(piv.verifyPin(PIN))) as PinBlockedError;
    expect(blocked).toBeInstanceOf(PinBlockedError);
    expect(blocked.code).toBe(CARD_ERROR_CODE.PIN_BLOCKED);
    expect(blocked.swHex).toBe('6983');
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 0 });
    expect(card.pinRetries).toBe(0);
  });

  it('unblocks with the PUK: the new passcode verifies and the old one does not', async () => {
    card.restoreFactoryState({ blocked: true });
    const piv = await session();
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 0 });
    await piv.resetRetryCounter(PUK, NEW_PIN);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 3 });
    const old = (await rejection(piv.verifyPin(PIN))) as InvalidPinError;
    expect(old).toBeInstanceOf(InvalidPinError);
    expect(old.attemptsLeft).toBe(2);
    await piv.verifyPin(NEW_PIN);
    expect((await piv.readPinStatus()).verified).toBe(true);
    expect(card.pukRetries).toBe(3);
  });

  it('rotates the PUK after an unblock: the old PUK is refused, the new one works', async () => {
    card.restoreFactoryState({ blocked: true });
    const piv = await session();
    await piv.resetRetryCounter(PUK, NEW_PIN);
    await piv.changePuk(PUK, '31415926');
    const old = (await rejection(piv.resetRetryCounter(PUK, PIN))) as InvalidPukError;
    expect(old).toBeInstanceOf(InvalidPukError);
    expect(old.attemptsLeft).toBe(2);
    await piv.resetRetryCounter('31415926', PIN);
    await piv.verifyPin(PIN);
    expect(card.pukRetries).toBe(3);
  });

  it('a wrong PUK burns PUK tries (63C2, 63C1, 63C0), then 6983 and the PIN stays blocked', async () => {
    card.restoreFactoryState({ blocked: true });
    const piv = await session();
    const left: number[] = [];
    for (let i = 0; i < 3; i++) {
      const error = await rejection(piv.resetRetryCounter(WRONG_PUK, NEW_PIN));
      expect(error).toBeInstanceOf(InvalidPukError);
      left.push((error as InvalidPukError).attemptsLeft);
    }
    expect(left).toEqual([2, 1, 0]);
    expect(card.pukRetries).toBe(0);
    const blocked = (await rejection(piv.resetRetryCounter(PUK, NEW_PIN))) as PukBlockedError;
    expect(blocked).toBeInstanceOf(PukBlockedError);
    expect(blocked.code).toBe(CARD_ERROR_CODE.PUK_BLOCKED);
    expect(await piv.readPinStatus()).toEqual({ verified: false, retries: 0 });
  });

  it('card pulled mid RESET RETRY COUNTER: CARD.REMOVED; after reinsertion the card is unchanged and the unblock finishes', async () => {
    card.restoreFactoryState({ blocked: true });
    const piv = await session();
    card.onCommand = (ins) => {
      if (ins === 0x2c) void client.disconnect(); // the card loses power before it acts
    };
    const error = (await rejection(piv.resetRetryCounter(PUK, NEW_PIN))) as CardError;
    expect(error).toBeInstanceOf(CardError);
    expect(error.code).toBe(CARD_ERROR_CODE.REMOVED);
    card.onCommand = undefined;
    await waitForCardState(adapter, VPCD_READER.name, 'absent', EVENT_TIMEOUT_MS);

    // The old connection is dead; a new one needs the card back.
    expect(((await rejection(piv.readPinStatus())) as CardError).code).toBe(CARD_ERROR_CODE.REMOVED);
    expect(((await rejection(adapter.connect(VPCD_READER.name))) as CardError).code).toBe(CARD_ERROR_CODE.NOT_PRESENT);

    await insert();
    const again = await session();
    expect(await again.readCardId()).toBe(CARD_ID);
    expect(await again.readPinStatus()).toEqual({ verified: false, retries: 0 });
    expect(card.pukRetries).toBe(3);
    await again.resetRetryCounter(PUK, NEW_PIN);
    await again.verifyPin(NEW_PIN);
    expect((await again.readPinStatus()).verified).toBe(true);
    expect(card.pinRetries).toBe(3);
  });

  it('card pulled after it acted but before it answered: CARD.REMOVED; after reinsertion the new passcode already works', async () => {
    card.restoreFactoryState({ blocked: true });
    const piv = await session();
    card.afterCommand = (ins) => {
      if (ins === 0x2c) void client.disconnect(); // the card acted; its answer is lost
    };
    const error = (await rejection(piv.resetRetryCounter(PUK, NEW_PIN))) as CardError;
    expect(error.code).toBe(CARD_ERROR_CODE.REMOVED);
    card.afterCommand = undefined;
    await waitForCardState(adapter, VPCD_READER.name, 'absent', EVENT_TIMEOUT_MS);
    await insert();
    const again = await session();
    // The companion reads the counter to learn what happened: 3 = the unblock took effect.
    expect(await again.readPinStatus()).toEqual({ verified: false, retries: 3 });
    expect(((await rejection(again.verifyPin(PIN))) as InvalidPinError).attemptsLeft).toBe(2);
    await again.verifyPin(NEW_PIN);
  });

  it('connect with no card in the reader gives CARD.NOT_PRESENT; an unknown reader CARD.READER_UNAVAILABLE', async () => {
    await remove();
    expect(((await rejection(adapter.connect(VPCD_READER.name))) as CardError).code).toBe(CARD_ERROR_CODE.NOT_PRESENT);
    expect(((await rejection(adapter.connect('No Such Reader 99'))) as CardError).code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);
    await insert();
    expect(await (await session()).readCardId()).toBe(CARD_ID);
  });

  it('reports removal and insertion events for the reader', async () => {
    const seen: string[] = [];
    const stop = adapter.onEvent((e) => {
      if (e.reader === VPCD_READER.name) seen.push(e.type);
    });
    await remove();
    await insert();
    stop();
    expect(seen).toEqual(['reader.added', 'card.inserted', 'card.removed', 'card.inserted']);
  });

  it('opensc-tool recognises the virtual card as a PIV card (cross-check, when installed)', async (ctx) => {
    let out: string;
    try {
      // Async: the virtual card answers from this process's event loop.
      ({ stdout: out } = await execFileAsync('opensc-tool', ['--reader', VPCD_READER.name, '--name'], { encoding: 'utf8', timeout: 30_000 }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !isCI()) {
        ctx.skip();
        return;
      }
      throw error;
    }
    expect(out).toMatch(/Personal Identity Verification Card|PIV/);
  });
});
