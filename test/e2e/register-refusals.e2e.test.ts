/**
 * What a person sees when registration refuses something (issue #3), end to
 * end in the Agents Playground driven by Chromium, against the bot process,
 * the companion process on pcscd's vpcd reader and the project's virtual PIV
 * card served from this test:
 *
 * - Refused contact details (`alex@gmail.com`, the look-alike
 *   `alex@nhs.net.evil.com`, a landline as the mobile): the card says why, in
 *   plain words, and keeps what was typed.
 * - A wrong passcode on the companion's page: the page (and the Teams card)
 *   say how many tries the card has left, and the card's PIN retry counter,
 *   read over PC/SC, really dropped by one. The right passcode then restores it.
 * - Refused answers (two the same) keep the chosen questions; a refused
 *   different address on the confirm card says why, keeps what was typed and
 *   sends nothing.
 *
 * Screenshots: `artifacts/screenshots/e2e-register-refusals-*.png`.
 */
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactPath } from '../support/artifacts';
import type { PlaygroundPage } from '../support/browser';
import { describeFindings, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
import {
  chooseInCombobox,
  E2E_WAIT_MS,
  e2eGate,
  questionText,
  randomCardId,
  randomPasscode,
  randomWord,
  startE2eStack,
  VPCD_READER_2,
  type BotStack,
  type CompanionProcess,
  type E2eSeat,
  type E2eStack,
  type VpcdCard,
} from '../support/e2e-fixture';

const gate = await e2eGate({ chromium: true });

const PERSON = { teamsUserId: 'user-id-1', displayName: 'Megan Bowen', email: 'megan.bowen@nhs.net', mobile: '07700 900456', workstation: 'WS-MEGAN-REG' } as const;
const CARD_ID = randomCardId();
const PIN = randomPasscode();
const PUK = randomPasscode([PIN]);
const WRONG_PIN = randomPasscode([PIN, PUK]);
const w = randomWord();
const ANSWERS = [`Harrowgate Lane ${w}`, `Pickled Onion Crisps ${w}`, `Juniper Hollow ${w}`, `Tin Whistle ${w}`];
const QUESTION_IDS = ['q01', 'q06', 'q13', 'q20'];
const DOMAIN_REASON = 'Use your work email address: it must end in @nhs.net, @gov.uk or @mod.uk (or a sub-domain of one).';

describe.skipIf(gate.skip)('registration refusals as the person sees them, in the Agents Playground driven by Chromium (bot + companion + pcscd/vpcd)', () => {
  let e2e: E2eStack;
  let seat: E2eSeat;
  let bot: BotStack;
  let companion: CompanionProcess;
  let card: VpcdCard;
  let ui: PlaygroundPage;
  let tab: Page | undefined;
  let checkCard: Locator | undefined;
  let passcodeChecked = false;

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-register-refusals' });
    bot = e2e.bot;
    seat = await e2e.addSeat({
      card: { cardId: CARD_ID, pin: PIN, puk: PUK, blocked: false },
      reader: VPCD_READER_2,
      workstation: PERSON.workstation,
      teams: { user: { id: PERSON.teamsUserId, name: PERSON.displayName }, client: 'chromium' },
    });
    ({ card, companion, ui } = seat);
    await seat.pair();
  });

  afterAll(() => e2e?.stop());

  it('refused contact details: the card says why and keeps what was typed', { timeout: 150_000 }, async () => {
    // The welcome card's "Register for self-service" button starts the journey.
    await ui.clickAction('Register for self-service');
    let contact = await ui.waitForCardWithText('check your contact details', E2E_WAIT_MS);

    for (const [i, refused] of ['alex@gmail.com', 'alex@nhs.net.evil.com'].entries()) {
      await ui.fillInput('Work email address', refused, contact);
      await ui.fillInput('Mobile number (UK)', PERSON.mobile, contact);
      await ui.clickAction('Continue', contact);
      contact = await ui.waitForCardWithText(DOMAIN_REASON, E2E_WAIT_MS);
      // The refused card is the newest version: wait until it shows what was typed this time.
      await expect.poll(() => contact.getByLabel('Work email address').inputValue(), { timeout: E2E_WAIT_MS }).toBe(refused);
      expect(await contact.getByLabel('Mobile number (UK)').inputValue()).toBe(PERSON.mobile);
      expect(await ui.page.locator('.ac-adaptiveCard', { hasText: 'Check your card' }).count(), `refused address ${i + 1} got through`).toBe(0);
    }
    await ui.screenshot('email-refused');

    // A landline as the mobile: its own reason; both fields keep what was typed.
    await ui.fillInput('Work email address', PERSON.email, contact);
    await ui.fillInput('Mobile number (UK)', '01632 960123', contact);
    await ui.clickAction('Continue', contact);
    contact = await ui.waitForCardWithText('Enter a UK mobile number', E2E_WAIT_MS);
    await expect.poll(() => contact.getByLabel('Mobile number (UK)').inputValue(), { timeout: E2E_WAIT_MS }).toBe('01632 960123');
    expect(await contact.getByLabel('Work email address').inputValue()).toBe(PERSON.email);
    expect((await contact.textContent()) ?? '').not.toContain(DOMAIN_REASON);
    await ui.screenshot('mobile-refused');

    // Nothing was sent anywhere while the details were refused.
    expect(await bot.outbox()).toEqual([]);
    expect(companion.process.lines().some((l) => l.startsWith('REGISTER:'))).toBe(false);

    // Right details: on to the card check.
    const linesBefore = companion.lineCount();
    await ui.fillInput('Mobile number (UK)', PERSON.mobile, contact);
    await ui.clickAction('Continue', contact);
    checkCard = await ui.waitForCardWithText('Check your card', E2E_WAIT_MS);
    await companion.waitForLineAfter(/^REGISTER: type your current passcode/, linesBefore);
  });

  it('a wrong passcode on the companion page shows the tries left, and the card really lost one try', { timeout: 150_000 }, async () => {
    expect(checkCard, 'the contact test did not reach the card check').toBeDefined();
    const before = await card.pinRetries();
    expect(before).toBe(card.card.pinRetriesMax);

    tab = await seat.openPageTab();
    await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_passcode');
    await tab.getByLabel('Current passcode').fill(WRONG_PIN);
    await tab.getByRole('button', { name: 'Check my passcode' }).click();

    // The page: back to the form, saying how many tries are left.
    const alert = tab.getByTestId('form-error');
    await alert.waitFor({ timeout: E2E_WAIT_MS });
    expect(await tab.locator('body').getAttribute('data-state')).toBe('awaiting_passcode');
    const alertText = (await alert.textContent()) ?? '';
    const shown = /locks after (\d+) more wrong tr(?:y|ies)/.exec(alertText);
    expect(shown, `no tries count on the page: ${alertText}`).not.toBeNull();
    expect(Number(shown![1])).toBe(before - 1);
    await tab.screenshot({ path: artifactPath('screenshots', 'e2e-register-refusals-companion-wrong-passcode.png'), fullPage: true });

    // The card, read over PC/SC: one try fewer, not blocked.
    expect(await card.pinRetries()).toBe(before - 1);
    expect(card.card.pinBlocked).toBe(false);

    // Teams: the check card updates in place with the same count.
    await ui.page.bringToFront();
    const triesText = `Your card has ${before - 1} tries left.`;
    const teamsShows = await ui.waitForCardWithText(triesText, E2E_WAIT_MS).then(
      () => true,
      () => false,
    );
    expect.soft(teamsShows, `Finding 1 of .notes/registration-findings.md: the Teams check card never said "${triesText}"`).toBe(true);
    await ui.screenshot('teams-wrong-passcode');

    // The right passcode now: verified, and the card's counter is full again.
    await tab.bringToFront();
    await tab.getByLabel('Current passcode').fill(PIN);
    await tab.getByRole('button', { name: 'Check my passcode' }).click();
    await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).not.toMatch(/^(awaiting_passcode|working)$/);
    expect(await tab.locator('body').getAttribute('data-state')).toBe('passcode_verified');
    await tab.getByRole('heading', { name: 'Your passcode is correct' }).waitFor({ timeout: E2E_WAIT_MS });
    expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
    passcodeChecked = true;
  });

  it('refused answers keep the chosen questions; a refused different address says why, keeps what was typed and sends nothing', { timeout: 150_000 }, async () => {
    expect(passcodeChecked, 'the passcode test did not finish').toBe(true);
    await ui.page.bringToFront();
    const movedOn = await ui.waitForCardWithText('Choose your security questions', E2E_WAIT_MS).then(
      () => true,
      () => false,
    );
    expect.soft(movedOn, 'Finding 1 of .notes/registration-findings.md: the Teams card did not move on to the questions card by itself').toBe(true);
    if (!movedOn) await ui.clickAction('Check again', checkCard);
    let questions = await ui.waitForCardWithText('Choose your security questions', E2E_WAIT_MS);

    // Two answers the same (after normalisation): refused, the questions stay chosen.
    const same = [ANSWERS[0]!, ANSWERS[1]!, ANSWERS[0]!.toUpperCase(), ANSWERS[3]!];
    for (const [i, id] of QUESTION_IDS.entries()) {
      await chooseInCombobox(ui, questions, `Question ${i + 1}`, questionText(id));
      await ui.fillInput(`Answer ${i + 1}`, same[i]!, questions);
    }
    await ui.clickAction('Save my answers', questions);
    questions = await ui.waitForCardWithText('Two of your answers are the same', E2E_WAIT_MS);
    for (const [i, id] of QUESTION_IDS.entries()) {
      await expect.poll(() => questions.getByRole('combobox', { name: `Question ${i + 1}` }).inputValue(), { timeout: E2E_WAIT_MS }).toBe(questionText(id));
      // By design no card shows an answer again (it would stay in the chat history).
      expect(await questions.getByLabel(`Answer ${i + 1}`).inputValue()).toBe('');
    }
    await ui.screenshot('answers-refused');

    for (const [i] of QUESTION_IDS.entries()) await ui.fillInput(`Answer ${i + 1}`, ANSWERS[i]!, questions);
    await ui.clickAction('Save my answers', questions);
    let confirm = await ui.waitForCardWithText('Confirm your email address', E2E_WAIT_MS);

    // A different address, refused: the reason on the card, no email sent, what was typed kept.
    const label = 'Send it to a different work address (optional)';
    await ui.fillInput(label, 'alex@nhs.net.evil.com', confirm);
    await ui.clickAction('Email me the code', confirm);
    confirm = await ui.waitForCardWithText(DOMAIN_REASON, E2E_WAIT_MS);
    expect((await confirm.textContent()) ?? '').toContain(PERSON.email);
    await ui.screenshot('different-email-refused');
    expect(await bot.outbox()).toEqual([]);
    await expect
      .poll(() => confirm.getByLabel(label).inputValue(), { timeout: 5000, message: 'Finding 3 of .notes/registration-findings.md: the confirm card lost the address that was typed' })
      .toBe('alex@nhs.net.evil.com');
  });

  it('leaves no passcode or answer in the logs or the data directories', { timeout: 60_000 }, async () => {
    const secrets: TestSecret[] = [
      { label: 'passcode', value: PIN, kind: 'digits' },
      { label: 'wrong passcode', value: WRONG_PIN, kind: 'digits' },
      ...ANSWERS.map((a, i) => ({ label: `answer ${i + 1}`, value: a, kind: 'answer' as const })),
    ];
    const found = findSecrets(await productSources({ bot, companions: [companion] }), secrets);
    expect(found, describeFindings(found)).toEqual([]);
  });
});
