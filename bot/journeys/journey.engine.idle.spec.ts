import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { makePerson } from '../../storage/storage.fixtures';
import { harness, type Harness } from './journey.spec-support';
import { journeyKey } from './journey.key';
import { newUnlockJourney, type PersonFacts } from './unlock/unlock.journey';
import { encodeUnlock } from './unlock/unlock.state';

const DEVICE = '11111111-1111-4111-8111-111111111111';
let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** A stored person whose unlock run waits in `answering` on DEVICE (a start then closes it on the companion). */
async function answering(hx: Harness): Promise<{ personId: string; facts: PersonFacts }> {
  const person = makePerson();
  await hx.storage.persons.insert(person);
  const j = newUnlockJourney(person.id, randomUUID());
  const at = hx.now.value.toISOString();
  await hx.storage.journeys.insert({
    key: journeyKey(person.id, 'unlock'),
    personId: person.id,
    kind: 'unlock',
    runId: j.runId,
    ...encodeUnlock({ ...j, state: { phase: 'answering', step: 3, deviceId: DEVICE, cardId: person.cardId!, questionIds: ['q01', 'q05', 'q09'], lastResult: null } }),
    pendingEffects: [],
    ui: { activityId: null },
    createdAt: at,
    updatedAt: at,
    version: 1,
  });
  return { personId: person.id, facts: { personId: person.id, registered: true, boundCardId: person.cardId, questionIds: person.answers.map((a) => a.questionId), storedLock: null } };
}

/** Whether `p` has settled after the event loop had a chance to run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 30));
  return done;
}

describe('JourneyEngine.idle (graceful shutdown waits for it)', () => {
  it('resolves at once when nothing runs', async () => {
    h = harness();
    expect(await settled(h.engine.idle())).toBe(true);
  });

  it('waits for a step whose effect (a companion command) is still being carried out, then the effect is done and removed', async () => {
    h = harness();
    const { personId, facts } = await answering(h);
    let release!: () => void;
    h.link.reply = () => new Promise((resolve) => (release = () => resolve({ kind: 'ack' })));
    const step = h.engine.run(h.engine.definitions.unlock, personId, async () => ({ type: 'start' as const, person: facts, deviceId: DEVICE }));
    await expect.poll(() => h!.commands.length).toBe(1);
    const idle = h.engine.idle();
    expect(await settled(idle)).toBe(false);
    release();
    await idle;
    expect(await settled(step)).toBe(true);
    expect((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!.pendingEffects).toEqual([]);
  });

  it('waits for effects deferred past the caller\'s turn, counted from the moment the step is stored', async () => {
    h = harness();
    const { personId, facts } = await answering(h);
    let release!: () => void;
    h.link.reply = () => new Promise((resolve) => (release = () => resolve({ kind: 'ack' })));
    const { record } = await h.engine.run(h.engine.definitions.unlock, personId, async () => ({ type: 'start' as const, person: facts, deviceId: DEVICE }), { deferEffects: true });
    // The effects have not started yet (setImmediate), and idle() already waits for them.
    expect(record.pendingEffects.some((e) => e.type === 'companion.command')).toBe(true);
    const idle = h.engine.idle();
    expect(await settled(idle)).toBe(false);
    expect(h.commands).toHaveLength(1);
    release();
    await idle;
    expect((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!.pendingEffects).toEqual([]);
  });
});
