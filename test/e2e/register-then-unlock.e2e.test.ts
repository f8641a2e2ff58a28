/**
 * End to end in the Microsoft 365 Agents Playground driven by Chromium
 * (issue #3): a person registers for self-service, and later unlocks their
 * card with the questions they chose. Every part is real: the bot process
 * (embedded store, outbox mail), the companion process on pcscd's vpcd reader
 * with the project's virtual PIV card served from this test, and the
 * Playground's web UI in Debian's Chromium.
 *
 * - The card's PUK is enrolled first through `admin import-puks` naming its holder
 *   (the card-management system's holder email), so self-unlock works once that
 *   person registers with that address.
 * - Registration: pair (`pair CODE`), "register", the contact card (work email
 *   and a UK mobile), the companion's page asks for the current passcode, the
 *   Teams card moves on to the questions card, 4 questions chosen and answered,
 *   "Email me the code", the code from the outbox typed on the code card, the
 *   confirmed card and a confirmation email that holds no answer.
 * - Later: the card is locked (3 wrong VERIFYs over PC/SC); "unlock", 3 of the 4
 *   chosen questions answered (other case and spacing), the unlock code from the
 *   outbox and a new passcode on the companion page; the new passcode verifies
 *   on the card and the old one does not.
 * - No secret used here is found in the bot log, the companion logs and stdout,
 *   the outbox (but each code in its own email) or the data directories.
 *
 * Screenshots of the final states: `artifacts/screenshots/e2e-register-*.png`.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUESTION_BANK } from '../../bot/journeys/registration/question-bank';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { artifactPath } from '../support/artifacts';
import type { PlaygroundPage } from '../support/browser';
import { codeInOwnEmail, describeFindings, expectFoundIn, fileSources, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
import {
  chooseInCombobox,
  E2E_WAIT_MS,
  e2eGate,
  questionText,
  randomCardId,
  randomPasscode,
  randomWord,
  runAdmin,
  startE2eStack,
  unlockCodeFrom,
  VPCD_READER,
  waitForMail,
  type BotStack,
  type CompanionProcess,
  type E2eSeat,
  type E2eStack,
  type VpcdCard,
} from '../support/e2e-fixture';

const gate = await e2eGate({ chromium: true });

const PERSON = {
  teamsUserId: 'user-id-0',
  displayName: 'Alex Wilber',
  email: 'alex.wilber@nhs.net',
  mobileTyped: '07700 900123',
  workstation: 'WS-ALEX-REG',
} as const;
const CARD_ID = randomCardId();
const PIN = randomPasscode();
const PUK = randomPasscode([PIN]);
const NEW_PASSCODE = randomPasscode([PIN, PUK]);
/** Typed straight at the card over PC/SC to lock it (never given to the product). */
const LOCKING_PIN = randomPasscode([PIN, PUK, NEW_PASSCODE]);
const suffix = randomWord();
/** The 4 questions the person chooses, and their answers as typed at registration. */
const CHOSEN: Array<{ questionId: string; answer: string }> = [
  { questionId: 'q02', answer: `Tangerine  Roller Skates ${suffix}` },
  { questionId: 'q07', answer: `Bramblewick Ward ${suffix}` },
  { questionId: 'q12', answer: `Paper Lanterns Matinee ${suffix}` },
  { questionId: 'q19', answer: `The Gilded Kettle ${suffix}` },
];
/** What the person types when unlocking: another case and spacing than at registration. */
const typedLater = (answer: string): string => answer.toUpperCase().replace(/\s+/g, ' ');

/**
 * The registration code in a registration-code email: the line that is only 8 digits.
 *
 * @throws Error when there is no such line
 */
function registrationCodeFrom(mail: OutboxEntry): string {
  const m = /^\s*(\d{8})\s*$/m.exec(mail.text);
  if (!m) throw new Error(`no line of 8 digits in ${mail.name}`);
  return m[1]!;
}

describe.skipIf(gate.skip)('register for self-service, then unlock, in the Agents Playground driven by Chromium (bot + companion + pcscd/vpcd)', () => {
  let e2e: E2eStack;
  let seat: E2eSeat;
  let bot: BotStack;
  let companion: CompanionProcess;
  let card: VpcdCard;
  let ui: PlaygroundPage;
  let tab: Page | undefined;
  let registrationCode: string | undefined;
  let unlockCode: string | undefined;
  let registered = false;

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-register' });
    bot = e2e.bot;
    // The card-management system's PUK for the card, before anyone registers it.
    const imported = await runAdmin(bot, ['import-puks', '--file', '-'], `card_id,puk,holder_email\n${CARD_ID},${PUK},alex.wilber@nhs.net\n`);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
    expect(imported.stdout).toContain('PUKs enrolled: 1,');
    seat = await e2e.addSeat({
      card: { cardId: CARD_ID, pin: PIN, puk: PUK, blocked: false },
      reader: VPCD_READER,
      workstation: PERSON.workstation,
      teams: { user: { id: PERSON.teamsUserId, name: PERSON.displayName }, client: 'chromium' },
    });
    ({ card, companion, ui } = seat);
  });

  afterAll(() => e2e?.stop());

  it('registers: contact details, passcode checked on the companion page, 4 questions, emailed code, confirmed card and email without the answers', { timeout: 180_000 }, async () => {
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);

    // Pair first: registration checks the card through the companion.
    await seat.pair();

    // "register": the contact card.
    const linesBefore = companion.lineCount();
    await ui.sendChat('register');
    const contact = await ui.waitForCardWithText('check your contact details', E2E_WAIT_MS);
    await ui.fillInput('Work email address', PERSON.email, contact);
    await ui.fillInput('Mobile number (UK)', PERSON.mobileTyped, contact);
    await ui.clickAction('Continue', contact);
    const checkCard = await ui.waitForCardWithText('Check your card', E2E_WAIT_MS);
    await expect.poll(() => checkCard.textContent(), { timeout: E2E_WAIT_MS }).toContain(`${PERSON.workstation} is waiting for your passcode`);

    // The companion asks for the current passcode on its page: another tab of the same browser.
    await companion.waitForLineAfter(/^REGISTER: type your current passcode/, linesBefore);
    tab = await seat.openPageTab();
    await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_passcode');
    await tab.getByLabel('Current passcode').fill(PIN);
    await tab.getByRole('button', { name: 'Check my passcode' }).click();
    // The page says the passcode was right: the designed screen is "Your passcode is correct".
    await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).not.toMatch(/^(awaiting_passcode|working)$/);
    await tab.screenshot({ path: artifactPath('screenshots', 'e2e-register-companion-passcode-checked.png'), fullPage: true });
    // (Finding 2 of .notes/registration-findings.md: the page used to go idle with the bot's notice instead.)
    expect(await tab.locator('body').getAttribute('data-state')).toBe('passcode_verified');
    await tab.getByRole('heading', { name: 'Your passcode is correct' }).waitFor({ timeout: E2E_WAIT_MS });
    // VERIFY with the right passcode leaves the retry counter full.
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);

    // Teams: the check card moves on by itself to the questions card.
    await ui.page.bringToFront();
    const movedOn = await ui.waitForCardWithText('Choose your security questions', E2E_WAIT_MS).then(
      () => true,
      () => false,
    );
    expect
      .soft(movedOn, 'Finding 1 of .notes/registration-findings.md: the Teams card did not move on to the questions card by itself after the companion verified the passcode')
      .toBe(true);
    if (!movedOn) {
      // What a person would do next: "Check again" on the stale card gets the current card.
      await ui.clickAction('Check again', checkCard);
    }
    const questions = await ui.waitForCardWithText('Choose your security questions', E2E_WAIT_MS);

    // Choose 4 different questions and answer each.
    for (const [i, c] of CHOSEN.entries()) {
      await chooseInCombobox(ui, questions, `Question ${i + 1}`, questionText(c.questionId));
      await ui.fillInput(`Answer ${i + 1}`, c.answer, questions);
    }
    await ui.clickAction('Save my answers', questions);
    const confirm = await ui.waitForCardWithText('Confirm your email address', E2E_WAIT_MS);
    await expect.poll(() => confirm.textContent()).toContain(PERSON.email);
    // No card shows an answer.
    for (const c of CHOSEN) expect(await ui.page.locator('.ac-adaptiveCard', { hasText: c.answer }).count()).toBe(0);

    // "Email me the code": the code goes to the address on the card, once.
    await ui.clickAction('Email me the code', confirm);
    const codeCard = await ui.waitForCardWithText('Enter your registration code', E2E_WAIT_MS);
    await expect.poll(() => codeCard.textContent()).toMatch(/a.*@nhs\.net/);
    const codeMail = await waitForMail(bot, (m) => m.kind === 'registration_code');
    expect(codeMail.headers['to']).toContain(PERSON.email);
    registrationCode = registrationCodeFrom(codeMail);
    expect((await bot.outbox()).filter((m) => m.kind === 'registration_code')).toHaveLength(1);

    await ui.fillInput('Registration code', registrationCode, codeCard);
    await ui.clickAction('Confirm', codeCard);
    const done = await ui.waitForCardWithText('You are registered for self-service', E2E_WAIT_MS);
    const doneText = (await done.textContent()) ?? '';
    expect(doneText).toContain(PERSON.email);
    expect(doneText).toContain(PERSON.mobileTyped);
    expect(doneText).toContain('you can unlock it yourself');
    expect(doneText).not.toContain('not yet enrolled');
    await ui.screenshot('teams-registered');

    // The confirmation email: to the person, says what was registered, never the answers or the code.
    const notice = await waitForMail(bot, (m) => m.kind === 'registration_notice');
    expect(notice.headers['to']).toContain(PERSON.email);
    expect(notice.text).toContain(PERSON.email);
    expect(notice.text).toContain(`Mobile: ${PERSON.mobileTyped}`);
    expect(notice.text).toContain(PERSON.workstation);
    expect(notice.text).toContain('Security questions: 4');
    const answerSecrets: TestSecret[] = CHOSEN.map((c) => ({ label: `answer ${c.questionId}`, value: c.answer, kind: 'answer' }));
    const inNotice = findSecrets(await fileSources([notice.file]), [...answerSecrets, { label: 'registration code', value: registrationCode, kind: 'digits' }]);
    expect(inNotice, describeFindings(inNotice)).toEqual([]);
    // The scan can fail: the code is found in its own email.
    expect(findSecrets(await fileSources([codeMail.file]), [{ label: 'registration code', value: registrationCode, kind: 'digits' }])).not.toEqual([]);
    registered = true;
  });

  it('later unlocks the locked card with 3 of the 4 questions chosen, the emailed code and a new passcode on the companion page', { timeout: 180_000 }, async () => {
    expect(registered, 'the registration test did not finish').toBe(true);

    // The person's card locks: 3 wrong passcodes over PC/SC.
    for (let i = 0; i < card.card.pinRetriesMax; i++) expect(await card.verifies(LOCKING_PIN)).toBe(false);
    expect(await card.pinRetries()).toBe(0);
    expect(card.card.pinBlocked).toBe(true);

    const linesBefore = companion.lineCount();
    await ui.sendChat('unlock');
    const questions = await ui.waitForCardWithText('Answer your security questions', E2E_WAIT_MS);
    const asked: string[] = [];
    for (const c of CHOSEN) {
      const input = questions.getByLabel(questionText(c.questionId));
      if ((await input.count()) === 0) continue;
      await ui.fillInput(questionText(c.questionId), typedLater(c.answer), questions);
      asked.push(c.questionId);
    }
    // 3 of the 4 questions this person chose, and no other question.
    expect(asked).toHaveLength(3);
    const otherQuestions = QUESTION_BANK.filter((q) => !CHOSEN.some((c) => c.questionId === q.id));
    for (const q of otherQuestions) expect(await questions.getByLabel(q.text).count()).toBe(0);
    await ui.clickAction('Check my answers', questions);
    await ui.waitForCardWithText('Check your email', E2E_WAIT_MS);

    const mail = await waitForMail(bot, (m) => m.kind === 'unlock_code');
    expect(mail.headers['to']).toContain(PERSON.email);
    unlockCode = unlockCodeFrom(mail);

    // The companion shows the unlock form on the page already open in the other tab.
    await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    const page = tab!;
    await page.bringToFront();
    await expect
      .poll(
        async () => {
          await page.goto(new URL('./', page.url()).href); // the session's page, /p/<scope>/
          return page.locator('body').getAttribute('data-state');
        },
        { timeout: E2E_WAIT_MS, interval: 500 },
      )
      .toBe('awaiting_unlock');
    await page.getByLabel('Unlock code').fill(unlockCode);
    await page.getByLabel('New passcode', { exact: true }).fill(NEW_PASSCODE);
    await page.getByLabel('Confirm new passcode').fill(NEW_PASSCODE);
    await page.getByRole('button', { name: 'Unlock my card' }).click();
    await page.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: E2E_WAIT_MS });
    await page.screenshot({ path: artifactPath('screenshots', 'e2e-register-companion-unlocked.png'), fullPage: true });

    await ui.page.bringToFront();
    const done = await ui.waitForCardWithText('Your smartcard is unlocked', E2E_WAIT_MS);
    await expect.poll(() => done.textContent()).toContain(PERSON.workstation);
    await ui.screenshot('teams-unlocked');

    // On the card, over PC/SC: the new passcode verifies, the old one does not, all tries are back,
    // and the card holds the PUK the bot rotated to (the imported one was used).
    expect(await card.verifies(PIN)).toBe(false);
    expect(await card.verifies(NEW_PASSCODE)).toBe(true);
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
    expect(card.seen.newPuks).toHaveLength(1);
    expect(card.seen.newPuks[0]).not.toBe(PUK);
    expect(await card.holdsPuk(card.seen.newPuks[0]!)).toBe(true);
  });

  it('leaves no passcode, PUK, code or answer in the logs, the outbox (but each code in its own email) or the data directories', { timeout: 120_000 }, async () => {
    expect(registrationCode, 'the registration test did not get as far as the code').toBeDefined();
    expect(unlockCode, 'the unlock test did not get as far as the code').toBeDefined();
    const secrets: TestSecret[] = [
      { label: 'passcode at registration', value: PIN, kind: 'digits' },
      { label: 'new passcode', value: NEW_PASSCODE, kind: 'digits' },
      { label: 'passcode used to lock the card', value: LOCKING_PIN, kind: 'digits' },
      { label: 'imported PUK', value: PUK, kind: 'digits' },
      ...card.seen.newPuks.map((p, i) => ({ label: `rotated PUK ${i + 1}`, value: p, kind: 'digits' as const })),
      { label: 'registration code', value: registrationCode!, kind: 'digits' },
      { label: 'unlock code', value: unlockCode!, kind: 'digits' },
      ...CHOSEN.map((c) => ({ label: `answer ${c.questionId} as registered`, value: c.answer, kind: 'answer' as const })),
      ...CHOSEN.map((c) => ({ label: `answer ${c.questionId} as typed to unlock`, value: typedLater(c.answer), kind: 'answer' as const })),
    ];
    const codeMails = new Map<string, string>();
    for (const m of await bot.outbox()) {
      if (m.kind === 'registration_code') codeMails.set(m.file, registrationCodeFrom(m));
      if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    }
    expect([...codeMails.values()].sort()).toEqual([registrationCode!, unlockCode!].sort());
    const allow = codeInOwnEmail(codeMails);

    const running = await productSources({ bot, companions: [companion] });
    // The scan reads what the product wrote: plain values stored next to the secrets are found.
    expectFoundIn(running, /\.sqlite(-wal)?$/, [PERSON.email, CARD_ID]);
    expectFoundIn(running, /e2e-register-companion\.pino\.log$/, [PERSON.workstation]);
    const whileRunning = findSecrets(running, secrets, allow);
    expect(whileRunning, describeFindings(whileRunning)).toEqual([]);

    await companion.stop();
    await bot.stop();
    const stopped = findSecrets(await productSources({ bot, companions: [companion] }), secrets, allow);
    expect(stopped, describeFindings(stopped)).toEqual([]);
  });
});

