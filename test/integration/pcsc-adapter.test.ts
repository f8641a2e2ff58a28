/**
 * The PC/SC reader adapter itself, against real pcscd + vpcd: two readers at
 * once, 61xx GET RESPONSE chaining through PC/SC, pcscd absent (a client
 * pointed at a socket where no pcscd listens), the process exiting after
 * close(), and recovery when pcscd restarts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CARD_ERROR_CODE, type CardError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import { waitForCardState, waitForReaderEvent } from '../../companion/piv/reader-events';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import { REPO_ROOT } from '../support/artifacts';
import { ensurePcscd, insertVirtualCard, requireService, VPCD_READER, VPCD_READER_2 } from '../support/pcscd';
import { isCI } from '../support/services';

const execFileAsync = promisify(execFile);
const pcscd = ensurePcscd();
const run = requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);
const EVENT_TIMEOUT_MS = 5000;

let scratch: string;
const children = new Set<ChildProcess>();

/** Kill a child's whole process group (it runs detached, in its own group). */
function killGroup(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Run a TypeScript snippet in a child process; resolves with its exit code, output and run time. */
function runChild(source: string, env: Record<string, string> = {}, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; timedOut: boolean }> {
  const file = path.join(scratch, `child-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(file, source);
  const started = Date.now();
  return new Promise((resolve) => {
    // One node process (tsx as a loader, not the tsx CLI which forks), in its own process group.
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

const imports = (names: string[]): string =>
  names
    .map((n) => {
      const [what, from] = n.split(' from ');
      return `import ${what} from ${JSON.stringify(path.join(REPO_ROOT, from!))};`;
    })
    .join('\n');

describe.skipIf(!run)('PC/SC reader adapter over pcscd + vpcd', () => {
  beforeAll(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'pcsc-adapter-test-'));
  });
  afterAll(() => {
    for (const child of children) killGroup(child);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('serves two readers at once and reassembles a CHUID sent in 61xx chunks through PC/SC', async () => {
    const adapter = await PcscReaderAdapter.open();
    const first = new VpcdClient({ card: new VirtualPivCard({ cardId: '11'.repeat(16), pin: '123456', puk: '12345678' }), port: VPCD_READER.port });
    const chunked = new VirtualPivCard({ cardId: '22'.repeat(16), pin: '654321', puk: '87654321', responseChunkSize: 16 });
    const second = new VpcdClient({ card: chunked, port: VPCD_READER_2.port });
    try {
      await insertVirtualCard(adapter, first, VPCD_READER.name, EVENT_TIMEOUT_MS);
      await insertVirtualCard(adapter, second, VPCD_READER_2.name, EVENT_TIMEOUT_MS);
      expect(adapter.readers()).toEqual(expect.arrayContaining([VPCD_READER.name, VPCD_READER_2.name]));
      const a = await PivSession.open(await adapter.connect(VPCD_READER.name));
      const b = await PivSession.open(await adapter.connect(VPCD_READER_2.name));
      const before = chunked.commandsProcessed;
      expect(await b.readCardId()).toBe('22'.repeat(16));
      // GET DATA + at least 3 GET RESPONSE for a ~61-byte CHUID in 16-byte chunks.
      expect(chunked.commandsProcessed - before).toBeGreaterThanOrEqual(4);
      expect(await a.readCardId()).toBe('11'.repeat(16));
      // A second connection to a reader already open in this process is refused, not silently shared.
      expect(((await adapter.connect(VPCD_READER.name).catch((e: unknown) => e)) as CardError).code).toBe(CARD_ERROR_CODE.IN_USE);
      await a.connection.close('reset');
      await b.connection.close('reset');
    } finally {
      await first.disconnect();
      await second.disconnect();
      await adapter.close();
    }
  });

  it('pcscd not running: open() fails with CARD.READER_UNAVAILABLE and a message naming pcscd', async () => {
    const result = await runChild(
      `${imports(['{ PcscReaderAdapter } from companion/pcsc/pcsc-reader.adapter'])}
try { await PcscReaderAdapter.open(); console.log('OPENED'); }
catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, pcscCode: e.meta?.pcscCode })); }`,
      // pcsc-lite clients find pcscd through this socket path: point it where nothing listens.
      { PCSCLITE_CSOCK_NAME: path.join(scratch, 'no-pcscd-here.comm') },
    );
    expect(result.timedOut).toBe(false);
    const line = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { code: string; message: string; pcscCode: string };
    expect(line.code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);
    expect(line.message).toMatch(/pcscd\) is not running/);
    expect(line.pcscCode).toBe('0x8010001d');
  });

  it('waitForService: without pcscd the adapter opens, connect() says READER_UNAVAILABLE, and close() lets the process exit', async () => {
    const result = await runChild(
      `${imports(['{ PcscReaderAdapter } from companion/pcsc/pcsc-reader.adapter'])}
const adapter = await PcscReaderAdapter.open({ waitForService: true, retryDelayMs: 100 });
await new Promise((r) => setTimeout(r, 350));
const error = await adapter.connect('Virtual PCD 00 00').catch((e) => e);
console.log(JSON.stringify({ available: adapter.serviceAvailable, code: error.code }));
await adapter.close();`,
      { PCSCLITE_CSOCK_NAME: path.join(scratch, 'no-pcscd-here.comm') },
      15_000,
    );
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toEqual({ available: false, code: CARD_ERROR_CODE.READER_UNAVAILABLE });
  });

  it('close() releases readers and the context: a process that used a card exits by itself', async () => {
    const result = await runChild(
      `${imports([
        '{ PcscReaderAdapter } from companion/pcsc/pcsc-reader.adapter',
        '{ PivSession } from companion/piv/piv.session',
        '{ insertVirtualCard } from test/support/pcscd',
        '{ VirtualPivCard } from companion/virtual-card/virtual-piv-card',
        '{ VpcdClient } from companion/virtual-card/vpcd-client',
      ])}
const adapter = await PcscReaderAdapter.open();
const client = new VpcdClient({ card: new VirtualPivCard({ cardId: '33'.repeat(16), pin: '123456', puk: '12345678' }), port: ${VPCD_READER_2.port} });
await insertVirtualCard(adapter, client, ${JSON.stringify(VPCD_READER_2.name)}, 5000);
const piv = await PivSession.open(await adapter.connect(${JSON.stringify(VPCD_READER_2.name)}));
console.log('ID', await piv.readCardId());
// Leave the connection open on purpose: close() must release it too.
await client.disconnect();
await adapter.close();
console.log('CLOSED', Date.now());`,
      {},
      20_000,
    );
    expect(result.stdout).toContain(`ID ${'33'.repeat(16)}`);
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(0);
    const closedAt = Number(/CLOSED (\d+)/.exec(result.stdout)?.[1]);
    // The process ended promptly after close(): nothing (reader thread, timer, socket) kept it alive.
    expect(Date.now() - closedAt).toBeLessThan(5000);
  });

  const restartAllowed = isCI() || process.env['PCSCD_RESTART_TEST'] === '1';
  it.skipIf(!restartAllowed)('recovers when pcscd restarts: readers come back on a new context and the card answers', async () => {
    const adapter = await PcscReaderAdapter.open({ retryDelayMs: 200 });
    const card = new VirtualPivCard({ cardId: '44'.repeat(16), pin: '123456', puk: '12345678' });
    const client = new VpcdClient({ card, port: VPCD_READER.port, reconnectDelayMs: 200 });
    try {
      await insertVirtualCard(adapter, client, VPCD_READER.name, EVENT_TIMEOUT_MS);
      const conn = await adapter.connect(VPCD_READER.name);
      const readerGone = waitForReaderEvent(adapter, (e) => e.type === 'reader.removed' && e.reader === VPCD_READER.name, 15_000);
      await execFileAsync('bash', [path.join(REPO_ROOT, 'scripts', 'pcscd.sh'), 'stop']);
      await readerGone;
      expect(adapter.serviceAvailable).toBe(false);
      expect(((await conn.transmit(Buffer.from('00200080', 'hex')).catch((e: unknown) => e)) as CardError).code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);
      expect(((await adapter.connect(VPCD_READER.name).catch((e: unknown) => e)) as CardError).code).toBe(CARD_ERROR_CODE.READER_UNAVAILABLE);
      await execFileAsync('bash', [path.join(REPO_ROOT, 'scripts', 'pcscd.sh'), 'start']);
      await waitForCardState(adapter, VPCD_READER.name, 'present', 15_000);
      const piv = await PivSession.open(await adapter.connect(VPCD_READER.name));
      expect(await piv.readCardId()).toBe('44'.repeat(16));
      await piv.connection.close('reset');
    } finally {
      await client.disconnect();
      await adapter.close();
      await execFileAsync('bash', [path.join(REPO_ROOT, 'scripts', 'pcscd.sh'), 'start']);
    }
  });
});
