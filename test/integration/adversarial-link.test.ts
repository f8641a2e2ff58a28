/**
 * Adversarial: the companion link WebSocket (`/companion/link`) as an attacker
 * or a broken companion uses it. The real bot process (embedded store, outbox
 * mail) on its own loopback port; people seeded with the admin command; devices
 * paired over the real pairing contract; a raw companion that sends frames one
 * by one (so it can send what a real companion never would). The store is read
 * with read-only SQL to see what was counted and changed.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
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
  scanForSecrets,
  seedPerson,
  sleep,
  TeamsClient,
  unlockCodeOf,
  type SeededPerson,
  unlockRun,
  readStore,
} from './adversarial-harness';

interface Paired {
  person: SeededPerson;
  deviceId: string;
  credential: string;
}

describe('adversarial: companion link WebSocket', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let alice: Paired;
  let bob: Paired;
  /**
   * A third person for the pulled-card test: by then Bob has been sent 3 unlock codes within the hour,
   * the most one person may be sent (UNLOCK_CODES_PER_HOUR, issue #14), so a fourth run of his stops
   * with "Too many codes in the last hour" before any code.
   */
  let carol: Paired;
  const open: RawCompanion[] = [];
  const secrets: Array<{ label: string; value: string }> = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const count = (personId: string, action: string): number => sql<{ n: number }>(`SELECT count(*) AS n FROM audit WHERE person_id = ? AND action = ?`, personId, action)[0]!.n;
  const journeyState = (personId: string): Record<string, unknown> => unlockRun(sql<{ state: string }>(`SELECT state FROM journeys WHERE key = ?`, `${personId}:unlock`)[0]?.state);
  const cardRow = (cardId: string): { puk: string | null; pending_puk: string | null; version: number } => sql<{ puk: string | null; pending_puk: string | null; version: number }>(`SELECT puk, pending_puk, version FROM cards WHERE card_id = ?`, cardId)[0]!;

  const connect = async (p: Paired, hello = true): Promise<RawCompanion> => {
    const c = await RawCompanion.connect(bot, `Bearer ${p.credential}`, { hello });
    c.cardStatus = { present: true, reader: 'Adv Reader 0', cardId: p.person.cardId, pinRetries: 0 };
    open.push(c);
    return c;
  };

  const pair = async (name: string): Promise<Paired> => {
    const person = await seedPerson(bot, name);
    const d = await pairDevice(bot, teams, person.user, `WS-${name.split(' ')[0]}`);
    secrets.push({ label: `${name} PUK`, value: person.puk }, { label: `${name} credential secret`, value: d.credential.split('.')[1]! }, ...Object.entries(person.answers).map(([q, v]) => ({ label: `${name} answer ${q}`, value: v })));
    return { person, deviceId: d.deviceId, credential: d.credential };
  };

  /** Start an unlock in Teams, answer right, and return the emailed code and the journey id the companion was prompted with. */
  const toCodeSent = async (p: Paired, c: RawCompanion): Promise<{ code: string; journeyId: string }> => {
    // A run left in progress by an earlier test is shown again by "Unlock my smartcard"
    // (it must not throw away an emailed code); cancel it first to begin afresh.
    let started = await teams.invoke(p.person.user, 'unlock.start', {});
    const cancel = executeActions(invokeCard(started)).find((a) => a.verb === 'unlock.cancel');
    if (cancel && !executeActions(invokeCard(started)).some((a) => a.verb === 'unlock.answers')) {
      await teams.invoke(p.person.user, 'unlock.cancel', cancel.data as Record<string, unknown>);
      started = await teams.invoke(p.person.user, 'unlock.start', {});
    }
    const card = invokeCard(started);
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
    if (!ans) throw new Error(`no questions card: ${activityText({ attachments: [{ content: card }] })}`);
    const before = new Set((await bot.outbox()).map((m) => m.name));
    await teams.invoke(p.person.user, 'unlock.answers', { ...ans.data, ...(await answersFor(card, p.person)) });
    const mail = await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && !before.has(m.name));
    const journeyId = ans.data['runId'] as string;
    await c.waitFor((f) => f.type === 'command' && (f['command'] as { kind: string; journeyId?: string }).kind === 'unlock.prompt' && (f['command'] as { journeyId: string }).journeyId === journeyId);
    const code = unlockCodeOf(mail);
    secrets.push({ label: `${p.person.user.name} unlock code ${journeyId}`, value: code });
    return { code, journeyId };
  };

  beforeAll(async () => {
    bot = await startBotStack('adv-link', { COMPANION_COMMAND_TIMEOUT_MS: '3000' });
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
    alice = await pair('Alice Linkadv');
    bob = await pair('Bob Linkadv');
    carol = await pair('Carol Linkadv');
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('refuses a missing, garbage, wrong-secret or non-Bearer credential with close 4401 and no welcome', async () => {
    const wrongSecret = `Bearer ${alice.deviceId}.${'A'.repeat(43)}`;
    const unknownDevice = `Bearer ${randomUUID()}.${alice.credential.split('.')[1]!}`;
    for (const auth of [null, 'Bearer garbage', wrongSecret, unknownDevice, `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${alice.credential}x`]) {
      const c = await RawCompanion.connect(bot, auth, { hello: false });
      c.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'x', workstation: 'x' });
      expect(await c.waitClosed(), String(auth).slice(0, 30)).toBe(4401);
      expect(c.frames.filter((f) => f.type === 'welcome')).toEqual([]);
    }
  });

  it('answers malformed frames with protocol.error naming the problem (never the content), stays open, and still serves valid requests', async () => {
    const c = await connect(alice);
    const secretish = '73519284';
    c.sendRaw(`not json ${secretish}`);
    c.sendRaw(Buffer.from([0xde, 0xad, 0xbe, 0xef]), true);
    c.sendJson({ type: 'wat' });
    c.sendJson({ type: 'request', id: 'r1', request: { kind: 'unlock.submit_code' } });
    c.sendJson({ type: 'request', id: 'r2', request: { kind: 'unlock.submit_code', journeyId: randomUUID(), cardId: alice.person.cardId, code: `${secretish}9` } });
    c.sendJson({ type: 'reply', id: 'no-such-command', reply: { kind: 'ack' } });
    c.sendJson({ type: 'request', id: 'x'.repeat(500), request: { kind: 'unlock.resume' } });
    c.sendJson({ type: 'card.event', status: { present: true, reader: 'r', cardId: 'NOT-HEX', pinRetries: 99 } });
    await sleep(500);
    const errors = c.frames.filter((f) => f.type === 'protocol.error').map((f) => String(f['message']));
    expect(errors).toContain('frame is not valid JSON');
    expect(errors).toContain('binary frames are not accepted; send JSON text');
    expect(errors.some((e) => e.startsWith('type:'))).toBe(true);
    expect(errors.some((e) => e.startsWith('request.journeyId:'))).toBe(true);
    expect(errors.some((e) => e.startsWith('request.code:'))).toBe(true);
    expect(errors.some((e) => e.startsWith('status.cardId:') || e.startsWith('status.pinRetries:'))).toBe(true);
    expect(c.frames.find((f) => f.type === 'protocol.error' && f['id'] === 'r1')).toBeDefined();
    for (const f of c.frames) expect(JSON.stringify(f)).not.toContain(secretish);
    expect(c.closeCode).toBeNull();
    // The link still works: a well-formed request gets its response.
    const r = await c.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: alice.person.cardId });
    expect(r).toMatchObject({ kind: 'unlock.refused', reason: 'not_waiting' });
    expect(bot.process.output()).not.toContain(secretish);
    c.close();
  });

  it('closes on a frame over 16 KiB (1009) and lets the companion reconnect; the bot stays up', async () => {
    const c = await connect(alice);
    c.sendRaw(JSON.stringify({ type: 'card.event', status: { present: false, reader: 'x'.repeat(20_000) } }));
    expect(await c.waitClosed()).toBe(1009);
    const again = await connect(alice);
    expect(again.frames.some((f) => f.type === 'welcome')).toBe(true);
    again.close();
  });

  it('closes a hello with an unsupported protocol version with 4426, as the protocol says', async () => {
    const c = await connect(alice, false);
    c.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION + 1, version: 'future', workstation: 'WS' });
    await sleep(500);
    const got = c.closeCode ?? `open; frames: ${c.frames.map((f) => `${f.type}${f['message'] ? ` (${String(f['message'])})` : ''}`).join(', ')}`;
    expect(got).toBe(4426);
  });

  it('refuses requests before hello', async () => {
    const c = await connect(alice, false);
    const r = await c.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: alice.person.cardId });
    // Before `hello` the companion has not said which protocol it speaks: a request must not be served.
    expect(r['kind'], JSON.stringify(r)).toBe('protocol.error');
    c.close();
  });

  it('a second connection for the same device is refused (4423) while the first answers pings; the first is still served (issue #10: the first link is kept)', async () => {
    const first = await connect(alice);
    const second = await connect(alice, false);
    second.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'adv-2', workstation: 'WS-2' });
    expect(await second.waitClosed()).toBe(4423);
    expect(second.frames.filter((f) => f.type === 'welcome')).toEqual([]);
    expect(first.closeCode).toBeNull();
    const r = await first.request({ kind: 'unlock.resume', journeyId: randomUUID(), cardId: alice.person.cardId });
    expect(r['kind']).toBe('unlock.refused');
    first.close();
    await first.waitClosed();
  });

  it("gives another person's device nothing for Alice's journey, and changes nothing", async () => {
    const a = await connect(alice);
    const b = await connect(bob);
    const { code, journeyId } = await toCodeSent(alice, a);
    const before = journeyState(alice.person.personId);
    const pukBefore = cardRow(alice.person.cardId);
    expect(await b.request({ kind: 'unlock.submit_code', journeyId, cardId: alice.person.cardId, code })).toMatchObject({ kind: 'unlock.refused' });
    expect(await b.request({ kind: 'unlock.resume', journeyId, cardId: alice.person.cardId })).toMatchObject({ kind: 'unlock.refused' });
    await b.request({ kind: 'unlock.result', journeyId, cardId: alice.person.cardId, outcome: 'unblocked', pukOnCard: 'new' });
    // Bob's device claims Alice's card is in its reader.
    b.sendJson({ type: 'card.event', status: { present: true, reader: 'r', cardId: alice.person.cardId, pinRetries: 0 } });
    await sleep(300);
    expect(journeyState(alice.person.personId)).toEqual(before);
    expect(cardRow(alice.person.cardId)).toEqual(pukBefore);
    expect(count(alice.person.personId, 'unlock.code_wrong')).toBe(0);
    expect(b.commands('unlock.authorised')).toEqual([]);
    // Alice's own companion still finishes with the right code: the code was not spent or counted.
    expect(await a.request({ kind: 'unlock.submit_code', journeyId, cardId: alice.person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    const ok = await a.release(journeyId);
    expect(ok).toMatchObject({ kind: 'unlock.authorised', journeyId, cardId: alice.person.cardId, puk: alice.person.puk });
    expect(b.commands('unlock.authorised')).toEqual([]);
    secrets.push({ label: 'alice new PUK', value: String(ok['newPuk']) });
    expect(await a.request({ kind: 'unlock.result', journeyId, cardId: alice.person.cardId, outcome: 'unblocked', pukOnCard: 'new' })).toEqual({ kind: 'ok' });
    await sleep(300);
    expect(journeyState(alice.person.personId)['phase']).toBe('done');
    await expect.poll(() => count(alice.person.personId, 'card.puk_rotated'), { timeout: 5000 }).toBe(1);
    a.close();
    b.close();
  });

  it('counts at most 5 wrong codes in a flood of 20 at once, then refuses even the right code', async () => {
    const b = await connect(bob);
    const { code, journeyId } = await toCodeSent(bob, b);
    const wrong = (i: number): string => String((Number(code) + 1 + i) % 100_000_000).padStart(8, '0');
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => b.request({ kind: 'unlock.submit_code', journeyId, cardId: bob.person.cardId, code: wrong(i) })));
    expect(replies.every((r) => r['kind'] === 'unlock.refused')).toBe(true);
    expect(replies.filter((r) => r['reason'] === 'wrong_code').map((r) => r['triesLeft']).sort()).toEqual([1, 2, 3, 4]);
    expect(replies.filter((r) => r['reason'] === 'too_many_tries')).toHaveLength(16);
    // Audit entries are effects carried out just after the answer: wait for them.
    await expect.poll(() => count(bob.person.personId, 'unlock.code_wrong'), { timeout: 5000 }).toBe(5);
    await sleep(300);
    expect(count(bob.person.personId, 'unlock.code_wrong')).toBe(5);
    expect(await b.request({ kind: 'unlock.submit_code', journeyId, cardId: bob.person.cardId, code })).toMatchObject({ kind: 'unlock.refused', reason: 'too_many_tries' });
    expect(count(bob.person.personId, 'unlock.code_accepted')).toBe(0);
    expect(cardRow(bob.person.cardId).pending_puk).toBeNull();
    b.close();
  });

  it('authorises a code submitted twice at once exactly once', async () => {
    const b = await connect(bob);
    const { code, journeyId } = await toCodeSent(bob, b);
    const two = await Promise.all([1, 2, 3].map(() => b.request({ kind: 'unlock.submit_code', journeyId, cardId: bob.person.cardId, code })));
    expect(two.filter((r) => r['kind'] === 'unlock.accepted')).toHaveLength(1);
    expect(two.filter((r) => r['reason'] === 'used')).toHaveLength(2);
    await expect.poll(() => count(bob.person.personId, 'unlock.code_accepted'), { timeout: 5000 }).toBe(1);
    const auth = await b.release(journeyId);
    await sleep(300);
    expect(count(bob.person.personId, 'unlock.code_accepted')).toBe(1);
    expect(b.commands('unlock.authorised').filter((c) => c['journeyId'] === journeyId)).toHaveLength(1); // one release, one pair
    secrets.push({ label: 'bob new PUK', value: String(auth['newPuk']) });
    // Finish, so the next tests start from a done journey.
    await b.request({ kind: 'unlock.result', journeyId, cardId: bob.person.cardId, outcome: 'unblocked', pukOnCard: 'new' });
    bob.person.puk = String(auth['newPuk']);
    b.close();
  });

  it('ignores unlock.result claiming success for a journey that never authorised (no state change, no PUK rotation)', async () => {
    const b = await connect(bob);
    const { journeyId } = await toCodeSent(bob, b);
    const rowBefore = cardRow(bob.person.cardId);
    const rotatedBefore = count(bob.person.personId, 'card.puk_rotated');
    expect(await b.request({ kind: 'unlock.result', journeyId, cardId: bob.person.cardId, outcome: 'unblocked', pukOnCard: 'new' })).toEqual({ kind: 'ok' });
    expect(await b.request({ kind: 'unlock.result', journeyId: randomUUID(), cardId: bob.person.cardId, outcome: 'unblocked', pukOnCard: 'new' })).toEqual({ kind: 'ok' });
    await sleep(300);
    expect(journeyState(bob.person.personId)['phase']).toBe('code_sent');
    expect(cardRow(bob.person.cardId)).toEqual(rowBefore);
    expect(count(bob.person.personId, 'card.puk_rotated')).toBe(rotatedBefore);
    expect(count(bob.person.personId, 'unlock.completed')).toBe(1); // the earlier, real one only
    b.close();
  });

  it('a result for a foreign journey id does not rotate the stored PUK while a pulled card still holds the old one', async () => {
    // Carol: Bob's three codes this hour are the most he may be sent (see `carol`).
    const b = await connect(carol);
    const { code, journeyId } = await toCodeSent(carol, b);
    expect(await b.request({ kind: 'unlock.submit_code', journeyId, cardId: carol.person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    const auth = await b.release(journeyId);
    expect(auth).toMatchObject({ kind: 'unlock.authorised', puk: carol.person.puk });
    secrets.push({ label: 'carol pending PUK', value: String(auth['newPuk']) });
    // The card was pulled during RESET RETRY COUNTER: it still holds the current PUK.
    await b.request({ kind: 'unlock.result', journeyId, cardId: carol.person.cardId, outcome: 'card_removed', pukOnCard: 'current' });
    // A stale or bogus result for some other journey id claims the new PUK is on the card.
    await b.request({ kind: 'unlock.result', journeyId: randomUUID(), cardId: carol.person.cardId, outcome: 'unblocked', pukOnCard: 'new' });
    await sleep(300);
    expect(journeyState(carol.person.personId)).toMatchObject({ phase: 'unblocking', interrupted: true });
    // The card is back: the bot must still name the PUK the card really holds.
    expect(await b.request({ kind: 'unlock.resume', journeyId, cardId: carol.person.cardId })).toEqual({ kind: 'unlock.accepted', journeyId });
    const resumed = await b.release(journeyId, 2);
    expect(resumed['puk'] === carol.person.puk, 'the stored PUK was swapped for one the card does not hold').toBe(true);
    b.close();
  });

  it('stops serving a device whose credential was revoked, also on a link that is already open (no PUK after revocation)', async () => {
    // Revoked in the store alone (what `admin revoke-device` ends in), so the link's own checks are what is tested.
    const a = await connect(alice);
    const { code, journeyId } = await toCodeSent(alice, a);
    const db = new Database(path.join(bot.dataDir, 'smartcard-assist.sqlite'), { fileMustExist: true });
    try {
      db.prepare(`UPDATE devices SET revoked_at = ?, version = version + 1 WHERE id = ?`).run(new Date().toISOString(), alice.deviceId);
    } finally {
      db.close();
    }
    const fresh = await RawCompanion.connect(bot, `Bearer ${alice.credential}`, { hello: false });
    expect(await fresh.waitClosed()).toBe(4401);
    await sleep(500);
    let served: string;
    try {
      const r = a.closeCode !== null ? null : await a.request({ kind: 'unlock.submit_code', journeyId, cardId: alice.person.cardId, code }, 5000);
      served = r === null ? `closed ${a.closeCode}` : String(r['kind']);
      await sleep(500);
      for (const c of a.commands('unlock.authorised')) secrets.push({ label: 'alice PUK released after revocation', value: String(c['newPuk']) });
      if (a.commands('unlock.authorised').length > 0) served = 'unlock.authorised (PUK released)';
    } catch (err) {
      served = `closed ${(err as Error).message}`;
    }
    expect(served, 'the open link of a revoked device is still served').toMatch(/^closed|protocol\.error|unlock\.refused/);
  });

  it('no secret used here shows in the bot log or its data directory (the outbox holds each code in its own email only)', async () => {
    const found = await scanForSecrets([bot.dataDir], [{ where: 'bot stdout', text: bot.process.output() }, ...conn.calls.map((c, i) => ({ where: `teams activity ${i}`, text: activityText(c.body) }))], secrets, (where, label) => label.includes('unlock code') && /unlock_code-.*\.eml$/.test(where));
    expect(found).toEqual([]);
  });
});
