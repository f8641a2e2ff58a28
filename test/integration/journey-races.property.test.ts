/**
 * Interleaving property test of the unlock journey (issue #9, STYLE.md 19).
 *
 * The real bot (`startBot`, embedded SQLite store, outbox mail, no app id) runs in
 * this process with every storage call passed through fast-check's scheduler
 * (`overrides.wrapStorage`), so the scheduler picks the order of the turns' reads and
 * writes. Over many seeds it interleaves, with random delays: typed starts ("my card
 * is locked"), "Unlock my smartcard" clicks, right and wrong answer clicks
 * (`Action.Execute`, verb `unlock.answers`), duplicated and stale clicks, a slow
 * channel (the connector answers the bot's activities, e.g. its "typing", when the
 * scheduler lets it, plus a real delay), and a bot restart in the middle (`close()`,
 * then a new bot on the same data directory). Companions on the real link, each with
 * a virtual PIV card, take the emailed code and unblock the card with the PUK they are
 * given. Then it checks, on what was stored (audit log, RA cases, person, pending
 * effects) and the outbox folder:
 * - at most 3 answer submissions are evaluated per person between two resets;
 * - once locked, no answers are evaluated, no code is sent, no PUK is released;
 * - each lockout opens exactly one RA case.
 *
 * Nothing here uses pcscd or the vpcd readers.
 */
import { randomBytes, scrypt } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPerson, adminResetSelfService } from '../../bot/admin.cli';
import { loadConfig, type BotConfig } from '../../bot/config';
import { startBot, type BotApp } from '../../bot/main';
import { normaliseAnswer } from '../../bot/security/answers';
import { deriveKeys, parseMasterKey } from '../../bot/security/keys';
import { createLogger } from '../../common/logger';
import type { AnswerHash, Storage } from '../../storage/storage.port';
import { answersFor, executeActions, invokeCard, pairDevice, randomDigits8, TeamsClient, teamsUser, type SeededPerson } from './adversarial-harness';
import { RaceCompanion, readStoredOutcome, ScheduledConnector, SchedulerGate, ScriptedScheduler, sleep, unlockInvariantViolations, type GateScheduler } from '../support/race-harness';

/** Runs of the property (each: a fresh copy of the seeded store, a bot, 1-2 people). */
const NUM_RUNS = Number(process.env['RACE_RUNS'] ?? 100);
/** Seed of a run to replay (with RACE_PATH), e.g. from a failure report. */
const REPLAY_SEED = process.env['RACE_SEED'] ? Number(process.env['RACE_SEED']) : undefined;
const REPLAY_PATH = process.env['RACE_PATH'];

/** A cheap scrypt hash of a seeded answer (the stored hash names its own parameters), so runs stay fast. */
function cheapAnswerHash(questionId: string, answer: string): Promise<AnswerHash> {
  const salt = randomBytes(16);
  const params = { N: 16, r: 1, p: 1 };
  return new Promise((resolve, reject) =>
    scrypt(normaliseAnswer(answer), salt, 32, params, (err, hash) => (err ? reject(err) : resolve({ questionId, salt: salt.toString('base64url'), hash: hash.toString('base64url'), params }))),
  );
}

/** One thing a person (or the operator) does during the scheduled part of a run. */
type RaceEvent =
  | { kind: 'type'; who: number; delayMs: number }
  | { kind: 'start_click'; who: number; delayMs: number }
  | { kind: 'answer'; who: number; right: boolean; card: 'latest' | 'first'; copies: number; delayMs: number }
  | { kind: 'restart'; delayMs: number }
  /** RA resets the person's self-service (the admin command's operation, on the running bot's store). */
  | { kind: 'ra_reset'; who: number; delayMs: number };

interface Scenario {
  people: number;
  /** Wrong attempts each person makes, one after another, before the scheduled part. */
  warmup: number[];
  events: RaceEvent[];
  /** Extra real delay of the channel's answer to "typing", ms. */
  typingDelayMs: number;
  /** After the events: each person answers the latest questions card they were shown (right or wrong). */
  finale: boolean[];
}

/**
 * @param withReset - include RA resets (added after the first failure was found; the
 *   regression seed replays the generator without them, so it draws the same scenario)
 */
const eventArb = (people: number, withReset: boolean): fc.Arbitrary<RaceEvent> => {
  const who = fc.integer({ min: 0, max: people - 1 });
  const delayMs = fc.integer({ min: 0, max: 40 });
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('type' as const), who, delayMs }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('start_click' as const), who, delayMs }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('answer' as const), who, right: fc.boolean(), card: fc.constantFrom('latest' as const, 'latest' as const, 'first' as const), copies: fc.constantFrom(1, 1, 2), delayMs }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), delayMs: fc.integer({ min: 0, max: 60 }) }) },
    ...(withReset ? [{ weight: 1, arbitrary: fc.record({ kind: fc.constant('ra_reset' as const), who, delayMs }) }] : []),
  );
};

const scenarioArb = (withReset: boolean): fc.Arbitrary<Scenario> => fc.integer({ min: 1, max: 2 }).chain((people) =>
  fc.record({
    people: fc.constant(people),
    warmup: fc.array(fc.constantFrom(2, 2, 1, 0), { minLength: people, maxLength: people }),
    events: fc.array(eventArb(people, withReset), { minLength: 1, maxLength: 6 }),
    typingDelayMs: fc.constantFrom(0, 0, 50, 200),
    finale: fc.array(fc.boolean(), { minLength: people, maxLength: people }),
  }),
);

describe('unlock journey under interleavings (issue #9): lockout, codes, PUK and RA cases hold on what is stored', () => {
  const gate = new SchedulerGate();
  const connector = new ScheduledConnector(gate);
  const botRef = { url: '' };
  let teams: TeamsClient;
  const masterKey = randomBytes(32).toString('base64');
  const logger = createLogger({ name: 'race-bot', level: process.env['RACE_LOG'] === '1' ? 'warn' : 'silent' });
  let root = '';
  let templateDir = '';
  const people: Array<SeededPerson & { credential: string }> = [];
  let runNo = 0;
  const keys = deriveKeys(parseMasterKey(masterKey, 'SMARTCARD_MASTER_KEY'));
  /** Runs of the property in this file (a time limit may stop it early; too few runs fail). */
  let runsDone = 0;

  const configFor = (dataDir: string): BotConfig =>
    loadConfig({ SMARTCARD_DATA_DIR: dataDir, SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', COMPANION_COMMAND_TIMEOUT_MS: '2000', PAIRING_POLL_INTERVAL_SECONDS: '1' });

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'journey-races-'));
    templateDir = path.join(root, 'template');
    await connector.start();
    teams = new TeamsClient(botRef, connector.url);
    // Seed a store once (two registered people with a bound card, an enrolled PUK and a
    // paired companion); every run starts from a copy of it.
    const app = await startBot(configFor(templateDir), { logger, wrapStorage: gate.wrap });
    botRef.url = app.url;
    try {
      for (const name of ['Rae Race', 'Sid Second']) {
        const user = teamsUser(name);
        const salt = randomBytes(3).toString('hex');
        const answers: Record<string, string> = { q01: `Alpha ${salt}`, q02: `Bravo ${salt}`, q03: `Charlie ${salt}`, q04: `Delta ${salt}` };
        const puk = randomDigits8();
        const cardId = randomBytes(16).toString('hex');
        const email = `${name.split(' ')[0]!.toLowerCase()}.${salt}@nhs.net`;
        const added = await addPerson(app.storage, keys, { teamsUserId: user.id, displayName: name, email, cardId, puk, answers: Object.entries(answers).map(([questionId, answer]) => ({ questionId, answer })) });
        const p = (await app.storage.persons.get(added.personId))!;
        const cheap = await Promise.all(Object.entries(answers).map(([q, a]) => cheapAnswerHash(q, a)));
        expect(await app.storage.persons.save({ ...p, answers: cheap, version: p.version + 1 }, p.version)).toBe('saved');
        const d = await pairDevice(botRef, teams, user, `WS-${name.split(' ')[0]!}`);
        people.push({ personId: added.personId, user, email, cardId, puk, answers, credential: d.credential });
      }
    } finally {
      await app.close();
    }
  }, 60_000);

  afterAll(async () => {
    await connector.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  /**
   * One run: copy the seeded store, start the bot, connect the companions, make the
   * warm-up attempts, then let `scheduler` interleave the events and the finale.
   *
   * @returns the broken invariants (empty when all hold) and a short log of the run
   */
  async function runScenario(scheduler: GateScheduler, sc: Scenario): Promise<{ violations: string[]; log: string[] }> {
    const dir = path.join(root, `run-${++runNo}`);
    await cp(templateDir, dir, { recursive: true });
    const config = configFor(dir);
    const outboxDir = config.mail.outboxDir;
    const who = people.slice(0, sc.people);
    const log: string[] = [];
    const cards = who.map(() => ({ all: [] as unknown[], latest: null as unknown }));
    const seen = (i: number, card: unknown): void => {
      if (!card) return;
      cards[i]!.latest = card;
      if (executeActions(card).some((a) => a.verb === 'unlock.answers')) cards[i]!.all.push(card);
    };
    connector.onActivity = (call) => {
      const i = who.findIndex((p) => p.user.conversationId === call.conversationId);
      const atts = call.body['attachments'] as Array<{ content?: unknown }> | undefined;
      if (i >= 0 && atts?.[0]?.content) seen(i, atts[0].content);
    };
    connector.typingDelayMs = sc.typingDelayMs;
    let raw: Storage | null = null;
    const wrap = (s: Storage): Storage => {
      raw = s;
      return gate.wrap(s);
    };
    gate.scheduler = null;
    let app: BotApp = await startBot(config, { logger, wrapStorage: wrap });
    botRef.url = app.url;
    const companions = who.map((p) => new RaceCompanion({ credential: p.credential, cardId: p.cardId, puk: p.puk, email: p.email, outboxDir }));
    try {
      for (const c of companions) await c.connect(app.url);
      // Warm-up, in order and unscheduled: a questions card, then wrong attempts.
      for (const [i, p] of who.entries()) {
        seen(i, invokeCard(await teams.invoke(p.user, 'unlock.start', {})));
        for (let k = 0; k < sc.warmup[i]!; k++) {
          const card = cards[i]!.latest;
          const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
          if (!ans) throw new Error(`warm-up: no questions card for person ${i}`);
          seen(i, invokeCard(await teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p, true)) })));
        }
      }

      gate.scheduler = scheduler;
      let restarting: Promise<void> | null = null;
      const restart = async (): Promise<void> => {
        const old = app;
        await old.close();
        app = await startBot(config, { logger, wrapStorage: wrap });
        botRef.url = app.url;
        for (const c of companions) await c.connect(app.url).catch((err: unknown) => log.push(`companion reconnect failed: ${String(err)}`));
      };
      const answer = async (i: number, right: boolean, which: 'latest' | 'first', copies: number, label: string): Promise<void> => {
        const p = who[i]!;
        const card = which === 'first' ? cards[i]!.all[0] : cards[i]!.latest;
        const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
        if (!card || !ans) {
          log.push(`${label}: no questions card to answer`);
          return;
        }
        const values = await answersFor(card, p, !right);
        const rs = await Promise.all(Array.from({ length: copies }, () => teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...values }).catch((err: unknown) => ({ status: 0, text: String(err), json: null, headers: {} }))));
        for (const r of rs) seen(i, invokeCard(r));
        log.push(`${label}: ${rs.map((r) => r.status).join(',')}`);
      };
      const perform = async (ev: RaceEvent, n: number): Promise<void> => {
        await sleep(ev.delayMs);
        const label = `#${n} ${ev.kind}${'who' in ev ? ` p${ev.who}` : ''}${ev.kind === 'answer' ? ` ${ev.right ? 'right' : 'wrong'} ${ev.card}${ev.copies > 1 ? ' x2' : ''}` : ''}`;
        await gate.delay(`begin ${label}`);
        if (restarting) await restarting.catch(() => undefined);
        try {
          switch (ev.kind) {
            case 'type': {
              const r = await teams.message(who[ev.who]!.user, 'my card is locked');
              log.push(`${label}: ${r.status}`);
              return;
            }
            case 'start_click': {
              const r = await teams.invoke(who[ev.who]!.user, 'unlock.start', {});
              seen(ev.who, invokeCard(r));
              log.push(`${label}: ${r.status}`);
              return;
            }
            case 'answer':
              await answer(ev.who, ev.right, ev.card, ev.copies, label);
              return;
            case 'ra_reset': {
              const r = await adminResetSelfService(app.storage, keys, logger, who[ev.who]!.personId, 'interleaving test');
              log.push(`${label}: cleared ${r.result.clearedCaseRef ?? "no lock"} after ${r.result.attemptsBefore} attempt(s)`);
              return;
            }
            case 'restart':
              restarting = restart();
              await restarting;
              log.push(`${label}: done`);
              return;
          }
        } catch (err) {
          log.push(`${label}: failed (${err instanceof Error ? err.message : String(err)})`);
        }
      };
      let finished = false;
      const all = Promise.allSettled(sc.events.map((ev, n) => perform(ev, n))).finally(() => (finished = true));
      await gate.pump(() => finished, { timeoutMs: 60_000 });
      await all;
      // Finale: each person answers the latest questions card they were shown.
      finished = false;
      const fin = Promise.allSettled(who.map((_, i) => answer(i, sc.finale[i]!, 'latest', 1, `finale p${i} ${sc.finale[i] ? 'right' : 'wrong'}`))).finally(() => (finished = true));
      await gate.pump(() => finished, { timeoutMs: 60_000 });
      await fin;
      await gate.quiesce(() => companions.every((c) => c.idle()));
      gate.scheduler = null;

      const violations: string[] = [];
      for (const [i, p] of who.entries()) {
        const outcome = await readStoredOutcome(raw!, outboxDir, p, companions[i]!.pukReceipts);
        for (const v of unlockInvariantViolations(outcome)) violations.push(`person ${i}: ${v}`);
        log.push(`person ${i} audit: ${outcome.audit.map((e) => e.action.replace(/^unlock\./, '')).join(' > ')}`);
        log.push(`person ${i} companion: ${companions[i]!.events.join(' > ')}`);
      }
      if (process.env['RACE_LOG'] === '1') process.stderr.write(`run ${runNo} log:\n  ${log.join('\n  ')}\n`);
      return { violations, log };
    } finally {
      gate.scheduler = null;
      for (const c of companions) c.close();
      await app.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /**
   * The bypass of issue #9 as the property first found it (shrunk), on d233544 and before:
   * two wrong attempts; a wrong answer click and a typed "my card is locked" at once; the
   * typed turn reads the person before the lock is stored, and its start replaces the
   * locked-out run with a fresh questions card; answering that card is evaluated again.
   * Scripted: the channel answers the typed turn's "typing" only after the lockout is stored.
   */
  const BYPASS: Scenario = {
    people: 1,
    warmup: [2],
    events: [
      { kind: 'answer', who: 0, right: false, card: 'latest', copies: 1, delayMs: 0 },
      { kind: 'type', who: 0, delayMs: 0 },
    ],
    typingDelayMs: 0,
    finale: [false],
  };

  it.each([
    ['wrong', false],
    ['right', true],
  ])('regression: a typed start racing the 3rd wrong answer (its "typing" answered after the lockout), then a %s answer on the card it shows', async (_name, right) => {
    const scheduler = new ScriptedScheduler((label, released) => label === 'teams <- typing' && !released.some((l) => l.includes('self_service_locked')));
    const { violations, log } = await runScenario(scheduler, { ...BYPASS, finale: [right] });
    expect(violations, `run:\n${log.join('\n')}\nstorage order:\n${scheduler.released.join('\n')}`).toEqual([]);
  }, 60_000);

  /** The property: every run of a generated scenario keeps the invariants. */
  const property = (withReset = true): fc.IAsyncPropertyWithHooks<[fc.Scheduler, Scenario]> =>
    fc.asyncProperty(fc.scheduler(), scenarioArb(withReset), async (s, sc) => {
      runsDone++;
      const t0 = Date.now();
      const { violations, log } = await runScenario(s, sc);
      if (process.env['RACE_LOG'] === '1') process.stderr.write(`run ${runNo}: ${Date.now() - t0} ms, ${sc.events.map((e) => e.kind).join(',')}${violations.length ? ' FAILED' : ''}\n`);
      if (process.env['RACE_NOCHECK'] === '1') return;
      if (violations.length > 0) {
        throw new Error(`invariants broken:\n  ${violations.join('\n  ')}\nrun:\n  ${log.join('\n  ')}\nstorage order:\n${s.report().filter((r) => r.status !== 'pending').map((r) => `  ${r.label}`).join('\n')}`);
      }
    });

  it('regression: seed 1054880466, path "9:1:1:1:1:1:1" (the shrunk bypass found on d233544) holds', async () => {
    await fc.assert(property(false), { seed: 1054880466, path: '9:1:1:1:1:1:1', endOnFailure: true });
  }, 60_000);

  it(
    'holds over many seeds (typed starts, clicks, duplicates, stale clicks, slow channel, restart)',
    async () => {
      runsDone = 0;
      await fc.assert(property(), {
        numRuns: REPLAY_SEED !== undefined ? 1 : NUM_RUNS,
        ...(REPLAY_SEED !== undefined ? { seed: REPLAY_SEED, ...(REPLAY_PATH ? { path: REPLAY_PATH } : {}) } : {}),
        interruptAfterTimeLimit: 150_000,
        markInterruptAsFailure: false,
      });
      // A machine so busy that the time limit stopped the runs early has not shown much.
      expect(runsDone, 'runs completed before the time limit').toBeGreaterThanOrEqual(Math.min(NUM_RUNS, REPLAY_SEED !== undefined ? 1 : 40));
    },
    200_000,
  );
});
