/**
 * Unlock controller, through the whole companion runtime: the in-process
 * virtual PIV card, the real passcode page over HTTP, and a local `ws` server
 * speaking the bot's side of the link ({@link FakeBot}). Outcomes are read back
 * from the card (the new passcode verifies, the PUK changed) and from the frames
 * the bot received.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import type { Request, Response } from '../../protocol/companion-link.protocol';
import { CardService } from '../card/card.service';
import { CompanionRuntime } from '../companion.runtime';
import { FakeBot } from '../link/bot-link.fake';
import { CredentialStore } from '../pairing/credential.store';
import { PageBrowser, pageState, pageText } from '../passcode-page/page-browser.fake';
import { INS, KEY_REF } from '../piv/piv.constants';
import { InvalidPinError, InvalidPukError } from '../piv/piv.errors';
import { PivSession } from '../piv/piv.session';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../virtual-card/virtual-piv-card';

const CARD_ID = '00112233445566778899aabbccddeeff';
const OTHER_ID = 'ffeeddccbbaa99887766554433221100';
const OLD_PIN = '204817';
const PUK = '73920184';
const NEW_PUK = '51846203';
const NEW_PASSCODE = '583920';
const CODE = '48213957';
const JOURNEY = randomUUID();

const until = async (check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

interface World {
  bot: FakeBot;
  reader: InProcessReaderAdapter;
  card: VirtualPivCard;
  runtime: CompanionRuntime;
  browser: PageBrowser;
  lines: string[];
  logs: () => string;
  dataDir: string;
  triesLeft: number;
}

let world: World | null = null;
afterEach(async () => {
  if (!world) return;
  await world.runtime.stop();
  await world.reader.close();
  await world.bot.stop();
  await rm(world.dataDir, { recursive: true, force: true });
  world = null;
});

/**
 * The bot's side of the unlock, as the journey would answer: `unlock.accepted` for the right
 * code (the PUK pair follows as a command, see {@link FakeBot.releaseOnAccept}).
 */
function botSide(w: { triesLeft: number }) {
  return (request: Request): Response => {
    switch (request.kind) {
      case 'unlock.submit_code':
        if (request.code === CODE) return { kind: 'unlock.accepted', journeyId: request.journeyId };
        w.triesLeft -= 1;
        return { kind: 'unlock.refused', reason: 'wrong_code', message: 'That code is not right.', triesLeft: w.triesLeft };
      case 'unlock.resume':
        return { kind: 'unlock.accepted', journeyId: request.journeyId };
      case 'unlock.result':
      case 'register.passcode_checked':
      case 'device.unpair':
        return { kind: 'ok' };
    }
  };
}

async function setup(cardId = CARD_ID, passcodeHoldMs?: number, releaseWaitMs?: number): Promise<World> {
  const chunks: string[] = [];
  const logger = createLogger({
    name: 'unlock-spec',
    level: 'trace',
    destination: new Writable({
      write(c, _e, cb) {
        chunks.push(String(c));
        cb();
      },
    }),
  });
  const bot = new FakeBot();
  const botUrl = await bot.start();
  const reader = new InProcessReaderAdapter();
  const card = new VirtualPivCard({ cardId, pin: OLD_PIN, puk: PUK, blocked: true });
  reader.insert(card);
  const dataDir = await mkdtemp(join(tmpdir(), 'unlock-spec-'));
  const credentials = new CredentialStore(dataDir, logger);
  const deviceId = randomUUID();
  const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
  bot.credentials.set(credential, { deviceId, personName: 'Alex Wilber' });
  await credentials.write({ deviceId, credential, personName: 'Alex Wilber', botUrl: botUrl.href, pairedAt: new Date().toISOString() });
  const lines: string[] = [];
  const runtime = new CompanionRuntime({
    botUrl,
    workstation: 'WS-01',
    pagePort: 0,
    credentials,
    card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
    logger,
    print: (l) => lines.push(l),
    tuning: {
      linkBackoff: { initialMs: 20, maxMs: 200 },
      ...(passcodeHoldMs !== undefined ? { passcodeHoldMs } : {}),
      ...(releaseWaitMs !== undefined ? { releaseWaitMs } : {}),
    },
  });
  const link = await runtime.start();
  const browser = new PageBrowser(link);
  expect((await browser.open()).status).toBe(200);
  await until(() => runtime.linkState === 'ready');
  const w: World = { bot, reader, card, runtime, browser, lines, logs: () => chunks.join(''), dataDir, triesLeft: 5 };
  bot.onRequest = botSide(w);
  bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK });
  world = w;
  return w;
}

async function prompt(w: World, cardId = CARD_ID, codeChannel?: 'email' | 'sms'): Promise<void> {
  const reply = await w.bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId, codeExpiresAt: new Date(Date.now() + 15 * 60_000).toISOString(), ...(codeChannel ? { codeChannel } : {}) });
  // No desktop side in this world: the ack says the page came to nobody by itself (issue #13); a repeat
  // that raises no prompt (the code was accepted) says nothing about the page.
  expect([{ kind: 'ack', page: 'none' }, { kind: 'ack' }]).toContainEqual(reply);
}

const form = (code: string, passcode = NEW_PASSCODE, confirmation = passcode) => ({ code, passcode, confirmation });

async function verifies(reader: InProcessReaderAdapter, pin: string): Promise<boolean> {
  const conn = await reader.connect(reader.readerName);
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

async function pukIs(reader: InProcessReaderAdapter, puk: string): Promise<boolean> {
  const conn = await reader.connect(reader.readerName);
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

function releaseCommand(cardId = CARD_ID, journeyId = JOURNEY) {
  return { kind: 'unlock.authorised' as const, journeyId, cardId, puk: PUK, newPuk: NEW_PUK };
}

/** No secret of the test in any frame the bot got, any log line, or any stdout line. */
function expectNoSecretsLeaked(w: World): void {
  const frames = JSON.stringify(w.bot.received.map((r) => r.frame));
  expect(frames).not.toContain(NEW_PASSCODE);
  expect(frames).not.toContain(PUK);
  expect(frames).not.toContain(NEW_PUK);
  const logs = w.logs();
  expect(logs.length).toBeGreaterThan(0);
  for (const secret of [NEW_PASSCODE, OLD_PIN, PUK, NEW_PUK, CODE]) {
    expect(logs).not.toContain(secret);
    expect(w.lines.join('\n')).not.toContain(secret);
  }
}

describe('unlock controller (in-process virtual card, local ws bot side)', () => {
  it('happy path: sends only the code, unblocks the card with the new passcode, reports the result', async () => {
    const w = await setup();
    expect(pageState((await w.browser.get()).body)).toBe('idle');
    await prompt(w);
    expect(w.lines).toContain('UNLOCK: type your unlock code and a new passcode on the passcode page');
    const formPage = await w.browser.get();
    expect(pageState(formPage.body)).toBe('awaiting_unlock');
    expect(pageText(formPage.body)).toContain('Unlock code');

    const done = await w.browser.post('/unlock', form('4821 3957'));
    expect(pageState(done.body)).toBe('done');
    expect(pageText(done.body)).toContain('Your card is unlocked');

    // What the bot got: only the code (spaces removed), then the outcome.
    await w.bot.waitFor((r) => r.frame.type === 'request' && r.frame.request.kind === 'unlock.result');
    expect(w.bot.requests()).toEqual([
      { kind: 'unlock.submit_code', journeyId: JOURNEY, cardId: CARD_ID, code: CODE },
      { kind: 'unlock.result', journeyId: JOURNEY, cardId: CARD_ID, outcome: 'unblocked', pukOnCard: 'new' },
    ]);
    // Read back from the card.
    expect(w.card.pinBlocked).toBe(false);
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expect(await verifies(w.reader, OLD_PIN)).toBe(false);
    expect(await pukIs(w.reader, NEW_PUK)).toBe(true);
    expect(w.runtime.unlock.holdsPasscode).toBe(false);
    // The terminal confirms it, once (issue #14: it never did).
    expect(w.lines.filter((l) => l.startsWith('UNLOCKED: '))).toEqual(['UNLOCKED: your card is unlocked; use your new passcode']);

    // The bot closes the journey: the success screen stays.
    await w.bot.command({ kind: 'unlock.closed', journeyId: JOURNEY, outcome: 'unlocked', message: 'Your card is unlocked.' });
    expect(pageState((await w.browser.get()).body)).toBe('done');
    expectNoSecretsLeaked(w);
  });

  it('wrong code: the page says so with the tries left, keeps the new passcode in memory (never in the page) and asks only for the code; the card is untouched', async () => {
    const w = await setup();
    await prompt(w);
    const wrong = await w.browser.post('/unlock', form('11112222'));
    expect(pageState(wrong.body)).toBe('awaiting_unlock');
    expect(pageText(wrong.body)).toContain('That unlock code is not right. You can try 4 more times.');
    expect(pageText(wrong.body)).toContain('Your new passcode is kept');
    // Only the code field: the passcode fields are gone and the passcode is not in the page.
    expect(wrong.body).toContain('name="code"');
    expect(wrong.body).not.toContain('name="passcode"');
    expect(wrong.body).not.toContain('name="confirmation"');
    expect(wrong.body).not.toContain(NEW_PASSCODE);
    expect(wrong.body).not.toContain('11112222');
    expect(w.card.pinBlocked).toBe(true);
    expect(w.card.pukRetries).toBe(w.card.pukRetriesMax);
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    expect(w.lines.some((l) => l.startsWith('UNLOCKED: '))).toBe(false);

    // The right code alone finishes with the kept passcode.
    const done = await w.browser.post('/unlock', { code: CODE });
    expect(pageState(done.body)).toBe('done');
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expect(w.runtime.unlock.holdsPasscode).toBe(false);
    expect(w.bot.requests().filter((r) => r.kind === 'unlock.submit_code')).toHaveLength(2);
    expect(w.lines).toContain('UNLOCKED: your card is unlocked; use your new passcode');
    expectNoSecretsLeaked(w);
  });

  it('after a wrong code the person can choose a different passcode; policy refusals send nothing to the bot', async () => {
    const w = await setup();
    await prompt(w);
    await w.browser.post('/unlock', form('11112222'));
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    const fresh = await w.browser.post('/change-passcode', {});
    expect(pageState(fresh.body)).toBe('awaiting_unlock');
    expect(fresh.body).toContain('name="passcode"');
    expect(pageText(fresh.body)).not.toContain('Your new passcode is kept');
    expect(w.runtime.unlock.holdsPasscode).toBe(false);

    const weak = await w.browser.post('/unlock', form(CODE, '123456'));
    expect(pageText(weak.body)).toContain('cannot be a run of digits');
    const mismatch = await w.browser.post('/unlock', form(CODE, NEW_PASSCODE, '583921'));
    expect(pageText(mismatch.body)).toContain('do not match');
    const badCode = await w.browser.post('/unlock', form('1234'));
    expect(pageText(badCode.body)).toContain('8 digits');
    // With no kept passcode, an empty passcode is refused by the policy, not sent.
    const empty = await w.browser.post('/unlock', { code: CODE });
    expect(pageState(empty.body)).toBe('awaiting_unlock');
    expect(empty.body).toContain('name="passcode"');
    expect(w.bot.requests()).toHaveLength(1); // only the first (wrong) code reached the bot

    const done = await w.browser.post('/unlock', form(CODE, '495027'));
    expect(pageState(done.body)).toBe('done');
    expect(await verifies(w.reader, '495027')).toBe(true);
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(false);
  });

  it('a code sent by SMS: the page and its messages say "text message", never "email" (unlock.prompt codeChannel, issue #14)', async () => {
    const w = await setup();
    await prompt(w, CARD_ID, 'sms');
    const form0 = pageText((await w.browser.get()).body);
    expect(form0).toContain('Type the unlock code from your text message');
    expect(form0).not.toMatch(/email/i);
    const badCode = await w.browser.post('/unlock', form('1234'));
    expect(pageText(badCode.body)).toContain('The unlock code is the 8 digits in your text message.');
    const same = await w.browser.post('/unlock', form(CODE, CODE));
    expect(pageText(same.body)).toContain('cannot be the unlock code you were sent');
    const wrong = await w.browser.post('/unlock', form('11112222'));
    expect(pageText(wrong.body)).toContain('Type the unlock code from your text message.');
    expect(pageText(wrong.body)).not.toMatch(/email/i);
    // The same journey prompted again without the field (a bot from before it): email, as before.
    await prompt(w);
    expect(pageText((await w.browser.get()).body)).toContain('Type the unlock code from your email');
    const older = await w.browser.post('/unlock', form('1234'));
    expect(pageText(older.body)).toContain('The unlock code is the 8 digits in your email.');
    // And prompted again by SMS: the page follows it.
    await prompt(w, CARD_ID, 'sms');
    expect(pageText((await w.browser.get()).body)).toContain('Type the unlock code from your text message');
    const done = await w.browser.post('/unlock', form(CODE));
    expect(pageState(done.body)).toBe('done');
  });

  it('a kept passcode ends with the hold time: the form asks for the passcode again', async () => {
    const w = await setup(CARD_ID, 300);
    await prompt(w);
    await w.browser.post('/unlock', form('11112222'));
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    await until(() => !w.runtime.unlock.holdsPasscode);
    const page = await w.browser.get();
    expect(pageState(page.body)).toBe('awaiting_unlock');
    expect(page.body).toContain('name="passcode"');
    expect(pageText(page.body)).not.toContain('Your new passcode is kept');
  });

  it('card pulled mid-unblock (after the PUK change took effect): "put your card back", then resumes and finishes', async () => {
    const w = await setup();
    await prompt(w);
    w.card.afterCommand = (ins, apdu) => {
      if (ins === INS.CHANGE_REFERENCE_DATA && apdu[3] === KEY_REF.PUK) {
        w.card.afterCommand = undefined;
        w.reader.remove();
      }
    };
    const removed = await w.browser.post('/unlock', form(CODE));
    expect(pageState(removed.body)).toBe('card_removed');
    expect(pageText(removed.body)).toContain('Put your card back to finish');
    await w.bot.waitFor((r) => r.frame.type === 'request' && r.frame.request.kind === 'unlock.result');
    expect(w.bot.requests()[1]).toEqual({ kind: 'unlock.result', journeyId: JOURNEY, cardId: CARD_ID, outcome: 'card_removed', pukOnCard: 'unknown' });
    expect(w.runtime.unlock.holdsPasscode).toBe(true);

    // Another card first: no resume, the page says it is the wrong card.
    const other = new VirtualPivCard({ cardId: OTHER_ID, pin: OLD_PIN, puk: PUK });
    w.reader.insert(other);
    await until(async () => pageText((await w.browser.get()).body).includes('not the card you are unlocking'));
    expect(w.bot.requests().some((r) => r.kind === 'unlock.resume')).toBe(false);
    w.reader.remove();

    // The right card comes back: resume, finish with the passcode held in memory.
    w.reader.insert(w.card);
    await until(async () => pageState((await w.browser.get()).body) === 'done');
    await until(() => w.bot.requests().filter((r) => r.kind === 'unlock.result').length === 2);
    expect(w.bot.requests().map((r) => r.kind)).toEqual(['unlock.submit_code', 'unlock.result', 'unlock.resume', 'unlock.result']);
    // The resume presents the accepted code again (the bot gives the pair to another link session only with it).
    expect(w.bot.requests()[2]).toEqual({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD_ID, code: CODE });
    expect(w.bot.requests()[3]).toMatchObject({ outcome: 'unblocked', pukOnCard: 'new' });
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expect(await pukIs(w.reader, NEW_PUK)).toBe(true);
    expect(w.runtime.unlock.holdsPasscode).toBe(false);

    // The bot heard about the card leaving and coming back.
    const events = w.bot.received.flatMap((r) => (r.frame.type === 'card.event' ? [r.frame.status] : []));
    expect(events).toContainEqual({ present: false, reader: w.reader.readerName });
    expect(events).toContainEqual({ present: true, reader: w.reader.readerName, cardId: OTHER_ID, pinRetries: 3, certificates: [] });
    expectNoSecretsLeaked(w);
  });

  it('unlock.closed clears the page and drops the held passcode', async () => {
    const w = await setup();
    await prompt(w);
    w.card.onCommand = (ins) => {
      if (ins === INS.RESET_RETRY_COUNTER) {
        w.card.onCommand = undefined;
        w.reader.remove();
      }
    };
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('card_removed');
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    await w.bot.command({ kind: 'unlock.closed', journeyId: JOURNEY, outcome: 'cancelled', message: 'You cancelled the unlock.' });
    const page = await w.browser.get();
    expect(pageState(page.body)).toBe('idle');
    expect(pageText(page.body)).toContain('You cancelled the unlock.');
    expect(w.runtime.unlock.holdsPasscode).toBe(false);
    // Reinserting the card now does nothing.
    w.reader.insert(w.card);
    await new Promise((r) => setTimeout(r, 100));
    expect(w.bot.requests().some((r) => r.kind === 'unlock.resume')).toBe(false);
    expect(w.card.pinBlocked).toBe(true);
  });

  it('a refusal the person cannot fix shows the reason without a retry; "unavailable" offers a retry back to the form', async () => {
    const w = await setup();
    await prompt(w);
    w.bot.onRequest = () => ({ kind: 'unlock.refused', reason: 'unavailable', message: '' });
    const page = await w.browser.post('/unlock', form(CODE));
    expect(pageState(page.body)).toBe('error');
    expect(page.body).toContain('action="retry"');
    expect(pageState((await w.browser.post('/retry', {})).body)).toBe('awaiting_unlock');
    w.bot.onRequest = () => ({ kind: 'unlock.refused', reason: 'expired', message: 'Your unlock code has expired. Start again in Teams.' });
    const expired = await w.browser.post('/unlock', form(CODE));
    expect(pageText(expired.body)).toContain('Your unlock code has expired. Start again in Teams.');
    expect(expired.body).not.toContain('action="retry"');
    expect(w.card.pinBlocked).toBe(true);
  });

  it('drops the held passcode after the hold time; the returning card is then not touched', async () => {
    const w = await setup(CARD_ID, 400);
    await prompt(w);
    w.card.onCommand = (ins) => {
      if (ins === INS.RESET_RETRY_COUNTER) {
        w.card.onCommand = undefined;
        w.reader.remove();
      }
    };
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('card_removed');
    await until(() => !w.runtime.unlock.holdsPasscode, 3000);
    const page = await w.browser.get();
    expect(pageState(page.body)).toBe('error');
    expect(pageText(page.body)).toContain('forgotten your new passcode');
    w.reader.insert(w.card);
    await new Promise((r) => setTimeout(r, 150));
    expect(w.bot.requests().some((r) => r.kind === 'unlock.resume')).toBe(false);
    expect(w.card.pinBlocked).toBe(true);
  });

  it('delivers unlock.result again after a reconnect when the link dropped before the bot answered', async () => {
    const w = await setup();
    await prompt(w);
    const answer = botSide(w);
    let dropped = false;
    w.bot.onRequest = (request) => {
      if (request.kind === 'unlock.result' && !dropped) {
        dropped = true;
        w.bot.closeLive(1011, 'bot restarting');
        return null;
      }
      return answer(request);
    };
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('done');
    await until(() => w.bot.requests().filter((r) => r.kind === 'unlock.result').length === 2);
    const results = w.bot.received.filter((r) => r.frame.type === 'request' && r.frame.request.kind === 'unlock.result');
    expect(results.map((r) => r.connection)).toEqual([1, 2]);
    expect(results[1]!.frame).toMatchObject({ request: { outcome: 'unblocked', pukOnCard: 'new' } });
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
  });

  it('a repeated prompt for the same journey refreshes the form before a code is accepted, and changes nothing after', async () => {
    const w = await setup();
    await prompt(w);
    w.bot.onRequest = () => ({ kind: 'unlock.refused', reason: 'expired', message: 'Your unlock code has expired.' });
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('error');
    await prompt(w); // a new code was sent for the same journey
    expect(pageState((await w.browser.get()).body)).toBe('awaiting_unlock');
    w.bot.onRequest = botSide(w);
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('done');
    await prompt(w);
    expect(pageState((await w.browser.get()).body)).toBe('done');
  });

  it('uses the PUK pair only from the unlock.authorised command that follows unlock.accepted; the response itself carries none', async () => {
    const w = await setup();
    await prompt(w);
    const done = await w.browser.post('/unlock', form(CODE));
    expect(pageState(done.body)).toBe('done');
    expect(w.bot.followUpReplies).toEqual([{ command: 'unlock.authorised', reply: { kind: 'ack' } }]);
    expect(await pukIs(w.reader, NEW_PUK)).toBe(true);
    // The same pair again (a repeated release): acknowledged, ignored, the card is not touched again.
    const resetsBefore = w.card.pukRetries;
    expect(await w.bot.command(releaseCommand())).toEqual({ kind: 'ack' });
    expect(w.card.pukRetries).toBe(resetsBefore);
    expect(w.bot.requests().filter((r) => r.kind === 'unlock.result')).toHaveLength(1);
    expectNoSecretsLeaked(w);
  });

  it('ignores a PUK release nobody asked for (no code submitted, or another journey or card): the card stays blocked', async () => {
    const w = await setup();
    await prompt(w);
    expect(await w.bot.command(releaseCommand())).toEqual({ kind: 'ack' }); // before any code was typed
    expect(pageState((await w.browser.get()).body)).toBe('awaiting_unlock');
    // The bot accepts, but sends the pair for another journey, then for another card: neither is used.
    w.bot.releaseOnAccept(() => null);
    w.bot.afterResponse = (request, response) =>
      response.kind === 'unlock.accepted' ? [releaseCommand(CARD_ID, randomUUID()), releaseCommand(OTHER_ID)] : null;
    const page = w.browser.post('/unlock', form(CODE));
    await until(() => w.bot.followUpReplies.length === 2);
    expect(w.bot.followUpReplies.map((r) => r.reply)).toEqual([{ kind: 'ack' }, { kind: 'ack' }]);
    expect(w.runtime.unlock.stateKind).toBe('working');
    expect(w.card.pinBlocked).toBe(true);
    expect(w.card.pukRetries).toBe(w.card.pukRetriesMax);
    // The right pair then finishes it.
    expect(await w.bot.command(releaseCommand())).toEqual({ kind: 'ack' });
    await until(() => w.runtime.unlock.stateKind === 'done');
    expect(pageState((await page).body)).toBe('done');
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expectNoSecretsLeaked(w);
  });

  it('takes the pair even when the command overtakes the response', async () => {
    const w = await setup();
    await prompt(w);
    w.bot.afterResponse = null;
    const answer = botSide(w);
    w.bot.onRequest = async (request) => {
      if (request.kind === 'unlock.submit_code' && request.code === CODE) expect(await w.bot.command(releaseCommand())).toEqual({ kind: 'ack' });
      return answer(request);
    };
    expect(pageState((await w.browser.post('/unlock', form(CODE))).body)).toBe('done');
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expect(await pukIs(w.reader, NEW_PUK)).toBe(true);
  });

  it('a resume refused with code_needed ends plainly (no retry) and drops the passcode and the code', async () => {
    const w = await setup(CARD_ID, undefined, 300);
    await prompt(w);
    w.bot.releaseOnAccept(() => null);
    await w.browser.post('/unlock', form(CODE));
    await until(() => w.runtime.unlock.stateKind === 'error');
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    const answer = botSide({ triesLeft: 5 });
    w.bot.onRequest = (request) => (request.kind === 'unlock.resume' ? { kind: 'unlock.refused', reason: 'code_needed', message: '' } : answer(request));
    await w.browser.post('/retry', {});
    await until(() => w.bot.requests().some((r) => r.kind === 'unlock.resume'));
    await until(async () => pageText((await w.browser.get()).body).includes('no longer has your code'));
    expect(w.runtime.unlock.holdsPasscode).toBe(false);
    expect((await w.browser.get()).body).not.toContain('action="retry"');
    expect(w.card.pinBlocked).toBe(true);
  });

  it('accepted but no pair arrives in time: an error with a retry, and the retry resumes and finishes', async () => {
    const w = await setup(CARD_ID, undefined, 300);
    await prompt(w);
    w.bot.releaseOnAccept(() => null);
    const page = await w.browser.post('/unlock', form(CODE));
    await until(() => w.runtime.unlock.stateKind === 'error');
    expect(pageText((await w.browser.get()).body)).toContain('did not reach this computer');
    expect(page.status).toBe(200);
    expect(w.card.pinBlocked).toBe(true);
    expect(w.runtime.unlock.holdsPasscode).toBe(true);
    w.bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK, pukUncertain: true });
    await w.browser.post('/retry', {});
    await until(() => w.runtime.unlock.stateKind === 'done');
    await until(() => w.bot.requests().length === 3);
    expect(w.bot.requests().map((r) => r.kind)).toEqual(['unlock.submit_code', 'unlock.resume', 'unlock.result']);
    expect(await verifies(w.reader, NEW_PASSCODE)).toBe(true);
    expect(await pukIs(w.reader, NEW_PUK)).toBe(true);
    expectNoSecretsLeaked(w);
  });
});
