/**
 * `npm run package:companion`: build the companion as one executable with
 * Node's single-executable-application support (Node 20 docs, "Single
 * executable applications"), offline:
 *
 * 1. esbuild bundles `scripts/package-companion.entry.ts` (settings file, then
 *    `companion/main.ts`) and every npm dependency into one CommonJS file (a
 *    SEA's main script must be CommonJS and can `require` only built-in modules).
 *    `pcsclite`'s `require('bindings')('pcsclite')` is replaced by a loader that
 *    opens `pcsclite.node` beside the executable (`process.dlopen`).
 * 2. `node --experimental-sea-config` turns the bundle into a preparation blob.
 * 3. A copy of this Node binary gets the blob injected with `postject`
 *    (resource `NODE_SEA_BLOB`, fuse `NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2`).
 * 4. `pcsclite.node` (built by `npm ci` against libpcsclite) is copied beside it,
 *    with systray2's tray program for this platform in `traybin/` (the tray
 *    adapter looks there when it runs packaged), `companion.env.example` and
 *    `SHA256SUMS`.
 *
 * Output: `dist/companion/` (or `--out DIR`): `smartcard-assist-companion`
 * (`.exe` on Windows), `pcsclite.node`, `traybin/tray_<platform>_release`,
 * `companion.env.example`, `SHA256SUMS`.
 * The executable needs no Node and no node_modules; it needs the PC/SC service
 * of the workstation (pcscd and libpcsclite on Linux, WinSCard on Windows).
 *
 * Exit codes: 0 built; 1 a step failed (named on stderr).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { build, type Plugin } from 'esbuild';
import { inject } from 'postject';

const execFileAsync = promisify(execFile);

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** Names of what the package holds. */
export const COMPANION_PACKAGE = {
  executable: process.platform === 'win32' ? 'smartcard-assist-companion.exe' : 'smartcard-assist-companion',
  addon: 'pcsclite.node',
  settingsExample: 'companion.env.example',
  /** Folder of the tray program (systray2's `traybin`), beside the executable. */
  trayDir: 'traybin',
  checksums: 'SHA256SUMS',
} as const;

/** systray2's program for each platform it ships one for (its `traybin/` folder). */
const TRAY_PROGRAMS: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'tray_linux_release',
  darwin: 'tray_darwin_release',
  win32: 'tray_windows_release.exe',
};

/** The SEA fuse string of Node's binary (Node docs, "Single executable applications", step 5). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The loader that replaces the `bindings` package inside the bundle: native addons beside the executable. */
const ADDON_LOADER = `
const path = require('node:path');
module.exports = function loadAddon(name) {
  const file = path.join(path.dirname(process.execPath), String(name).endsWith('.node') ? String(name) : String(name) + '.node');
  const mod = { exports: {} };
  try {
    process.dlopen(mod, file);
  } catch (error) {
    throw new Error('the PC/SC addon could not be loaded from ' + file + ': ' + error.message);
  }
  return mod.exports;
};
`;

/**
 * esbuild plugin: ws's optional speed-ups (`bufferutil`, `utf-8-validate`, loaded in try/catch) become
 * modules that throw, so ws uses its JavaScript code and the SEA never calls `require()` for a file on
 * disk (which only prints a warning in a single executable).
 */
const optionalModulesAbsent: Plugin = {
  name: 'optional-modules-absent',
  setup(b) {
    b.onResolve({ filter: /^(bufferutil|utf-8-validate)$/ }, (args) => ({ path: args.path, namespace: 'optional-absent' }));
    b.onLoad({ filter: /.*/, namespace: 'optional-absent' }, (args) => ({ contents: `throw new Error(${JSON.stringify(`${args.path} is not in the package`)});`, loader: 'js' }));
  },
};

/** esbuild plugin: `require('bindings')` (pcsclite's addon lookup) becomes {@link ADDON_LOADER}. */
const addonBesideExecutable: Plugin = {
  name: 'addon-beside-executable',
  setup(b) {
    b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'addon-loader' }));
    b.onLoad({ filter: /.*/, namespace: 'addon-loader' }, () => ({ contents: ADDON_LOADER, loader: 'js' }));
  },
};

const SETTINGS_EXAMPLE = `# Smartcard Assist companion settings (KEY=value). Put this file beside the
# executable as companion.env, or name it with COMPANION_CONFIG_FILE.
# A variable set in the environment wins over this file.

# The bot's address. https everywhere but on this computer.
SMARTCARD_BOT_URL=https://smartcard-assist.example.nhs.uk
# Extra CA certificates (PEM) for the bot's TLS certificate, when it is issued by an internal CA.
#SMARTCARD_BOT_CA_FILE=/etc/smartcard-assist/bot-ca.pem
# Use only this reader (else the reader that holds a card).
#COMPANION_READER_NAME=
#COMPANION_WORKSTATION=
#COMPANION_LOG_LEVEL=info
#COMPANION_LOG_FILE=
#COMPANION_DATA_DIR=
`;

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/**
 * Build the package.
 *
 * @param outDir - output directory (emptied first), absolute
 * @returns the executable's path
 * @throws Error naming the step that failed
 */
export async function packageCompanion(outDir: string): Promise<string> {
  const work = path.join(outDir, '.build');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(work, { recursive: true });

  const bundle = path.join(work, 'companion.cjs');
  await build({
    entryPoints: [path.join(ROOT, 'scripts', 'package-companion.entry.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: bundle,
    plugins: [addonBesideExecutable, optionalModulesAbsent],
    logLevel: 'warning',
    legalComments: 'none',
  });

  const blob = path.join(work, 'sea-prep.blob');
  const seaConfig = path.join(work, 'sea-config.json');
  await writeFile(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }, null, 2));
  await execFileAsync(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: work });

  const executable = path.join(outDir, COMPANION_PACKAGE.executable);
  await copyFile(process.execPath, executable);
  await chmod(executable, 0o755);
  await inject(executable, 'NODE_SEA_BLOB', await readFile(blob), {
    sentinelFuse: SEA_FUSE,
    ...(process.platform === 'darwin' ? { machoSegmentName: 'NODE_SEA' } : {}),
  });

  await copyFile(path.join(ROOT, 'node_modules', 'pcsclite', 'build', 'Release', 'pcsclite.node'), path.join(outDir, COMPANION_PACKAGE.addon));
  const packaged: string[] = [COMPANION_PACKAGE.executable, COMPANION_PACKAGE.addon];
  const trayProgram = TRAY_PROGRAMS[process.platform];
  if (trayProgram) {
    await mkdir(path.join(outDir, COMPANION_PACKAGE.trayDir), { recursive: true });
    const target = path.join(outDir, COMPANION_PACKAGE.trayDir, trayProgram);
    await copyFile(path.join(ROOT, 'node_modules', 'systray2', 'traybin', trayProgram), target);
    await chmod(target, 0o755);
    packaged.push(path.posix.join(COMPANION_PACKAGE.trayDir, trayProgram));
  }
  await writeFile(path.join(outDir, COMPANION_PACKAGE.settingsExample), SETTINGS_EXAMPLE);
  packaged.push(COMPANION_PACKAGE.settingsExample);
  const sums = await Promise.all(packaged.map(async (f) => `${await sha256(path.join(outDir, f))}  ${f}`));
  await writeFile(path.join(outDir, COMPANION_PACKAGE.checksums), `${sums.join('\n')}\n`);
  await rm(work, { recursive: true, force: true });
  return executable;
}

async function main(): Promise<number> {
  let out: string;
  try {
    const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
    out = path.resolve(values.out ?? path.join(ROOT, 'dist', 'companion'));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\nUsage: npm run package:companion -- [--out DIR]\n`);
    return 1;
  }
  try {
    const executable = await packageCompanion(out);
    process.stdout.write(`companion package: ${executable} (with ${COMPANION_PACKAGE.addon} beside it)\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`package:companion failed: ${(error as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = await main();
}
