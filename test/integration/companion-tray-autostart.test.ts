/**
 * Starting at login on Linux (issue #13): `npm run companion -- --install-autostart` writes the XDG autostart
 * entry under `$XDG_CONFIG_HOME/autostart`, and the command in its Exec key, run as a desktop would run it
 * (from another folder, with the flags carried in the entry), starts a companion that reaches the bot.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { startProcess, type ManagedProcess } from '../support/processes';

/** Split an Exec value the way the Desktop Entry Specification reads it (string unescape, then quoting). */
function execArguments(value: string): string[] {
  const text = value.replace(/\\\\/g, '\\').replace(/%%/g, '%');
  const args: string[] = [];
  for (let i = 0; i < text.length; ) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    let arg = '';
    if (text[i] === '"') {
      for (i++; text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        arg += text[i];
      }
      i++;
    } else {
      while (i < text.length && text[i] !== ' ') arg += text[i++];
    }
    args.push(arg);
  }
  return args;
}

describe('companion --install-autostart (XDG autostart entry)', () => {
  let bot: FakeBot;
  let root: string;
  const procs: ManagedProcess[] = [];

  beforeAll(async () => {
    bot = new FakeBot({ pairInterval: 1 });
    await bot.start();
    root = await mkdtemp(join(tmpdir(), 'companion-autostart-'));
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await bot?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('npm run companion -- --install-autostart writes the entry; its Exec line starts the companion with the flags given', async () => {
    const install = startProcess({
      name: 'autostart-install',
      command: 'npm',
      args: ['run', '--silent', 'companion', '--', '--install-autostart', '--bot-url', bot.url.href, '--workstation', 'WS Autostart 01'],
      env: { XDG_CONFIG_HOME: join(root, 'config'), COMPANION_DATA_DIR: join(root, 'unused') },
    });
    procs.push(install);
    expect(await install.waitForExit(60_000), install.output()).toBe(0);
    const path = join(root, 'config', 'autostart', 'smartcard-assist-companion.desktop');
    expect(install.lines()).toContain(`STATUS: the companion will start at login: ${path} written`);
    const entry = await readFile(path, 'utf8');
    expect(entry).toMatch(/^\[Desktop Entry\]\nType=Application\n/);
    const exec = entry.split('\n').find((l) => l.startsWith('Exec='));
    expect(exec, entry).toBeDefined();
    const [program, ...args] = execArguments(exec!.slice('Exec='.length));
    expect(args).not.toContain('--install-autostart');
    expect(args.slice(-4)).toEqual(['--bot-url', bot.url.href, '--workstation', 'WS Autostart 01']);

    // As the desktop runs it at login: another folder, the session's environment (here: a virtual card).
    const login = startProcess({
      name: 'autostart-login',
      command: program!,
      args,
      cwd: root,
      env: {
        COMPANION_DATA_DIR: join(root, 'data'),
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: '0123456789abcdef0123456789abcdef',
        COMPANION_VIRTUAL_CARD_PIN: '305719',
        COMPANION_VIRTUAL_CARD_PUK: '84026153',
        COMPANION_TRAY: 'off',
        COMPANION_OPEN_PAGE: 'off',
      },
    });
    procs.push(login);
    await login.waitForLine(/^PAIRING CODE: [A-Z0-9]{4}-[A-Z0-9]{4} /, 60_000);
    expect(bot.workstations).toEqual(['WS Autostart 01']);
  });
});
