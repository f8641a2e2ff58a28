/**
 * Start the companion at login on Linux desktops: an XDG autostart entry
 * (freedesktop.org "Desktop Application Autostart Specification" 0.5: a
 * `.desktop` file in `$XDG_CONFIG_HOME/autostart`, default `~/.config/autostart`),
 * written by `companion --install-autostart`. Windows (Run key or Task
 * Scheduler) and macOS (LaunchAgent) are set up as the README says.
 *
 * The entry starts the companion the way this process was started (the Node
 * executable, its loader flags and the entry script; or the packaged
 * executable alone) with the flags given beside `--install-autostart`.
 * Settings given as environment variables are not copied: at login the
 * companion reads the session's environment (or give them as flags here).
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isSea } from 'node:sea';
import { ConfigError } from '../companion.errors';

/** File name of the entry (the spec's "desktop file ID"). */
const ENTRY_FILE = 'smartcard-assist-companion.desktop' as const;

/**
 * Where the autostart entry goes.
 *
 * @param env - environment (`XDG_CONFIG_HOME` when set and absolute, else `~/.config`)
 * @param home - the home directory (default `os.homedir()`)
 * @returns `<config home>/autostart/smartcard-assist-companion.desktop`
 */
export function autostartEntryPath(env: NodeJS.ProcessEnv, home: string = homedir()): string {
  const configured = env['XDG_CONFIG_HOME']?.trim();
  // The spec: a relative XDG_CONFIG_HOME is invalid and ignored.
  const base = configured && configured.startsWith('/') ? configured : join(home, '.config');
  return join(base, 'autostart', ENTRY_FILE);
}

/**
 * The command line that starts this companion again: `[node, ...loader flags, main script, ...flags]`,
 * or `[executable, ...flags]` for a packaged (single-executable) companion.
 *
 * @param flags - companion flags to carry (without `--install-autostart`), e.g. `['--bot-url', 'https://bot.trust.example']`
 * @param proc - the process to describe (default `process`)
 * @param sea - whether this is a single-executable application (default `node:sea`'s `isSea()`)
 * @returns the arguments, the program first (paths absolute)
 */
export function companionCommandLine(flags: readonly string[], proc: Pick<NodeJS.Process, 'execPath' | 'execArgv' | 'argv'> = process, sea: boolean = isSea()): string[] {
  const script = proc.argv[1];
  // A single-executable companion: its argv[1] is the executable again (possibly as typed, relative).
  const packaged = sea || script === undefined || resolve(script) === proc.execPath;
  return packaged ? [proc.execPath, ...flags] : [proc.execPath, ...proc.execArgv, resolve(script), ...flags];
}

/** Characters that make an Exec argument need quoting (Desktop Entry Specification 1.5, "The Exec key"). */
const RESERVED = /[\s"'\\><~|&;$*?#()`]/;

/**
 * Quote one argument for an Exec key: in double quotes when it holds a reserved character, with `"`,
 * `` ` ``, `$` and `\` escaped by a backslash; then the string-value escape doubles every backslash;
 * `%` (field codes) is written `%%`.
 */
function execArgument(arg: string): string {
  if (/[\n\r]/.test(arg)) throw new ConfigError('--install-autostart', 'an argument to start the companion with cannot hold a line break');
  const quoted = arg === '' || RESERVED.test(arg) ? `"${arg.replace(/["`$\\]/g, (c) => `\\${c}`)}"` : arg;
  return quoted.replace(/\\/g, '\\\\').replace(/%/g, '%%');
}

/**
 * The text of the autostart entry.
 *
 * @param command - program and arguments (see {@link companionCommandLine})
 * @returns a Desktop Entry of type Application, hidden from menus, started at login
 * @throws ConfigError `CONFIG.INVALID` when an argument holds a line break (it cannot be written in an Exec key)
 */
export function autostartEntry(command: readonly string[]): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Version=1.5',
    'Name=Smartcard Assist companion',
    'Comment=Unlock your smartcard with Smartcard Assist in Teams',
    `Exec=${command.map(execArgument).join(' ')}`,
    'Terminal=false',
    'NoDisplay=true',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

/**
 * Write (or replace) the autostart entry, atomically.
 *
 * @param options.env - environment (for `XDG_CONFIG_HOME`)
 * @param options.command - what the entry starts (see {@link companionCommandLine})
 * @param options.home - home directory (default `os.homedir()`)
 * @returns the absolute path written
 * @throws NodeJS.ErrnoException when the folder or file cannot be written; ConfigError for a line break in an argument
 */
export async function installAutostart(options: { env: NodeJS.ProcessEnv; command: readonly string[]; home?: string }): Promise<string> {
  const path = autostartEntryPath(options.env, options.home);
  const text = autostartEntry(options.command);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode: 0o644 });
  await chmod(temp, 0o644); // whatever the umask: the desktop session reads it
  await rename(temp, path);
  return path;
}
