/**
 * The page comes to the person, and desktop notifications (issue #13), on the companion as a process
 * (`companion/main.ts`, in-process virtual card) against the local bot stand-in. The browser is a script
 * given as COMPANION_BROWSER_COMMAND that records the link it is handed; `notify-send` is a script first on
 * PATH that records its arguments and "clicks" the notification's action. The test follows the links the
 * "browser" got: they must be live passcode page links showing what the bot asked for.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { PageBrowser, pageState } from '../../companion/passcode-page/page-browser.fake';
import type { Request, Response } from '../../protocol/companion-link.protocol';
import { startProcess, type ManagedProcess } from '../support/processes';

const CARD_ID = '7c1f0c1de0a74b5c8d9e0f1a2b3c4d5e';
const PIN = '305719';
const PUK = '84026153';
const NEW_PUK = '19375028';
const NEW_PASSCODE = '730591';
const CODE = '62049173';
const JOURNEY = '0b7e3c2a-5d41-4f0e-9a6b-1c2d3e4f5a6b';
const LINK = /^http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]{43}$/;

describe('the page comes to the person; desktop notifications (companion process, fake browser and notify-send)', () => {
  let bot: FakeBot;
  let root: string;
  let browserLog: string;
  let notifyLog: string;
  const procs: ManagedProcess[] = [];

  const start = (name: string): ManagedProcess => {
    const proc = startProcess({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts'],
      env: {
        PATH: `${join(root, 'bin')}:${process.env['PATH'] ?? ''}`,
        SMARTCARD_BOT_URL: bot.url.href,
        COMPANION_DATA_DIR: join(root, 'data'),
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: CARD_ID,
        COMPANION_VIRTUAL_CARD_PIN: PIN,
        COMPANION_VIRTUAL_CARD_PUK: PUK,
        COMPANION_VIRTUAL_CARD_BLOCKED: 'true',
        COMPANION_LOG_FILE: join(root, `${name}.log`),
        COMPANION_WORKSTATION: 'WS Desktop',
        COMPANION_TRAY: 'off',
        COMPANION_OPEN_PAGE: 'browser',
        COMPANION_BROWSER_COMMAND: join(root, 'bin', 'browser'),
        COMPANION_NOTIFICATIONS: 'on',
        COMPANION_LINK_LOST_NOTICE_S: '2',
      },
    });
    procs.push(proc);
    return proc;
  };

  /** Links the fake browser was handed, in order. */
  const opened = async (): Promise<string[]> => (await readFile(browserLog, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  /** notify-send calls: each one's arguments. */
  const notices = async (): Promise<string[][]> =>
    (await readFile(notifyLog, 'utf8').catch(() => ''))
      .split('\n\n')
      .filter(Boolean)
      .map((block) => block.split('\n'));

  beforeAll(async () => {
    bot = new FakeBot({ pairInterval: 1 });
    await bot.start();
    bot.releaseOnAccept({ puk: PUK, newPuk: NEW_PUK });
    bot.onRequest = (request: Request): Response =>
      request.kind === 'unlock.submit_code' ? { kind: 'unlock.accepted', journeyId: request.journeyId } : { kind: 'ok' };
    root = await mkdtemp(join(tmpdir(), 'companion-desktop-'));
    browserLog = join(root, 'browser.txt');
    notifyLog = join(root, 'notify.txt');
    await mkdir(join(root, 'bin'));
    await writeFile(join(root, 'bin', 'browser'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${browserLog}'\n`);
    // As notify-send with an action: the person clicks "Open passcode page" (its name comes back on stdout).
    await writeFile(
      join(root, 'bin', 'notify-send'),
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> '${notifyLog}'; done\necho >> '${notifyLog}'\ncase "$*" in *--action=open=*) echo open ;; esac\n`,
    );
    await chmod(join(root, 'bin', 'browser'), 0o755);
    await chmod(join(root, 'bin', 'notify-send'), 0o755);
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await bot?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a code request opens the page in the browser and notifies (its Open opens a new link); unlock done is notified; a second start opens the page; the link lost is notified', async () => {
    const proc = start('desktop-companion');
    const [, userCode] = await proc.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4}) /);
    bot.approve(userCode!, 'Alex Wilber');
    await proc.waitForLine(/^STATUS: connected to Smartcard Assist/, 15_000);
    expect(await opened()).toEqual([]); // nothing opens before something is asked

    // The bot asks for the unlock code: the browser gets the link printed with the prompt, and a notification
    // says so; the (fake) person clicks its "Open passcode page", which opens a new link. The ack tells the bot
    // the page opened (issue #13: the Teams card then names the computer).
    expect(await bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId: CARD_ID, codeExpiresAt: new Date(Date.now() + 900_000).toISOString() })).toEqual({ kind: 'ack', page: 'opened' });
    await proc.waitForLine(/^UNLOCK: /);
    await expect.poll(opened, { timeout: 10_000 }).toHaveLength(2);
    const [first, second] = await opened();
    const printed = proc.lines().filter((l) => l.startsWith('PASSCODE PAGE: ')).map((l) => l.slice('PASSCODE PAGE: '.length));
    expect(first).toMatch(LINK);
    expect(printed).toContain(first); // the one printed with the prompt
    expect(second).toMatch(LINK);
    expect(second).not.toBe(first);
    expect(printed.at(-1)).toBe(second); // a new one, printed as every link is
    const codeNotice = (await notices()).find((n) => n.includes('Smartcard Assist: type your unlock code'));
    expect(codeNotice).toEqual([
      '--app-name=Smartcard Assist',
      '--icon=dialog-information',
      '--action=open=Open passcode page',
      '--',
      'Smartcard Assist: type your unlock code',
      'Type the unlock code Smartcard Assist sent you and a new passcode on the passcode page. It has opened in your browser.',
    ]);

    // The browser's page (the newest link) shows the unlock form; the person unlocks the card there.
    const browser = new PageBrowser(second!);
    expect(pageState((await browser.open()).body)).toBe('awaiting_unlock');
    const done = await browser.post('/unlock', { code: CODE, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body)).toBe('done');
    await proc.waitForLine(/^UNLOCKED: /, 15_000);
    await expect.poll(async () => (await notices()).find((n) => n.includes('Smartcard Assist: card unlocked')), { timeout: 10_000 }).toEqual([
      '--app-name=Smartcard Assist',
      '--icon=dialog-information',
      '--',
      'Smartcard Assist: card unlocked',
      'Your smartcard is unlocked. Use your new passcode.',
    ]);

    // A second start shows the first: the page opens with a new link.
    const again = start('desktop-second');
    expect(await again.waitForExit(30_000)).toBe(0);
    await expect.poll(opened, { timeout: 10_000 }).toHaveLength(3);
    expect((await opened())[2]).toMatch(LINK);
    expect(pageState((await new PageBrowser((await opened())[2]!).open()).body)).not.toBe('error');

    // The link lost for longer than COMPANION_LINK_LOST_NOTICE_S (2 s here; a minute by default): the bot goes away.
    expect((await notices()).some((n) => n.includes('Smartcard Assist: not connected'))).toBe(false);
    const lostAt = Date.now();
    await bot.stop();
    await proc.waitForLine(/^STATUS: connection to Smartcard Assist lost; reconnecting$/, 15_000);
    await expect.poll(async () => (await notices()).find((n) => n.includes('Smartcard Assist: not connected')), { timeout: 15_000 }).toEqual([
      '--app-name=Smartcard Assist',
      '--icon=dialog-information',
      '--',
      'Smartcard Assist: not connected',
      'This computer has not reached Smartcard Assist for more than 2 seconds. It keeps trying.',
    ]);
    expect(Date.now() - lostAt).toBeGreaterThanOrEqual(2000);

    // No secret reached the browser's or notify-send's command lines.
    const said = `${await readFile(browserLog, 'utf8')}${await readFile(notifyLog, 'utf8')}`;
    for (const secret of [PIN, PUK, NEW_PUK, NEW_PASSCODE, CODE]) expect(said).not.toContain(secret);
  });
});
