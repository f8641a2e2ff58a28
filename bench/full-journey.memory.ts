/**
 * Idle memory of the bot (embedded store) and the companion (issue #15, "Memory"), each as its own
 * process, run from the TypeScript sources through tsx (`npm run bot` / `npm run companion`) and from
 * the esbuild bundle (`npm run build`, `node dist/js/...`; built here into `artifacts/bench/dist/js`
 * so the project's `dist/` is left alone, and resolving packages from the project's node_modules).
 *
 * Idle: one person registered (`admin add-person`), their companion paired through the real flow
 * (the companion's pairing code sent as "pair CODE" in Teams) and linked over the WebSocket, nothing
 * else to do. The companion has its in-process virtual
 * card (`COMPANION_READER=virtual`: the project's shared pcscd readers belong to the integration
 * tests), with the tray, notifications and page opening off. Both run at once; RSS (`VmRSS` of
 * /proc/<pid>/status) is read once a second over `settleMs` from when both are ready (V8 gives
 * memory back after some seconds without work, when its heuristics decide to): the last reading is reported with the lowest and highest seen. Targets: companion < 80
 * MiB, bot < 128 MiB.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpGet, request as httpRequest, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './latency.stats';

/** Targets from issue #15, MiB (reported, never asserted). */
export const MEMORY_TARGETS = { companionMaxMiB: 80, botMaxMiB: 128 } as const;

export interface IdleMemoryRow {
  process: 'bot' | 'companion';
  runner: 'tsx' | 'dist';
  /** VmRSS at the last sample, MiB. */
  rssMiB: number;
  minMiB: number;
  maxMiB: number;
  /** Every reading, MiB, one a second over the idle window. */
  series?: number[];
  /** Why there is no figure, when there is none. */
  error: string | null;
}

export interface IdleMemoryResult {
  settleMs: number;
  rows: IdleMemoryRow[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? round(Number(m[1]) / 1024, 1) : Number.NaN;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function healthz(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}/healthz`, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

interface Started {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function start(args: string[], env: Record<string, string>): Started {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv['NODE_OPTIONS'];
  delete childEnv['MicrosoftAppId'];
  delete childEnv['MicrosoftAppPassword'];
  const child = spawn(process.execPath, args, { cwd: repoRoot, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (c: Buffer): void => {
    out = (out + c.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** RSS once a second over `ms`: the last reading, with the lowest and highest seen. */
async function sample(pid: number, ms: number): Promise<{ rssMiB: number; minMiB: number; maxMiB: number; series: number[] }> {
  const seen: number[] = [];
  for (let t = 0; t <= ms; t += 1000) {
    seen.push(rssMiB(pid));
    if (t < ms) await sleep(1000);
  }
  return { rssMiB: seen[seen.length - 1]!, minMiB: Math.min(...seen), maxMiB: Math.max(...seen), series: seen };
}

/**
 * Measure idle RSS of the bot and the companion, from sources (tsx) and from the bundle.
 *
 * @param options.settleMs - wait after ready before sampling, ms
 */
export async function benchIdleMemory(options: { settleMs: number; log: (line: string) => void }): Promise<IdleMemoryResult> {
  const rows: IdleMemoryRow[] = [];
  const distDir = path.join(repoRoot, 'artifacts', 'bench', 'dist', 'js');
  rmSync(distDir, { recursive: true, force: true }); // no chunks of an older build
  mkdirSync(distDir, { recursive: true });
  let built: string | null = null;
  try {
    execFileSync('npm', ['run', '-s', 'build', '--', `--outdir=${distDir}`], { cwd: repoRoot, stdio: 'pipe' });
  } catch (err) {
    built = `npm run build failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  const connector = await stubConnector();
  try {
    for (const runner of ['tsx', 'dist'] as const) {
      const entry = (which: 'bot' | 'companion'): string[] => (runner === 'tsx' ? ['--import', 'tsx', `${which}/main.ts`] : [path.join(distDir, which, 'main.mjs')]);
      if (runner === 'dist' && built !== null) {
        rows.push({ process: 'bot', runner, rssMiB: Number.NaN, minMiB: Number.NaN, maxMiB: Number.NaN, error: built }, { process: 'companion', runner, rssMiB: Number.NaN, minMiB: Number.NaN, maxMiB: Number.NaN, error: built });
        continue;
      }
      const dataDir = await mkdtemp(path.join(tmpdir(), 'bench-memory-'));
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      options.log(`      ${runner}: bot ...`);
      const botEnv = { PORT: String(port), HOST: '127.0.0.1', SMARTCARD_DATA_DIR: path.join(dataDir, 'bot'), SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'warn', PAIRING_POLL_INTERVAL_SECONDS: '1' };
      const bot = start(entry('bot'), botEnv);
      try {
        const deadline = Date.now() + 60_000;
        while ((await healthz(url).catch(() => 0)) !== 200) {
          if (bot.child.exitCode !== null || Date.now() > deadline) throw new Error(`the bot did not answer /healthz: ${bot.output().slice(-400)}`);
          await sleep(200);
        }
        const teamsUserId = `memory-${randomBytes(6).toString('hex')}`;
        const person = JSON.stringify({ teamsUserId, displayName: 'Memory Person', email: 'memory.person@nhs.net', cardId: randomBytes(16).toString('hex'), puk: '73920184', answers: [{ questionId: 'q01', answer: 'memory one' }, { questionId: 'q02', answer: 'memory two' }, { questionId: 'q04', answer: 'memory four' }, { questionId: 'q05', answer: 'memory five' }] });
        execFileSync(process.execPath, [...(runner === 'tsx' ? ['--import', 'tsx', 'bot/admin.cli.ts'] : [path.join(distDir, 'bot', 'admin.cli.mjs')]), 'add-person', '--file', '-'], { cwd: repoRoot, input: person, env: { ...process.env, ...botEnv, NODE_OPTIONS: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
        options.log(`      ${runner}: companion ...`);
        const companion = start(entry('companion'), {
          SMARTCARD_BOT_URL: url,
          COMPANION_DATA_DIR: path.join(dataDir, 'companion'),
          COMPANION_READER: 'virtual',
          COMPANION_VIRTUAL_CARD_ID: randomBytes(16).toString('hex'),
          COMPANION_VIRTUAL_CARD_PIN: '204817',
          COMPANION_VIRTUAL_CARD_PUK: '73920184',
          COMPANION_PAGE_PORT: '0',
          COMPANION_LOG_FILE: '-',
          COMPANION_LOG_LEVEL: 'warn',
          COMPANION_TRAY: 'off',
          COMPANION_OPEN_PAGE: 'off',
          COMPANION_NOTIFICATIONS: 'off',
        });
        try {
          const ready = Date.now() + 60_000;
          let code: string | undefined;
          while (!(code = /PAIRING CODE: (\S+)/.exec(companion.output())?.[1])) {
            if (companion.child.exitCode !== null || Date.now() > ready) throw new Error(`the companion did not start: ${companion.output().slice(-400)}`);
            await sleep(200);
          }
          await teamsMessage(url, connector.url, teamsUserId, `pair ${code}`);
          while (!/STATUS: connected/.test(companion.output())) {
            if (companion.child.exitCode !== null || Date.now() > ready) throw new Error(`the companion did not pair and link: ${companion.output().slice(-400)}`);
            await sleep(200);
          }
          options.log(`      ${runner}: both idle, ${Math.round(options.settleMs / 1000)} s ...`);
          const [b, c] = await Promise.all([sample(bot.child.pid!, options.settleMs), sample(companion.child.pid!, options.settleMs)]);
          rows.push({ process: 'bot', runner, ...b, error: null }, { process: 'companion', runner, ...c, error: null });
        } catch (err) {
          rows.push({ process: 'bot', runner, ...(await sample(bot.child.pid!, 1000)), error: null });
          rows.push({ process: 'companion', runner, rssMiB: Number.NaN, minMiB: Number.NaN, maxMiB: Number.NaN, error: err instanceof Error ? err.message : String(err) });
        } finally {
          await companion.stop();
        }
      } catch (err) {
        rows.push({ process: 'bot', runner, rssMiB: Number.NaN, minMiB: Number.NaN, maxMiB: Number.NaN, error: err instanceof Error ? err.message : String(err) });
      } finally {
        await bot.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    await connector.close();
  }
  return { settleMs: options.settleMs, rows };
}

/** A Bot Framework connector stand-in that accepts every activity (the bot's replies go nowhere). */
async function stubConnector(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: `act-${randomBytes(4).toString('hex')}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A Teams message from `userId` to the bot (authentication off, as the Agents Playground sends it). */
function teamsMessage(botUrl: string, serviceUrl: string, userId: string, text: string): Promise<number> {
  const body = JSON.stringify({
    type: 'message',
    id: randomBytes(8).toString('hex'),
    timestamp: new Date().toISOString(),
    channelId: 'msteams',
    serviceUrl,
    from: { id: userId, name: 'Memory Person', aadObjectId: userId },
    recipient: { id: '28:memory-bot', name: 'Smartcard Assist' },
    conversation: { id: `a:memory-${userId}`, conversationType: 'personal', tenantId: 'memory-tenant' },
    channelData: { tenant: { id: 'memory-tenant' } },
    text,
    textFormat: 'plain',
  });
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${botUrl}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode !== undefined && res.statusCode < 300 ? resolve(res.statusCode) : reject(new Error(`pair message: HTTP ${res.statusCode ?? 0}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The section as printed lines. */
export function idleMemoryReport(r: IdleMemoryResult, fmt: (n: number, digits?: number) => string, table: (header: string[], rows: string[][]) => string): string[] {
  const target = (p: IdleMemoryRow['process']): number => (p === 'bot' ? MEMORY_TARGETS.botMaxMiB : MEMORY_TARGETS.companionMaxMiB);
  const lines = [
    `\n== 8. Idle memory (issue #15): each its own process, RSS once a second for ${fmt(r.settleMs / 1000, 0)} s once both are ready (last, min, max); bot = embedded store (its worker thread), nothing to do; companion = paired and linked (WebSocket up), virtual card, no tray ==`,
    table(
      ['process', 'run from', 'RSS MiB', 'min', 'max', 'target MiB', 'result'],
      r.rows.map((x) => [x.process, x.runner === 'tsx' ? 'tsx (npm run bot/companion)' : 'dist (node dist/js/.../main.mjs)', fmt(x.rssMiB, 1), fmt(x.minMiB, 1), fmt(x.maxMiB, 1), `< ${target(x.process)}`, x.error ? 'n/a' : x.rssMiB < target(x.process) ? 'met' : 'not met']),
    ),
  ];
  for (const x of r.rows) if (x.error) lines.push(`   ${x.process} (${x.runner}): ${x.error}`);
  return lines;
}
