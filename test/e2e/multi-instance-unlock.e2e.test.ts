/**
 * End to end with two bot instances over one MongoDB database (issue #4):
 * bot A and bot B are two `bot/main.ts` processes on different ports with
 * `STORAGE=mongodb`, the same `MONGODB_URL`, `MONGODB_DATABASE` and master key.
 * The Agents Playground (the Teams side) talks to A only; the companion
 * process (`SMARTCARD_BOT_URL`) talks to B only, so its WebSocket lands on B
 * and every companion command issued by a Teams turn on A must be routed to B
 * over the command bus (the `command_bus` capped collection), and every
 * proactive Teams update caused by the companion is sent from B.
 *
 * 1. Pairing: the companion asks B for a code, the person types `pair CODE`
 *    to A, the companion polls B and connects its WebSocket to B.
 * 2. Unlock: "unlock" on A reads the card through B, the answers on A mail a
 *    code (A's outbox) and open the companion form through B; the passcode
 *    page unblocks the card (B), Teams is updated in place from B, and the
 *    card read back over PC/SC takes the new passcode and not the old one.
 * 3. Typed "cancel" on A closes the companion's form held by B.
 * 4. No secret of the run is in either bot's log or data directory, or in any
 *    document the database holds (every collection, read back through the driver).
 *
 * FerretDB: this test's own server (`startPrivateFerretdb`, on PostgreSQL, the
 * multi-writer backend two instances need); `MONGODB_URL` set = that server instead.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MongoClient } from 'mongodb';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { PageBrowser, pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import { artifactPath } from '../support/artifacts';
import { anyAllow, codeInOwnEmail, companionSecrets, describeFindings, expectFoundIn, fileSources, findSecrets, productSources, type ScanSource, type TestSecret } from '../support/e2e-secrets';
import {
  answerInputs,
  answersByQuestion,
  E2E_TEST_MS,
  E2E_WAIT_MS,
  e2eGate,
  invokeCardText,
  onCard,
  randomCardId,
  randomPasscode,
  randomWord,
  seedPerson,
  startE2eStack,
  unlockCodeFrom,
  type BotStack,
  type CompanionProcess,
  type E2eStack,
  type VpcdCard,
} from '../support/e2e-fixture';
import { cardsOf, messageText, type PlaygroundHandle } from '../support/playground';

const gate = await e2eGate({ store: 'mongodb', mongoServer: 'external-or-private' });

const EMAIL = 'morgan.multi@nhs.net';
const suffix = randomWord();
const REGISTERED: Array<{ questionId: string; answer: string }> = [
  { questionId: 'q02', answer: `Hollowmere ${suffix}` },
  { questionId: 'q05', answer: `Brackenfold Rex ${suffix}` },
  { questionId: 'q09', answer: `Ostlemarsh ${suffix}` },
  { questionId: 'q12', answer: `Quillmoor Dawn ${suffix}` },
];
const OLD_PIN = randomPasscode();
const PUK = randomPasscode([OLD_PIN]);
const NEW_PASSCODE = randomPasscode([OLD_PIN, PUK]);
const WRONG_PIN = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE]);
const CARD_ID = randomCardId();
/** Instance id prefixes (each process appends a start-time suffix). */
const INSTANCE_A = 'mi-bot-a';
const INSTANCE_B = 'mi-bot-b';

const answerFor = answersByQuestion(REGISTERED);

describe.skipIf(gate.skip)('two bot instances over one MongoDB database: Teams on A, companion on B (bot A + bot B + companion + pcscd/vpcd + FerretDB)', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let database: string;
  let mongo: MongoClient;
  let botA: BotStack;
  let botB: BotStack;
  let companion: CompanionProcess;
  let card: VpcdCard;
  let pg: PlaygroundHandle;
  let page: PageBrowser;
  const codes: string[] = [];

  /** Every mail either instance wrote (each writes to its own `<dataDir>/outbox`), oldest first. */
  const allMail = (): Promise<OutboxEntry[]> => e2e.outbox();
  /** Wait for a mail from either instance. */
  const waitForAnyMail = (predicate: (m: OutboxEntry) => boolean): Promise<OutboxEntry> => e2e.waitForMail(predicate);

  /** Messages on the command bus from an instance (prefix) to another, anchors left out. */
  async function busCount(fromPrefix: string, toPrefix: string): Promise<number> {
    const docs = await mongo.db(database).collection('command_bus').find({}, { projection: { from: 1, to: 1, anchor: 1 } }).toArray();
    return docs.filter((d) => d['anchor'] !== true && String(d['from']).startsWith(fromPrefix) && String(d['to']).startsWith(toPrefix)).length;
  }

  /** pino lines of a bot's output with this `msg`. */
  const logHas = (bot: BotStack, msg: string): boolean => bot.processes.some((p) => p.output().includes(`"msg":"${msg}"`));

  beforeAll(async () => {
    // One after the other (both create the indexes at start-up), same database and master key, LOG_LEVEL debug.
    e2e = await startE2eStack({
      name: 'e2e-multi',
      store: 'mongodb',
      mongoServer: 'external-or-private',
      database: `t_multi_${randomBytes(6).toString('hex')}`,
      botEnv: { LOG_LEVEL: 'debug' },
      bots: [
        { suffix: '-a', env: { BOT_INSTANCE_ID: INSTANCE_A } },
        { suffix: '-b', env: { BOT_INSTANCE_ID: INSTANCE_B } },
      ],
    });
    ({ client: mongo, database } = e2e.mongo!);
    [botA, botB] = [e2e.bots[0]!, e2e.bots[1]!];
    expect(botA.port).not.toBe(botB.port);
    expect(botA.outboxDir).not.toBe(botB.outboxDir);

    // Seeded once, through the admin command with the same settings: both instances see the person.
    await seedPerson(botA, { teamsUserId: 'user-id-0', displayName: 'Morgan Multi', email: EMAIL, cardId: CARD_ID, puk: PUK, answers: REGISTERED });
    // The companion talks to B, the Playground (Teams) to A.
    const seat = await e2e.addSeat({ card: { cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true }, reader: 'free', workstation: 'WS-E2E-MULTI', companionBot: 1, teams: { user: { id: 'user-id-0', name: 'Alex Wilber' }, bot: 0 } });
    ({ card, companion, pg } = seat);
  }, 900_000); // may wait for a free vpcd reader (reader: 'free')

  afterAll(() =>
    e2e?.stop({
      beforeStore: async () => {
        if (!mongo || !database) return;
        // For a look after a failure: who sent what to whom and when on the command bus (bodies are sealed; left out).
        const bus = await mongo.db(database).collection('command_bus').find({}, { projection: { body: 0 } }).toArray().catch(() => []);
        writeFileSync(artifactPath('logs', 'e2e-multi-command-bus.json'), `${JSON.stringify(bus, null, 1)}\n`);
        await mongo.db(database).dropDatabase().catch(() => undefined);
      },
    }),
  );

  it('pairs a companion through B with the code typed to A; its WebSocket lands on B', async () => {
    const pairing = await companion.pairingCode();
    await pg.sendMessage(`pair ${pairing}`);
    const paired = await pg.waitForBotText(/This computer is paired|Pairing did not work/, { timeoutMs: E2E_WAIT_MS });
    expect(messageText(paired)).toContain('This computer is paired');
    expect(messageText(paired)).toContain('WS-E2E-MULTI');
    await companion.waitConnected();
    // The socket is held by B, not A.
    await expect.poll(() => logHas(botB, 'companion connected'), { timeout: E2E_WAIT_MS }).toBe(true);
    expect(logHas(botA, 'companion connected')).toBe(false);
    page = new PageBrowser(await companion.latestPageLink());
    expect((await page.open()).status).toBe(200);
  });

  it('unlocks end to end with every Teams turn on A and the companion on B: code mailed, card unblocked, Teams updated from B', async () => {
    expect(await onCard(() => card.pinRetries())).toBe(0);
    const commandsBefore = await busCount(INSTANCE_A, INSTANCE_B);
    const linesBefore = companion.lineCount();

    // "unlock" on A: the card is read through B (card.read_status routed over the bus).
    await pg.sendMessage('unlock');
    const questions = await pg.waitForBotText(/Answer your security questions|not connected|No card in the reader|Pair this computer/, { timeoutMs: E2E_WAIT_MS });
    const questionsText = messageText(questions);
    expect(questionsText).toContain('Answer your security questions');
    expect(questionsText).toContain('3 attempts left');
    expect(await busCount(INSTANCE_A, INSTANCE_B)).toBeGreaterThan(commandsBefore);
    expect(await busCount(INSTANCE_B, INSTANCE_A)).toBeGreaterThan(0); // the replies came back

    // Right answers on A: the code is mailed, and B's companion is told to show its form.
    const r = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    expect(invokeCardText(r)).toContain('Check your email');
    const codeMail = await waitForAnyMail((m) => m.kind === 'unlock_code' && (m.headers['to'] ?? '').includes(EMAIL));
    expect((await allMail()).filter((m) => m.kind === 'unlock_code')).toHaveLength(1);
    const code = unlockCodeFrom(codeMail);
    codes.push(code);
    await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');

    // The passcode page (companion -> B): the card is unblocked, and B updates the Teams card in place.
    const mark = pg.mark();
    const done = await page.post('/unlock', { code, passcode: NEW_PASSCODE, confirmation: NEW_PASSCODE });
    expect(pageState(done.body), pageText(done.body)).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === questions.messageId && messageText(m).includes('Your smartcard is unlocked'), { since: mark, timeoutMs: E2E_WAIT_MS });
    // Shown once: the card updated in place, no separate message repeating it (issue #14).
    await expect(pg.waitForBotMessage((m) => m.messageId !== questions.messageId && /smartcard is unlocked|new passcode now/i.test(messageText(m)), { since: mark, timeoutMs: 3000 })).rejects.toThrow();
    const notice = await waitForAnyMail((m) => m.kind === 'unlock_notice' && (m.headers['to'] ?? '').includes(EMAIL));
    expect(notice.text).not.toContain(NEW_PASSCODE);

    // On the card, over PC/SC.
    expect(await onCard(() => card.verifies(OLD_PIN))).toBe(false);
    expect(await onCard(() => card.verifies(NEW_PASSCODE))).toBe(true);
    expect(await onCard(() => card.pinRetries())).toBe(card.card.pinRetriesMax);
    expect(card.seen.newPuks).toHaveLength(1);
    const rotated = card.seen.newPuks[0]!;
    expect(rotated).not.toBe(PUK);
    expect(await onCard(() => card.holdsPuk(rotated))).toBe(true);

    // A late click on the old questions card (on A) gets the current card from the shared store, no new email.
    const late = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    expect(invokeCardText(late)).toContain('Your smartcard is unlocked');
    const mails = await allMail();
    expect(mails.filter((m) => m.kind === 'unlock_code')).toHaveLength(1);
    expect(mails.filter((m) => m.kind === 'unlock_notice')).toHaveLength(1);
  });

  it('a typed "cancel" on A closes the companion form held by B', async () => {
    for (let i = 0; i < 3; i++) expect(await onCard(() => card.verifies(WRONG_PIN))).toBe(false);
    const linesBefore = companion.lineCount();
    await pg.sendMessage('unlock');
    const questions = await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
    const r = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    expect(invokeCardText(r)).toContain('Check your email');
    const mail = await waitForAnyMail((m) => m.kind === 'unlock_code' && !codes.some((c) => m.text.includes(c)));
    codes.push(unlockCodeFrom(mail));
    await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');

    const mark = pg.mark();
    await pg.sendMessage('cancel');
    await pg.waitForBotText('Cancelled. Say "unlock" to start again.', { since: mark, timeoutMs: E2E_WAIT_MS });
    await pg.waitForBotMessage((m) => m.messageId === questions.messageId && messageText(m).includes('Unlock cancelled'), { since: mark, timeoutMs: E2E_WAIT_MS });
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('idle');
    expect(pageText((await page.get()).body)).toContain('Unlock cancelled in Teams.');
    expect(card.card.pinBlocked).toBe(true);
  });

  it('leaves no passcode, PUK, code or answer in either bot\'s log or data directory, or in the database files', async () => {
    const secrets: TestSecret[] = [
      { label: 'old passcode', value: OLD_PIN, kind: 'digits' },
      { label: 'new passcode', value: NEW_PASSCODE, kind: 'digits' },
      { label: 'wrong passcode', value: WRONG_PIN, kind: 'digits' },
      { label: 'enrolled PUK', value: PUK, kind: 'digits' },
      ...card.seen.newPuks.map((p, i) => ({ label: `rotated PUK ${i + 1}`, value: p, kind: 'digits' as const })),
      ...codes.map((c, i) => ({ label: `unlock code ${i + 1}`, value: c, kind: 'digits' as const })),
      ...REGISTERED.map((a) => ({ label: `answer ${a.questionId}`, value: a.answer, kind: 'answer' as const })),
    ];
    expect(codes.length).toBe(2);
    const codeMails = new Map<string, string>();
    for (const m of await allMail()) if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    expect([...codeMails.values()].sort()).toEqual([...codes].sort());
    const own = await companionSecrets([companion]);
    secrets.push(...own.secrets);
    const allow = anyAllow(codeInOwnEmail(codeMails), own.allow);

    // The scan can fail: each code is found in its own email.
    const inMail = findSecrets(await fileSources([...codeMails.keys()]), secrets.filter((s) => s.label.startsWith('unlock code')));
    expect(new Set(inMail.map((f) => f.secret)).size).toBe(codes.length);

    const sources: ScanSource[] = [...(await productSources({ bot: botA, companions: [companion] })), ...(await productSources({ bot: botB, companions: [] }))];
    // Everything the database holds (PostgreSQL under FerretDB, or a real MongoDB), read back through the driver.
    const dump: Record<string, unknown[]> = {};
    for (const c of await mongo.db(database).listCollections({}, { nameOnly: true }).toArray()) dump[c.name] = await mongo.db(database).collection(c.name).find({}).toArray();
    const dumpFile = artifactPath('logs', `e2e-multi-db-${database}.json`);
    writeFileSync(dumpFile, `${JSON.stringify(dump, null, 1)}\n`);
    const dbSources = await fileSources([dumpFile]);
    // The scan can fail: the person's email and card id are stored.
    expectFoundIn(dbSources, new RegExp(database), [EMAIL, CARD_ID]);
    sources.push(...dbSources);
    expectFoundIn(sources, /e2e-multi-bot-b output$/, ['companion connected']);
    const found = findSecrets(sources, secrets, allow);
    expect(found, describeFindings(found)).toEqual([]);
  });
});
