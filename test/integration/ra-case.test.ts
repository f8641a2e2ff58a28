/**
 * The RA desk through the real bot process (embedded store, outbox mail) and
 * its /api/messages, with a recording stand-in for the Bot Framework
 * connector (issue #12): a lockout posts a case card to the configured RA
 * channel; an RA member claims it; a second member's claim is told who owns
 * it; a non-member's click is refused and audited. What counts is read from
 * the connector's recorded calls and from the store (read-only SQL).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import {
  activityText,
  answersFor,
  cardText,
  executeActions,
  invokeCard,
  pairDevice,
  postJson,
  RawCompanion,
  RecordingConnector,
  seedPerson,
  TeamsClient,
  teamsUser,
  type TeamsUser,
  readStore,
} from './adversarial-harness';

const RA_CHANNEL = '19:ra-desk-test@thread.tacv2';

describe('RA desk: a lockout becomes a case card in the RA channel', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let companion: RawCompanion | undefined;
  const alex = teamsUser('Alex Ra');
  const blake = teamsUser('Blake Ra');
  const dana = teamsUser('Dana Nobody');

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);

  /** A click on the case card in the RA channel (a channel conversation, not a personal chat). */
  const channelClick = (user: TeamsUser, verb: string, data: Record<string, unknown>) =>
    postJson(bot, '/api/messages', {
      ...teams.base(user),
      type: 'invoke',
      name: 'adaptiveCard/action',
      conversation: { id: `${RA_CHANNEL};messageid=1`, conversationType: 'channel', isGroup: true, tenantId: 'adv-tenant' },
      channelData: { tenant: { id: 'adv-tenant' }, team: { id: '19:team@thread.tacv2' }, channel: { id: RA_CHANNEL } },
      value: { action: { type: 'Action.Execute', verb, data } },
    });

  beforeAll(async () => {
    conn = new RecordingConnector();
    await conn.start();
    bot = await startBotStack('ra-case', {
      COMPANION_COMMAND_TIMEOUT_MS: '3000',
      RA_MEMBER_IDS: `${alex.id},${blake.id}`,
      RA_CHANNEL_ID: RA_CHANNEL,
      RA_CHANNEL_SERVICE_URL: conn.url,
    });
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    companion?.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('lockout -> case card in the channel; claim; a second claim told who owns it; a non-member refused and audited', async () => {
    const p = await seedPerson(bot, 'Pat Holder');
    const d = await pairDevice(bot, teams, p.user, 'WS-PAT');
    companion = await RawCompanion.connect(bot, `Bearer ${d.credential}`);
    companion.cardStatus = { present: true, reader: 'Adv Reader 0', cardId: p.cardId, pinRetries: 0 };

    // Three wrong attempts lock self-service and open a case.
    let card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
    for (let i = 0; i < 3; i++) {
      const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
      expect(ans, `attempt ${i + 1}: ${cardText(card)}`).toBeDefined();
      card = invokeCard(await teams.invoke(p.user, 'unlock.answers', { ...ans!.data, ...(await answersFor(card, p, true)) }));
    }
    await expect.poll(() => sql(`SELECT ref FROM cases WHERE person_id = ?`, p.personId).length, { timeout: 10_000 }).toBe(1);
    const ref = sql<{ ref: string }>(`SELECT ref FROM cases WHERE person_id = ?`, p.personId)[0]!.ref;

    // The case card is posted to the configured RA channel, with the person, the card and the steps; no secret.
    await expect.poll(() => conn.calls.filter((c) => c.conversationId === RA_CHANNEL && c.method === 'POST').length, { timeout: 10_000 }).toBe(1);
    const posted = conn.calls.find((c) => c.conversationId === RA_CHANNEL && c.method === 'POST')!;
    const postedText = activityText(posted.body);
    for (const s of [ref, 'Pat Holder', p.email, p.cardId, 'security answers did not match 3 times', 'Attempts used: 3']) expect(postedText).toContain(s);
    // The person's steps are facts (time, what happened).
    const facts = JSON.stringify(posted.body);
    expect(facts.match(/"value":"Security answers did not match"/g)).toHaveLength(3);
    expect(facts).toContain('"value":"Started an unlock"');
    for (const secret of [p.puk, ...Object.values(p.answers)]) expect(JSON.stringify(posted.body)).not.toContain(secret);
    const postedCard = (posted.body['attachments'] as Array<{ content: { refresh?: { userIds: string[] } } }>)[0]!.content;
    // No RA member has sent anything yet, so no Teams user id is known for refresh.userIds (they are MRIs, not
    // the configured Entra ids): no refresh clause; the posted card is updated in place for everyone instead.
    expect(postedCard.refresh).toBeUndefined();
    const claim = executeActions(postedCard).find((a) => a.verb === 'ra.claim')!;
    expect(claim.data).toMatchObject({ caseRef: ref });
    // The person was told in their chat.
    await expect.poll(() => conn.textsIn(p.user.conversationId).some((t) => t.includes(`Your case ${ref} is with your RA team`)), { timeout: 10_000 }).toBe(true);

    // Alex and Blake claim at once: one owns the case, the other is told who has it.
    const [ra, rb] = await Promise.all([channelClick(alex, 'ra.claim', claim.data), channelClick(blake, 'ra.claim', claim.data)]);
    const texts = [cardText(invokeCard(ra)), cardText(invokeCard(rb))];
    const owner = sql<{ status: string }>(`SELECT status FROM cases WHERE ref = ?`, ref)[0]!;
    expect(owner.status).toBe('claimed');
    const claims = sql<{ actor: string }>(`SELECT actor FROM audit WHERE action = 'ra_case.claim' AND json_extract(details, '$.outcome') = 'applied'`);
    expect(claims).toHaveLength(1);
    const winner = claims[0]!.actor === `ra:${alex.id}` ? 'Alex Ra' : 'Blake Ra';
    const loserText = winner === 'Alex Ra' ? texts[1]! : texts[0]!;
    expect(loserText).toContain(`${winner} already has this case`);
    // The channel card was updated in place (PUT on the posted activity) and the person told who has it.
    await expect.poll(() => conn.calls.some((c) => c.conversationId === RA_CHANNEL && c.method === 'PUT' && c.activityId === posted.body['id'] || (c.conversationId === RA_CHANNEL && c.method === 'PUT' && activityText(c.body).includes(winner))), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => conn.textsIn(p.user.conversationId).some((t) => t.includes(`${winner} from your RA team`)), { timeout: 10_000 }).toBe(true);
    // Both members' Teams ids were learned from their clicks (each turn learns its sender before it is
    // handled): the card Teams fetches by its refresh now names both. (The winner's in-place PUT may have
    // been built before the loser's click was learned, so the PUT alone can carry one id.)
    const refreshed = invokeCard(await channelClick(alex, 'ra.case_refresh', { caseRef: ref })) as { refresh?: { userIds: string[] } };
    expect([...(refreshed.refresh?.userIds ?? [])].sort()).toEqual([alex.id, blake.id].sort());

    // A non-member's click is refused, changes nothing, and is audited.
    const before = sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${ref}:ra-case`)[0]!.version;
    const rd = await channelClick(dana, 'ra.close', { caseRef: ref, step: '2', outcome: 'no_action' });
    expect(cardText(invokeCard(rd))).toContain('Only RA team members can act on RA cases');
    // No RA buttons for a non-member (the refresh action stays: Teams runs it for members only).
    expect(executeActions(invokeCard(rd)).map((a) => a.verb)).toEqual(['ra.case_refresh']);
    expect(sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${ref}:ra-case`)[0]!.version).toBe(before);
    expect(sql<{ status: string }>(`SELECT status FROM cases WHERE ref = ?`, ref)[0]!.status).toBe('claimed');
    const refused = sql<{ actor: string; details: string }>(`SELECT actor, details FROM audit WHERE action = 'ra_case.close' AND actor = ?`, `teams:${dana.id}`);
    expect(refused).toHaveLength(1);
    expect(JSON.parse(refused[0]!.details)).toMatchObject({ caseRef: ref, outcome: 'refused', reason: 'not_member' });

    // A forged case reference is refused at the door with a clear message.
    const forged = await channelClick(alex, 'ra.claim', { caseRef: `RA-${randomUUID()}`, step: '1' });
    expect(forged.status).toBeLessThan(500);
    expect(JSON.stringify(forged.json)).toContain('must be a case reference');
  });

  it('"talk to RA" mid-unlock opens one case with the unlock recorded as paused; asking again names the same case', async () => {
    const p = await seedPerson(bot, 'Quinn Asker');
    const d = await pairDevice(bot, teams, p.user, 'WS-QUINN');
    const c = await RawCompanion.connect(bot, `Bearer ${d.credential}`);
    try {
      c.cardStatus = { present: true, reader: 'Adv Reader 0', cardId: p.cardId, pinRetries: 0 };
      const card = invokeCard(await teams.invoke(p.user, 'unlock.start', {}));
      expect(executeActions(card).some((a) => a.verb === 'unlock.answers'), cardText(card)).toBe(true);
      await teams.message(p.user, 'talk to RA');
      const cases = sql<{ ref: string; reason: string; context: string }>(`SELECT ref, reason, context FROM cases WHERE person_id = ?`, p.personId);
      expect(cases).toHaveLength(1);
      expect(cases[0]!.reason).toBe('requested');
      const ref = cases[0]!.ref;
      expect(conn.textsIn(p.user.conversationId).some((t) => t.includes(`your case is ${ref}`))).toBe(true);
      const state = JSON.parse(sql<{ state: string }>(`SELECT state FROM journeys WHERE key = ?`, `${ref}:ra-case`)[0]!.state) as { paused: { kind: string; phase: string } };
      expect(state.paused).toMatchObject({ kind: 'unlock', phase: 'answering' });
      // The unlock journey is paused where it stood (kept, not lost), on the same run.
      const row = sql<{ run_id: string; state: string }>(`SELECT run_id, state FROM journeys WHERE key = ?`, `${p.personId}:unlock`)[0]!;
      expect(JSON.parse(row.state)).toMatchObject({ phase: 'paused', caseRef: ref, from: { phase: 'answering' } });
      // Told once: the turn's answer carries the reference; no proactive "is with your RA team" repeats it.
      await new Promise((r) => setTimeout(r, 500));
      expect(conn.textsIn(p.user.conversationId).filter((t) => t.includes(`your case is ${ref}`))).toHaveLength(1);
      expect(conn.textsIn(p.user.conversationId).filter((t) => t.includes('is with your RA team'))).toEqual([]);
      await expect.poll(() => conn.calls.some((x) => x.conversationId === RA_CHANNEL && x.method === 'POST' && activityText(x.body).includes(ref)), { timeout: 10_000 }).toBe(true);
      await teams.message(p.user, 'talk to RA');
      expect(sql(`SELECT ref FROM cases WHERE person_id = ?`, p.personId)).toHaveLength(1);
      expect(conn.textsIn(p.user.conversationId).some((t) => t.includes(`already has your case ${ref}`))).toBe(true);
    } finally {
      c.close();
    }
  });
});
