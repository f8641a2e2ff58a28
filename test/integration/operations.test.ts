/**
 * Operations (issue #11): readiness, a request id per turn in the JSON log, and graceful shutdown.
 *
 * The real bot process (embedded store, outbox mail) on its own loopback port and data directory; Teams
 * activities posted raw; what the bot sends to Teams caught by a connector stand-in that can hold its answers
 * (a slow Bot Framework connector), so a turn is still in flight when SIGTERM comes; a raw companion on the
 * link that can leave a command unanswered, so an effect is in flight. The store is read (read-only SQL) for
 * what was kept. One in-process bot shows `/readyz` naming the store when the store stops answering.
 *
 * Nothing here uses pcscd, the vpcd readers or Chromium.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../bot/config';
import { startBot } from '../../bot/main';
import type { Storage } from '../../storage/storage.port';
import { artifactDir } from '../support/artifacts';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import {
  activityText,
  executeActions,
  httpRequest,
  invokeCard,
  pairDevice,
  RawCompanion,
  RecordingConnector,
  seedPerson,
  sleep,
  TeamsClient,
  unlockRun,
  type SeededPerson,
  readStore,
} from './adversarial-harness';

/** A connector stand-in that, while `holding`, keeps each request waiting until `release()` (a slow connector). */
class HeldConnector extends RecordingConnector {
  holding = false;
  /** Requests that arrived (held or not), in order. */
  arrived = 0;
  private held: Array<() => void> = [];

  release(): void {
    this.holding = false;
    const h = this.held;
    this.held = [];
    for (const f of h) f();
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    this.arrived++;
    if (!this.holding) return super.handle(req, res);
    this.held.push(() => super.handle(req, res));
  }
}

/** The graceful-shutdown budget the bot runs with here, ms (links close when a quarter is left). */
const GRACE_MS = 4000;

describe('operations: readiness, request ids, graceful shutdown (bot process)', () => {
  let bot: BotStack;
  let conn: HeldConnector;
  let teams: TeamsClient;
  let alice: SeededPerson;
  const raws: RawCompanion[] = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const journey = (personId: string): { run: Record<string, unknown>; pending: Array<{ type: string; attempts: number; payload: Record<string, unknown> }>; ui: { activityId: string | null } } => {
    const row = sql<{ state: string; pending_effects: string; ui: string }>('SELECT state, pending_effects, ui FROM journeys WHERE key = ?', `${personId}:unlock`)[0];
    if (!row) throw new Error(`no unlock journey for ${personId}`);
    return { run: unlockRun(row.state), pending: JSON.parse(row.pending_effects) as never, ui: JSON.parse(row.ui) as never };
  };
  /** Parsed JSON log lines of the running bot process. */
  const logLines = (): Array<Record<string, unknown>> =>
    bot.process
      .lines()
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  /** Send SIGTERM to the bot process; returns when it was sent (ms since epoch). */
  const sigterm = (): number => {
    process.kill(bot.process.pid, 'SIGTERM');
    return Date.now();
  };

  beforeAll(async () => {
    bot = await startBotStack('operations', { SHUTDOWN_GRACE_MS: String(GRACE_MS), COMPANION_COMMAND_TIMEOUT_MS: '60000' }, { mail: 'outbox' });
    conn = new HeldConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
    alice = await seedPerson(bot, 'Alice Ops');
  });

  afterAll(async () => {
    for (const r of raws) r.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('GET /readyz: 200 with the store and mail named; 503 naming mail when the outbox folder cannot be written; /healthz stays 200', async () => {
    const ready = await httpRequest(`${bot.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', checks: { storage: 'ok', mail: 'ok' } });

    // The outbox folder replaced by a file: nothing can be written there.
    const moved = `${bot.outboxDir}.moved`;
    renameSync(bot.outboxDir, moved);
    writeFileSync(bot.outboxDir, 'not a folder');
    try {
      const r = await httpRequest(`${bot.url}/readyz`);
      expect(r.status).toBe(503);
      expect(r.json).toEqual({ status: 'not ready', failing: ['mail'], checks: { storage: 'ok', mail: 'failing' } });
      expect((await httpRequest(`${bot.url}/healthz`)).status).toBe(200);
      await bot.process.waitForLine(/"part":"mail".*readiness: part not reachable/, 5000);
    } finally {
      rmSync(bot.outboxDir);
      renameSync(moved, bot.outboxDir);
    }
    expect((await httpRequest(`${bot.url}/readyz`)).status).toBe(200);
  });

  it('every log line of one turn carries that turn\'s request id (its activity id), and another turn\'s lines another', async () => {
    // An unlock with a paired companion writes several lines (journey step, card read, effects).
    const dev = await pairDevice(bot, teams, alice.user, 'WS-OPS-A');
    const c = await RawCompanion.connect(bot, `Bearer ${dev.credential}`);
    raws.push(c);
    c.cardStatus = { present: true, reader: 'R', cardId: alice.cardId, pinRetries: 0 };
    const first = `ops-${randomUUID()}`;
    const second = `ops-${randomUUID()}`;
    const r1 = await teams.raw(alice.user, { id: first, type: 'message', text: 'unlock', textFormat: 'plain' });
    expect(r1.status).toBe(200);
    const r2 = await teams.raw(alice.user, { id: second, type: 'message', text: 'cancel', textFormat: 'plain' });
    expect(r2.status).toBe(200);
    await sleep(300);
    const lines = logLines();
    const ofFirst = lines.filter((l) => l['requestId'] === first);
    const ofSecond = lines.filter((l) => l['requestId'] === second);
    // Each turn: a line when it starts, its own lines, a line when it is done, all under its id.
    expect(ofFirst.map((l) => l['msg'])).toContain('turn started');
    expect(ofFirst.map((l) => l['msg'])).toContain('turn done');
    expect(ofSecond.map((l) => l['msg'])).toContain('turn done');
    expect(ofFirst.find((l) => l['msg'] === 'turn done')).toMatchObject({ activityType: 'message', name: 'bot' });
    // The lines of a turn are the lines written between its start and its end (nothing else ran meanwhile).
    const i0 = lines.findIndex((l) => l['requestId'] === first && l['msg'] === 'turn started');
    const i1 = lines.findIndex((l) => l['requestId'] === first && l['msg'] === 'turn done');
    expect(lines.slice(i0, i1 + 1).map((l) => l['requestId'])).toEqual(ofFirst.map(() => first));
    // Secrets stay redacted: the credential never shows in a line.
    expect(bot.process.output()).not.toContain(dev.credential.split('.')[1]!);
    c.close();
  });

  it('SIGTERM while a turn waits on a slow connector: the turn finishes, its reply reaches Teams, the store is consistent, exit 0 within the bound', async () => {
    const bob = await seedPerson(bot, 'Bob Ops');
    conn.holding = true;
    const before = conn.arrived;
    const activityId = `ops-${randomUUID()}`;
    const turn = teams.raw(bob.user, { id: activityId, type: 'message', text: 'unlock', textFormat: 'plain' });
    // The turn's first send (the typing indicator) is held at the connector: the turn is in flight.
    await expect.poll(() => conn.arrived, { timeout: 10_000 }).toBeGreaterThan(before);
    const t0 = sigterm();
    await bot.process.waitForLine(/shutdown: no longer accepting/, 5000);
    // No new connections are taken.
    await expect(httpRequest(`${bot.url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
    // The bot waits for the turn, not for the grace time to run out.
    await sleep(1000);
    expect(bot.process.hasExited()).toBe(false);
    conn.release();
    const answered = await turn;
    expect(answered.status).toBe(200);
    expect(await bot.process.waitForExit(GRACE_MS + 3000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(GRACE_MS + 1500);
    expect(bot.process.output()).toMatch(/shutdown: done, nothing left in flight/);

    // The reply reached Teams: a card, whose activity id the journey stored after the send.
    const cardCall = conn.calls.filter((c) => c.conversationId === bob.user.conversationId && Array.isArray(c.body['attachments']));
    expect(cardCall).toHaveLength(1);
    expect(activityText(cardCall[0]!.body)).toMatch(/companion|Smartcard Assist|pair/i);
    const j = journey(bob.personId);
    expect(j.pending).toEqual([]);
    expect(j.run['phase']).toBe('card_problem');
    expect(j.ui.activityId).toMatch(/^act-\d+$/);
    // Every line of that turn, before and after the signal, carries its request id.
    expect(logLines().filter((l) => l['requestId'] === activityId).length).toBeGreaterThanOrEqual(1);
    await bot.restart();
  });

  it('SIGTERM while an effect waits on a companion: the turn finishes, the link closes, the effect stays pending, and the next start carries it out', async () => {
    const gil = await seedPerson(bot, 'Gil Ops');
    const dev = await pairDevice(bot, teams, gil.user, 'WS-OPS-G');
    const c1 = await RawCompanion.connect(bot, `Bearer ${dev.credential}`);
    raws.push(c1);
    c1.cardStatus = { present: true, reader: 'R', cardId: gil.cardId, pinRetries: 0 };
    const card = invokeCard(await teams.invoke(gil.user, 'unlock.start', {}));
    expect(executeActions(card).some((a) => a.verb === 'unlock.answers')).toBe(true);
    expect(journey(gil.personId).run['phase']).toBe('answering');

    // Cancel: its step stores "close the run on the companion" and carries it out; the companion never answers.
    c1.autoReply = false;
    const closesBefore = c1.commands('unlock.closed').length;
    const turn = teams.raw(gil.user, { id: `ops-${randomUUID()}`, type: 'message', text: 'cancel', textFormat: 'plain' });
    await c1.waitFor(() => c1.commands('unlock.closed').length > closesBefore, 10_000);
    const t0 = sigterm();
    // The link closes when a quarter of the grace time is left (1001: going away), not before.
    const closeCode = await c1.waitClosed(GRACE_MS + 2000);
    expect(closeCode).toBe(1001);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(GRACE_MS * 0.75 - 300);
    const answered = await turn;
    expect(answered.status).toBe(200);
    expect(await bot.process.waitForExit(GRACE_MS + 3000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(GRACE_MS + 1500);
    expect(conn.textsIn(gil.user.conversationId).some((t) => /^Cancelled/.test(t))).toBe(true);

    // Stored: the run ended, and the command that did not get through is still pending, counted once.
    const stopped = journey(gil.personId);
    expect(stopped.run).toMatchObject({ phase: 'ended', reason: 'cancelled' });
    expect(stopped.pending.map((e) => [e.type, (e.payload['command'] as { kind: string }).kind, e.attempts])).toEqual([['companion.command', 'unlock.closed', 1]]);

    // The next start: the companion reconnects, and the pending command reaches it.
    await bot.restart();
    const c2 = await RawCompanion.connect(bot, `Bearer ${dev.credential}`);
    raws.push(c2);
    await c2.waitFor(() => c2.commands('unlock.closed').length > 0, 15_000);
    await expect.poll(() => journey(gil.personId).pending, { timeout: 10_000 }).toEqual([]);
    c2.close();
  });

  it('SIGTERM with a turn that never finishes: exit 1 within the bound, nothing half-stored, and the next start serves', async () => {
    const cy = await seedPerson(bot, 'Cy Ops');
    conn.holding = true;
    const before = conn.arrived;
    const turn = teams.raw(cy.user, { id: `ops-${randomUUID()}`, type: 'message', text: 'unlock', textFormat: 'plain' }).catch((err: unknown) => err);
    await expect.poll(() => conn.arrived, { timeout: 10_000 }).toBeGreaterThan(before);
    const t0 = sigterm();
    expect(await bot.process.waitForExit(GRACE_MS + 3000)).toBe(1);
    expect(Date.now() - t0).toBeLessThan(GRACE_MS + 1500);
    expect(bot.process.output()).toMatch(/shutdown: time ran out/);
    await turn;
    conn.release();
    // The turn was held before its step (the typing indicator goes first): nothing of it was stored, nothing half-written.
    expect(sql<{ n: number }>('SELECT count(*) AS n FROM journeys WHERE key = ?', `${cy.personId}:unlock`)[0]!.n).toBe(0);
    await bot.restart();
    expect((await httpRequest(`${bot.url}/readyz`)).status).toBe(200);
  });
});

describe('operations: GET /readyz names the store when it stops answering (in-process bot)', () => {
  it('503 failing [storage] while the store does not answer, 200 again once it does', async () => {
    const dataDir = mkdtempSync(path.join(artifactDir('tmp'), 'readyz-'));
    const config = loadConfig({ SMARTCARD_DATA_DIR: dataDir, SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
    let down = false;
    const wrapStorage = (s: Storage): Storage =>
      new Proxy(s, {
        get(target, prop, receiver) {
          if (prop === 'ping') return async () => (down ? Promise.reject(new Error('store down')) : target.ping());
          return Reflect.get(target, prop, receiver) as unknown;
        },
      });
    const app = await startBot(config, { wrapStorage });
    try {
      expect((await httpRequest(`${app.url}/readyz`)).status).toBe(200);
      down = true;
      const r = await httpRequest(`${app.url}/readyz`);
      expect(r.status).toBe(503);
      expect(r.json).toEqual({ status: 'not ready', failing: ['storage'], checks: { storage: 'failing', mail: 'ok' } });
      expect((await httpRequest(`${app.url}/healthz`)).status).toBe(200);
      down = false;
      expect((await httpRequest(`${app.url}/readyz`)).status).toBe(200);
      expect((await app.shutdown()).clean).toBe(true);
    } finally {
      await app.close();
      await removeTestDirs(dataDir);
    }
  });
});
