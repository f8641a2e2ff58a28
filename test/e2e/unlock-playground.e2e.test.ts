/**
 * End to end in the Microsoft 365 Agents Playground driven by Chromium
 * (issue #2), through every real part: the bot process (embedded store,
 * outbox mail), the companion process on pcscd's vpcd reader with the
 * project's virtual PIV card served from this test, and the Playground's web
 * UI in Debian's Chromium.
 *
 * - Person A pairs by typing `pair CODE` in the chat, types "unlock", answers
 *   the three questions on the card, gets the code from the outbox, types a
 *   wrong code (refused, 4 tries left) and then it and a new passcode twice on
 *   the companion's page (another tab of the same
 *   browser), and sees success on the page and the unlocked card in Teams; an
 *   "unlocked" notice is mailed. The card, read back over PC/SC, takes the new
 *   passcode and not the old one, and holds the PUK the bot rotated to.
 * - Person B (another Playground whose current user is Megan Bowen, her own
 *   companion and card on the second vpcd reader) fails the questions three
 *   times and gets the locked-out card with a case reference; the case is
 *   stored (`admin list-cases`), no code is mailed, and her card is still blocked.
 * - Afterwards no secret used here is found in the bot log, the companion logs
 *   and stdout, the outbox (except the code in its own email) or the data files.
 *
 * Screenshots of each final state: `artifacts/screenshots/e2e-unlock-*.png`.
 */
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { artifactPath } from '../support/artifacts';
import type { PlaygroundPage } from '../support/browser';
import { anyAllow, codeInOwnEmail, companionSecrets, describeFindings, expectFoundIn, fileSources, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
import {
  E2E_TEST_MS,
  E2E_WAIT_MS,
  e2eGate,
  questionText,
  randomCardId,
  randomPasscode,
  randomWord,
  runAdmin,
  seedPerson,
  startE2eStack,
  unlockCodeFrom,
  VPCD_READER,
  VPCD_READER_2,
  waitForMail,
  type BotStack,
  type CompanionProcess,
  type E2eSeat,
  type E2eStack,
  type VpcdCard,
} from '../support/e2e-fixture';

const gate = await e2eGate({ chromium: true });

interface TestPerson {
  teamsUserId: string;
  displayName: string;
  email: string;
  cardId: string;
  pin: string;
  puk: string;
  answers: Array<{ questionId: string; answer: string }>;
}

const A: TestPerson = (() => {
  const w = randomWord();
  const pin = randomPasscode();
  return {
    teamsUserId: 'user-id-0',
    displayName: 'Alex Wilber',
    email: 'alex.wilber@nhs.net',
    cardId: randomCardId(),
    pin,
    puk: randomPasscode([pin]),
    answers: [
      { questionId: 'q01', answer: `Larkspur  Row ${w}` },
      { questionId: 'q04', answer: `Biscuit Barrel ${w}` },
      { questionId: 'q08', answer: `Glasswing Choir ${w}` },
      { questionId: 'q11', answer: `Saffron  Omelette ${w}` },
    ],
  };
})();
const B: TestPerson = (() => {
  const w = randomWord();
  const pin = randomPasscode([A.pin, A.puk]);
  return {
    teamsUserId: 'user-id-1',
    displayName: 'Megan Bowen',
    email: 'megan.bowen@nhs.net',
    cardId: randomCardId(),
    pin,
    puk: randomPasscode([A.pin, A.puk, pin]),
    answers: [
      { questionId: 'q02', answer: `Roller Skates ${w}` },
      { questionId: 'q05', answer: `Whitby Harbour ${w}` },
      { questionId: 'q09', answer: `Little Sprout ${w}` },
      { questionId: 'q13', answer: `Harriers Juniors ${w}` },
    ],
  };
})();
const A_NEW_PASSCODE = randomPasscode([A.pin, A.puk, B.pin, B.puk]);
/** A mistyped unlock code (8 digits that are not the code: checked against it before use). */
const A_WRONG_CODE = randomPasscode([A.pin, A.puk, B.pin, B.puk, A_NEW_PASSCODE]);
/** B's wrong answers, one per attempt (typed in Teams, so secrets of the same kind). */
const B_WRONG = [1, 2, 3].map((n) => `Wrong guess ${n} ${randomWord()}`);
/** What A types: another case and spacing than at registration. */
const typed = (answer: string): string => answer.toUpperCase().replace(/\s+/g, ' ');

/**
 * Fill the questions card as a person does: each input is labelled with its question.
 *
 * @param card - the rendered questions card
 * @param person - whose registered questions to look for
 * @param answer - what to type for a question id
 * @returns the question ids found on the card (3)
 */
async function fillQuestions(ui: PlaygroundPage, card: Locator, person: TestPerson, answer: (questionId: string) => string): Promise<string[]> {
  const asked: string[] = [];
  for (const a of person.answers) {
    const input = card.getByLabel(questionText(a.questionId));
    if ((await input.count()) === 0) continue;
    await ui.fillInput(questionText(a.questionId), answer(a.questionId), card);
    asked.push(a.questionId);
  }
  return asked;
}

describe.skipIf(gate.skip)('unlock end to end in the Agents Playground driven by Chromium (bot + companion + pcscd/vpcd)', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let bot: BotStack;
  let companionA: CompanionProcess | undefined;
  let companionB: CompanionProcess | undefined;
  let cardA: VpcdCard | undefined;
  let cardB: VpcdCard | undefined;
  let unlockCode: string | undefined;
  let caseRef: string | undefined;
  /** What the bot sent to Teams in each Playground (its stream), for the secret scan. */
  const teamsMessages: unknown[] = [];

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-unlock' });
    bot = e2e.bot;
    for (const p of [A, B]) {
      await seedPerson(bot, { teamsUserId: p.teamsUserId, displayName: p.displayName, email: p.email, cardId: p.cardId, puk: p.puk, answers: p.answers });
    }
  });

  afterAll(() => e2e?.stop());

  describe('person A unlocks their card', () => {
    let seat: E2eSeat | undefined;
    let ui: PlaygroundPage;
    let tab: Page | undefined;

    beforeAll(async () => {
      seat = await e2e.addSeat({
        suffix: '-a',
        card: { cardId: A.cardId, pin: A.pin, puk: A.puk, blocked: true },
        reader: VPCD_READER,
        workstation: 'WS-ALEX-01',
        teams: { user: { id: A.teamsUserId, name: A.displayName }, client: 'chromium' },
      });
      ({ card: cardA, companion: companionA, ui } = seat);
    });

    afterAll(async () => {
      await seat?.closeTeams();
      if (seat) teamsMessages.push(...seat.pg.messages().map((m) => m.raw));
    });

    it('pairs, answers, types the emailed code and a new passcode on the companion page, and sees the card unlocked in Teams and on the page', async () => {
      onTestFailed(async () => {
        await ui.screenshot('teams-at-failure').catch(() => undefined);
        await tab?.screenshot({ path: artifactPath('screenshots', 'e2e-unlock-a-companion-at-failure.png'), fullPage: true }).catch(() => undefined);
      });
      const companion = companionA!;
      const card = cardA!;
      expect(await card.pinRetries()).toBe(0);

      // Pair: the companion shows a code; the person sends it in Teams.
      await seat!.pair();

      // Unlock: the questions card.
      const linesBefore = companion.lineCount();
      await ui.sendChat('unlock');
      const questions = await ui.waitForCardWithText('Answer your security questions', E2E_WAIT_MS);
      await expect.poll(() => questions.textContent()).toContain('3 attempts left');
      const asked = await fillQuestions(ui, questions, A, (id) => typed(A.answers.find((a) => a.questionId === id)!.answer));
      expect(asked).toHaveLength(3);
      await ui.clickAction('Check my answers', questions);
      await ui.waitForCardWithText('Check your email', E2E_WAIT_MS);

      // The code arrives by "email" (the outbox), to A's address only.
      const mail = await waitForMail(bot, (m) => m.kind === 'unlock_code');
      expect(mail.headers['to']).toContain(A.email);
      unlockCode = unlockCodeFrom(mail);
      expect(unlockCode).not.toBe(A_WRONG_CODE);

      // The companion was asked to show the form: open its page in another tab of the same browser.
      await companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
      tab = await seat!.openPageTab();
      await expect.poll(() => tab!.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
      // A mistyped code first: refused by the bot, one of 5 tries used; the companion keeps the new
      // passcode (never in the page) and asks for the code only (issue #14).
      await tab.getByLabel('Unlock code').fill(A_WRONG_CODE);
      await tab.getByLabel('New passcode', { exact: true }).fill(A_NEW_PASSCODE);
      await tab.getByLabel('Confirm new passcode').fill(A_NEW_PASSCODE);
      await tab.getByRole('button', { name: 'Unlock my card' }).click();
      await tab.getByText('That unlock code is not right. You can try 4 more times.').waitFor({ timeout: E2E_WAIT_MS });
      await tab.getByText('Your new passcode is kept').waitFor({ timeout: E2E_WAIT_MS });
      expect(await tab.getByLabel('New passcode', { exact: true }).count()).toBe(0);
      expect(await tab.content()).not.toContain(A_NEW_PASSCODE);
      expect(card.seen.puks.size).toBe(0); // no PUK reached the card
      await tab.getByLabel('Unlock code').fill(unlockCode);
      await tab.getByRole('button', { name: 'Unlock my card' }).click();
      await tab.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: E2E_WAIT_MS });
      await tab.screenshot({ path: artifactPath('screenshots', 'e2e-unlock-a-companion-unlocked.png'), fullPage: true });

      // Teams: the card is updated in place to the confirmation, and nothing else repeats it (issue #14).
      await ui.page.bringToFront();
      const done = await ui.waitForCardWithText('Your smartcard is unlocked', E2E_WAIT_MS);
      await expect.poll(() => done.textContent()).toContain('WS-ALEX-01');
      await ui.page.waitForTimeout(2000);
      expect(await ui.page.getByText('You can use it with your new passcode now').count()).toBe(0);
      expect(await ui.page.getByText('Your smartcard is unlocked').count()).toBe(1);
      // The companion's terminal says so too.
      await companion.waitForLineAfter(/^UNLOCKED: your card is unlocked; use your new passcode$/, linesBefore);
      expect(await ui.page.locator('.ac-adaptiveCard', { hasText: 'Answer your security questions' }).count()).toBe(0);
      await ui.screenshot('teams-unlocked');

      // The "unlocked" notice is mailed to A.
      const notice = await waitForMail(bot, (m) => m.kind === 'unlock_notice');
      expect(notice.headers['to']).toContain(A.email);
      expect(notice.text).toContain('WS-ALEX-01');
      expect(notice.text).not.toContain(unlockCode);

      // On the card, over PC/SC: the new passcode verifies, the old does not, all tries are back.
      expect(await card.verifies(A.pin)).toBe(false);
      expect(await card.verifies(A_NEW_PASSCODE)).toBe(true);
      expect(await card.pinRetries()).toBe(card.card.pinRetriesMax);
      expect(card.card.pinBlocked).toBe(false);
      // The bot rotated the PUK: the card holds the new one, not the enrolled one.
      expect(card.seen.newPuks).toHaveLength(1);
      expect(card.seen.newPuks[0]).not.toBe(A.puk);
      expect(await card.holdsPuk(card.seen.newPuks[0]!)).toBe(true);
    });
  });

  describe('person B fails the questions three times', () => {
    let seat: E2eSeat | undefined;
    let ui: PlaygroundPage;

    beforeAll(async () => {
      seat = await e2e.addSeat({
        suffix: '-b',
        card: { cardId: B.cardId, pin: B.pin, puk: B.puk, blocked: true },
        reader: VPCD_READER_2,
        workstation: 'WS-MEGAN-02',
        teams: { user: { id: B.teamsUserId, name: B.displayName }, client: 'chromium' },
      });
      ({ card: cardB, companion: companionB, ui } = seat);
    });

    afterAll(async () => {
      await seat?.closeTeams();
      if (seat) teamsMessages.push(...seat.pg.messages().map((m) => m.raw));
    });

    it('is locked out with a case reference, the case is stored, no code is sent, and the card stays blocked', async () => {
      onTestFailed(async () => {
        await ui.screenshot('teams-at-failure').catch(() => undefined);
      });
      const companion = companionB!;
      const card = cardB!;
      const mailsBefore = (await bot.outbox()).length;

      await seat!.pair();

      await ui.sendChat('unlock');
      let questions = await ui.waitForCardWithText('Answer your security questions', E2E_WAIT_MS);
      for (const [i, left] of [3, 2, 1].entries()) {
        await expect.poll(() => questions.textContent(), { timeout: E2E_WAIT_MS }).toContain(`${left} ${left === 1 ? 'attempt' : 'attempts'} left`);
        const asked = await fillQuestions(ui, questions, B, () => B_WRONG[i]!);
        expect(asked).toHaveLength(3);
        await ui.clickAction('Check my answers', questions);
        if (left > 1) {
          questions = await ui.waitForCardWithText(`${left - 1} ${left - 1 === 1 ? 'attempt' : 'attempts'} left`, E2E_WAIT_MS);
          await expect.poll(() => questions.textContent()).toContain('One or more answers did not match');
        }
      }
      const locked = await ui.waitForCardWithText('Self-service unlock is locked', E2E_WAIT_MS);
      const text = (await locked.textContent()) ?? '';
      const ref = /RA-[A-Z0-9]{6}/.exec(text)?.[0];
      expect(ref, `no case reference on the card: ${text}`).toBeDefined();
      caseRef = ref!;
      await ui.screenshot('teams-locked-out');

      // The case is stored, for this person, with the reason.
      const cases = await runAdmin(bot, ['list-cases']);
      expect(cases.code).toBe(0);
      const line = cases.stdout.split('\n').find((l) => l.startsWith(caseRef!));
      expect(line, cases.stdout).toBeDefined();
      expect(line).toMatch(/\bopen\b.*\banswers_failed\b/);

      // Asking again gets the same locked-out answer (self-service stays locked).
      await ui.sendChat('unlock');
      await expect.poll(() => ui.page.locator('.ac-adaptiveCard', { hasText: 'Self-service unlock is locked' }).count(), { timeout: E2E_WAIT_MS }).toBe(2);
      expect(await ui.page.locator('.ac-adaptiveCard', { hasText: 'Self-service unlock is locked' }).last().textContent()).toContain(caseRef);

      // Nothing was mailed, nothing was asked of the companion, and the card is still blocked.
      expect((await bot.outbox()).length).toBe(mailsBefore);
      expect(companion.process.lines().some((l) => l.startsWith('UNLOCK:'))).toBe(false);
      expect(await card.pinRetries()).toBe(0);
      expect(card.card.pinBlocked).toBe(true);
      expect(card.seen.puks.size).toBe(0);

      // B's companion page never asked for a code: it shows the paired, idle screen.
      const tab = await seat!.openPageTab();
      try {
        await expect.poll(() => tab.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('idle');
        await tab.getByText('Nothing to do right now').waitFor({ timeout: E2E_WAIT_MS });
        expect(await tab.getByLabel('Unlock code').count()).toBe(0);
        await tab.screenshot({ path: artifactPath('screenshots', 'e2e-unlock-b-companion-idle.png'), fullPage: true });
      } finally {
        await tab.close();
      }
    });
  });

  it('leaves no passcode, PUK, unlock code or answer in the logs, the outbox (but the code in its own email) or the data directories', async () => {
    expect(unlockCode, 'the unlock test did not get as far as the code').toBeDefined();
    expect(caseRef, 'the lock-out test did not finish').toBeDefined();
    const secrets: TestSecret[] = [
      { label: 'A old passcode', value: A.pin, kind: 'digits' },
      { label: 'A new passcode', value: A_NEW_PASSCODE, kind: 'digits' },
      { label: 'A enrolled PUK', value: A.puk, kind: 'digits' },
      ...(cardA?.seen.newPuks ?? []).map((p, i) => ({ label: `A rotated PUK ${i + 1}`, value: p, kind: 'digits' as const })),
      { label: 'A unlock code', value: unlockCode!, kind: 'digits' },
      { label: 'A mistyped code', value: A_WRONG_CODE, kind: 'digits' },
      { label: 'B passcode', value: B.pin, kind: 'digits' },
      { label: 'B PUK', value: B.puk, kind: 'digits' },
      ...A.answers.map((a) => ({ label: `A answer ${a.questionId} as registered`, value: a.answer, kind: 'answer' as const })),
      ...A.answers.map((a) => ({ label: `A answer ${a.questionId} as typed`, value: typed(a.answer), kind: 'answer' as const })),
      ...B.answers.map((a) => ({ label: `B answer ${a.questionId} as registered`, value: a.answer, kind: 'answer' as const })),
      ...B_WRONG.map((w, i) => ({ label: `B wrong answer ${i + 1} as typed`, value: w, kind: 'answer' as const })),
    ];
    const companions = [companionA!, companionB!];
    const codeMails = new Map<string, string>();
    for (const m of await bot.outbox()) if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    expect([...codeMails.values()]).toEqual([unlockCode]);
    // The companions' own secrets too: device credential (only in its file) and page tokens (only on stdout).
    const own = await companionSecrets(companions);
    expect(own.secrets.filter((x) => x.label.endsWith('device credential'))).toHaveLength(companions.length);
    expect(own.secrets.some((x) => x.label.includes('page token'))).toBe(true);
    secrets.push(...own.secrets);
    const allow = anyAllow(codeInOwnEmail(codeMails), own.allow);

    // The search can fail: the code is found in its own email...
    expect(findSecrets(await fileSources([...codeMails.keys()]), secrets.filter((s) => s.label === 'A unlock code'))).not.toEqual([]);

    // Nothing secret went to Teams either: every bot message and card update on the Playgrounds' streams.
    expect(teamsMessages.length).toBeGreaterThan(6);
    const toTeams = findSecrets([{ where: 'bot messages to Teams', bytes: Buffer.from(JSON.stringify(teamsMessages)) }], secrets);
    expect(toTeams, describeFindings(toTeams)).toEqual([]);

    const running = await productSources({ bot, companions });
    expect(running.some((s) => s.where.endsWith('-wal'))).toBe(true);
    // ...and plain values stored or logged next to the secrets are found where they were written.
    expectFoundIn(running, /\.sqlite(-wal)?$/, [A.email, B.email, A.cardId]);
    expectFoundIn(running, /companion-a\.pino\.log$/, ['WS-ALEX-01']);
    expectFoundIn(running, /e2e-unlock-bot output$/, ['unlock_notice']);

    expect(findSecrets(running, own.secrets).some((f) => f.where.endsWith('credential.json'))).toBe(true);
    const whileRunning = findSecrets(running, secrets, allow);
    expect(whileRunning, describeFindings(whileRunning)).toEqual([]);

    for (const c of companions) await c.stop();
    await bot.stop();
    const stopped = findSecrets(await productSources({ bot, companions }), secrets, allow);
    expect(stopped, describeFindings(stopped)).toEqual([]);
  });
});
