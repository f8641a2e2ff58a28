/**
 * Adversarial: a companion that lies about the card. The bot learns "verified"
 * and a card id from the companion (issue #3) and, at unlock, the card id and
 * retry counter from `card.read_status`. A card id (CHUID GUID) is not a secret:
 * anyone holding the card reads it without the passcode. So a person with a
 * Teams account and a companion they control (any staff member, e.g. one who
 * found or took a colleague's card) can register an enrolled card that nobody
 * has registered yet, then unlock it and receive its PUK.
 *
 * The real bot process; the card's PUK imported with the admin command (as the
 * card-management system would); the attacker's companion is a raw companion.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUESTION_BANK } from '../../bot/journeys/registration/question-bank';
import { removeTestDirs, runAdmin, startBotStack, type BotStack } from '../support/e2e-stack';
import { cardText, eventually, executeActions, invokeCard, pairDevice, randomDigits8, RawCompanion, RecordingConnector, TeamsClient, teamsUser, unlockCodeOf } from './adversarial-harness';

describe('adversarial: a companion that claims a card it does not hold', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let attacker: RawCompanion;

  beforeAll(async () => {
    bot = await startBotStack('adv-card-claim', { COMPANION_COMMAND_TIMEOUT_MS: '3000' });
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    attacker?.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it("never hands the PUK of someone else's enrolled card to a companion that only claimed to hold it", async () => {
    const victimCard = randomBytes(16).toString('hex');
    const victimPuk = randomDigits8();
    const imported = await runAdmin(bot, ['import-puks', '--file', '-'], `card_id,puk\n${victimCard},${victimPuk}\n`);
    expect(imported.code, imported.stderr).toBe(0);

    const mallory = teamsUser('Mallory Claimer');
    const dev = await pairDevice(bot, teams, mallory, 'WS-MALLORY');
    attacker = await RawCompanion.connect(bot, `Bearer ${dev.credential}`);
    attacker.cardStatus = { present: true, reader: 'R', cardId: victimCard, pinRetries: 3 };

    // Register: contact details, then the companion "verifies the passcode" of a card it only names.
    let card = invokeCard(await teams.invoke(mallory, 'register.start', {}));
    let act = executeActions(card).find((a) => a.verb === 'register.contact')!;
    card = invokeCard(await teams.invoke(mallory, 'register.contact', { ...act.data, email: 'mallory.claimer@nhs.net', mobile: '07700 900123' }));
    const prompt = await attacker.waitFor((f) => f.type === 'command' && (f['command'] as { kind: string }).kind === 'register.prompt_passcode');
    const regJourney = (prompt['command'] as { journeyId: string }).journeyId;
    const claimed = await attacker.request({ kind: 'register.passcode_checked', journeyId: regJourney, result: { outcome: 'verified', cardId: victimCard } });
    expect(claimed).toEqual({ kind: 'ok' });

    const answers: Record<string, string> = { q01: 'alpha tango one', q02: 'bravo tango two', q03: 'charlie tango three', q04: 'delta tango four' };
    card = invokeCard(await teams.invoke(mallory, 'journey.show', { journey: 'registration' }));
    act = executeActions(card).find((a) => a.verb === 'register.questions')!;
    expect(act, cardText(card)).toBeDefined();
    card = invokeCard(await teams.invoke(mallory, 'register.questions', { ...act.data, q1: 'q01', q2: 'q02', q3: 'q03', q4: 'q04', a1: answers['q01'], a2: answers['q02'], a3: answers['q03'], a4: answers['q04'] }));
    act = executeActions(card).find((a) => a.verb === 'register.send_code')!;
    const before = new Set((await bot.outbox()).map((m) => m.name));
    card = invokeCard(await teams.invoke(mallory, 'register.send_code', { ...act.data }));
    const regMail = await eventually(() => bot.outbox(), (m) => m.kind === 'registration_code' && !before.has(m.name));
    const regCode = /^\s*(\d{8})\s*$/m.exec(regMail.text)![1]!;
    act = executeActions(card).find((a) => a.verb === 'register.code')!;
    const registered = cardText(invokeCard(await teams.invoke(mallory, 'register.code', { ...act.data, code: regCode })));

    // Unlock "their" card: the companion now says it is blocked.
    attacker.cardStatus = { present: true, reader: 'R', cardId: victimCard, pinRetries: 0 };
    card = invokeCard(await teams.invoke(mallory, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
    let released = false;
    if (ans) {
      const labels: string[] = [];
      JSON.stringify(card, (_k, v: unknown) => {
        const o = v as { type?: string; id?: string; label?: string } | null;
        if (o && o.type === 'Input.Text' && /^a[123]$/.test(o.id ?? '')) labels.push(o.label ?? '');
        return v;
      });
      const typed = Object.fromEntries(labels.map((l, i) => [`a${i + 1}`, answers[QUESTION_BANK.find((q) => l.includes(q.text))!.id]]));
      const before2 = new Set((await bot.outbox()).map((m) => m.name));
      await teams.invoke(mallory, 'unlock.answers', { ...ans.data, ...typed });
      const mail = await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && !before2.has(m.name));
      const auth = await attacker.request({ kind: 'unlock.submit_code', journeyId: ans.data['runId'], cardId: victimCard, code: unlockCodeOf(mail) });
      // Protocol 2: the pair would come as the unlock.authorised command after an accepted code.
      if (auth['kind'] === 'unlock.accepted') await attacker.release(String(ans.data['runId']), 1, 3000).catch(() => null);
      released = attacker.commands('unlock.authorised').some((c) => c['puk'] === victimPuk || c['newPuk'] !== undefined);
    }
    expect(released, `registration said: ${registered.split('\n')[0]}; the card's PUK was handed to a companion that never proved it holds the card`).toBe(false);
  });
});
