/**
 * Pairing client against a local HTTP server that speaks the bot's pairing
 * contract (RFC 8628 pattern: `POST /companion/pair/start`, `POST /companion/pair/poll`,
 * JSON bodies, pending answers on HTTP 400 as RFC 8628 3.5 does).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import type { PairPollResponse, PairStartResponse } from '../../protocol/companion-link.protocol';
import { PairingClient, type PairingCode } from './pairing.client';

const DEVICE_ID = '7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11';
const CREDENTIAL = `${DEVICE_ID}.${'s'.repeat(43)}`;

interface Seen {
  path: string;
  body: unknown;
  at: number;
}

type Answer = { status: number; body: unknown } | 'not-json';

/** A pairing server that plays scripted answers to start and poll. */
class PairServer {
  seen: Seen[] = [];
  private server: Server | null = null;
  constructor(private readonly script: { start: Answer[]; poll: Answer[] }) {}

  async start(): Promise<URL> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return new URL(`http://127.0.0.1:${(this.server.address() as AddressInfo).port}`);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = req.url ?? '';
    this.seen.push({ path, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'), at: Date.now() });
    const queue = path.endsWith('/start') ? this.script.start : this.script.poll;
    const answer = queue.length > 1 ? queue.shift()! : queue[0];
    if (req.method !== 'POST' || req.headers['content-type'] !== 'application/json' || !answer) {
      res.writeHead(404).end();
      return;
    }
    if (answer === 'not-json') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
  }
}

function startBody(n: number, extra: Partial<PairStartResponse> = {}): { status: number; body: PairStartResponse } {
  return { status: 200, body: { deviceCode: `device-code-${n}-${'d'.repeat(40)}`, userCode: `ABC${n}-XY2Z`, expiresIn: 600, interval: 1, ...extra } };
}
const poll = (body: PairPollResponse, status = 200): Answer => ({ status, body });
const approved = poll({ status: 'approved', deviceId: DEVICE_ID, credential: CREDENTIAL, personName: 'Alex Wilber' });

function captureLogs(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger({ name: 'pairing-spec', level: 'trace', destination }), text: () => lines.join('') };
}

let server: PairServer | null = null;
afterEach(async () => {
  await server?.stop();
  server = null;
});

const SECOND_MS = 40;

async function run(script: { start: Answer[]; poll: Answer[] }, signal = new AbortController().signal) {
  server = new PairServer(script);
  const botUrl = await server.start();
  const codes: PairingCode[] = [];
  const logs = captureLogs();
  const client = new PairingClient({ botUrl, workstation: 'WS-01', logger: logs.logger, onCode: (c) => codes.push(c), secondMs: SECOND_MS, retry: { initialMs: 20, maxMs: 100 } });
  const result = client.pair(signal);
  return { result, codes, logs, server };
}

describe('PairingClient', () => {
  it('shows the code, polls at the interval, slows down when asked, and returns the credential', async () => {
    const { result, codes, logs, server: s } = await run({
      start: [startBody(1)],
      poll: [poll({ status: 'authorization_pending' }, 400), poll({ status: 'slow_down', interval: 4 }, 400), poll({ status: 'authorization_pending' }, 400), approved],
    });
    await expect(result).resolves.toEqual({ deviceId: DEVICE_ID, credential: CREDENTIAL, personName: 'Alex Wilber' });
    expect(codes.map((c) => c.userCode)).toEqual(['ABC1-XY2Z']);
    expect(s.seen[0]).toMatchObject({ path: '/companion/pair/start', body: { workstation: 'WS-01' } });
    const polls = s.seen.filter((x) => x.path === '/companion/pair/poll');
    expect(polls).toHaveLength(4);
    for (const p of polls) expect(p.body).toEqual({ deviceCode: `device-code-1-${'d'.repeat(40)}` });
    const gaps = polls.slice(1).map((p, i) => p.at - polls[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(1 * SECOND_MS - 5);
    // After slow_down the interval is 4 protocol seconds.
    expect(gaps[1]).toBeGreaterThanOrEqual(4 * SECOND_MS - 5);
    expect(gaps[2]).toBeGreaterThanOrEqual(4 * SECOND_MS - 5);
    // Secrets never reach the log.
    expect(logs.text()).not.toContain(CREDENTIAL);
    expect(logs.text()).not.toContain('device-code-1');
  });

  it('starts a new code when the bot says the code expired, and when it was denied', async () => {
    const { result, codes, server: s } = await run({
      start: [startBody(1), startBody(2), startBody(3)],
      poll: [poll({ status: 'expired_token' }, 400), poll({ status: 'access_denied' }, 400), approved],
    });
    await expect(result).resolves.toMatchObject({ deviceId: DEVICE_ID });
    expect(codes.map((c) => c.userCode)).toEqual(['ABC1-XY2Z', 'ABC2-XY2Z', 'ABC3-XY2Z']);
    const polls = s.seen.filter((x) => x.path === '/companion/pair/poll').map((p) => (p.body as { deviceCode: string }).deviceCode.slice(0, 13));
    expect(polls).toEqual(['device-code-1', 'device-code-2', 'device-code-3']);
  });

  it('starts a new code when its own clock says the code expired', async () => {
    const { result, codes } = await run({
      start: [startBody(1, { expiresIn: 3 }), startBody(2)],
      poll: [poll({ status: 'authorization_pending' }, 400), poll({ status: 'authorization_pending' }, 400), approved],
    });
    await expect(result).resolves.toMatchObject({ personName: 'Alex Wilber' });
    expect(codes.map((c) => c.userCode)).toEqual(['ABC1-XY2Z', 'ABC2-XY2Z']);
    expect(codes[0]!.expiresAt.getTime()).toBeLessThan(codes[1]!.expiresAt.getTime());
  });

  it('retries with backoff when the bot is down or answers outside the contract', async () => {
    const { result, codes, server: s } = await run({
      start: ['not-json', { status: 200, body: { deviceCode: 'short' } }, startBody(1)],
      poll: ['not-json', { status: 200, body: { status: 'approved' } }, approved],
    });
    await expect(result).resolves.toMatchObject({ deviceId: DEVICE_ID });
    expect(codes).toHaveLength(1);
    expect(s.seen.filter((x) => x.path.endsWith('/start'))).toHaveLength(3);
    expect(s.seen.filter((x) => x.path.endsWith('/poll'))).toHaveLength(3);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    const { result } = await run({ start: [startBody(1)], poll: [poll({ status: 'authorization_pending' }, 400)] }, ac.signal);
    setTimeout(() => ac.abort(), 150);
    await expect(result).rejects.toMatchObject({ name: 'AbortError' });
  });
});
