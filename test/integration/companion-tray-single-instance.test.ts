/**
 * One companion per user session (issue #13): the companion as a process
 * (`companion/main.ts`, in-process virtual card) against the local bot
 * stand-in. A second start on the same data directory defers to the first:
 * it exits 0 saying so, and the first shows itself (a new passcode page link
 * on its stdout). A companion killed without cleaning up leaves a stale lock
 * that the next start takes over. A companion given no log file logs to its
 * per-user default, `<data dir>/logs/companion.log` (0600). `--unpair` while a
 * companion runs is carried out by that companion, over its own link.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { startProcess, type ManagedProcess } from '../support/processes';

const PAGE_LINE = /^PASSCODE PAGE: (http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]{43})$/;

describe('companion single instance (lock file + show over the control socket)', () => {
  let bot: FakeBot;
  let root: string;
  let dataDir: string;
  const procs: ManagedProcess[] = [];

  /** `defaultLog`: no COMPANION_LOG_FILE, so the log goes to its per-user default `<data dir>/logs/companion.log`. */
  const start = (name: string, defaultLog = false): ManagedProcess => {
    const proc = startProcess({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts'],
      env: {
        SMARTCARD_BOT_URL: bot.url.href,
        COMPANION_DATA_DIR: dataDir,
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: '0123456789abcdef0123456789abcdef',
        COMPANION_VIRTUAL_CARD_PIN: '305719',
        COMPANION_VIRTUAL_CARD_PUK: '84026153',
        COMPANION_LOG_FILE: defaultLog ? undefined : join(root, `${name}.log`),
        COMPANION_LOG_LEVEL: 'debug',
        COMPANION_WORKSTATION: 'WS Single',
        COMPANION_PAGE_PORT: '0',
        COMPANION_TRAY: 'off',
        COMPANION_OPEN_PAGE: 'off',
      },
    });
    procs.push(proc);
    return proc;
  };

  beforeAll(async () => {
    bot = new FakeBot({ pairInterval: 1 });
    await bot.start();
    root = await mkdtemp(join(tmpdir(), 'companion-single-'));
    dataDir = join(root, 'data');
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await bot?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a second start defers to the first (exit 0, the first shows itself); a killed companion\'s lock is taken over', async () => {
    const first = start('single-first');
    await first.waitForLine(PAGE_LINE);
    await first.waitForLine(/^PAIRING CODE: /);
    const lock = JSON.parse(await readFile(join(dataDir, 'companion.lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(first.pid);
    const linksBefore = first.lines().filter((l) => PAGE_LINE.test(l)).length;

    const second = start('single-second');
    expect(await second.waitForExit(30_000)).toBe(0);
    expect(second.lines()).toContain(`STATUS: the Smartcard Assist companion is already running (process ${first.pid}); it was asked to show itself`);
    // The second never started a companion of its own: no page, no pairing.
    expect(second.lines().filter((l) => l.startsWith('PASSCODE PAGE: ') || l.startsWith('PAIRING CODE: '))).toEqual([]);
    expect(bot.workstations).toEqual(['WS Single']);
    // The first showed itself: a new page link on its stdout.
    await expect.poll(() => first.lines().filter((l) => PAGE_LINE.test(l)).length, { timeout: 10_000 }).toBe(linksBefore + 1);
    expect(first.hasExited()).toBe(false);

    // Killed without cleaning up: the lock stays, naming a dead process; the next start takes it over.
    process.kill(-first.pid, 'SIGKILL');
    await first.waitForExit(10_000);
    expect(JSON.parse(await readFile(join(dataDir, 'companion.lock'), 'utf8'))).toEqual(expect.objectContaining({ pid: first.pid }));
    const third = start('single-third', true);
    await third.waitForLine(PAGE_LINE);
    expect(JSON.parse(await readFile(join(dataDir, 'companion.lock'), 'utf8'))).toEqual(expect.objectContaining({ pid: third.pid }));
    const log = join(dataDir, 'logs', 'companion.log');
    await expect.poll(() => readFile(log, 'utf8').catch(() => ''), { timeout: 10_000 }).toContain('took over the lock of a companion that is no longer running');
    expect((await stat(log)).mode & 0o777).toBe(0o600);

    // A clean stop removes the lock.
    expect(await third.stop()).toBe(0);
    await expect(readFile(join(dataDir, 'companion.lock'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('companion --unpair while the companion runs: the running one unpairs over its link and pairs again', async () => {
    const running = start('single-unpair-running');
    const [, code] = await running.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4}) /, 30_000);
    bot.approve(code!, 'Alex Wilber');
    await running.waitForLine(/^STATUS: connected to Smartcard Assist/, 15_000);
    const credential = join(dataDir, 'credential.json');
    await readFile(credential, 'utf8'); // stored
    const codesBefore = bot.userCodes.length;

    const unpair = startProcess({
      name: 'single-unpair-command',
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts', '--unpair'],
      env: { SMARTCARD_BOT_URL: bot.url.href, COMPANION_DATA_DIR: dataDir, COMPANION_LOG_FILE: join(root, 'unpair.log') },
    });
    procs.push(unpair);
    expect(await unpair.waitForExit(30_000), unpair.output()).toBe(0);
    expect(unpair.lines()).toContain("STATUS: unpaired: Smartcard Assist revoked this computer's pairing and its credential was deleted");
    await expect(readFile(credential, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    // The running companion was the one that unpaired: it says so and shows a new pairing code.
    await running.waitForLine(/^STATUS: unpaired: Smartcard Assist revoked this computer's pairing; pairing again$/, 10_000);
    await expect.poll(() => bot.userCodes.length, { timeout: 15_000 }).toBe(codesBefore + 1);
    expect(running.hasExited()).toBe(false);
    expect(await running.stop()).toBe(0);
  });
});
