import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { scryptSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId as mainThreadId } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { HashPool, sharedHashPool } from './hash-pool';
import { ANSWER_HASH_PARAMS } from './answers';

const salt = Buffer.from('0123456789abcdef');
const params = { ...ANSWER_HASH_PARAMS };

describe('HashPool', () => {
  const pool = new HashPool({ size: 2 });
  afterAll(() => pool.close());

  it('derives the same key as scryptSync, on a worker thread, not the main thread', async () => {
    const out = await pool.scrypt({ password: 'st mary mead', salt, keylen: 32, params });
    expect(out.key.equals(scryptSync('st mary mead', salt, 32, { ...params, maxmem: 64 * 1024 * 1024 }))).toBe(true);
    expect(out.threadId).not.toBe(mainThreadId);
    expect(out.threadId).toBeGreaterThan(0);
  });

  it('runs 50 jobs in flight on at most `size` worker threads, queueing the rest in its own queue', async () => {
    const jobs = Array.from({ length: 50 }, (_, i) => pool.scrypt({ password: `answer ${i}`, salt, keylen: 32, params: { N: 1024, r: 8, p: 1 } }));
    const during = pool.stats();
    expect(during.busy + during.queued).toBe(50);
    expect(during.threads).toBeLessThanOrEqual(2);
    const outs = await Promise.all(jobs);
    const threads = new Set(outs.map((o) => o.threadId));
    expect(threads.has(mainThreadId)).toBe(false);
    expect(threads.size).toBeGreaterThanOrEqual(1);
    expect(threads.size).toBeLessThanOrEqual(2);
    expect(outs[7]!.key.equals(scryptSync('answer 7', salt, 32, { N: 1024, r: 8, p: 1 }))).toBe(true);
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0 });
  });

  it('leaves the libuv pool free: a file write started behind 50 queued hashes finishes before most of them', async () => {
    // Ordering, not timing: on the libuv pool (4 threads) the write would start only after ~46 hashes.
    const dir = await mkdtemp(join(tmpdir(), 'hash-pool-'));
    try {
      let done = 0;
      const jobs = Array.from({ length: 50 }, (_, i) => pool.scrypt({ password: `p${i}`, salt, keylen: 32, params: { N: 2 ** 14, r: 8, p: 1 } }).then(() => done++));
      await writeFile(join(dir, 'mail.eml'), 'Subject: test\r\n\r\nbody\r\n');
      const doneAtWrite = done;
      expect(await readFile(join(dir, 'mail.eml'), 'utf8')).toContain('Subject: test');
      await Promise.all(jobs);
      expect(doneAtWrite).toBeLessThan(25);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('fails a job with bad parameters as CRYPTO.HASH_FAILED, without the password, and keeps working', async () => {
    const err = (await pool.scrypt({ password: 'secret-answer', salt, keylen: 32, params: { N: 1000, r: 8, p: 1 } }).catch((e: unknown) => e)) as AppError;
    expect(err).toBeInstanceOf(AppError);
    expect(err.code).toBe('CRYPTO.HASH_FAILED');
    expect(JSON.stringify(err.toJSON())).not.toContain('secret-answer');
    const ok = await pool.scrypt({ password: 'x', salt, keylen: 16, params: { N: 1024, r: 8, p: 1 } });
    expect(ok.key).toHaveLength(16);
  });

  it('refuses a size outside 1..64, and jobs after close', async () => {
    expect(() => new HashPool({ size: 0 })).toThrow(/1 to 64/);
    expect(() => new HashPool({ size: 1.5 })).toThrow(/1 to 64/);
    const closed = new HashPool({ size: 1 });
    const running = expect(closed.scrypt({ password: 'x', salt, keylen: 32, params })).rejects.toMatchObject({ code: 'CRYPTO.HASH_FAILED' });
    await closed.close();
    await running;
    await expect(closed.scrypt({ password: 'x', salt, keylen: 32, params })).rejects.toMatchObject({ code: 'CRYPTO.HASH_FAILED' });
  });

  it('retires idle workers after idleMs and starts new ones for later work', async () => {
    const brief = new HashPool({ size: 1, idleMs: 20 });
    try {
      const first = await brief.scrypt({ password: 'x', salt, keylen: 32, params: { N: 1024, r: 8, p: 1 } });
      expect(brief.stats().threads).toBe(1);
      await new Promise((r) => setTimeout(r, 200));
      expect(brief.stats().threads).toBe(0);
      const second = await brief.scrypt({ password: 'x', salt, keylen: 32, params: { N: 1024, r: 8, p: 1 } });
      expect(second.key.equals(first.key)).toBe(true);
      expect(second.threadId).not.toBe(first.threadId);
    } finally {
      await brief.close();
    }
  });

  it('the shared pool is one instance sized to the cores', async () => {
    const { availableParallelism } = await import('node:os');
    expect(sharedHashPool()).toBe(sharedHashPool());
    expect(sharedHashPool().size).toBe(availableParallelism());
  });
});
