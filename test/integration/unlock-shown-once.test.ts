/**
 * Issue #14, "the success is shown twice": at the end of an unlock Teams gets the
 * person's card updated in place to "Your smartcard is unlocked" and nothing else
 * (no separate message repeating it). The real bot process, a recording Bot
 * Connector, and a raw companion playing the companion's frames; what the
 * connector received after the companion reported the unblock is counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import {
  activityText,
  answersFor,
  cardText,
  eventually,
  executeActions,
  invokeCard,
  pairDevice,
  RawCompanion,
  RecordingConnector,
  seedPerson,
  sleep,
  TeamsClient,
  unlockCodeOf,
} from './adversarial-harness';

describe('the end of an unlock in Teams', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  const raws: RawCompanion[] = [];

  /** The connector's id for a POSTed activity: `act-N`, N counting the connector's answers that minted an id. */
  const lastPostedId = async (call: { path: string }): Promise<string> => {
    const minted = conn.calls.filter((c) => !(c.method === 'PUT' && c.activityId));
    return `act-${minted.findIndex((c) => c === call) + 1}`;
  };

  beforeAll(async () => {
    bot = await startBotStack('unlock-shown-once');
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
  });

  afterAll(async () => {
    for (const r of raws) r.close();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir);
  });

  it('shows the success once: the card updated in place, no separate message', async () => {
    const person = await seedPerson(bot, 'Una Once');
    const dev = await pairDevice(bot, teams, person.user, 'WS-ONCE');
    const companion = await RawCompanion.connect(bot, `Bearer ${dev.credential}`);
    raws.push(companion);
    companion.cardStatus = { present: true, reader: 'R', cardId: person.cardId, pinRetries: 0 };

    // "unlock" in the chat: the bot posts the questions card (its activity id is what gets updated).
    await teams.message(person.user, 'unlock');
    const posted = await eventually(
      async () => conn.calls.filter((c) => c.conversationId === person.user.conversationId && c.method === 'POST'),
      (c) => activityText(c.body).includes('Answer your security questions'),
    );
    const questions = (posted.body['attachments'] as Array<{ content: unknown }>)[0]!.content;
    const answer = executeActions(questions).find((a) => a.verb === 'unlock.answers');
    expect(answer, cardText(questions)).toBeDefined();
    const journeyId = answer!.data['runId'] as string;

    const before = new Set((await bot.outbox()).map((m) => m.name));
    const codeCard = invokeCard(await teams.invoke(person.user, 'unlock.answers', { ...answer!.data, ...(await answersFor(questions, person)) }, (await lastPostedId(posted))));
    expect(cardText(codeCard)).toContain('Check your email');
    const code = unlockCodeOf(await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && !before.has(m.name)));
    expect(await companion.request({ kind: 'unlock.submit_code', journeyId, cardId: person.cardId, code })).toEqual({ kind: 'unlock.accepted', journeyId });
    await companion.release(journeyId);
    await sleep(500); // let the "code accepted" refresh land before counting

    const cardId = conn.calls.find((c) => c.method === 'PUT' && c.conversationId === person.user.conversationId)?.activityId;
    expect(cardId, 'the bot updated its card in place before').toBeTruthy();
    const mark = conn.calls.length;
    expect(await companion.request({ kind: 'unlock.result', journeyId, cardId: person.cardId, outcome: 'unblocked', pukOnCard: 'new' })).toEqual({ kind: 'ok' });
    await expect.poll(() => conn.calls.slice(mark).some((c) => activityText(c.body).includes('Your smartcard is unlocked')), { timeout: 10_000 }).toBe(true);
    await sleep(1500); // anything sent after the card would arrive now
    const after = conn.calls.slice(mark).filter((c) => c.conversationId === person.user.conversationId);
    const seen = after.map((c) => `${c.method} ${c.activityId ?? '-'}: ${activityText(c.body).split('\n')[0]}`);
    expect(seen, seen.join('\n')).toHaveLength(1);
    expect(after[0]!.method).toBe('PUT');
    // In place: the activity the questions card was posted as (the bot updated it before, too).
    expect(after[0]!.activityId).toBe(cardId);
    expect(activityText(after[0]!.body)).toContain('Your smartcard is unlocked');
    expect(after.some((c) => typeof c.body['text'] === 'string')).toBe(false);
  });
});
