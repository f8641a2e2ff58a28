/**
 * The companion as a process (`companion/main.ts`, in-process virtual card),
 * against a local bot stand-in that speaks the real pairing HTTP contract and
 * link WebSocket protocol (FakeBot: the bot itself is tested elsewhere). The
 * test reads the person's lines on stdout, pairs, unlocks through the passcode
 * page over HTTP, reads the card back through the link, gets revoked and sees
 * the companion pair again, stops it with SIGTERM, and then searches the log
 * file, stdout and the data directory for every secret it used.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { PageBrowser, pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import type { Request, Response } from '../../protocol/companion-link.protocol';
import { startProcess, type ManagedProcess } from '../support/processes';

const CARD_ID = '6b3f0c1de0a74b5c8d9e0f1a2b3c4d5e';
const OLD_PIN = '305719';
const PUK = '84026153';
const NEW_PUK = '19375028';
const NEW_PASSCODE = '730591';
const CODE = '62049173';
const JOURNEY = randomUUID();

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('companion process with the in-process virtual card, against a local bot stand-in (real pairing and link contract)', () => {
  let bot: FakeBot;
  let proc: ManagedProcess;
  let root: string;
  let logFile: string;
  let dataDir: string;

  beforeAll(async () => {
    bot = new FakeBot({ pairInterval: 1 });
    await bot.start();
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
    root = await mkdtemp(join(tmpdir(), 'companion-process-'));
    dataDir = join(root, 'data');
    logFile = join(root, 'logs', 'companion.log');
    proc = startProcess({
      name: 'companion-process',
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts'],
      env: {
        SMARTCARD_BOT_URL: bot.url.href,
        COMPANION_DATA_DIR: dataDir,
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: CARD_ID,
        COMPANION_VIRTUAL_CARD_PIN: OLD_PIN,
        COMPANION_VIRTUAL_CARD_PUK: PUK,
        COMPANION_VIRTUAL_CARD_BLOCKED: 'true',
        COMPANION_LOG_FILE: logFile,
        COMPANION_LOG_LEVEL: 'trace',
        COMPANION_WORKSTATION: 'WS Test-01',
        COMPANION_PAGE_PORT: '0',
        // Headless whatever the host: the companion opens no browser and raises no notification itself.
        COMPANION_OPEN_PAGE: 'off',
        COMPANION_NOTIFICATIONS: 'off',
      },
    });
  });

  afterAll(async () => {
    await proc?.stop();
    await bot?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('pairs, unlocks the card through the page, re-pairs after revocation, stops cleanly and leaks no secret', async () => {
    // 1. Lines for the person on stdout.
    const [, pageUrl] = await proc.waitForLine(/^PASSCODE PAGE: (http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]{43})$/);
    const [, userCode] = await proc.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4}) \(send "pair [A-Z0-9-]+" to Smartcard Assist in Teams; valid until \d\d:\d\d \S+\)$/);
    expect(bot.workstations).toEqual(['WS Test-01']);
    const browser = new PageBrowser(pageUrl!);
    const first = await browser.open();
    expect(pageState(first.body)).toBe('pairing');
    expect(pageText(first.body)).toContain(`pair ${userCode}`);

    // 2. The person sends the code in Teams (the stand-in approves it).
    const credential = bot.approve(userCode!, 'Alex Wilber');
    await proc.waitForLine(/^PAIRED: Alex Wilber$/, 15_000);
    await proc.waitForLine(/^STATUS: connected to Smartcard Assist \(paired with Alex Wilber\)$/, 15_000);
    const credFile = join(dataDir, 'credential.json');
    expect((await stat(credFile)).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(credFile, 'utf8'))).toMatchObject({ credential, personName: 'Alex Wilber', botUrl: bot.url.href });

    // 3. The card as the bot reads it: blocked.
    expect(await bot.command({ kind: 'card.read_status' })).toEqual({
      kind: 'card.status',
      status: { present: true, reader: 'Smartcard Assist Virtual Reader 00', cardId: CARD_ID, pinRetries: 0, certificates: [] },
    });

    // 4. Unlock: prompt, a wrong code, then the right one.
    // The test's browser has the page open (it loads it now, as an open page refreshes itself), so the
    // ack says the page is open: 'opened' although the companion itself opened nothing.
    await browser.get();
    expect(await bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() })).toEqual({ kind: 'ack', page: 'opened' });
    await proc.waitForLine(/^UNLOCK: /);
    expect(pageState((await browser.get()).body)).toBe('awaiting_unlock');
    const wrong = await browser.post('/unlock', { code: '11112222', passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageText(wrong.body)).toContain('That unlock code is not right. You can try 4 more times.');
    const done = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body)).toBe('done');
    await bot.waitFor((r) => r.frame.type === 'request' && r.frame.request.kind === 'unlock.result');
    expect(bot.requests()).toEqual([
      { kind: 'unlock.submit_code', journeyId: JOURNEY, cardId: CARD_ID, code: '11112222' },
      { kind: 'unlock.submit_code', journeyId: JOURNEY, cardId: CARD_ID, code: CODE },
      { kind: 'unlock.result', journeyId: JOURNEY, cardId: CARD_ID, outcome: 'unblocked', pukOnCard: 'new' },
    ]);
    // Read back from the card: the PIN retry counter is full again.
    expect(await bot.command({ kind: 'card.read_status' })).toMatchObject({ kind: 'card.status', status: { present: true, cardId: CARD_ID, pinRetries: 3 } });
    await bot.command({ kind: 'unlock.closed', journeyId: JOURNEY, outcome: 'unlocked', message: 'Your card is unlocked.' });

    // 5. Revoked: the credential file goes and a new pairing code is printed.
    bot.revoke(credential);
    await proc.waitForLine(/^STATUS: pairing was revoked by Smartcard Assist; pairing again$/, 10_000);
    const codes = async (): Promise<string[]> => proc.lines().filter((l) => l.startsWith('PAIRING CODE: '));
    await expect.poll(codes, { timeout: 10_000 }).toHaveLength(2);
    await expect(stat(credFile)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await codes())[1]).toContain(bot.userCodes[1]!);

    // 6. SIGTERM stops it cleanly.
    expect(await proc.stop()).toBe(0);

    // 7. No secret in the log, on stdout, or in the data directory.
    const log = await readFile(logFile, 'utf8');
    expect(log).toContain('"msg":"unblock finished"'); // the log is real and was written at trace level
    expect(log).toContain('RESET'); // APDUs are traced...
    const stdout = proc.output();
    const token = new URL(pageUrl!).searchParams.get('t')!;
    for (const secret of [OLD_PIN, NEW_PASSCODE, PUK, NEW_PUK, CODE, credential, credential.split('.')[1]!, token]) {
      expect(log, 'log file').not.toContain(secret);
    }
    for (const secret of [OLD_PIN, NEW_PASSCODE, PUK, NEW_PUK, CODE, credential]) expect(stdout, 'stdout').not.toContain(secret);
    expect((await stat(logFile)).mode & 0o777).toBe(0o600);
    for (const file of await listFiles(dataDir)) {
      const text = await readFile(file, 'utf8');
      for (const secret of [OLD_PIN, NEW_PASSCODE, PUK, NEW_PUK, CODE, token]) expect(text, file).not.toContain(secret);
    }
  });
});
