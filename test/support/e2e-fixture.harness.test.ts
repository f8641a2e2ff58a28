/**
 * The shared end-to-end fixture itself (`e2e-fixture.ts`), on the option no end-to-end file uses yet: a seat whose
 * card lives in the companion's in-process reader (`COMPANION_READER=virtual`, no pcscd). The bot must read that
 * card through the companion (a blocked card of a registered person gets the questions card, an unknown card does
 * not), and one `stop()` must end every process the fixture started and delete the data directories.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2E_WAIT_MS, e2eGate, randomCardId, randomPasscode, randomWord, seedPerson, startE2eStack, type E2eSeat, type E2eStack } from './e2e-fixture';
import { messageText } from './playground';

const gate = await e2eGate({ pcsc: false });

const CARD_ID = randomCardId();
const PIN = randomPasscode();
const PUK = randomPasscode([PIN]);
const w = randomWord();

describe.skipIf(gate.skip)('the e2e fixture with an in-process card (bot + companion on its in-process reader + Playground API, no pcscd)', () => {
  let e2e: E2eStack;
  let seat: E2eSeat;

  beforeAll(async () => {
    e2e = await startE2eStack({ name: 'e2e-fixture-harness', pcsc: false, mail: 'outbox' });
    await seedPerson(e2e.bot, {
      teamsUserId: 'user-id-0',
      displayName: 'Ivy Inprocess',
      email: 'ivy.inprocess@nhs.net',
      cardId: CARD_ID,
      puk: PUK,
      answers: [
        { questionId: 'q01', answer: `Aldermoor ${w}` },
        { questionId: 'q04', answer: `Pennywhistle ${w}` },
        { questionId: 'q07', answer: `Castlebrook ${w}` },
        { questionId: 'q11', answer: `Juniper Row ${w}` },
      ],
    });
    seat = await e2e.addSeat({ card: { cardId: CARD_ID, pin: PIN, puk: PUK, blocked: true }, reader: 'in-process', workstation: 'WS-E2E-INPROC', teams: { user: { id: 'user-id-0', name: 'Alex Wilber' } } });
  });

  afterAll(() => e2e?.stop());

  it('has no PC/SC: the stack and the seat say so instead of reading another card', () => {
    expect(() => e2e.pcsc).toThrow(/pcsc: false/);
    expect(() => seat.card).toThrow(/in-process reader/);
    expect(() => seat.ui).toThrow(/not Chromium/);
    expect(() => seat.page).toThrow(/openPage/);
  });

  it('pairs, opens the passcode page, and the bot reads the blocked card in the companion\'s in-process reader', async () => {
    expect(await seat.pair()).toContain('WS-E2E-INPROC');
    await seat.openPage();
    expect(await seat.pageState()).toBe('idle');
    await seat.pg.sendMessage('unlock');
    const answer = await seat.pg.waitForBotText(/Answer your security questions|No card in the reader|not your registered card|not locked|not connected/, { timeoutMs: E2E_WAIT_MS });
    expect(messageText(answer)).toContain('Answer your security questions');
    await seat.pg.sendMessage('cancel');
    await seat.pg.waitForBotText('Cancelled. Say "unlock" to start again.', { timeoutMs: E2E_WAIT_MS });
  });

  it('one stop() ends the Playground, the companion and the bot, and deletes their data directories', async () => {
    const processes = [seat.pg.process, seat.companion.process, e2e.bot.process];
    const dirs = [e2e.bot.dataDir, seat.companion.dataDir];
    expect(processes.every((p) => !p.hasExited())).toBe(true);
    expect(dirs.every((d) => existsSync(d))).toBe(true);
    await e2e.stop();
    expect(processes.map((p) => p.hasExited())).toEqual([true, true, true]);
    if (process.env['KEEP_E2E_DATA'] !== '1') expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });
});
