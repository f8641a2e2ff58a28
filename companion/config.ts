/**
 * Companion configuration: read once at start-up from the environment and
 * `--flags`, validated with zod, typed, and refused with a message naming the
 * variable at fault (STYLE.md 13).
 *
 * Flags mirror the variables without their prefix, in lower case with dashes:
 * `--bot-url` for `SMARTCARD_BOT_URL`, `--data-dir` for `COMPANION_DATA_DIR`, and so on.
 * A flag wins over the variable. The virtual card's passcode and PUK have no
 * flag on purpose: a command line is visible to every user of the machine.
 *
 * `--page-link` (no value) does not start a companion: it asks the one running
 * on the same data directory for a new passcode page link ({@link companionCommand}).
 * `--unpair` (no value) does not start one either: it revokes this computer's
 * pairing at the bot and deletes the stored credential (`pairing/unpair.ts`).
 * `--install-autostart` (no value) writes the Linux XDG autostart entry that starts
 * the companion at login, with the other flags given, and exits (`desktop/autostart.ts`).
 */
import { hostname, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { botUrlProblem, readBotCaFile } from './bot-tls';
import { ConfigError } from './companion.errors';
import { pageLinkSocketPath } from './passcode-page/page-link.control';
import type { CertificateSlot } from './piv/piv.constants';
import { readCertificateDirectory } from './virtual-card/certificate-files';


/** The virtual card the demo puts in the in-process reader. */
export interface VirtualCardConfig {
  /** CHUID GUID, 32 lower-case hex digits. */
  cardId: string;
  /** Current passcode (card PIN), 6-8 digits. Secret: never logged. */
  pin: string;
  /** Current PUK, 8 digits. Secret: never logged. */
  puk: string;
  /** Start with the PIN blocked (retry counter 0). */
  blocked: boolean;
  /** Its X.509 certificates (DER) by slot, from `COMPANION_VIRTUAL_CARD_CERTS` (issue #14); absent: none on the card. */
  certificates?: Partial<Record<CertificateSlot, Buffer>>;
}

/** Reader choice: a union, so the virtual card's settings exist only for the virtual reader. */
export type ReaderConfig =
  | { kind: 'pcsc'; readerName: string | null }
  | { kind: 'virtual'; readerName: string | null; card: VirtualCardConfig };

export interface CompanionConfig {
  /** Bot base URL: https, or http on this computer only (bot-tls.ts), e.g. `http://127.0.0.1:3978`. */
  botUrl: URL;
  /** CA certificates (PEM) to verify the bot's server certificate with: Node's built-in list and SMARTCARD_BOT_CA_FILE; null = Node's list. */
  botCa: string[] | null;
  /** Directory holding `credential.json` (created 0700). Absolute path. */
  dataDir: string;
  reader: ReaderConfig;
  /** TCP port of the passcode page on 127.0.0.1; 0 = any free port. */
  pagePort: number;
  /** Workstation name shown to the person in Teams (1-64 of letters, digits, space . _ -). */
  workstation: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Log file path (absolute), rotated by size (`desktop/rotating-log.ts`); null = stderr (`COMPANION_LOG_FILE=-`). */
  logFile: string | null;
  /** Rotate the log file once it holds this many bytes. */
  logMaxBytes: number;
  /** Rotated log files kept beside the live one (`<logFile>.1` ... `.<logKeep>`). */
  logKeep: number;
  /** The workstation side (issue #13): tray icon, notifications, opening the page. */
  desktop: DesktopConfig;
}

/** How the companion shows itself on the desktop; every `auto` is resolved here (see {@link hasDesktopSession}). */
export interface DesktopConfig {
  /** Show the tray icon (`COMPANION_TRAY`). */
  tray: boolean;
  /**
   * When the bot asks for the passcode or the unlock code (`COMPANION_OPEN_PAGE`): open the page in the
   * default browser (`browser`), raise a notification that opens it (`notify`), or neither (`off`).
   */
  openPage: 'browser' | 'notify' | 'off';
  /** Program that opens a URL (`COMPANION_BROWSER_COMMAND`), given the URL as its one argument; null = the platform's (`xdg-open`, `open`, `start`). */
  browserCommand: string | null;
  /** Raise desktop notifications (`COMPANION_NOTIFICATIONS`). */
  notifications: boolean;
  /** Link down this long before the person is told it is lost, ms (`COMPANION_LINK_LOST_NOTICE_S`). */
  linkLostNoticeMs: number;
}

/** Variable name -> flag name (no flag for secrets). */
const FLAGS = {
  SMARTCARD_BOT_URL: 'bot-url',
  SMARTCARD_BOT_CA_FILE: 'bot-ca-file',
  COMPANION_DATA_DIR: 'data-dir',
  COMPANION_READER: 'reader',
  COMPANION_READER_NAME: 'reader-name',
  COMPANION_PAGE_PORT: 'page-port',
  COMPANION_WORKSTATION: 'workstation',
  COMPANION_LOG_LEVEL: 'log-level',
  COMPANION_LOG_FILE: 'log-file',
  COMPANION_LOG_MAX_KB: 'log-max-kb',
  COMPANION_LOG_KEEP: 'log-keep',
  COMPANION_TRAY: 'tray',
  COMPANION_OPEN_PAGE: 'open-page',
  COMPANION_BROWSER_COMMAND: 'browser-command',
  COMPANION_NOTIFICATIONS: 'notifications',
  COMPANION_LINK_LOST_NOTICE_S: 'link-lost-notice-s',
  COMPANION_VIRTUAL_CARD_ID: 'virtual-card-id',
  COMPANION_VIRTUAL_CARD_BLOCKED: 'virtual-card-blocked',
} as const;

/**
 * Make a host name fit the protocol's workstation rule: keep letters, digits,
 * space, `.`, `_`, `-`; replace anything else with `-`; trim to 64 characters.
 *
 * @param name - raw name (e.g. `os.hostname()`)
 * @returns a non-empty name matching `PairStartRequestSchema.workstation`; `workstation` when nothing is left
 */
export function sanitiseWorkstation(name: string): string {
  const cleaned = name.normalize('NFKC').replace(/[^\p{L}\p{N} ._-]/gu, '-').replace(/\s+/g, ' ').trim().slice(0, 64).trim();
  return cleaned.length > 0 && /[\p{L}\p{N}]/u.test(cleaned) ? cleaned : 'workstation';
}

/** Flags that take no value. */
const SWITCHES = { pageLink: 'page-link', unpair: 'unpair', installAutostart: 'install-autostart' } as const;

/** Every known flag, for the refusal of an unknown one. */
const KNOWN_FLAGS = [...Object.values(FLAGS), ...Object.values(SWITCHES)].map((f) => `--${f}`).join(', ');

/** Parse the command line (strict: an unknown flag is refused). */
function parseFlags(argv: readonly string[]): { values: Record<string, string | undefined>; pageLink: boolean; unpair: boolean; installAutostart: boolean } {
  const options: Record<string, { type: 'string' | 'boolean' }> = Object.fromEntries(Object.values(FLAGS).map((flag) => [flag, { type: 'string' as const }]));
  options[SWITCHES.pageLink] = { type: 'boolean' };
  options[SWITCHES.unpair] = { type: 'boolean' };
  options[SWITCHES.installAutostart] = { type: 'boolean' };
  try {
    const values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
    const strings = Object.fromEntries(Object.values(FLAGS).map((f) => [f, typeof values[f] === 'string' ? (values[f] as string) : undefined]));
    return { values: strings, pageLink: values[SWITCHES.pageLink] === true, unpair: values[SWITCHES.unpair] === true, installAutostart: values[SWITCHES.installAutostart] === true };
  } catch (err) {
    const m = /'(--[a-z-]+)/.exec(err instanceof Error ? err.message : '');
    throw new ConfigError(m?.[1] ?? 'command line', `unknown or malformed flag; known flags: ${KNOWN_FLAGS}`);
  }
}

/** What the command line asks the companion program to do. */
export type CompanionCommand =
  /** Run the companion (then read the rest with {@link loadCompanionConfig}). */
  | { kind: 'run' }
  /** `--page-link`: ask the companion running on this data directory for a new page link, print it, exit. */
  | { kind: 'page-link'; socketPath: string }
  /** `--unpair`: revoke this computer's pairing at the bot and delete the credential (then read the rest with {@link loadCompanionConfig}). */
  | { kind: 'unpair' }
  /** `--install-autostart`: write the XDG autostart entry (then read the rest with {@link loadCompanionConfig}), exit. */
  | { kind: 'install-autostart' };

/**
 * Which program to run: the companion, or the `--page-link` request to a running one. Only the
 * data directory matters to the request (`--data-dir` / `COMPANION_DATA_DIR`, same default).
 *
 * @param env - environment variables (normally `process.env`)
 * @param argv - command-line arguments after the script
 * @returns `{ kind: 'run' }`, `{ kind: 'page-link', socketPath }` (absolute), `{ kind: 'unpair' }` or `{ kind: 'install-autostart' }`
 * @throws ConfigError `CONFIG.INVALID` for an unknown or malformed flag, or more than one of `--unpair`, `--page-link`, `--install-autostart`
 */
export function companionCommand(env: NodeJS.ProcessEnv, argv: readonly string[] = []): CompanionCommand {
  const { values, pageLink, unpair, installAutostart } = parseFlags(argv);
  if (unpair && pageLink) throw new ConfigError('--unpair', 'give --unpair or --page-link, not both');
  if (installAutostart && (unpair || pageLink)) throw new ConfigError('--install-autostart', 'give it alone, without --unpair or --page-link');
  if (installAutostart) return { kind: 'install-autostart' };
  if (unpair) return { kind: 'unpair' };
  if (!pageLink) return { kind: 'run' };
  const dir = values[FLAGS.COMPANION_DATA_DIR] ?? (env['COMPANION_DATA_DIR']?.trim() ? env['COMPANION_DATA_DIR'] : undefined);
  return { kind: 'page-link', socketPath: pageLinkSocketPath(resolve(dir ?? defaultDataDir(env))) };
}

const emptyToUndefined = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalText = z.preprocess(emptyToUndefined, z.string().optional());
const bool = z.preprocess(
  emptyToUndefined,
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === '1' || v === 'yes'),
);

const RawSchema = z.object({
  SMARTCARD_BOT_URL: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('http://127.0.0.1:3978')
      .refine((v) => URL.canParse(v), 'must be an absolute URL such as http://127.0.0.1:3978')
      .transform((v) => new URL(v))
      .refine((u) => u.protocol === 'http:' || u.protocol === 'https:', 'must use http or https')
      // https off this computer (the credential must not cross a network in clear): bot-tls.ts.
      .superRefine((u, ctx) => {
        const problem = u.protocol === 'http:' ? botUrlProblem(u) : null;
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .refine((u) => u.username === '' && u.password === '', 'must not hold a user name or password')
      .refine((u) => u.search === '' && u.hash === '', 'must not have a query or fragment'),
  ),
  SMARTCARD_BOT_CA_FILE: optionalText,
  COMPANION_DATA_DIR: optionalText,
  COMPANION_READER: z.preprocess(emptyToUndefined, z.enum(['pcsc', 'virtual'], { message: 'must be pcsc or virtual' }).default('pcsc')),
  COMPANION_READER_NAME: optionalText,
  COMPANION_PAGE_PORT: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('0')
      .refine((v) => /^[0-9]{1,5}$/.test(v) && Number(v) <= 65535, 'must be a port number 0-65535 (0 = any free port)')
      .transform(Number),
  ),
  COMPANION_WORKSTATION: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .max(64, 'must be at most 64 characters')
      .regex(/^[\p{L}\p{N} ._-]+$/u, 'must hold only letters, digits, space . _ -')
      .optional(),
  ),
  COMPANION_LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { message: 'must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  ),
  COMPANION_LOG_FILE: optionalText,
  COMPANION_LOG_MAX_KB: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('5120')
      .refine((v) => /^[0-9]{1,7}$/.test(v) && Number(v) >= 16 && Number(v) <= 1_048_576, 'must be a size in KiB, 16-1048576')
      .transform(Number),
  ),
  COMPANION_LOG_KEEP: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('3')
      .refine((v) => /^[0-9]{1,2}$/.test(v) && Number(v) >= 1 && Number(v) <= 20, 'must be a number of files, 1-20')
      .transform(Number),
  ),
  COMPANION_TRAY: z.preprocess(emptyToUndefined, z.enum(['auto', 'on', 'off'], { message: 'must be auto, on or off' }).default('auto')),
  COMPANION_OPEN_PAGE: z.preprocess(emptyToUndefined, z.enum(['auto', 'browser', 'notify', 'off'], { message: 'must be auto, browser, notify or off' }).default('auto')),
  COMPANION_BROWSER_COMMAND: optionalText,
  COMPANION_NOTIFICATIONS: z.preprocess(emptyToUndefined, z.enum(['auto', 'on', 'off'], { message: 'must be auto, on or off' }).default('auto')),
  COMPANION_LINK_LOST_NOTICE_S: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('60')
      .refine((v) => /^[0-9]{1,4}$/.test(v) && Number(v) >= 1 && Number(v) <= 3600, 'must be a number of seconds, 1-3600')
      .transform(Number),
  ),
  COMPANION_VIRTUAL_CARD_ID: z.preprocess(emptyToUndefined, z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex digits (CHUID GUID)').optional()),
  COMPANION_VIRTUAL_CARD_PIN: z.preprocess(emptyToUndefined, z.string().regex(/^[0-9]{6,8}$/, 'must be 6-8 digits').optional()),
  COMPANION_VIRTUAL_CARD_PUK: z.preprocess(emptyToUndefined, z.string().regex(/^[0-9]{8}$/, 'must be 8 digits').optional()),
  COMPANION_VIRTUAL_CARD_BLOCKED: bool,
  COMPANION_VIRTUAL_CARD_CERTS: optionalText,
});

/**
 * True when this process runs in a desktop session a person sees: Windows and macOS always (the companion
 * is started at login there); elsewhere when `DISPLAY` (X11) or `WAYLAND_DISPLAY` is set. A headless
 * companion (a service, CI) has none, and every `auto` desktop setting is then off.
 *
 * @param env - environment variables
 * @param platform - `process.platform`
 * @returns whether a tray icon, notifications and a browser can reach the person
 */
export function hasDesktopSession(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): boolean {
  if (platform === 'win32' || platform === 'darwin') return true;
  return Boolean(env['DISPLAY']?.trim() || env['WAYLAND_DISPLAY']?.trim());
}

function defaultDataDir(env: NodeJS.ProcessEnv): string {
  const stateHome = env['XDG_STATE_HOME'] && env['XDG_STATE_HOME'].trim() !== '' ? env['XDG_STATE_HOME'] : join(homedir(), '.local', 'state');
  return join(stateHome, 'smartcard-assist-companion');
}

/**
 * Read and validate the companion's configuration.
 *
 * @param env - environment variables (normally `process.env`)
 * @param argv - command-line arguments after the script (normally `process.argv.slice(2)`), e.g. `['--page-port', '8080']`
 * @returns the typed configuration
 * @throws ConfigError `CONFIG.INVALID` naming the first variable (or flag) at fault and what is wrong;
 *   the value of a secret variable is never part of the message
 */
export function loadCompanionConfig(env: NodeJS.ProcessEnv, argv: readonly string[] = []): CompanionConfig {
  const flags = parseFlags(argv).values;

  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(RawSchema.shape)) {
    const flag = (FLAGS as Record<string, string>)[key];
    raw[key] = (flag !== undefined ? flags[flag] : undefined) ?? env[key];
  }
  const parsed = RawSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'configuration');
    const flag = (FLAGS as Record<string, string>)[variable];
    const name = flag !== undefined && flags[flag] !== undefined ? `--${flag}` : variable;
    // zod messages here are our own wording and never quote the value, so a secret variable stays secret.
    throw new ConfigError(name, issue?.message ?? 'invalid');
  }
  const v = parsed.data;

  // Extra CA for the bot's server certificate (a private CA); Node's built-in list stays trusted (bot-tls.ts).
  let botCa: string[] | null = null;
  if (v.SMARTCARD_BOT_CA_FILE !== undefined) {
    try {
      botCa = readBotCaFile(resolve(v.SMARTCARD_BOT_CA_FILE));
    } catch (err) {
      throw new ConfigError(flags[FLAGS.SMARTCARD_BOT_CA_FILE] !== undefined ? `--${FLAGS.SMARTCARD_BOT_CA_FILE}` : 'SMARTCARD_BOT_CA_FILE', err instanceof Error ? err.message : 'cannot be used');
    }
  }

  let reader: ReaderConfig;
  const readerName = v.COMPANION_READER_NAME ?? null;
  if (v.COMPANION_READER === 'virtual') {
    for (const required of ['COMPANION_VIRTUAL_CARD_ID', 'COMPANION_VIRTUAL_CARD_PIN', 'COMPANION_VIRTUAL_CARD_PUK'] as const) {
      if (v[required] === undefined) throw new ConfigError(required, 'is required when COMPANION_READER=virtual');
    }
    // The virtual card's certificates (issue #14): 9a.pem / 9e.pem in a folder, checked now.
    let certificates: Partial<Record<CertificateSlot, Buffer>> | undefined;
    if (v.COMPANION_VIRTUAL_CARD_CERTS !== undefined) {
      try {
        certificates = readCertificateDirectory(resolve(v.COMPANION_VIRTUAL_CARD_CERTS));
      } catch (err) {
        throw new ConfigError('COMPANION_VIRTUAL_CARD_CERTS', err instanceof Error ? err.message : 'cannot be used');
      }
    }
    reader = {
      kind: 'virtual',
      readerName,
      card: {
        cardId: v.COMPANION_VIRTUAL_CARD_ID!,
        pin: v.COMPANION_VIRTUAL_CARD_PIN!,
        puk: v.COMPANION_VIRTUAL_CARD_PUK!,
        blocked: v.COMPANION_VIRTUAL_CARD_BLOCKED,
        ...(certificates !== undefined ? { certificates } : {}),
      },
    };
  } else {
    reader = { kind: 'pcsc', readerName };
  }

  const dataDir = resolve(v.COMPANION_DATA_DIR ?? defaultDataDir(env));
  const desktopSession = hasDesktopSession(env);
  const onWhenDesktop = (setting: 'auto' | 'on' | 'off'): boolean => (setting === 'auto' ? desktopSession : setting === 'on');
  return {
    botUrl: v.SMARTCARD_BOT_URL,
    botCa,
    dataDir,
    reader,
    pagePort: v.COMPANION_PAGE_PORT,
    workstation: v.COMPANION_WORKSTATION?.trim() || sanitiseWorkstation(hostname()),
    logLevel: v.COMPANION_LOG_LEVEL,
    // Default: a per-user file beside the credential; `-` keeps the log on standard error.
    logFile: v.COMPANION_LOG_FILE === '-' ? null : resolve(v.COMPANION_LOG_FILE ?? join(dataDir, 'logs', 'companion.log')),
    logMaxBytes: v.COMPANION_LOG_MAX_KB * 1024,
    logKeep: v.COMPANION_LOG_KEEP,
    desktop: {
      tray: onWhenDesktop(v.COMPANION_TRAY),
      openPage: v.COMPANION_OPEN_PAGE === 'auto' ? (desktopSession ? 'browser' : 'off') : v.COMPANION_OPEN_PAGE,
      browserCommand: v.COMPANION_BROWSER_COMMAND?.trim() || null,
      notifications: onWhenDesktop(v.COMPANION_NOTIFICATIONS),
      linkLostNoticeMs: v.COMPANION_LINK_LOST_NOTICE_S * 1000,
    },
  };
}

/**
 * The link URL for a bot base URL: `http` becomes `ws`, `https` becomes `wss`, path `companion/link` under the base path.
 *
 * @param botUrl - e.g. `http://127.0.0.1:3978` or `https://bot.example/prefix/`
 * @returns e.g. `ws://127.0.0.1:3978/companion/link`
 */
export function linkUrlFor(botUrl: URL): URL {
  const base = new URL(botUrl.href.endsWith('/') ? botUrl.href : `${botUrl.href}/`);
  const url = new URL('companion/link', base);
  url.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

/**
 * A pairing endpoint URL under the bot base URL.
 *
 * @param botUrl - bot base URL
 * @param step - `start` or `poll`
 * @returns e.g. `http://127.0.0.1:3978/companion/pair/start`
 */
export function pairUrlFor(botUrl: URL, step: 'start' | 'poll'): URL {
  const base = new URL(botUrl.href.endsWith('/') ? botUrl.href : `${botUrl.href}/`);
  return new URL(`companion/pair/${step}`, base);
}
