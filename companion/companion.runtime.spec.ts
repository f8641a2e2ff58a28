/**
 * The runtime's pairing life cycle against a local bot stand-in ({@link FakeBot}:
 * the real pairing HTTP contract and link WebSocket): pair from the printed code,
 * store the credential 0600, connect, and on close 4401 delete it and pair again.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger';
import { CardService } from './card/card.service';
import { CompanionRuntime, OUTPUT_PREFIX } from './companion.runtime';
import { FakeBot } from './link/bot-link.fake';
import { CredentialStore } from './pairing/credential.store';
import { PageBrowser, pageState, pageText } from './passcode-page/page-browser.fake';
import { InProcessReaderAdapter } from './virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from './virtual-card/virtual-piv-card';

const logger = createLogger({ name: 'runtime-spec', level: 'silent' });
const CARD_ID = '00112233445566778899aabbccddeeff';

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

describe('CompanionRuntime pairing life cycle', () => {
  it('pairs from the printed code, stores the credential, connects; on 4401 deletes it and pairs again', async () => {
    const bot = new FakeBot({ pairInterval: 1 });
    const botUrl = await bot.start();
    cleanup.push(() => bot.stop());
    const reader = new InProcessReaderAdapter();
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: '204817', puk: '73920184', blocked: true }));
    cleanup.push(() => reader.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'runtime-spec-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const credentials = new CredentialStore(join(dataDir, 'companion'), logger);
    const lines: string[] = [];
    const runtime = new CompanionRuntime({
      botUrl,
      workstation: 'WS-01',
      pagePort: 0,
      credentials,
      card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
      logger,
      print: (l) => lines.push(l),
      tuning: { pairingSecondMs: 50, linkBackoff: { initialMs: 20, maxMs: 200 } },
    });
    const link = await runtime.start();
    cleanup.push(() => runtime.stop());

    expect(lines[0]).toBe(`${OUTPUT_PREFIX.page}${link}`);
    expect(link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]{43}$/);
    const codeLine = (): string | undefined => lines.filter((l) => l.startsWith(OUTPUT_PREFIX.pairingCode)).at(-1);
    await until(() => codeLine() !== undefined);
    const userCode = /^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4}) \(send "pair \1" to Smartcard Assist in Teams; valid until \d\d:\d\d \S+\)$/.exec(codeLine()!)?.[1];
    expect(userCode).toBe(bot.userCodes[0]);
    expect(bot.workstations).toEqual(['WS-01']);

    // The page shows the pairing code too.
    const browser = new PageBrowser(link);
    const page = await browser.open();
    expect(pageState(page.body)).toBe('pairing');
    expect(pageText(page.body)).toContain(`pair ${userCode}`);

    const credential = bot.approve(userCode!, 'Alex Wilber');
    await until(() => runtime.linkState === 'ready');
    expect(lines).toContain('PAIRED: Alex Wilber');
    expect(lines).toContain('STATUS: connected to Smartcard Assist (paired with Alex Wilber)');
    const stored = JSON.parse(await readFile(credentials.path, 'utf8')) as { credential: string };
    expect(stored.credential).toBe(credential);
    expect((await stat(credentials.path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dataDir, 'companion'))).mode & 0o777).toBe(0o700);
    // The bot heard which card is in the reader.
    const ev = await bot.waitFor((r) => r.frame.type === 'card.event');
    expect(ev.frame).toEqual({ type: 'card.event', status: { present: true, reader: reader.readerName, cardId: CARD_ID, pinRetries: 0, certificates: [] } });
    expect(pageState((await browser.get()).body)).toBe('idle');
    // No secret on stdout.
    expect(lines.join('\n')).not.toContain(credential);

    // Revoked: 4401 -> the credential file goes, a new code is shown.
    bot.revoke(credential);
    await until(() => bot.userCodes.length === 2);
    await until(async () => {
      try {
        await stat(credentials.path);
        return false;
      } catch {
        return true;
      }
    });
    expect(lines).toContain('STATUS: pairing was revoked by Smartcard Assist; pairing again');
    await until(() => codeLine()?.includes(bot.userCodes[1]!) === true);
    expect(pageText((await browser.get()).body)).toContain(`pair ${bot.userCodes[1]}`);

    const second = bot.approve(bot.userCodes[1]!, 'Alex Wilber');
    await until(() => runtime.linkState === 'ready' && bot.liveConnection > 0);
    expect(JSON.parse(await readFile(credentials.path, 'utf8')).credential).toBe(second);
    expect(bot.connections.at(-1)).toMatchObject({ authorised: true });
  });

  it('uses a stored credential without pairing', async () => {
    const bot = new FakeBot();
    const botUrl = await bot.start();
    cleanup.push(() => bot.stop());
    const reader = new InProcessReaderAdapter();
    cleanup.push(() => reader.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'runtime-spec-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const credentials = new CredentialStore(dataDir, logger);
    const deviceId = '7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11';
    const credential = `${deviceId}.${'k'.repeat(43)}`;
    bot.credentials.set(credential, { deviceId, personName: 'Megan Bowen' });
    await credentials.write({ deviceId, credential, personName: 'Megan Bowen', botUrl: botUrl.href, pairedAt: new Date().toISOString() });
    const lines: string[] = [];
    const runtime = new CompanionRuntime({ botUrl, workstation: 'WS-02', pagePort: 0, credentials, card: new CardService({ reader, readerName: null, logger }), logger, print: (l) => lines.push(l) });
    await runtime.start();
    cleanup.push(() => runtime.stop());
    await until(() => runtime.linkState === 'ready');
    expect(bot.userCodes).toEqual([]);
    expect(lines.some((l) => l.startsWith(OUTPUT_PREFIX.pairingCode))).toBe(false);
    const ev = await bot.waitFor((r) => r.frame.type === 'card.event');
    expect(ev.frame).toEqual({ type: 'card.event', status: { present: false, reader: reader.readerName } });
  });

  it('issue #13: snapshot (pairing, link, card) and events: prompt, a card inserted while the journey waits, unpair over the link', async () => {
    const bot = new FakeBot({ pairInterval: 1 });
    const botUrl = await bot.start();
    cleanup.push(() => bot.stop());
    const reader = new InProcessReaderAdapter();
    cleanup.push(() => reader.close());
    const dataDir = await mkdtemp(join(tmpdir(), 'runtime-spec-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const credentials = new CredentialStore(join(dataDir, 'companion'), logger);
    const runtime = new CompanionRuntime({
      botUrl,
      workstation: 'WS-03',
      pagePort: 0,
      credentials,
      card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
      logger,
      print: () => undefined,
      tuning: { pairingSecondMs: 50, linkBackoff: { initialMs: 20, maxMs: 200 } },
    });
    const events: string[] = [];
    runtime.onEvent((e) => events.push(e.kind === 'prompt' ? `prompt:${e.flow}` : e.kind));
    expect(runtime.snapshot()).toEqual({ pairing: { kind: 'not_paired', code: null }, link: 'down', card: { kind: 'unknown' } });
    await runtime.start();
    cleanup.push(() => runtime.stop());

    await until(() => bot.userCodes.length === 1);
    await until(() => runtime.snapshot().pairing.kind === 'not_paired' && (runtime.snapshot().pairing as { code: unknown }).code !== null);
    expect(runtime.snapshot().pairing).toMatchObject({ kind: 'not_paired', code: { userCode: bot.userCodes[0] } });
    bot.approve(bot.userCodes[0]!, 'Alex Wilber');
    await until(() => runtime.snapshot().link === 'up');
    await until(() => runtime.snapshot().card.kind === 'none');
    expect(runtime.snapshot().pairing).toEqual({ kind: 'paired', personName: 'Alex Wilber' });
    expect(events.filter((e) => e !== 'state')).toEqual([]);

    // A card inserted while nothing waits: the card state changes, no "inserted while waiting".
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: '204817', puk: '73920184', blocked: true }));
    await until(() => runtime.snapshot().card.kind === 'locked');
    expect(runtime.snapshot().card).toEqual({ kind: 'locked', reader: reader.readerName });
    expect(events).not.toContain('card_inserted_while_waiting');

    // The bot asks for the code; the card is pulled and put back while the page waits.
    const prompt = { kind: 'unlock.prompt', journeyId: '3f0a8f52-8c4e-4d7a-9a51-0c6f7e2b1d90', cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() } as const;
    // No desktop side answers: the ack says the page came to nobody (issue #13, the card keeps its general text).
    expect(await bot.command(prompt)).toEqual({ kind: 'ack', page: 'none' });
    await until(() => events.includes('prompt:unlock'));
    // A desktop side that raised a notification: the repeat's ack says so.
    const stop = runtime.onEvent((e) => {
      if (e.kind === 'prompt') e.shown?.(Promise.resolve('notified'));
    });
    expect(await bot.command({ ...prompt, codeExpiresAt: new Date(Date.now() + 960_000).toISOString() })).toEqual({ kind: 'ack', page: 'notified' });
    stop();
    reader.remove();
    await until(() => runtime.snapshot().card.kind === 'none');
    reader.insert(new VirtualPivCard({ cardId: CARD_ID, pin: '204817', puk: '73920184', blocked: true }));
    await until(() => events.includes('card_inserted_while_waiting'));
    expect(runtime.snapshot().card.kind).toBe('locked');

    // Unpair from the desktop: revoked at the bot, the credential deleted, a new pairing code.
    expect(await runtime.unpair()).toBe('unpaired');
    await until(() => bot.userCodes.length === 2, 10_000);
    expect(await credentials.read(botUrl)).toBeNull();
    await until(() => runtime.snapshot().pairing.kind === 'not_paired');
  });
});
