/**
 * The MongoDB part of `npm run bench` (issue #4): the same journey-step turns
 * as section 1, on bots whose store is the MongoDB adapter, with one bot
 * instance and with two instances over one database (each conversation's
 * turns alternating between the instances, as a load balancer without
 * affinity spreads them, and each conversation pinned to one instance); and
 * the companion's `card.read_status` round trip when the command
 * is issued on the instance holding the companion's WebSocket against when it
 * is issued on the other instance and routed over the command bus.
 *
 * Server: `MONGODB_URL` when set (a fresh database, dropped afterwards), else
 * a private FerretDB (binary cached by `scripts/ferretdb.sh build`) on a free
 * loopback port and a temporary data directory. Neither: the section is
 * skipped, never failed. Both instances run in this process (each its own
 * `startBot`, port, MongoDB client and instance id), so they share one CPU
 * with the load client and, for FerretDB, with the server's own process.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { addPerson } from '../bot/admin.cli';
import { loadConfig } from '../bot/config';
import { startBot, type BotApp } from '../bot/main';
import { generatePuk } from '../bot/security/codes';
import { deriveKeys, parseMasterKey } from '../bot/security/keys';
import type { Logger } from '../common/logger';
import { CardService } from '../companion/card/card.service';
import { CompanionRuntime } from '../companion/companion.runtime';
import { CredentialStore } from '../companion/pairing/credential.store';
import { InProcessReaderAdapter } from '../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../companion/virtual-card/virtual-piv-card';
import type { Person } from '../storage/storage.port';
import { ferretdbBinary, FERRETDB, startPrivateFerretdb, type PrivateFerretdb } from '../test/support/ferretdb';
import { ActivityClient, type BenchConversation } from './activity.client';
import { ConnectorFake } from './connector.fake';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';
import { pairCompanion } from './link.bench';
import { findActionData, journeyTurns, measureTurns, type TurnSeries } from './turns.bench';

/** Journey-step series on MongoDB at one concurrency and instance count. */
export interface MongoTurnRow {
  /** Bot instances serving the turns (1, or 2 over one database). */
  instances: number;
  /**
   * How turns meet instances: `alternate` = each conversation's turns alternate between the
   * instances (no affinity); `pinned` = conversation c always on instance c % 2 (session affinity).
   */
  spread: 'alternate' | 'pinned';
  concurrency: number;
  series: TurnSeries;
}

/** `card.read_status` round trips to one companion connected to instance B. */
export interface CrossInstanceLinkResult {
  /** Issued on B, which holds the companion's WebSocket. */
  sameInstance: LatencySummary;
  /** Issued on A: A -> command bus -> B -> companion -> B -> command bus -> A. */
  acrossInstances: LatencySummary;
  /** acrossInstances p50 - sameInstance p50, ms. */
  addedP50Ms: number;
  /** acrossInstances p99 - sameInstance p99, ms. */
  addedP99Ms: number;
  /** Calls that failed or did not read the expected card id and PIN status (should be 0). */
  errors: number;
  firstError: string | null;
}

/** What the section measured, or why it did not run. */
export type MongoBenchResult =
  | { skipped: true; reason: string }
  | { skipped: false; server: string; turns: MongoTurnRow[]; link: CrossInstanceLinkResult | null; linkError: string | null };

/** Run sizes (the windows are section 1's, so the ratios compare like with like). */
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

/** A server to run on, and how to let go of it. */
type BenchServer = { url: string; label: string; release: (database: string) => Promise<void> };

/**
 * Find a MongoDB-protocol server without building or installing anything.
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
  if (!existsSync(ferretdbBinary())) return { reason: `FerretDB is not built (bash scripts/ferretdb.sh build) and MONGODB_URL is not set` };
  let ferret: PrivateFerretdb;
  try {
    ferret = await startPrivateFerretdb();
  } catch (err) {
    return { reason: `FerretDB did not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  return {
    url: ferret.url,
    label: `FerretDB ${FERRETDB.version} (SQLite backend, private, 127.0.0.1:${ferret.port})`,
    release: async () => {
      await ferret.stop();
      await rm(join(ferret.dataDir, '..'), { recursive: true, force: true });
    },
  };
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
  return spreadTurns(client, urls, conversations, 'alternate');
}

/** Journey-step turns pinned per conversation: conversation `c` always on instance `c % urls.length`. */
function journeyTurnsPinned(client: ActivityClient, urls: readonly string[], conversations: readonly BenchConversation[]): Turn {
  return spreadTurns(client, urls, conversations, 'pinned');
}

function spreadTurns(client: ActivityClient, urls: readonly string[], conversations: readonly BenchConversation[], spread: MongoTurnRow['spread']): Turn {
  const turnsOf = urls.map((url) => journeyTurns(client, url, conversations));
  if (turnsOf.length === 1) return turnsOf[0]!;
  if (spread === 'pinned') return (c) => turnsOf[c % turnsOf.length]!(c);
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

async function seed(app: BotApp, count: number): Promise<Person[]> {
  const keys = deriveKeys(parseMasterKey(app.config.masterKey, 'SMARTCARD_MASTER_KEY'));
  const people: Person[] = [];
  for (let i = 0; i < count; i += 4) {
    const batch = Array.from({ length: Math.min(4, count - i) }, (_, k) => i + k);
    const added = await Promise.all(
      batch.map((n) =>
        addPerson(app.storage, keys, {
          teamsUserId: `bench-user-${n}`,
          displayName: `Bench Person${n}`,
          email: `bench.person${n}@nhs.net`,
          cardId: randomBytes(16).toString('hex'),
          puk: generatePuk(),
          answers: SEED_ANSWERS,
        }),
      ),
    );
    for (const a of added) {
      const p = await app.storage.persons.get(a.personId);
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
 * The companion paired with and connected to B; `card.read_status` issued on B and on A in
 * alternating blocks.
 */
async function benchCrossInstanceLink(a: BotApp, b: BotApp, person: Person, logger: Logger, options: MongoBenchOptions): Promise<CrossInstanceLinkResult> {
  const cardId = person.cardId ?? '00112233445566778899aabbccddeeff';
  const reader = new InProcessReaderAdapter();
  reader.insert(new VirtualPivCard({ cardId, pin: '204817', puk: '73920184', blocked: true }));
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-mongo-companion-'));
  const credentials = new CredentialStore(join(dataDir, 'companion'), logger);
  const botUrl = new URL(b.url);
  const deviceId = await pairCompanion(b, person, credentials, botUrl);
  const runtime = new CompanionRuntime({
    botUrl,
    workstation: 'BENCH-WS',
    pagePort: 0,
    credentials,
    card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
    logger,
    print: () => undefined,
  });
  let errors = 0;
  let firstError: string | null = null;
  try {
    await runtime.start();
    await until(() => runtime.linkState === 'ready' && b.link.isConnected(deviceId), 15_000, 'the companion link to B');
    // A routes only once the store says which instance holds the socket.
    await until(async () => (await a.storage.devices.get(deviceId))?.connectedInstance === b.config.instanceId, 15_000, 'B recorded as the connected instance');
    if (a.link.isConnected(deviceId)) throw new Error('the companion is connected to A too: nothing would be routed');

    const call = (app: BotApp) => async (): Promise<void> => {
      try {
        const reply = await app.link.sendCommand(deviceId, { kind: 'card.read_status' }, 10_000);
        if (reply.kind !== 'card.status' || !reply.status.present || reply.status.cardId !== cardId || reply.status.pinRetries !== 0) {
          errors += 1;
          firstError ??= `unexpected reply ${reply.kind}`;
        }
      } catch (err) {
        errors += 1;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    };
    const same = call(b);
    const across = call(a);
    for (let i = 0; i < options.linkWarmup; i++) {
      await same();
      await across();
    }
    errors = 0;
    firstError = null;
    const sameLatency = new LatencyRecorder();
    const acrossLatency = new LatencyRecorder();
    for (let blk = 0; blk < options.linkBlocks; blk++) {
      for (let i = 0; i < options.linkPerBlock; i++) await sameLatency.time(same);
      for (let i = 0; i < options.linkPerBlock; i++) await acrossLatency.time(across);
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
 * Measure journey steps on MongoDB with 1 and 2 instances, and the companion round trip
 * across instances. Never throws: a missing server or a failure is returned as `skipped`.
 *
 * @param logger - a silent logger for the bots and the companion
 * @param options - windows and sizes (section 1's, for comparable ratios)
 * @returns the figures, or `{ skipped: true, reason }`
 */
export async function benchMongo(logger: Logger, options: MongoBenchOptions): Promise<MongoBenchResult> {
  const found = await findServer();
  if ('reason' in found) return { skipped: true, reason: found.reason };
  const database = `bench_${randomBytes(6).toString('hex')}`;
  const dirs: string[] = [];
  const apps: BotApp[] = [];
  const connector = new ConnectorFake();
  let client: ActivityClient | null = null;
  try {
    const serviceUrl = await connector.start();
    client = new ActivityClient(serviceUrl);
    const masterKey = randomBytes(32).toString('base64');
    const start = async (name: string): Promise<BotApp> => {
      const dataDir = await mkdtemp(join(tmpdir(), `bench-${name}-`));
      dirs.push(dataDir);
      const app = await startBot(
        loadConfig({ PORT: '0', HOST: '127.0.0.1', SMARTCARD_DATA_DIR: dataDir, SMARTCARD_MASTER_KEY: masterKey, LOG_LEVEL: 'silent', STORAGE: 'mongodb', MONGODB_URL: found.url, MONGODB_DATABASE: database, BOT_INSTANCE_ID: `bench-${name}` }),
        { logger },
      );
      apps.push(app);
      return app;
    };
    options.log(`      server: ${found.label}, database ${database}; starting instance A ...`);
    const a = await start('a');
    const maxConcurrency = Math.max(...options.concurrencies);
    options.log(`      seeding ${maxConcurrency + 1} people ...`);
    const people = await seed(a, maxConcurrency + 1);
    const linkPerson = people.pop()!;
    const conversations: BenchConversation[] = people.map((p, i) => ({ conversationId: `a:bench-mongo-conversation-${i}`, userId: p.teamsUserId, userName: p.displayName }));
    const noCounters = (): Record<string, number> => ({});
    const turns: MongoTurnRow[] = [];
    for (const concurrency of options.concurrencies) {
      options.log(`      1 instance, ${concurrency} conversation(s) ...`);
      turns.push({ instances: 1, spread: 'pinned', concurrency, series: await measureTurns('journey', concurrency, journeyTurnsAcross(client, [a.url], conversations), options.warmupMs, options.measureMs, noCounters) });
    }
    options.log('      starting instance B on the same database ...');
    const b = await start('b');
    for (const concurrency of options.concurrencies) {
      options.log(`      2 instances, ${concurrency} conversation(s), turns alternating between them ...`);
      turns.push({ instances: 2, spread: 'alternate', concurrency, series: await measureTurns('journey', concurrency, journeyTurnsAcross(client, [a.url, b.url], conversations), options.warmupMs, options.measureMs, noCounters) });
      options.log(`      2 instances, ${concurrency} conversation(s), each conversation pinned to one ...`);
      turns.push({ instances: 2, spread: 'pinned', concurrency, series: await measureTurns('journey', concurrency, journeyTurnsPinned(client, [a.url, b.url], conversations), options.warmupMs, options.measureMs, noCounters) });
    }
    options.log('      companion on B: card.read_status issued on B vs on A (routed over the command bus) ...');
    let link: CrossInstanceLinkResult | null = null;
    let linkError: string | null = null;
    try {
      link = await benchCrossInstanceLink(a, b, linkPerson, logger, options);
    } catch (err) {
      linkError = err instanceof Error ? err.message : String(err);
    }
    return { skipped: false, server: found.label, turns, link, linkError };
  } catch (err) {
    return { skipped: true, reason: `the MongoDB section failed: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    client?.close();
    for (const app of apps.reverse()) await app.close().catch(() => undefined);
    await connector.stop().catch(() => undefined);
    await found.release(database).catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}
