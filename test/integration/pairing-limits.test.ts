/**
 * Pairing limits that hold (issue #10, findings 1, 2 and 3, the global guess cap
 * and the growth bounds).
 *
 * The real bot (`startBot`, embedded store, outbox mail, no app id) runs in this
 * process, a fresh one (own data directory) per test, so the overall caps of one
 * test do not spill into the next. Companions' HTTP calls come from several
 * loopback source addresses (`localAddress` 127.x.y.z; Linux routes all of
 * 127.0.0.0/8 to lo), so the bot sees them as different clients. Teams "pair CODE"
 * messages are the bot's own `pairing.approve` call, which the Teams handler
 * makes. What was checked is read from the store (read-only SQL).
 *
 * Rules the tests hold the bot to (they are the numbers, not read from the code):
 * - a person: 5 pairing codes checked in 10 minutes;
 * - everyone together: 120 pairing codes checked a minute;
 * - pair/start: 20 a minute from one address, 300 a minute overall;
 * - pair/poll: 120 a minute per device code, whoever sends them;
 * - expired pairings are deleted within a minute or so of expiry (not kept a day).
 *
 * The start-flood test fixes the pairing clock (`startBot`'s `pairingClock`), so
 * 10,001 requests fall in one window however long this machine takes for them.
 *
 * The last block races the counters themselves, two instances on one store:
 * SQLite (two connections to one file) and MongoDB (two clients on one FerretDB
 * database, where conditional updates are not atomic; two bot instances there
 * share the pairing limits too). Under CI=true a missing FerretDB fails the file.
 *
 * Nothing here uses pcscd or the vpcd readers.
 */
import Database from 'better-sqlite3';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../bot/config';
import { createStoreRateLimiter } from '../../bot/limits/store-rate-limiter';
import { startBot, type BotApp } from '../../bot/main';
import { createLogger } from '../../common/logger';
import { openMongoStorage } from '../../storage/mongodb/mongodb-storage.adapter';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import type { Storage } from '../../storage/storage.port';
import { mongoTestServer } from '../support/ferretdb';

const RULES = {
  guessesPerPersonPer10Min: 5,
  guessesOverallPerMinute: 120,
  startsPerAddressPerMinute: 20,
  startsOverallPerMinute: 300,
  pollsPerCodePerMinute: 120,
} as const;

/** The pairing user-code alphabet (no 0 O 1 I L). */
const USER_CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const randomUserCode = (): string => {
  let s = '';
  for (let i = 0; i < 8; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
};

/** The MongoDB-protocol server for the two-instance tests (FerretDB; under CI=true a missing one fails the file). */
const mongo = await mongoTestServer();

const logger = createLogger({ name: 'limits-bot', level: process.env['LIMITS_LOG'] === '1' ? 'info' : 'silent' });

interface Bot {
  app: BotApp;
  dir: string;
  port: number;
  sql<T>(query: string, ...params: unknown[]): T[];
}
const running: Bot[] = [];

/** A bot; `pairingClock` fixes the pairing service's and its limits' clock (a flood slower than a window then changes nothing). */
async function bot(overrides: { pairingClock?: () => Date } = {}): Promise<Bot> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pairing-limits-'));
  const config = loadConfig({ SMARTCARD_DATA_DIR: dir, SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', PAIRING_POLL_INTERVAL_SECONDS: '1' });
  const app = await startBot(config, { logger, ...overrides });
  const b: Bot = {
    app,
    dir,
    port: Number(new URL(app.url).port),
    sql<T>(query: string, ...params: unknown[]): T[] {
      const db = new Database(path.join(dir, 'smartcard-assist.sqlite'), { readonly: true, fileMustExist: true });
      try {
        return db.prepare(query).all(...params) as T[];
      } finally {
        db.close();
      }
    },
  };
  running.push(b);
  return b;
}

afterEach(async () => {
  for (const b of running.splice(0)) {
    await b.app.close();
    await rm(b.dir, { recursive: true, force: true });
  }
});

interface Reply {
  status: number;
  retryAfter: string | undefined;
  json: Record<string, unknown>;
}

/** POST a JSON body to the bot from the loopback source address `from` (one connection per call). */
function post(b: Bot, route: 'start' | 'poll', body: unknown, from: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: b.port, path: `/companion/pair/${route}`, method: 'POST', localAddress: from, agent: false, headers: { 'content-type': 'application/json', connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = { text };
          }
          const ra = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(ra) ? ra[0] : ra, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Run `fn` for 0..n-1, at most `width` at a time; results in order. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

const count = (b: Bot, query: string, ...params: unknown[]): number => b.sql<{ n: number }>(query, ...params)[0]!.n;
const refusedCodes = (b: Bot, personId: string): number => count(b, `SELECT count(*) AS n FROM audit WHERE action = 'pairing.code_refused' AND person_id = ?`, personId);

describe('pairing limits (issue #10)', () => {
  it('finding 1: after 10,050 audit rows about a person, the 6th wrong code in 10 minutes is refused and exactly 5 were checked', async () => {
    const b = await bot();
    const personId = randomUUID();
    const base = Date.now() - 5 * 60_000;
    // The "register" messages of the finding: each leaves an audit row about the person, older than the guesses.
    await Promise.all(
      Array.from({ length: 10_050 }, (_, i) =>
        b.app.storage.audit.append({ id: randomUUID(), at: new Date(base + i).toISOString(), actor: `person:${personId}`, action: 'registration.started', personId, details: { n: i } }),
      ),
    );
    expect(count(b, 'SELECT count(*) AS n FROM audit WHERE person_id = ?', personId)).toBe(10_050);
    const started = await post(b, 'start', { workstation: 'VICTIM-WS' }, '127.0.0.2');
    const { userCode, deviceCode } = started.json as { userCode: string; deviceCode: string };

    const replies = [];
    for (let i = 0; i < 6; i++) replies.push(await b.app.pairing.approve({ id: personId }, randomUserCode()));
    // The right code (seen over a shoulder) after the limit: refused too.
    replies.push(await b.app.pairing.approve({ id: personId }, userCode));

    expect(replies.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['unknown_or_expired', 'unknown_or_expired', 'unknown_or_expired', 'unknown_or_expired', 'unknown_or_expired', 'too_many_tries', 'too_many_tries']);
    expect(refusedCodes(b, personId), 'wrong codes checked').toBe(RULES.guessesPerPersonPer10Min);
    const last = replies[6]!;
    expect(last.ok ? '' : last.message).toMatch(/Wait \d+ minutes?/);
    expect((await post(b, 'poll', { deviceCode }, '127.0.0.2')).json).toMatchObject({ status: expect.stringMatching(/authorization_pending|slow_down/) });
  });

  it('finding 1: a burst of 60 guesses at once from one person checks exactly 5', async () => {
    const b = await bot();
    const personId = randomUUID();
    const replies = await Promise.all(Array.from({ length: 60 }, () => b.app.pairing.approve({ id: personId }, randomUserCode())));
    expect(refusedCodes(b, personId)).toBe(RULES.guessesPerPersonPer10Min);
    expect(replies.filter((r) => !r.ok && r.reason === 'too_many_tries')).toHaveLength(55);
  });

  it('finding 2: starts from 10,001 other addresses do not reset the limit of the first; pairing rows stay bounded', { timeout: 300_000 }, async () => {
    // One instant for the whole test: however long 10,001 requests take here, they all fall in one window.
    const instant = new Date();
    const b = await bot({ pairingClock: () => instant });
    const first = '127.0.0.2';
    const firstReplies = await pool(RULES.startsPerAddressPerMinute + 1, 1, () => post(b, 'start', { workstation: 'WS-FIRST' }, first));
    expect(firstReplies.map((r) => r.status)).toEqual([...Array(RULES.startsPerAddressPerMinute).fill(200), 429]);

    const t0 = Date.now();
    const flood = await pool(10_001, 64, (i) => post(b, 'start', { workstation: 'WS-FLOOD' }, `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`));
    const floodSeconds = (Date.now() - t0) / 1000;
    const statuses = new Map<number, number>();
    for (const r of flood) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    expect([...statuses.keys()].every((s) => s === 200 || s === 429), JSON.stringify([...statuses])).toBe(true);

    const again = await post(b, 'start', { workstation: 'WS-FIRST' }, first);
    expect(again.status, `the first address after the flood (flood statuses ${JSON.stringify([...statuses])}, ${floodSeconds} s)`).toBe(429);
    expect(String(again.json['error'])).toMatch(/from this (network )?address/);
    expect(Number(again.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(again.retryAfter)).toBeLessThanOrEqual(60);

    // Overall: at most 300 starts a minute, so pending pairings are bounded by 300 per minute of code lifetime.
    expect(statuses.get(200) ?? 0).toBe(RULES.startsOverallPerMinute - RULES.startsPerAddressPerMinute);
    expect(count(b, 'SELECT count(*) AS n FROM pairings')).toBe(RULES.startsOverallPerMinute);
    const limited = flood.find((r) => r.status === 429)!;
    expect(String(limited.json['error'])).toMatch(/Too many pairing requests/);
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    // The counters did not grow with the flood either: once the overall minute was full, a start
    // from a new address stored nothing. Hits: 300 overall + 300 per address, plus at most one
    // per request in flight (64) that passed the checks just before the minute filled.
    const hits = count(b, 'SELECT count(*) AS n FROM rate_hits');
    expect(hits).toBeGreaterThanOrEqual(2 * RULES.startsOverallPerMinute);
    expect(hits).toBeLessThanOrEqual(2 * RULES.startsOverallPerMinute + 64);
  });

  it('finding 3: a poll flood on one device code does not 429 another device code from the same address, before or after approval', async () => {
    const b = await bot();
    const shared = '127.0.0.3'; // one NAT address for the attacker and the real companion
    const junk = await post(b, 'start', { workstation: 'WS-JUNK' }, shared);
    const real = await post(b, 'start', { workstation: 'WS-REAL' }, shared);
    const junkCode = (junk.json as { deviceCode: string }).deviceCode;
    const { deviceCode: realCode, userCode: realUserCode } = real.json as { deviceCode: string; userCode: string };

    const floodReplies = await pool(200, 8, () => post(b, 'poll', { deviceCode: junkCode }, shared));
    expect(floodReplies.filter((r) => r.status === 200)).toHaveLength(RULES.pollsPerCodePerMinute);
    const limited = floodReplies.filter((r) => r.status === 429);
    expect(limited).toHaveLength(200 - RULES.pollsPerCodePerMinute);

    const before = await post(b, 'poll', { deviceCode: realCode }, shared);
    expect(before.status, 'the real companion behind the same address').toBe(200);
    expect(before.json).toMatchObject({ status: expect.stringMatching(/authorization_pending|slow_down/) });
    expect(Number(limited[0]!.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(String(limited[0]!.json['error'])).toMatch(/poll/i);
    const person = randomUUID();
    expect(await b.app.pairing.approve({ id: person }, realUserCode)).toEqual({ ok: true, workstation: 'WS-REAL' });
    // The flood goes on while the person approves.
    const more = await pool(20, 4, () => post(b, 'poll', { deviceCode: junkCode }, shared));
    expect(more.every((r) => r.status === 429)).toBe(true);
    const after = await post(b, 'poll', { deviceCode: realCode }, shared);
    expect(after.status).toBe(200);
    expect(after.json).toMatchObject({ status: 'approved', deviceId: expect.any(String), credential: expect.any(String) });

    // Made-up device codes are answered at once and store nothing (no counter per random code).
    const hitsBefore = count(b, 'SELECT count(*) AS n FROM rate_hits');
    const random = await pool(50, 8, () => post(b, 'poll', { deviceCode: randomBytes(32).toString('base64url') }, shared));
    expect(new Set(random.map((r) => `${r.status} ${String(r.json['status'])}`))).toEqual(new Set(['200 expired_token']));
    expect(count(b, 'SELECT count(*) AS n FROM rate_hits')).toBe(hitsBefore);
  });

  it('a store that cannot be reached: 503 with Retry-After and a plain message, never a bare 500; bad bodies stay 400', async () => {
    const b = await bot();
    await b.app.storage.close();
    const start = await post(b, 'start', { workstation: 'WS-DOWN' }, '127.0.0.5');
    expect(start.status).toBe(503);
    expect(Number(start.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(String(start.json['error'])).toMatch(/Try again in \d+ seconds/);
    const poll = await post(b, 'poll', { deviceCode: randomBytes(32).toString('base64url') }, '127.0.0.5');
    expect(poll.status).toBe(503);
    expect((await post(b, 'start', { workstation: '<bad>' }, '127.0.0.5')).status).toBe(400);
  });

  it('global cap: guesses across 130 made-up identities in a minute: exactly 120 checked, the rest told to wait', async () => {
    const b = await bot();
    const identities = Array.from({ length: 130 }, () => randomUUID());
    const replies = await pool(identities.length, 16, (i) => b.app.pairing.approve({ id: identities[i]! }, randomUserCode()));
    const checked = count(b, `SELECT count(*) AS n FROM audit WHERE action = 'pairing.code_refused'`);
    expect(checked).toBe(RULES.guessesOverallPerMinute);
    const waited = replies.filter((r) => !r.ok && r.reason !== 'unknown_or_expired');
    expect(waited).toHaveLength(130 - RULES.guessesOverallPerMinute);
    for (const r of waited) expect(r.ok ? '' : r.message).toMatch(/wait/i);
    // Guesses refused by the full overall minute stored nothing: 120 overall + 120 per identity, plus at most one per guess in flight (16).
    expect(count(b, 'SELECT count(*) AS n FROM rate_hits')).toBeLessThanOrEqual(2 * RULES.guessesOverallPerMinute + 16);
  });

  it('growth: an expired pairing is deleted within about a minute of expiry by the sweeper, not kept a day', { timeout: 60_000 }, async () => {
    const b = await bot();
    const started = await post(b, 'start', { workstation: 'WS-OLD' }, '127.0.0.4');
    expect(started.status).toBe(200);
    // Age every pairing: expired two minutes ago.
    const rw = new Database(path.join(b.dir, 'smartcard-assist.sqlite'), { fileMustExist: true });
    rw.prepare('UPDATE pairings SET expires_at = ?').run(new Date(Date.now() - 2 * 60_000).toISOString());
    rw.close();
    const deadline = Date.now() + 25_000;
    while (Date.now() < deadline && count(b, 'SELECT count(*) AS n FROM pairings') > 0) await new Promise((r) => setTimeout(r, 500));
    expect(count(b, 'SELECT count(*) AS n FROM pairings'), 'expired pairings left after 25 s').toBe(0);
  });
});

/** At most `points` of many racing consumes get through, on each store, from two instances at once. */
describe('rate-limit counters are atomic (two instances on one store)', () => {
  const trials = 5;
  const racers = 60;
  const rule = { points: 7, windowMs: 60_000 };

  async function race(a: Storage, b: Storage): Promise<number[]> {
    const limits = [createStoreRateLimiter({ hits: a.rateHits }), createStoreRateLimiter({ hits: b.rateHits })];
    const allowed: number[] = [];
    for (let t = 0; t < trials; t++) {
      const key = `test.race:${randomUUID()}`;
      const verdicts = await Promise.all(Array.from({ length: racers }, (_, i) => limits[i % 2]!.consume(key, rule)));
      allowed.push(verdicts.filter((v) => v.allowed).length);
      // The refused ones are told how long to wait: until the first hit leaves the minute.
      for (const v of verdicts.filter((x) => !x.allowed)) expect(v.retryAfterMs).toBeGreaterThan(50_000);
    }
    return allowed;
  }

  it('SQLite: two connections to one file, 60 racing consumes with room for 7, five times: 7 each time', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'limits-race-'));
    const a = openSqliteStorage({ file: path.join(dir, 'store.db') });
    const b = openSqliteStorage({ file: path.join(dir, 'store.db') });
    try {
      expect(await race(a, b)).toEqual(Array(trials).fill(rule.points));
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe.skipIf(mongo.skip)('MongoDB (FerretDB on PostgreSQL, or MONGODB_URL)', () => {
    if (mongo.skip) return;
    const server = mongo;
    afterAll(() => server.dropCreatedDatabases());

    it('two clients on one database, 60 racing consumes with room for 7, five times: 7 each time (conditional updates would not hold here)', async () => {
      const database = server.freshDatabaseName('limitsrace');
      const clients = [new MongoClient(server.url), new MongoClient(server.url)];
      try {
        const [a, b] = await Promise.all(clients.map((client) => openMongoStorage({ client, database, gcIntervalMs: 0 })));
        expect(await race(a!, b!)).toEqual(Array(trials).fill(rule.points));
        await a!.close();
        await b!.close();
      } finally {
        for (const c of clients) await c.close();
      }
    });

    it('two bot instances on one database share the limits: 5 codes checked for a person, 120 overall', { timeout: 120_000 }, async () => {
      const database = server.freshDatabaseName('limitsbots');
      const masterKey = randomBytes(32).toString('base64');
      const apps: BotApp[] = [];
      const dirs: string[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const dir = await mkdtemp(path.join(tmpdir(), 'pairing-limits-mongo-'));
          dirs.push(dir);
          const config = loadConfig({ SMARTCARD_DATA_DIR: dir, SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', STORAGE: 'mongodb', MONGODB_URL: server.url, MONGODB_DATABASE: database, BOT_INSTANCE_ID: `limits-${i}` });
          apps.push(await startBot(config, { logger }));
        }
        const [a, b] = apps as [BotApp, BotApp];
        const refusedFor = async (personId?: string): Promise<number> =>
          (await a.storage.audit.list({ ...(personId ? { personId } : {}), limit: 10_000 })).filter((e) => e.action === 'pairing.code_refused').length;

        const person = randomUUID();
        const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).pairing.approve({ id: person }, randomUserCode())));
        expect(await refusedFor(person)).toBe(RULES.guessesPerPersonPer10Min);
        expect(burst.filter((r) => !r.ok && r.reason === 'too_many_tries')).toHaveLength(12 - RULES.guessesPerPersonPer10Min);

        const identities = Array.from({ length: 130 }, () => randomUUID());
        await pool(identities.length, 16, (i) => (i % 2 === 0 ? a : b).pairing.approve({ id: identities[i]! }, randomUserCode()));
        // 5 of the person's codes and 115 of the identities' fill the overall 120.
        expect(await refusedFor()).toBe(RULES.guessesOverallPerMinute);
      } finally {
        for (const app of apps) await app.close();
        for (const dir of dirs) await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
