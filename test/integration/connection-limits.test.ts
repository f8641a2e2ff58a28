/**
 * Connections are bounded (issue #10, finding 4): a slowloris or connection flood
 * must not take /healthz or open companion links down.
 *
 * The real bot (`startBot`, embedded store, outbox mail, no app id) runs in this
 * process. The flood runs in a child process (its sockets are not this process's
 * files) and opens half-open HTTP connections from several loopback source
 * addresses (127.0.0.2-127.0.0.9; Linux routes all of 127.0.0.0/8 to lo), each
 * sending a partial request head and then one more header line now and then.
 *
 * For the open-file test this process's soft RLIMIT_NOFILE is lowered with
 * `prlimit` (util-linux) to {@link FD_LIMIT}, so the file limit the finding hit at
 * 21,000 connections is reached with ~1,200 here; it is put back afterwards.
 *
 * Nothing here uses pcscd or the vpcd readers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addPerson } from '../../bot/admin.cli';
import { loadConfig } from '../../bot/config';
import { credentialHash } from '../../bot/link/companion-link.server';
import { startBot, type BotApp } from '../../bot/main';
import { deriveKeys, parseMasterKey } from '../../bot/security/keys';
import { createLogger } from '../../common/logger';
import { RawCompanion, sleep } from './adversarial-harness';

/** Soft open-file limit of this process during the exhaustion test. */
const FD_LIMIT = 1024;

// ---------------------------------------------------------------------------
// The flood (a child process; plain JavaScript so it needs no loader)
// ---------------------------------------------------------------------------

/** How one group of flood sockets behaves. */
interface FloodGroup {
  /** Local (source) address, 127.x.y.z. */
  address: string;
  /** Sockets to keep open at once. */
  count: number;
  /** `head`: a partial request head, one more header line every trickle; `body`: a whole head, then the body a byte at a time; `silent`: nothing at all. */
  mode: 'head' | 'body' | 'silent';
  /** Open a new socket when one closes (a sustained flood), after `reconnectMs`. */
  sustain: boolean;
}

/** What the flood saw for one source address. */
interface FloodStats {
  /** Sockets connected and not closed now. */
  open: number;
  /** Connections made so far. */
  connected: number;
  /** Of those, closed so far. */
  closed: number;
  /** Closed within 1,000 ms of connecting (refused at once). */
  closedFast: number;
  /** Shortest and longest life of a closed socket, milliseconds (-1 when none closed). */
  minLifeMs: number;
  maxLifeMs: number;
  /** Connect errors (ECONNREFUSED, EADDRNOTAVAIL, ...). */
  errors: number;
}

const FLOOD_SCRIPT = String.raw`
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]);
const stats = {};
let stopping = false;
const alive = new Set();
for (const g of cfg.groups) stats[g.address] = { open: 0, connected: 0, closed: 0, closedFast: 0, minLifeMs: -1, maxLifeMs: -1, errors: 0 };
function open(g) {
  if (stopping) return;
  const st = stats[g.address];
  const s = net.connect({ host: '127.0.0.1', port: cfg.port, localAddress: g.address });
  let at = 0;
  s.on('connect', () => {
    at = Date.now();
    st.open++; st.connected++;
    alive.add(s);
    s.mode = g.mode;
    if (g.mode === 'head') s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-0: 1\r\n');
    else if (g.mode === 'body') s.write('POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
  });
  s.on('data', () => undefined);
  s.on('error', () => { if (!at) st.errors++; });
  s.on('close', () => {
    if (at) {
      alive.delete(s);
      const life = Date.now() - at;
      st.open--; st.closed++;
      if (life < 1000) st.closedFast++;
      if (st.minLifeMs < 0 || life < st.minLifeMs) st.minLifeMs = life;
      if (life > st.maxLifeMs) st.maxLifeMs = life;
    }
    if (g.sustain && !stopping) setTimeout(() => open(g), cfg.reconnectMs);
  });
}
for (const g of cfg.groups) for (let i = 0; i < g.count; i++) open(g);
let n = 1;
setInterval(() => {
  n++;
  for (const s of alive) if (!s.destroyed) s.write(s.mode === 'head' ? 'X-Slow-' + n + ': 1\r\n' : s.mode === 'body' ? ' ' : '');
}, cfg.trickleMs);
// GET /healthz from 127.0.0.1 every cfg.probeEveryMs while probing (an outside client, e.g. a load balancer).
const http = require('node:http');
const probes = [];
let probing = false;
function probe() {
  if (!probing) return;
  const started = Date.now();
  let done = false;
  const finish = (r) => { if (done) return; done = true; probes.push(Object.assign({ ms: Date.now() - started }, r)); setTimeout(probe, cfg.probeEveryMs); };
  const req = http.request({ host: '127.0.0.1', port: cfg.port, path: '/healthz', agent: false }, (res) => {
    res.resume();
    res.on('end', () => finish({ status: res.statusCode, error: null }));
    res.on('error', (e) => finish({ status: null, error: e.code || e.message }));
  });
  req.setTimeout(cfg.probeTimeoutMs, () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'TIMEOUT' })));
  req.on('error', (e) => finish({ status: null, error: e.code || e.message }));
  req.end();
}
setInterval(() => process.stdout.write('STATS ' + JSON.stringify({ stats, probes }) + '\n'), 100);
let input = '';
process.stdin.on('data', (d) => {
  input += d.toString();
  const lines = input.split('\n');
  input = lines.pop();
  for (const l of lines) {
    if (l === 'probe on' && !probing) { probing = true; probe(); }
    if (l === 'probe off') probing = false;
  }
});
process.stdin.on('end', () => { stopping = true; probing = false; for (const s of alive) s.destroy(); process.exit(0); });
process.stdin.resume();
`;

/** A running flood: its latest stats per source address. */
class Flood {
  private latest: Record<string, FloodStats> = {};
  /** Every /healthz probe the child made so far, in order. */
  probes: Probe[] = [];
  private buffered = '';

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buffered += d.toString('utf8');
      const lines = this.buffered.split('\n');
      this.buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('STATS ')) continue;
        const report = JSON.parse(line.slice(6)) as { stats: Record<string, FloodStats>; probes: Probe[] };
        this.latest = report.stats;
        this.probes = report.probes;
      }
    });
  }

  /** Start a flood against `port` on 127.0.0.1. */
  static start(port: number, groups: FloodGroup[], options: { trickleMs?: number; reconnectMs?: number } = {}): Flood {
    const cfg = { port, groups, trickleMs: options.trickleMs ?? 1000, reconnectMs: options.reconnectMs ?? 500, probeEveryMs: 200, probeTimeoutMs: 2000 };
    const child = spawn(process.execPath, ['-e', FLOOD_SCRIPT, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
    return new Flood(child);
  }

  stats(address: string): FloodStats {
    const s = this.latest[address];
    if (!s) throw new Error(`no flood stats yet for ${address}`);
    return { ...s };
  }

  /** Wait until the stats for `address` satisfy `pred` (or time out with what was seen). */
  async until(address: string, pred: (s: FloodStats) => boolean, timeoutMs: number): Promise<FloodStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.latest[address];
      if (s && pred(s)) return { ...s };
      if (Date.now() > deadline) throw new Error(`flood from ${address}: condition not met within ${timeoutMs} ms; last stats ${JSON.stringify(s ?? null)}`);
      await sleep(50);
    }
  }

  /** Start or stop the child's /healthz probes (from 127.0.0.1, every 200 ms, 2 s timeout each). */
  probing(on: boolean): void {
    this.child.stdin!.write(on ? 'probe on\n' : 'probe off\n');
  }

  /** Stop: the child closes its sockets and exits. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

/** One GET /healthz: status and time taken, or the error. */
interface Probe {
  status: number | null;
  ms: number;
  error: string | null;
}

function probeHealthz(url: string, options: { localAddress?: string; timeoutMs?: number } = {}): Promise<Probe> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (p: Omit<Probe, 'ms'>): void => {
      if (done) return;
      done = true;
      resolve({ ...p, ms: Date.now() - started });
    };
    const req = request(new URL('/healthz', url), { agent: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (res) => {
      res.resume();
      res.on('end', () => finish({ status: res.statusCode ?? 0, error: null }));
      res.on('error', (err) => finish({ status: null, error: err.message }));
    });
    req.setTimeout(options.timeoutMs ?? 2000, () => {
      req.destroy(new Error('no answer in time'));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ status: null, error: err.code ?? err.message }));
    req.end();
  });
}

/** Soft and hard open-file limits of this process (`/proc/self/limits`). */
function fileLimits(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(line ?? '');
  if (!m) throw new Error('cannot read the open-file limit from /proc/self/limits');
  const n = (s: string): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

function setSoftFileLimit(soft: number, hard: number): void {
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard === Number.MAX_SAFE_INTEGER ? 'unlimited' : hard}`]);
}

/** Files this process holds now; the limit itself when it cannot even list them (EMFILE). */
function openFiles(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EMFILE') return FD_LIMIT;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// The bot
// ---------------------------------------------------------------------------

const masterKey = randomBytes(32).toString('base64');
const keys = deriveKeys(parseMasterKey(masterKey, 'SMARTCARD_MASTER_KEY'));
const logger = createLogger({ name: 'conn-bot', level: process.env['CONN_LOG'] === '1' ? 'info' : 'silent' });
let root = '';
const running: BotApp[] = [];

async function bot(name: string, env: Record<string, string>): Promise<BotApp> {
  const config = loadConfig({ SMARTCARD_DATA_DIR: path.join(root, name), SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', COMPANION_COMMAND_TIMEOUT_MS: '3000', ...env });
  const app = await startBot(config, { logger });
  running.push(app);
  return app;
}

/** A registered person with a paired device, and a companion connected on the link. */
async function connectedCompanion(app: BotApp): Promise<{ deviceId: string; companion: RawCompanion }> {
  const added = await addPerson(app.storage, keys, {
    teamsUserId: randomUUID(),
    displayName: 'Connie Link',
    email: `connie.${randomBytes(3).toString('hex')}@nhs.net`,
    cardId: randomBytes(16).toString('hex'),
    puk: '73829164',
    answers: ['q01', 'q02', 'q03', 'q04'].map((questionId, i) => ({ questionId, answer: `Answer ${i} ${randomBytes(3).toString('hex')}` })),
  });
  const deviceId = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  const inserted = await app.storage.devices.insert({
    id: deviceId,
    personId: added.personId,
    workstation: 'WS-CONN',
    credentialHash: credentialHash(keys.credentialHashKey, secret),
    createdAt: new Date().toISOString(),
    lastSeenAt: null,
    revokedAt: null,
    connectedInstance: null,
    version: 1,
  });
  expect(inserted.status).toBe('created');
  const companion = await RawCompanion.connect(app, `Bearer ${deviceId}.${secret}`);
  return { deviceId, companion };
}

/** One command round trip to the companion through the bot: ms taken, or the error. */
async function commandRoundTrip(app: BotApp, deviceId: string): Promise<{ ok: boolean; ms: number; error?: string }> {
  const started = Date.now();
  try {
    const reply = await app.link.sendCommand(deviceId, { kind: 'card.read_status' }, 3000);
    return { ok: reply.kind === 'card.status', ms: Date.now() - started };
  } catch (err) {
    return { ok: false, ms: Date.now() - started, error: err instanceof Error ? err.message : String(err) };
  }
}

/** A WebSocket ping from the companion, answered by the bot's pong: ms taken, or -1. */
function wsPing(companion: RawCompanion, timeoutMs = 2000): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(-1), timeoutMs);
    companion.ws.once('pong', () => {
      clearTimeout(t);
      resolve(Date.now() - started);
    });
    try {
      companion.ws.ping();
    } catch {
      clearTimeout(t);
      resolve(-1);
    }
  });
}

describe('connections are bounded (issue #10, finding 4)', () => {
  const floods: Flood[] = [];
  let limits: { soft: number; hard: number } | null = null;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'connection-limits-'));
  });

  afterEach(async () => {
    for (const f of floods.splice(0)) await f.stop();
    for (const app of running.splice(0)) await app.close().catch(() => undefined);
    if (limits) setSoftFileLimit(limits.soft, limits.hard);
    limits = null;
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a slowloris from four addresses past the open-file limit leaves /healthz and an open companion link serving', async () => {
    const flooders = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
    // The process's file limit as a deployment would set it (ulimit -n), before the bot starts.
    limits = fileLimits();
    setSoftFileLimit(FD_LIMIT, limits.hard);
    expect(fileLimits().soft).toBe(FD_LIMIT);
    // Long header timeout and no per-address cap to speak of: here the overall cap alone must keep the bot up.
    const app = await bot('exhaust', { HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '60000', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '1000' });
    const { deviceId, companion } = await connectedCompanion(app);
    expect((await commandRoundTrip(app, deviceId)).ok).toBe(true);
    const port = Number(new URL(app.url).port);
    // 4 x 300 = 1,200 half-open connections wanted, more than this process can hold files for.
    const flood = Flood.start(port, flooders.map((address) => ({ address, count: 300, mode: 'head', sustain: true })), { trickleMs: 1000, reconnectMs: 500 });
    floods.push(flood);
    const connected = async (): Promise<number> => flooders.reduce((n, a) => n + flood.stats(a).connected, 0);
    await flood.until(flooders[0]!, (s) => s.connected > 0, 10_000);
    const deadline = Date.now() + 10_000;
    while ((await connected()) < 1000 && Date.now() < deadline) await sleep(100);

    const local: Probe[] = [];
    const commands: Array<{ ok: boolean; ms: number; error?: string }> = [];
    const pings: number[] = [];
    let maxOpenFiles = 0;
    const probesBefore = flood.probes.length;
    flood.probing(true);
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      maxOpenFiles = Math.max(maxOpenFiles, openFiles());
      const [p, c, w] = await Promise.all([probeHealthz(app.url, { timeoutMs: 2000 }), commandRoundTrip(app, deviceId), wsPing(companion)]);
      local.push(p);
      commands.push(c);
      pings.push(w);
      await sleep(200);
    }
    flood.probing(false);
    await sleep(300);
    const outside = flood.probes.slice(probesBefore);
    const held = flooders.reduce((n, a) => n + flood.stats(a).open, 0);
    const failed = (ps: Probe[]): string[] => ps.filter((p) => p.status !== 200).map((p) => `${p.status ?? p.error} after ${p.ms} ms`);
    const summary = {
      outsideProbes: outside.length,
      outsideHealthzFailed: failed(outside),
      outsideHealthzSlowestMs: Math.max(...outside.map((p) => p.ms)),
      inProcessProbes: local.length,
      inProcessHealthzFailed: failed(local),
      commands: commands.length,
      commandsFailed: commands.filter((c) => !c.ok).map((c) => c.error ?? 'wrong reply'),
      pingsLost: pings.filter((w) => w < 0).length,
      floodConnected: await connected(),
      floodHeldNow: held,
      maxOpenFiles,
    };
    console.log('slowloris past the file limit:', JSON.stringify(summary));
    expect(summary.floodConnected).toBeGreaterThanOrEqual(1000); // the flood did reach the bot
    expect(summary.outsideProbes).toBeGreaterThanOrEqual(10);
    expect(summary.outsideHealthzFailed).toEqual([]);
    expect(summary.outsideHealthzSlowestMs).toBeLessThan(1500);
    expect(summary.inProcessHealthzFailed).toEqual([]);
    expect(summary.commandsFailed).toEqual([]);
    expect(summary.pingsLost).toBe(0);
    // The bot kept its open files (read from /proc, what the kernel counts) below its limit, with headroom.
    // `held` is the flooder's own count: it lags the bot's closes on a loaded machine, so it is only reported.
    expect(maxOpenFiles).toBeLessThan(FD_LIMIT - 32);
    expect(companion.closeCode).toBeNull();
  });

  it('the per-address cap refuses the flood address at once, and not another address', async () => {
    const app = await bot('per-address', { HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '60000', HTTP_MAX_CONNECTIONS_PER_ADDRESS: '50' });
    const { deviceId, companion } = await connectedCompanion(app);
    const port = Number(new URL(app.url).port);
    const flood = Flood.start(port, [
      { address: '127.0.0.6', count: 120, mode: 'silent', sustain: false },
      { address: '127.0.0.7', count: 30, mode: 'head', sustain: false },
    ]);
    floods.push(flood);
    await flood.until('127.0.0.6', (s) => s.connected === 120, 10_000);
    await flood.until('127.0.0.7', (s) => s.connected === 30, 10_000);
    await sleep(1500);
    const flooder = flood.stats('127.0.0.6');
    const other = flood.stats('127.0.0.7');
    console.log('per-address cap:', JSON.stringify({ flooder, other }));
    // Exactly 50 of the 120 from the flood address are held; the 70 over the cap were closed at once.
    expect(flooder.open).toBe(50);
    expect(flooder.closed).toBe(70);
    expect(flooder.closedFast).toBe(70);
    // Another address is not refused: its 30 slow connections are all still open...
    expect(other.open).toBe(30);
    expect(other.closed).toBe(0);
    // ...and a new one from a third address is served, as is the link.
    const p = await probeHealthz(app.url, { localAddress: '127.0.0.8' });
    expect(p.status).toBe(200);
    // A new connection from the flood address is refused (closed before it gets an answer).
    const refused = await probeHealthz(app.url, { localAddress: '127.0.0.6' });
    expect(refused.status).toBeNull();
    expect((await commandRoundTrip(app, deviceId)).ok).toBe(true);
    expect(companion.closeCode).toBeNull();
  });

  it('a slow request head is closed after HTTP_HEADERS_TIMEOUT_MS, and a slow body after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const app = await bot('timeouts', { HTTP_HEADERS_TIMEOUT_MS: '2000', HTTP_REQUEST_TIMEOUT_MS: '4000' });
    const port = Number(new URL(app.url).port);
    // A header line (or a body byte) every 500 ms: never idle, never finished.
    const flood = Flood.start(port, [
      { address: '127.0.0.9', count: 10, mode: 'head', sustain: false },
      { address: '127.0.0.10', count: 10, mode: 'silent', sustain: false },
      { address: '127.0.0.11', count: 10, mode: 'body', sustain: false },
    ], { trickleMs: 500 });
    floods.push(flood);
    const head = await flood.until('127.0.0.9', (s) => s.connected === 10 && s.closed === 10, 8000);
    const silent = await flood.until('127.0.0.10', (s) => s.connected === 10 && s.closed === 10, 8000);
    const body = await flood.until('127.0.0.11', (s) => s.connected === 10 && s.closed === 10, 10_000);
    console.log('timeouts:', JSON.stringify({ head, silent, body }));
    // Closed by the header timeout (2 s, checked every second), not before.
    expect(head.minLifeMs).toBeGreaterThanOrEqual(1900);
    expect(head.maxLifeMs).toBeLessThanOrEqual(4000);
    expect(silent.minLifeMs).toBeGreaterThanOrEqual(1900);
    expect(silent.maxLifeMs).toBeLessThanOrEqual(4000);
    // The body trickles past the header timeout and is closed by the request timeout (4 s).
    expect(body.minLifeMs).toBeGreaterThanOrEqual(3900);
    expect(body.maxLifeMs).toBeLessThanOrEqual(6000);
    expect((await probeHealthz(app.url)).status).toBe(200);
  });
});
