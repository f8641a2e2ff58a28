/**
 * Regressions for the adversarial findings against issue #9's journey engine,
 * through the running bot (in process, on its own data directory, restarted on
 * the same data where a finding needs a restart): what the person sees, the
 * stored journey row and the audit log.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPerson } from '../../bot/admin.cli';
import { loadConfig, type BotConfig } from '../../bot/config';
import { startBot, type BotApp } from '../../bot/main';
import { deriveKeys, parseMasterKey } from '../../bot/security/keys';
import { createLogger } from '../../common/logger';
import { cardText, executeActions, invokeCard, pairDevice, RawCompanion, RecordingConnector, TeamsClient, teamsUser, type SeededPerson } from './adversarial-harness';

let dir: string;
let config: BotConfig;
let app: BotApp;
let conn: RecordingConnector;
let teams: TeamsClient;
const botRef = { url: '' };
const logs: string[] = [];
let keys: ReturnType<typeof deriveKeys>;

async function boot(): Promise<void> {
  app = await startBot(config, { logger: createLogger({ name: 'regressions', level: 'info', destination: { write: (s: string) => void logs.push(s) } }) });
  botRef.url = app.url;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'journey-regressions-'));
  const masterKey = randomBytes(32).toString('base64');
  keys = deriveKeys(parseMasterKey(masterKey, 'SMARTCARD_MASTER_KEY'));
  config = loadConfig({ SMARTCARD_DATA_DIR: dir, SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', COMPANION_COMMAND_TIMEOUT_MS: '3000', PAIRING_POLL_INTERVAL_SECONDS: '1' });
  conn = new RecordingConnector();
  await conn.start();
  teams = new TeamsClient(botRef, conn.url);
  await boot();
});

afterAll(async () => {
  await app?.close().catch(() => undefined);
  await conn?.stop();
  await rm(dir, { recursive: true, force: true });
});

function db<T>(fn: (d: Database.Database) => T): T {
  const d = new Database(path.join(dir, 'smartcard-assist.sqlite'), { fileMustExist: true });
  try {
    return fn(d);
  } finally {
    d.close();
  }
}
const journeyRow = (personId: string): { state: string; counters: string } => db((d) => d.prepare('SELECT state, counters FROM journeys WHERE key = ?').get(`${personId}:unlock`) as { state: string; counters: string });
const auditOf = (personId: string): Array<{ action: string; details: string }> => db((d) => d.prepare('SELECT action, details FROM audit WHERE person_id = ? ORDER BY at, seq').all(personId) as Array<{ action: string; details: string }>);

/** A registered person with a paired companion whose card is blocked. */
async function seed(name: string): Promise<SeededPerson & { companion: RawCompanion }> {
  const user = teamsUser(name);
  const salt = randomBytes(3).toString('hex');
  const answers: Record<string, string> = { q01: `Alpha${salt}`, q02: `Bravo${salt}`, q03: `Charlie${salt}`, q04: `Delta${salt}` };
  const cardId = randomBytes(16).toString('hex');
  const email = `${name.split(' ')[0]!.toLowerCase()}.${salt}@nhs.net`;
  const puk = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
  const added = await addPerson(app.storage, keys, { teamsUserId: user.id, displayName: name, email, cardId, puk, answers: Object.entries(answers).map(([questionId, answer]) => ({ questionId, answer })) });
  const d = await pairDevice(botRef, teams, user, `WS-${name.split(' ')[0]!}`);
  const companion = await RawCompanion.connect(app, `Bearer ${d.credential}`);
  companion.cardStatus = { present: true, reader: 'Virtual PCD 00 00', cardId, pinRetries: 0 };
  return { personId: added.personId, user, email, cardId, puk, answers, credential: d.credential, deviceId: d.deviceId, companion } as SeededPerson & { companion: RawCompanion };
}

describe('an answer check left by a bot that is gone (F-G)', () => {
  it('after a restart, the show and a click answer at once with the questions; the claim is abandoned (audited) and the attempt stays counted', async () => {
    const p = await seed('Gina Gone');
    const card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    const click = executeActions(card).find((a) => a.verb === 'unlock.answers')!;
    expect(click).toBeDefined();
    p.companion.close();
    await app.close();
    // What a bot killed mid-check leaves: the claim (attempt counted), made by its boot.
    db((d) => {
      const row = journeyRow(p.personId);
      const s = JSON.parse(row.state) as Record<string, unknown>;
      const claimed: Record<string, unknown> = { ...s, phase: 'checking_answers', step: Number(s['step']) + 1, claimId: 'claim-of-dead-boot', claimedAt: new Date().toISOString(), claimedBy: 'bot-99999-dead' };
      delete claimed['lastResult'];
      d.prepare('UPDATE journeys SET state = ?, counters = ? WHERE key = ?').run(JSON.stringify(claimed), JSON.stringify({ answerAttempts: 1 }), `${p.personId}:unlock`);
    });
    await boot();

    let t = Date.now();
    const shown = cardText(invokeCard(await teams.invoke(p.user, 'journey.show', { journey: 'unlock' })));
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(shown).not.toMatch(/Checking your answers/);
    expect(shown).toMatch(/2 attempts? left/i);

    t = Date.now();
    const again = await teams.invoke(p.user, 'unlock.answers', { ...click.data, a1: 'x', a2: 'y', a3: 'z' });
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(executeActions(invokeCard(again)).some((a) => a.verb === 'unlock.answers')).toBe(true);

    expect(JSON.parse(journeyRow(p.personId).state)).toMatchObject({ phase: 'answering' });
    expect(JSON.parse(journeyRow(p.personId).counters)).toEqual({ answerAttempts: 1 });
    const abandoned = auditOf(p.personId).filter((e) => e.action === 'unlock.answer_check_abandoned');
    expect(abandoned.map((e) => JSON.parse(e.details) as Record<string, unknown>)).toEqual([expect.objectContaining({ attempt: 1, reason: 'claimer_gone' })]);
    // The stale click was not evaluated.
    expect(auditOf(p.personId).filter((e) => e.action === 'unlock.answers_failed' || e.action === 'unlock.answers_passed')).toEqual([]);
  });
});

describe('the door (F-H)', () => {
  it('an activity whose from.id holds control characters is refused with 400 naming from.id; nothing is stored or logged as an error', async () => {
    const user = teamsUser('Dee Door');
    const conversationsBefore = db((d) => (d.prepare('SELECT count(*) AS n FROM conversations').get() as { n: number }).n);
    const errorsBefore = logs.filter((l) => /"level":50/.test(l)).length;
    for (const id of ['29:abc\u0007def', '29:abc\u0000def']) {
      const message = await teams.raw(user, { type: 'message', text: 'unlock', from: { id, name: 'x' } });
      expect(message.status).toBe(400);
      expect(message.text).toContain('from.id');
      const invoke = await teams.raw(user, { type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'journey.show', data: { journey: 'unlock' } } }, from: { id, name: 'x' } });
      expect(invoke.status).toBe(400);
      expect(invoke.text).toContain('from.id');
    }
    expect(db((d) => (d.prepare('SELECT count(*) AS n FROM conversations').get() as { n: number }).n)).toBe(conversationsBefore);
    expect(logs.filter((l) => /"level":50/.test(l)).slice(errorsBefore)).toEqual([]);
  });
});

describe('a journey row the bot cannot read (smaller finding)', () => {
  it('the person is told their unlock could not be read and to contact RA (not to try again), and the log names the field', async () => {
    const p = await seed('Una Unread');
    invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    p.companion.close();
    db((d) => {
      const s = JSON.parse(journeyRow(p.personId).state) as Record<string, unknown>;
      d.prepare('UPDATE journeys SET state = ? WHERE key = ?').run(JSON.stringify({ ...s, phase: 'flying' }), `${p.personId}:unlock`);
    });
    const logsBefore = logs.length;
    const shown = cardText(invokeCard(await teams.invoke(p.user, 'journey.show', { journey: 'unlock' })));
    expect(shown).toContain('could not be read');
    expect(shown).toContain(config.raContact);
    expect(shown).not.toMatch(/try again/i);

    const typed = await teams.message(p.user, 'unlock');
    expect(typed.status).toBeLessThan(300);
    const said = conn.textsIn(p.user.conversationId).at(-1) ?? '';
    expect(said).toContain('could not be read');
    expect(said).toContain(config.raContact);
    expect(said).not.toMatch(/try again/i);

    const lines = logs.slice(logsBefore).map((l) => JSON.parse(l) as { field?: string; code?: string });
    expect(lines.filter((l) => l.code === 'JOURNEY.STATE_INVALID' && l.field === 'state.phase').length).toBeGreaterThanOrEqual(2);
  });
});
