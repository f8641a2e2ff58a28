/**
 * The storage conformance suite against the MongoDB adapter on a real
 * MongoDB-protocol server (FerretDB v1.24.2 from scripts/ferretdb.sh, or
 * MONGODB_URL), plus what only the MongoDB adapter has: start-up indexes,
 * several clients (bot instances) on one database, and the GC TTL index
 * created only where the server supports it.
 *
 * Each conformance test gets a fresh database on the shared server, dropped
 * when the test closes its store. The outage tests (server stopped mid-write)
 * are in storage-mongodb.outage.test.ts, on a private server.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { MongoClient } from 'mongodb';
import { AppError } from '../../common/app-error';
import { runStorageConformance } from '../../storage/storage.conformance';
import { STORAGE_ERROR } from '../../storage/storage.errors';
import { at, fakeCardId, makeCase, makeEffect, makeJourney, makePerson } from '../../storage/storage.fixtures';
import { openMongoStorage, type MongoStorage } from '../../storage/mongodb/mongodb-storage.adapter';
import { MONGO_COLLECTION, MONGO_GC_TTL_INDEX, MONGO_INDEXES, MONGO_SCHEMA_VERSION } from '../../storage/mongodb/mongodb.indexes';
import { openStorage } from '../../storage/storage.factory';
import { mongoTestServer } from '../support/ferretdb';

const mongo = await mongoTestServer();

describe.skipIf(mongo.skip)('MongoDB storage adapter', () => {
  if (mongo.skip) return;
  const server = mongo;
  afterAll(() => server.dropCreatedDatabases());

  /** A store on a fresh database of the shared client; closing it drops the database. */
  async function freshStore(prefix = 'conf'): Promise<MongoStorage> {
    const client = await server.client();
    const database = server.freshDatabaseName(prefix);
    const storage = await openMongoStorage({ client, database });
    const close = storage.close.bind(storage);
    return Object.assign(storage, {
      close: async () => {
        await close();
        await client.db(database).dropDatabase();
      },
    });
  }

  runStorageConformance('mongodb', () => freshStore());

  describe('start-up', () => {
    async function indexSummary(client: MongoClient, database: string) {
      const out: Record<string, { name: string; key: unknown }[]> = {};
      for (const name of new Set(MONGO_INDEXES.map((i) => i.collection))) {
        const list = await client.db(database).collection(name).listIndexes().toArray();
        out[name] = list.map((i) => ({ name: String(i.name), key: i.key })).sort((a, b) => a.name.localeCompare(b.name));
      }
      return out;
    }

    it('creates every index, and a second start-up changes nothing, keeps the data and still enforces identity', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('idx');
      const first = await openMongoStorage({ client, database });
      const before = await indexSummary(client, database);
      for (const spec of MONGO_INDEXES) {
        const found = before[spec.collection]!.find((i) => i.name === spec.name);
        expect(found, `${spec.collection}.${spec.name}`).toBeDefined();
        expect(found!.key).toEqual(spec.key);
      }
      const p = makePerson();
      await first.persons.insert(p);
      await first.close();

      const second = await openMongoStorage({ client, database });
      expect(await indexSummary(client, database)).toEqual(before);
      expect(await second.persons.get(p.id)).toEqual(p);
      // Identity still holds after the second start-up: same teamsUserId, same card, same id.
      expect(await second.persons.insert(makePerson({ teamsUserId: p.teamsUserId }))).toEqual({ status: 'exists', record: p });
      expect(await second.persons.insert(makePerson({ cardId: p.cardId }))).toEqual({ status: 'exists', record: p });
      expect(await second.persons.insert(makePerson({ id: p.id }))).toEqual({ status: 'exists', record: p });
      const meta = await client.db(database).collection<{ _id: string; version: number }>(MONGO_COLLECTION.meta).findOne({ _id: 'schema' });
      expect(meta?.version).toBe(MONGO_SCHEMA_VERSION);
      await second.close();
    });

    it('creates the GC TTL index only where the server accepts it, and says which', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('ttl');
      const s = await openMongoStorage({ client, database });
      for (const collection of MONGO_GC_TTL_INDEX.collections) {
        const indexes = await client.db(database).collection(collection).listIndexes().toArray();
        const ttl = indexes.find((i) => i.name === MONGO_GC_TTL_INDEX.name);
        expect(s.capabilities().gcTtlIndex).toBe(ttl !== undefined);
        if (ttl) expect(ttl.expireAfterSeconds).toBe(MONGO_GC_TTL_INDEX.expireAfterSeconds);
      }
      if (s.capabilities().ferretdbVersion !== null) expect(s.capabilities().gcTtlIndex).toBe(false); // FerretDB v1 has no TTL indexes
      // Without TTL, expired pairings still go: deleteExpired is the rule.
      await s.close();
    });

    it('refuses a database written by a newer release', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('newer');
      await client.db(database).collection<{ _id: string; version: number }>(MONGO_COLLECTION.meta).insertOne({ _id: 'schema', version: MONGO_SCHEMA_VERSION + 1 });
      const err = await openMongoStorage({ client, database }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe(STORAGE_ERROR.SCHEMA_TOO_NEW);
    });

    it('opens from a URL (database from the option), and refuses a URL of another scheme without repeating it', async () => {
      const database = server.freshDatabaseName('url');
      const s = await openMongoStorage({ url: server.url, database, serverSelectionTimeoutMS: 3000 });
      expect(s.databaseName).toBe(database);
      await s.ping();
      await s.close();
      await expect(s.ping()).rejects.toMatchObject({ code: STORAGE_ERROR.UNAVAILABLE });
      const bad = await openMongoStorage({ url: 'postgres://user:hunter2@127.0.0.1/x' }).then(
        () => null,
        (e: unknown) => e as AppError,
      );
      expect(bad?.code).toBe('CONFIG.MONGODB_URL_INVALID');
      expect(JSON.stringify(bad?.toJSON())).not.toContain('hunter2');
    });

    it('the storage factory opens it from { kind: "mongodb", url, database }', async () => {
      const database = server.freshDatabaseName('factory');
      const s = await openStorage({ kind: 'mongodb', url: server.url, database, serverSelectionTimeoutMS: 3000 });
      const p = makePerson();
      expect(await s.persons.insert(p)).toEqual({ status: 'created', record: p });
      expect(await s.persons.findByTeamsUserId(p.teamsUserId)).toEqual(p);
      await s.close();
    });

    it('a server that is not there gives STORAGE.UNAVAILABLE within the server-selection timeout', async () => {
      const started = Date.now();
      const err = await openMongoStorage({ url: 'mongodb://127.0.0.1:9/', serverSelectionTimeoutMS: 800 }).then(
        () => null,
        (e: unknown) => e as AppError,
      );
      expect(err?.code).toBe(STORAGE_ERROR.UNAVAILABLE);
      expect(Date.now() - started).toBeLessThan(5000);
    });
  });

  describe('revisions, heads and claims', () => {
    it('a revision whose head was never written (crash between the two) is read, listed after the start-up repair, and continued', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('repair');
      const first = await openMongoStorage({ client, database, gcIntervalMs: 0 });
      const j = makeJourney({ updatedAt: at(1) });
      await first.journeys.insert(j);
      await first.close();
      // What a crash right after the revision insert leaves: revision #1 with effects, head still at #0.
      const effect = makeEffect();
      const rev0 = await client.db(database).collection(`${MONGO_COLLECTION.journeys}_rev`).findOne({ _id: `${j.key}#0` as never });
      await client
        .db(database)
        .collection(`${MONGO_COLLECTION.journeys}_rev`)
        .insertOne({ ...rev0, _id: `${j.key}#1` as never, r: 1, w: new Date(), version: 2, pendingEffects: JSON.stringify([effect]), pendingCount: 1, updatedAt: at(2) });
      expect((await client.db(database).collection(MONGO_COLLECTION.journeys).findOne({ _id: j.key as never }))?.r).toBe(0);

      const second = await openMongoStorage({ client, database, gcIntervalMs: 0 });
      expect(await second.journeys.get(j.key)).toEqual({ ...j, version: 2, pendingEffects: [effect], updatedAt: at(2) });
      expect((await second.journeys.listWithPendingEffects(10)).map((x) => x.key)).toEqual([j.key]);
      expect((await client.db(database).collection(MONGO_COLLECTION.journeys).findOne({ _id: j.key as never }))?.r).toBe(1);
      expect(await second.journeys.save({ ...j, pendingEffects: [], updatedAt: at(3) }, 2)).toBe('saved');
      expect(await second.journeys.listWithPendingEffects(10)).toEqual([]);
      await second.close();
    });

    it('listWithPendingEffects leaves out a journey it cannot read, reports its key, and returns the others', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('unreadable');
      const first = await openMongoStorage({ client, database, gcIntervalMs: 0 });
      const bad = makeJourney({ updatedAt: at(1), pendingEffects: [makeEffect()] });
      const good = makeJourney({ updatedAt: at(2), pendingEffects: [makeEffect()] });
      for (const j of [bad, good]) await first.journeys.insert(j);
      await first.close();
      // A counter holding a string, in the revision and its head.
      const counters = JSON.stringify({ answerAttempts: 'x' });
      await client.db(database).collection(`${MONGO_COLLECTION.journeys}_rev`).updateOne({ _id: `${bad.key}#0` as never }, { $set: { counters } });
      await client.db(database).collection(MONGO_COLLECTION.journeys).updateOne({ _id: bad.key as never }, { $set: { counters } });
      const second = await openMongoStorage({ client, database, gcIntervalMs: 0 });
      const unreadable: Array<{ key: string; code: string; message: string }> = [];
      const listed = await second.journeys.listWithPendingEffects(10, { onUnreadable: (key, err) => unreadable.push({ key, code: err.code, message: err.message }) });
      expect(listed.map((j) => j.key)).toEqual([good.key]);
      expect(unreadable).toEqual([{ key: bad.key, code: STORAGE_ERROR.CORRUPT_RECORD, message: expect.stringMatching(/counters/) }]);
      await second.close();
      await client.db(database).dropDatabase();
    });

    it('garbage collection keeps each record\'s last two revisions, and a cold reader still finds the latest', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('gc');
      const s = await openMongoStorage({ client, database, gcIntervalMs: 0, versioned: { gcAgeMs: 0 } });
      const j = makeJourney({ counters: { n: 0 } });
      await s.journeys.insert(j);
      for (let v = 1; v <= 9; v++) expect(await s.journeys.save({ ...j, counters: { n: v } }, v)).toBe('saved');
      const revs = client.db(database).collection(`${MONGO_COLLECTION.journeys}_rev`);
      expect(await revs.countDocuments({ k: j.key })).toBe(10);
      expect(await s.collectGarbage()).toBe(8);
      expect((await revs.find({ k: j.key }).toArray()).map((d) => d.r).sort()).toEqual([8, 9]);
      await s.close();
      const cold = await openMongoStorage({ client, database, gcIntervalMs: 0 });
      expect(await cold.journeys.get(j.key)).toEqual({ ...j, counters: { n: 9 }, version: 10 });
      expect(await cold.journeys.save({ ...j, counters: { n: 10 } }, 10)).toBe('saved');
      expect(await cold.journeys.save({ ...j, counters: { n: -1 } }, 9)).toBe('conflict');
      await cold.close();
    });

    it('a card one person dropped goes to another once the claim is older than the grace; an orphan claim is taken over the same way', async () => {
      const client = await server.client();
      const database = server.freshDatabaseName('claims');
      const graceMs = 400;
      const s = await openMongoStorage({ client, database, gcIntervalMs: 0, versioned: { claimGraceMs: graceMs } });
      const cardId = fakeCardId();
      const a = makePerson({ cardId });
      const b = makePerson({ cardId: null });
      await s.persons.insert(a);
      await s.persons.insert(b);
      expect(await s.persons.save({ ...a, cardId: null }, 1)).toBe('saved');
      const started = Date.now();
      expect(await s.persons.save({ ...b, cardId }, 1)).toBe('saved');
      expect(Date.now() - started).toBeLessThan(graceMs * 4);
      expect((await s.persons.findByCardId(cardId))?.id).toBe(b.id);
      expect((await s.persons.get(a.id))?.cardId).toBeNull();

      // A claim left by a writer that never wrote its record (crashed): refused while fresh, taken over after.
      const orphanTeams = `29:${randomUUID()}`;
      await client.db(database).collection(MONGO_COLLECTION.claims).insertOne({ _id: `persons.teamsUserId|${orphanTeams}#0` as never, owner: randomUUID(), at: new Date() });
      const c = makePerson({ teamsUserId: orphanTeams });
      const t0 = Date.now();
      expect(await s.persons.insert(c)).toEqual({ status: 'created', record: c });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(graceMs - 50);
      expect((await s.persons.findByTeamsUserId(orphanTeams))?.id).toBe(c.id);
      await s.close();
    });
  });

  describe('two bot instances (two clients) on one database', () => {
    it('compare-and-set, first inserts and audit appends hold across clients', async () => {
      const database = server.freshDatabaseName('multi');
      const [a, b] = await Promise.all([openMongoStorage({ url: server.url, database }), openMongoStorage({ url: server.url, database })]);
      try {
        const j = makeJourney({ counters: { n: 0 } });
        await a.journeys.insert(j);
        const stores = [a, b];
        // 40 read-increment-save loops, alternating between the instances: no lost increment.
        await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            const s = stores[i % 2]!;
            for (;;) {
              const cur = (await s.journeys.get(j.key))!;
              if ((await s.journeys.save({ ...cur, counters: { n: cur.counters.n! + 1 }, updatedAt: at(i) }, cur.version)) === 'saved') return;
            }
          }),
        );
        const final = (await b.journeys.get(j.key))!;
        expect(final.counters.n).toBe(40);
        expect(final.version).toBe(41);

        // Racing first inserts of one case source from both instances: one case.
        const sourceId = randomUUID();
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.cases.insert(makeCase({ sourceId }))));
        expect(results.filter((r) => r.status === 'created')).toHaveLength(1);
        const winner = results.find((r) => r.status === 'created')!.record;
        for (const r of results) expect(r.record).toEqual(winner);

        // Audit appends from both: none lost, none doubled.
        const personId = randomUUID();
        const ids = Array.from({ length: 30 }, () => randomUUID());
        await Promise.all(ids.flatMap((id, i) => [a, b].map((s) => s.audit.append({ id, at: at(i), actor: 'system', action: 'multi.test', personId, details: { i } }))));
        const listed = await a.audit.list({ personId, limit: 100 });
        expect(listed.map((e) => e.id)).toEqual(ids);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
