/**
 * One installable file (issue #13): `npm run package:companion`'s build, run in a
 * network namespace with no network at all (`unshare -n`), gives an executable
 * that runs with no Node and no node_modules (PATH emptied, copied to a scratch
 * directory), loads the PC/SC addon from beside itself, and takes its settings
 * from `companion.env` beside it or `COMPANION_CONFIG_FILE`, the environment
 * winning. The bot is a local stand-in (FakeBot) that records the workstation
 * name each pairing announces, which is how the settings are seen to arrive.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeBot } from '../../companion/link/bot-link.fake';
import { COMPANION_PACKAGE } from '../../scripts/package-companion';
import { REPO_ROOT } from '../support/artifacts';
import { isCI } from '../support/services';
import { startProcess, type ManagedProcess } from '../support/processes';

const execFileAsync = promisify(execFile);

/** `unshare -n` (a network namespace of its own: only a loopback that is down) works here as root. */
function canUnshareNetwork(): boolean {
  try {
    return statSync('/usr/bin/unshare').isFile() && process.getuid?.() === 0;
  } catch {
    return false;
  }
}

describe('packaged companion: built offline, runs alone, settings by file or environment', () => {
  let root: string;
  let pkg: string;
  let bot: FakeBot;
  let botUrl: URL;
  const started: ManagedProcess[] = [];

  /** A fresh copy of the package in its own directory (so a settings file there is that run's alone). */
  function install(name: string): string {
    const dir = join(root, name);
    cpSync(pkg, dir, { recursive: true });
    return join(dir, COMPANION_PACKAGE.executable);
  }

  /** Run the executable with an empty PATH and no Node variables; `env` on top. */
  function runPackaged(executable: string, env: Record<string, string | undefined>, name: string, cwd = root): ManagedProcess {
    const proc = startProcess({
      name: `companion-package-${name}`,
      command: executable,
      args: ['--reader', 'pcsc'],
      cwd,
      env: {
        PATH: '/nonexistent',
        NODE_OPTIONS: undefined,
        NODE_PATH: undefined,
        COMPANION_TRAY: 'off',
        COMPANION_OPEN_PAGE: 'off',
        COMPANION_NOTIFICATIONS: 'off',
        SMARTCARD_BOT_URL: undefined,
        COMPANION_WORKSTATION: undefined,
        COMPANION_CONFIG_FILE: undefined,
        COMPANION_LOG_FILE: '-',
        ...env,
      },
    });
    started.push(proc);
    return proc;
  }

  beforeAll(async () => {
    if (!canUnshareNetwork()) {
      const why = 'unshare -n (root) is needed to build with no network';
      if (isCI()) throw new Error(`CI=true and ${why}`);
      process.stderr.write(`companion-package: ${why}; building with the network present\n`);
    }
    root = await mkdtemp(join(tmpdir(), 'companion-package-'));
    pkg = join(root, 'package');
    const build = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'scripts', 'package-companion.ts'), '--out', pkg];
    const [command, ...args] = canUnshareNetwork() ? ['unshare', '-n', '--', ...build] : build;
    const { stdout } = await execFileAsync(command!, args, { cwd: REPO_ROOT, timeout: 170_000 });
    expect(stdout).toContain(COMPANION_PACKAGE.executable);
    bot = new FakeBot();
    botUrl = await bot.start();
  }, 180_000);

  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });

  afterAll(async () => {
    await bot?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('holds the executable, the PC/SC addon, the tray program and checksums that match them', () => {
    const sums = readFileSync(join(pkg, COMPANION_PACKAGE.checksums), 'utf8').trim().split('\n');
    const files = sums.map((line) => line.split(/\s+/)[1]);
    expect(files).toEqual(expect.arrayContaining([COMPANION_PACKAGE.executable, COMPANION_PACKAGE.addon, COMPANION_PACKAGE.settingsExample]));
    if (process.platform === 'linux') expect(files).toContain(`${COMPANION_PACKAGE.trayDir}/tray_linux_release`);
    for (const line of sums) {
      const [hash, file] = line.split(/\s+/) as [string, string];
      expect(createHash('sha256').update(readFileSync(join(pkg, file))).digest('hex'), file).toBe(hash);
    }
    expect(statSync(join(pkg, COMPANION_PACKAGE.executable)).mode & 0o111).not.toBe(0);
    // The Node binary with the app inside: the bundle's own text is in it.
    expect(readFileSync(join(pkg, COMPANION_PACKAGE.executable)).includes('PASSCODE PAGE: ')).toBe(true);
  });

  it('companion.env beside the executable configures it: it pairs with the bot named there, as the workstation named there', async () => {
    const executable = install('from-file');
    writeFileSync(join(executable, '..', 'companion.env'), `# deployed settings\nSMARTCARD_BOT_URL=${botUrl.href}\nCOMPANION_WORKSTATION=PKG-FILE-01\nCOMPANION_DATA_DIR=${join(root, 'data-file')}\n`);
    const proc = runPackaged(executable, {}, 'file');
    await proc.waitForLine(/^PAIRING CODE: /, 20_000);
    expect(bot.workstations).toContain('PKG-FILE-01');
    // Everything it runs is inside it: no require() of a file on disk (Node warns about that in a single executable).
    expect(proc.output()).not.toMatch(/Warning|single-executable/);
  });

  it('the environment wins over the file, and COMPANION_CONFIG_FILE names another file', async () => {
    const executable = install('from-env');
    const settings = join(root, 'elsewhere.env');
    writeFileSync(settings, `SMARTCARD_BOT_URL=${botUrl.href}\nCOMPANION_WORKSTATION=PKG-NAMED-FILE\nCOMPANION_DATA_DIR=${join(root, 'data-env')}\n`);
    const proc = runPackaged(executable, { COMPANION_CONFIG_FILE: settings, COMPANION_WORKSTATION: 'PKG-ENV-WINS' }, 'env');
    await proc.waitForLine(/^PAIRING CODE: /, 20_000);
    expect(bot.workstations).toContain('PKG-ENV-WINS');
    expect(bot.workstations).not.toContain('PKG-NAMED-FILE');
  });

  it('--install-autostart started by a relative path writes a login entry that runs the executable by its full path', async () => {
    const executable = install('autostart');
    const config = join(root, 'xdg-config');
    const proc = startProcess({
      name: 'companion-package-autostart',
      command: './smartcard-assist-companion',
      args: ['--install-autostart', '--reader-name', 'Virtual PCD 00 01'],
      cwd: join(executable, '..'),
      env: { PATH: '/nonexistent', NODE_OPTIONS: undefined, XDG_CONFIG_HOME: config, COMPANION_DATA_DIR: join(root, 'data-autostart'), COMPANION_LOG_FILE: '-' },
    });
    started.push(proc);
    expect(await proc.waitForExit(20_000)).toBe(0);
    const entry = readFileSync(join(config, 'autostart', 'smartcard-assist-companion.desktop'), 'utf8');
    expect(entry).toContain(`Exec=${executable} --reader-name "Virtual PCD 00 01"\n`);
  });

  it('refuses a settings file that cannot be read, and a bad setting in it, naming each (exit 2)', async () => {
    const missing = runPackaged(install('missing'), { COMPANION_CONFIG_FILE: join(root, 'no-such.env') }, 'missing');
    expect(await missing.waitForExit(20_000)).toBe(2);
    expect(missing.output()).toMatch(/COMPANION_CONFIG_FILE: cannot read .*no-such\.env \(ENOENT\)/);

    const executable = install('bad');
    writeFileSync(join(executable, '..', 'companion.env'), 'SMARTCARD_BOT_URL=ftp://bot.example\n');
    const bad = runPackaged(executable, {}, 'bad');
    expect(await bad.waitForExit(20_000)).toBe(2);
    expect(bad.output()).toContain('SMARTCARD_BOT_URL');
  });

  it('loads the PC/SC addon from beside itself: without it, it says which file it could not load', async () => {
    const executable = install('no-addon');
    rmSync(join(executable, '..', COMPANION_PACKAGE.addon));
    // Started in the repository, where node_modules/pcsclite is: that copy must not be used instead.
    expect(existsSync(join(REPO_ROOT, 'node_modules', 'pcsclite', 'build', 'Release', 'pcsclite.node'))).toBe(true);
    const proc = runPackaged(executable, { SMARTCARD_BOT_URL: botUrl.href, COMPANION_DATA_DIR: join(root, 'data-no-addon') }, 'no-addon', REPO_ROOT);
    expect(await proc.waitForExit(20_000)).not.toBe(0);
    expect(proc.output()).toContain(join(executable, '..', COMPANION_PACKAGE.addon));
  });
});
