/**
 * End to end with Microsoft Graph mail (issue #5): the real bot process with `MAIL_TRANSPORT=graph` (the Graph
 * mail adapter, unchanged, with a client secret) sending over https to the local Graph + Entra fake
 * (`test/support/graph-fake/`, trusted through `NODE_EXTRA_CA_CERTS`), the real companion process on pcscd's vpcd
 * reader, the project's virtual PIV card served from this test over vpcd, and the Agents Playground driven through
 * its own HTTP/WebSocket interface (no browser).
 *
 * One complete unlock: the unlock code reaches the fake as `POST /v1.0/users/<sender>/sendMail` to the person's
 * address with a Bearer token the fake issued, answered 202; the person types it on the companion page with a new
 * passcode; the new passcode verifies on the card over PC/SC; the "unlocked" notice goes through Graph too; the bot
 * writes no outbox; no secret (passcodes, PUKs, the code, answers, the client secret, the access tokens) shows in
 * the logs or data files, the code only in its own email.
 *
 * The other end-to-end files run with Graph mail too: `E2E_MAIL=graph` makes `startBotStack` (and `startE2eStack`) start the fake and
 * read `bot.outbox()` from what Graph accepted, e.g.
 *   E2E_MAIL=graph CI=true npx vitest run --project integration test/e2e/register-then-unlock.e2e.test.ts
 * (registration, then unlock, through Graph). Tests that break the outbox folder on purpose (the "email cannot be
 * written" case of `unlock-card-pulled.e2e.test.ts`) are outbox-only.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageState, pageText, type PageBrowser } from '../../companion/passcode-page/page-browser.fake';
import { anyAllow, codeInOwnEmail, companionSecrets, describeFindings, expectFoundIn, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
import {
  answerInputs,
  answersByQuestion,
  E2E_TEST_MS,
  E2E_WAIT_MS,
  e2eGate,
  invokeCardText,
  randomCardId,
  randomPasscode,
  randomWord,
  seedPerson,
  startE2eStack,
  unlockCodeFrom,
  waitForMail,
  type BotStack,
  type CompanionProcess,
  type E2eStack,
  type VpcdCard,
} from '../support/e2e-fixture';
import { cardsOf, messageText, type PlaygroundHandle } from '../support/playground';

const gate = await e2eGate({ mail: 'graph' });

const EMAIL = 'gita.graph@nhs.net';
const suffix = randomWord();
const REGISTERED: Array<{ questionId: string; answer: string }> = [
  { questionId: 'q03', answer: `Larkspur Vale ${suffix}` },
  { questionId: 'q06', answer: `Bramblecote ${suffix}` },
  { questionId: 'q10', answer: `Ottery Finch ${suffix}` },
  { questionId: 'q14', answer: `Cressington ${suffix}` },
];
const OLD_PIN = randomPasscode();
const PUK = randomPasscode([OLD_PIN]);
const NEW_PASSCODE = randomPasscode([OLD_PIN, PUK]);
const CARD_ID = randomCardId();

const answerFor = answersByQuestion(REGISTERED);

describe.skipIf(gate.skip)('unlock end to end with Microsoft Graph mail against the local Graph fake (bot + companion + pcscd/vpcd)', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let bot: BotStack;
  let companion: CompanionProcess;
  let card: VpcdCard;
  let pg: PlaygroundHandle;
  let page: PageBrowser;
  let code: string | undefined;

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-graph', mail: 'graph', botEnv: { LOG_LEVEL: 'trace' } });
    bot = e2e.bot;
    await seedPerson(bot, { teamsUserId: 'user-id-0', displayName: 'Gita Graph', email: EMAIL, cardId: CARD_ID, puk: PUK, answers: REGISTERED });
    const seat = await e2e.addSeat({ card: { cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true }, workstation: 'WS-E2E-GRAPH', teams: { user: { id: 'user-id-0', name: 'Gita Graph' } } });
    ({ card, companion, pg } = seat);
    await seat.pair();
    page = await seat.openPage();
  });

  afterAll(() => e2e?.stop());

  it('the bot started with the Graph adapter: a token from the fake Entra ID, and no mail yet', () => {
    expect(bot.mail).toBe('graph');
    const graph = bot.graph!;
    expect(bot.env['MAIL_TRANSPORT']).toBe('graph');
    // Start-up verification got a token with the client secret (client-credentials grant).
    const tokens = graph.fake.requestsOf('token').filter((r) => r.status === 200);
    expect(tokens.length).toBeGreaterThanOrEqual(1);
    expect((tokens[0]!.body as Record<string, string>)['grant_type']).toBe('client_credentials');
    expect(graph.fake.requestsOf('sendMail')).toEqual([]);
  });

  it('unlocks: the code goes out through Graph sendMail to the person, the new passcode verifies on the card, the notice goes through Graph too', async () => {
    const graph = bot.graph!;
    const sender = graph.env['GRAPH_SENDER']!;
    expect(await card.pinRetries()).toBe(0);

    await pg.sendMessage('unlock');
    const questions = await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
    const r = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    expect(invokeCardText(r)).toContain('Check your email');

    // The code email, as Graph received it.
    const codeMail = await waitForMail(bot, (m) => m.kind === 'unlock_code');
    code = unlockCodeFrom(codeMail);
    const sends = graph.fake.requestsOf('sendMail');
    expect(sends).toHaveLength(1);
    const send = sends[0]!;
    expect(send.method).toBe('POST');
    expect(send.pathname).toBe(`/v1.0/users/${sender}/sendMail`);
    expect(send.status).toBe(202);
    const bearer = /^Bearer (\S+)$/.exec(send.headers['authorization'] ?? '');
    expect(bearer, 'sendMail without a Bearer token').not.toBeNull();
    expect(graph.fake.issuedTokens).toContain(bearer![1]);
    const body = send.body as { message: { subject: string; body: { contentType: string; content: string }; toRecipients: Array<{ emailAddress: { address: string } }> }; saveToSentItems: unknown };
    expect(body.message.toRecipients.map((t) => t.emailAddress.address)).toEqual([EMAIL]);
    expect(body.message.body.contentType).toBe('HTML');
    expect(body.message.body.content).toContain(code);
    expect(body.message.subject).toBe(codeMail.headers['subject']);
    expect(body.saveToSentItems).toBe(false);
    expect(codeMail.headers['to']).toContain(EMAIL);

    // The companion shows the form only once Graph accepted the email; the person types the code there.
    await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, 0);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
    const mark = pg.mark();
    const done = await page.post('/unlock', { code, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body), pageText(done.body)).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === questions.messageId && messageText(m).includes('Your smartcard is unlocked'), { since: mark, timeoutMs: E2E_WAIT_MS });
    // Shown once: the card updated in place, no separate message repeating it (issue #14).
    await expect(pg.waitForBotMessage((m) => m.messageId !== questions.messageId && /smartcard is unlocked|new passcode now/i.test(messageText(m)), { since: mark, timeoutMs: 3000 })).rejects.toThrow();

    // On the card, over PC/SC.
    expect(await card.verifies(OLD_PIN)).toBe(false);
    expect(await card.verifies(NEW_PASSCODE)).toBe(true);
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
    expect(card.seen.newPuks).toHaveLength(1);
    expect(card.seen.newPuks[0]).not.toBe(PUK);
    expect(await card.holdsPuk(card.seen.newPuks[0]!)).toBe(true);

    // The "unlocked" notice went through Graph too, to the same person, from the same mailbox.
    const notice = await waitForMail(bot, (m) => m.kind === 'unlock_notice');
    expect(notice.headers['to']).toContain(EMAIL);
    expect(notice.text).toContain('WS-E2E-GRAPH');
    const accepted = graph.acceptedMails();
    expect(accepted.map((m) => m.to)).toEqual([EMAIL, EMAIL]);
    expect(accepted.map((m) => m.from)).toEqual([sender, sender]);
    const allSends = graph.fake.requestsOf('sendMail');
    expect(allSends.map((s) => s.status)).toEqual([202, 202]);
    expect(allSends.every((s) => s.pathname === `/v1.0/users/${sender}/sendMail` && /^Bearer \S+$/.test(s.headers['authorization'] ?? ''))).toBe(true);
    expect((await bot.outbox()).map((m) => m.kind)).toEqual(['unlock_code', 'unlock_notice']);
    // The bot itself wrote no outbox: every mail went through Graph.
    expect(existsSync(path.join(bot.dataDir, 'outbox'))).toBe(false);
  });

  it('leaves no passcode, PUK, code, answer, client secret or access token in the logs or data files (the code only in its own email)', { timeout: 120_000 }, async () => {
    expect(code, 'the unlock test did not get as far as the code').toBeDefined();
    const graph = bot.graph!;
    const secrets: TestSecret[] = [
      { label: 'old passcode', value: OLD_PIN, kind: 'digits' },
      { label: 'new passcode', value: NEW_PASSCODE, kind: 'digits' },
      { label: 'seeded PUK', value: PUK, kind: 'digits' },
      ...card.seen.newPuks.map((p, i) => ({ label: `rotated PUK ${i + 1}`, value: p, kind: 'digits' as const })),
      { label: 'unlock code', value: code!, kind: 'digits' },
      ...REGISTERED.map((a) => ({ label: `answer ${a.questionId}`, value: a.answer, kind: 'answer' as const })),
      { label: 'Graph client secret', value: graph.clientSecret, kind: 'token' },
      ...graph.fake.issuedTokens.map((t, i) => ({ label: `Graph access token ${i + 1}`, value: t, kind: 'token' as const })),
    ];
    const codeMails = new Map<string, string>();
    for (const m of await bot.outbox()) if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    expect([...codeMails.values()]).toEqual([code]);
    const companionOwn = await companionSecrets([companion]);
    const allow = anyAllow(codeInOwnEmail(codeMails), companionOwn.allow);

    await companion.stop();
    await bot.stop();
    const sources = await productSources({ bot, companions: [companion] });
    // The scan reads what was written: the copy of the code email and the store.
    expectFoundIn(sources, /graph-accepted\/[^/]+-unlock_code-[^/]+\.eml$/, [EMAIL]);
    expectFoundIn(sources, /\.sqlite(-wal)?$/, [EMAIL, CARD_ID]);
    const findings = findSecrets(sources, [...secrets, ...companionOwn.secrets], allow);
    expect(findings, describeFindings(findings)).toEqual([]);
  });
});
