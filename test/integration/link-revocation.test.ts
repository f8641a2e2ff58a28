/**
 * Revocation holds on every message (issue #10, finding 5): a revoked device gets
 * nothing from the bot and moves nothing, whatever it sends on a link it already
 * holds open (`hello`, `card.event`, `request`, `reply`), and its open link is
 * closed when it is revoked: by `npm run admin -- revoke-device` (another process:
 * the bot notices within its revocation check) or by the companion's own
 * `device.unpair` request (this instance: at once).
 *
 * The real bot process (embedded store, outbox mail) on a loopback port; people
 * seeded with the admin command; devices paired over the real pairing contract;
 * a raw companion that sends frames one by one; the companion program itself for
 * `--unpair` (it exits before it opens a reader); a recording stand-in for the Bot
 * Framework connector (what the bot sends to Teams). The store is read with
 * read-only SQL. No pcscd.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../protocol/companion-link.protocol';
import { artifactDir, REPO_ROOT } from '../support/artifacts';
import { removeTestDirs, runAdmin, startBotStack, type BotStack } from '../support/e2e-stack';
import { cardText, invokeCard, pairDevice, RawCompanion, RecordingConnector, seedPerson, sleep, TeamsClient, type SeededPerson, readStore } from './adversarial-harness';

/** Close code for a refused or revoked credential (protocol `CloseCodes.UNAUTHORISED`). */
const UNAUTHORISED = 4401;

interface Paired {
  person: SeededPerson;
  deviceId: string;
  credential: string;
}

describe('link: revocation holds on every message (finding 5)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const open: RawCompanion[] = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const audit = (personId: string, action: string): Array<{ actor: string; details: string }> => sql(`SELECT actor, details FROM audit WHERE person_id = ? AND action = ?`, personId, action);
  const journeyRow = (personId: string): { state: string; version: number; pending_effects: string } | undefined =>
    sql<{ state: string; version: number; pending_effects: string }>(`SELECT state, version, pending_effects FROM journeys WHERE key = ?`, `${personId}:unlock`)[0];
  const deviceRow = (deviceId: string): { revoked_at: string | null; connected_instance: string | null } => sql<{ revoked_at: string | null; connected_instance: string | null }>(`SELECT revoked_at, connected_instance FROM devices WHERE id = ?`, deviceId)[0]!;
  /** Revoke in the store alone (what any revocation ends in), so the link's own checks are what is tested. */
  const revokeInStore = (deviceId: string): void => {
    const db = new Database(path.join(bot.dataDir, 'smartcard-assist.sqlite'), { fileMustExist: true });
    try {
      db.prepare(`UPDATE devices SET revoked_at = ?, version = version + 1 WHERE id = ?`).run(new Date().toISOString(), deviceId);
    } finally {
      db.close();
    }
  };
  /** Activities the bot sent into a person's chat (cards and messages). */
  const teamsCalls = (p: Paired): number => conn.calls.filter((c) => c.conversationId === p.person.user.conversationId).length;

  const pair = async (name: string): Promise<Paired> => {
    const person = await seedPerson(bot, name);
    const d = await pairDevice(bot, teams, person.user, `WS-${name.split(' ')[0]}`);
    return { person, deviceId: d.deviceId, credential: d.credential };
  };
  const connect = async (p: Paired, hello = true): Promise<RawCompanion> => {
    const c = await RawCompanion.connect(bot, `Bearer ${p.credential}`, { hello });
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    bot = await startBotStack('link-revocation', { COMPANION_COMMAND_TIMEOUT_MS: '3000' });
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
  });

  const companionDirs: string[] = [];
  /** A companion data directory holding the device's credential file (0700 / 0600), as pairing leaves it. */
  const companionDataFor = (p: Paired): string => {
    const dir = path.join(mkdtempSync(path.join(artifactDir('tmp'), 'link-unpair-')), 'data');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, 'credential.json'), JSON.stringify({ deviceId: p.deviceId, credential: p.credential, personName: p.person.user.name, botUrl: new URL(bot.url).href, pairedAt: new Date().toISOString() }), { mode: 0o600 });
    companionDirs.push(path.dirname(dir));
    return dir;
  };
  /** Run `companion --unpair` (the program, as a person would) and wait for it to exit. */
  const runUnpair = (dataDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'companion/main.ts', '--unpair'], {
        cwd: REPO_ROOT,
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', SMARTCARD_BOT_URL: bot.url, COMPANION_DATA_DIR: dataDir, COMPANION_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  afterAll(async () => {
    for (const c of open) c.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir, ...companionDirs);
  });

  it('a revoked device whose link is open gets no welcome for its hello, and the link is closed 4401', async () => {
    const p = await pair('Hana Hello');
    const c = await connect(p, false); // authenticated while still paired
    revokeInStore(p.deviceId);
    c.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'x', workstation: 'WS-HANA' });
    await sleep(1000);
    expect(c.frames.filter((f) => f.type === 'welcome')).toEqual([]);
    expect(await c.waitClosed(5000)).toBe(UNAUTHORISED);
  });

  it("a revoked device's card.event moves no journey: the stored row is unchanged and no Teams card is sent", async () => {
    const p = await pair('Cato Cardevent');
    const c = await connect(p);
    // No card in the reader: the run waits on the card ("no_card"), ready to move on a card event.
    c.cardStatus = { present: false, reader: 'Adv Reader 0' };
    const first = invokeCard(await teams.invoke(p.person.user, 'unlock.start', {}));
    expect(cardText(first)).toMatch(/card/i);
    const before = journeyRow(p.person.personId);
    expect(before && JSON.parse(before.state)).toMatchObject({ phase: 'card_problem', problem: 'no_card' });
    await sleep(500); // let the start's own Teams traffic settle
    const callsBefore = teamsCalls(p);
    revokeInStore(p.deviceId);
    // The revoked device reports the person's blocked card in its reader.
    c.sendJson({ type: 'card.event', status: { present: true, reader: 'Adv Reader 0', cardId: p.person.cardId, pinRetries: 0 } });
    await sleep(1500);
    expect(journeyRow(p.person.personId)).toEqual(before);
    expect(teamsCalls(p), 'the bot sent something to Teams after the revoked device spoke').toBe(callsBefore);
    expect(await c.waitClosed(5000)).toBe(UNAUTHORISED);
  });

  it('a revoked device gets nothing for a request or a reply on its open link', async () => {
    const p = await pair('Remy Request');
    const c = await connect(p);
    revokeInStore(p.deviceId);
    c.sendJson({ type: 'request', id: 'after-revoke', request: { kind: 'unlock.resume', journeyId: randomUUID(), cardId: p.person.cardId } });
    c.sendJson({ type: 'reply', id: 'no-such-command', reply: { kind: 'ack' } });
    await sleep(1000);
    expect(c.frames.filter((f) => f.type === 'response')).toEqual([]);
    expect(await c.waitClosed(5000)).toBe(UNAUTHORISED);
  });

  it('`admin revoke-device --device` revokes, audits with the actor, and closes the open link', async () => {
    const p = await pair('Dora Device');
    const c = await connect(p);
    const t0 = Date.now();
    const r = await runAdmin(bot, ['revoke-device', '--device', p.deviceId]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(p.deviceId);
    expect(await c.waitClosed(8000)).toBe(UNAUTHORISED);
    // The bot is another process: it closes the link at its next revocation check (a few seconds).
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(deviceRow(p.deviceId).revoked_at).not.toBeNull();
    const rows = audit(p.person.personId, 'device.revoked');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.actor).toBe('admin');
    expect(JSON.parse(rows[0]!.details)).toMatchObject({ deviceId: p.deviceId, reason: 'admin' });
    // The credential no longer opens a link.
    const again = await RawCompanion.connect(bot, `Bearer ${p.credential}`, { hello: false });
    expect(await again.waitClosed(5000)).toBe(UNAUTHORISED);
  });

  it('`admin revoke-device --person` (Teams user id) revokes every device of the person; unknown targets are refused plainly', async () => {
    const p = await pair('Pia Person');
    const second = await pairDevice(bot, teams, p.person.user, 'WS-PIA-2');
    const r = await runAdmin(bot, ['revoke-device', '--person', p.person.user.id]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(deviceRow(p.deviceId).revoked_at).not.toBeNull();
    expect(deviceRow(second.deviceId).revoked_at).not.toBeNull();
    expect(audit(p.person.personId, 'device.revoked')).toHaveLength(2);
    const unknown = await runAdmin(bot, ['revoke-device', '--device', randomUUID()]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no device/i);
    const usage = await runAdmin(bot, ['revoke-device']);
    expect(usage.code).not.toBe(0);
  });

  it("the companion's unpair (`device.unpair` request) revokes its own device at once: answered ok, link closed 4401, audited as the device", async () => {
    const p = await pair('Uma Unpair');
    const c = await connect(p);
    const t0 = Date.now();
    const r = await c.request({ kind: 'device.unpair' });
    expect(r).toEqual({ kind: 'ok' });
    expect(await c.waitClosed(2000)).toBe(UNAUTHORISED);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(deviceRow(p.deviceId).revoked_at).not.toBeNull();
    const rows = audit(p.person.personId, 'device.revoked');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.actor).toBe(`device:${p.deviceId}`);
    expect(JSON.parse(rows[0]!.details)).toMatchObject({ deviceId: p.deviceId, reason: 'unpaired' });
  });

  it('`companion --unpair` revokes the pairing at the bot and deletes the credential file; while another connection holds the link it changes nothing', async () => {
    const p = await pair('Ivo Unpairprog');
    const dataDir = companionDataFor(p);
    // The companion itself is "running" (holds the link): the bot keeps that link, so --unpair cannot get one.
    const running = await connect(p);
    const busy = await runUnpair(dataDir);
    expect(busy.code, busy.stdout + busy.stderr).toBe(1);
    expect(busy.stderr).toMatch(/stop it first/);
    expect(existsSync(path.join(dataDir, 'credential.json'))).toBe(true);
    expect(deviceRow(p.deviceId).revoked_at).toBeNull();
    running.close();
    await running.waitClosed();
    const done = await runUnpair(dataDir);
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^STATUS: unpaired/m);
    expect(existsSync(path.join(dataDir, 'credential.json'))).toBe(false);
    expect(deviceRow(p.deviceId).revoked_at).not.toBeNull();
    const rows = audit(p.person.personId, 'device.revoked');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.actor).toBe(`device:${p.deviceId}`);
    expect(JSON.parse(rows[0]!.details)).toMatchObject({ reason: 'unpaired' });
    for (const r of [busy, done]) expect(r.stdout + r.stderr).not.toContain(p.credential.split('.')[1]!);
  });
});
