/**
 * A double-clicked or replayed registration card (issue #3): the same card
 * action posted twice at once, and again later, sends ONE email and stores ONE
 * registration. Real parts: the bot process (embedded store, outbox mail), the
 * companion process on pcscd's vpcd reader with the project's virtual PIV card
 * (the passcode check is part of the journey), and the Agents Playground
 * driven through its own HTTP/WebSocket interface (no browser; the companion's
 * page through a minimal HTTP client).
 *
 * What is counted: outbox files (`registration_code`, `registration_notice`),
 * the audit trail, and the person rows in the bot's SQLite store, opened
 * through the storage port (and read-only with SQL) after the bot stopped.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionalPersonId } from '../../bot/journeys/registration/registration.service';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { createLogger } from '../../common/logger';
import { PageBrowser, pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { openStorage } from '../../storage/storage.factory';
import {
  E2E_WAIT_MS,
  randomCardId,
  randomPasscode,
  randomWord,
  removeTestDirs,
  runAdmin,
  startBotStack,
  startCompanion,
  VpcdCard,
  waitForMail,
  type BotStack,
  type CompanionProcess,
} from '../support/e2e-stack';
import { pcscdService, VPCD_READER } from '../support/pcscd';
import { cardsOf, cardText, executeActions, startPlayground, type InvokeResult, type PlaygroundHandle } from '../support/playground';
import { playgroundService, requireServices } from '../support/services';

const gate = await requireServices([playgroundService(), pcscdService()]);

const EMAIL = 'rita.replay@nhs.net';
const CARD_ID = randomCardId();
const PIN = randomPasscode();
const PUK = randomPasscode([PIN]);
const w = randomWord();
const INPUTS = {
  q1: 'q03',
  a1: `Mistlethwaite ${w}`,
  q2: 'q05',
  a2: `Port Isaac ${w}`,
  q3: 'q16',
  a3: `Woolly Badger ${w}`,
  q4: 'q18',
  a4: `Descant Recorder ${w}`,
};

/** The card an invoke answered with, as text (fails the test on an error answer). */
function invokeCardText(r: InvokeResult): string {
  if (!r.ok) throw new Error(`card action failed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  if (!r.card) throw new Error(`card action answered ${String(r.type)}, not a card`);
  return cardText(r.card);
}

/** `{ runId, step }` of the card's action with this verb. */
function actionData(r: InvokeResult, verb: string): Record<string, unknown> {
  if (!r.ok || !r.card) throw new Error(`no card to read ${verb} from`);
  const a = executeActions(r.card).find((x) => x.verb === verb);
  if (!a?.data) throw new Error(`the card has no ${verb} action: ${cardText(r.card)}`);
  return a.data;
}

function registrationCodeFrom(mail: OutboxEntry): string {
  const m = /^\s*(\d{8})\s*$/m.exec(mail.text);
  if (!m) throw new Error(`no line of 8 digits in ${mail.name}`);
  return m[1]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(gate.skip)('a double-clicked or replayed registration card sends one email and stores one registration (bot + companion + pcscd/vpcd + Playground API)', () => {
  let pcsc: PcscReaderAdapter;
  let bot: BotStack;
  let companion: CompanionProcess;
  let card: VpcdCard;
  let pg: PlaygroundHandle;
  let cardMsg: string;
  let personId: string;
  let registrationCode: string | undefined;
  let sendCodeData: Record<string, unknown> | undefined;
  let finished = false;

  const outboxOf = async (kind: string): Promise<OutboxEntry[]> => (await bot.outbox()).filter((m) => m.kind === kind);

  beforeAll(async () => {
    pcsc = await PcscReaderAdapter.open();
    bot = await startBotStack('it-registration-replay-bot');
    const imported = await runAdmin(bot, ['import-puks', '--file', '-'], `card_id,puk,holder_email\n${CARD_ID},${PUK},${EMAIL}\n`);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    card = await VpcdCard.insert(pcsc, VPCD_READER, { cardId: CARD_ID, pin: PIN, puk: PUK, blocked: false });
    companion = startCompanion(bot, { name: 'it-registration-replay-companion', readerName: VPCD_READER.name, workstation: 'WS-REPLAY-01' });
    pg = await startPlayground({ botUrl: bot.messagesUrl, name: 'it-registration-replay-playground', currentUser: { id: 'user-id-3', name: 'Rita Replay' } });
    await pg.install();
    personId = provisionalPersonId(pg.currentUser.aadObjectId);

    const pairing = await companion.pairingCode();
    await pg.sendMessage(`pair ${pairing}`);
    await pg.waitForBotText('This computer is paired', { timeoutMs: E2E_WAIT_MS });
    await companion.waitConnected();
  });

  afterAll(async () => {
    await pg?.stop();
    await companion?.stop();
    await bot?.stop();
    await card?.dispose();
    await pcsc?.close();
    await removeTestDirs(bot?.dataDir, companion?.dataDir);
  });

  it('gets to the confirm-email card with double-clicked Continue and Save clicks', async () => {
    await pg.sendMessage('register');
    const contact = await pg.waitForBotText('check your contact details', { timeoutMs: E2E_WAIT_MS });
    cardMsg = contact.messageId;

    // Continue, clicked twice at once: one card check, one prompt to the companion.
    const linesBefore = companion.lineCount();
    const contactClicks = await Promise.all(
      [1, 2].map(() => pg.invokeAction({ verb: 'register.contact', replyToId: cardMsg, inputs: { email: EMAIL, mobile: '07700 900777' } })),
    );
    for (const r of contactClicks) expect(invokeCardText(r)).toContain('Check your card');
    await companion.waitForLineAfter(/^REGISTER: type your current passcode/, linesBefore);

    // The passcode on the companion page (HTTP, as the page's own form posts it).
    const page = new PageBrowser(await companion.latestPageLink());
    expect(pageState((await page.open()).body)).toBe('awaiting_passcode');
    const verified = await page.post('/verify', { current_passcode: PIN });
    expect(pageState(verified.body), pageText(verified.body)).toBe('passcode_verified');
    expect(companion.process.lines().filter((l) => l.startsWith('REGISTER:'))).toHaveLength(1);

    // The journey moved on: "Check again" from the (stale) check card answers with the current card.
    const current = await pg.invokeAction({ verb: 'register.check_card', replyToId: cardMsg, data: actionData(contactClicks[0]!, 'register.check_card') });
    expect(invokeCardText(current)).toContain('Choose your security questions');

    // Save my answers, clicked twice at once: one answers_chosen, both see the confirm card.
    const data = actionData(current, 'register.questions');
    const saves = await Promise.all([1, 2].map(() => pg.invokeAction({ verb: 'register.questions', replyToId: cardMsg, data, inputs: INPUTS })));
    for (const r of saves) expect(invokeCardText(r)).toContain('Confirm your email address');
    expect(invokeCardText(saves[0]!)).toContain(EMAIL);
  });

  it('"Email me the code" double-clicked and replayed later sends one code email', async () => {
    const confirm = pg.current(cardMsg);
    const confirmCard = confirm && cardsOf(confirm)[0];
    expect(confirmCard && cardText(confirmCard)).toContain('Confirm your email address');
    const sendData = executeActions(confirmCard).find((a) => a.verb === 'register.send_code')?.data;
    expect(sendData).toBeDefined();
    sendCodeData = sendData;

    const twice = await Promise.all([1, 2].map(() => pg.invokeAction({ verb: 'register.send_code', replyToId: cardMsg, data: sendData!, inputs: { email: '' } })));
    for (const r of twice) expect(invokeCardText(r)).toContain('Enter your registration code');
    const mail = await waitForMail(bot, (m) => m.kind === 'registration_code');
    expect(mail.headers['to']).toContain(EMAIL);
    registrationCode = registrationCodeFrom(mail);

    // The same click replayed later, one at a time: the current card, no new email.
    for (let i = 0; i < 2; i++) {
      const again = await pg.invokeAction({ verb: 'register.send_code', replyToId: cardMsg, data: sendData!, inputs: { email: '' } });
      expect(invokeCardText(again)).toContain('Enter your registration code');
    }
    await sleep(2000); // room for a wrongly queued second email to land
    expect(await outboxOf('registration_code')).toHaveLength(1);
  });

  it('the code typed and confirmed twice at once, and replayed later, registers once and sends one confirmation', async () => {
    expect(registrationCode).toBeDefined();
    const codeCard = cardsOf(pg.current(cardMsg)!)[0];
    const codeData = executeActions(codeCard).find((a) => a.verb === 'register.code')?.data;
    expect(codeData).toBeDefined();

    const twice = await Promise.all([1, 2].map(() => pg.invokeAction({ verb: 'register.code', replyToId: cardMsg, data: codeData!, inputs: { code: registrationCode! } })));
    for (const r of twice) expect(invokeCardText(r)).toContain('You are registered for self-service');
    await waitForMail(bot, (m) => m.kind === 'registration_notice');

    for (let i = 0; i < 2; i++) {
      const again = await pg.invokeAction({ verb: 'register.code', replyToId: cardMsg, data: codeData!, inputs: { code: registrationCode! } });
      expect(invokeCardText(again)).toContain('You are registered for self-service');
    }
    // And "Email me the code" from the older card, replayed after registration: the current card, nothing sent.
    const lateSend = await pg.invokeAction({ verb: 'register.send_code', replyToId: cardMsg, data: sendCodeData!, inputs: { email: '' } });
    expect(invokeCardText(lateSend)).toContain('You are registered for self-service');
    await sleep(2000);
    expect(await outboxOf('registration_notice')).toHaveLength(1);
    expect(await outboxOf('registration_code')).toHaveLength(1);
    finished = true;
  });

  it('the store holds one person for this Teams user, bound to the card, with one completed registration in the audit trail', async () => {
    expect(finished, 'the replay tests did not finish').toBe(true);
    await companion.stop();
    await bot.stop();

    const dbFile = path.join(bot.dataDir, 'smartcard-assist.sqlite');
    // Read-only SQL: every person row.
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT id, teams_user_id FROM persons').all() as Array<{ id: string; teams_user_id: string }>;
      expect(rows).toEqual([{ id: personId, teams_user_id: pg.currentUser.aadObjectId }]);
    } finally {
      db.close();
    }

    // Through the storage port: the person, the card bound to them with its PUK, the audit trail.
    const storage = await openStorage({ kind: 'sqlite', file: dbFile }, createLogger({ name: 'replay-test', level: 'silent' }));
    try {
      const person = await storage.persons.findByTeamsUserId(pg.currentUser.aadObjectId);
      expect(person?.id).toBe(personId);
      expect(person?.email).toBe(EMAIL);
      expect(person?.mobile).toBe('+447700900777');
      expect(person?.cardId).toBe(CARD_ID);
      expect(person?.answers.map((a) => a.questionId)).toEqual([INPUTS.q1, INPUTS.q2, INPUTS.q3, INPUTS.q4]);
      const bound = await storage.cards.get(CARD_ID);
      expect(bound?.personId).toBe(personId);
      expect(bound?.puk).not.toBeNull();
      const audit = await storage.audit.list({ personId, limit: 500 });
      const count = (action: string): number => audit.filter((a) => a.action === action).length;
      expect(count('registration.completed')).toBe(1);
      expect(count('registration.code_issued')).toBe(1);
      expect(count('registration.answers_chosen')).toBe(1);
      expect(count('registration.card_verified')).toBe(1);
      expect(count('registration.started')).toBe(1);
      // The PUK was enrolled, so no "no PUK" case was opened.
      expect(await storage.cases.listByPerson(personId)).toEqual([]);
    } finally {
      await storage.close();
    }
  });
});
