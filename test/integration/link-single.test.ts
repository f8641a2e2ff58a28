/**
 * One live link per device, the first one kept; a PUK only to the link that
 * presented the code (issue #10, finding 8).
 *
 * - A second connection with the same credential, while the first answers pings,
 *   is refused (close 4423); the first keeps working; the refusal is audited
 *   (`link.duplicate_refused`) and the person is told in Teams once.
 * - A first link that no longer answers pings is replaced by the second.
 * - The PUK pair (`unlock.authorised`) goes once per accepted code, to the link
 *   that presented it: `unlock.resume` from another link session without the
 *   code gets no PUK; with the code it does (to that link only).
 *
 * The real bot process (embedded store, outbox mail) on a loopback port; raw
 * companions on the real link; a recording stand-in for the Bot Framework
 * connector. The store is read with read-only SQL. No pcscd.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../protocol/companion-link.protocol';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import {
  activityText,
  answersFor,
  eventually,
  executeActions,
  invokeCard,
  pairDevice,
  RawCompanion,
  RecordingConnector,
  seedPerson,
  sleep,
  TeamsClient,
  unlockCodeOf,
  unlockRun,
  type SeededPerson,
  readStore,
} from './adversarial-harness';

/** Close code for a connection refused because the device's first link is live (protocol `CloseCodes.IN_USE`). */
const IN_USE = 4423;
/** Close code of a link a newer connection replaced. */
const REPLACED = 4409;

interface Paired {
  person: SeededPerson;
  deviceId: string;
  credential: string;
}

describe('link: one live link per device, the first kept; PUK once per accepted code (finding 8)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const open: RawCompanion[] = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const audit = (personId: string, action: string): Array<{ actor: string; details: string }> => sql(`SELECT actor, details FROM audit WHERE person_id = ? AND action = ?`, personId, action);
  const phase = (personId: string): Record<string, unknown> => unlockRun(sql<{ state: string }>(`SELECT state FROM journeys WHERE key = ?`, `${personId}:unlock`)[0]?.state);
  /** Plain messages (not cards) the bot sent into a person's chat. */
  const messagesTo = (p: Paired): string[] => conn.calls.filter((c) => c.conversationId === p.person.user.conversationId && typeof c.body['text'] === 'string' && !c.body['attachments']).map((c) => String(c.body['text']));

  const pair = async (name: string): Promise<Paired> => {
    const person = await seedPerson(bot, name);
    const d = await pairDevice(bot, teams, person.user, `WS-${name.split(' ')[0]}`);
    return { person, deviceId: d.deviceId, credential: d.credential };
  };
  const connect = async (p: Paired, hello = true): Promise<RawCompanion> => {
    const c = await RawCompanion.connect(bot, `Bearer ${p.credential}`, { hello });
    c.cardStatus = { present: true, reader: 'Adv Reader 0', cardId: p.person.cardId, pinRetries: 0 };
    open.push(c);
    return c;
  };
  /** A second connection with the same credential: hello sent, then whatever the bot does. */
  const secondConnection = async (p: Paired): Promise<RawCompanion> => {
    const c = await connect(p, false);
    c.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'adv-2', workstation: 'WS-ATTACKER' });
    return c;
  };
  /** Every PUK pair the given connections received for a journey. */
  const releases = (journeyId: string, ...cs: RawCompanion[]): number => cs.reduce((n, c) => n + c.commands('unlock.authorised').filter((x) => x['journeyId'] === journeyId).length, 0);

  /** Start an unlock in Teams, answer right, and return the emailed code and the journey id. */
  const toCodeSent = async (p: Paired, c: RawCompanion): Promise<{ code: string; journeyId: string }> => {
    const card = invokeCard(await teams.invoke(p.person.user, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
    if (!ans) throw new Error(`no questions card: ${activityText({ attachments: [{ content: card }] })}`);
    const before = new Set((await bot.outbox()).map((m) => m.name));
    await teams.invoke(p.person.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p.person)) });
    const mail = await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && !before.has(m.name));
    const journeyId = ans.data['runId'] as string;
    await c.waitFor((f) => f.type === 'command' && (f['command'] as { kind: string; journeyId?: string }).kind === 'unlock.prompt' && (f['command'] as { journeyId: string }).journeyId === journeyId);
    return { code: unlockCodeOf(mail), journeyId };
  };

  beforeAll(async () => {
    bot = await startBotStack('link-single', { COMPANION_COMMAND_TIMEOUT_MS: '3000' });
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('refuses a second connection while the first answers pings (4423); the first still works; audited; the person is told in Teams once', async () => {
    const p = await pair('Fern First');
    const first = await connect(p);
    const second = await secondConnection(p);
    expect(await second.waitClosed(8000)).toBe(IN_USE);
    expect(second.frames.filter((f) => f.type === 'welcome')).toEqual([]);
    // The first link was not touched and is served.
    expect(first.closeCode).toBeNull();
    expect(await first.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: p.person.cardId })).toMatchObject({ kind: 'unlock.refused', reason: 'not_waiting' });
    // A third try: refused the same way.
    const third = await secondConnection(p);
    expect(await third.waitClosed(8000)).toBe(IN_USE);
    expect(first.closeCode).toBeNull();
    await expect.poll(() => audit(p.person.personId, 'link.duplicate_refused').length, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    const row = audit(p.person.personId, 'link.duplicate_refused')[0]!;
    expect(row.actor).toBe(`device:${p.deviceId}`);
    expect(row.details).not.toContain(p.credential.split('.')[1]!);
    await expect.poll(() => messagesTo(p).filter((t) => /tried to connect/i.test(t)).length, { timeout: 5000 }).toBe(1);
    await sleep(1000);
    expect(messagesTo(p).filter((t) => /tried to connect/i.test(t)), 'told more than once').toHaveLength(1);
  });

  it('replaces a first link that no longer answers pings', async () => {
    const p = await pair('Dell Dead');
    const first = await connect(p);
    // The first companion's host stops reading (no pong will come), as a dead peer behind a NAT.
    (first.ws as unknown as { _socket: Socket })._socket.pause();
    const t0 = Date.now();
    const second = await secondConnection(p);
    await second.waitFor((f) => f.type === 'welcome', 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await second.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: p.person.cardId })).toMatchObject({ kind: 'unlock.refused' });
    expect(audit(p.person.personId, 'link.duplicate_refused')).toHaveLength(0);
    first.ws.terminate();
  });

  it('a first connection that never says hello keeps no one out: the real companion is welcomed and the silent one is replaced', async () => {
    const p = await pair('Sid Silent');
    const silent = await connect(p, false);
    await sleep(300);
    const real = await secondConnection(p);
    await real.waitFor((f) => f.type === 'welcome', 8000);
    // Closed as replaced (4409), or cut (1006) when the close handshake is not waited for.
    expect([REPLACED, 1006]).toContain(await silent.waitClosed(8000));
    expect(real.closeCode).toBeNull();
    expect(await real.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: p.person.cardId })).toMatchObject({ kind: 'unlock.refused', reason: 'not_waiting' });
    expect(audit(p.person.personId, 'link.duplicate_refused')).toHaveLength(0);
  });

  it('sends the PUK once per accepted code, to the link that presented it (counted across every connection with the credential)', async () => {
    const p = await pair('Pete Pukonce');
    const a = await connect(p);
    const { code, journeyId } = await toCodeSent(p, a);
    expect(await a.request({ kind: 'unlock.submit_code', journeyId, cardId: p.person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    await a.release(journeyId);
    // Someone else with the credential connects while the real companion is live, twice, and asks for the PUK again.
    const b = await secondConnection(p);
    await sleep(500);
    if (b.closeCode === null) await b.request({ kind: 'unlock.resume', journeyId, cardId: p.person.cardId }).catch(() => null);
    const b2 = await secondConnection(p);
    await sleep(500);
    if (b2.closeCode === null) await b2.request({ kind: 'unlock.resume', journeyId, cardId: p.person.cardId }).catch(() => null);
    await sleep(1500);
    expect(releases(journeyId, a, b, b2), 'PUK pairs received across every connection').toBe(1);
    expect(releases(journeyId, a)).toBe(1);
    expect(await b.waitClosed(8000)).toBe(IN_USE);
    expect(await b2.waitClosed(8000)).toBe(IN_USE);
    expect(a.closeCode).toBeNull();
  });

  it('a resume from another link session without the code gets no PUK; a wrong code is counted; with the code the pair goes to that link only', async () => {
    const p = await pair('Rita Resume');
    const a = await connect(p);
    const { code, journeyId } = await toCodeSent(p, a);
    expect(await a.request({ kind: 'unlock.submit_code', journeyId, cardId: p.person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    await a.release(journeyId);
    // The first link dies; a new connection with the credential asks for the PUK again without the code.
    a.ws.terminate();
    await sleep(300);
    const c = await connect(p);
    const resumed = await c.request({ kind: 'unlock.resume', journeyId, cardId: p.person.cardId });
    expect(resumed).toMatchObject({ kind: 'unlock.refused', reason: 'code_needed' });
    await sleep(1500);
    expect(releases(journeyId, a, c), 'PUK pairs received across both connections').toBe(1);
    expect(phase(p.person.personId)).toMatchObject({ phase: 'unblocking' });
    // A wrong code is counted and refused.
    const wrong = String((Number(code) + 1) % 100_000_000).padStart(8, '0');
    expect(await c.request({ kind: 'unlock.resume', journeyId, cardId: p.person.cardId, code: wrong })).toMatchObject({ kind: 'unlock.refused', reason: 'wrong_code' });
    await sleep(500);
    expect(releases(journeyId, a, c)).toBe(1);
    expect(audit(p.person.personId, 'unlock.code_wrong')).toHaveLength(1);
    // With the code again (the person's own companion after a lost link), the pair goes to this link only.
    expect(await c.request({ kind: 'unlock.resume', journeyId, cardId: p.person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    await c.release(journeyId);
    await sleep(500);
    expect(releases(journeyId, c)).toBe(1);
    expect(releases(journeyId, a, c)).toBe(2);
    expect(await c.request({ kind: 'unlock.result', journeyId, cardId: p.person.cardId, outcome: 'unblocked', pukOnCard: 'new' })).toEqual({ kind: 'ok' });
    await expect.poll(() => phase(p.person.personId)['phase'], { timeout: 5000 }).toBe('done');
  });
});
