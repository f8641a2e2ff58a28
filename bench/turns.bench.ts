/**
 * Turn throughput and latency: journey-step turns on the real bot against echo
 * turns through the same adapter and HTTP setup, closed loop, one in-flight
 * turn per conversation.
 *
 * A journey-step turn is an `Action.Execute` click (invoke `adaptiveCard/action`)
 * that makes the person's unlock journey take a step with a compare-and-set
 * write and answers with the re-rendered card. Each conversation belongs to its
 * own registered person with no companion paired, and alternates
 * - `unlock.start`: new run -> "Pair this computer first" problem card (CAS insert/save), and
 * - `unlock.cancel` with the run id and step read from that card -> "Unlock cancelled"
 *   (CAS save, an audit effect stored with it and then carried out).
 * An echo turn is a message that a bare `ActivityHandler` answers through the connector.
 */
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';
import type { ActivityClient, BenchConversation, PostResult } from './activity.client';
import type { ConnectorFake } from './connector.fake';

/** Result of one measured series of turns. */
export interface TurnSeries {
  kind: 'journey' | 'echo';
  /** Conversations driven at once (each with one turn in flight). */
  concurrency: number;
  /** Turns that completed as expected within the window. */
  turns: number;
  /** Turns answered wrongly (status, card or echo not as expected) or that failed. */
  errors: number;
  /** Wall time from the first turn sent to the last answered, ms. */
  elapsedMs: number;
  /** Completed turns per second. */
  turnsPerSecond: number;
  latency: LatencySummary;
  /** First error seen, for the report. */
  firstError: string | null;
  /** Side counters over the window divided by turns sent (e.g. store commits per turn). */
  perTurn: Record<string, number>;
}

/** Reads cumulative counters (store writes and commits, connector activities and connections). */
export type CounterProbe = () => Record<string, number>;

/** One conversation's next turn and what it must check; returns null when the answer was right, else why not. */
type Turn = (conversation: number) => Promise<string | null>;

/**
 * Run `turn` in `concurrency` closed loops until `durationMs` has passed.
 *
 * @param record - false for a warm-up (nothing kept)
 */
async function drive(kind: TurnSeries['kind'], concurrency: number, durationMs: number, turn: Turn, probe: CounterProbe, record = true): Promise<TurnSeries> {
  const latency = new LatencyRecorder();
  const before = probe();
  let turns = 0;
  let errors = 0;
  let firstError: string | null = null;
  const start = process.hrtime.bigint();
  const deadline = Date.now() + durationMs;
  const worker = async (c: number): Promise<void> => {
    while (Date.now() < deadline) {
      const t0 = process.hrtime.bigint();
      let problem: string | null;
      try {
        problem = await turn(c);
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
      }
      if (!record) continue;
      if (problem === null) {
        latency.recordNs(process.hrtime.bigint() - t0);
        turns += 1;
      } else {
        errors += 1;
        firstError ??= problem;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, c) => worker(c)));
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  const after = probe();
  const sent = Math.max(1, turns + errors);
  const perTurn = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, round((v - (before[k] ?? 0)) / sent, 2)]));
  return { kind, concurrency, turns, errors, elapsedMs: round(elapsedMs, 1), turnsPerSecond: round((turns * 1000) / elapsedMs, 1), latency: latency.summary(), firstError, perTurn };
}

/** Find the `data` of the first `Action.Execute` with this verb anywhere in a card. */
export function findActionData(card: unknown, verb: string): Record<string, unknown> | null {
  if (Array.isArray(card)) {
    for (const item of card) {
      const found = findActionData(item, verb);
      if (found) return found;
    }
    return null;
  }
  if (card && typeof card === 'object') {
    const o = card as Record<string, unknown>;
    if (o['type'] === 'Action.Execute' && o['verb'] === verb) return (o['data'] as Record<string, unknown> | undefined) ?? {};
    for (const value of Object.values(o)) {
      const found = findActionData(value, verb);
      if (found) return found;
    }
  }
  return null;
}

/** The Adaptive Card in an invoke response body, or why there is none. */
function cardOf(result: PostResult): { card: unknown } | { problem: string } {
  const body = result.body as { statusCode?: unknown; type?: unknown; value?: unknown } | null;
  if (result.status !== 200) return { problem: `HTTP ${result.status}` };
  if (!body || body.statusCode !== 200 || body.type !== 'application/vnd.microsoft.card.adaptive') {
    return { problem: `invoke answered ${JSON.stringify(body).slice(0, 200)}` };
  }
  return { card: body.value };
}

/** Journey-step turns, alternating start and cancel per conversation. */
export function journeyTurns(client: ActivityClient, botUrl: string, conversations: readonly BenchConversation[]): Turn {
  const next: ({ verb: 'unlock.start' } | { verb: 'unlock.cancel'; data: { runId: string; step: string } })[] = conversations.map(() => ({ verb: 'unlock.start' }));
  return async (c) => {
    const conv = conversations[c]!;
    const step = next[c]!;
    const result = await client.cardAction(botUrl, conv, step.verb, step.verb === 'unlock.cancel' ? step.data : {});
    const got = cardOf(result);
    next[c] = { verb: 'unlock.start' };
    if ('problem' in got) return `${step.verb}: ${got.problem}`;
    const text = JSON.stringify(got.card);
    if (step.verb === 'unlock.start') {
      const cancel = findActionData(got.card, 'unlock.cancel');
      if (!text.includes('Pair this computer first') || typeof cancel?.['runId'] !== 'string' || typeof cancel['step'] !== 'string') {
        return `unlock.start: not the "pair first" card with a Cancel button: ${text.slice(0, 200)}`;
      }
      next[c] = { verb: 'unlock.cancel', data: { runId: cancel['runId'], step: cancel['step'] } };
      return null;
    }
    return text.includes('Unlock cancelled') ? null : `unlock.cancel: not the "Unlock cancelled" card: ${text.slice(0, 200)}`;
  };
}

/** Echo turns: a message, answered through the connector with `echo: <text>`. */
export function echoTurns(client: ActivityClient, botUrl: string, conversations: readonly BenchConversation[], connector: ConnectorFake): Turn {
  const sent = conversations.map(() => 0);
  return async (c) => {
    const conv = conversations[c]!;
    const n = (sent[c]! += 1);
    const text = `hello ${n}`;
    const result = await client.message(botUrl, conv, text);
    if (result.status < 200 || result.status > 299) return `message: HTTP ${result.status}`;
    const echoed = connector.lastTextIn(conv.conversationId);
    return echoed === `echo: ${text}` ? null : `message: the connector got ${JSON.stringify(echoed)}, expected "echo: ${text}"`;
  };
}

/**
 * Warm up, then measure one series.
 *
 * @param warmupMs - unrecorded run first (JIT, connection pool, SQLite page cache), ms
 * @param measureMs - measured window, ms
 * @param probe - counters read before and after the measured window
 */
export async function measureTurns(kind: TurnSeries['kind'], concurrency: number, turn: Turn, warmupMs: number, measureMs: number, probe: CounterProbe): Promise<TurnSeries> {
  await drive(kind, concurrency, warmupMs, turn, probe, false);
  return drive(kind, concurrency, measureMs, turn, probe);
}
