/**
 * Test-side handle on the adapter driver process (see `graph-adapter.driver.ts`): starts it with the test CA in
 * `NODE_EXTRA_CA_CERTS`, sends it requests, and keeps everything it printed (stdout = pino lines, stderr).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import type { MailMessage } from '../../../bot/mail/mail.port';
import type { DriverRequest, SerializedError, Settled } from './graph-adapter.driver';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const DRIVER = resolve(here, 'graph-adapter.driver.ts');

type Pending = { resolve: (r: Settled) => void; reject: (e: Error) => void };

/** A settled call that failed, with the adapter's error as JSON. */
export function failed(r: Settled): SerializedError {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value)}`);
  return r.error;
}

export class GraphAdapterDriver {
  /** Everything the driver wrote to stdout (pino JSON lines) and stderr. */
  stdout = '';
  stderr = '';
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    child.on('message', (m: { id: number } & Settled) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      const { id: _id, ...settled } = m;
      p.resolve(settled as Settled);
    });
    // 'close' does not fire here after an IPC disconnect, so wait for the exit and the end of both pipes.
    const ended = (stream: NodeJS.ReadableStream) => new Promise<void>((res) => stream.once('end', () => res()));
    const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    this.exited = Promise.all([exit, ended(child.stdout!), ended(child.stderr!)]).then(([code]) => {
      for (const p of this.pending.values()) p.reject(new Error(`driver exited (${code}); stderr: ${this.stderr.slice(-2000)}`));
      this.pending.clear();
    });
  }

  /**
   * Start the driver.
   *
   * @param caCertPath - the test CA's PEM, given as NODE_EXTRA_CA_CERTS
   */
  static async start(caCertPath: string): Promise<GraphAdapterDriver> {
    // A clean environment: no proxy variables, no Azure settings from the host, only what the adapter needs.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      NODE_EXTRA_CA_CERTS: caCertPath,
      NO_PROXY: '127.0.0.1,localhost',
    };
    const child = spawn(process.execPath, ['--import', 'tsx', DRIVER], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const driver = new GraphAdapterDriver(child);
    await new Promise<void>((resolveReady, reject) => {
      driver.pending.set(0, { resolve: () => resolveReady(), reject });
      setTimeout(() => reject(new Error(`driver did not start; stderr: ${driver.stderr}`)), 30_000).unref();
    });
    return driver;
  }

  private call(req: Omit<DriverRequest, 'id'>): Promise<Settled> {
    const id = this.nextId++;
    return new Promise((resolveCall, reject) => {
      this.pending.set(id, { resolve: resolveCall, reject });
      this.child.send({ ...req, id });
    });
  }

  /** Create an adapter from environment variables; throws the configuration error text when refused. */
  async create(env: Record<string, string>, options?: { backoffBaseMs?: number }): Promise<string> {
    const r = await this.call({ op: 'create', env, ...(options ? { options } : {}) } as Omit<DriverRequest, 'id'>);
    if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code, meta: r.error.meta });
    return (r.value as { handle: string }).handle;
  }

  /** Like {@link create} but returns the refusal instead of throwing. */
  async tryCreate(env: Record<string, string>): Promise<Settled> {
    return this.call({ op: 'create', env } as Omit<DriverRequest, 'id'>);
  }

  verify(handle: string): Promise<Settled> {
    return this.call({ op: 'verify', handle } as Omit<DriverRequest, 'id'>);
  }

  send(handle: string, message: MailMessage): Promise<Settled> {
    return this.call({ op: 'send', handle, message } as Omit<DriverRequest, 'id'>);
  }

  /** Create a Graph directory adapter from environment variables (DIRECTORY=graph); throws the refusal text. */
  async createDirectory(env: Record<string, string>): Promise<string> {
    const r = await this.call({ op: 'createDirectory', env } as Omit<DriverRequest, 'id'>);
    if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code, meta: r.error.meta });
    return (r.value as { handle: string }).handle;
  }

  /** `lookup(aadObjectId)` on a directory adapter made by {@link createDirectory}. */
  lookup(handle: string, aadObjectId: string): Promise<Settled> {
    return this.call({ op: 'lookup', handle, aadObjectId } as Omit<DriverRequest, 'id'>);
  }

  async sendAll(handle: string, messages: MailMessage[]): Promise<Settled[]> {
    const r = await this.call({ op: 'sendAll', handle, messages } as Omit<DriverRequest, 'id'>);
    if (!r.ok) throw new Error(r.error.message);
    return r.value as Settled[];
  }

  /** Parsed pino lines so far (lines that are not JSON are skipped). */
  logLines(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.trim().startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  /** Wait until a log line matches (stdout and IPC are separate pipes). */
  async waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logLines().find(match);
      if (line) return line;
      if (Date.now() > deadline) throw new Error('no matching log line');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stop the driver and wait until its output is complete. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.disconnect();
    await this.exited;
  }
}
