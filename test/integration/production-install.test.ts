/**
 * What ships is what is used (issue #11): the bot and the companion built to
 * JavaScript (`npm run build`), installed with `npm ci --omit=dev` in a
 * directory of their own, start with plain `node` (no tsx, no TypeScript, no
 * dev dependency) and serve a Teams turn end to end.
 *
 * The install builds the native addons (better-sqlite3, pcsclite) from the
 * npm cache, as a production host would; it takes a minute or two.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/artifacts';
import { freePort, startProcess, stopAll, waitForHttp, type ManagedProcess } from '../support/processes';
import { RecordingConnector, TeamsClient, teamsUser } from './adversarial-harness';

describe('production install: built JavaScript under plain node, dev dependencies omitted', () => {
  let dir: string;
  let bot: ManagedProcess | undefined;
  let conn: RecordingConnector;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sa-prod-'));
    execFileSync('npm', ['run', '-s', 'build', '--', `--outdir=${path.join(dir, 'dist', 'js')}`], { cwd: REPO_ROOT, stdio: 'pipe' });
    cpSync(path.join(REPO_ROOT, 'package.json'), path.join(dir, 'package.json'));
    cpSync(path.join(REPO_ROOT, 'package-lock.json'), path.join(dir, 'package-lock.json'));
    // `--ignore-scripts=false`: the native addons must build here, as on a server.
    const install = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, encoding: 'utf8', timeout: 600_000 });
    if (install.status !== 0) throw new Error(`npm ci --omit=dev failed (${install.status}):\n${(install.stderr || install.stdout).slice(-2000)}`);
    conn = new RecordingConnector();
    await conn.start();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    bot = startProcess({
      name: 'production-bot',
      command: process.execPath,
      args: ['dist/js/bot/main.mjs'],
      cwd: dir,
      env: { SMARTCARD_MASTER_KEY: randomBytes(32).toString('hex'), SMARTCARD_DATA_DIR: path.join(dir, 'data'), PORT: String(port), HOST: '127.0.0.1', NODE_OPTIONS: undefined },
    });
    await bot.waitForLine(/Smartcard Assist bot listening/, 60_000);
  }, 900_000);

  afterAll(async () => {
    await stopAll(bot);
    await conn?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs no dev dependency: no tsx, TypeScript, vitest or esbuild in node_modules', () => {
    for (const dev of ['tsx', 'typescript', 'vitest', 'esbuild', 'knip']) expect(existsSync(path.join(dir, 'node_modules', dev)), dev).toBe(false);
    const lock = JSON.parse(readFileSync(path.join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    expect(Object.values(lock.packages).filter((p) => p.dev)).toEqual([]);
  });

  it('the bot runs under plain node and answers /healthz', async () => {
    const health = await waitForHttp(`${url}/healthz`, { timeoutMs: 10_000 });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
  });

  it('the bot serves a Teams turn: "help" gets a reply at the connector', async () => {
    const teams = new TeamsClient({ url }, conn.url);
    const user = teamsUser('Prod Person');
    const r = await teams.message(user, 'help');
    expect(r.status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (conn.textsIn(user.conversationId).length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(conn.textsIn(user.conversationId).join('\n')).toMatch(/unlock/i);
  });

  it('the companion starts under plain node and refuses a bad setting by name', () => {
    const r = spawnSync(process.execPath, ['dist/js/companion/main.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '', SMARTCARD_BOT_URL: 'not a url' } });
    expect(r.status).not.toBe(0);
    expect(`${r.stderr}${r.stdout}`).toMatch(/SMARTCARD_BOT_URL/);
    expect(`${r.stderr}${r.stdout}`).not.toMatch(/Cannot find (module|package)|ERR_MODULE_NOT_FOUND/);
  });
});
