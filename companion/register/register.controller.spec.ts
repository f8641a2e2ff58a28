/**
 * Register controller (registration passcode check), through the companion
 * runtime: the in-process virtual PIV card, the real passcode page over HTTP and
 * a local `ws` server speaking the bot's side of the link ({@link FakeBot}).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CardService } from '../card/card.service';
import { CompanionRuntime } from '../companion.runtime';
import { FakeBot } from '../link/bot-link.fake';
import { CredentialStore } from '../pairing/credential.store';
import { PageBrowser, pageState, pageText } from '../passcode-page/page-browser.fake';
import { VERIFY_FIELDS } from '../passcode-page/page-view';
import { InProcessReaderAdapter } from '../virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../virtual-card/virtual-piv-card';

const CARD_ID = '00112233445566778899aabbccddeeff';
const PIN = '204817';
const PUK = '73920184';

const until = async (check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup(cardOptions: { blocked?: boolean } = {}) {
  const chunks: string[] = [];
  const logger = createLogger({
    name: 'register-spec',
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
  cleanup.push(() => bot.stop());
  const reader = new InProcessReaderAdapter();
  const card = new VirtualPivCard({ cardId: CARD_ID, pin: PIN, puk: PUK, ...cardOptions });
  reader.insert(card);
  cleanup.push(() => reader.close());
  const dataDir = await mkdtemp(join(tmpdir(), 'register-spec-'));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
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
  });
  const link = await runtime.start();
  cleanup.push(() => runtime.stop());
  const browser = new PageBrowser(link);
  await browser.open();
  await until(() => runtime.linkState === 'ready');
  bot.onRequest = (r) => (r.kind === 'register.passcode_checked' ? { kind: 'ok' } : { kind: 'unlock.refused', reason: 'not_waiting', message: '' });
  return { bot, reader, card, runtime, browser, lines, logs: () => chunks.join('') };
}

const checks = (bot: FakeBot) => bot.requests().filter((r) => r.kind === 'register.passcode_checked');
const submit = (browser: PageBrowser, passcode: string) => browser.post('/verify', { [VERIFY_FIELDS.passcode]: passcode });

describe('register controller: the current passcode is checked on the card, only the outcome goes to the bot', () => {
  it('right passcode: verified, reported with the card id, card reset afterwards', async () => {
    const w = await setup();
    const journeyId = randomUUID();
    expect(await w.bot.command({ kind: 'register.prompt_passcode', journeyId })).toEqual({ kind: 'ack' });
    expect(w.lines).toContain('REGISTER: type your current passcode on the passcode page');
    const form = await w.browser.get();
    expect(pageState(form.body)).toBe('awaiting_passcode');
    expect(form.body).toContain('<label for="current_passcode">Current passcode</label>');
    const done = await submit(w.browser, PIN);
    expect(pageState(done.body)).toBe('passcode_verified');
    expect(checks(w.bot)).toEqual([{ kind: 'register.passcode_checked', journeyId, result: { outcome: 'verified', cardId: CARD_ID } }]);
    expect(w.card.isPinVerified).toBe(false); // the companion reset the card after VERIFY
    expect(w.card.pinRetries).toBe(3);
    await w.bot.command({ kind: 'register.closed', journeyId, outcome: 'verified', message: '' });
    expect(pageState((await w.browser.get()).body)).toBe('passcode_verified');
    const frames = JSON.stringify(w.bot.received);
    expect(frames).not.toContain(PIN);
    expect(w.logs()).not.toContain(PIN);
  });

  it('wrong passcode: tries left read from the card; a malformed one costs no try', async () => {
    const w = await setup();
    const journeyId = randomUUID();
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId });
    const typo = await submit(w.browser, '12a4');
    expect(pageText(typo.body)).toContain('6 to 8 digits');
    expect(w.card.pinRetries).toBe(3);
    const wrong = await submit(w.browser, '111111');
    expect(pageState(wrong.body)).toBe('awaiting_passcode');
    expect(pageText(wrong.body)).toContain('Your card locks after 2 more wrong tries.');
    expect(w.card.pinRetries).toBe(2);
    expect(checks(w.bot)).toEqual([{ kind: 'register.passcode_checked', journeyId, result: { outcome: 'wrong_passcode', cardId: CARD_ID, triesLeft: 2 } }]);
    await submit(w.browser, '111111');
    const locked = await submit(w.browser, '111111');
    expect(pageState(locked.body)).toBe('error');
    expect(pageText(locked.body)).toContain('your card is now locked');
    expect(checks(w.bot).at(-1)).toMatchObject({ result: { outcome: 'wrong_passcode', triesLeft: 0 } });
    expect(w.card.pinBlocked).toBe(true);
  });

  it('blocked card and no card', async () => {
    const w = await setup({ blocked: true });
    const journeyId = randomUUID();
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId });
    const blocked = await submit(w.browser, PIN);
    expect(pageText(blocked.body)).toContain('Your card is locked');
    expect(checks(w.bot)).toEqual([{ kind: 'register.passcode_checked', journeyId, result: { outcome: 'blocked', cardId: CARD_ID } }]);

    const again = randomUUID();
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId: again });
    w.reader.remove();
    const none = await submit(w.browser, PIN);
    expect(pageState(none.body)).toBe('awaiting_passcode');
    expect(pageText(none.body)).toContain('Put your card in the reader');
    expect(checks(w.bot)).toHaveLength(1); // nothing to report without a card
  });

  it('register.closed clears the page; an unlock prompt takes the page over', async () => {
    const w = await setup();
    const journeyId = randomUUID();
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId });
    await w.bot.command({ kind: 'register.closed', journeyId, outcome: 'cancelled', message: 'Registration cancelled.' });
    const page = await w.browser.get();
    expect(pageState(page.body)).toBe('idle');
    expect(pageText(page.body)).toContain('Registration cancelled.');
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId: randomUUID() });
    await w.bot.command({ kind: 'unlock.prompt', journeyId: randomUUID(), cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 60_000).toISOString() });
    expect(pageState((await w.browser.get()).body)).toBe('awaiting_unlock');
    expect(w.runtime.register.active).toBe(false);
  });

  it('the bot refusing the report shows its message without a retry', async () => {
    const w = await setup();
    await w.bot.command({ kind: 'register.prompt_passcode', journeyId: randomUUID() });
    w.bot.onRequest = () => ({ kind: 'register.refused', message: 'No registration is waiting for this. Start again in Teams.' });
    const page = await submit(w.browser, PIN);
    expect(pageState(page.body)).toBe('error');
    expect(pageText(page.body)).toContain('No registration is waiting for this. Start again in Teams.');
    expect(page.body).not.toContain('action="retry"');
  });
});
