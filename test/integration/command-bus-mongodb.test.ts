/**
 * The MongoDB command bus across two clients (two bot instances) on one
 * database of a real MongoDB-protocol server (FerretDB v1.24.2 or
 * MONGODB_URL): the command bus conformance suite, payloads sealed at rest,
 * and, on a private FerretDB, a server restart under a live subscription.
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { MongoClient } from 'mongodb';
import { createLogger } from '../../common/logger';
import { seal, unseal } from '../../bot/security/seal';
import { runCommandBusConformance } from '../../bot/link/bus/command-bus.conformance';
import type { BusMessage } from '../../bot/link/bus/command-bus.port';
import { MONGO_BUS_DEFAULTS, openMongoCommandBus, type PayloadCipher } from '../../bot/link/bus/mongodb-command-bus.adapter';
import { mongoTestServer, privateFerretdbGate, startPrivateFerretdb } from '../support/ferretdb';

const key = createSecretKey(randomBytes(32));
const cipher: PayloadCipher = { seal: (text, aad) => seal(key, text, aad), open: (sealed, aad) => unseal(key, sealed, aad) };

const mongo = await mongoTestServer();
const ferret = mongo.skip ? { skip: true as const } : await privateFerretdbGate();

describe.skipIf(mongo.skip)('MongoDB command bus', () => {
  if (mongo.skip) return;
  const server = mongo;
  const clients: MongoClient[] = [];
  afterAll(async () => {
    for (const c of clients.splice(0)) await c.close();
    await server.dropCreatedDatabases();
  });
  async function twoClients(): Promise<[MongoClient, MongoClient]> {
    const pair: [MongoClient, MongoClient] = [new MongoClient(server.url), new MongoClient(server.url)];
    clients.push(...pair);
    return pair;
  }

  runCommandBusConformance('mongodb', async () => {
    const [c1, c2] = await twoClients();
    const database = server.freshDatabaseName('bus');
    const a = await openMongoCommandBus({ db: c1.db(database), instanceId: 'A', cipher });
    const b = await openMongoCommandBus({ db: c2.db(database), instanceId: 'B', cipher });
    return { a, b };
  });

  it('tails a capped collection, and stores payloads sealed: no plaintext at rest', async () => {
    const [c1, c2] = await twoClients();
    const database = server.freshDatabaseName('sealed');
    const a = await openMongoCommandBus({ db: c1.db(database), instanceId: 'A', cipher });
    const b = await openMongoCommandBus({ db: c2.db(database), instanceId: 'B', cipher });
    expect(a.mode).toBe('tailable');
    const [info] = await c1.db(database).listCollections({ name: MONGO_BUS_DEFAULTS.collection }).toArray();
    expect((info as { options?: { capped?: boolean } }).options?.capped).toBe(true);
    const got: BusMessage[] = [];
    await b.subscribe('B', (m) => void got.push(m));
    const marker = `puk-like-${randomBytes(8).toString('hex')}`;
    const sent = await a.publish('B', { command: 'reset', marker });
    while (got.length < 1) await sleep(5);
    expect(got[0]!.payload).toEqual({ command: 'reset', marker });
    const raw = await c1.db(database).collection(MONGO_BUS_DEFAULTS.collection).find({}).toArray();
    expect(raw.find((d) => String(d._id) === sent.id)).toBeDefined();
    expect(JSON.stringify(raw)).not.toContain(marker);
    expect(JSON.stringify(raw)).not.toContain('reset');
    // A message sealed for another recipient does not open as this one's (AAD binds `to`).
    const forB = raw.find((d) => String(d._id) === sent.id)!;
    expect(() => cipher.open(String(forB.body), 'bus:C')).toThrow();
    await a.close();
    await b.close();
  });

  it('a round trip A -> B -> A completes well under a second (time measured and printed)', async () => {
    const [c1, c2] = await twoClients();
    const database = server.freshDatabaseName('rtt');
    const a = await openMongoCommandBus({ db: c1.db(database), instanceId: 'A', cipher });
    const b = await openMongoCommandBus({ db: c2.db(database), instanceId: 'B', cipher });
    await b.subscribe('B', async (m) => void (await b.publish(m.from, { echo: m.payload })));
    const waiting = new Map<number, () => void>();
    await a.subscribe('A', (m) => waiting.get((m.payload as { echo: { n: number } }).echo.n)?.());
    const times: number[] = [];
    for (let n = 0; n < 20; n++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        waiting.set(n, resolve);
        void a.publish('B', { n });
      });
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    process.stderr.write(`command bus round trip over ${database.slice(0, 6)}: p50 ${times[10]!.toFixed(1)} ms, max ${times[19]!.toFixed(1)} ms\n`);
    expect(times[10]).toBeLessThan(1000);
    await a.close();
    await b.close();
  });

  /**
   * FerretDB v1 serves a tailable await getMore by re-running the query every 10 ms until
   * `maxTimeMS`; a document it takes just before that deadline moves the cursor past it, but the
   * deadline then cuts the next re-query and the batch comes back empty: the cursor never returns
   * that document. (Seen in the two-instance e2e: a routed command reached B 16 s late.) The bus
   * must still deliver every message, in order, within about one await window.
   */
  it('delivers every message, in order, within about one await window, wherever it lands in the server\'s wait (cursor misses are read back)', async () => {
    const [c1, c2] = await twoClients();
    const database = server.freshDatabaseName('window');
    // A short window makes "lands at the end of it" frequent; the loss does not depend on its length.
    const maxAwaitTimeMS = 60;
    const a = await openMongoCommandBus({ db: c1.db(database), instanceId: 'A', cipher, maxAwaitTimeMS });
    const logLines: string[] = [];
    const logger = createLogger({ name: 'bus-b', level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });
    const b = await openMongoCommandBus({ db: c2.db(database), instanceId: 'B', cipher, maxAwaitTimeMS, logger });
    const got: Array<{ n: number; at: number }> = [];
    await b.subscribe('B', (m) => void got.push({ n: (m.payload as { n: number }).n, at: Date.now() }));
    const sentAt = new Map<number, number>();
    const boundMs = 1500;
    const late: string[] = [];
    let n = 0;
    // More than MONGO_BUS_DEFAULTS.cursorDocuments, so the cursor is also renewed on the way.
    for (let round = 0; round < 90; round++) {
      // One or two messages back to back (a miss followed by a later message must not skip it), then a pause
      // of a random length, so that the publishes land at every moment of B's await window.
      const burst = round % 3 === 2 ? 2 : 1;
      const first = n;
      for (let i = 0; i < burst; i++, n++) {
        sentAt.set(n, Date.now());
        await a.publish('B', { n });
      }
      const deadline = Date.now() + boundMs;
      while (!got.some((g) => g.n === n - 1) && Date.now() < deadline) await sleep(2);
      for (let k = first; k < n; k++) {
        const g = got.find((x) => x.n === k);
        if (!g) late.push(`#${k} not delivered within ${boundMs} ms`);
        else if (g.at - sentAt.get(k)! > boundMs) late.push(`#${k} after ${g.at - sentAt.get(k)!} ms`);
      }
      await sleep(Math.floor(Math.random() * maxAwaitTimeMS * 1.5));
    }
    await sleep(boundMs);
    const lags = got.map((g) => g.at - sentAt.get(g.n)!).sort((x, y) => x - y);
    const logged = (msg: string): number => logLines.filter((l) => l.includes(`"msg":"${msg}"`)).length;
    process.stderr.write(
      `command bus, ${n} messages against a ${maxAwaitTimeMS} ms await window: delivered ${got.length}, lag p50 ${lags[Math.floor(lags.length / 2)] ?? '-'} ms, max ${lags.at(-1) ?? '-'} ms; ` +
        `read back ${logged('command bus: the cursor skipped messages; read back by seq')} times, cursor renewed ${logged('command bus: cursor renewed')} times; late or missing: ${late.length ? late.join(', ') : 'none'}\n`,
    );
    expect(late).toEqual([]);
    expect(n).toBeGreaterThan(MONGO_BUS_DEFAULTS.cursorDocuments);
    expect(logged('command bus: cursor renewed')).toBeGreaterThan(0);
    // Every message was logged as delivered by B, with its lag.
    expect(logged('command bus: delivered')).toBe(n);
    expect(got.map((g) => g.n)).toEqual([...Array(n).keys()]);
    await a.close();
    await b.close();
  });

  describe.skipIf(ferret.skip)('server restart', () => {
    it('a live subscription survives a FerretDB restart: messages published after the restart arrive, none twice', async () => {
      const fdb = await startPrivateFerretdb();
      const c1 = new MongoClient(fdb.url, { serverSelectionTimeoutMS: 1500 });
      const c2 = new MongoClient(fdb.url, { serverSelectionTimeoutMS: 1500 });
      clients.push(c1, c2);
      try {
        const a = await openMongoCommandBus({ db: c1.db('bus'), instanceId: 'A', cipher });
        const b = await openMongoCommandBus({ db: c2.db('bus'), instanceId: 'B', cipher });
        const got: BusMessage[] = [];
        await b.subscribe('B', (m) => void got.push(m));
        await a.publish('B', { i: 1 });
        while (got.length < 1) await sleep(5);
        await fdb.stop('SIGKILL');
        await sleep(300);
        await fdb.start();
        // Publish until the restarted server takes it (the client reconnects by itself).
        for (let i = 2; ; ) {
          try {
            await a.publish('B', { i });
            i++;
            if (i > 4) break;
          } catch {
            await sleep(100);
          }
        }
        const deadline = Date.now() + 20_000;
        while (got.length < 4 && Date.now() < deadline) await sleep(20);
        expect(got.map((m) => (m.payload as { i: number }).i)).toEqual([1, 2, 3, 4]);
        await a.close();
        await b.close();
      } finally {
        await fdb.stop('SIGKILL');
        await fdb.dispose();
      }
    });
  });
});
