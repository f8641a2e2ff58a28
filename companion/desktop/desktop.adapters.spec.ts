import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CommandNotifier } from './notifier.adapter';
import { CommandPageOpener, platformOpenCommand } from './page-opener.adapter';

const logger = createLogger({ name: 'desktop-adapters-spec', level: 'silent' });
const LINK = `http://127.0.0.1:4321/?t=${'x'.repeat(43)}`;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A shell script that appends its arguments (one per line, then a blank line) to `record`, prints `answer`, exits `code`. */
async function script(answer = '', code = 0): Promise<{ program: string; record: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'desktop-adapters-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const record = join(dir, 'record.txt');
  const program = join(dir, 'tool.sh');
  await writeFile(program, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> '${record}'; done\necho >> '${record}'\nprintf '${answer}'\nexit ${code}\n`);
  await chmod(program, 0o755);
  return { program, record };
}

const until = async (check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.skipIf(process.platform === 'win32')('CommandPageOpener', () => {
  it('runs the program with the link as its one argument; refuses anything but a page link; reports a missing program', async () => {
    const { program, record } = await script();
    const opener = new CommandPageOpener({ command: program, logger });
    expect(await opener.open(LINK)).toEqual({ opened: true });
    expect(await readFile(record, 'utf8')).toBe(`${LINK}\n\n`);
    expect(await opener.open('https://evil.example/')).toEqual({ opened: false, reason: 'not a passcode page link' });
    expect(await opener.open(`${LINK} --new-window`)).toEqual({ opened: false, reason: 'not a passcode page link' });
    expect(await new CommandPageOpener({ command: '/nonexistent/browser', logger }).open(LINK)).toEqual({ opened: false, reason: 'ENOENT' });
    const failing = await script('', 3);
    expect(await new CommandPageOpener({ command: failing.program, logger }).open(LINK)).toEqual({ opened: false, reason: 'exit code 3' });
  });

  it('uses the platform handler by default', () => {
    expect(platformOpenCommand('linux')).toEqual({ program: 'xdg-open', args: [] });
    expect(platformOpenCommand('darwin')).toEqual({ program: 'open', args: [] });
    expect(platformOpenCommand('win32')).toEqual({ program: 'rundll32', args: ['url.dll,FileProtocolHandler'] });
  });
});

describe.skipIf(process.platform === 'win32')('CommandNotifier (notify-send)', () => {
  it('sends title and body after --, with the Open action when there is one; the answer "open" runs it', async () => {
    const { program, record } = await script('open\n');
    const notifier = new CommandNotifier({ logger, platform: 'linux', program });
    let opened = 0;
    notifier.notify({ kind: 'code_request', title: '-t looks like a flag', body: 'Type the code', onOpen: () => void opened++ });
    await until(async () => opened === 1);
    expect((await readFile(record, 'utf8')).split('\n')).toEqual(['--app-name=Smartcard Assist', '--icon=dialog-information', '--action=open=Open passcode page', '--', '-t looks like a flag', 'Type the code', '', '']);
  });

  it('a newer notice of the same kind ends the wait for the older one\'s action (its click no longer counts)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desktop-adapters-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const program = join(dir, 'slow-notify.sh');
    // Waits as notify-send with an action does, then "clicks".
    await writeFile(program, '#!/bin/sh\nsleep 1\necho open\n');
    await chmod(program, 0o755);
    const notifier = new CommandNotifier({ logger, platform: 'linux', program });
    const clicks: string[] = [];
    notifier.notify({ kind: 'code_request', title: 'a', body: 'first', onOpen: () => void clicks.push('first') });
    await new Promise((r) => setTimeout(r, 200));
    notifier.notify({ kind: 'code_request', title: 'a', body: 'second', onOpen: () => void clicks.push('second') });
    notifier.notify({ kind: 'unlocked', title: 'b', body: 'other kind', onOpen: () => void clicks.push('other') });
    await until(async () => clicks.length === 2, 5000);
    expect(clicks.sort()).toEqual(['other', 'second']);
    notifier.close();
  });

  it('without an action: no --action; a failing notify-send (no notification service) or a missing one is dropped, not thrown', async () => {
    const { program, record } = await script('', 1);
    const notifier = new CommandNotifier({ logger, platform: 'linux', program });
    notifier.notify({ kind: 'unlocked', title: 'Unlocked', body: 'Use your new passcode.' });
    await until(async () => (await readFile(record, 'utf8').catch(() => '')).endsWith('\n\n'));
    expect(await readFile(record, 'utf8')).not.toContain('--action');
    new CommandNotifier({ logger, platform: 'linux', program: '/nonexistent/notify-send' }).notify({ kind: 'unlocked', title: 'a', body: 'b' });
    await new Promise((r) => setTimeout(r, 100));
    notifier.close();
  });
});
