/**
 * The RA desk end to end in the Microsoft 365 Agents Playground driven by
 * Chromium (issue #12), through every real part: the bot process (embedded
 * store, outbox mail), companions on pcscd's vpcd readers with the project's
 * virtual PIV cards, and the Playground's web UI in Debian's Chromium.
 *
 * Who is where (each Playground is its own Teams; the bot talks to all of them):
 * - the RA team's Playground: its current user is RA member Rita (Chromium), its
 *   team has a channel "RA Desk" where the bot is installed (the bot learns the
 *   channel from that install); RA member Omar and non-member Nina are other
 *   members of the same team. The Playground types messages only as its current
 *   user, but its own invoke API (`POST /_conversation/v1/invoke`) takes any team
 *   member as `from`: Omar's and Nina's clicks go through it, on the same card
 *   message. Their answer cards are not shown in Rita's page, so each is
 *   rendered with the Adaptive Cards SDK in a Chromium tab for its screenshot;
 * - person Pat (seat A: card on the first vpcd reader, companion, Chromium);
 * - person Quinn (seat B: card on the second vpcd reader, companion, Chromium);
 * - helpdesk member Hana (a Playground of her own, Chromium).
 *
 * What is shown (screenshots `artifacts/screenshots/e2e-ra-desk-*.png`):
 * 1. Pat fails the questions three times: a case card appears in the RA Desk channel;
 * 2. Rita and Omar claim at once: one owns the case, the other is told who has it;
 * 3. Nina's click is refused (audited, nothing changed);
 * 4. the owner starts an RA-assisted unlock: Pat skips the questions, finishes at the
 *    companion with the emailed code, and the card reads back unlocked; the case is closed;
 * 5. Hana opens a case for Pat with the helpdesk form: she sees the case reference, Pat is told;
 * 6. Quinn says "talk to RA" mid-unlock: the run is paused; Rita's assisted unlock resumes the
 *    same run without questions, and Quinn finishes at the companion (card read back unlocked);
 * 7. afterwards no passcode, PUK, unlock code or answer is in what went to Teams, the logs, the
 *    outbox (but each code in its own email) or the data directories.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { readStore } from '../integration/adversarial-harness';
import { anyAllow, codeInOwnEmail, companionSecrets, describeFindings, findSecrets, productSources, type TestSecret } from '../support/e2e-secrets';
import { artifactPath } from '../support/artifacts';
import { openPlayground, type PlaygroundPage } from '../support/browser';
import {
  chooseInCombobox,
  E2E_TEST_MS,
  E2E_WAIT_MS,
  e2eGate,
  questionText,
  randomCardId,
  randomPasscode,
  randomWord,
  seedPerson,
  startE2eStack,
  unlockCodeFrom,
  VPCD_READER,
  VPCD_READER_2,
  waitForMail,
  type E2eSeat,
  type E2eStack,
} from '../support/e2e-fixture';
import { cardText, startPlayground, type InvokeResult, type PlaygroundHandle, type PlaygroundUserInput } from '../support/playground';

const gate = await e2eGate({ chromium: true });

const RA_CHANNEL = { id: 'channel-ra-desk-id', name: 'RA Desk' } as const;
const RITA = { id: 'ra-rita', name: 'Rita Ahmed', aadObjectId: 'a1a1a1a1-0000-4000-8000-000000000001' } satisfies PlaygroundUserInput;
const OMAR = { id: 'ra-omar', name: 'Omar Begum', aadObjectId: 'a2a2a2a2-0000-4000-8000-000000000002' } satisfies PlaygroundUserInput;
const NINA = { id: 'nina-other', name: 'Nina Other', aadObjectId: 'c3c3c3c3-0000-4000-8000-000000000003' } satisfies PlaygroundUserInput;
const HANA = { id: 'help-hana', name: 'Hana Help', aadObjectId: 'd4d4d4d4-0000-4000-8000-000000000004' } satisfies PlaygroundUserInput;

interface TestPerson {
  teamsUserId: string;
  displayName: string;
  email: string;
  cardId: string;
  pin: string;
  puk: string;
  answers: Array<{ questionId: string; answer: string }>;
  newPasscode: string;
}

function person(teamsUserId: string, displayName: string, email: string, avoid: string[]): TestPerson {
  const w = randomWord();
  const pin = randomPasscode(avoid);
  const puk = randomPasscode([...avoid, pin]);
  return {
    teamsUserId,
    displayName,
    email,
    cardId: randomCardId(),
    pin,
    puk,
    answers: [
      { questionId: 'q01', answer: `Larkspur Row ${w}` },
      { questionId: 'q04', answer: `Biscuit Barrel ${w}` },
      { questionId: 'q08', answer: `Glasswing Choir ${w}` },
      { questionId: 'q11', answer: `Saffron Omelette ${w}` },
    ],
    newPasscode: randomPasscode([...avoid, pin, puk]),
  };
}

const PAT = person('user-id-0', 'Pat Holder', 'pat.holder@nhs.net', []);
const QUINN = person('user-id-1', 'Quinn Asker', 'quinn.asker@nhs.net', [PAT.pin, PAT.puk, PAT.newPasscode]);
const WRONG = [1, 2, 3].map((n) => `Wrong guess ${n} ${randomWord()}`);

/** Fill the questions a questions card asks with `answer`; returns how many were asked. */
async function fillQuestions(ui: PlaygroundPage, card: Locator, p: TestPerson, answer: (questionId: string) => string): Promise<number> {
  let asked = 0;
  for (const a of p.answers) {
    const input = card.getByLabel(questionText(a.questionId));
    if ((await input.count()) === 0) continue;
    await ui.fillInput(questionText(a.questionId), answer(a.questionId), card);
    asked++;
  }
  return asked;
}

const require = createRequire(import.meta.url);
const ADAPTIVE_CARDS_JS = readFileSync(require.resolve('adaptivecards/dist/adaptivecards.min.js'), 'utf8');

/**
 * Screenshot an answer card a member got through the Playground's invoke API (it is not shown in the
 * RA member's page): rendered with the Adaptive Cards SDK in a tab of the same browser.
 */
async function screenshotCard(ui: PlaygroundPage, card: unknown, file: string, caption: string): Promise<void> {
  const tab: Page = await ui.context.newPage();
  try {
    // The card JSON and caption go in as script data (`<` escaped), rendered by the SDK in the page.
    const data = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');
    const render = `var c=new AdaptiveCards.AdaptiveCard();c.parse(${data(card)});document.getElementById('c').appendChild(c.render());document.getElementById('t').textContent=${data(caption)};`;
    await tab.setContent(`<!doctype html><html><head><meta charset="utf-8"><style>body{font-family:Segoe UI,Arial,sans-serif;background:#f5f5f5;margin:16px}#c{background:#fff;max-width:640px;padding:12px;border-radius:6px;box-shadow:0 1px 3px #999}h1{font-size:14px;color:#444}</style></head><body><h1 id="t"></h1><div id="c"></div></body></html>`);
    await tab.addScriptTag({ content: ADAPTIVE_CARDS_JS });
    await tab.addScriptTag({ content: render });
    await tab.locator('#c .ac-adaptiveCard').waitFor();
    await tab.screenshot({ path: artifactPath('screenshots', file), fullPage: true });
  } finally {
    await tab.close();
  }
}

/** Screenshot one rendered card (all of it, whatever the chat's scroll position) as `e2e-ra-desk-<name>.png`. */
async function shotCard(card: Locator, name: string): Promise<void> {
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: artifactPath('screenshots', `e2e-ra-desk-${name}.png`) });
}

/** Wait (outside a test, where expect.poll is not allowed) until `ok()` holds. */
async function until(ok: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + E2E_WAIT_MS;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${E2E_WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The card an invoke answered with (throws on an HTTP error or a non-card answer). */
function answerCard(r: InvokeResult): unknown {
  if (!r.ok) throw new Error(`card action failed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  if (!r.card) throw new Error(`card action answered ${String(r.type)}, not a card`);
  return r.card;
}

describe.skipIf(gate.skip)('RA desk end to end in the Agents Playground driven by Chromium', { timeout: E2E_TEST_MS }, () => {
  let e2e: E2eStack;
  let raPg: PlaygroundHandle;
  let raUi: PlaygroundPage;
  let pat: E2eSeat;
  let quinn: E2eSeat | undefined;
  let patCase: string | undefined;
  /** Who owns Pat's case after the simultaneous claim. */
  let owner: typeof RITA | typeof OMAR | undefined;
  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(e2e.bot.dataDir, query, ...params);
  const patId = { value: '' };
  /** The Playground's message id of Pat's case card in the channel (what a click replies to). */
  let patCardId = '';
  /**
   * Omar clicks on Pat's case card, through the Playground's invoke API: on the card message as posted,
   * with the case step the channel card shows now (read from the store; the handle's own copy of the
   * message is whatever the last API click was answered with, e.g. Nina's view without RA buttons).
   */
  const omarClicks = (verb: string, inputs: Record<string, unknown> = {}): Promise<InvokeResult> => {
    const step = (JSON.parse(sql<{ state: string }>(`SELECT state FROM journeys WHERE key = ?`, `${patCase}:ra-case`)[0]!.state) as { step: number }).step;
    return raPg.invokeAction({ verb, fromId: OMAR.id, conversationId: RA_CHANNEL.id, replyToId: patCardId, data: { caseRef: patCase, step: String(step) }, inputs });
  };
  const quinnId = { value: '' };

  beforeAll(async () => {
    e2e = await startE2eStack({
      name: 'e2e-ra-desk',
      botEnv: { RA_MEMBER_IDS: `${RITA.aadObjectId},${OMAR.aadObjectId}`, HELPDESK_MEMBER_IDS: HANA.aadObjectId },
    });
    patId.value = await seedPerson(e2e.bot, PAT);
    quinnId.value = await seedPerson(e2e.bot, QUINN);
    // The RA team's Teams: Rita's page, the bot installed in the "RA Desk" channel (the bot learns it there).
    raPg = await startPlayground({ botUrl: e2e.bot.messagesUrl, name: 'e2e-ra-desk-playground-ra', currentUser: RITA, users: [OMAR, NINA], channel: RA_CHANNEL });
    // A tall window: a whole case card fits in its screenshots.
    raUi = await openPlayground(raPg.url, { name: 'e2e-ra-desk-ra', timeoutMs: E2E_WAIT_MS, waitForText: 'I am Smartcard Assist', viewport: { width: 1400, height: 1800 } });
    await raPg.install({ conversationId: RA_CHANNEL.id });
    await raUi.openConversation(`My Team - ${RA_CHANNEL.name}`);
    await until(() => (sql<{ n: number }>(`SELECT count(*) AS n FROM conversations WHERE person_id = 'ra-channel'`)[0]?.n ?? 0) === 1, 'the bot did not store the RA Desk channel');
    pat = await e2e.addSeat({
      suffix: '-pat',
      card: { cardId: PAT.cardId, pin: PAT.pin, puk: PAT.puk, blocked: true },
      reader: VPCD_READER,
      workstation: 'WS-PAT-01',
      teams: { user: { id: PAT.teamsUserId, name: PAT.displayName }, client: 'chromium' },
    });
  });

  afterAll(async () => {
    await raUi?.close();
    await raPg?.stop();
    await e2e?.stop();
  });

  it('a lockout appears as a case card in the RA Desk channel', async () => {
    onTestFailed(async () => {
      await raUi.screenshot('at-failure-1').catch(() => undefined);
      await pat.ui.screenshot('at-failure-1').catch(() => undefined);
    });
    const ui = pat.ui;
    await pat.pair();
    await ui.sendChat('unlock');
    let questions = await ui.waitForCardWithText('Answer your security questions', E2E_WAIT_MS);
    for (const [i, left] of [3, 2, 1].entries()) {
      await expect.poll(() => questions.textContent(), { timeout: E2E_WAIT_MS }).toContain(`${left} ${left === 1 ? 'attempt' : 'attempts'} left`);
      expect(await fillQuestions(ui, questions, PAT, () => WRONG[i]!)).toBe(3);
      await ui.clickAction('Check my answers', questions);
      if (left > 1) questions = await ui.waitForCardWithText(`${left - 1} ${left - 1 === 1 ? 'attempt' : 'attempts'} left`, E2E_WAIT_MS);
    }
    const locked = await ui.waitForCardWithText('Self-service unlock is locked', E2E_WAIT_MS);
    patCase = /RA-[0-9A-Z]{6}/.exec((await locked.textContent()) ?? '')?.[0];
    expect(patCase, 'no case reference on the locked-out card').toBeDefined();

    // The case card in the channel: who, which card, why, what they did; never a secret.
    const card = await raUi.waitForCardWithText(patCase!, E2E_WAIT_MS);
    const text = (await card.textContent()) ?? '';
    for (const s of ['Pat Holder', PAT.email, PAT.cardId, 'security answers did not match 3 times', 'Attempts used: 3', 'Open: nobody has claimed it yet']) expect(text).toContain(s);
    for (const secret of [PAT.pin, PAT.puk, ...PAT.answers.map((a) => a.answer), ...WRONG]) expect(text).not.toContain(secret);
    await card.getByRole('button', { name: 'Claim', exact: true }).waitFor();
    await raUi.screenshot('1-lockout-case-card');
    await shotCard(card, 'ra-card-1-lockout-case');
  });

  it('two RA members claim at once: one owns the case, the other is told who has it', async () => {
    onTestFailed(async () => {
      await raUi.screenshot('at-failure-2').catch(() => undefined);
    });
    expect(patCase, 'the lockout test did not finish').toBeDefined();
    const card = await raUi.waitForCardWithText(patCase!, E2E_WAIT_MS);
    // Rita clicks Claim in her page while Omar's click reaches the bot through the Playground (as Omar).
    patCardId = raPg.messages().filter((m) => m.conversationId === RA_CHANNEL.id && cardText(m.attachments[0]?.content ?? {}).includes(patCase!)).at(-1)!.messageId;
    const omarClick = omarClicks('ra.claim');
    await raUi.clickAction('Claim', card);
    const omar = answerCard(await omarClick);
    await expect.poll(() => sql<{ status: string }>(`SELECT status FROM cases WHERE ref = ?`, patCase)[0]?.status, { timeout: E2E_WAIT_MS }).toBe('claimed');
    const applied = sql<{ actor: string }>(`SELECT actor FROM audit WHERE action = 'ra_case.claim' AND json_extract(details, '$.caseRef') = ? AND json_extract(details, '$.outcome') = 'applied'`, patCase);
    expect(applied).toHaveLength(1);
    owner = applied[0]!.actor === `ra:${RITA.aadObjectId}` ? RITA : OMAR;
    const loser = owner === RITA ? OMAR : RITA;
    const refused = sql<{ details: string }>(`SELECT details FROM audit WHERE action = 'ra_case.claim' AND actor = ?`, `ra:${loser.aadObjectId}`);
    expect(refused.map((r) => (JSON.parse(r.details) as { reason: string }).reason)).toEqual(['owned']);
    if (loser === OMAR) {
      expect(cardText(omar)).toContain(`${RITA.name} already has this case. Nothing was changed.`);
      await screenshotCard(raUi, omar, 'e2e-ra-desk-2-second-claim-told-owner.png', `What ${OMAR.name} sees after clicking Claim at the same time as ${RITA.name}`);
    } else {
      const told = await raUi.waitForCardWithText(`${OMAR.name} already has this case. Nothing was changed.`, E2E_WAIT_MS);
      await raUi.screenshot('2-second-claim-told-owner');
      await shotCard(told, 'ra-card-2-second-claim-told-owner');
    }
    // Everyone's copy of the channel card says who has it (updated in place).
    await raUi.waitForCardWithText(new RegExp(`Status: Claimed by ${owner.name}`), E2E_WAIT_MS);
    // The person was told who has their case.
    await pat.ui.waitForBotText(`${owner.name} from your RA team is now looking after your case ${patCase}`, E2E_WAIT_MS);
  });

  it("a non-member's click is refused, audited, and changes nothing", async () => {
    expect(owner, 'the claim test did not finish').toBeDefined();
    const version = sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${patCase}:ra-case`)[0]!.version;
    const r = await raPg.invokeAction({ verb: 'ra.assist_unlock', fromId: NINA.id, conversationId: RA_CHANNEL.id, replyToId: patCardId, data: { caseRef: patCase, step: '2' } });
    const card = answerCard(r);
    expect(cardText(card)).toContain('Only RA team members can act on RA cases. Nothing was changed, and your click was recorded.');
    expect(cardText(card)).not.toContain('Start an RA-assisted unlock');
    expect(sql<{ version: number }>(`SELECT version FROM journeys WHERE key = ?`, `${patCase}:ra-case`)[0]!.version).toBe(version);
    const audit = sql<{ details: string }>(`SELECT details FROM audit WHERE action = 'ra_case.assist_unlock' AND actor = ?`, `teams:${NINA.aadObjectId}`);
    expect(audit.map((a) => JSON.parse(a.details) as unknown)).toEqual([expect.objectContaining({ caseRef: patCase, outcome: 'refused', reason: 'not_member' })]);
    await screenshotCard(raUi, card, 'e2e-ra-desk-3-non-member-refused.png', `What ${NINA.name} (not in the RA team) sees after clicking "Start an RA-assisted unlock"`);
  });

  it('the owner starts an RA-assisted unlock; Pat skips the questions, finishes at the companion, and the card reads back unlocked', async () => {
    onTestFailed(async () => {
      await raUi.screenshot('at-failure-4').catch(() => undefined);
      await pat.ui.screenshot('at-failure-4').catch(() => undefined);
    });
    expect(owner, 'the claim test did not finish').toBeDefined();
    const linesBefore = pat.companion.lineCount();
    const mailsBefore = (await e2e.bot.outbox()).length;
    if (owner === RITA) {
      await raUi.clickAction('Start an RA-assisted unlock', await raUi.waitForCardWithText(patCase!, E2E_WAIT_MS));
    } else {
      answerCard(await omarClicks('ra.assist_unlock'));
    }
    await shotCard(await raUi.waitForCardWithText('Claimed: RA-assisted unlock started', E2E_WAIT_MS), 'ra-card-4-assisted-unlock-started');
    await pat.ui.waitForBotText(`Your RA team has started an assisted unlock for you (case ${patCase})`, E2E_WAIT_MS);
    // No questions: the code is emailed to Pat and the companion asks for it.
    const mail = await waitForMail(e2e.bot, (m) => m.kind === 'unlock_code' && (m.headers['to'] ?? '').includes(PAT.email));
    expect((await e2e.bot.outbox()).length).toBeGreaterThan(mailsBefore);
    const code = unlockCodeFrom(mail);
    expect(sql(`SELECT id FROM audit WHERE person_id = ? AND action = 'unlock.answers_failed'`, patId.value)).toHaveLength(3);
    await pat.companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    const tab = await pat.openPageTab();
    await expect.poll(() => tab.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
    await tab.getByLabel('Unlock code').fill(code);
    await tab.getByLabel('New passcode', { exact: true }).fill(PAT.newPasscode);
    await tab.getByLabel('Confirm new passcode').fill(PAT.newPasscode);
    await tab.getByRole('button', { name: 'Unlock my card' }).click();
    await tab.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: E2E_WAIT_MS });
    await tab.screenshot({ path: artifactPath('screenshots', 'e2e-ra-desk-4-pat-companion-unlocked.png'), fullPage: true });
    await pat.ui.page.bringToFront();
    await pat.ui.waitForCardWithText('Your smartcard is unlocked', E2E_WAIT_MS);
    await pat.ui.screenshot('4-pat-teams-unlocked');
    // Read back over PC/SC: the new passcode works, the old one does not, the PUK was rotated.
    expect(await pat.card.verifies(PAT.pin)).toBe(false);
    expect(await pat.card.verifies(PAT.newPasscode)).toBe(true);
    expect(pat.card.card.pinBlocked).toBe(false);
    expect(pat.card.seen.newPuks).toHaveLength(1);
    expect(await pat.card.holdsPuk(pat.card.seen.newPuks[0]!)).toBe(true);

    // The owner closes the case; Pat hears it with what to do next.
    if (owner === RITA) {
      const card = await raUi.waitForCardWithText(patCase!, E2E_WAIT_MS);
      await chooseInCombobox(raUi, card, 'Outcome (for Close)', 'RA-assisted unlock');
      await raUi.clickAction('Close', card);
    } else {
      answerCard(await omarClicks('ra.close', { outcome: 'assisted_unlock' }));
    }
    const closed = await raUi.waitForCardWithText('Outcome: RA-assisted unlock.', E2E_WAIT_MS);
    // What the person did now includes the assisted unlock: the code sent without questions, the card unlocked.
    await expect.poll(() => closed.textContent(), { timeout: E2E_WAIT_MS }).toMatch(/Attempts used: 0\. Codes sent: 1\.[\s\S]*Security questions skipped; unlock code sent[\s\S]*Card unlocked/);
    await raUi.screenshot('4-case-closed');
    await shotCard(closed, 'ra-card-4-case-closed');
    await pat.ui.waitForBotText(`Your case ${patCase} is closed (RA-assisted unlock)`, E2E_WAIT_MS);
  });

  it('a helpdesk member opens a case for someone else with the form: she sees the case reference, and the person is told', async () => {
    const pg = await startPlayground({ botUrl: e2e.bot.messagesUrl, name: 'e2e-ra-desk-playground-help', currentUser: HANA });
    const ui = await openPlayground(pg.url, { name: 'e2e-ra-desk-help', timeoutMs: E2E_WAIT_MS, waitForText: 'I am Smartcard Assist' });
    try {
      onTestFailed(async () => {
        await ui.screenshot('at-failure-5').catch(() => undefined);
      });
      await ui.sendChat('open case');
      const form = await ui.waitForCardWithText('Open an RA case for someone', E2E_WAIT_MS);
      // An address nobody registered: the form says so, nothing opens.
      const before = sql<{ n: number }>(`SELECT count(*) AS n FROM cases`)[0]!.n;
      await ui.fillInput("Person's registered email", 'nobody.here@nhs.net', form);
      await ui.fillInput('Reason (the RA team sees it)', 'Locked out, identity checked by phone', form);
      await ui.clickAction('Open RA case', form);
      const again = await ui.waitForCardWithText('No one is registered with Smartcard Assist as nobody.here@nhs.net', E2E_WAIT_MS);
      expect(sql<{ n: number }>(`SELECT count(*) AS n FROM cases`)[0]!.n).toBe(before);
      await ui.fillInput("Person's registered email", PAT.email, again);
      await ui.clickAction('Open RA case', again);
      const opened = await ui.waitForCardWithText('RA case opened', E2E_WAIT_MS);
      const ref = /RA-[0-9A-Z]{6}/.exec((await opened.textContent()) ?? '')?.[0];
      expect(ref).toBeDefined();
      expect(ref).not.toBe(patCase);
      expect(await opened.textContent()).toContain('the person has been told in their Teams chat');
      await ui.screenshot('5-helpdesk-case-reference');
      await shotCard(opened, 'help-card-5-case-reference');
      expect(sql<{ person_id: string; reason: string }>(`SELECT person_id, reason FROM cases WHERE ref = ?`, ref)).toEqual([{ person_id: patId.value, reason: 'helpdesk' }]);
      // Pat is told in their chat; the RA channel has the card with Hana's reason.
      await pat.ui.waitForBotText(`${HANA.name} from the IT helpdesk has asked your RA team to help you with your smartcard: your case is ${ref}`, E2E_WAIT_MS);
      await pat.ui.screenshot('5-person-told');
      const card = await raUi.waitForCardWithText(ref!, E2E_WAIT_MS);
      expect(await card.textContent()).toContain('Locked out, identity checked by phone');
      expect(await card.textContent()).toContain('opened by the helpdesk');
    } finally {
      await ui.close();
      await pg.stop();
    }
  });

  it('"talk to RA" mid-unlock pauses the run; the assisted unlock resumes it without questions and Quinn finishes at the companion', async () => {
    quinn = await e2e.addSeat({
      suffix: '-quinn',
      card: { cardId: QUINN.cardId, pin: QUINN.pin, puk: QUINN.puk, blocked: true },
      reader: VPCD_READER_2,
      workstation: 'WS-QUINN-02',
      teams: { user: { id: QUINN.teamsUserId, name: QUINN.displayName }, client: 'chromium' },
    });
    const ui = quinn.ui;
    onTestFailed(async () => {
      await ui.screenshot('at-failure-6').catch(() => undefined);
      await raUi.screenshot('at-failure-6').catch(() => undefined);
    });
    await quinn.pair();
    await ui.sendChat('unlock');
    await ui.waitForCardWithText('Answer your security questions', E2E_WAIT_MS);
    const unlockRow = () => sql<{ run_id: string; state: string }>(`SELECT run_id, state FROM journeys WHERE key = ?`, `${quinnId.value}:unlock`)[0]!;
    const runBefore = unlockRow().run_id;
    expect((JSON.parse(unlockRow().state) as { phase: string }).phase).toBe('answering');

    await ui.sendChat('talk to RA');
    const asked = await ui.waitForBotText(/I have asked your RA team to help: your case is RA-[0-9A-Z]{6}/, E2E_WAIT_MS);
    const ref = /RA-[0-9A-Z]{6}/.exec((await asked.textContent()) ?? '')![0];
    // Paused, not lost: same run, kept where it stood.
    await expect.poll(() => (JSON.parse(unlockRow().state) as { phase: string }).phase, { timeout: E2E_WAIT_MS }).toBe('paused');
    expect(unlockRow().run_id).toBe(runBefore);
    expect((JSON.parse(unlockRow().state) as { from: { phase: string } }).from.phase).toBe('answering');
    // Told once: the answer to "talk to RA" carries the reference; no second message says it again.
    await ui.page.waitForTimeout(1000);
    expect(await ui.page.locator('.fai-OutputCard', { hasText: 'is with your RA team' }).count()).toBe(0);
    await ui.screenshot('6-quinn-paused');

    // Rita claims and starts the assisted unlock from the case card in the channel.
    let card = await raUi.waitForCardWithText(ref, E2E_WAIT_MS);
    expect(await card.textContent()).toContain('the person asked to talk to RA');
    await raUi.clickAction('Claim', card);
    card = await raUi.waitForCardWithText(new RegExp(`${ref}[\\s\\S]*Claimed by ${RITA.name}`), E2E_WAIT_MS);
    const linesBefore = quinn.companion.lineCount();
    await raUi.clickAction('Start an RA-assisted unlock', card);
    const assisted = await raUi.waitForCardWithText(new RegExp(`${ref}[\\s\\S]*Claimed: RA-assisted unlock started`), E2E_WAIT_MS);
    await raUi.screenshot('6-assisted-unlock-started');
    await shotCard(assisted, 'ra-card-6-assisted-unlock-started');

    // The same run resumes without questions: the code is emailed, the companion asks for it.
    const mail = await waitForMail(e2e.bot, (m) => m.kind === 'unlock_code' && (m.headers['to'] ?? '').includes(QUINN.email));
    expect(unlockRow().run_id).toBe(runBefore);
    expect(sql(`SELECT id FROM audit WHERE person_id = ? AND action IN ('unlock.answers_failed', 'unlock.answers_passed')`, quinnId.value)).toEqual([]);
    await quinn.companion.waitForLineAfter(/^UNLOCK: type your unlock code/, linesBefore);
    const tab = await quinn.openPageTab();
    await expect.poll(() => tab.locator('body').getAttribute('data-state'), { timeout: E2E_WAIT_MS }).toBe('awaiting_unlock');
    await tab.getByLabel('Unlock code').fill(unlockCodeFrom(mail));
    await tab.getByLabel('New passcode', { exact: true }).fill(QUINN.newPasscode);
    await tab.getByLabel('Confirm new passcode').fill(QUINN.newPasscode);
    await tab.getByRole('button', { name: 'Unlock my card' }).click();
    await tab.getByRole('heading', { name: 'Your card is unlocked' }).waitFor({ timeout: E2E_WAIT_MS });
    await tab.screenshot({ path: artifactPath('screenshots', 'e2e-ra-desk-6-quinn-companion-unlocked.png'), fullPage: true });
    await ui.page.bringToFront();
    await ui.waitForCardWithText('Your smartcard is unlocked', E2E_WAIT_MS);
    await ui.screenshot('6-quinn-teams-unlocked');
    expect(await quinn.card.verifies(QUINN.pin)).toBe(false);
    expect(await quinn.card.verifies(QUINN.newPasscode)).toBe(true);
    expect(quinn.card.card.pinBlocked).toBe(false);
  });

  it('leaves no passcode, PUK, unlock code or answer in what went to Teams, the logs, the outbox (but a code in its own email) or the data directories', async () => {
    expect(quinn, 'the talk-to-RA test did not start').toBeDefined();
    const codeMails = new Map<string, string>();
    for (const m of await e2e.bot.outbox()) if (m.kind === 'unlock_code') codeMails.set(m.file, unlockCodeFrom(m));
    expect(codeMails.size).toBe(2);
    const secrets: TestSecret[] = [
      ...[PAT, QUINN].flatMap((p) => [
        { label: `${p.displayName} old passcode`, value: p.pin, kind: 'digits' as const },
        { label: `${p.displayName} new passcode`, value: p.newPasscode, kind: 'digits' as const },
        { label: `${p.displayName} enrolled PUK`, value: p.puk, kind: 'digits' as const },
        ...p.answers.map((a) => ({ label: `${p.displayName} answer ${a.questionId}`, value: a.answer, kind: 'answer' as const })),
      ]),
      ...[pat, quinn!].flatMap((seat, i) => seat.card.seen.newPuks.map((v) => ({ label: `seat ${i + 1} rotated PUK`, value: v, kind: 'digits' as const }))),
      ...[...codeMails.values()].map((v, i) => ({ label: `unlock code ${i + 1}`, value: v, kind: 'digits' as const })),
      ...WRONG.map((w, i) => ({ label: `Pat wrong answer ${i + 1}`, value: w, kind: 'answer' as const })),
    ];
    const companions = [pat.companion, quinn!.companion];
    const own = await companionSecrets(companions);
    secrets.push(...own.secrets);
    const allow = anyAllow(codeInOwnEmail(codeMails), own.allow);
    // What the bot sent to Teams: every bot message and card update on the three Playgrounds' streams.
    const toTeams = [raPg, pat.pg, quinn!.pg].flatMap((pg) => pg.messages().map((m) => m.raw));
    expect(toTeams.length).toBeGreaterThan(10);
    const teamsFindings = findSecrets([{ where: 'bot messages to Teams', bytes: Buffer.from(JSON.stringify(toTeams)) }], secrets);
    expect(teamsFindings, describeFindings(teamsFindings)).toEqual([]);
    // The search finds what is there: each code in its own email.
    const product = await productSources({ bot: e2e.bot, companions });
    expect(findSecrets(product, secrets.filter((x) => x.label.startsWith('unlock code'))).length).toBeGreaterThanOrEqual(2);
    const findings = findSecrets(product, secrets, allow);
    expect(findings, describeFindings(findings)).toEqual([]);
  });
});
