/**
 * The RA desk's staff side through the real bot process and its /api/messages,
 * with a recording stand-in for the Bot Framework connector (issue #12):
 * a helpdesk handoff (case reference to the helpdesk member, the person told in
 * their chat; an unregistered email and a non-helpdesk sender change nothing,
 * the latter audited); the person told when RA claims and closes, with what to
 * do next; "report" in the RA channel for RA members only; `admin cases` and
 * `admin report --csv`; and, on a bot with no configured channel, waiting case
 * cards posted once the bot is installed in the RA team. Results are read from
 * the connector's recorded calls and from the store (read-only SQL).
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, runAdmin, startBotStack, type BotStack } from '../support/e2e-stack';
import { activityText, cardText, executeActions, invokeCard, postJson, RecordingConnector, seedPerson, TeamsClient, teamsUser, type TeamsUser, readStore } from './adversarial-harness';

const RA_CHANNEL = '19:ra-desk-staff@thread.tacv2';
const TEAM = { id: '19:team-staff@thread.tacv2' };

function sqlOf(bot: BotStack) {
  return <T>(query: string, ...params: unknown[]): T[] => {
    const db = new Database(path.join(bot.dataDir, 'smartcard-assist.sqlite'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(query).all(...params) as T[];
    } finally {
      db.close();
    }
  };
}

/** An activity in the RA channel from a user (a message, or a click on a card posted there). */
function inChannel(teams: TeamsClient, user: TeamsUser, channel: string, fields: Record<string, unknown>): Record<string, unknown> {
  return {
    ...teams.base(user),
    conversation: { id: `${channel};messageid=1`, conversationType: 'channel', isGroup: true, tenantId: 'adv-tenant' },
    channelData: { tenant: { id: 'adv-tenant' }, team: TEAM, channel: { id: channel } },
    ...fields,
  };
}

describe('RA desk staff: helpdesk handoff, the person told, the report', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let sql: ReturnType<typeof sqlOf>;
  const alex = teamsUser('Alex Ra');
  const casey = teamsUser('Casey Help');
  const dana = teamsUser('Dana Nobody');

  const channelTexts = () => conn.calls.filter((c) => c.conversationId.startsWith(RA_CHANNEL)).map((c) => activityText(c.body));
  const lastReply = (user: TeamsUser) => conn.textsIn(user.conversationId).at(-1) ?? '';

  beforeAll(async () => {
    conn = new RecordingConnector();
    await conn.start();
    bot = await startBotStack('ra-desk-staff', { RA_MEMBER_IDS: alex.id, HELPDESK_MEMBER_IDS: casey.id, RA_CHANNEL_ID: RA_CHANNEL, RA_CHANNEL_SERVICE_URL: conn.url });
    teams = new TeamsClient(bot, conn.url);
    sql = sqlOf(bot);
  });

  afterAll(async () => {
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('helpdesk opens a case for someone: reference shown, the person told, card in the channel; claim and close reach the person with what to do next', async () => {
    const sam = await seedPerson(bot, 'Sam Jones');
    // Sam has chatted with the bot before (so the bot can reach them).
    await teams.message(sam.user, 'hello');

    await teams.message(casey, `open case for ${sam.email.toUpperCase()}: Locked out, identity checked by phone`);
    const answer = lastReply(casey);
    const ref = /RA-[0-9A-Z]{6}/.exec(answer)?.[0];
    expect(ref, answer).toBeDefined();
    expect(answer).toContain(`is open for Sam Jones (${sam.email})`);
    expect(answer).toContain('They have been told in their Teams chat');
    expect(sql<{ person_id: string; reason: string; status: string }>(`SELECT person_id, reason, status FROM cases WHERE ref = ?`, ref)).toEqual([{ person_id: sam.personId, reason: 'helpdesk', status: 'open' }]);
    await expect.poll(() => conn.textsIn(sam.user.conversationId).some((t) => t.startsWith(`Casey Help from the IT helpdesk has asked your RA team`) && t.includes(ref!)), { timeout: 10_000 }).toBe(true);
    // The card in the RA channel says who opened it and why.
    await expect.poll(() => channelTexts().some((t) => t.includes(ref!) && t.includes('opened by the helpdesk') && t.includes('Locked out, identity checked by phone')), { timeout: 10_000 }).toBe(true);
    const audit = sql<{ actor: string }>(`SELECT actor FROM audit WHERE action = 'ra_case.opened' AND json_extract(details, '$.caseRef') = ?`, ref);
    expect(audit).toEqual([{ actor: `helpdesk:${casey.id}` }]);

    // Asked again: the same case is named, nothing new opened.
    await teams.message(casey, `open case for ${sam.email}: again`);
    expect(lastReply(casey)).toContain(`already has an open case, ${ref}`);
    expect(sql(`SELECT ref FROM cases WHERE person_id = ?`, sam.personId)).toHaveLength(1);

    // RA claims and closes from the card: the person hears both, with what to do next.
    const click = (user: TeamsUser, verb: string, data: Record<string, unknown>) => postJson(bot, '/api/messages', inChannel(teams, user, RA_CHANNEL, { type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb, data } } }));
    const claimed = invokeCard(await click(alex, 'ra.claim', { caseRef: ref, step: '1' }));
    const close = executeActions(claimed).find((a) => a.verb === 'ra.close')!;
    expect(close, cardText(claimed)).toBeDefined();
    await expect.poll(() => conn.textsIn(sam.user.conversationId).some((t) => t.startsWith(`Alex Ra from your RA team is now looking after your case ${ref}`)), { timeout: 10_000 }).toBe(true);
    invokeCard(await click(alex, 'ra.close', { ...close.data, outcome: 'attempts_reset' }));
    await expect.poll(() => conn.textsIn(sam.user.conversationId).find((t) => t.startsWith(`Your case ${ref} is closed`)) ?? '', { timeout: 10_000 }).toMatch(/self-service attempts reset\)\. You can unlock your card yourself again: say "unlock"\./);
    // A close clicked again on the closed case: refused, nothing changed.
    const version = sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${ref}:ra-case`)[0]!.version;
    expect(cardText(invokeCard(await click(alex, 'ra.close', { ...close.data, outcome: 'no_action' })))).toContain('This case is closed. Nothing was changed.');
    expect(sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${ref}:ra-case`)[0]!.version).toBe(version);
  });

  it('an unregistered email gets a clear answer and opens nothing; a non-helpdesk sender is refused and audited', async () => {
    const before = sql<{ n: number }>(`SELECT count(*) AS n FROM cases`)[0]!.n;
    await teams.message(casey, 'open case for nobody.here@nhs.net: locked');
    expect(lastReply(casey)).toBe('No one is registered with Smartcard Assist as nobody.here@nhs.net. Nothing was opened. Check the address, or contact the RA team directly: they can help people who are not registered.');
    await teams.message(casey, 'open case for nobody.here@nhs.net');
    expect(lastReply(casey)).toContain('Say why after the address');
    const kim = await seedPerson(bot, 'Kim Lee');
    await teams.message(dana, `open case for ${kim.email}: please`);
    expect(lastReply(dana)).toContain('Only helpdesk staff can open RA cases for someone else. Nothing was opened');
    expect(sql<{ n: number }>(`SELECT count(*) AS n FROM cases`)[0]!.n).toBe(before);
    const refused = sql<{ details: string }>(`SELECT details FROM audit WHERE action = 'ra_case.helpdesk_open' AND actor = ?`, `teams:${dana.id}`);
    expect(refused.map((r) => JSON.parse(r.details) as unknown)).toEqual([{ outcome: 'refused', reason: 'not_helpdesk', role: 'none' }]);
  });

  it('"report" in the RA channel: the counts for an RA member, a refusal (audited) for anyone else; the admin commands agree', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const r = await postJson(bot, '/api/messages', inChannel(teams, alex, RA_CHANNEL, { type: 'message', text: `<at>Smartcard Assist</at> report ${today}` }));
    expect(r.status).toBeLessThan(300);
    const report = channelTexts().at(-1) ?? '';
    expect(report).toContain(`Usage from ${today} to ${today} (UTC days, both included).`);
    // The facts: the helpdesk case above was opened and closed today.
    const facts = JSON.stringify(conn.calls.at(-1)?.body);
    expect(facts).toContain('{"title":"Cases opened","value":"1"}');
    expect(facts).toContain('{"title":"Cases closed","value":"1"}');
    expect(facts).toMatch(/\{"title":"Median time to close a case","value":"\d+ min"\}/);

    await postJson(bot, '/api/messages', inChannel(teams, casey, RA_CHANNEL, { type: 'message', text: '<at>Smartcard Assist</at> report' }));
    expect(channelTexts().at(-1)).toBe('Only RA team members can ask for the usage report. Nothing was shown, and your request was recorded.');
    expect(sql(`SELECT id FROM audit WHERE action = 'report.requested' AND actor = ?`, `helpdesk:${casey.id}`)).toHaveLength(1);

    const csv = await runAdmin(bot, ['report', '--from', today, '--to', today, '--csv']);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, line] = csv.stdout.split('\r\n');
    expect(header).toBe('team,from,to,registrations,self_unlocks,lockouts,ra_assisted_unlocks,cases_opened,cases_closed,median_open_to_close_minutes');
    expect(line).toMatch(new RegExp(`^RA desk,${today}T00:00:00.000Z,.*,0,0,0,0,1,1,\\d+\\.\\d$`));
    const bad = await runAdmin(bot, ['report', '--from', '2026-12-09', '--to', '2026-12-01']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--to is before --from');
  });

  it('helpdesk handoff by card: the form, the case reference on the answer card, the person told; bad input and non-helpdesk clicks change nothing', async () => {
    const lee = await seedPerson(bot, 'Lee Formed');
    await teams.message(lee.user, 'hello');
    const cases = () => sql<{ n: number }>(`SELECT count(*) AS n FROM cases`)[0]!.n;

    // Asking for the form: helpdesk gets it, anyone else is refused (audited, form: true).
    await teams.message(casey, 'open case');
    const form = conn.calls.filter((c) => c.conversationId === casey.conversationId).at(-1)!;
    const formText = activityText(form.body);
    expect(formText).toContain('Open an RA case for someone');
    expect(JSON.stringify(form.body)).toContain('"verb":"helpdesk.open_case"');
    await teams.message(dana, 'open a case for someone');
    expect(activityText(conn.calls.filter((c) => c.conversationId === dana.conversationId).at(-1)!.body)).toContain('Only helpdesk staff can open RA cases for someone else');
    const refusedForm = sql<{ details: string }>(`SELECT details FROM audit WHERE action = 'ra_case.helpdesk_open' AND actor = ? AND json_extract(details, '$.form') = 1`, `teams:${dana.id}`);
    expect(refusedForm).toHaveLength(1);

    const before = cases();
    const danaRefusals = () => sql(`SELECT id FROM audit WHERE action = 'ra_case.helpdesk_open' AND actor = ? AND json_extract(details, '$.form') IS NULL`, `teams:${dana.id}`).length;
    const refusalsBefore = danaRefusals();
    const open = (user: TeamsUser, data: Record<string, unknown>) => teams.invoke(user, 'helpdesk.open_case', data, form.activityId ?? undefined);
    // Bad input: each answer is the form again, saying what is wrong, values kept; nothing opened.
    const unregistered = cardText(invokeCard(await open(casey, { email: 'nobody.here@nhs.net', reason: 'locked out' })));
    expect(unregistered).toContain('No one is registered with Smartcard Assist as nobody.here@nhs.net. Nothing was opened.');
    expect(unregistered).toContain('Open RA case');
    const noReason = invokeCard(await open(casey, { email: lee.email }));
    expect(cardText(noReason)).toContain('Say why the person needs their RA team. Nothing was opened.');
    expect(JSON.stringify(noReason)).toContain(`"value":"${lee.email}"`);
    expect(cardText(invokeCard(await open(casey, { email: 'not-an-address', reason: 'x' })))).toContain('"not-an-address" is not an email address. Nothing was opened.');
    // A forged click: a reason over the bound is refused by the parser (400, naming the field).
    const forged = await open(casey, { email: lee.email, reason: 'y'.repeat(501) });
    expect(forged.status).toBe(400);
    expect(JSON.stringify(forged.json)).toContain('reason is longer than 500 characters');
    const unknownVerb = await teams.invoke(casey, 'helpdesk.open_case_now', { email: lee.email, reason: 'x' });
    expect(unknownVerb.status).toBe(400);
    // A non-helpdesk click on the form: refused, audited, nothing opened.
    expect(cardText(invokeCard(await open(dana, { email: lee.email, reason: 'please' })))).toContain('Only helpdesk staff can open RA cases for someone else');
    expect(cases()).toBe(before);
    expect(danaRefusals()).toBe(refusalsBefore + 1);

    // The real thing: the answer card shows the case reference, the person is told, the card reaches the channel.
    const opened = cardText(invokeCard(await open(casey, { email: ` ${lee.email.toUpperCase()} `, reason: 'Card locked at the front desk' })));
    const ref = /RA-[0-9A-Z]{6}/.exec(opened)?.[0];
    expect(ref, opened).toBeDefined();
    expect(opened).toContain('RA case opened');
    expect(opened).toContain(`Lee Formed`);
    expect(opened).toContain('the person has been told in their Teams chat');
    expect(sql<{ person_id: string; reason: string }>(`SELECT person_id, reason FROM cases WHERE ref = ?`, ref)).toEqual([{ person_id: lee.personId, reason: 'helpdesk' }]);
    await expect.poll(() => conn.textsIn(lee.user.conversationId).some((t) => t.startsWith('Casey Help from the IT helpdesk has asked your RA team') && t.includes(ref!)), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => channelTexts().some((t) => t.includes(ref!) && t.includes('Card locked at the front desk')), { timeout: 10_000 }).toBe(true);
    // A double click: the same case is named, nothing new.
    const again = cardText(invokeCard(await open(casey, { email: lee.email, reason: 'Card locked at the front desk' })));
    expect(again).toContain('This person already has an RA case');
    expect(again).toContain(ref!);
    expect(sql(`SELECT ref FROM cases WHERE person_id = ?`, lee.personId)).toHaveLength(1);
  });

  it('admin cases lists open and claimed cases with person and owner; closed ones are left out', async () => {
    const pat = await seedPerson(bot, 'Pat Asker');
    await teams.message(pat.user, 'talk to RA');
    const ref = sql<{ ref: string }>(`SELECT ref FROM cases WHERE person_id = ?`, pat.personId)[0]!.ref;
    const out = await runAdmin(bot, ['cases']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.split('\n')[0]).toMatch(/^REF\s+STATUS\s+REASON\s+PERSON\s+OWNER\s+OPENED AT \(UTC\)$/);
    expect(out.stdout).toMatch(new RegExp(`^${ref}\\s+open\\s+requested\\s+Pat Asker <${pat.email}>\\s+-\\s+\\d{4}-`, 'm'));
    // The helpdesk case was closed in the first test: not listed.
    expect(out.stdout).not.toContain('Sam Jones');
    expect((await runAdmin(bot, ['list-cases'])).stdout).toBe(out.stdout);
  });
});

describe('RA desk: case cards wait until the RA channel is known', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const channel = '19:ra-learned@thread.tacv2';

  beforeAll(async () => {
    conn = new RecordingConnector();
    await conn.start();
    // No RA_CHANNEL_ID: the channel is learned when the bot is installed in the team.
    bot = await startBotStack('ra-desk-learn', { RA_MEMBER_IDS: teamsUser('x').id });
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('a case opened before the install is posted to the channel once the bot is added to the team', async () => {
    const p = await seedPerson(bot, 'Quinn Early');
    await teams.message(p.user, 'talk to RA');
    const ref = /RA-[0-9A-Z]{6}/.exec(conn.textsIn(p.user.conversationId).join('\n'))?.[0];
    expect(ref).toBeDefined();
    await new Promise((r) => setTimeout(r, 500));
    expect(conn.calls.filter((c) => c.conversationId.startsWith(channel))).toEqual([]);
    // The bot is added to the team (Teams sends a conversationUpdate in the team's channel).
    const installer = teamsUser('Team Owner');
    const r = await postJson(bot, '/api/messages', {
      ...inChannel(teams, installer, channel, { type: 'conversationUpdate' }),
      conversation: { id: channel, conversationType: 'channel', isGroup: true, tenantId: 'adv-tenant' },
      membersAdded: [{ id: '28:adv-bot' }],
    });
    expect(r.status).toBeLessThan(300);
    await expect.poll(() => conn.calls.filter((c) => c.conversationId === channel && c.method === 'POST' && activityText(c.body).includes(ref!)).length, { timeout: 10_000 }).toBe(1);
    // Posted once: the stored card activity is kept for updates in place.
    // (The connector has the POST before the bot stores the id its answer carried: wait for the store.)
    const key = `${ref}:ra-case`;
    const storedActivityId = (): unknown => JSON.parse(readStore<{ ui: string }>(bot.dataDir, 'SELECT ui FROM journeys WHERE key = ?', key)[0]?.ui ?? '{}').activityId ?? null;
    await expect.poll(storedActivityId, { timeout: 10_000 }).toMatch(/^act-/);
  });
});

describe('RA desk: several RA teams (RA_TEAMS)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const NORTH_CHANNEL = '19:ra-north@thread.tacv2';
  const SOUTH_CHANNEL = '19:ra-south@thread.tacv2';
  const nora = teamsUser('Nora North');
  const sid = teamsUser('Sid South');

  beforeAll(async () => {
    conn = new RecordingConnector();
    await conn.start();
    bot = await startBotStack('ra-desk-teams', {
      RA_TEAMS: JSON.stringify([
        { name: 'North RA', memberIds: [nora.id], channelId: NORTH_CHANNEL, serviceUrl: conn.url, emailDomains: ['north.example.org'] },
        // The seeded people are @nhs.net: theirs.
        { name: 'South RA', memberIds: [sid.id], channelId: SOUTH_CHANNEL, serviceUrl: conn.url, emailDomains: ['nhs.net'] },
      ]),
    });
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it("a case's card goes to its own team's channel, and only that team's members act on it", async () => {
    const p = await seedPerson(bot, 'Tess Routed');
    await teams.message(p.user, 'talk to RA');
    const ref = /RA-[0-9A-Z]{6}/.exec(conn.textsIn(p.user.conversationId).join('\n'))?.[0];
    expect(ref).toBeDefined();
    await expect.poll(() => conn.calls.filter((c) => c.conversationId === SOUTH_CHANNEL && c.method === 'POST' && activityText(c.body).includes(ref!)).length, { timeout: 10_000 }).toBe(1);
    const posted = conn.calls.find((c) => c.conversationId === SOUTH_CHANNEL && c.method === 'POST')!;
    expect(activityText(posted.body)).toMatch(/Team: \s*South RA/);
    expect(conn.calls.filter((c) => c.conversationId.startsWith(NORTH_CHANNEL))).toEqual([]);
    const click = (user: TeamsUser, channel: string) => postJson(bot, '/api/messages', inChannel(teams, user, channel, { type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'ra.claim', data: { caseRef: ref, step: '1' } } } }));
    // North's member is not in South's team: refused, nothing changed.
    expect(cardText(invokeCard(await click(nora, NORTH_CHANNEL)))).toContain('Only RA team members can act on RA cases');
    expect(readStore<{ status: string }>(bot.dataDir, `SELECT status FROM cases WHERE ref = ?`, ref)[0]!.status).toBe('open');
    expect(cardText(invokeCard(await click(sid, SOUTH_CHANNEL)))).toContain('Claimed');
    expect(readStore<{ status: string }>(bot.dataDir, `SELECT status FROM cases WHERE ref = ?`, ref)[0]!.status).toBe('claimed');
    // The card in the South channel is updated in place; the North channel never heard of the case.
    await expect.poll(() => conn.calls.some((c) => c.conversationId === SOUTH_CHANNEL && c.method === 'PUT' && activityText(c.body).includes('Sid South')), { timeout: 10_000 }).toBe(true);
    expect(conn.calls.filter((c) => c.conversationId.startsWith(NORTH_CHANNEL))).toEqual([]);
    // The report has a row per team: the case is South's.
    await postJson(bot, '/api/messages', inChannel(teams, sid, SOUTH_CHANNEL, { type: 'message', text: '<at>Smartcard Assist</at> report' }));
    const report = JSON.stringify(conn.calls.filter((c) => c.conversationId.startsWith(SOUTH_CHANNEL) && c.method === 'POST').at(-1)?.body);
    expect(report).toMatch(/"text":"North RA".*"title":"Cases opened","value":"0".*"text":"South RA".*"title":"Cases opened","value":"1"/);
    // The admin report agrees: a CSV line per team.
    const today = new Date().toISOString().slice(0, 10);
    const csv = await runAdmin(bot, ['report', '--from', today, '--to', today, '--csv']);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout.split('\r\n').slice(1, 3).map((l) => l.split(',').filter((_v, i) => i === 0 || i === 7).join(','))).toEqual(['North RA,0', 'South RA,1']);
  });
});
