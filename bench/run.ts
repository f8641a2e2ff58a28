/**
 * `npm run bench`: measures, in one run, and prints
 * 1. journey-step turns against echo turns through the same adapter (turns/s, p50, p99, ratio)
 *    at 1 and at 50 concurrent conversations;
 * 2. the time to check 3 security answers, and the event-loop delay p99 while
 *    10 checks run at once, against idle;
 * 3. the companion's `card.read_status` round trip over the WebSocket link against
 *    the same card read done directly (overhead in ms);
 * 4. (issues #4, #8, when a MongoDB-protocol server is at hand) journey-step turns with
 *    each bot instance as its own process: embedded store, MongoDB with 1 and 2
 *    instances (2/1 ratio, MongoDB/embedded ratio), and the companion round trip issued
 *    on the other instance (over the command bus) against the instance holding the
 *    companion (`mongodb.bench.ts`);
 * 5. (issue #9) one person's flood of 100 identical answer clicks: another person's
 *    answer-check turn during the flood against idle, and the scrypt runs the flood cost
 *    (`flood.bench.ts`, its own bot and two companions with in-process virtual cards).
 * 6. (issue #15) capacity: answer checks on the hash pool (triple vs legacy per-answer
 *    records), an outbox-shaped file write behind 50 hashes (hash pool vs libuv), and the
 *    outbox with 200,000 old messages: send time, the old per-send listing, one prune run
 *    (`capacity.bench.ts`).
 *
 * Figures are printed next to their targets with "met"/"not met"; a missed target
 * never fails the run (this is a benchmark, not a test). The same figures go to
 * `artifacts/bench/bench-<timestamp>.json`. Everything is on loopback, in this process
 * (section 4 starts bot processes of its own).
 *
 * 7. (issue #15) full journeys (`full-journey*.ts`): 7a the event-loop delay while the embedded
 *    store commits, on the main thread and in its worker thread, on this disk and a slow one;
 *    7b complete unlock journeys for N = 1, 10, 50 people against the bot as its own process, then
 *    the same with 200,000 old messages in the outbox (`BENCH_FULL_SECONDS` per N, default 20).
 * 8. (issue #15) idle memory of the bot and the companion, each its own process, from the sources
 *    (tsx) and from the bundle (`npm run build`) (`full-journey.memory.ts`).
 *
 * Options: `--quick` (short windows, for checking the harness; figures are noisier),
 * `--skip-mongodb` (leave out section 4), `--flood-only` (section 5 alone), `--capacity-only` (section 6 alone),
 * `--full-journey-only` (sections 7 and 8 alone).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addPerson } from '../bot/admin.cli';
import { loadConfig } from '../bot/config';
import { startBot, type BotApp } from '../bot/main';
import { generatePuk } from '../bot/security/codes';
import { deriveKeys, parseMasterKey } from '../bot/security/keys';
import { createLogger } from '../common/logger';
import type { SqliteStorage } from '../storage/sqlite/sqlite-storage.adapter';
import type { Person } from '../storage/storage.port';
import { ActivityClient, type BenchConversation } from './activity.client';
import { benchAnswers, type AnswerBenchResult } from './answers.bench';
import { ConnectorFake } from './connector.fake';
import { startEchoServer } from './echo.bot';
import { benchFlood, type FloodBenchResult } from './flood.bench';
import { benchCapacity, capacityReport, type CapacityBenchResult } from './capacity.bench';
import { benchStoreSync, storeSyncReport, type StoreSyncResult } from './full-journey.store-sync';
import { benchFullJourney, fullJourneyReport, type FullJourneyResult } from './full-journey.bench';
import { benchIdleMemory, idleMemoryReport, type IdleMemoryResult } from './full-journey.memory';
import { benchLink, type LinkBenchResult } from './link.bench';
import { benchMongo, reportMongo, type MongoBenchResult } from './mongodb.bench';
import { round } from './latency.stats';
import { echoTurns, journeyTurns, measureTurns, type TurnSeries } from './turns.bench';

/** Targets from issue #2 ("Benchmark"). */
export const TARGETS = {
  /** Journey-step turn throughput at least this fraction of echo throughput. */
  journeyToEchoMin: 0.5,
  /** Event-loop delay p99 while answer checks run, below this, ms. */
  loopDelayP99MaxMs: 20,
  /** Link round trip minus direct card call (p50), below this, ms. */
  linkOverheadMaxMs: 5,
} as const;

/** Run sizes: full (default) and `--quick`. Windows in ms. */
const SIZES = {
  full: { concurrencies: [1, 50], warmupMs: 1500, measureMs: 8000, answerRuns: 20, concurrentChecks: 10, checkRounds: 3, idleMs: 2000, linkBlocks: 5, linkPerBlock: 200, linkWarmup: 200, floodRounds: 5, floodIdleSamples: 10, floodSize: 100 },
  quick: { concurrencies: [1, 50], warmupMs: 300, measureMs: 1500, answerRuns: 5, concurrentChecks: 10, checkRounds: 1, idleMs: 500, linkBlocks: 2, linkPerBlock: 50, linkWarmup: 50, floodRounds: 1, floodIdleSamples: 3, floodSize: 100 },
} as const;

/** Section 6 sizes (issue #15): full and `--quick`. */
const CAPACITY_SIZES = {
  full: { checkMs: 10_000, inFlight: 50, writeSamples: 20, oldMessages: 200_000, sendSamples: 200 },
  quick: { checkMs: 2000, inFlight: 50, writeSamples: 5, oldMessages: 20_000, sendSamples: 50 },
} as const;

/** Section 7 sizes (issue #15): full and `--quick`. */
const FULL_JOURNEY_SIZES = {
  full: { syncWriters: 20, syncWindowMs: 3000, slowSyncMs: 5, people: [1, 10, 50], windowS: 20, oldMessages: 200_000, memorySettleMs: 60_000 },
  quick: { syncWriters: 20, syncWindowMs: 1000, slowSyncMs: 5, people: [1, 10], windowS: 5, oldMessages: 20_000, memorySettleMs: 10_000 },
} as const;

/** Seconds of journeys per N in section 7b: `BENCH_FULL_SECONDS` (1..3600), else the size's default. */
function fullJourneySeconds(fallback: number): number {
  const raw = process.env['BENCH_FULL_SECONDS'];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 3600) throw new Error(`BENCH_FULL_SECONDS must be a whole number of seconds from 1 to 3600 (got "${raw}")`);
  return n;
}

/** Answers for the seeded people (benchmark data only), by question id (section 5 answers with them). */
const SEED_ANSWERS = [
  { questionId: 'q02', answer: 'Bench answer two' },
  { questionId: 'q05', answer: 'Bench answer five' },
  { questionId: 'q09', answer: 'Bench answer nine' },
  { questionId: 'q12', answer: 'Bench answer twelve' },
] as const;

interface TurnComparison {
  concurrency: number;
  journey: TurnSeries;
  echo: TurnSeries;
  /** journey turns/s divided by echo turns/s. */
  ratio: number;
}

interface TargetLine {
  name: string;
  figure: string;
  target: string;
  met: boolean;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

/** A plain-text table: numeric columns right-aligned, text columns left-aligned. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => i > 0 && rows.every((r) => /^(-?[\d.]+|n\/a|)$/.test(r[i] ?? '')));
  const line = (cells: string[]): string => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function seedPeople(app: BotApp, count: number): Promise<Person[]> {
  const keys = deriveKeys(parseMasterKey(app.config.masterKey, 'SMARTCARD_MASTER_KEY'));
  const people: Person[] = [];
  // Four at a time: each person hashes 4 answers with scrypt on the thread pool.
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

const SEED_ANSWER_BY_QUESTION: Readonly<Record<string, string>> = Object.fromEntries(SEED_ANSWERS.map((a) => [a.questionId, a.answer]));

/** Section 5 as printed lines. */
function floodReport(flood: FloodBenchResult): string[] {
  const ratio = (a: number, b: number): string => (b > 0 ? `${fmt(a / b, 1)}x` : 'n/a');
  const out = [
    `\n== 5. Click flood (issue #9): ${flood.floodSize} identical unlock.answers clicks from one person; another person's answer check (unlock.answers invoke, 3 answers) ==`,
    table(
      ['other person\'s answer turn', 'turns', 'p50 ms', 'p99 ms', 'max ms', 'p50 vs idle', 'p99 vs idle'],
      [
        ['idle (no flood)', String(flood.idle.count), fmt(flood.idle.p50Ms), fmt(flood.idle.p99Ms), fmt(flood.idle.maxMs), '1.0x', '1.0x'],
        ['during the flood', String(flood.duringFlood.count), fmt(flood.duringFlood.p50Ms), fmt(flood.duringFlood.p99Ms), fmt(flood.duringFlood.maxMs), ratio(flood.duringFlood.p50Ms, flood.idle.p50Ms), ratio(flood.duringFlood.p99Ms, flood.idle.p99Ms)],
      ],
    ),
    `   each flood took ${fmt(flood.floodWallMs.p50Ms, 0)} ms (p50; max ${fmt(flood.floodWallMs.maxMs, 0)} ms) from first click to last answer; HTTP statuses ${Object.entries(flood.floodStatuses).map(([k, v]) => `${k}: ${v}`).join(', ')}`,
    `   scrypt runs: ${fmt(flood.scryptPerFlood, 1)} per flood of ${flood.floodSize} clicks (one current click costs ${fmt(flood.scryptPerCheck, 0)}; counted on node:crypto scrypt)`,
  ];
  if (flood.errors > 0) out.push(`   ${flood.errors} answer turn(s) not answered as expected; first: ${flood.firstError ?? ''}`);
  return out;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const skipMongo = process.argv.includes('--skip-mongodb');
  const floodOnly = process.argv.includes('--flood-only');
  const size = quick ? SIZES.quick : SIZES.full;
  const startedAt = new Date();
  const t0 = Date.now();
  const logger = createLogger({ name: 'bench', level: 'silent' });
  log(`Smartcard Assist benchmark${quick ? ' (--quick: short windows, noisy figures)' : ''}`);
  const loadBefore = loadavg();
  log(`node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), ${process.platform}/${process.arch}; everything in this process, on loopback`);
  log(`load average at start: ${loadBefore.map((l) => fmt(l)).join(' ')} (other work on the machine skews every figure)\n`);
  const floodSection = (): Promise<FloodBenchResult> => {
    log('[5/5] click flood: a bot, two people with paired companions (in-process virtual cards) ...');
    return benchFlood(logger, seedPeople, SEED_ANSWER_BY_QUESTION, { rounds: size.floodRounds, idleSamples: size.floodIdleSamples, floodSize: size.floodSize, log });
  };
  const capacitySection = (): Promise<CapacityBenchResult> => {
    log('[6/6] capacity: hash pool, file writes behind hashes, outbox with old messages ...');
    return benchCapacity(logger, { ...(quick ? CAPACITY_SIZES.quick : CAPACITY_SIZES.full), log });
  };
  type FullJourneySection = { storeSync: StoreSyncResult; journeys: FullJourneyResult; memory: IdleMemoryResult };
  const fullJourneySection = async (): Promise<FullJourneySection> => {
    const sizes = quick ? FULL_JOURNEY_SIZES.quick : FULL_JOURNEY_SIZES.full;
    log('[7/7] full journeys: 7a disk syncs and the event loop ...');
    const storeSync = await benchStoreSync({ writers: sizes.syncWriters, windowMs: sizes.syncWindowMs, slowSyncMs: sizes.slowSyncMs, log });
    log('      7b full unlock journeys, the bot as its own process ...');
    const journeys = await benchFullJourney(logger, { people: sizes.people, windowS: fullJourneySeconds(sizes.windowS), oldMessages: sizes.oldMessages, log });
    log('[8/8] idle memory: bot and companion processes, from the sources and from the bundle ...');
    const memory = await benchIdleMemory({ settleMs: sizes.memorySettleMs, log });
    return { storeSync, journeys, memory };
  };
  const fullJourneyLines = (r: FullJourneySection): string[] => [...storeSyncReport(r.storeSync, fmt, table), ...fullJourneyReport(r.journeys, fmt, table), ...idleMemoryReport(r.memory, fmt, table)];
  if (process.argv.includes('--full-journey-only')) {
    const fullJourney = await fullJourneySection();
    for (const line of fullJourneyLines(fullJourney)) log(line);
    writeReport({ startedAt: startedAt.toISOString(), durationMs: Date.now() - t0, quick, fullJourneyOnly: true, machine: machine(loadBefore), fullJourney });
    return;
  }
  if (process.argv.includes('--capacity-only')) {
    const capacity = await capacitySection();
    for (const line of capacityReport(capacity, fmt, table)) log(line);
    writeReport({ startedAt: startedAt.toISOString(), durationMs: Date.now() - t0, quick, capacityOnly: true, machine: machine(loadBefore), capacity });
    return;
  }
  if (floodOnly) {
    const flood = await floodSection();
    for (const line of floodReport(flood)) log(line);
    writeReport({ startedAt: startedAt.toISOString(), durationMs: Date.now() - t0, quick, floodOnly: true, machine: machine(loadBefore), sizes: size, flood });
    return;
  }

  // 2. Answer checks first, before the bot exists, so nothing else uses the event loop.
  log('[1/5] security answer checks ...');
  const answers: AnswerBenchResult = await benchAnswers({ runs: size.answerRuns, concurrent: size.concurrentChecks, rounds: size.checkRounds, idleMs: size.idleMs });

  // 1. Turns.
  log('[2/5] turns: starting the bot (embedded store), the echo bot and the connector stand-in ...');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'bench-bot-'));
  const connector = new ConnectorFake();
  const serviceUrl = await connector.start();
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    SMARTCARD_DATA_DIR: dataDir,
    SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
  });
  const app = await startBot(config, { logger });
  const echo = await startEchoServer(app, logger);
  const client = new ActivityClient(serviceUrl);
  const maxConcurrency = Math.max(...size.concurrencies);
  const comparisons: TurnComparison[] = [];
  let link: LinkBenchResult;
  try {
    const people = await seedPeople(app, maxConcurrency + 1);
    const linkPerson = people.pop()!;
    const conversations: BenchConversation[] = people.map((p, i) => ({ conversationId: `a:bench-conversation-${i}`, userId: p.teamsUserId, userName: p.displayName }));
    const storeStats = (app.storage as Partial<SqliteStorage>).stats?.bind(app.storage);
    const probe = (): Record<string, number> => ({
      ...(storeStats ? { storeWrites: storeStats().writes, storeCommits: storeStats().commits } : {}),
      connectorActivities: connector.counts.activities,
      connectorConnections: connector.counts.connections,
    });
    const journey = journeyTurns(client, app.url, conversations);
    const echoTurn = echoTurns(client, echo.url, conversations, connector);
    for (const concurrency of size.concurrencies) {
      log(`      ${concurrency} conversation(s): echo ...`);
      const e = await measureTurns('echo', concurrency, echoTurn, size.warmupMs, size.measureMs, probe);
      log(`      ${concurrency} conversation(s): journey ...`);
      const j = await measureTurns('journey', concurrency, journey, size.warmupMs, size.measureMs, probe);
      comparisons.push({ concurrency, journey: j, echo: e, ratio: round(e.turnsPerSecond > 0 ? j.turnsPerSecond / e.turnsPerSecond : Number.NaN, 3) });
    }

    // 3. Link.
    log('[3/5] companion link: pairing a companion runtime with an in-process virtual card ...');
    link = await benchLink(app, linkPerson, logger, { blocks: size.linkBlocks, perBlock: size.linkPerBlock, warmup: size.linkWarmup });
  } finally {
    client.close();
    await echo.close();
    await app.close();
    await connector.stop();
    await rm(dataDir, { recursive: true, force: true });
  }

  // 4. MongoDB (never fails the run: no server, or a failure, is reported as skipped).
  let mongo: MongoBenchResult;
  if (skipMongo) {
    mongo = { skipped: true, reason: '--skip-mongodb' };
  } else {
    log('[4/5] MongoDB adapter: journey steps with 1 and 2 instances, companion round trip across instances ...');
    mongo = await benchMongo(logger, { concurrencies: size.concurrencies, warmupMs: size.warmupMs, measureMs: size.measureMs, linkBlocks: size.linkBlocks, linkPerBlock: Math.max(10, Math.round(size.linkPerBlock / 5)), linkWarmup: Math.max(5, Math.round(size.linkWarmup / 10)), log });
  }

  // 5. Flood.
  const flood = await floodSection();

  // 6. Capacity (issue #15).
  const capacity = await capacitySection();

  // 7. Full journeys (issue #15).
  const fullJourney = await fullJourneySection();

  // Report.
  log('\n== 1. Turns: journey step (Action.Execute invoke, CAS write, card) vs echo (message -> connector), same adapter ==');
  const turnRows: string[][] = [];
  for (const c of comparisons) {
    for (const s of [c.echo, c.journey]) {
      const pt = (k: string): string => (s.perTurn[k] === undefined ? 'n/a' : fmt(s.perTurn[k], 2));
      turnRows.push([`${s.kind}`, String(c.concurrency), String(s.turns), String(s.errors), fmt(s.turnsPerSecond, 1), fmt(s.latency.p50Ms), fmt(s.latency.p99Ms), s.kind === 'journey' ? fmt(c.ratio) : '', pt('storeWrites'), pt('storeCommits'), pt('connectorActivities'), pt('connectorConnections')]);
    }
  }
  log(table(['turn', 'conversations', 'turns', 'errors', 'turns/s', 'p50 ms', 'p99 ms', 'journey/echo', 'writes/turn', 'commits/turn', 'replies/turn', 'conns/turn'], turnRows));
  for (const c of comparisons) for (const s of [c.echo, c.journey]) if (s.firstError) log(`   first ${s.kind} error at ${c.concurrency}: ${s.firstError}`);

  log(`\n== 2. Security answer checks (verifyAnswers, 3 answers against a triple record; scrypt N=${answers.scrypt.N} r=${answers.scrypt.r} p=${answers.scrypt.p}, hash pool ${answers.threadPoolSize} threads) ==`);
  log(table(
    ['figure', 'p50 ms', 'p99 ms', 'max ms', 'samples/window'],
    [
      ['one check (3 answers), sequential', fmt(answers.check.p50Ms), fmt(answers.check.p99Ms), fmt(answers.check.maxMs), `${answers.check.count} runs`],
      ['event-loop delay, idle', fmt(answers.loopIdle.p50Ms), fmt(answers.loopIdle.p99Ms), fmt(answers.loopIdle.maxMs), `${fmt(answers.loopIdle.windowMs, 0)} ms`],
      [`event-loop delay, ${answers.concurrent} checks at once`, fmt(answers.loopUnderChecks.p50Ms), fmt(answers.loopUnderChecks.p99Ms), fmt(answers.loopUnderChecks.maxMs), `${fmt(answers.loopUnderChecks.windowMs, 0)} ms`],
    ],
  ));
  log(`   ${answers.concurrent} checks at once took ${answers.concurrentWallMs.map((w) => `${fmt(w, 0)} ms`).join(', ')} (wall, per round)`);

  log('\n== 3. Companion card.read_status: over the WebSocket link vs direct PIV session, same in-process virtual card ==');
  log(table(
    ['path', 'calls', 'p50 ms', 'p99 ms', 'max ms'],
    [
      ['direct (PivSession: SELECT, GET DATA CHUID, VERIFY status)', String(link.direct.count), fmt(link.direct.p50Ms, 3), fmt(link.direct.p99Ms, 3), fmt(link.direct.maxMs, 3)],
      ['link (CompanionLinkServer.sendCommand -> companion runtime)', String(link.link.count), fmt(link.link.p50Ms, 3), fmt(link.link.p99Ms, 3), fmt(link.link.maxMs, 3)],
      ['overhead (link - direct)', '', fmt(link.overheadP50Ms, 3), fmt(link.overheadP99Ms, 3), ''],
    ],
  ));
  if (link.errors > 0) log(`   ${link.errors} call(s) did not read the expected card id and PIN status`);

  log('\n== 4. MongoDB (issues #4, #8): journey steps, embedded vs MongoDB, 1 and 2 bot processes; companion round trip across instances ==');
  reportMongo(mongo, { fmt, table, log });

  const targets: TargetLine[] = [
    ...comparisons.map((c) => ({
      name: `journey turns/s >= ${TARGETS.journeyToEchoMin}x echo, ${c.concurrency} conversation(s)`,
      figure: `${fmt(c.ratio)}x (${fmt(c.journey.turnsPerSecond, 1)} vs ${fmt(c.echo.turnsPerSecond, 1)} turns/s)`,
      target: `>= ${TARGETS.journeyToEchoMin}x`,
      met: c.ratio >= TARGETS.journeyToEchoMin && c.journey.errors === 0,
    })),
    {
      name: `event-loop delay p99 while ${answers.concurrent} answer checks run`,
      figure: `${fmt(answers.loopUnderChecks.p99Ms)} ms (idle ${fmt(answers.loopIdle.p99Ms)} ms)`,
      target: `< ${TARGETS.loopDelayP99MaxMs} ms`,
      met: answers.loopUnderChecks.p99Ms < TARGETS.loopDelayP99MaxMs,
    },
    {
      name: 'companion link overhead (p50)',
      figure: `${fmt(link.overheadP50Ms, 3)} ms (p99 ${fmt(link.overheadP99Ms, 3)} ms)`,
      target: `< ${TARGETS.linkOverheadMaxMs} ms`,
      met: link.overheadP50Ms < TARGETS.linkOverheadMaxMs && link.errors === 0,
    },
  ];
  for (const line of floodReport(flood)) log(line);
  for (const line of capacityReport(capacity, fmt, table)) log(line);
  for (const line of fullJourneyLines(fullJourney)) log(line);

  log('\n== Targets (issue #2; reported, never enforced) ==');
  log(table(['target', 'figure', 'aim', 'result'], targets.map((t) => [t.name, t.figure, t.target, t.met ? 'met' : 'not met'])));

  writeReport({ startedAt: startedAt.toISOString(), durationMs: Date.now() - t0, quick, machine: machine(loadBefore), sizes: size, turns: comparisons, answers, link, mongodb: mongo, flood, capacity, fullJourney, targets });
}

function machine(loadBefore: number[]): Record<string, unknown> {
  return { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, platform: process.platform, arch: process.arch, loadAverageAtStart: loadBefore, loadAverageAtEnd: loadavg() };
}

/** Write the figures to `artifacts/bench/bench-<startedAt>.json`. */
function writeReport(report: { startedAt: string; durationMs: number } & Record<string, unknown>): void {
  const outDir = path.join(repoRoot, 'artifacts', 'bench');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `bench-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nWritten ${path.relative(repoRoot, file)} (run took ${fmt(report.durationMs / 1000, 1)} s)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
