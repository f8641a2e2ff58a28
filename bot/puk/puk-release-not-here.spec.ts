/**
 * A `puk.release` pending on the unlock journey when a process that reaches no
 * companion (the admin CLI's `reset-self-service`) drains that journey (breaker
 * finding F-D): the release stays pending, uncounted, for the bot; nothing is
 * unsealed, no rotation PUK is written and nothing is audited as undelivered.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { createLogger } from '../../common/logger';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import { makeDevice, makePerson } from '../../storage/storage.fixtures';
import type { Storage } from '../../storage/storage.port';
import { adminResetSelfService } from '../admin.cli';
import { EFFECT_NOT_HERE } from '../journeys/journey.engine';
import { harness, type Harness } from '../journeys/journey.spec-support';
import { journeyKey } from '../journeys/journey.key';
import { newUnlockJourney, type UnlockJourney } from '../journeys/unlock/unlock.journey';
import { encodeUnlock } from '../journeys/unlock/unlock.state';
import { deriveKeys, generateMasterKey, parseMasterKey } from '../security/keys';
import { sealPuk } from './puk.custody';
import type { PukReleaseEffect } from './puk.effects';

let store: Storage | null = null;
let h: Harness | null = null;
afterEach(async () => {
  await store?.close();
  await h?.close();
  store = null;
  h = null;
});

it('the admin reset leaves a pending PUK release to the bot: no unseal, no rotation PUK, no undelivered audit, attempts not counted', async () => {
  store = openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'puk-not-here-')), 's.sqlite') });
  const keys = deriveKeys(parseMasterKey(generateMasterKey()));
  const person = makePerson();
  const cardId = person.cardId!;
  await store.persons.insert(person);
  const device = makeDevice({ personId: person.id });
  await store.devices.insert(device);
  await store.cards.insert({ cardId, personId: person.id, puk: sealPuk(keys.sealKey, '73920184', cardId), pendingPuk: null, updatedAt: new Date().toISOString(), version: 1 });
  const runId = randomUUID();
  const journey: UnlockJourney = { ...newUnlockJourney(person.id, runId), state: { phase: 'unblocking', step: 7, deviceId: device.id, cardId, authorisedAt: new Date().toISOString(), interrupted: false, linkSession: null, codeHash: null, codeWrongTries: 0 } };
  const release: PukReleaseEffect = { type: 'puk.release', id: randomUUID(), personId: person.id, deviceId: device.id, cardId, runId };
  const at = new Date().toISOString();
  await store.journeys.insert({
    key: journeyKey(person.id, 'unlock'),
    personId: person.id,
    kind: 'unlock',
    runId,
    ...encodeUnlock(journey),
    pendingEffects: [{ id: release.id, type: release.type, payload: release, attempts: 0 }],
    ui: { activityId: null },
    createdAt: at,
    updatedAt: at,
    version: 1,
  });
  const cardBefore = await store.cards.get(cardId);

  await adminResetSelfService(store, keys, createLogger({ name: 'spec', level: 'silent' }), person.id, 'spec');

  const rec = (await store.journeys.get(journeyKey(person.id, 'unlock')))!;
  expect(rec.pendingEffects.filter((e) => e.type === 'puk.release').map((e) => [e.id, e.attempts])).toEqual([[release.id, 0]]);
  expect(await store.cards.get(cardId)).toEqual(cardBefore);
  const actions = (await store.audit.list({ personId: person.id, limit: 20 })).map((a) => a.action);
  expect(actions).toContain('unlock.self_service_reset');
  expect(actions.filter((a) => a.startsWith('puk.'))).toEqual([]);
});

/** A harness whose unlock journey is unblocking with one pending `puk.release`. */
async function unblockingWithRelease(hx: Harness): Promise<{ personId: string; deviceId: string; releaseId: string }> {
  const h = hx;
  const person = makePerson();
  const cardId = person.cardId!;
  await h.storage.persons.insert(person);
  const device = makeDevice({ personId: person.id });
  await h.storage.devices.insert(device);
  await h.storage.cards.insert({ cardId, personId: person.id, puk: sealPuk(h.keys.sealKey, '73920184', cardId), pendingPuk: null, updatedAt: new Date().toISOString(), version: 1 });
  const runId = randomUUID();
  const journey: UnlockJourney = { ...newUnlockJourney(person.id, runId), state: { phase: 'unblocking', step: 7, deviceId: device.id, cardId, authorisedAt: h.now.value.toISOString(), interrupted: false, linkSession: null, codeHash: null, codeWrongTries: 0 } };
  const release: PukReleaseEffect = { type: 'puk.release', id: randomUUID(), personId: person.id, deviceId: device.id, cardId, runId };
  const at = h.now.value.toISOString();
  await h.storage.journeys.insert({ key: journeyKey(person.id, 'unlock'), personId: person.id, kind: 'unlock', runId, ...encodeUnlock(journey), pendingEffects: [{ id: release.id, type: release.type, payload: release, attempts: 0 }], ui: { activityId: null }, createdAt: at, updatedAt: at, version: 1 });
  return { personId: person.id, deviceId: device.id, releaseId: release.id };
}

it('the bot still delivers a PUK release (the flag only stops processes without a companion link)', async () => {
  h = harness();
  const { personId, deviceId } = await unblockingWithRelease(h);
  await h.engine.drain(personId, 'unlock');
  expect(h.commands.map((c) => [c.deviceId, c.command.kind])).toEqual([[deviceId, 'unlock.authorised']]);
  expect((await h.storage.audit.list({ personId, limit: 10 })).map((a) => a.action)).toEqual(['puk.released']);
});

it('a link that throws EFFECT.NOT_HERE leaves the release pending and uncounted (not audited as undelivered)', async () => {
  h = harness();
  const { personId, releaseId } = await unblockingWithRelease(h);
  h.link.reply = async () => {
    throw new AppError(EFFECT_NOT_HERE, 'no companion link in this process');
  };
  await h.engine.drain(personId, 'unlock');
  expect((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!.pendingEffects.map((e) => [e.id, e.attempts])).toEqual([[releaseId, 0]]);
  expect((await h.storage.audit.list({ personId, limit: 10 })).map((a) => a.action)).toEqual([]);
});
