/**
 * The deployment guide's commands are the ones the tests run (issue #11, "A deployment guide").
 *
 * Reads every `sh` block of docs/deploy.md. Each command must be in {@link RUN} (run here, in order, as a
 * shell command) or in {@link COVERED} (run by another test, which is checked to still run it); a command in
 * the guide that is in neither fails this test, and so does an entry that is no longer in the guide.
 *
 * Substitutions when running, and only these: `/opt/smartcard-assist` is a temporary install folder (holding
 * the built `dist/js` and a link to the repository's `node_modules`), port `3978` a free loopback port,
 * `https://smartcard-assist.example.nhs.uk` a TLS reverse proxy on loopback (test/support/tls-proxy.ts) with a
 * certificate from a test CA made with `openssl`, whose certificate stands for `/etc/smartcard-assist/trust-ca.pem`.
 * The guide's example `bot.env` (Bot Framework, Graph mail) is checked with `loadConfig` with its placeholders
 * filled in; the bot is started with a `bot.env` for loopback and the outbox, as Microsoft's services cannot be
 * reached from here. The nginx, Caddy and systemd blocks are checked for what the bot needs (paths, WebSocket
 * upgrade, timeouts against SHUTDOWN_GRACE_MS and the link heartbeat), not run: those programs are not installed.
 *
 * Needs `openssl` and `curl` (Debian's). Under CI=true a missing one fails the test; without CI it is skipped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../bot/config';
import { parseMasterKey } from '../../bot/security/keys';
import { artifactDir, REPO_ROOT } from '../support/artifacts';
import { removeTestDirs } from '../support/e2e-stack';
import { createTestPki, hasOpenssl, type TestPki } from '../support/graph-fake/test-pki';
import { freePort, startProcess, stopAll, waitForHttp, type ManagedProcess } from '../support/processes';
import { startTlsProxy, type TlsProxy } from '../support/tls-proxy';

const GUIDE = readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
const INSTALL = '/opt/smartcard-assist';
const PUBLIC_URL = 'https://smartcard-assist.example.nhs.uk';
const CA_FILE = '/etc/smartcard-assist/trust-ca.pem';

/** Fenced blocks of the guide: language and text. */
const blocks = [...GUIDE.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, text: m[2]! }));
/** Every command line of the `sh` blocks, in order (comments and blank lines left out). */
const guideCommands = blocks
  .filter((b) => b.lang === 'sh')
  .flatMap((b) => b.text.split('\n'))
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

/** Commands another test runs: the file, and what in it shows that it runs the command. */
const COVERED: Record<string, { file: string; evidence: RegExp; why: string }> = {
  'npm ci': { file: 'scripts/test-all.sh', evidence: /^\s*npm ci\b/m, why: 'the test run installs with npm ci before any test' },
  'npm ci --omit=dev': { file: 'test/integration/production-install.test.ts', evidence: /\['ci', '--omit=dev'/, why: 'a production install takes minutes; that test does it in a folder of its own' },
};

/** Commands this test runs (in this order). */
const RUN = [
  'npm run build',
  'umask 077',
  'openssl rand -base64 32 > master.key',
  'node --env-file=bot.env dist/js/bot/main.mjs',
  'curl -fsS http://127.0.0.1:3978/readyz',
  `node dist/js/companion/main.mjs --bot-url ${PUBLIC_URL} --bot-ca-file ${CA_FILE}`,
  'node dist/js/companion/main.mjs --bot-url http://smartcard-assist.example.nhs.uk',
] as const;

/** `KEY=value` lines of an env file (comments and blank lines left out). */
function envLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The fenced block whose first line is `# <path>`. */
function blockFor(pathComment: string): string {
  const b = blocks.find((x) => x.text.startsWith(`# ${pathComment}\n`));
  if (!b) throw new Error(`docs/deploy.md has no block starting with "# ${pathComment}"`);
  return b.text;
}

const toolsHere = hasOpenssl() && spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
if (!toolsHere && process.env['CI'] === 'true') throw new Error('openssl or curl is missing: the deployment guide test runs them (CI=true: failing, not skipping)');
if (!toolsHere) console.warn('deploy-guide.test.ts: skipped, openssl or curl is not installed');

describe('docs/deploy.md: every command is one the tests run', () => {
  it('each shell command of the guide is run here or by a named test, and nothing listed here has left the guide', () => {
    expect(guideCommands.length).toBeGreaterThan(5);
    const known = new Set<string>([...RUN, ...Object.keys(COVERED)]);
    expect(guideCommands.filter((c) => !known.has(c)), 'commands in the guide that no test runs').toEqual([]);
    expect([...known].filter((c) => !guideCommands.includes(c)), 'listed here but not in the guide').toEqual([]);
  });

  it.each(Object.entries(COVERED))('"%s" is run by the test that covers it', (_command, c) => {
    expect(readFileSync(path.join(REPO_ROOT, c.file), 'utf8')).toMatch(c.evidence);
  });

  it('the example bot.env is a valid configuration: Single Tenant bot, allowed tenant, Graph mail, proxy-friendly limits', () => {
    const dir = mkdtempSync(path.join(artifactDir('tmp'), 'deploy-env-'));
    try {
      const tenant = randomUUID();
      const filled = blockFor(`${INSTALL}/bot.env`)
        .replaceAll(INSTALL, dir)
        .replace(/<tenant id>/g, tenant)
        .replace(/<bot app client id>/g, randomUUID())
        .replace(/<graph app client id>/g, randomUUID())
        .replace(/<bot app client secret>/g, 'not-a-real-secret');
      expect(filled).not.toMatch(/<[^>]+>/);
      const env = envLines(filled);
      writeFileSync(path.join(dir, 'master.key'), `${execFileSync('openssl', ['rand', '-base64', '32'], { encoding: 'utf8' })}`);
      writeFileSync(path.join(dir, 'graph-secret'), 'not-a-real-graph-secret\n');
      const config = loadConfig(env);
      expect(config.host).toBe('127.0.0.1');
      expect(config.auth).toMatchObject({ kind: 'bot-framework', appType: 'SingleTenant', tenantId: tenant });
      expect(config.allowedTenants).toEqual([tenant]);
      expect(config.mail.transport).toBe('graph');
      expect(config.http.maxConnectionsPerAddress).toBe(0);
      expect(config.shutdown.graceMs).toBe(10_000);
    } finally {
      void removeTestDirs(dir);
    }
  });

  it('the systemd unit starts the tested command in the install folder and waits longer than SHUTDOWN_GRACE_MS', () => {
    const unit = blockFor('/etc/systemd/system/smartcard-assist.service');
    const setting = (k: string): string => new RegExp(`^${k}=(.*)$`, 'm').exec(unit)?.[1] ?? '';
    expect(setting('WorkingDirectory')).toBe(INSTALL);
    expect(setting('ExecStart')).toBe(`/usr/bin/${RUN[3]}`);
    expect(setting('KillSignal')).toBe('SIGTERM');
    const grace = Number(envLines(blockFor(`${INSTALL}/bot.env`))['SHUTDOWN_GRACE_MS']);
    // The bot exits at most 1 s after its grace time; systemd must not SIGKILL before.
    expect(Number(setting('TimeoutStopSec')) * 1000).toBeGreaterThan(grace + 1000);
  });

  it('the nginx and Caddy examples forward the bot\'s three paths to its port, with the WebSocket upgrade and a read timeout above the link heartbeat', () => {
    const port = envLines(blockFor(`${INSTALL}/bot.env`))['PORT'];
    const nginx = blocks.find((b) => b.lang === 'nginx')!.text;
    const caddy = blocks.find((b) => b.lang === 'caddy')!.text;
    for (const conf of [nginx, caddy]) {
      expect(conf).toContain(`127.0.0.1:${port}`);
      for (const p of ['/api/messages', '/companion/pair/', '/companion/link']) expect(conf).toContain(p);
    }
    const link = /location = \/companion\/link \{([\s\S]*?)\}/.exec(nginx)![1]!;
    expect(link).toMatch(/proxy_http_version 1\.1;/);
    expect(link).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(link).toMatch(/proxy_set_header Connection "upgrade";/);
    // The companion pings every 30 s; a shorter read timeout would cut idle links.
    expect(Number(/proxy_read_timeout (\d+)s;/.exec(link)![1])).toBeGreaterThan(30);
    // Body limit as the bot's own (256 KiB).
    expect(nginx).toMatch(/client_max_body_size 256k;/);
  });
});

describe.skipIf(!toolsHere)('docs/deploy.md: the commands, run', () => {
  let install: string;
  let port: number;
  let pki: TestPki;
  let proxy: TlsProxy | undefined;
  let bot: ManagedProcess | undefined;
  let companion: ManagedProcess | undefined;
  /** Environment for the commands: no NODE_OPTIONS (plain node, as on a server). */
  const env = { NODE_OPTIONS: undefined };
  /** A guide command with the documented substitutions. */
  const substituted = (command: string): string =>
    command.replaceAll(INSTALL, install).replaceAll('127.0.0.1:3978', `127.0.0.1:${port}`).replaceAll(PUBLIC_URL, proxy?.url ?? PUBLIC_URL).replaceAll(CA_FILE, pki.caCertPath);
  /** Run one command with bash in `cwd`. */
  const sh = (command: string, cwd: string, extraEnv: Record<string, string | undefined> = {}) =>
    spawnSync('bash', ['-c', command], { cwd, encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...env, ...extraEnv } as NodeJS.ProcessEnv });

  beforeAll(async () => {
    install = mkdtempSync(path.join(artifactDir('tmp'), 'deploy-install-'));
    port = await freePort();
    pki = createTestPki();
  });

  afterAll(async () => {
    await stopAll(companion, bot);
    await proxy?.stop();
    pki?.cleanup();
    await removeTestDirs(install);
  });

  it('builds (npm run build), and the install folder holds what the guide copies', () => {
    const r = sh(RUN[0], REPO_ROOT);
    expect(r.status, r.stderr).toBe(0);
    for (const f of ['bot/main.mjs', 'companion/main.mjs']) expect(existsSync(path.join(REPO_ROOT, 'dist', 'js', f)), f).toBe(true);
    cpSync(path.join(REPO_ROOT, 'dist', 'js'), path.join(install, 'dist', 'js'), { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(path.join(REPO_ROOT, f), path.join(install, f));
    // The runtime dependencies (what npm ci --omit=dev installs; production-install.test.ts runs that).
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(install, 'node_modules'));
  });

  it('makes the master key: umask 077, openssl rand -base64 32 > master.key (mode 0600, a valid key)', () => {
    const r = sh(`${RUN[1]}\n${RUN[2]}`, install);
    expect(r.status, r.stderr).toBe(0);
    const file = path.join(install, 'master.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(() => parseMasterKey(readFileSync(file, 'utf8'), 'SMARTCARD_MASTER_KEY_FILE')).not.toThrow();
  });

  it('starts the bot with node --env-file=bot.env dist/js/bot/main.mjs, and curl -fsS .../readyz answers ready', async () => {
    mkdirSync(path.join(install, 'data'), { mode: 0o700 });
    writeFileSync(
      path.join(install, 'bot.env'),
      [`HOST=127.0.0.1`, `PORT=${port}`, `SMARTCARD_DATA_DIR=${install}/data`, `SMARTCARD_MASTER_KEY_FILE=${install}/master.key`, 'SHUTDOWN_GRACE_MS=10000', 'HTTP_MAX_CONNECTIONS_PER_ADDRESS=0', 'LOG_LEVEL=info', ''].join('\n'),
      { mode: 0o600 },
    );
    bot = startProcess({ name: 'deploy-guide-bot', command: 'bash', args: ['-c', `exec ${substituted(RUN[3])}`], cwd: install, env });
    await bot.waitForLine(/Smartcard Assist bot listening/, 60_000);
    const r = sh(substituted(RUN[4]), install);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ status: 'ready', checks: { storage: 'ok', mail: 'ok' } });
  });

  it('the companion command reaches the bot through the TLS proxy, trusting the CA file, and prints a pairing code', async () => {
    proxy = await startTlsProxy({ cert: pki.serverCertPem, key: pki.serverKeyPem, target: `http://127.0.0.1:${port}` });
    const data = mkdtempSync(path.join(install, 'companion-'));
    companion = startProcess({
      name: 'deploy-guide-companion',
      command: 'bash',
      args: ['-c', `exec ${substituted(RUN[5])}`],
      cwd: install,
      env: {
        ...env,
        COMPANION_DATA_DIR: data,
        // An in-process virtual card instead of a PC/SC reader (no pcscd here); nothing else changes.
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: 'c0ffee'.padEnd(32, '0'),
        COMPANION_VIRTUAL_CARD_PIN: '482913',
        COMPANION_VIRTUAL_CARD_PUK: '73194628',
      },
    });
    const m = await companion.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4})/, 30_000);
    expect(m[1]).toMatch(/^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    // The code came from the bot, through the proxy.
    expect(proxy.connections()).toBeGreaterThan(0);
    expect(bot!.output()).toMatch(/"msg":"pairing started"/);
    await companion.stop();
  });

  it('the companion refuses a plain-http bot address: exit 2, naming --bot-url', () => {
    const r = sh(substituted(RUN[6]), install, { COMPANION_DATA_DIR: mkdtempSync(path.join(install, 'companion-')) });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^companion: --bot-url: must use https:\/\/ for a bot on another computer/m);
  });

  it('SIGTERM stops the bot gracefully: exit 0 well within SHUTDOWN_GRACE_MS', async () => {
    const t0 = Date.now();
    process.kill(bot!.pid, 'SIGTERM');
    expect(await bot!.waitForExit(12_000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(11_000);
    expect(bot!.output()).toMatch(/shutdown: done, nothing left in flight/);
    await expect(waitForHttp(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 500 })).rejects.toThrow();
  });
});
