/**
 * A MongoDB-protocol server for integration tests: FerretDB v1.24.2 on
 * PostgreSQL (its multi-writer backend), built, cached and started by
 * `scripts/ferretdb.sh` (which starts the project's PostgreSQL with
 * `scripts/postgres.sh`), or the server named by `MONGODB_URL` (so the same
 * suites run against a real MongoDB).
 *
 *   const mongo = await mongoTestServer();          // gate: run / skip / fail under CI
 *   describe.skipIf(mongo.skip)('...', () => {
 *     const name = mongo.freshDatabaseName('conf'); // one fresh database per use
 *     ...
 *     afterAll(() => mongo.dropCreatedDatabases());
 *   });
 *
 * Tests that must stop and restart the server (outage tests) start their own
 * private FerretDB with {@link startPrivateFerretdb}: never the shared one. It
 * runs on the project's PostgreSQL (started when it is not running, and left
 * running, like the shared FerretDB) with a PostgreSQL database of its own,
 * dropped by `dispose()` or when the test process exits.
 *
 * Under `CI=true` a missing server or binary FAILS the test file; elsewhere the
 * file is skipped with a message saying how to get it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = path.join(REPO_ROOT, 'scripts', 'ferretdb.sh');
const POSTGRES_SCRIPT = path.join(REPO_ROOT, 'scripts', 'postgres.sh');

/** The pinned server. */
export const FERRETDB = { version: 'v1.24.2' } as const;

function isCI(): boolean {
  const v = (process.env['CI'] ?? '').toLowerCase();
  return v === 'true' || v === '1';
}

/** Cached binary path, as `scripts/ferretdb.sh` lays it out (`FERRETDB_BIN_DIR` overrides). */
export function ferretdbBinary(): string {
  const dir = process.env['FERRETDB_BIN_DIR'] ?? path.join(process.env['XDG_CACHE_HOME'] ?? path.join(process.env['HOME'] ?? tmpdir(), '.cache'), 'smartcard-assist', 'bin');
  return path.join(dir, 'ferretdb');
}

async function runScript(command: 'build' | 'start' | 'url', timeoutMs: number): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [SCRIPT, command], { timeout: timeoutMs, maxBuffer: 10 * 1024 * 1024, env: { ...process.env } });
  return stdout.trim();
}

async function goAvailable(): Promise<boolean> {
  try {
    await promisify(execFile)('go', ['version'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Make sure the FerretDB binary is cached, building it when missing (minutes
 * the first time on 2 cores; progress goes to this process's stderr).
 *
 * @returns the binary path
 * @throws Error when it cannot be built (no Go, no module proxy)
 */
export async function ensureFerretdbBinary(): Promise<string> {
  const bin = ferretdbBinary();
  if (!existsSync(bin)) process.stderr.write(`FerretDB ${FERRETDB.version} is not cached at ${bin}: building it now (bash scripts/ferretdb.sh build)\n`);
  await runScript('build', 15 * 60_000);
  return bin;
}

/** A usable server, or why there is none. */
export type MongoTestServer =
  | {
      skip: false;
      /** Base URL (no database in it). */
      url: string;
      /** True when it came from `MONGODB_URL`. */
      external: boolean;
      /** A new database name, recorded for {@link dropCreatedDatabases}. Prefix: letters/digits only. */
      freshDatabaseName(prefix: string): string;
      /** One client shared by a test file (created on first use). */
      client(): Promise<MongoClient>;
      /** Drop every database handed out by `freshDatabaseName`, then close the shared client. */
      dropCreatedDatabases(): Promise<void>;
    }
  | { skip: true; reason: string };

/**
 * Find or start the server the MongoDB suites use.
 *
 * @returns `{ skip: false, url, ... }`, or `{ skip: true }` outside CI when it cannot be had
 * @throws Error under CI when there is no server (the brief: never skip in CI)
 */
export async function mongoTestServer(): Promise<MongoTestServer> {
  let url: string;
  const external = Boolean(process.env['MONGODB_URL']);
  try {
    if (external) {
      url = process.env['MONGODB_URL']!;
    } else {
      if (!existsSync(ferretdbBinary()) && !isCI() && !(await goAvailable())) {
        throw new Error(`FerretDB is not cached at ${ferretdbBinary()} and Go is not installed to build it`);
      }
      if (!existsSync(ferretdbBinary())) await ensureFerretdbBinary();
      url = await runScript('start', 120_000);
    }
    const probe = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
    try {
      await probe.db('admin').command({ ping: 1 });
    } finally {
      await probe.close();
    }
  } catch (err) {
    const reason = `no MongoDB-protocol server: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    if (isCI()) throw new Error(`CI=true and ${reason}. Run \`bash scripts/ferretdb.sh start\` or set MONGODB_URL.`);
    process.stderr.write(`SKIPPING MongoDB suite: ${reason}. Run \`bash scripts/ferretdb.sh start\` (builds FerretDB ${FERRETDB.version}) or set MONGODB_URL.\n`);
    return { skip: true, reason };
  }
  const created: string[] = [];
  let shared: MongoClient | undefined;
  const base = url;
  return {
    skip: false,
    url: base,
    external,
    freshDatabaseName(prefix: string): string {
      const name = `t_${prefix.replace(/[^A-Za-z0-9]/g, '').slice(0, 20)}_${randomBytes(6).toString('hex')}`;
      created.push(name);
      return name;
    },
    async client(): Promise<MongoClient> {
      shared ??= new MongoClient(base, { serverSelectionTimeoutMS: 5000 });
      await shared.connect();
      return shared;
    },
    async dropCreatedDatabases(): Promise<void> {
      const c = shared ?? new MongoClient(base, { serverSelectionTimeoutMS: 5000 });
      try {
        for (const name of created.splice(0)) await c.db(name).dropDatabase();
      } finally {
        await c.close();
        shared = undefined;
      }
    },
  };
}

/** A FerretDB process of one test's own, on a free loopback port and its own data directory. */
export interface PrivateFerretdb {
  readonly port: number;
  /** `mongodb://127.0.0.1:<port>/`. */
  readonly url: string;
  /** Its state directory's `data` folder (FerretDB keeps its state beside it; the data itself is in PostgreSQL). */
  readonly dataDir: string;
  /** The PostgreSQL database it keeps its data in (`sa_private_...`). */
  readonly postgresDatabase: string;
  /** Pid while running, else null. */
  pid(): number | null;
  /** Stop it: SIGTERM (orderly) or SIGKILL (crash). Resolves when the process has exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Start it again on the same port and data; resolves when it answers a ping. */
  start(): Promise<void>;
  /** Stop it, drop its PostgreSQL database and remove its state directory (the end of the test). */
  dispose(): Promise<void>;
}

const privateChildren = new Set<ChildProcess>();
const privateDatabases = new Set<string>();
process.on('exit', () => {
  for (const child of privateChildren) child.kill('SIGKILL');
  // Synchronous: 'exit' handlers cannot wait. DROP ... WITH (FORCE) ends the killed server's sessions.
  for (const name of privateDatabases) spawnSync('bash', [POSTGRES_SCRIPT, 'drop-db', name], { stdio: 'ignore', timeout: 15_000 });
});

async function runPostgresScript(args: string[], timeoutMs: number): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [POSTGRES_SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, env: { ...process.env } });
  return stdout.trim();
}

/**
 * Make sure the project's PostgreSQL runs (installing and initialising it when needed) and
 * create a database for one private FerretDB.
 *
 * @returns the database name and its `postgres://` URL (holds the role's password: never log it)
 */
async function createPrivatePostgresDatabase(port: number): Promise<{ name: string; url: string }> {
  await runPostgresScript(['start'], 600_000);
  const name = `sa_private_${port}_${randomBytes(4).toString('hex')}`;
  const url = await runPostgresScript(['create-db', name], 60_000);
  privateDatabases.add(name);
  return { name, url };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilAnswers(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ferretdb exited during start-up (${child.exitCode ?? child.signalCode})`);
    const probe = new MongoClient(url, { serverSelectionTimeoutMS: 300, connectTimeoutMS: 300 });
    try {
      await probe.db('admin').command({ ping: 1 });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`ferretdb did not answer on ${url} within ${timeoutMs} ms`);
    } finally {
      await probe.close().catch(() => undefined);
    }
    await sleep(100);
  }
}

/**
 * Start a private FerretDB (binary from the cache, built when missing) on the
 * project's PostgreSQL, with a PostgreSQL database of its own. Its log goes to
 * `artifacts/logs/ferretdb-<port>.log`.
 *
 * @returns the running server; call `dispose()` when done (`stop()`/`start()` in between)
 */
export async function startPrivateFerretdb(): Promise<PrivateFerretdb> {
  const bin = await ensureFerretdbBinary();
  const port = await freePort();
  const root = mkdtempSync(path.join(tmpdir(), 'sa-ferretdb-'));
  const dataDir = path.join(root, 'data');
  mkdirSync(dataDir, { recursive: true });
  const postgres = await createPrivatePostgresDatabase(port);
  const logDir = path.join(process.env['ARTIFACTS_DIR'] ? path.resolve(process.env['ARTIFACTS_DIR']) : path.join(REPO_ROOT, 'artifacts'), 'logs');
  mkdirSync(logDir, { recursive: true });
  const url = `mongodb://127.0.0.1:${port}/`;
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const log = createWriteStream(path.join(logDir, `ferretdb-${port}.log`), { flags: 'a' });
    // The PostgreSQL URL holds the role's password: given in the environment, not on the command line.
    const proc = spawn(bin, ['--handler=postgresql', `--state-dir=${root}`, `--listen-addr=127.0.0.1:${port}`, '--debug-addr=-', '--telemetry=disable', '--log-level=WARN'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FERRETDB_POSTGRESQL_URL: postgres.url, FERRETDB_TELEMETRY: 'disable', DO_NOT_TRACK: '1' },
    });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    privateChildren.add(proc);
    proc.once('exit', () => privateChildren.delete(proc));
    child = proc;
    await waitUntilAnswers(url, proc, 30_000);
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await Promise.race([exited, sleep(10_000).then(() => proc.kill('SIGKILL'))]);
    await exited;
  };

  const dispose = async (): Promise<void> => {
    await stop();
    if (privateDatabases.delete(postgres.name)) await runPostgresScript(['drop-db', postgres.name], 60_000).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  };

  await start();
  return {
    port,
    url,
    dataDir,
    postgresDatabase: postgres.name,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? (child.pid ?? null) : null),
    stop,
    start,
    dispose,
  };
}

/**
 * Gate for suites that start their own FerretDB (outage tests): the binary must
 * be cached or buildable, and the project's PostgreSQL must start
 * (`scripts/postgres.sh start`: installs Debian's package when missing).
 *
 * @returns `{ skip: false }`, or `{ skip: true, reason }` outside CI
 * @throws Error under CI when the binary cannot be had
 */
export async function privateFerretdbGate(): Promise<{ skip: false } | { skip: true; reason: string }> {
  try {
    if (!existsSync(ferretdbBinary()) && !isCI() && !(await goAvailable())) {
      throw new Error(`FerretDB is not cached at ${ferretdbBinary()} and Go is not installed to build it`);
    }
    await ensureFerretdbBinary();
    await runPostgresScript(['start'], 600_000);
    return { skip: false };
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    if (isCI()) throw new Error(`CI=true and FerretDB ${FERRETDB.version} cannot be had: ${reason}`);
    process.stderr.write(`SKIPPING FerretDB outage suite: ${reason}. Run \`bash scripts/ferretdb.sh build && bash scripts/postgres.sh start\`.\n`);
    return { skip: true, reason };
  }
}
