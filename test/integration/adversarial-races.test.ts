/**
 * Adversarial: races. Double clicks and floods of the same card action sent at
 * once to the real bot process (embedded store, outbox mail), with a raw
 * companion reporting a blocked card. What counts is read from the store
 * (read-only SQL: audit, cases, the person's self-service lock) and the outbox.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import {
  activityText,
  answersFor,
  cardText,
  eventually,
  executeActions,
  invokeCard,
  pairDevice,
  RawCompanion,
  RecordingConnector,
  scanForSecrets,
  seedPerson,
  sleep,
  TeamsClient,
  unlockCodeOf,
  type SeededPerson,
  readStore,
} from './adversarial-harness';

describe('adversarial: races on card actions (double clicks, floods)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const open: RawCompanion[] = [];
  const secrets: Array<{ label: string; value: string }> = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const count = (personId: string, action: string): number => sql<{ n: number }>(`SELECT count(*) AS n FROM audit WHERE person_id = ? AND action = ?`, personId, action)[0]!.n;
  const codeMails = async (p: SeededPerson): Promise<number> => (await bot.outbox()).filter((m) => m.kind === 'unlock_code' && String(m.headers['to'] ?? '').includes(p.email)).length;

  /** A registered person with a paired raw companion reporting their blocked card. */
  const ready = async (name: string): Promise<{ p: SeededPerson; c: RawCompanion }> => {
    const p = await seedPerson(bot, name);
    const d = await pairDevice(bot, teams, p.user, `WS-${name.split(' ')[0]}`);
    const c = await RawCompanion.connect(bot, `Bearer ${d.credential}`);
    c.cardStatus = { present: true, reader: 'Adv Reader 0', cardId: p.cardId, pinRetries: 0 };
    open.push(c);
    secrets.push({ label: `${name} PUK`, value: p.puk }, { label: `${name} credential`, value: d.credential.split('.')[1]! }, ...Object.entries(p.answers).map(([q, v]) => ({ label: `${name} answer ${q}`, value: v })));
    return { p, c };
  };

  /** The person's current unlock card (journey.show), as Teams would refetch it. */
  const current = async (p: SeededPerson): Promise<unknown> => invokeCard(await teams.invoke(p.user, 'journey.show', { journey: 'unlock' }));

  beforeAll(async () => {
    bot = await startBotStack('adv-races', { COMPANION_COMMAND_TIMEOUT_MS: '3000' });
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

  it('a double-clicked wrong answer counts one attempt; a double-clicked right answer sends one email', async () => {
    const { p, c } = await ready('Dora Double');
    const card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers')!;
    expect(ans, cardText(card)).toBeDefined();
    const wrong = await answersFor(card, p, true);
    const two = await Promise.all([1, 2].map(() => teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...wrong })));
    for (const r of two) expect(cardText(invokeCard(r))).toContain('2 attempts left');
    expect(count(p.personId, 'unlock.answers_failed')).toBe(1);

    const card2 = await current(p);
    const ans2 = executeActions(card2).find((a) => a.verb === 'unlock.answers')!;
    const right = await answersFor(card2, p);
    const again = await Promise.all([1, 2].map(() => teams.invoke(p.user, 'unlock.answers', { ...ans2.data, ...right })));
    for (const r of again) expect(cardText(invokeCard(r))).toContain('Check your email');
    await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && String(m.headers['to']).includes(p.email));
    await sleep(1000); // room for a wrongly queued second email
    expect(await codeMails(p)).toBe(1);
    expect(count(p.personId, 'unlock.answers_passed')).toBe(1);
    expect(c.commands('unlock.prompt')).toHaveLength(1);
  });

  it('50 wrong answers at once, then two more floods: 3 attempts counted, self-service locked once, one RA case', async () => {
    const { p } = await ready('Fred Flood');
    await teams.invoke(p.user, 'unlock.start', {});
    // Every click of a flood runs its scrypt check before the compare-and-set discards it (~0.3 s of the
    // thread pool each on this machine), so the later floods are smaller.
    const floods = [50, 12, 12];
    for (let round = 0; round < floods.length; round++) {
      const card = await current(p);
      const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
      expect(ans, `round ${round}: ${cardText(card)}`).toBeDefined();
      const wrong = await answersFor(card, p, true);
      const rs = await Promise.all(Array.from({ length: floods[round]! }, () => teams.invoke(p.user, 'unlock.answers', { ...ans!.data, ...wrong })));
      expect(new Set(rs.map((r) => r.status))).toEqual(new Set([200]));
      expect(count(p.personId, 'unlock.answers_failed'), `after round ${round}`).toBe(round + 1);
    }
    await expect.poll(() => count(p.personId, 'unlock.self_service_locked'), { timeout: 5000 }).toBe(1);
    const cases = sql<{ ref: string; reason: string }>(`SELECT ref, reason FROM cases WHERE person_id = ?`, p.personId);
    expect(cases).toHaveLength(1);
    expect(cases[0]!.reason).toBe('answers_failed');
    const lock = JSON.parse(sql<{ self_service_lock: string }>(`SELECT self_service_lock FROM persons WHERE id = ?`, p.personId)[0]!.self_service_lock) as { caseRef: string };
    expect(lock.caseRef).toBe(cases[0]!.ref);
    // A 4th flood and a new start change nothing.
    const after = await Promise.all(Array.from({ length: 10 }, () => teams.invoke(p.user, 'unlock.start', {})));
    for (const r of after) expect(cardText(invokeCard(r))).toContain(cases[0]!.ref);
    expect(count(p.personId, 'unlock.answers_failed')).toBe(3);
    expect(sql(`SELECT ref FROM cases WHERE person_id = ?`, p.personId)).toHaveLength(1);
    expect(await codeMails(p)).toBe(0);
  });

  it('a double-clicked "Send a new code" sends one new code', async () => {
    const { p, c } = await ready('Rita Resend');
    const card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers')!;
    await teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p)) });
    await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && String(m.headers['to']).includes(p.email));
    const sent = await current(p);
    const resend = executeActions(sent).find((a) => a.verb === 'unlock.resend_code')!;
    expect(resend, cardText(sent)).toBeDefined();
    await Promise.all([1, 2, 3].map(() => teams.invoke(p.user, 'unlock.resend_code', resend.data)));
    await expect.poll(() => codeMails(p), { timeout: 10_000 }).toBe(2);
    await sleep(1000);
    expect(await codeMails(p)).toBe(2);
    expect(count(p.personId, 'unlock.code_resent')).toBe(1);
    expect(c.commands('unlock.prompt')).toHaveLength(2);
  });

  it('a double-clicked "Unlock my smartcard" starts one run (one card check, one questions card)', async () => {
    const { p, c } = await ready('Stan Start');
    const rs = await Promise.all([1, 2].map(() => teams.invoke(p.user, 'unlock.start', {})));
    const runIds = rs.map((r) => executeActions(invokeCard(r)).find((a) => a.verb === 'unlock.answers')?.data['runId'] ?? '(no questions card)');
    expect(count(p.personId, 'unlock.started'), `runs: ${JSON.stringify(runIds)}`).toBe(1);
    expect(c.commands('card.read_status')).toHaveLength(1);
    expect(runIds[0]).toBe(runIds[1]);
  });

  it('a second "Unlock my smartcard" click while the first card check is still out waits for it: one card check, the same questions card', async () => {
    const { p, c } = await ready('Sid Slow');
    c.replyDelayMs = 400;
    const first = teams.invoke(p.user, 'unlock.start', {});
    await expect.poll(() => c.commands('card.read_status').length, { timeout: 5_000 }).toBe(1);
    const second = teams.invoke(p.user, 'unlock.start', {});
    const rs = await Promise.all([first, second]);
    c.replyDelayMs = 0;
    const runIds = rs.map((r) => executeActions(invokeCard(r)).find((a) => a.verb === 'unlock.answers')?.data['runId'] ?? '(no questions card)');
    expect(count(p.personId, 'unlock.started')).toBe(1);
    expect(c.commands('card.read_status')).toHaveLength(1);
    expect(runIds[1]).toBe(runIds[0]);
    expect(runIds[0]).not.toBe('(no questions card)');
  });

  it('a stale "Unlock my smartcard" click while a code is out answers with the current card and the emailed code still works', async () => {
    const { p, c } = await ready('Sally Stale');
    const welcomeClick = await teams.invoke(p.user, 'unlock.start', {});
    const card = invokeCard(welcomeClick);
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers')!;
    const journeyId = ans.data['runId'] as string;
    await teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p)) });
    const mail = await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && String(m.headers['to']).includes(p.email));
    const code = unlockCodeOf(mail);
    secrets.push({ label: 'sally code', value: code });
    // The welcome card is still in the chat; the person clicks its button again.
    const stale = await teams.invoke(p.user, 'unlock.start', {});
    expect(cardText(invokeCard(stale))).toContain('Check your email');
    const r = await c.request({ kind: 'unlock.submit_code', journeyId, cardId: p.cardId, code });
    expect(r['kind'], JSON.stringify({ kind: r['kind'], reason: r['reason'] })).toBe('unlock.accepted');
    const pair = await c.release(journeyId);
    secrets.push({ label: 'sally new PUK', value: String(pair['newPuk']) });
  });

  it('a double-clicked Cancel ends the run once and tells the companion once', async () => {
    const { p, c } = await ready('Carl Cancel');
    const card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers')!;
    await teams.invoke(p.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p)) });
    await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && String(m.headers['to']).includes(p.email));
    const sent = await current(p);
    const cancel = executeActions(sent).find((a) => a.verb === 'unlock.cancel')!;
    const rs = await Promise.all([1, 2].map(() => teams.invoke(p.user, 'unlock.cancel', cancel.data)));
    for (const r of rs) expect(cardText(invokeCard(r))).toContain('Unlock cancelled');
    expect(count(p.personId, 'unlock.cancelled')).toBe(1);
    await expect.poll(() => c.commands('unlock.closed').length, { timeout: 5000 }).toBe(1);
    await sleep(500);
    expect(c.commands('unlock.closed')).toHaveLength(1);
  });

  it('no secret used here shows in the bot log or its data directory (codes only in their own emails)', async () => {
    const found = await scanForSecrets([bot.dataDir], [{ where: 'bot stdout', text: bot.process.output() }, ...conn.calls.map((x, i) => ({ where: `teams activity ${i}`, text: activityText(x.body) }))], secrets, (where, label) => label.endsWith(' code') && /unlock_code-.*\.eml$/.test(where));
    expect(found).toEqual([]);
  });
});
