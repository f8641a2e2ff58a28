/**
 * One validated configuration per process (issue #11), companion side: every variable `loadCompanionConfig`
 * reads is documented in docs/configuration.md (and nothing else), and a wrong value of each is refused with
 * ConfigError CONFIG.INVALID whose message starts with the variable's (or flag's) name and says why.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { documentedSettings, variablesIn } from '../test/support/settings-doc';
import { loadCompanionConfig } from './config';

const tmp = mkdtempSync(path.join(tmpdir(), 'companion-settings-'));
const BASE = { COMPANION_DATA_DIR: tmp };
const VIRTUAL = { COMPANION_READER: 'virtual', COMPANION_VIRTUAL_CARD_ID: 'a'.repeat(31) + 'b', COMPANION_VIRTUAL_CARD_PIN: '482913', COMPANION_VIRTUAL_CARD_PUK: '73194628' };
const notPem = path.join(tmp, 'not-a-cert.pem');
writeFileSync(notPem, 'hello\n');

/** What loadCompanionConfig says, or null when it accepts. */
function refusal(env: Record<string, string | undefined>, argv: string[] = []): string | null {
  try {
    loadCompanionConfig(env, argv);
    return null;
  } catch (err) {
    expect((err as { code?: string }).code).toBe('CONFIG.INVALID');
    return (err as Error).message;
  }
}

interface Case {
  env: Record<string, string | undefined>;
  argv?: string[];
  /** The name the message starts with: a variable, or a flag when the value came from one. */
  setting: string;
  reason: RegExp;
}

const CASES: Case[] = [
  { env: { SMARTCARD_BOT_URL: 'not a url' }, setting: 'SMARTCARD_BOT_URL', reason: /absolute URL/ },
  { env: { SMARTCARD_BOT_URL: 'ws://127.0.0.1:3978' }, setting: 'SMARTCARD_BOT_URL', reason: /http or https/ },
  { env: { SMARTCARD_BOT_URL: 'http://bot.trust.example' }, setting: 'SMARTCARD_BOT_URL', reason: /https:\/\/ for a bot on another computer/ },
  { env: { SMARTCARD_BOT_URL: 'https://user:pw@bot.trust.example' }, setting: 'SMARTCARD_BOT_URL', reason: /user name or password/ },
  { env: { SMARTCARD_BOT_URL: 'https://bot.trust.example/?x=1' }, setting: 'SMARTCARD_BOT_URL', reason: /query or fragment/ },
  { env: {}, argv: ['--bot-url', 'http://10.1.2.3:3978'], setting: '--bot-url', reason: /https:\/\/ for a bot on another computer/ },
  { env: { SMARTCARD_BOT_CA_FILE: path.join(tmp, 'absent.pem') }, setting: 'SMARTCARD_BOT_CA_FILE', reason: /cannot read .*ENOENT/ },
  { env: { SMARTCARD_BOT_CA_FILE: notPem }, setting: 'SMARTCARD_BOT_CA_FILE', reason: /no PEM certificate/ },
  { env: {}, argv: ['--bot-ca-file', notPem], setting: '--bot-ca-file', reason: /no PEM certificate/ },
  { env: { COMPANION_READER: 'usb' }, setting: 'COMPANION_READER', reason: /pcsc or virtual/ },
  { env: { COMPANION_PAGE_PORT: '70000' }, setting: 'COMPANION_PAGE_PORT', reason: /port number 0-65535/ },
  { env: { COMPANION_WORKSTATION: 'WS<script>' }, setting: 'COMPANION_WORKSTATION', reason: /letters, digits/ },
  { env: { COMPANION_WORKSTATION: 'W'.repeat(65) }, setting: 'COMPANION_WORKSTATION', reason: /at most 64/ },
  { env: { COMPANION_LOG_LEVEL: 'loud' }, setting: 'COMPANION_LOG_LEVEL', reason: /fatal, error, warn/ },
  { env: { COMPANION_LOG_MAX_KB: '8' }, setting: 'COMPANION_LOG_MAX_KB', reason: /size in KiB, 16-1048576/ },
  { env: { COMPANION_LOG_KEEP: '0' }, setting: 'COMPANION_LOG_KEEP', reason: /number of files, 1-20/ },
  { env: { COMPANION_TRAY: 'maybe' }, setting: 'COMPANION_TRAY', reason: /auto, on or off/ },
  { env: { COMPANION_NOTIFICATIONS: 'yes' }, setting: 'COMPANION_NOTIFICATIONS', reason: /auto, on or off/ },
  { env: { COMPANION_LINK_LOST_NOTICE_S: '0' }, setting: 'COMPANION_LINK_LOST_NOTICE_S', reason: /seconds, 1-3600/ },
  { env: { COMPANION_OPEN_PAGE: 'always' }, setting: 'COMPANION_OPEN_PAGE', reason: /auto, browser, notify or off/ },
  { env: {}, argv: ['--open-page', 'tab'], setting: '--open-page', reason: /auto, browser, notify or off/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_ID: 'ABC' }, setting: 'COMPANION_VIRTUAL_CARD_ID', reason: /32 lower-case hex/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_ID: undefined }, setting: 'COMPANION_VIRTUAL_CARD_ID', reason: /required when COMPANION_READER=virtual/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_PIN: '12' }, setting: 'COMPANION_VIRTUAL_CARD_PIN', reason: /6-8 digits/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_PUK: '1234' }, setting: 'COMPANION_VIRTUAL_CARD_PUK', reason: /8 digits/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_BLOCKED: 'perhaps' }, setting: 'COMPANION_VIRTUAL_CARD_BLOCKED', reason: /true or false/ },
  { env: { ...VIRTUAL, COMPANION_VIRTUAL_CARD_CERTS: tmp }, setting: 'COMPANION_VIRTUAL_CARD_CERTS', reason: /neither 9a\.pem nor 9e\.pem/ },
];

/** Variables that take any value, and why nothing is refused. */
const FREE_FORM: Record<string, string> = {
  COMPANION_DATA_DIR: 'any folder; created on first use',
  XDG_STATE_HOME: 'only the default of COMPANION_DATA_DIR',
  COMPANION_READER_NAME: 'any reader name; a reader that never appears is reported while running',
  COMPANION_LOG_FILE: 'any path (or - for standard error); created at start-up',
  COMPANION_BROWSER_COMMAND: 'any program; one that cannot be started is reported in the log and the link is printed',
  DISPLAY: 'only whether there is a desktop session (the auto of the desktop settings)',
  WAYLAND_DISPLAY: 'only whether there is a desktop session (the auto of the desktop settings)',
};

describe('companion settings: documented, read, and each misconfiguration refused by name', () => {
  it('the base environments are accepted', () => {
    expect(refusal(BASE)).toBeNull();
    expect(refusal({ ...BASE, ...VIRTUAL })).toBeNull();
    expect(refusal({ ...BASE, SMARTCARD_BOT_URL: 'https://bot.trust.example/prefix/' })).toBeNull();
  });

  it('docs/configuration.md lists exactly the variables the companion\'s configuration reads', () => {
    const read = new Set(variablesIn(path.join(import.meta.dirname, 'config.ts')));
    const documented = new Set(documentedSettings('Companion'));
    expect([...read].filter((v) => !documented.has(v)).sort(), 'read but not documented').toEqual([]);
    expect([...documented].filter((v) => !read.has(v)).sort(), 'documented but not read').toEqual([]);
    expect(read.has('SMARTCARD_BOT_CA_FILE')).toBe(true);
  });

  it('every documented variable has a misconfiguration below, or is free-form', () => {
    const covered = new Set(CASES.map((c) => c.setting));
    expect(documentedSettings('Companion').filter((v) => !covered.has(v) && !(v in FREE_FORM))).toEqual([]);
  });

  it.each(CASES.map((c) => [c.setting, [...Object.entries(c.env).map(([k, v]) => `${k}=${v ?? '(unset)'}`), ...(c.argv ?? [])].join(' '), c] as const))('refuses %s (%s)', (_s, _e, c) => {
    const message = refusal({ ...BASE, ...c.env }, c.argv ?? []);
    expect(message, 'accepted').not.toBeNull();
    expect(message!.startsWith(`${c.setting}: `), message!).toBe(true);
    expect(message).toMatch(c.reason);
    // The virtual card's passcode and PUK never appear in a message.
    for (const secret of ['482913', '73194628']) expect(message).not.toContain(secret);
  });
});
