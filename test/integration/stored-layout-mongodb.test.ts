/**
 * Databases written by the first release of the MongoDB adapter (hand-written
 * document mappers) read back unchanged through the derived document codecs,
 * and what this release writes keeps that layout, so an older instance still
 * reading the same database understands it (rolling upgrade).
 *
 * The layout is frozen here on purpose: heads `{ _id: key, k, r, ...fields }`
 * and revisions `{ _id: 'key#r', k, r, w, ...fields }` (the key field itself
 * only as `k`), open-shaped values (state, counters, pendingEffects, case
 * context, audit details, conversation reference) as JSON text, answers,
 * selfServiceLock and ui as sub-documents, `pendingCount` and `gcAfter` derived.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Document } from 'mongodb';
import { at, fakeSealed, makeAuditEntry, makeCard, makeCase, makeConversation, makeDevice, makeEffect, makeJourney, makePairing, makePerson } from '../../storage/storage.fixtures';
import type { CardRecord, Device, JourneyRecord, Pairing, Person, RaCase } from '../../storage/storage.port';
import { openMongoStorage } from '../../storage/mongodb/mongodb-storage.adapter';
import { MONGO_COLLECTION } from '../../storage/mongodb/mongodb.indexes';
import { mongoTestServer } from '../support/ferretdb';

const mongo = await mongoTestServer();

const DAY_MS = 24 * 60 * 60 * 1000;

/** Release-1 fields of each record type (without `_id`, `k`, `r`, `w`). */
const v1 = {
  persons: (p: Person): Document => ({
    teamsUserId: p.teamsUserId, displayName: p.displayName, email: p.email, mobile: p.mobile,
    answers: p.answers.map((a) => ({ questionId: a.questionId, salt: a.salt, hash: a.hash, params: { N: a.params.N, r: a.params.r, p: a.params.p } })),
    cardId: p.cardId, selfServiceLock: p.selfServiceLock === null ? null : { at: p.selfServiceLock.at, caseRef: p.selfServiceLock.caseRef, reason: p.selfServiceLock.reason },
    createdAt: p.createdAt, updatedAt: p.updatedAt, version: p.version,
  }),
  cards: (c: CardRecord): Document => ({ personId: c.personId, puk: c.puk, pendingPuk: c.pendingPuk, updatedAt: c.updatedAt, version: c.version }),
  journeys: (j: JourneyRecord): Document => ({
    personId: j.personId, kind: j.kind, runId: j.runId, state: JSON.stringify(j.state), counters: JSON.stringify(j.counters), pendingEffects: JSON.stringify(j.pendingEffects),
    pendingCount: j.pendingEffects.length, ui: { activityId: j.ui.activityId }, createdAt: j.createdAt, updatedAt: j.updatedAt, version: j.version,
  }),
  devices: (d: Device): Document => ({
    personId: d.personId, workstation: d.workstation, credentialHash: d.credentialHash, createdAt: d.createdAt, lastSeenAt: d.lastSeenAt, revokedAt: d.revokedAt,
    connectedInstance: d.connectedInstance, version: d.version,
  }),
  pairings: (p: Pairing): Document => ({
    deviceCodeHash: p.deviceCodeHash, userCodeHash: p.userCodeHash, workstation: p.workstation, status: p.status, personId: p.personId, deviceId: p.deviceId,
    createdAt: p.createdAt, expiresAt: p.expiresAt, lastPolledAt: p.lastPolledAt, version: p.version, gcAfter: new Date(Date.parse(p.expiresAt) + DAY_MS),
  }),
  cases: (c: RaCase): Document => ({
    personId: c.personId, reason: c.reason, status: c.status, context: JSON.stringify(c.context), sourceId: c.sourceId, createdAt: c.createdAt, updatedAt: c.updatedAt, version: c.version,
  }),
};

function sample() {
  const p = makePerson({ selfServiceLock: { at: at(5), caseRef: 'RA-7K2Q9D', reason: 'answers_failed' }, mobile: null });
  const c = makeCard({ personId: p.id, cardId: p.cardId!, pendingPuk: fakeSealed() });
  const j = makeJourney({ personId: p.id, pendingEffects: [makeEffect({ attempts: 2 })], counters: { failedAnswers: 2 }, ui: { activityId: 'act-1' }, state: null });
  const d = makeDevice({ personId: p.id, lastSeenAt: at(9), connectedInstance: 'bot-a' });
  const pr = makePairing({ status: 'approved', personId: p.id });
  const rc = makeCase({ personId: p.id });
  const e = makeAuditEntry({ personId: p.id });
  const conv = makeConversation({ personId: p.id });
  return { p, c, j, d, pr, rc, e, conv };
}

describe.skipIf(mongo.skip)('MongoDB storage: databases written by the first release', () => {
  if (mongo.skip) return;
  const server = mongo;
  afterAll(() => server.dropCreatedDatabases());

  it('reads release-1 heads, revisions, claims, audit and conversations unchanged, and writes the same layout', async () => {
    const client = await server.client();
    const database = server.freshDatabaseName('layout');
    const db = client.db(database);
    const r = sample();
    const records: [keyof typeof v1, string, Document][] = [
      ['persons', r.p.id, v1.persons(r.p)],
      ['cards', r.c.cardId, v1.cards(r.c)],
      ['journeys', r.j.key, v1.journeys(r.j)],
      ['devices', r.d.id, v1.devices(r.d)],
      ['pairings', r.pr.id, v1.pairings(r.pr)],
      ['cases', r.rc.ref, v1.cases(r.rc)],
    ];
    for (const [name, key, fields] of records) {
      await db.collection(`${name}_rev`).insertOne({ ...fields, _id: `${key}#0` as never, k: key, r: 0, w: new Date() });
      await db.collection(name).insertOne({ ...fields, _id: key as never, k: key, r: 0 });
    }
    const claims: [string, string][] = [
      [`persons.teamsUserId|${r.p.teamsUserId}`, r.p.id],
      [`persons.cardId|${r.p.cardId}`, r.p.id],
      [`pairings.deviceCodeHash|${r.pr.deviceCodeHash}`, r.pr.id],
      [`pairings.userCodeHash|${r.pr.userCodeHash}`, r.pr.id],
      [`cases.sourceId|${r.rc.sourceId}`, r.rc.ref],
    ];
    for (const [value, owner] of claims) await db.collection(MONGO_COLLECTION.claims).insertOne({ _id: `${value}#0` as never, owner, at: new Date(Date.now() - DAY_MS) });
    await db.collection(MONGO_COLLECTION.audit).insertOne({ _id: r.e.id as never, seq: new (await import('mongodb')).ObjectId(), at: r.e.at, actor: r.e.actor, action: r.e.action, personId: r.e.personId, details: JSON.stringify(r.e.details) });
    await db.collection(MONGO_COLLECTION.conversations).insertOne({ _id: r.conv.personId as never, reference: JSON.stringify(r.conv.reference), updatedAt: r.conv.updatedAt });
    await db.collection(MONGO_COLLECTION.meta).insertOne({ _id: 'schema' as never, version: 1, at: new Date() });

    const s = await openMongoStorage({ client, database, gcIntervalMs: 0 });
    expect(await s.persons.get(r.p.id)).toEqual(r.p);
    expect(await s.persons.findByTeamsUserId(r.p.teamsUserId)).toEqual(r.p);
    expect(await s.persons.findByCardId(r.p.cardId!)).toEqual(r.p);
    expect(await s.cards.get(r.c.cardId)).toEqual(r.c);
    expect(await s.journeys.get(r.j.key)).toEqual(r.j);
    expect(await s.journeys.listWithPendingEffects(10)).toEqual([r.j]);
    expect(await s.devices.listByPerson(r.p.id)).toEqual([r.d]);
    expect(await s.pairings.getByDeviceCodeHash(r.pr.deviceCodeHash)).toEqual(r.pr);
    expect(await s.pairings.getByUserCodeHash(r.pr.userCodeHash)).toEqual(r.pr);
    expect(await s.cases.listOpen(10)).toEqual([r.rc]);
    expect(await s.cases.listByPerson(r.p.id)).toEqual([r.rc]);
    expect(await s.audit.list({ personId: r.p.id, limit: 10 })).toEqual([r.e]);
    expect(await s.conversations.get(r.p.id)).toEqual(r.conv);
    // Identity from release-1 claims still holds.
    expect(await s.persons.insert(makePerson({ teamsUserId: r.p.teamsUserId }))).toEqual({ status: 'exists', record: r.p });
    expect(await s.cases.insert(makeCase({ sourceId: r.rc.sourceId }))).toEqual({ status: 'exists', record: r.rc });

    // Continue release-1 records, and write new ones: same layout.
    expect(await s.persons.save({ ...r.p, displayName: 'Renamed', updatedAt: at(20) }, 1)).toBe('saved');
    await s.journeys.countEffectAttempt(r.j.key, [r.j.pendingEffects[0]!.id]);
    const n = sample();
    await s.persons.insert(n.p);
    await s.cards.insert(n.c);
    await s.journeys.insert(n.j);
    await s.devices.insert(n.d);
    await s.pairings.insert(n.pr);
    await s.cases.insert(n.rc);
    await s.audit.append(n.e);
    await s.conversations.put(n.conv);
    await s.close();

    const strip = ({ w, ...rest }: Document) => {
      expect(w).toBeInstanceOf(Date);
      return rest;
    };
    const written: [keyof typeof v1, string, Document][] = [
      ['persons', n.p.id, v1.persons(n.p)],
      ['cards', n.c.cardId, v1.cards(n.c)],
      ['journeys', n.j.key, v1.journeys(n.j)],
      ['devices', n.d.id, v1.devices(n.d)],
      ['pairings', n.pr.id, v1.pairings(n.pr)],
      ['cases', n.rc.ref, v1.cases(n.rc)],
    ];
    for (const [name, key, fields] of written) {
      expect(strip((await db.collection(`${name}_rev`).findOne({ _id: `${key}#0` as never }))!), `${name}_rev`).toEqual({ ...fields, _id: `${key}#0`, k: key, r: 0 });
      expect(await db.collection(name).findOne({ _id: key as never }), name).toEqual({ ...fields, _id: key, k: key, r: 0 });
    }
    expect(strip((await db.collection('persons_rev').findOne({ _id: `${r.p.id}#1` as never }))!)).toEqual({
      ...v1.persons({ ...r.p, displayName: 'Renamed', updatedAt: at(20), version: 2 }),
      _id: `${r.p.id}#1`,
      k: r.p.id,
      r: 1,
    });
    const edited = strip((await db.collection('journeys_rev').findOne({ _id: `${r.j.key}#1` as never }))!);
    expect(edited).toEqual({ ...v1.journeys({ ...r.j, pendingEffects: [{ ...r.j.pendingEffects[0]!, attempts: 3 }] }), _id: `${r.j.key}#1`, k: r.j.key, r: 1 });
    const { seq, ...audit } = (await db.collection(MONGO_COLLECTION.audit).findOne({ _id: n.e.id as never }))!;
    expect(seq).toBeDefined();
    expect(audit).toEqual({ _id: n.e.id, at: n.e.at, actor: n.e.actor, action: n.e.action, personId: n.e.personId, details: JSON.stringify(n.e.details) });
    expect(await db.collection(MONGO_COLLECTION.conversations).findOne({ _id: n.conv.personId as never })).toEqual({
      _id: n.conv.personId,
      reference: JSON.stringify(n.conv.reference),
      updatedAt: n.conv.updatedAt,
    });
    for (const [value, owner] of [[`persons.teamsUserId|${n.p.teamsUserId}`, n.p.id], [`pairings.userCodeHash|${n.pr.userCodeHash}`, n.pr.id], [`cases.sourceId|${n.rc.sourceId}`, n.rc.ref]] as const) {
      expect((await db.collection(MONGO_COLLECTION.claims).findOne({ _id: `${value}#0` as never }))?.owner).toBe(owner);
    }
  });

  it('a stored document that breaks the record schema is CORRUPT_RECORD naming the field, never the value', async () => {
    const client = await server.client();
    const database = server.freshDatabaseName('corrupt');
    const s = await openMongoStorage({ client, database, gcIntervalMs: 0 });
    const d = makeDevice();
    await s.devices.insert(d);
    await s.close();
    for (const [name, id] of [['devices_rev', `${d.id}#0`], ['devices', d.id]] as const) {
      await client.db(database).collection(name).updateOne({ _id: id as never }, { $set: { credentialHash: 'plaintext-secretish' } });
    }
    const cold = await openMongoStorage({ client, database, gcIntervalMs: 0 });
    const err = await cold.devices.get(d.id).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('STORAGE.CORRUPT_RECORD');
    expect(err?.message).toMatch(/devices\.credentialHash/);
    expect(err?.message).not.toContain('secretish');
    await cold.close();
  });
});
