import { describe, expect, it } from 'vitest';
import { ConfigError } from './companion.errors';
import { companionCommand, linkUrlFor, loadCompanionConfig, pairUrlFor, sanitiseWorkstation } from './config';

const VIRTUAL = {
  COMPANION_READER: 'virtual',
  COMPANION_VIRTUAL_CARD_ID: '00112233445566778899aabbccddeeff',
  COMPANION_VIRTUAL_CARD_PIN: '284719',
  COMPANION_VIRTUAL_CARD_PUK: '73920184',
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadCompanionConfig', () => {
  it('applies defaults', () => {
    const c = loadCompanionConfig({ HOME: '/home/x', COMPANION_WORKSTATION: 'WS-01' });
    expect(c.botUrl.href).toBe('http://127.0.0.1:3978/');
    expect(c.reader).toEqual({ kind: 'pcsc', readerName: null });
    expect(c.pagePort).toBe(0);
    expect(c.workstation).toBe('WS-01');
    expect(c.logLevel).toBe('info');
    expect(c.dataDir).toMatch(/smartcard-assist-companion$/);
    // Issue #13: a per-user log file beside the credential, rotated at 5 MiB keeping 3 older files.
    expect(c.logFile).toBe(`${c.dataDir}/logs/companion.log`);
    expect([c.logMaxBytes, c.logKeep]).toEqual([5 * 1024 * 1024, 3]);
    // No DISPLAY or WAYLAND_DISPLAY (on Linux): no tray, no notifications, the page is not opened.
    if (process.platform === 'linux') expect(c.desktop).toEqual({ tray: false, openPage: 'off', browserCommand: null, notifications: false, linkLostNoticeMs: 60_000 });
  });

  it('desktop settings (issue #13): auto follows the desktop session; each can be forced; the log can stay on stderr', () => {
    const desktop = loadCompanionConfig({ HOME: '/home/x', DISPLAY: ':0' });
    expect(desktop.desktop).toEqual({ tray: true, openPage: 'browser', browserCommand: null, notifications: true, linkLostNoticeMs: 60_000 });
    const forced = loadCompanionConfig({ HOME: '/home/x', DISPLAY: ':0', COMPANION_TRAY: 'off', COMPANION_NOTIFICATIONS: 'off', COMPANION_LOG_FILE: '-' }, ['--open-page', 'notify', '--browser-command', '/usr/bin/firefox', '--log-max-kb', '64', '--log-keep', '5', '--link-lost-notice-s', '5']);
    expect(forced.desktop).toEqual({ tray: false, openPage: 'notify', browserCommand: '/usr/bin/firefox', notifications: false, linkLostNoticeMs: 5000 });
    expect([forced.logFile, forced.logMaxBytes, forced.logKeep]).toEqual([null, 65536, 5]);
    const headless = loadCompanionConfig({ HOME: '/home/x', COMPANION_TRAY: 'on', COMPANION_OPEN_PAGE: 'browser' });
    if (process.platform === 'linux') expect(headless.desktop).toMatchObject({ tray: true, openPage: 'browser', notifications: false });
  });

  it('--install-autostart is a command of its own, refused with --unpair or --page-link', () => {
    expect(companionCommand({}, ['--install-autostart', '--bot-url', 'https://bot.trust.example'])).toEqual({ kind: 'install-autostart' });
    expect(() => companionCommand({}, ['--install-autostart', '--unpair'])).toThrow(/--install-autostart: give it alone/);
  });

  it('reads the virtual card and lets flags win over variables', () => {
    const c = loadCompanionConfig({ ...VIRTUAL, COMPANION_PAGE_PORT: '8080', COMPANION_VIRTUAL_CARD_BLOCKED: 'true' }, ['--page-port', '9090', '--data-dir=/tmp/x']);
    expect(c.pagePort).toBe(9090);
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.reader).toEqual({ kind: 'virtual', readerName: null, card: { cardId: VIRTUAL.COMPANION_VIRTUAL_CARD_ID, pin: '284719', puk: '73920184', blocked: true } });
  });

  it.each([
    [{ SMARTCARD_BOT_URL: 'not a url' }, 'SMARTCARD_BOT_URL'],
    [{ SMARTCARD_BOT_URL: 'ftp://x' }, 'SMARTCARD_BOT_URL'],
    [{ COMPANION_READER: 'usb' }, 'COMPANION_READER'],
    [{ COMPANION_PAGE_PORT: '70000' }, 'COMPANION_PAGE_PORT'],
    [{ COMPANION_PAGE_PORT: '-1' }, 'COMPANION_PAGE_PORT'],
    [{ COMPANION_LOG_LEVEL: 'loud' }, 'COMPANION_LOG_LEVEL'],
    [{ COMPANION_WORKSTATION: 'bad/name' }, 'COMPANION_WORKSTATION'],
    [{ COMPANION_READER: 'virtual' }, 'COMPANION_VIRTUAL_CARD_ID'],
    [{ ...VIRTUAL, COMPANION_VIRTUAL_CARD_ID: 'ABC' }, 'COMPANION_VIRTUAL_CARD_ID'],
    [{ ...VIRTUAL, COMPANION_VIRTUAL_CARD_BLOCKED: 'maybe' }, 'COMPANION_VIRTUAL_CARD_BLOCKED'],
  ])('refuses %j naming %s', (env, variable) => {
    const err = errorOf(() => loadCompanionConfig(env));
    expect(err.code).toBe('CONFIG.INVALID');
    expect(err.message.startsWith(`${variable}: `)).toBe(true);
  });

  it('never puts a secret value in the message', () => {
    const err = errorOf(() => loadCompanionConfig({ ...VIRTUAL, COMPANION_VIRTUAL_CARD_PUK: '7392018' }));
    expect(err.message).toMatch(/^COMPANION_VIRTUAL_CARD_PUK: /);
    expect(err.message).not.toContain('7392018');
    const err2 = errorOf(() => loadCompanionConfig({ ...VIRTUAL, COMPANION_VIRTUAL_CARD_PIN: '28x719' }));
    expect(err2.message).not.toContain('28x719');
  });

  it('names the flag when the bad value came from a flag, and refuses unknown flags', () => {
    expect(errorOf(() => loadCompanionConfig({}, ['--page-port', 'abc'])).message).toMatch(/^--page-port: /);
    expect(errorOf(() => loadCompanionConfig({}, ['--virtual-card-pin', '123456'])).message).toMatch(/^--virtual-card-pin: unknown/);
  });
});

describe('companionCommand (--page-link asks the running companion for a new page link)', () => {
  it('runs the companion without --page-link', () => {
    expect(companionCommand({}, [])).toEqual({ kind: 'run' });
    expect(companionCommand({}, ['--page-port', '8080'])).toEqual({ kind: 'run' });
  });

  it('asks on the socket in the data directory (flag, then variable, then the default)', () => {
    expect(companionCommand({ COMPANION_DATA_DIR: '/var/x' }, ['--page-link', '--data-dir', '/tmp/y'])).toEqual({ kind: 'page-link', socketPath: '/tmp/y/page-link.sock' });
    expect(companionCommand({ COMPANION_DATA_DIR: '/var/x' }, ['--page-link'])).toEqual({ kind: 'page-link', socketPath: '/var/x/page-link.sock' });
    expect(companionCommand({ HOME: '/home/x', XDG_STATE_HOME: '/home/x/.state' }, ['--page-link'])).toEqual({
      kind: 'page-link',
      socketPath: '/home/x/.state/smartcard-assist-companion/page-link.sock',
    });
  });

  it('does not need the reader settings (a virtual reader without its card is fine for the request)', () => {
    expect(companionCommand({ COMPANION_READER: 'virtual', COMPANION_DATA_DIR: '/d' }, ['--page-link'])).toMatchObject({ kind: 'page-link' });
  });

  it('refuses a value given to --page-link and unknown flags, listing --page-link among the known ones', () => {
    expect(errorOf(() => companionCommand({}, ['--page-link=yes'])).message).toMatch(/^--page-link: /);
    const unknown = errorOf(() => companionCommand({}, ['--link']));
    expect(unknown.message).toMatch(/^--link: unknown/);
    expect(unknown.message).toContain('--page-link');
  });

  it('--unpair (issue #10, link helper) asks for the unpair program; with --page-link it is refused; loadCompanionConfig takes it as a known flag', () => {
    expect(companionCommand({}, ['--unpair'])).toEqual({ kind: 'unpair' });
    expect(companionCommand({}, ['--unpair', '--bot-url', 'http://127.0.0.1:9'])).toEqual({ kind: 'unpair' });
    expect(errorOf(() => companionCommand({}, ['--unpair', '--page-link'])).message).toMatch(/^--unpair: /);
    expect(errorOf(() => companionCommand({}, ['--unpair=yes'])).message).toMatch(/^--unpair: /);
    expect(loadCompanionConfig({ COMPANION_WORKSTATION: 'WS-01' }, ['--unpair']).workstation).toBe('WS-01');
  });

  it('loadCompanionConfig takes --page-link as a known flag', () => {
    expect(loadCompanionConfig({ COMPANION_WORKSTATION: 'WS-01' }, ['--page-link']).workstation).toBe('WS-01');
  });
});

describe('URLs and names', () => {
  it('derives the link and pairing URLs from the bot URL', () => {
    expect(linkUrlFor(new URL('http://127.0.0.1:3978')).href).toBe('ws://127.0.0.1:3978/companion/link');
    expect(linkUrlFor(new URL('https://bot.example/prefix')).href).toBe('wss://bot.example/prefix/companion/link');
    expect(pairUrlFor(new URL('http://127.0.0.1:3978/'), 'poll').href).toBe('http://127.0.0.1:3978/companion/pair/poll');
  });

  it('sanitises host names into workstation names', () => {
    expect(sanitiseWorkstation('ws-01.trust.nhs.uk')).toBe('ws-01.trust.nhs.uk');
    expect(sanitiseWorkstation('pc#7 (ward)')).toBe('pc-7 -ward-');
    expect(sanitiseWorkstation('///')).toBe('workstation');
    expect(sanitiseWorkstation('x'.repeat(80))).toHaveLength(64);
  });
});
