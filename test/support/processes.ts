/**
 * Child processes for integration tests: start one (its own process group),
 * keep its output in memory and in `artifacts/logs/<name>.log`, wait for a
 * line or an HTTP answer, and stop it (SIGTERM to the group, then SIGKILL).
 * Every process started here is also killed when the test process exits, so a
 * crashed test leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { artifactPath, REPO_ROOT } from './artifacts';

/** What to start. */
export interface StartProcessOptions {
  /** Short name: used for the log file (`artifacts/logs/<name>.log`) and in error messages. */
  name: string;
  /** Executable, e.g. `npx`, `node`, `bash`. */
  command: string;
  /** Arguments, e.g. `['tsx', 'bot/main.ts']`. */
  args?: string[];
  /** Working directory; default: the repository root. */
  cwd?: string;
  /** Extra environment, merged over `process.env` (a value of `undefined` removes the variable). */
  env?: Record<string, string | undefined>;
  /** Log file path; default `artifacts/logs/<name>.log`. The file is truncated at start. */
  logFile?: string;
  /** Also copy output to this process's stderr (debugging). Default: `DEBUG_PROCESSES=1`. */
  echo?: boolean;
}

/** One running (or finished) child process. */
export interface ManagedProcess {
  readonly name: string;
  /** Process id of the child (also its process group id). */
  readonly pid: number;
  /** Absolute path of the log file. */
  readonly logFile: string;
  /** Everything written so far to stdout and stderr, interleaved, as text. */
  output(): string;
  /** Lines of output so far (without line ends). */
  lines(): string[];
  /** Exit code, `null` while running or when ended by a signal. */
  exitCode(): number | null;
  /** True once the child has exited. */
  hasExited(): boolean;
  /**
   * Wait for an output line matching `pattern` (lines already printed count).
   *
   * @param pattern - regular expression tested against each line
   * @param timeoutMs - milliseconds to wait; default 30 000
   * @returns the match of the first matching line
   * @throws Error when the time runs out or the process exits first (message ends with the output tail)
   */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /**
   * Wait for the process to exit.
   *
   * @param timeoutMs - milliseconds; default 30 000
   * @returns exit code (`null` when ended by a signal)
   * @throws Error on timeout
   */
  waitForExit(timeoutMs?: number): Promise<number | null>;
  /**
   * Stop the process group: SIGTERM, then SIGKILL after `graceMs`.
   *
   * @param graceMs - milliseconds between the two signals; default 5 000
   * @returns exit code (`null` when ended by a signal); resolves at once if already exited
   */
  stop(graceMs?: number): Promise<number | null>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: a test process that ends without afterAll must not leave children behind.
  process.once('exit', () => {
    for (const child of running) {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * Start a child process in its own process group and capture its output.
 *
 * @param options - see {@link StartProcessOptions}
 * @returns a handle; call `stop()` in `afterAll`
 * @throws Error when the executable cannot be spawned (no pid)
 */
export function startProcess(options: StartProcessOptions): ManagedProcess {
  installExitHook();
  const logFile = options.logFile ?? artifactPath('logs', `${options.name}.log`);
  const log: WriteStream = createWriteStream(logFile, { flags: 'w' });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
  const child = spawn(options.command, options.args ?? [], {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) {
    log.end();
    throw new Error(`${options.name}: could not start ${options.command} (${path.basename(options.command)} not found?)`);
  }
  const pid = child.pid;
  running.add(child);
  const echo = options.echo ?? process.env['DEBUG_PROCESSES'] === '1';

  let text = '';
  let partial = '';
  const lines: string[] = [];
  const lineWaiters = new Set<(line: string) => void>();
  let code: number | null = null;
  let exited = false;
  const exitWaiters = new Set<() => void>();

  const onData = (chunk: Buffer): void => {
    const s = chunk.toString('utf8');
    text += s;
    log.write(chunk);
    if (echo) process.stderr.write(`[${options.name}] ${s}`);
    partial += s;
    const parts = partial.split(/\r?\n/);
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const w of [...lineWaiters]) w(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.on('error', (err) => {
    text += `\n[spawn error] ${err.message}\n`;
  });
  child.on('exit', (c) => {
    code = c;
    exited = true;
    running.delete(child);
    if (partial) {
      lines.push(partial);
      for (const w of [...lineWaiters]) w(partial);
      partial = '';
    }
    log.end();
    for (const w of [...exitWaiters]) w();
  });

  const handle: ManagedProcess = {
    name: options.name,
    pid,
    logFile,
    output: () => text,
    lines: () => [...lines],
    exitCode: () => code,
    hasExited: () => exited,
    waitForLine(pattern, timeoutMs = 30_000) {
      for (const line of lines) {
        const m = line.match(pattern);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          lineWaiters.delete(onLine);
          exitWaiters.delete(onExit);
        };
        const onLine = (line: string): void => {
          const m = line.match(pattern);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const onExit = (): void => {
          // Lines flushed at exit have been offered to onLine already.
          cleanup();
          reject(new Error(`${options.name} exited (code ${String(code)}) before printing ${String(pattern)}. Output tail:\n${tail(text)}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${options.name}: no line matching ${String(pattern)} within ${timeoutMs} ms. Output tail:\n${tail(text)}`));
        }, timeoutMs);
        lineWaiters.add(onLine);
        if (exited) onExit();
        else exitWaiters.add(onExit);
      });
    },
    waitForExit(timeoutMs = 30_000) {
      if (exited) return Promise.resolve(code);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          exitWaiters.delete(done);
          reject(new Error(`${options.name} (pid ${pid}) still running after ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          resolve(code);
        };
        exitWaiters.add(done);
      });
    },
    async stop(graceMs = 5_000) {
      if (exited) return code;
      const signal = (sig: NodeJS.Signals): void => {
        try {
          process.kill(-pid, sig);
        } catch {
          try {
            child.kill(sig);
          } catch {
            // already gone
          }
        }
      };
      signal('SIGTERM');
      try {
        return await handle.waitForExit(graceMs);
      } catch {
        signal('SIGKILL');
        return handle.waitForExit(5_000);
      }
    },
  };
  return handle;
}

/**
 * Stop several processes at once (e.g. in `afterAll`), ignoring ones that were never started.
 *
 * @param processes - handles, `undefined` entries allowed
 */
export async function stopAll(...processes: Array<ManagedProcess | undefined | null>): Promise<void> {
  await Promise.all(processes.map((p) => (p ? p.stop().catch(() => null) : null)));
}

/**
 * Ask the kernel for a free TCP port on 127.0.0.1.
 *
 * NOTE: the port is free when returned; another process could take it before you bind it.
 *
 * @returns port number (1024-65535)
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Options for {@link waitForHttp}. */
export interface WaitForHttpOptions {
  /** Total milliseconds to wait; default 30 000. */
  timeoutMs?: number;
  /** Milliseconds between tries; default 100. */
  intervalMs?: number;
  /** Accept this status only; default any status below 500. */
  status?: number;
  /** HTTP method; default GET. */
  method?: string;
  /** Fail early (with its output) if this process exits while waiting. */
  process?: ManagedProcess;
}

/**
 * Poll a URL until it answers (loopback only).
 *
 * @param url - e.g. `http://127.0.0.1:3978/healthz`
 * @param options - see {@link WaitForHttpOptions}
 * @returns the first accepted response's status and body text
 * @throws Error on timeout, or when `options.process` exits first
 */
export async function waitForHttp(url: string, options: WaitForHttpOptions = {}): Promise<{ status: number; body: string }> {
  const { timeoutMs = 30_000, intervalMs = 100 } = options;
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) throw new Error(`waitForHttp: only loopback URLs are allowed, got ${host}`);
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (options.process?.hasExited()) {
      throw new Error(`${options.process.name} exited (code ${String(options.process.exitCode())}) while waiting for ${url}. Output tail:\n${tail(options.process.output())}`);
    }
    try {
      const res = await fetch(url, { method: options.method ?? 'GET', signal: AbortSignal.timeout(Math.max(500, Math.min(5_000, deadline - Date.now()))) });
      const body = await res.text();
      if (options.status === undefined ? res.status < 500 : res.status === options.status) return { status: res.status, body };
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (last: ${last})${options.process ? `. ${options.process.name} output tail:\n${tail(options.process.output())}` : ''}`);
}
