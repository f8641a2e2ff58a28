/**
 * Section 4 of `npm run bench` (issues #4 and #8): the same journey-step turns
 * as section 1, sent over HTTP to bot instances that each run as their own
 * process (`bot/main.ts` under tsx, as deployed), and the companion round trip
 * across instances.
 *
 * - Embedded baseline: one bot process on its SQLite file.
 * - MongoDB, 1 instance: one bot process with STORAGE=mongodb.
 * - MongoDB, 2 instances: two bot processes on one database; each
 *   conversation's turns alternate between them (a load balancer without
 *   affinity), so every turn reads what the other process just wrote.
 * - Companion round trip: a companion connected to B; the `unlock.start` turn
 *   (which asks the companion for `card.read_status` and waits for the reply)
 *   issued on B, then on A (A -> command bus -> B -> companion -> B -> bus -> A).
 *   The difference is what routing across instances adds.
 *
 * Server: `MONGODB_URL` when set (a fresh database, dropped afterwards), else a
 * private FerretDB v1.24.2 on the project's PostgreSQL (its multi-writer
 * backend; `scripts/ferretdb.sh build`, `scripts/postgres.sh`), dropped
 * afterwards. Neither: the section is skipped, never failed.
 *
 * NOTE: on a 2-core machine the load client, every bot process, FerretDB and
 * PostgreSQL share the same two cores. The 2-instance/1-instance ratio then
 * shows what the shared store and the routing cost, not what a second machine
 * would add (bench/README.md).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { addPerson } from '../bot/admin.cli';
import { PairingService } from '../bot/pairing/pairing.service';
import { createStoreRateLimiter } from '../bot/limits/store-rate-limiter';
import { generatePuk } from '../bot/security/codes';
import { deriveKeys, parseMasterKey, type DerivedKeys } from '../bot/security/keys';
import type { Logger } from '../common/logger';
import { CardService } from '../companion/card/card.service';
import { CompanionRuntime } from '../companion/companion.runtime';
import { CredentialStore } from '../companion/pairing/credential.store';
import { InProcessReaderAdapter } from '../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../companion/virtual-card/virtual-piv-card';
import { openMongoStorage } from '../storage/mongodb/mongodb-storage.adapter';
import { openStorage } from '../storage/storage.factory';
import type { Person, Storage } from '../storage/storage.port';
import { ferretdbBinary, FERRETDB, startPrivateFerretdb, type PrivateFerretdb } from '../test/support/ferretdb';
import { freePort, startProcess, waitForHttp, type ManagedProcess } from '../test/support/processes';
import { ActivityClient, type BenchConversation } from './activity.client';
import { ConnectorFake } from './connector.fake';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';
import { findActionData, journeyTurns, measureTurns, type TurnSeries } from './turns.bench';

/** One measured series: a store, a number of bot processes, a number of conversations. */
export interface MongoTurnRow {
  store: 'embedded' | 'mongodb';
  /** Bot processes serving the turns (1, or 2 over one database; turns alternate between them). */
  instances: number;
  concurrency: number;
  series: TurnSeries;
}

/** `unlock.start` turns (each waits for the companion's `card.read_status` reply), companion connected to B. */
export interface CrossInstanceLinkResult {
  /** Issued on B, which holds the companion's WebSocket. */
  sameInstance: LatencySummary;
  /** Issued on A: the command and its reply cross the command bus. */
  acrossInstances: LatencySummary;
  /** acrossInstances p50 - sameInstance p50, ms. */
  addedP50Ms: number;
  /** acrossInstances p99 - sameInstance p99, ms. */
  addedP99Ms: number;
  /** Turns not answered with the questions card (should be 0). */
  errors: number;
  firstError: string | null;
}

/** What the section measured, or why it did not run. */
export type MongoBenchResult =
  | { skipped: true; reason: string }
  | { skipped: false; server: string; turns: MongoTurnRow[]; link: CrossInstanceLinkResult | null; linkError: string | null };

/** Run sizes (the windows are section 1's). */
export interface MongoBenchOptions {
  concurrencies: readonly number[];
  warmupMs: number;
  measureMs: number;
  linkBlocks: number;
  linkPerBlock: number;
  linkWarmup: number;
  /** Progress lines. */
  log: (line: string) => void;
}

/** Answers for the seeded people (benchmark data only). */
const SEED_ANSWERS = [
  { questionId: 'q02', answer: 'Bench answer two' },
  { questionId: 'q05', answer: 'Bench answer five' },
  { questionId: 'q09', answer: 'Bench answer nine' },
  { questionId: 'q12', answer: 'Bench answer twelve' },
] as const;

/** Time budget of the companion round-trip blocks, ms (after the first block pair). */
const LINK_BUDGET_MS = 60_000;

/** A server to run on, and how to let go of it. */
type BenchServer = { url: string; label: string; release: (database: string) => Promise<void> };

/**
 * Find a MongoDB-protocol server: `MONGODB_URL`, else a private FerretDB on the project's
 * PostgreSQL. Builds and installs nothing (the binary and PostgreSQL must be there).
 *
 * @returns the server, or why there is none
 */
async function findServer(): Promise<BenchServer | { reason: string }> {
  const external = process.env['MONGODB_URL'];
  if (external) {
    return {
      url: external,
      label: 'MONGODB_URL',
      release: async (database) => {
        const c = new MongoClient(external, { serverSelectionTimeoutMS: 5000 });
        try {
          await c.db(database).dropDatabase();
        } finally {
          await c.close();
        }
      },
    };
  }
  if (!existsSync(ferretdbBinary())) return { reason: 'FerretDB is not built (bash scripts/ferretdb.sh build) and MONGODB_URL is not set' };
  if (!existsSync('/usr/lib/postgresql')) return { reason: 'PostgreSQL is not installed (bash scripts/postgres.sh install) and MONGODB_URL is not set' };
  let ferret: PrivateFerretdb;
  try {
    ferret = await startPrivateFerretdb();
  } catch (err) {
    return { reason: `FerretDB did not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  return {
    url: ferret.url,
    label: `FerretDB ${FERRETDB.version} on PostgreSQL (private, 127.0.0.1:${ferret.port})`,
    release: async () => {
      await ferret.dispose();
      await rm(join(ferret.dataDir, '..'), { recursive: true, force: true });
    },
  };
}

/** A bot process (`bot/main.ts` under tsx) answering on `url`. */
interface BotProcess {
  name: string;
  url: string;
  process: ManagedProcess;
}

/**
 * Start `bot/main.ts` as its own process and wait until `/healthz` answers 200.
 *
 * @param env - the bot's settings (STORAGE, MONGODB_URL, ...); PORT and HOST are chosen here
 */
async function startBotProcess(name: string, env: Record<string, string>): Promise<BotProcess> {
  const port = await freePort();
  const proc = startProcess({
    name: `bench-${name}`,
    command: process.execPath,
    args: ['--import', 'tsx', 'bot/main.ts'],
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: process.env['BENCH_BOT_LOG_LEVEL'] ?? 'warn', MicrosoftAppId: undefined, MicrosoftAppPassword: undefined, MONGODB_URL: env['MONGODB_URL'] ?? undefined },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/healthz`, { process: proc, status: 200, timeoutMs: 90_000 });
  } catch (err) {
    await proc.stop().catch(() => null);
    throw err;
  }
  return { name, url, process: proc };
}

/** One conversation's next turn; null when the answer was right, else why not (as in turns.bench.ts). */
type Turn = (conversation: number) => Promise<string | null>;

/**
 * Journey-step turns spread over several instances: conversation `c`'s n-th turn goes to
 * instance `(c + n) % urls.length`, so a run started on one instance is cancelled on the other
 * (every turn reads what the other instance just wrote). Same steps and checks as
 * `journeyTurns` in turns.bench.ts.
 */
function journeyTurnsAcross(client: ActivityClient, urls: readonly string[], conversations: readonly BenchConversation[]): Turn {
  if (urls.length === 1) return journeyTurns(client, urls[0]!, conversations);
  const sent = conversations.map(() => 0);
  const next: ({ verb: 'unlock.start' } | { verb: 'unlock.cancel'; data: { runId: string; step: string } })[] = conversations.map(() => ({ verb: 'unlock.start' }));
  return async (c) => {
    const conv = conversations[c]!;
    const url = urls[(c + sent[c]!++) % urls.length]!;
    const step = next[c]!;
    next[c] = { verb: 'unlock.start' };
    const result = await client.cardAction(url, conv, step.verb, step.verb === 'unlock.cancel' ? step.data : {});
    const body = result.body as { statusCode?: unknown; type?: unknown; value?: unknown } | null;
    if (result.status !== 200 || !body || body.statusCode !== 200 || body.type !== 'application/vnd.microsoft.card.adaptive') {
      return `${step.verb}: HTTP ${result.status} ${JSON.stringify(body).slice(0, 200)}`;
    }
    const text = JSON.stringify(body.value);
    if (step.verb === 'unlock.start') {
      const cancel = findActionData(body.value, 'unlock.cancel');
      if (!text.includes('Pair this computer first') || typeof cancel?.['runId'] !== 'string' || typeof cancel['step'] !== 'string') {
        return `unlock.start: not the "pair first" card with a Cancel button: ${text.slice(0, 200)}`;
      }
      next[c] = { verb: 'unlock.cancel', data: { runId: cancel['runId'], step: cancel['step'] } };
      return null;
    }
    return text.includes('Unlock cancelled') ? null : `unlock.cancel: not the "Unlock cancelled" card: ${text.slice(0, 200)}`;
  };
}

/** Register `count` people (each hashes 4 answers with scrypt: four at a time). */
async function seed(storage: Storage, keys: DerivedKeys, count: number, prefix: string): Promise<Person[]> {
  const people: Person[] = [];
  for (let i = 0; i < count; i += 4) {
    const batch = Array.from({ length: Math.min(4, count - i) }, (_, k) => i + k);
    const added = await Promise.all(
      batch.map((n) =>
        addPerson(storage, keys, {
          teamsUserId: `${prefix}-user-${n}`,
          displayName: `Bench Person${n}`,
          email: `bench.person${n}@nhs.net`,
          cardId: randomBytes(16).toString('hex'),
          puk: generatePuk(),
          answers: SEED_ANSWERS,
        }),
      ),
    );
    for (const a of added) {
      const p = await storage.persons.get(a.personId);
      if (!p) throw new Error(`seeded person ${a.personId} is not in the store`);
      people.push(p);
    }
  }
  return people;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The companion (in this process, as a client) paired through the store and connected to B;
 * `unlock.start` + `unlock.cancel` turns for its person, the start timed, issued on B and on A in
 * alternating blocks.
 */
async function benchCrossInstanceLink(a: BotProcess, b: BotProcess, storage: Storage, keys: DerivedKeys, person: Person, client: ActivityClient, logger: Logger, options: MongoBenchOptions): Promise<CrossInstanceLinkResult> {
  const cardId = person.cardId ?? '00112233445566778899aabbccddeeff';
  const reader = new InProcessReaderAdapter();
  reader.insert(new VirtualPivCard({ cardId, pin: '204817', puk: '73920184', blocked: true }));
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-mongo-companion-'));
  const credentials = new CredentialStore(join(dataDir, 'companion'), logger);
  const botUrl = new URL(b.url);
  // Pairing through the shared store (what B's pairing endpoints and A's "pair CODE" turn do).
  const pairing = new PairingService({ storage, codeHashKey: keys.codeHashKey, credentialHashKey: keys.credentialHashKey, pollIntervalSeconds: 1, limits: createStoreRateLimiter({ hits: storage.rateHits }), logger });
  const started = await pairing.start({ workstation: 'BENCH-WS' });
  const approved = await pairing.approve(person, started.userCode);
  if (!approved.ok) throw new Error(`pairing refused: ${approved.message}`);
  const polled = await pairing.poll(started.deviceCode);
  if (polled.status !== 'approved') throw new Error(`pairing poll answered ${polled.status}`);
  await credentials.write({ deviceId: polled.deviceId, credential: polled.credential, personName: polled.personName, botUrl: botUrl.href, pairedAt: new Date().toISOString() });
  const deviceId = polled.deviceId;
  const runtime = new CompanionRuntime({
    botUrl,
    workstation: 'BENCH-WS',
    pagePort: 0,
    credentials,
    card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
    logger,
    print: () => undefined,
  });
  const conversation: BenchConversation = { conversationId: 'a:bench-mongo-link', userId: person.teamsUserId, userName: person.displayName };
  let errors = 0;
  let firstError: string | null = null;
  try {
    await runtime.start();
    await until(() => runtime.linkState === 'ready', 15_000, 'the companion link to B');
    await until(async () => (await storage.devices.get(deviceId))?.connectedInstance?.startsWith('bench-b') === true, 15_000, 'B recorded as the instance holding the companion');

    /** One start (timed by the caller) then its cancel; null when both answered as expected. */
    const startAndCancel = (bot: BotProcess, latency: LatencyRecorder | null) => async (): Promise<void> => {
      const t0 = process.hrtime.bigint();
      const result = await client.cardAction(bot.url, conversation, 'unlock.start', {});
      const elapsed = process.hrtime.bigint() - t0;
      const body = result.body as { value?: unknown } | null;
      const text = JSON.stringify(body?.value ?? null);
      const cancel = findActionData(body?.value, 'unlock.cancel');
      if (result.status !== 200 || !text.includes('security questions') || typeof cancel?.['runId'] !== 'string') {
        errors += 1;
        firstError ??= `${bot.name} unlock.start: HTTP ${result.status} ${text.slice(0, 200)}`;
      } else {
        latency?.recordNs(elapsed);
      }
      if (typeof cancel?.['runId'] === 'string') await client.cardAction(bot.url, conversation, 'unlock.cancel', { runId: cancel['runId'], step: cancel['step'] });
    };
    // Each pair costs store writes, a companion round trip and a companion command on cancel:
    // sizes are capped and the blocks stop at a time budget (whole B+A block pairs only).
    const warmup = Math.min(options.linkWarmup, 5);
    const perBlock = Math.min(options.linkPerBlock, 20);
    const budgetEnd = Date.now() + LINK_BUDGET_MS;
    for (let i = 0; i < warmup; i++) {
      await startAndCancel(b, null)();
      await startAndCancel(a, null)();
    }
    errors = 0;
    firstError = null;
    const sameLatency = new LatencyRecorder();
    const acrossLatency = new LatencyRecorder();
    for (let blk = 0; blk < options.linkBlocks && (blk === 0 || Date.now() < budgetEnd); blk++) {
      for (let i = 0; i < perBlock; i++) await startAndCancel(b, sameLatency)();
      for (let i = 0; i < perBlock; i++) await startAndCancel(a, acrossLatency)();
    }
    const s = sameLatency.summary();
    const x = acrossLatency.summary();
    return { sameInstance: s, acrossInstances: x, addedP50Ms: round(x.p50Ms - s.p50Ms), addedP99Ms: round(x.p99Ms - s.p99Ms), errors, firstError };
  } finally {
    await runtime.stop();
    await reader.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Measure journey steps on the embedded store and on MongoDB with 1 and 2 bot processes, and
 * the companion round trip across instances. Never throws: a missing server or a failure is
 * returned as `skipped`.
 *
 * @param logger - a silent logger for this process's companion and seeding
 * @param options - windows and sizes (section 1's)
 * @returns the figures, or `{ skipped: true, reason }`
 */
export async function benchMongo(logger: Logger, options: MongoBenchOptions): Promise<MongoBenchResult> {
  const found = await findServer();
  if ('reason' in found) return { skipped: true, reason: found.reason };
  const database = `bench_${randomBytes(6).toString('hex')}`;
  const dirs: string[] = [];
  const bots: BotProcess[] = [];
  const connector = new ConnectorFake();
  let client: ActivityClient | null = null;
  let mongoClient: MongoClient | null = null;
  let mongoStore: Storage | null = null;
  try {
    const serviceUrl = await connector.start();
    client = new ActivityClient(serviceUrl);
    const masterKey = randomBytes(32).toString('base64');
    const keys = deriveKeys(parseMasterKey(masterKey, 'SMARTCARD_MASTER_KEY'));
    const maxConcurrency = Math.max(...options.concurrencies);
    const dataDirOf = async (name: string): Promise<string> => {
      const d = await mkdtemp(join(tmpdir(), `bench-${name}-`));
      dirs.push(d);
      return d;
    };
    const conversationsOf = (people: Person[], prefix: string): BenchConversation[] => people.map((p, i) => ({ conversationId: `a:${prefix}-conversation-${i}`, userId: p.teamsUserId, userName: p.displayName }));
    const noCounters = (): Record<string, number> => ({});
    const turns: MongoTurnRow[] = [];
    const measure = async (store: MongoTurnRow['store'], bs: BotProcess[], conversations: BenchConversation[]): Promise<void> => {
      for (const concurrency of options.concurrencies) {
        options.log(`      ${store}, ${bs.length} bot process(es), ${concurrency} conversation(s) ...`);
        turns.push({ store, instances: bs.length, concurrency, series: await measureTurns('journey', concurrency, journeyTurnsAcross(client!, bs.map((x) => x.url), conversations), options.warmupMs, options.measureMs, noCounters) });
      }
    };

    // Embedded baseline, as its own process too (seeded before it starts: one writer at a time on the file).
    const embeddedDir = await dataDirOf('embedded');
    options.log(`      embedded: seeding ${maxConcurrency} people ...`);
    const sqlite = await openStorage({ kind: 'sqlite', file: join(embeddedDir, 'smartcard-assist.sqlite') }, logger);
    const embeddedPeople = await seed(sqlite, keys, maxConcurrency, 'bench-e');
    await sqlite.close();
    const embedded = await startBotProcess('embedded', { SMARTCARD_DATA_DIR: embeddedDir, SMARTCARD_MASTER_KEY: masterKey, STORAGE: 'sqlite', BOT_INSTANCE_ID: 'bench-e' });
    bots.push(embedded);
    await measure('embedded', [embedded], conversationsOf(embeddedPeople, 'bench-e'));
    await embedded.process.stop();
    bots.splice(bots.indexOf(embedded), 1);

    // MongoDB: seed through a store in this process, then the bot processes.
    options.log(`      server: ${found.label}, database ${database}; seeding ${maxConcurrency + 1} people ...`);
    mongoClient = new MongoClient(found.url, { serverSelectionTimeoutMS: 5000 });
    await mongoClient.connect();
    mongoStore = await openMongoStorage({ client: mongoClient, database, gcIntervalMs: 0 });
    const people = await seed(mongoStore, keys, maxConcurrency + 1, 'bench-m');
    const linkPerson = people.pop()!;
    const conversations = conversationsOf(people, 'bench-m');
    const mongoEnv = (id: string): Promise<Record<string, string>> =>
      dataDirOf(id).then((d) => ({ SMARTCARD_DATA_DIR: d, SMARTCARD_MASTER_KEY: masterKey, STORAGE: 'mongodb', MONGODB_URL: found.url, MONGODB_DATABASE: database, BOT_INSTANCE_ID: id }));
    const a = await startBotProcess('mongodb-a', await mongoEnv('bench-a'));
    bots.push(a);
    await measure('mongodb', [a], conversations);
    options.log('      starting bot process B on the same database ...');
    const b = await startBotProcess('mongodb-b', await mongoEnv('bench-b'));
    bots.push(b);
    await measure('mongodb', [a, b], conversations);

    options.log('      companion on B: unlock.start (waits for card.read_status) issued on B vs on A (routed over the command bus) ...');
    let link: CrossInstanceLinkResult | null = null;
    let linkError: string | null = null;
    try {
      link = await benchCrossInstanceLink(a, b, mongoStore, keys, linkPerson, client, logger, options);
    } catch (err) {
      linkError = err instanceof Error ? err.message : String(err);
    }
    return { skipped: false, server: found.label, turns, link, linkError };
  } catch (err) {
    return { skipped: true, reason: `the MongoDB section failed: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    client?.close();
    for (const bot of bots.reverse()) await bot.process.stop().catch(() => undefined);
    await mongoStore?.close().catch(() => undefined);
    await mongoClient?.close().catch(() => undefined);
    await connector.stop().catch(() => undefined);
    await found.release(database).catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

/** Table helpers of bench/run.ts. */
export interface ReportHelpers {
  fmt: (n: number, digits?: number) => string;
  table: (header: string[], rows: string[][]) => string;
  log: (line: string) => void;
}

/**
 * Print section 4: turns/s and p99 per store and instance count, the 2/1 instance ratio, the
 * MongoDB/embedded ratio per conversation count, and the companion round trip across instances.
 */
export function reportMongo(mongo: MongoBenchResult, { fmt, table, log }: ReportHelpers): void {
  if (mongo.skipped) {
    log(mongo.reason === '--skip-mongodb' ? 'skipped (--skip-mongodb)' : `skipped: no MongoDB (${mongo.reason})`);
    return;
  }
  log(`server: ${mongo.server}; every bot instance is its own process (bot/main.ts), turns over HTTP from this process`);
  const row = (store: MongoTurnRow['store'], instances: number, concurrency: number): MongoTurnRow | undefined => mongo.turns.find((r) => r.store === store && r.instances === instances && r.concurrency === concurrency);
  const ratio = (x: number | undefined, y: number | undefined): string => (x !== undefined && y !== undefined && y > 0 ? fmt(x / y) : 'n/a');
  const rows = mongo.turns.map((r) => {
    const embedded = row('embedded', 1, r.concurrency);
    const one = row(r.store, 1, r.concurrency);
    return [
      r.store,
      String(r.instances),
      String(r.concurrency),
      String(r.series.turns),
      String(r.series.errors),
      fmt(r.series.turnsPerSecond, 1),
      fmt(r.series.latency.p50Ms),
      fmt(r.series.latency.p99Ms),
      r.instances > 1 ? ratio(r.series.turnsPerSecond, one?.series.turnsPerSecond) : '',
      r.store === 'mongodb' ? ratio(r.series.turnsPerSecond, embedded?.series.turnsPerSecond) : '',
    ];
  });
  log(table(['store', 'bot processes', 'conversations', 'turns', 'errors', 'turns/s', 'p50 ms', 'p99 ms', '2/1 instances', 'vs embedded'], rows));
  log('   2 processes: each conversation\'s turns alternate between A and B (a run started on one is cancelled on the other).');
  log('   On 2 cores the load client, the bots, FerretDB and PostgreSQL share the CPU: the 2/1 ratio shows what the shared');
  log('   store and the routing cost, not the capacity a second machine would add. Errors are turns not answered as expected.');
  for (const r of mongo.turns) if (r.series.firstError) log(`   first error, ${r.store} ${r.instances} process(es) at ${r.concurrency}: ${r.series.firstError.slice(0, 200)}`);
  if (mongo.link) {
    const l = mongo.link;
    log(table(
      ['unlock.start (waits for card.read_status), companion on B', 'turns', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['issued on B (same instance: WebSocket only)', String(l.sameInstance.count), fmt(l.sameInstance.p50Ms, 3), fmt(l.sameInstance.p99Ms, 3), fmt(l.sameInstance.maxMs, 3)],
        ['issued on A (A -> command bus -> B -> companion -> B -> bus -> A)', String(l.acrossInstances.count), fmt(l.acrossInstances.p50Ms, 3), fmt(l.acrossInstances.p99Ms, 3), fmt(l.acrossInstances.maxMs, 3)],
        ['companion round trip added across instances (A - B)', '', fmt(l.addedP50Ms, 3), fmt(l.addedP99Ms, 3), ''],
      ],
    ));
    if (l.errors > 0) log(`   ${l.errors} turn(s) not answered with the questions card; first: ${l.firstError ?? ''}`);
  } else {
    log(`   companion round trip not measured: ${mongo.linkError ?? 'unknown reason'}`);
  }
}
