/**
 * End to end, card pulled in the middle of the unblock (issue #2): the real
 * bot process (embedded store, outbox mail), the real companion process on
 * pcscd's vpcd reader, the project's virtual PIV card served from this test
 * over vpcd, and the Agents Playground driven through its own HTTP/WebSocket
 * interface (no browser: the Chromium journey is `unlock-playground.e2e.test.ts`).
 *
 * 1. The card is pulled as it receives RESET RETRY COUNTER (it never acts on
 *    it): the page says to put it back, Teams says so, the card is still
 *    blocked; put back, the companion finishes by itself; the new passcode
 *    verifies on the card, the old does not, the card holds the PUK the bot
 *    rotated to, Teams ends at "unlocked". Stale and repeated clicks of the
 *    old "Check my answers" get the current card and send no second email.
 * 2. The card is pulled right after the PUK change took effect (its answer is
 *    lost, so nobody knows which PUK it holds): put back, the companion finishes
 *    and the bot keeps the PUK the card really holds.
 * 3. A double click and a stale click of "Check my answers" count one
 *    attempt; "Send a new code" makes the first code useless; typed "cancel"
 *    closes the companion's form.
 * 4. No card, another person's card, a card that is not locked: the bot says
 *    so plainly, and a problem card re-checks by itself when a card goes in.
 * 5. The companion stopped: "not connected"; started again it reconnects with
 *    its stored pairing and the person finishes.
 * 6. The bot restarts between the code email and the code: the companion
 *    reconnects, the person finishes, Teams is updated.
 * 7. The code email cannot be written: the run ends, Teams and the companion
 *    page say so, no code exists.
 * 8. No secret used here appears in the bot log, the companion log or stdout,
 *    the outbox (except each code in its own email) or any data file. Both
 *    processes log at `trace` here, the most talkative level.
 *
 * One person goes through all of these within minutes and is sent ten codes;
 * one person may be sent at most 3 an hour (UNLOCK_CODES_PER_HOUR, issue #14).
 * None of these tests is about that cap, so before each one the test lets the
 * hour pass in the bot's store (`letCodeHourPass`: the earlier codes' send
 * times move back an hour; nothing else changes). Within one test the cap
 * still holds (no test here sends more than 2).
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { pageState, pageText, type PageBrowser } from '../../companion/passcode-page/page-browser.fake';
import { INS, KEY_REF } from '../../companion/piv/piv.constants';
import { artifactPath } from '../support/artifacts';
import { anyAllow, codeInOwnEmail, companionSecrets, describeFindings, expectFoundIn, fileSources, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
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
  runAdmin,
  seedPerson,
  startE2eStack,
  unlockCodeFrom,
  VPCD_READER,
  VpcdCard,
  waitForMail,
  type BotStack,
  type CompanionProcess,
  type E2eSeat,
  type E2eStack,
} from '../support/e2e-fixture';
import { cardsOf, cardText, executeActions, messageText, type BotMessage, type PlaygroundHandle } from '../support/playground';
import { letCodeHourPass } from '../support/unlock-code-hour';

const gate = await e2eGate();

const EMAIL = 'pat.pulled@nhs.net';
const suffix = randomWord();
const REGISTERED: Array<{ questionId: string; answer: string }> = [
  { questionId: 'q03', answer: `Thistlewood  ${suffix}` },
  { questionId: 'q06', answer: `Morrisby Minx ${suffix}` },
  { questionId: 'q10', answer: `Quenby  Harcastle ${suffix}` },
  { questionId: 'q14', answer: `Wexcombe Tales ${suffix}` },
];
/** What the person types: another case and spacing than at registration (normalisation must match it). */
const typed = (answer: string): string => answer.toUpperCase().replace(/\s+/g, ' ');
const WRONG_ANSWER = `Not my answer ${randomWord()}`;
const OLD_PIN = randomPasscode();
const PUK = randomPasscode([OLD_PIN]);
const NEW_PASSCODE_1 = randomPasscode([OLD_PIN, PUK]);
const NEW_PASSCODE_2 = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE_1]);
const WRONG_PIN = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE_1, NEW_PASSCODE_2]);
/** The passcode an RA officer sets when unblocking the card by hand. */
const RA_PIN = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE_1, NEW_PASSCODE_2, WRONG_PIN]);
/** Another person's card. */
const OTHER_PIN = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE_1, NEW_PASSCODE_2, WRONG_PIN, RA_PIN]);
const OTHER_PUK = randomPasscode([OLD_PIN, PUK, NEW_PASSCODE_1, NEW_PASSCODE_2, WRONG_PIN, RA_PIN, OTHER_PIN]);
const CARD_ID = randomCardId();

const answerFor = answersByQuestion(REGISTERED, typed);

describe.skipIf(gate.skip)('unlock end to end through the Playground API: card pulled mid-unblock, stale clicks, card problems, companion restart (bot + companion + pcscd/vpcd)', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let seat: E2eSeat;
  let bot: BotStack;
  /** Pat's person id. */
  let personId = '';
  let companion: CompanionProcess;
  /** Every companion process started (a restart adds one), for the secret scan. */
  const companions: CompanionProcess[] = [];
  let card: VpcdCard;
  let pg: PlaygroundHandle;
  let page: PageBrowser;
  const codes: string[] = [];
  /** Companion `UNLOCK:` lines printed while the code email failed (set by that test). */
  let mailFailurePrompts: string[] | undefined;
  /** Wrong codes typed on the page (secrets of the same kind). */
  const mistypedCodes: string[] = [];

  /** True while the person's unlock run waits for something (the Teams card offers "Cancel"). */
  function unlockRunActive(): boolean {
    const latest = [...pg.messages()].reverse().find((m) => cardsOf(m).length > 0);
    const current = latest ? pg.current(latest.messageId) : undefined;
    return !!current && cardsOf(current).flatMap(executeActions).some((a) => a.verb === 'unlock.cancel');
  }

  /** Say "unlock", answer the questions right, and return the questions card message and the code from the email. */
  async function unlockUpToCode(): Promise<{ questions: BotMessage; code: string; codeMail: OutboxEntry }> {
    const mailsBefore = (await bot.outbox()).filter((m) => m.kind === 'unlock_code').length;
    const linesBefore = companion.lineCount();
    await pg.sendMessage('unlock');
    const questions = await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
    const card0 = cardsOf(questions)[0];
    const r = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(card0, answerFor) });
    expect(invokeCardText(r)).toContain('Check your email');
    const codeMail = await waitForMail(bot, (m) => m.kind === 'unlock_code' && (m.headers['to'] ?? '').includes(EMAIL) && !codes.some((c) => m.text.includes(c)));
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(mailsBefore + 1);
    const code = unlockCodeFrom(codeMail);
    codes.push(code);
    // The bot asked the companion to show the form.
    await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
    return { questions, code, codeMail };
  }

  const currentText = (messageId: string): string => {
    const m = pg.current(messageId);
    return m ? messageText(m) : '';
  };

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-pulled', botEnv: { LOG_LEVEL: 'trace' } });
    bot = e2e.bot;
    personId = await seedPerson(bot, { teamsUserId: 'user-id-0', displayName: 'Pat Pulled', email: EMAIL, cardId: CARD_ID, puk: PUK, answers: REGISTERED });
    seat = await e2e.addSeat({
      card: { cardId: CARD_ID, pin: OLD_PIN, puk: PUK, blocked: true },
      reader: VPCD_READER,
      workstation: 'WS-E2E-PULL',
      companionLogLevel: 'trace',
      teams: { user: { id: 'user-id-0', name: 'Alex Wilber' } },
    });
    ({ card, companion, pg } = seat);
    companions.push(companion);
    await seat.pair();
    page = await seat.openPage();
  });

  afterAll(() => e2e?.stop());

  // Each test is its own unlock, as on another hour: the codes of the tests before it no longer count
  // towards the 3 an hour (see the file's comment). Skipped until the stack is up.
  beforeEach(async () => {
    if (bot && personId) await letCodeHourPass(bot, personId);
  });

  it('card pulled during RESET RETRY COUNTER: page and Teams say put it back, the card stays blocked, and the person finishes after putting it back', async () => {
    expect(await card.pinRetries()).toBe(0);
    const { questions, code } = await unlockUpToCode();
    const cardMsg = questions.messageId;

    // A repeated click with the same answers and a stale click with wrong ones: the current card, nothing sent or counted.
    const repeat = await pg.invokeAction({ verb: 'unlock.answers', replyToId: cardMsg, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    const stale = await pg.invokeAction({ verb: 'unlock.answers', replyToId: cardMsg, inputs: { a1: WRONG_ANSWER, a2: WRONG_ANSWER, a3: WRONG_ANSWER } });
    for (const r of [repeat, stale]) {
      expect(invokeCardText(r)).toContain('Check your email');
    }
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(1);

    // Pull the card the moment RESET RETRY COUNTER reaches it: the card never acts on it.
    let pulled = false;
    card.onCommand = (ins) => {
      if (ins === INS.RESET_RETRY_COUNTER && !pulled) {
        pulled = true;
        card.onCommand = undefined;
        void card.pull();
      }
    };
    const mark = pg.mark();
    const removed = await page.post('/unlock', { code, passcode: NEW_PASSCODE_1, confirmation: NEW_PASSCODE_1 });
    expect(pulled).toBe(true);
    expect(pageState(removed.body)).toBe('card_removed');
    expect(pageText(removed.body)).toContain('Put your card back to finish');
    expect(card.card.pinBlocked).toBe(true);

    // Teams: the same card, updated in place, says the card was taken out.
    await pg.waitForBotMessage((m) => m.messageId === cardMsg && /taken out before it was unlocked/.test(messageText(m)), { since: mark, timeoutMs: E2E_WAIT_MS });
    await card.waitAbsent();

    // Put it back: the companion resumes by itself.
    await card.reinsert();
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS, interval: 250 }).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === cardMsg && messageText(m).includes('Your smartcard is unlocked'), { since: mark, timeoutMs: E2E_WAIT_MS });
    // Shown once: the card updated in place, no separate message repeating it (issue #14).
    await expect(pg.waitForBotMessage((m) => m.messageId !== cardMsg && /smartcard is unlocked|new passcode now/i.test(messageText(m)), { since: mark, timeoutMs: 3000 })).rejects.toThrow();
    await waitForMail(bot, (m) => m.kind === 'unlock_notice');

    // On the card, over PC/SC.
    expect(await card.verifies(OLD_PIN)).toBe(false);
    expect(await card.verifies(NEW_PASSCODE_1)).toBe(true);
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
    expect(card.seen.newPuks).toHaveLength(1);
    const rotated = card.seen.newPuks[0]!;
    expect(rotated).toMatch(/^\d{8}$/);
    expect(rotated).not.toBe(PUK);
    expect(await card.holdsPuk(rotated)).toBe(true);

    // A click on the old questions card now still gets the current card, and no new email.
    const late = await pg.invokeAction({ verb: 'unlock.answers', replyToId: cardMsg, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
    expect(invokeCardText(late)).toContain('Your smartcard is unlocked');
    const mails = await bot.outbox();
    expect(mails.filter((m) => m.kind === 'unlock_code')).toHaveLength(1);
    expect(mails.filter((m) => m.kind === 'unlock_notice')).toHaveLength(1);
    expect(currentText(cardMsg)).toContain('Your smartcard is unlocked');
  });

  it('card pulled right after the PUK change took effect: the person finishes after putting it back, and the bot keeps the PUK the card holds', async () => {
    // Lock the card again the way a person does: three wrong passcodes.
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    expect(await card.pinRetries()).toBe(0);
    const pukBefore = card.seen.newPuks.at(-1)!;

    const { questions, code } = await unlockUpToCode();
    const cardMsg = questions.messageId;
    let pulled = false;
    card.afterCommand = (ins, apdu) => {
      if (ins === INS.CHANGE_REFERENCE_DATA && apdu[3] === KEY_REF.PUK && !pulled) {
        pulled = true;
        card.afterCommand = undefined;
        void card.pull();
      }
    };
    const mark = pg.mark();
    const removed = await page.post('/unlock', { code, passcode: NEW_PASSCODE_2, confirmation: NEW_PASSCODE_2 });
    expect(pulled).toBe(true);
    expect(pageState(removed.body)).toBe('card_removed');
    await pg.waitForBotMessage((m) => m.messageId === cardMsg && /taken out before it was unlocked/.test(messageText(m)), { since: mark, timeoutMs: E2E_WAIT_MS });
    await card.waitAbsent();

    await card.reinsert();
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS, interval: 250 }).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === cardMsg && messageText(m).includes('Your smartcard is unlocked'), { since: mark, timeoutMs: E2E_WAIT_MS });
    await expect.poll(async () => (await bot.outbox()).filter((m) => m.kind === 'unlock_notice').length, { timeout: E2E_WAIT_MS }).toBe(2);

    expect(await card.verifies(NEW_PASSCODE_1)).toBe(false);
    expect(await card.verifies(NEW_PASSCODE_2)).toBe(true);
    const rotated = card.seen.newPuks.at(-1)!;
    expect(rotated).not.toBe(pukBefore);
    expect(await card.holdsPuk(rotated)).toBe(true);

    // The bot stored the PUK the card holds: a third unlock goes through with no PUK refused.
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    const third = await unlockUpToCode();
    const done = await page.post('/unlock', { code: third.code, passcode: NEW_PASSCODE_1, confirmation: NEW_PASSCODE_1 });
    expect(pageState(done.body)).toBe('done');
    expect(await card.verifies(NEW_PASSCODE_1)).toBe(true);
    expect(await card.holdsPuk(card.seen.newPuks.at(-1)!)).toBe(true);
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(3);
  });

  it('a double click and a stale click on the questions card count one attempt; a resent code replaces the old one; "cancel" closes the companion page', async () => {
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    const codeMailsBefore = (await bot.outbox()).filter((m) => m.kind === 'unlock_code').length;
    await pg.sendMessage('unlock');
    const questions = await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
    const first = cardsOf(questions)[0]!;
    expect(cardText(first)).toContain('3 attempts left');
    const firstData = executeActions(first).find((a) => a.verb === 'unlock.answers')?.data;
    expect(firstData).toBeDefined();
    const wrong = { a1: WRONG_ANSWER, a2: WRONG_ANSWER, a3: WRONG_ANSWER };

    // Double click: the same card version sent twice at once. One attempt is counted.
    const twice = await Promise.all([0, 1].map(() => pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, data: firstData!, inputs: wrong })));
    for (const r of twice) expect(invokeCardText(r)).toContain('2 attempts left');
    // A stale click of that first version later: the current card, nothing counted.
    const stale = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, data: firstData!, inputs: wrong });
    expect(invokeCardText(stale)).toContain('2 attempts left');
    expect(invokeCardText(stale)).not.toContain('Self-service unlock is locked');

    // Right answers on the current card: a code is mailed.
    const pass = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(first, answerFor) });
    expect(invokeCardText(pass)).toContain('Check your email');
    const firstMail = await waitForMail(bot, (m) => m.kind === 'unlock_code' && !codes.some((c) => m.text.includes(c)));
    const oldCode = unlockCodeFrom(firstMail);
    codes.push(oldCode);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');

    // "Send a new code": a second email; the first code no longer works.
    const resent = await pg.invokeAction({ verb: 'unlock.resend_code', replyToId: questions.messageId });
    expect(invokeCardText(resent)).toContain('Check your email');
    const secondMail = await waitForMail(bot, (m) => m.kind === 'unlock_code' && !codes.some((c) => m.text.includes(c)));
    const newCode = unlockCodeFrom(secondMail);
    codes.push(newCode);
    expect(newCode).not.toBe(oldCode);
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(codeMailsBefore + 2);
    const refused = await page.post('/unlock', { code: oldCode, passcode: NEW_PASSCODE_2, confirmation: NEW_PASSCODE_2 });
    expect(pageState(refused.body)).toBe('awaiting_unlock');
    expect(pageText(refused.body)).toContain('That unlock code is not right');
    expect(card.card.pinBlocked).toBe(true);

    // Typed "cancel": Teams says so, the card is updated in place, the companion page goes idle with the notice.
    const mark = pg.mark();
    await pg.sendMessage('cancel');
    await pg.waitForBotText('Cancelled. Say "unlock" to start again.', { since: mark, timeoutMs: E2E_WAIT_MS });
    await pg.waitForBotMessage((m) => m.messageId === questions.messageId && messageText(m).includes('Unlock cancelled'), { since: mark, timeoutMs: E2E_WAIT_MS });
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('idle');
    expect(pageText((await page.get()).body)).toContain('Unlock cancelled in Teams.');
    expect(card.card.pinBlocked).toBe(true);
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(codeMailsBefore + 2);
  });

  it('says plainly when there is no card, another card, or a card that is not locked, and re-checks by itself when a card goes in', async () => {
    // The card is blocked (previous test). Take it out and ask.
    await card.pull();
    await card.waitAbsent();
    await pg.sendMessage('unlock');
    const problem = await pg.waitForBotText('No card in the reader', { timeoutMs: E2E_WAIT_MS });
    const msg = problem.messageId;

    // Another person's card goes in: the same Teams card changes by itself to say so.
    const mark = pg.mark();
    const other = await VpcdCard.insert(e2e.pcsc, VPCD_READER, { cardId: randomCardId(), pin: OTHER_PIN, puk: OTHER_PUK, blocked: true });
    try {
      await pg.waitForBotMessage((m) => m.messageId === msg && messageText(m).includes('This is not your registered card'), { since: mark, timeoutMs: E2E_WAIT_MS });
      expect(other.seen.puks.size).toBe(0);
    } finally {
      await other.dispose();
    }
    await card.waitAbsent();

    // Their own (blocked) card goes in: the card moves on to the questions by itself.
    const mark2 = pg.mark();
    await card.reinsert();
    await pg.waitForBotMessage((m) => m.messageId === msg && messageText(m).includes('Answer your security questions'), { since: mark2, timeoutMs: E2E_WAIT_MS });
    await pg.sendMessage('cancel');
    await pg.waitForBotText('Cancelled. Say "unlock" to start again.', { timeoutMs: E2E_WAIT_MS });

    // The RA team unblocks the card with the PUK (from this test, over PC/SC): now it is not locked.
    await card.session((s) => s.resetRetryCounter(card.seen.newPuks.at(-1)!, RA_PIN));
    expect(await card.pinRetries()).toBeGreaterThan(0);
    await pg.sendMessage('unlock');
    await pg.waitForBotText('Your card is not locked', { timeoutMs: E2E_WAIT_MS });
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(codes.length);
  });

  it('says the companion is not connected when it stops, and carries on with the same pairing when it is back', async () => {
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    await companion.stop();
    await pg.sendMessage('unlock');
    const offline = await pg.waitForBotText('The companion is not connected', { timeoutMs: E2E_WAIT_MS });
    expect(messageText(offline)).toContain('WS-E2E-PULL');

    // Started again on the same data directory: no new pairing, it reconnects with its credential.
    companion = seat.restartCompanion('-2');
    companions.push(companion);
    await companion.process.waitForLine(/^STATUS: connected to Smartcard Assist/, E2E_WAIT_MS);
    expect(companion.process.lines().some((l) => l.startsWith('PAIRING CODE:'))).toBe(false);
    page = await seat.openPage();

    const retry = await pg.invokeAction({ verb: 'unlock.check_card', replyToId: offline.messageId });
    expect(invokeCardText(retry)).toContain('Answer your security questions');
    const pass = await pg.invokeAction({ verb: 'unlock.answers', replyToId: offline.messageId, inputs: answerInputs(retry.ok ? retry.card : undefined, answerFor) });
    expect(invokeCardText(pass)).toContain('Check your email');
    const mail = await waitForMail(bot, (m) => m.kind === 'unlock_code' && !codes.some((c) => m.text.includes(c)));
    const code = unlockCodeFrom(mail);
    codes.push(code);
    await expect.poll(async () => pageState((await page.get()).body), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
    const done = await page.post('/unlock', { code, passcode: NEW_PASSCODE_2, confirmation: NEW_PASSCODE_2 });
    expect(pageState(done.body)).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === offline.messageId && messageText(m).includes('Your smartcard is unlocked'), { timeoutMs: E2E_WAIT_MS });
    expect(await card.verifies(NEW_PASSCODE_2)).toBe(true);
  });

  it('the bot restarts after the code was mailed: the companion reconnects and the person finishes', async () => {
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    const { questions, code } = await unlockUpToCode();
    const lines = companion.lineCount();
    await bot.restart();
    await companion.waitForLineAfter(/^STATUS: connected to Smartcard Assist/, lines);
    const done = await page.post('/unlock', { code, passcode: NEW_PASSCODE_1, confirmation: NEW_PASSCODE_1 });
    expect(pageState(done.body)).toBe('done');
    await pg.waitForBotMessage((m) => m.messageId === questions.messageId && messageText(m).includes('Your smartcard is unlocked'), { timeoutMs: E2E_WAIT_MS });
    expect(await card.verifies(NEW_PASSCODE_1)).toBe(true);
    expect(await card.holdsPuk(card.seen.newPuks.at(-1)!)).toBe(true);
  });

  it('a code email that cannot be written ends the run, and Teams and the companion page say so', async () => {
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    const codeMailsBefore = (await bot.outbox()).filter((m) => m.kind === 'unlock_code').length;
    const resetsBefore = card.seen.resets;
    // The outbox folder becomes a file: every write fails for good (ENOTDIR/EEXIST are permanent).
    const aside = `${bot.outboxDir}.aside`;
    renameSync(bot.outboxDir, aside);
    writeFileSync(bot.outboxDir, 'not a folder\n');
    try {
      await pg.sendMessage('unlock');
      const questions = await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
      const mark = pg.mark();
      const cursor = companion.lineCount();
      const r = await pg.invokeAction({ verb: 'unlock.answers', replyToId: questions.messageId, inputs: answerInputs(cardsOf(questions)[0], answerFor) });
      expect(r.ok).toBe(true);
      // Said once, on the card updated in place (no separate message repeating it, issue #14).
      await pg.waitForBotMessage((m) => m.messageId === questions.messageId && /could not send the email with your unlock code/.test(messageText(m)), { since: mark, timeoutMs: E2E_WAIT_MS });
      await expect.poll(() => currentText(questions.messageId), { timeout: E2E_WAIT_MS }).toContain('Unlock stopped');
      await expect(pg.waitForBotMessage((m) => m.messageId !== questions.messageId && /could not/.test(messageText(m)), { since: mark, timeoutMs: 2000 })).rejects.toThrow();
      // The companion was never asked for the code (the prompt waits for the mail to be
      // accepted), so its page never asks for a code that was not sent: it keeps showing
      // whatever it showed before (here the previous test's result), never the code form.
      const pageNow = (await page.get()).body;
      expect(pageState(pageNow)).not.toBe('awaiting_unlock');
      expect(pageText(pageNow)).not.toContain('Unlock code');
      mailFailurePrompts = companion.process.lines().slice(cursor).filter((l) => l.startsWith('UNLOCK:'));
    } finally {
      rmSync(bot.outboxDir, { force: true });
      renameSync(aside, bot.outboxDir);
    }
    expect((await bot.outbox()).filter((m) => m.kind === 'unlock_code')).toHaveLength(codeMailsBefore);
    expect(card.card.pinBlocked).toBe(true);
    expect(card.seen.resets).toBe(resetsBefore);
    // The person can start again.
    await pg.sendMessage('unlock');
    await pg.waitForBotText('Answer your security questions', { timeoutMs: E2E_WAIT_MS });
    await pg.sendMessage('cancel');
    await pg.waitForBotText('Cancelled. Say "unlock" to start again.', { timeoutMs: E2E_WAIT_MS });
  });

  it('five wrong codes use up the code; after "Send a new code" in Teams the page takes the new code', async () => {
    for (let i = 0; i < 3; i++) expect(await card.verifies(WRONG_PIN)).toBe(false);
    const { questions, code } = await unlockUpToCode();
    try {
      for (let i = 1; i <= 5; i++) {
        const wrongCode = randomPasscode([code, ...codes, ...mistypedCodes]);
        mistypedCodes.push(wrongCode);
        const r = await page.post('/unlock', { code: wrongCode, passcode: NEW_PASSCODE_2, confirmation: NEW_PASSCODE_2 });
        if (i < 5) {
          expect(pageState(r.body)).toBe('awaiting_unlock');
          expect(pageText(r.body)).toContain(`You can try ${5 - i} more ${5 - i === 1 ? 'time' : 'times'}`);
        } else {
          expect(pageState(r.body)).toBe('error');
          expect(pageText(r.body)).toContain('Too many wrong codes');
        }
      }
      expect(card.card.pinBlocked).toBe(true);

      // As the page says: ask for a new code in Teams.
      const resent = await pg.invokeAction({ verb: 'unlock.resend_code', replyToId: questions.messageId });
      expect(invokeCardText(resent)).toContain('Check your email');
      const mail = await waitForMail(bot, (m) => m.kind === 'unlock_code' && !codes.some((c) => m.text.includes(c)));
      const newCode = unlockCodeFrom(mail);
      codes.push(newCode);
      await expect.poll(async () => pageState((await page.get()).body), { timeout: 15_000 }).toBe('awaiting_unlock');
      const done = await page.post('/unlock', { code: newCode, passcode: NEW_PASSCODE_2, confirmation: NEW_PASSCODE_2 });
      expect(pageState(done.body)).toBe('done');
      expect(await card.verifies(NEW_PASSCODE_2)).toBe(true);
    } finally {
      if (unlockRunActive()) {
        await pg.sendMessage('cancel');
        await pg.waitForBotText(/Cancelled|nothing to cancel/, { timeoutMs: E2E_WAIT_MS });
      }
    }
  });

  // FINDING (see .notes/e2e-findings.md): the prompt effect stored with the code email is carried out
  // after that email failed for good, so the companion tells the person to type a code that was never sent.
  it('after the code email failed for good, the companion is not told to ask for the code', () => {
    expect(mailFailurePrompts, 'the mail-failure test did not run').toBeDefined();
    expect(mailFailurePrompts).toEqual([]);
  });

  it('leaves no passcode, PUK, unlock code or answer in the logs, the outbox (but each code in its own email) or the data directories', async () => {
    const secrets: TestSecret[] = [
      { label: 'old passcode', value: OLD_PIN, kind: 'digits' },
      { label: 'new passcode 1', value: NEW_PASSCODE_1, kind: 'digits' },
      { label: 'new passcode 2', value: NEW_PASSCODE_2, kind: 'digits' },
      { label: 'wrong passcode', value: WRONG_PIN, kind: 'digits' },
      { label: 'passcode set by the RA', value: RA_PIN, kind: 'digits' },
      { label: 'other card passcode', value: OTHER_PIN, kind: 'digits' },
      { label: 'other card PUK', value: OTHER_PUK, kind: 'digits' },
      { label: 'enrolled PUK', value: PUK, kind: 'digits' },
      ...card.seen.newPuks.map((p, i) => ({ label: `rotated PUK ${i + 1}`, value: p, kind: 'digits' as const })),
      ...codes.map((c, i) => ({ label: `unlock code ${i + 1}`, value: c, kind: 'digits' as const })),
      ...mistypedCodes.map((c, i) => ({ label: `mistyped code ${i + 1}`, value: c, kind: 'digits' as const })),
      ...REGISTERED.map((a) => ({ label: `answer ${a.questionId} as registered`, value: a.answer, kind: 'answer' as const })),
      ...REGISTERED.map((a) => ({ label: `answer ${a.questionId} as typed`, value: typed(a.answer), kind: 'answer' as const })),
      { label: 'wrong answer typed', value: WRONG_ANSWER, kind: 'answer' },
    ];
    expect(codes.length).toBeGreaterThan(0);
    expect(card.seen.newPuks.length).toBeGreaterThan(0);
    const codeMails = new Map<string, string>();
    for (const m of await bot.outbox()) if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    expect([...codeMails.values()].sort()).toEqual([...codes].sort());
    // The companions' own secrets too: device credential (only in its file) and page tokens (only on stdout).
    const own = await companionSecrets(companions);
    expect(own.secrets.filter((x) => x.label.endsWith('device credential'))).toHaveLength(companions.length);
    expect(own.secrets.some((x) => x.label.includes('page token'))).toBe(true);
    secrets.push(...own.secrets);
    const allow = anyAllow(codeInOwnEmail(codeMails), own.allow);

    // Nobody was locked out here (list-cases output is scanned below too).
    expect((await runAdmin(bot, ['list-cases'])).stdout).toContain('no open cases');

    // The search can fail: each code is found in its own email...
    const inMail = findSecrets(await fileSources([...codeMails.keys()]), secrets.filter((s) => s.label.startsWith('unlock code')));
    expect(new Set(inMail.map((f) => f.secret)).size).toBe(codes.length);
    // ...and answers as typed are found where Teams keeps card inputs (the Playground's own log, not a product log).
    const teamsSide = findSecrets(await fileSources([artifactPath('playground', 'e2e-pulled-playground.internal.log')]), secrets.filter((s) => s.label.endsWith('as typed')));
    expect(teamsSide.length).toBeGreaterThan(0);

    // While everything runs (the WAL holds recent writes)...
    // Nothing secret went to Teams either: every bot message and card (including invoke answers).
    const toTeams = findSecrets([{ where: 'bot messages to Teams', bytes: Buffer.from(JSON.stringify(pg.messages().map((m) => m.raw))) }], secrets);
    expect(pg.messages().length).toBeGreaterThan(20);
    expect(toTeams, describeFindings(toTeams)).toEqual([]);

    const running = await productSources({ bot, companions });
    expect(running.some((s) => s.where.endsWith('-wal'))).toBe(true);
    // ...and plain values stored or logged next to the secrets are found where they were written.
    expectFoundIn(running, /\.sqlite(-wal)?$/, [EMAIL, CARD_ID]);
    expectFoundIn(running, /companion\.pino\.log$/, ['WS-E2E-PULL']);
    expectFoundIn(running, /e2e-pulled-bot output$/, ['unlock_notice']);
    expect(findSecrets(running, own.secrets).some((f) => f.where.endsWith('credential.json'))).toBe(true);
    const whileRunning = findSecrets(running, secrets, allow);
    expect(whileRunning, describeFindings(whileRunning)).toEqual([]);

    // ...and after a clean stop (checkpointed database, flushed logs).
    for (const c of companions) await c.stop();
    await bot.stop();
    const stopped = findSecrets(await productSources({ bot, companions }), secrets, allow);
    expect(stopped, describeFindings(stopped)).toEqual([]);
  });
});
