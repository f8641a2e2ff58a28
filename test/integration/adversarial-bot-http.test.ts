/**
 * Adversarial: the bot's HTTP surface as an attacker and a clumsy client use it.
 * The real bot process (embedded store, outbox mail) on its own loopback port and
 * data directory; Teams activities posted raw; what the bot sends to Teams caught
 * by a recording connector stand-in; the store read (read-only SQL) for what was
 * counted. Expected: a clear 4xx naming what is wrong, no 5xx, no crash, nothing
 * stored inconsistently, no secret echoed in an answer or the log.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import { loadConfig } from '../../bot/config';
import { provisionalPersonId } from '../../bot/journeys/registration/registration.service';
import { activityText, httpRequest, postJson, RecordingConnector, scanForSecrets, seedPerson, sleep, TeamsClient, teamsUser, type SeededPerson, readStore } from './adversarial-harness';

/** The pairing user-code alphabet (no 0 O 1 I L). */
const USER_CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const randomUserCode = (): string => {
  let s = '';
  for (let i = 0; i < 8; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
};

describe('adversarial: bot HTTP (activities, card actions, pairing endpoints)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let alice: SeededPerson;
  /** Secrets the tests send; none may show in the bot's output or data directory. */
  const secrets: Array<{ label: string; value: string }> = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const healthy = async (): Promise<void> => {
    expect(bot.process.hasExited(), 'the bot process exited').toBe(false);
    expect((await httpRequest(`${bot.url}/healthz`)).status).toBe(200);
  };

  beforeAll(async () => {
    bot = await startBotStack('adv-bot-http');
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
    alice = await seedPerson(bot, 'Alice Httpadv');
    secrets.push({ label: 'alice PUK', value: alice.puk }, ...Object.entries(alice.answers).map(([q, v]) => ({ label: `alice answer ${q}`, value: v })));
  });

  afterAll(async () => {
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('refuses bodies that are not a JSON activity with a 4xx that says what is wrong, and stays up', async () => {
    const cases: Array<{ body: string; type?: string; status: number; says: RegExp }> = [
      { body: '{"type":', status: 400, says: /JSON/i },
      { body: '[1,2]', status: 400, says: /JSON object with a string "type"/ },
      { body: 'null', status: 400, says: /JSON object with a string "type"/ },
      { body: '{"type":5}', status: 400, says: /string "type"/ },
      { body: '{}', status: 400, says: /string "type"/ },
      { body: JSON.stringify({ type: 'message', text: 'x'.repeat(300_000) }), status: 413, says: /size|large/i },
      { body: 'hello', type: 'text/plain', status: 415, says: /text\/plain/ },
    ];
    for (const c of cases) {
      const r = await httpRequest(`${bot.url}/api/messages`, { method: 'POST', headers: { 'content-type': c.type ?? 'application/json' }, body: c.body });
      expect(r.status, c.body.slice(0, 40)).toBe(c.status);
      const j = r.json as { error?: string; message?: string } | null;
      expect(j?.error ?? j?.message ?? r.text).toMatch(c.says);
    }
    expect((await httpRequest(`${bot.url}/api/messages`)).status).toBe(405);
    await healthy();
  });

  it('does not echo a malformed body (which may hold a secret) in its answer or its log', async () => {
    // A client that forgot to quote a value: Node's JSON.parse error quotes the input around the fault.
    const answer = `Biscuit${randomBytes(4).toString('hex')}`;
    const deviceCode = randomBytes(32).toString('base64url').replace(/^[^A-Za-z]/, 'k');
    secrets.push({ label: 'malformed-body answer', value: answer }, { label: 'malformed-body device code prefix', value: deviceCode.slice(0, 10) });
    const r1 = await httpRequest(`${bot.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: answer });
    const r2 = await httpRequest(`${bot.url}/companion/pair/poll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"deviceCode": ${deviceCode}}` });
    expect(r1.status).toBe(400);
    expect(r2.status).toBe(400);
    await sleep(200);
    expect(r1.text, 'answer echoed in the 400 body').not.toContain(answer);
    expect(r2.text, 'device code echoed in the 400 body').not.toContain(deviceCode.slice(0, 10));
    expect(bot.process.output(), 'answer in the bot log').not.toContain(answer);
    expect(bot.process.output(), 'device code in the bot log').not.toContain(deviceCode.slice(0, 10));
  });

  it('refuses an activity without from, conversation or serviceUrl with a 400 naming the field (not 200 and a failed turn)', async () => {
    const u = teamsUser('Clumsy Client');
    const before = bot.process.output().length;
    const noFrom = await teams.raw(u, { type: 'message', text: 'unlock', from: undefined });
    const noConversation = await teams.raw(u, { type: 'message', text: 'unlock', conversation: undefined });
    const noServiceUrl = await teams.raw(u, { type: 'message', text: 'help', serviceUrl: undefined });
    const results = { noFrom, noConversation, noServiceUrl };
    const got = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, `${r.status} ${r.text.slice(0, 80)}`]));
    await healthy();
    const failedTurns = bot.process.output().slice(before).split('\n').filter((l) => l.includes('"msg":"turn failed"')).length;
    expect.soft(failedTurns, 'turns that failed with a stack trace in the log').toBe(0);
    expect(noFrom.status, JSON.stringify(got)).toBe(400);
    expect(noFrom.text).toMatch(/from/);
    expect(noConversation.status, JSON.stringify(got)).toBe(400);
    expect(noConversation.text).toMatch(/conversation/);
    expect(noServiceUrl.status, JSON.stringify(got)).toBe(400);
    expect(noServiceUrl.text).toMatch(/serviceUrl/);
  });

  it('refuses an adaptiveCard/action invoke whose value is not an object with a 400, not a 501 and a stack trace', async () => {
    const u = teamsUser('Odd Value');
    const before = bot.process.output().length;
    for (const value of ['x', 42, ['a'], { action: 'not an object' }, { action: { type: 'Action.Submit', verb: 'unlock.start' } }]) {
      const r = await teams.raw(u, { type: 'invoke', name: 'adaptiveCard/action', value });
      expect.soft(r.status, `value ${JSON.stringify(value)}: ${r.text.slice(0, 120)}`).toBe(400);
      expect.soft(r.text, `value ${JSON.stringify(value)} answer names the problem`).toMatch(/action|value/i);
    }
    await healthy();
    const failedTurns = bot.process.output().slice(before).split('\n').filter((l) => l.includes('"msg":"turn failed"'));
    expect(failedTurns, 'turns that failed with a stack trace').toEqual([]);
  });

  it('answers invokes other than adaptiveCard/action (or with no name) with a 400 naming what is not supported, never a 5xx or an empty 501', async () => {
    const u = teamsUser('Other Invokes');
    const before = bot.process.output().length;
    const cases: Array<{ name: string | undefined; value: unknown; says: RegExp }> = [
      { name: 'task/fetch', value: { data: { verb: 'x' } }, says: /"task\/fetch" is not supported/ },
      { name: 'composeExtension/query', value: { commandId: 'search', parameters: [] }, says: /"composeExtension\/query" is not supported/ },
      { name: 'signin/verifyState', value: { state: '123456' }, says: /"signin\/verifyState" is not supported/ },
      { name: 'application/search', value: { kind: 'search', queryText: 'x' }, says: /"application\/search" is not supported/ },
      { name: undefined, value: { action: { type: 'Action.Execute', verb: 'unlock.start', data: {} } }, says: /invoke has no "name"/ },
      { name: `evil\u202E${'n'.repeat(300)}`, value: {}, says: /This invoke name is not supported/ },
    ];
    for (const c of cases) {
      const r = await teams.raw(u, { type: 'invoke', name: c.name, value: c.value });
      expect.soft(r.status, `${String(c.name).slice(0, 30)}: ${r.status} ${r.text.slice(0, 160)}`).toBe(400);
      const body = r.json as { error?: string; value?: { code?: string; message?: string } } | null;
      expect.soft(body?.value?.message ?? '', `${String(c.name).slice(0, 30)} answer says what is not supported`).toMatch(c.says);
      expect.soft(body?.value?.message ?? '', 'answer names what is supported').toMatch(/adaptiveCard\/action/);
      expect.soft(body?.value?.code, 'an invoke error body Teams can read').toBe('NotSupported');
      expect.soft(body?.error, 'the same words as every refusal at the door').toBe(body?.value?.message);
      expect.soft(r.text).not.toContain('n'.repeat(50));
    }
    await healthy();
    const failedTurns = bot.process.output().slice(before).split('\n').filter((l) => l.includes('"msg":"turn failed"'));
    expect(failedTurns, 'turns that failed with a stack trace').toEqual([]);
  });

  it('refuses a conversationUpdate whose membersAdded or membersRemoved is not an array of members with string ids: 400 naming the field, no failed turn', async () => {
    const u = teamsUser('Members Malformed');
    const before = bot.process.output().length;
    const sentBefore = conn.textsIn(u.conversationId).length;
    const cases: Array<{ field: 'membersAdded' | 'membersRemoved'; value: unknown }> = [
      { field: 'membersAdded', value: 'x' },
      { field: 'membersAdded', value: { id: 'a' } },
      { field: 'membersAdded', value: [1] },
      { field: 'membersAdded', value: [{}] },
      { field: 'membersAdded', value: [{ id: 5 }] },
      { field: 'membersAdded', value: [{ id: '28:adv-bot' }, null] },
      { field: 'membersRemoved', value: 42 },
      { field: 'membersRemoved', value: [{ id: '' }] },
    ];
    for (const c of cases) {
      const r = await teams.raw(u, { type: 'conversationUpdate', text: undefined, [c.field]: c.value });
      expect.soft(r.status, `${c.field}=${JSON.stringify(c.value)}: ${r.text.slice(0, 160)}`).toBe(400);
      expect.soft(r.text, `${c.field}=${JSON.stringify(c.value)} answer names the field`).toMatch(new RegExp(c.field));
    }
    // Positive control: a well-formed update is welcomed (the handler ran).
    const ok = await teams.raw(u, { type: 'conversationUpdate', membersAdded: [{ id: u.id }, { id: '28:adv-bot' }] });
    expect(ok.status).toBe(200);
    await sleep(300);
    expect(conn.textsIn(u.conversationId).length, 'one welcome, for the well-formed update only').toBe(sentBefore + 1);
    await healthy();
    const failedTurns = bot.process.output().slice(before).split('\n').filter((l) => l.includes('"msg":"turn failed"'));
    expect(failedTurns, 'turns that failed with a stack trace').toEqual([]);
  });

  it('refuses ids, names, URLs and text longer than Teams ever sends with a 400 naming the field, never the value, before anything is stored', async () => {
    const count = (table: 'conversations' | 'journeys'): number => sql<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)[0]!.n;
    const stored = { conversations: count('conversations'), journeys: count('journeys') };
    const marker = `Zq${randomBytes(3).toString('hex')}`;
    const long = (n: number): string => `${marker}${'x'.repeat(n - marker.length)}`;
    type Case = { field: string; fields: (u: TeamsUserT) => Record<string, unknown> };
    type TeamsUserT = ReturnType<typeof teamsUser>;
    const base = (u: TeamsUserT): Record<string, unknown> => teams.base(u);
    const cases: Case[] = [
      { field: 'conversation.id', fields: (u) => ({ conversation: { ...(base(u)['conversation'] as object), id: `a:${long(10_240)}` } }) },
      { field: 'from.id', fields: (u) => ({ from: { id: long(1000), name: u.name } }) },
      { field: 'from.aadObjectId', fields: (u) => ({ from: { id: u.id, name: u.name, aadObjectId: long(1000) } }) },
      { field: 'from.name', fields: (u) => ({ from: { id: u.id, aadObjectId: u.id, name: long(5000) } }) },
      { field: 'recipient.id', fields: () => ({ recipient: { id: long(1000), name: 'Smartcard Assist' } }) },
      { field: 'serviceUrl', fields: () => ({ serviceUrl: `${conn.url}${long(3000)}/` }) },
      { field: 'id', fields: () => ({ id: long(1000) }) },
      { field: 'replyToId', fields: () => ({ replyToId: long(1000) }) },
      { field: 'conversation.tenantId', fields: (u) => ({ conversation: { ...(base(u)['conversation'] as object), tenantId: long(1000) } }) },
      { field: 'channelData.tenant.id', fields: () => ({ channelData: { tenant: { id: long(1000) } } }) },
      { field: 'text', fields: () => ({ text: `register ${long(100_000)}` }) },
      { field: 'conversation', fields: (u) => ({ conversation: { ...(base(u)['conversation'] as object), extra: long(50_000) } }) },
    ];
    for (const c of cases) {
      const u = teamsUser(`Long ${c.field}`);
      // "register" starts a registration journey and stores the conversation reference when accepted.
      const r = await teams.raw(u, { type: 'message', text: 'register', ...c.fields(u) });
      expect.soft(r.status, `${c.field}: ${r.status} ${r.text.slice(0, 160)}`).toBe(400);
      expect.soft(r.text, `${c.field}: answer names the field`).toContain(`${c.field} `);
      expect.soft(r.text, `${c.field}: answer echoes the value`).not.toContain(marker);
      expect.soft(r.text.length).toBeLessThan(500);
    }
    await sleep(300);
    expect(count('conversations'), 'conversation references stored for refused activities').toBe(stored.conversations);
    expect(count('journeys'), 'journeys stored for refused activities').toBe(stored.journeys);
    expect(bot.process.output(), 'a refused value in the bot log').not.toContain(marker);
    await healthy();
  });

  it('refuses a serviceUrl that is not an http(s) URL with a 400 naming serviceUrl, before anything is stored', async () => {
    const count = (): number => sql<{ n: number }>(`SELECT count(*) AS n FROM conversations`)[0]!.n;
    const before = count();
    for (const serviceUrl of ['ftp://127.0.0.1/', 'javascript:alert(1)', 'http://', 'https://exa mple.com/', 'http://[::1/', '127.0.0.1:3978', 5]) {
      const u = teamsUser('Bad ServiceUrl');
      const r = await teams.raw(u, { type: 'message', text: 'register', serviceUrl });
      expect.soft(r.status, `${String(serviceUrl)}: ${r.status} ${r.text.slice(0, 160)}`).toBe(400);
      expect.soft(r.text, String(serviceUrl)).toMatch(/serviceUrl/);
    }
    expect(count(), 'conversation references stored for refused activities').toBe(before);
    await healthy();
  });

  it('accepts Teams-shaped ids at realistic lengths (channel thread ids, 29: user ids, regional service URLs)', async () => {
    const u = teamsUser('Realistic Lengths');
    const r = await teams.raw(u, {
      type: 'message',
      text: 'help',
      id: `f:${randomBytes(24).toString('hex')}`,
      replyToId: '1712345678901',
      from: { id: `29:1${randomBytes(60).toString('base64url')}`, name: 'Realistic Lengths', aadObjectId: u.id },
      conversation: { id: `a:1${randomBytes(120).toString('base64url')}`, conversationType: 'personal', tenantId: 'adv-tenant' },
      recipient: { id: `28:${randomUUID()}`, name: 'Smartcard Assist' },
    });
    expect(r.status, r.text.slice(0, 200)).toBe(200);
  });

  it('refuses card actions with an unknown verb, missing run id, wrong types or a 10k answer, naming the field and never the value', async () => {
    const runId = '6d1f2b4e-8a7c-4d3e-9f10-0123456789ab';
    const longAnswer = `Secretive${randomBytes(3).toString('hex')}`.repeat(1000);
    secrets.push({ label: 'long answer', value: longAnswer.slice(0, 15) });
    const cases: Array<{ verb: string; data: Record<string, unknown>; says: RegExp }> = [
      { verb: 'evil.verb', data: {}, says: /Unknown card action "evil\.verb"/ },
      { verb: 'unlock.answers', data: { step: '1', a1: 'a', a2: 'b', a3: 'c' }, says: /runId is missing/ },
      { verb: 'unlock.answers', data: { runId: 5, step: {}, a1: [], a2: null, a3: 1 }, says: /runId must be a UUID; step must be text; a1 must be text/ },
      { verb: 'unlock.answers', data: { runId, step: '1', a1: longAnswer, a2: 'b', a3: 'c' }, says: /a1 is longer than 200 characters/ },
      { verb: 'unlock.answers', data: { runId, step: '1', a1: '   ', a2: 'b', a3: 'c' }, says: /a1 is empty/ },
      { verb: 'unlock.check_card', data: { runId: 'not-a-uuid', step: '1' }, says: /runId must be a UUID/ },
      { verb: 'journey.show', data: { journey: 'payroll' }, says: /journey must be unlock or registration/ },
      { verb: '\u202Eunlock.start', data: {}, says: /Unknown card action/ },
      { verb: 'x'.repeat(5000), data: {}, says: /Unknown card action "x{40}…"/ },
    ];
    for (const c of cases) {
      const r = await teams.invoke(alice.user, c.verb, c.data);
      expect(r.status, `${c.verb.slice(0, 20)}: ${r.text.slice(0, 200)}`).toBe(400);
      expect((r.json as { value?: { message?: string } }).value?.message ?? '').toMatch(c.says);
      expect(r.text).not.toContain(longAnswer.slice(0, 15));
      expect(r.text.length).toBeLessThan(2000);
    }
    // Nothing was stored for these: no unlock journey for Alice.
    expect(sql(`SELECT key FROM journeys WHERE person_id = ?`, alice.personId)).toEqual([]);
    await healthy();
  });

  it('answers odd but well-formed messages plainly: 60k characters (under the 65,536 text limit), Unicode look-alikes, bidi controls, a legacy submit value', async () => {
    const u = teamsUser('Unicode Tester');
    const texts = [`unlock ${'A'.repeat(60_000)}`, 'ｕｎｌｏｃｋ', '\u202Eunlock', 'unl\u200Bock', 'pair \u0000\u0000', `pair ${'Z'.repeat(70)}`, '<at>Bot</at> help'];
    for (const text of texts) {
      const r = await teams.message(u, text);
      expect(r.status, text.slice(0, 20)).toBe(200);
    }
    const legacy = await teams.raw(u, { type: 'message', value: 'not an object' });
    expect(legacy.status).toBe(200);
    await sleep(500);
    const said = conn.textsIn(u.conversationId);
    expect(said.length, 'one answer per message').toBeGreaterThanOrEqual(texts.length + 1);
    expect(said.join('\n')).toContain('That button is from an older card');
    expect(said.join('\n')).toContain('That does not look like a pairing code');
    // Not registered: typed unlock is refused plainly, nothing stored.
    expect(said[0]).toContain('You are not registered for self-service yet');
    await healthy();
  });

  it('refuses bad pairing bodies with a 400 naming the field and answers random device codes with expired_token', async () => {
    const bad: Array<{ path: string; body: unknown; says: RegExp }> = [
      { path: '/companion/pair/start', body: {}, says: /workstation/ },
      { path: '/companion/pair/start', body: { workstation: '<script>alert(1)</script>' }, says: /workstation/ },
      { path: '/companion/pair/start', body: { workstation: 'x'.repeat(65) }, says: /workstation/ },
      { path: '/companion/pair/start', body: { workstation: 'WS\u202E1' }, says: /workstation/ },
      { path: '/companion/pair/start', body: '{x', says: /JSON/ },
      { path: '/companion/pair/poll', body: { deviceCode: 'abc' }, says: /deviceCode/ },
      { path: '/companion/pair/poll', body: { deviceCode: 12345 }, says: /deviceCode/ },
      { path: '/companion/pair/poll', body: { deviceCode: 'a'.repeat(200) }, says: /deviceCode/ },
    ];
    for (const b of bad) {
      const r = await postJson(bot, b.path, b.body);
      expect(r.status, `${b.path} ${JSON.stringify(b.body).slice(0, 40)}: ${r.text}`).toBe(400);
      expect(r.text).toMatch(b.says);
    }
    const random = await Promise.all(Array.from({ length: 30 }, () => postJson(bot, '/companion/pair/poll', { deviceCode: randomBytes(32).toString('base64url') })));
    expect(new Set(random.map((r) => `${r.status} ${(r.json as { status?: string }).status}`))).toEqual(new Set(['200 expired_token']));
    expect(sql<{ n: number }>(`SELECT count(*) AS n FROM devices`)[0]!.n).toBe(0);
    await healthy();
  });

  it('limits wrong pairing codes from Teams to 5 in 10 minutes, also when they come in one burst', async () => {
    const mallory = teamsUser('Mallory Burst');
    const start = await postJson(bot, '/companion/pair/start', { workstation: 'VICTIM-WS-1' });
    const { userCode, deviceCode } = start.json as { userCode: string; deviceCode: string };
    // 60 guesses at once, the right code (seen over a shoulder, say) among the last ones.
    const guesses = Array.from({ length: 60 }, () => randomUserCode());
    guesses[50] = userCode;
    const replies = await Promise.all(guesses.map((g) => teams.message(mallory, `pair ${g}`)));
    expect(new Set(replies.map((r) => r.status))).toEqual(new Set([200]));
    await sleep(500);
    const checked = sql<{ n: number }>(`SELECT count(*) AS n FROM audit WHERE action = 'pairing.code_refused' AND person_id = ?`, provisionalPersonId(mallory.id))[0]!.n;
    const poll = await postJson(bot, '/companion/pair/poll', { deviceCode });
    expect((poll.json as { status: string }).status, 'the victim companion was paired to the attacker').not.toBe('approved');
    const limited = conn.textsIn(mallory.conversationId).filter((t) => t.includes('Too many pairing codes did not match')).length;
    expect(checked, `wrong codes actually checked (limit is 5); ${limited} of 60 answered "too many"`).toBeLessThanOrEqual(5);
    expect(limited).toBeGreaterThanOrEqual(55);
  });

  it('after 5 wrong codes sent one by one, even the right code is refused with a plain "wait" message', async () => {
    const m = teamsUser('Mallory Slow');
    const start = await postJson(bot, '/companion/pair/start', { workstation: 'VICTIM-WS-2' });
    const { userCode, deviceCode } = start.json as { userCode: string; deviceCode: string };
    for (let i = 0; i < 5; i++) await teams.message(m, `pair ${randomUserCode()}`);
    await teams.message(m, `pair ${userCode}`);
    await sleep(300);
    expect(conn.textsIn(m.conversationId).at(-1)).toContain('Too many pairing codes did not match. Wait 10 minutes');
    expect((await postJson(bot, '/companion/pair/poll', { deviceCode })).json).toMatchObject({ status: expect.stringMatching(/authorization_pending|slow_down/) });
  });

  it('mints one credential per approval: 10 concurrent polls and later replays of the approved poll get expired_token', async () => {
    const polly = teamsUser('Polly Poll');
    const start = await postJson(bot, '/companion/pair/start', { workstation: 'WS-POLLY' });
    const { userCode, deviceCode } = start.json as { userCode: string; deviceCode: string };
    await teams.message(polly, `pair ${userCode}`);
    await sleep(300);
    expect(conn.textsIn(polly.conversationId).at(-1)).toContain('This computer is paired');
    const polls = await Promise.all(Array.from({ length: 10 }, () => postJson(bot, '/companion/pair/poll', { deviceCode })));
    const statuses = polls.map((p) => (p.json as { status: string }).status).sort();
    expect(statuses).toEqual(['approved', ...Array(9).fill('expired_token')]);
    const approved = polls.find((p) => (p.json as { status: string }).status === 'approved')!.json as { credential: string; deviceId: string };
    secrets.push({ label: 'polly credential secret', value: approved.credential.split('.')[1]! }, { label: 'polly device code', value: deviceCode });
    for (let i = 0; i < 3; i++) expect((await postJson(bot, '/companion/pair/poll', { deviceCode })).json).toEqual({ status: 'expired_token' });
    expect(sql<{ n: number }>(`SELECT count(*) AS n FROM devices WHERE workstation = 'WS-POLLY'`)[0]!.n).toBe(1);
    expect(sql<{ n: number }>(`SELECT count(*) AS n FROM audit WHERE action = 'pairing.credential_issued' AND details LIKE '%WS-POLLY%'`)[0]!.n).toBe(1);
    // The same user code sent again by another person: refused, not re-bound.
    const other = teamsUser('Other Person');
    await teams.message(other, `pair ${userCode}`);
    await sleep(300);
    expect(conn.textsIn(other.conversationId).at(-1)).toMatch(/already been used|not known or has expired/);
  });

  it('rate-limits pair/start (20 a minute) with 429 and a plain reason', async () => {
    const rs = await Promise.all(Array.from({ length: 25 }, () => postJson(bot, '/companion/pair/start', { workstation: 'FLOOD' })));
    const limited = rs.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.text).toContain('Too many pairing requests');
    expect(rs.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    await healthy();
  });

  it('does not start with channel authentication off on a non-loopback address', () => {
    // With no MicrosoftAppId anyone who reaches /api/messages can act as any Teams user (from.aadObjectId is taken as is).
    const key = randomBytes(32).toString('base64');
    expect(loadConfig({ SMARTCARD_MASTER_KEY: key }).auth).toEqual({ kind: 'none' }); // loopback: local development
    let outcome: string;
    try {
      outcome = `started with auth ${loadConfig({ HOST: '0.0.0.0', SMARTCARD_MASTER_KEY: key }).auth.kind}`;
    } catch (err) {
      outcome = `refused: ${(err as Error).message}`;
    }
    expect(outcome).toMatch(/^refused: .*(MicrosoftAppId|ALLOW_UNAUTHENTICATED_CHANNEL)/);
    // Issue #11: without an app id the bot listens on loopback only; no setting opens another address.
    expect(() => loadConfig({ HOST: '0.0.0.0', SMARTCARD_MASTER_KEY: key, ALLOW_UNAUTHENTICATED_CHANNEL: 'true' })).toThrow(/^HOST: 0\.0\.0\.0 .*loopback only/);
  });

  it('no secret sent in these tests shows in the bot log, the store or the outbox', async () => {
    // The malformed-body values have their own test above; this scan covers everything else.
    const scanned = secrets.filter((s) => !s.label.startsWith('malformed-body'));
    const found = await scanForSecrets([bot.dataDir], [{ where: 'bot stdout', text: bot.process.output() }, ...conn.calls.map((c, i) => ({ where: `teams activity ${i}`, text: activityText(c.body) }))], scanned);
    expect(found).toEqual([]);
  });
});
