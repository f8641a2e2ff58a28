/**
 * Click flood (issue #9, "Expensive work only for current clicks"): one person sends
 * 100 identical `unlock.answers` clicks at once on their questions card while another
 * person completes the questions step. Measured: the other person's answer-check turn
 * (HTTP request to invoke response) during the flood against the same turn idle, the
 * flood's own wall time, and how many scrypt runs the flood cost.
 *
 * Both people are registered (seeded like section 1) and each has a companion runtime
 * paired through the bot's pairing service and connected over the WebSocket link, with
 * an in-process virtual card that is blocked, so `unlock.start` answers with the
 * questions card (no pcscd). The flood's clicks carry the right answers, so one of them
 * may pass and mail a code; both runs are cancelled after each round and a new run is
 * started, so no one is ever locked out by the benchmark.
 *
 * scrypt runs are counted by wrapping `node:crypto` `scrypt` in this process (see
 * `countScrypt`): every answer check and every hash the bot makes goes through it.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger';
import { loadConfig } from '../bot/config';
import { startBot, type BotApp } from '../bot/main';
import { QUESTION_BANK } from '../bot/journeys/registration/question-bank';
import type { Person } from '../storage/storage.port';
import { CardService } from '../companion/card/card.service';
import { CompanionRuntime } from '../companion/companion.runtime';
import { CredentialStore } from '../companion/pairing/credential.store';
import { InProcessReaderAdapter } from '../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../companion/virtual-card/virtual-piv-card';
import { ActivityClient, type BenchConversation, type PostResult } from './activity.client';
import { ConnectorFake } from './connector.fake';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';
import { pairCompanion } from './link.bench';
import { findActionData } from './turns.bench';

export interface FloodBenchResult {
  /** Clicks in one flood. */
  floodSize: number;
  /** The other person's answer-check turn with no flood. */
  idle: LatencySummary;
  /** The same turn sent right after a flood's clicks went out. */
  duringFlood: LatencySummary;
  /** Wall time of each flood, first click sent to last answer, ms. */
  floodWallMs: LatencySummary;
  /** scrypt runs of one idle answer check (3 answers: 3). */
  scryptPerCheck: number;
  /** scrypt runs per flood (the other person's check taken out), mean over the rounds. */
  scryptPerFlood: number;
  /** HTTP statuses of the flood's clicks, all rounds: status -> count. */
  floodStatuses: Record<string, number>;
  /** Turns not answered as expected (other person's answer turns), with the first. */
  errors: number;
  firstError: string | null;
}

/** Counts calls to `node:crypto` `scrypt` in this process (live ESM bindings are re-synced). */
export function countScrypt(): { count: () => number; restore: () => void } {
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  const original = crypto.scrypt;
  let calls = 0;
  const counted = ((...args: Parameters<typeof original>) => {
    calls += 1;
    return (original as (...a: unknown[]) => void)(...args);
  }) as typeof original;
  crypto.scrypt = counted;
  syncBuiltinESMExports();
  return {
    count: () => calls,
    restore: () => {
      crypto.scrypt = original;
      syncBuiltinESMExports();
    },
  };
}

/** One person at their own workstation: conversation and companion. */
interface Seat {
  person: Person;
  conv: BenchConversation;
  runtime: CompanionRuntime;
  reader: InProcessReaderAdapter;
}

/** The Adaptive Card of an invoke answer, or why there is none. */
function cardIn(r: PostResult): { card: unknown } | { problem: string } {
  const b = r.body as { statusCode?: unknown; type?: unknown; value?: unknown } | null;
  if (r.status !== 200 || !b || b.type !== 'application/vnd.microsoft.card.adaptive') return { problem: `HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}` };
  return { card: b.value };
}

/** The questions of a questions card (`Input.Text` a1..a3, labelled with the question text). */
function questionInputs(card: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      const o = n as Record<string, unknown>;
      if (o['type'] === 'Input.Text' && typeof o['id'] === 'string' && /^a[123]$/.test(o['id'])) {
        const q = QUESTION_BANK.find((x) => String(o['label'] ?? '').includes(x.text));
        if (q) out[o['id']] = q.id;
      }
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(card);
  return out;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Run the flood benchmark on its own bot (embedded store in a temporary directory).
 *
 * @param seed - registers `count` people with `answers` (run.ts's seeding)
 * @param answers - question id -> answer the seeded people gave
 * @param options.rounds - floods (each with one measured answer turn of the other person);
 *   options.idleSamples - measured idle answer turns; options.floodSize - clicks per flood (100)
 */
export async function benchFlood(
  logger: Logger,
  seed: (app: BotApp, count: number) => Promise<Person[]>,
  answers: Readonly<Record<string, string>>,
  options: { rounds: number; idleSamples: number; floodSize: number; log: (line: string) => void },
): Promise<FloodBenchResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-flood-'));
  const connector = new ConnectorFake();
  const serviceUrl = await connector.start();
  const app = await startBot(loadConfig({ PORT: '0', HOST: '127.0.0.1', SMARTCARD_DATA_DIR: dataDir, SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' }), { logger });
  const client = new ActivityClient(serviceUrl);
  const scrypt = countScrypt();
  const seats: Seat[] = [];
  try {
    const [flooderPerson, otherPerson] = await seed(app, 2);
    for (const [i, person] of [flooderPerson!, otherPerson!].entries()) {
      const reader = new InProcessReaderAdapter();
      reader.insert(new VirtualPivCard({ cardId: person.cardId ?? randomBytes(16).toString('hex'), pin: '204817', puk: '73920184', blocked: true }));
      const credentials = new CredentialStore(join(dataDir, `companion-${i}`), logger);
      const deviceId = await pairCompanion(app, person, credentials, new URL(app.url));
      const runtime = new CompanionRuntime({ botUrl: new URL(app.url), workstation: `FLOOD-WS-${i}`, pagePort: 0, credentials, card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }), logger, print: () => undefined });
      seats.push({ person, conv: { conversationId: `a:bench-flood-${i}`, userId: person.teamsUserId, userName: person.displayName }, runtime, reader });
      await runtime.start();
      await until(() => runtime.linkState === 'ready' && app.link.isConnected(deviceId), 10_000, `companion ${i} link`);
    }
    const [flooder, other] = seats as [Seat, Seat];

    /** A new run at the questions step: its answers click data (right answers filled in). */
    const toQuestions = async (seat: Seat): Promise<Record<string, unknown>> => {
      const got = cardIn(await client.cardAction(app.url, seat.conv, 'unlock.start', {}));
      if ('problem' in got) throw new Error(`unlock.start: ${got.problem}`);
      const data = findActionData(got.card, 'unlock.answers');
      const inputs = questionInputs(got.card);
      if (!data || Object.keys(inputs).length !== 3) throw new Error(`unlock.start did not answer with the questions card: ${JSON.stringify(got.card).slice(0, 300)}`);
      return { ...data, ...Object.fromEntries(Object.entries(inputs).map(([k, q]) => [k, answers[q] ?? ''])) };
    };
    /**
     * Cancel whatever run the person is in (its current card's Cancel), then reset their
     * self-service (every evaluated answer submission counts towards the 3 allowed between
     * resets), so the next start is a fresh questions card. Bots from before the reset
     * operation existed counted only failed answers and need no reset.
     */
    const cancel = async (seat: Seat): Promise<void> => {
      const got = cardIn(await client.cardAction(app.url, seat.conv, 'journey.show', { journey: 'unlock' }));
      const data = 'card' in got ? findActionData(got.card, 'unlock.cancel') : null;
      if (data) await client.cardAction(app.url, seat.conv, 'unlock.cancel', data);
      if (typeof app.unlock.resetSelfService === 'function') await app.unlock.resetSelfService(seat.person.id, 'bench', 'flood benchmark round');
    };
    let errors = 0;
    let firstError: string | null = null;
    /** The other person's answer turn; a right check answers with a card that has no questions left. */
    const answerTurn = async (data: Record<string, unknown>, into: LatencyRecorder): Promise<void> => {
      const t0 = process.hrtime.bigint();
      const r = await client.cardAction(app.url, other.conv, 'unlock.answers', data);
      const ns = process.hrtime.bigint() - t0;
      const got = cardIn(r);
      const problem = 'problem' in got ? got.problem : findActionData(got.card, 'unlock.answers') ? `still the questions card: ${JSON.stringify(got.card).slice(0, 200)}` : null;
      if (problem) {
        errors += 1;
        firstError ??= `unlock.answers: ${problem}`;
      } else into.recordNs(ns);
    };

    // Idle: the other person alone.
    options.log('      idle answer checks ...');
    await answerTurn(await toQuestions(other), new LatencyRecorder()); // warm-up
    await cancel(other);
    const idle = new LatencyRecorder();
    let idleScrypt = 0;
    for (let i = 0; i < options.idleSamples; i++) {
      const data = await toQuestions(other);
      const s0 = scrypt.count();
      await answerTurn(data, idle);
      idleScrypt += scrypt.count() - s0;
      await cancel(other);
    }
    const scryptPerCheck = round(idleScrypt / Math.max(1, options.idleSamples), 2);

    // Floods.
    const during = new LatencyRecorder();
    const floodWall = new LatencyRecorder();
    const statuses: Record<string, number> = {};
    let floodScrypt = 0;
    for (let round_ = 0; round_ < options.rounds; round_++) {
      options.log(`      flood ${round_ + 1}/${options.rounds} (${options.floodSize} clicks) ...`);
      const floodData = await toQuestions(flooder);
      const otherData = await toQuestions(other);
      const s0 = scrypt.count();
      const f0 = process.hrtime.bigint();
      const flood = Promise.all(
        Array.from({ length: options.floodSize }, () =>
          client.cardAction(app.url, flooder.conv, 'unlock.answers', floodData).then(
            (r) => String(r.status),
            () => 'error',
          ),
        ),
      ).then((s) => {
        floodWall.recordNs(process.hrtime.bigint() - f0);
        return s;
      });
      // The other person clicks once the flood's requests are on their way.
      await new Promise((r) => setTimeout(r, 5));
      await answerTurn(otherData, during);
      for (const s of await flood) statuses[s] = (statuses[s] ?? 0) + 1;
      floodScrypt += scrypt.count() - s0 - scryptPerCheck;
      await cancel(flooder);
      await cancel(other);
    }
    return {
      floodSize: options.floodSize,
      idle: idle.summary(),
      duringFlood: during.summary(),
      floodWallMs: floodWall.summary(),
      scryptPerCheck,
      scryptPerFlood: round(floodScrypt / Math.max(1, options.rounds), 1),
      floodStatuses: statuses,
      errors,
      firstError,
    };
  } finally {
    scrypt.restore();
    for (const s of seats) {
      await s.runtime.stop();
      await s.reader.close();
    }
    client.close();
    await app.close();
    await connector.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
