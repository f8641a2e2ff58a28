import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStorage, type SqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import { createStoreRateLimiter, retryAfterSeconds } from './store-rate-limiter';

describe('store rate limiter (on the embedded store)', () => {
  let dir: string;
  let storage: SqliteStorage;
  const T0 = Date.parse('2026-12-06T10:00:00.000Z');
  const at = (ms: number): Date => new Date(T0 + ms);
  const rule = { points: 3, windowMs: 60_000 };
  const storedHits = (): number => {
    const db = new Database(storage.settings().file, { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM rate_hits').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rate-limiter-'));
    storage = openSqliteStorage({ file: path.join(dir, 'store.db') });
  });
  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('allows `points` hits in the window with the remaining count, then refuses with the exact wait', async () => {
    const limits = createStoreRateLimiter({ hits: storage.rateHits });
    const verdicts = [];
    for (const ms of [0, 10_000, 20_000, 30_000]) verdicts.push(await limits.consume('test.k', rule, at(ms)));
    expect(verdicts).toEqual([
      { allowed: true, remaining: 2, retryAfterMs: 0 },
      { allowed: true, remaining: 1, retryAfterMs: 0 },
      { allowed: true, remaining: 0, retryAfterMs: 0 },
      { allowed: false, remaining: 0, retryAfterMs: 30_000 },
    ]);
    // Refused hits are not counted: after the wait one more fits, then the next waits for the hit at 10 s.
    expect(await limits.consume('test.k', rule, at(59_999))).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await limits.consume('test.k', rule, at(60_000))).toEqual({ allowed: true, remaining: 0, retryAfterMs: 0 });
    expect(await limits.consume('test.k', rule, at(60_000))).toEqual({ allowed: false, remaining: 0, retryAfterMs: 10_000 });
    expect(storedHits()).toBe(4);
    // Another key has its own count.
    expect(await limits.consume('test.other', rule, at(60_000))).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('uses its clock when no time is given', async () => {
    let now = at(0);
    const limits = createStoreRateLimiter({ hits: storage.rateHits, now: () => now });
    for (let i = 0; i < 3; i++) expect((await limits.consume('test.k', rule)).allowed).toBe(true);
    now = at(59_000);
    expect(await limits.consume('test.k', rule)).toMatchObject({ allowed: false, retryAfterMs: 1000 });
    now = at(60_000);
    expect((await limits.consume('test.k', rule)).allowed).toBe(true);
  });

  it('check answers as consume would and counts nothing', async () => {
    const limits = createStoreRateLimiter({ hits: storage.rateHits });
    expect(await limits.check('test.k', rule, at(0))).toEqual({ allowed: true, remaining: 3, retryAfterMs: 0 });
    for (const ms of [0, 10_000, 20_000]) await limits.consume('test.k', rule, at(ms));
    for (let i = 0; i < 5; i++) expect(await limits.check('test.k', rule, at(30_000))).toEqual({ allowed: false, remaining: 0, retryAfterMs: 30_000 });
    expect(await limits.check('test.k', rule, at(60_000))).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
    expect(storedHits()).toBe(3);
  });

  it('sweep deletes each hit once its own window has ended; the rest keep counting', async () => {
    const limits = createStoreRateLimiter({ hits: storage.rateHits });
    const long = { points: 2, windowMs: 10 * 60_000 };
    await limits.consume('test.long', long, at(0));
    await limits.consume('test.long', long, at(5 * 60_000));
    await limits.consume('test.short', rule, at(0));
    expect(await limits.sweep(at(60_001))).toBe(1); // the short one's minute is over
    expect(await limits.sweep(at(10 * 60_000))).toBe(0); // the long one at 0 still counts until 10 min
    expect(await limits.consume('test.long', long, at(10 * 60_000 - 1))).toMatchObject({ allowed: false, retryAfterMs: 1 });
    expect(await limits.sweep(at(10 * 60_000 + 1))).toBe(1);
    expect(storedHits()).toBe(1);
    expect(await limits.consume('test.long', long, at(10 * 60_000 + 1))).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('throws on a rule or key a caller got wrong (a programming error), storing nothing', async () => {
    const limits = createStoreRateLimiter({ hits: storage.rateHits });
    await expect(limits.consume('', rule, at(0))).rejects.toThrow(RangeError);
    await expect(limits.consume('k'.repeat(161), rule, at(0))).rejects.toThrow(/1\.\.160 characters/);
    await expect(limits.consume('test.k', { points: 0, windowMs: 1000 }, at(0))).rejects.toThrow(/points/);
    await expect(limits.check('test.k', { points: 1, windowMs: 24 * 3600_000 + 1 }, at(0))).rejects.toThrow(/windowMs/);
    expect(storedHits()).toBe(0);
  });

  it('retryAfterSeconds rounds up to whole seconds, at least 1', () => {
    expect([0, 1, 999, 1000, 1001, 59_001].map(retryAfterSeconds)).toEqual([1, 1, 1, 1, 2, 60]);
  });
});
