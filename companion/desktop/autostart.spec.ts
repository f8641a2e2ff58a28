import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { autostartEntry, autostartEntryPath, companionCommandLine, installAutostart } from './autostart';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** The Exec line of an entry, split back into arguments as a desktop would (string unescape, then the quoting rules). */
function execArguments(entry: string): string[] {
  const line = entry.split('\n').find((l) => l.startsWith('Exec='))!.slice('Exec='.length);
  const value = line.replace(/\\\\/g, '\\').replace(/%%/g, '%');
  const args: string[] = [];
  let i = 0;
  while (i < value.length) {
    if (value[i] === ' ') {
      i++;
      continue;
    }
    let arg = '';
    if (value[i] === '"') {
      i++;
      while (value[i] !== '"') {
        if (value[i] === '\\') i++;
        arg += value[i++];
      }
      i++;
    } else {
      while (i < value.length && value[i] !== ' ') arg += value[i++];
    }
    args.push(arg);
  }
  return args;
}

describe('XDG autostart entry (--install-autostart)', () => {
  it('goes to $XDG_CONFIG_HOME/autostart when it is absolute, else ~/.config/autostart', () => {
    expect(autostartEntryPath({ XDG_CONFIG_HOME: '/x/cfg' }, '/home/a')).toBe('/x/cfg/autostart/smartcard-assist-companion.desktop');
    expect(autostartEntryPath({}, '/home/a')).toBe('/home/a/.config/autostart/smartcard-assist-companion.desktop');
    expect(autostartEntryPath({ XDG_CONFIG_HOME: 'relative/cfg' }, '/home/a')).toBe('/home/a/.config/autostart/smartcard-assist-companion.desktop');
  });

  it('starts the companion as it was started: node, loader flags, script, flags; a packaged one alone', () => {
    const tsx = { execPath: '/usr/bin/node', execArgv: ['--import', 'file:///opt/sa/node_modules/tsx/dist/loader.mjs'], argv: ['/usr/bin/node', '/opt/sa/companion/main.ts', '--install-autostart'] };
    expect(companionCommandLine(['--bot-url', 'https://bot.trust.example'], tsx, false)).toEqual([
      '/usr/bin/node',
      '--import',
      'file:///opt/sa/node_modules/tsx/dist/loader.mjs',
      '/opt/sa/companion/main.ts',
      '--bot-url',
      'https://bot.trust.example',
    ]);
    const sea = { execPath: '/opt/sa/smartcard-assist-companion', execArgv: [], argv: ['/opt/sa/smartcard-assist-companion', '/opt/sa/smartcard-assist-companion'] };
    expect(companionCommandLine([], sea, false)).toEqual(['/opt/sa/smartcard-assist-companion']);
    // Typed as a relative path: still the executable alone (node:sea says so), by its full path.
    const typed = { ...sea, argv: ['./smartcard-assist-companion', './smartcard-assist-companion'] };
    expect(companionCommandLine(['--tray', 'on'], typed, true)).toEqual(['/opt/sa/smartcard-assist-companion', '--tray', 'on']);
    // A relative script under node becomes absolute (the desktop starts it from another folder).
    expect(companionCommandLine([], { execPath: '/usr/bin/node', execArgv: [], argv: ['/usr/bin/node', 'companion/main.ts'] }, false)).toEqual(['/usr/bin/node', `${process.cwd()}/companion/main.ts`]);
  });

  it('quotes arguments by the Desktop Entry rules, so the desktop starts exactly the same arguments', () => {
    const command = ['/opt/Smart Card/node', '--workstation', 'WS "A" $1 `x` \\ 100%', '--bot-url', 'https://bot.trust.example/a?b', ''];
    const entry = autostartEntry(command);
    expect(entry).toMatch(/^\[Desktop Entry\]\nType=Application\n/);
    expect(entry).toContain('\nX-GNOME-Autostart-enabled=true\n');
    expect(entry).toContain('\nExec="/opt/Smart Card/node" --workstation "WS \\\\"A\\\\" \\\\$1 \\\\`x\\\\` \\\\\\\\ 100%%" ');
    expect(execArguments(entry)).toEqual(command);
    expect(() => autostartEntry(['/usr/bin/node', 'a\nb'])).toThrow(/line break/);
  });

  it('writes the file (0644, its folder created), replacing an earlier one', async () => {
    const base = await mkdtemp(join(tmpdir(), 'autostart-'));
    cleanup.push(() => rm(base, { recursive: true, force: true }));
    const env = { XDG_CONFIG_HOME: join(base, 'config') };
    await installAutostart({ env, command: ['/usr/bin/node', '/old/main.ts'] });
    const path = await installAutostart({ env, command: ['/usr/bin/node', '/opt/sa/companion/main.ts'] });
    expect(path).toBe(join(base, 'config', 'autostart', 'smartcard-assist-companion.desktop'));
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(execArguments(await readFile(path, 'utf8'))).toEqual(['/usr/bin/node', '/opt/sa/companion/main.ts']);
  });
});
