/**
 * Capacity (issue #15), section 6 of `npm run bench`:
 * a. answer checks on the hash pool: triple records (one scrypt per check) against legacy
 *    per-answer records (three), closed loop with 50 checks in flight;
 * b. a file write shaped like an outbox send (open, write, fsync, close, rename) alone, and
 *    while 50 hashes are in flight on the hash pool, and on the libuv pool (`crypto.scrypt`,
 *    how answers were hashed before issue #15);
 * c. the outbox with 200,000 old messages: send time against an empty outbox, the folder
 *    listing each send used to make, and one prune run down to OUTBOX_MAX_FILES' default.
 * Figures only; nothing here asserts a speed.
 */
import { randomUUID, scrypt } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { mkdtemp, open, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ANSWER_HASH_PARAMS, hashAnswer, hashAnswerSet, verifyAnswers, type AnswerHash } from '../bot/security/answers';
import { sharedHashPool } from '../bot/security/hash-pool';
import { OUTBOX_RETENTION_DEFAULTS } from '../bot/mail/outbox-mail.adapter.config';
import { OutboxMailAdapter, pruneOutbox } from '../bot/mail/outbox-mail.adapter';
import type { Logger } from '../common/logger';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';

const ANSWERS = [
  { questionId: 'q03', answer: 'Capacity answer three' },
  { questionId: 'q06', answer: 'Capacity answer six' },
  { questionId: 'q10', answer: 'Capacity answer ten' },
  { questionId: 'q13', answer: 'Capacity answer thirteen' },
] as const;

/** Closed-loop throughput of one record shape. */
export interface CheckThroughput {
  scheme: 'triple' | 'per_answer';
  /** scrypt runs per check. */
  hashesPerCheck: number;
  inFlight: number;
  checks: number;
  checksPerSecond: number;
  latency: LatencySummary;
}

export interface CapacityBenchResult {
  poolSize: number;
  scrypt: AnswerHash['params'];
  checks: CheckThroughput[];
  /** Outbox-shaped file write, ms: alone, behind 50 hashes on the hash pool, behind 50 on libuv. */
  fileWrite: { alone: LatencySummary; behindHashPool: LatencySummary; behindLibuv: LatencySummary; hashesInFlight: number };
  outbox: {
    oldMessages: number;
    /** Time to create the old messages (empty files), ms. */
    seedMs: number;
    sendEmpty: LatencySummary;
    sendWithOld: LatencySummary;
    /** One `readdir` of the folder with the old messages: what each send cost before issue #15, ms. */
    listing: LatencySummary;
    prune: { maxFiles: number; removed: number; kept: number; ms: number; sendDuring: LatencySummary };
  };
}

async function closedLoop(scheme: CheckThroughput['scheme'], hashes: AnswerHash[], inFlight: number, ms: number): Promise<CheckThroughput> {
  const asked = [ANSWERS[0], ANSWERS[2], ANSWERS[3]].map((a) => ({ questionId: a.questionId, answer: a.answer }));
  const latency = new LatencyRecorder();
  const end = Date.now() + ms;
  let checks = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) {
        const r = await latency.time(() => verifyAnswers(hashes, asked));
        if (!r.every((c) => c.correct)) throw new Error('capacity bench: answers did not verify');
        checks++;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { scheme, hashesPerCheck: scheme === 'triple' ? 1 : 3, inFlight, checks, checksPerSecond: round(checks / seconds, 1), latency: latency.summary() };
}

/** open, write, fsync, close, rename: the file steps of one outbox send. */
async function outboxShapedWrite(dir: string): Promise<void> {
  const tmp = path.join(dir, `.${randomUUID()}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile('Subject: bench\r\n\r\n'.padEnd(3000, 'x'), 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path.join(dir, `${randomUUID()}.eml`));
}

async function fileWriteBehind(dir: string, samples: number, load: (() => Promise<unknown>) | null, inFlight: number): Promise<LatencySummary> {
  const rec = new LatencyRecorder();
  for (let i = 0; i < samples; i++) {
    const pending = load ? Array.from({ length: inFlight }, () => load()) : [];
    await rec.time(() => outboxShapedWrite(dir));
    await Promise.all(pending);
  }
  return rec.summary();
}

function libuvScrypt(): Promise<Buffer> {
  const { N, r, p } = ANSWER_HASH_PARAMS;
  return new Promise((resolve, reject) => scrypt('bench', 'salt-salt-salt-s', 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))));
}

function message(): { id: string; to: string; kind: 'unlock_notice'; subject: string; text: string; html: string } {
  return { id: randomUUID(), to: 'bench.person@nhs.net', kind: 'unlock_notice', subject: 'Your smartcard was unlocked', text: 'Your smartcard was unlocked.\n', html: '<p>Your smartcard was unlocked.</p>\n' };
}

async function sends(mail: OutboxMailAdapter, count: number): Promise<LatencySummary> {
  const rec = new LatencyRecorder();
  for (let i = 0; i < count; i++) await rec.time(() => mail.send(message()));
  return rec.summary();
}

/**
 * Run section 6.
 *
 * @param options - `checkMs` closed-loop window per shape (ms), `inFlight` checks at once (50),
 *   `writeSamples` file writes per case, `oldMessages` (200,000), `sendSamples` sends per case
 */
export async function benchCapacity(
  logger: Logger,
  options: { checkMs: number; inFlight: number; writeSamples: number; oldMessages: number; sendSamples: number; log: (line: string) => void },
): Promise<CapacityBenchResult> {
  const pool = sharedHashPool();
  const triple = await hashAnswerSet(ANSWERS.map((a) => ({ ...a })));
  const perAnswer = await Promise.all(ANSWERS.map((a) => hashAnswer(a.questionId, a.answer)));
  options.log(`      answer checks, ${options.inFlight} in flight, hash pool of ${pool.size} ...`);
  const checks = [await closedLoop('triple', triple, options.inFlight, options.checkMs), await closedLoop('per_answer', perAnswer, options.inFlight, options.checkMs)];

  const root = await mkdtemp(path.join(tmpdir(), 'bench-capacity-'));
  try {
    options.log('      file writes alone, behind hashes on the hash pool, behind hashes on libuv ...');
    const writes = path.join(root, 'writes');
    mkdirSync(writes);
    const hashLoad = (): Promise<unknown> => pool.scrypt({ password: 'bench', salt: Buffer.from('salt-salt-salt-s'), keylen: 32, params: { ...ANSWER_HASH_PARAMS } });
    const alone = await fileWriteBehind(writes, options.writeSamples, null, 0);
    const behindHashPool = await fileWriteBehind(writes, options.writeSamples, hashLoad, 50);
    const behindLibuv = await fileWriteBehind(writes, options.writeSamples, libuvScrypt, 50);

    options.log(`      outbox: seeding ${options.oldMessages.toLocaleString('en-GB')} old messages ...`);
    const emptyDir = path.join(root, 'outbox-empty');
    const sendEmpty = await sends(new OutboxMailAdapter({ dir: emptyDir, logger }), options.sendSamples);
    const dir = path.join(root, 'outbox');
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    for (let i = 0; i < options.oldMessages; i++) {
      // Empty files: the folder's size, not the bytes, is what a listing pays for.
      const stamp = new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
      closeSync(openSync(path.join(dir, `${stamp}-unlock_code-${randomUUID()}.eml`), 'w', 0o600));
    }
    const seedMs = Date.now() - t0;
    const mail = new OutboxMailAdapter({ dir, logger });
    const sendWithOld = await sends(mail, options.sendSamples);
    const listing = new LatencyRecorder();
    for (let i = 0; i < 5; i++) await listing.time(() => readdir(dir));

    // OUTBOX_MAX_FILES' default, or a quarter of a smaller (--quick) seed so the prune has work to do.
    const maxFiles = Math.min(OUTBOX_RETENTION_DEFAULTS.maxFiles, Math.floor(options.oldMessages / 4));
    options.log(`      outbox: pruning to ${maxFiles.toLocaleString('en-GB')} messages, sending meanwhile ...`);
    const p0 = Date.now();
    let pruning = true;
    const during = new LatencyRecorder();
    const prune = pruneOutbox(dir, { maxAgeMs: null, maxFiles, now: new Date() }).finally(() => (pruning = false));
    while (pruning) {
      await during.time(() => mail.send(message()));
      await new Promise((r) => setTimeout(r, 20));
    }
    const pruned = await prune;
    return {
      poolSize: pool.size,
      scrypt: triple[0]!.params,
      checks,
      fileWrite: { alone, behindHashPool, behindLibuv, hashesInFlight: 50 },
      outbox: {
        oldMessages: options.oldMessages,
        seedMs,
        sendEmpty,
        sendWithOld,
        listing: listing.summary(),
        prune: { maxFiles, removed: pruned.removed, kept: pruned.kept, ms: Date.now() - p0, sendDuring: during.summary() },
      },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The section's printed lines. */
export function capacityReport(c: CapacityBenchResult, fmt: (n: number, digits?: number) => string, table: (header: string[], rows: string[][]) => string): string[] {
  const out: string[] = [];
  out.push(`\n== 6. Capacity (issue #15): answer checks on the hash pool (${c.poolSize} worker threads; scrypt N=${c.scrypt.N} r=${c.scrypt.r} p=${c.scrypt.p}) ==`);
  out.push(
    table(
      ['stored records', 'scrypt/check', 'in flight', 'checks', 'checks/s', 'p50 ms', 'p99 ms', 'checks/h'],
      c.checks.map((t) => [t.scheme === 'triple' ? 'triple (issue #15)' : 'per-answer (legacy)', String(t.hashesPerCheck), String(t.inFlight), String(t.checks), fmt(t.checksPerSecond, 1), fmt(t.latency.p50Ms, 0), fmt(t.latency.p99Ms, 0), fmt(t.checksPerSecond * 3600, 0)]),
    ),
  );
  out.push(`\n   Outbox-shaped file write (open, write, fsync, close, rename), ${c.fileWrite.alone.count} samples each:`);
  out.push(
    table(
      ['case', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['alone', fmt(c.fileWrite.alone.p50Ms), fmt(c.fileWrite.alone.p99Ms), fmt(c.fileWrite.alone.maxMs)],
        [`${c.fileWrite.hashesInFlight} hashes in flight on the hash pool`, fmt(c.fileWrite.behindHashPool.p50Ms), fmt(c.fileWrite.behindHashPool.p99Ms), fmt(c.fileWrite.behindHashPool.maxMs)],
        [`${c.fileWrite.hashesInFlight} hashes in flight on libuv (before #15)`, fmt(c.fileWrite.behindLibuv.p50Ms), fmt(c.fileWrite.behindLibuv.p99Ms), fmt(c.fileWrite.behindLibuv.maxMs)],
      ],
    ),
  );
  const o = c.outbox;
  out.push(`\n   Outbox send (${o.sendEmpty.count} sends each), ${o.oldMessages.toLocaleString('en-GB')} old messages seeded in ${fmt(o.seedMs / 1000, 1)} s:`);
  out.push(
    table(
      ['case', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['send, empty outbox', fmt(o.sendEmpty.p50Ms), fmt(o.sendEmpty.p99Ms), fmt(o.sendEmpty.maxMs)],
        [`send, ${o.oldMessages.toLocaleString('en-GB')} old messages`, fmt(o.sendWithOld.p50Ms), fmt(o.sendWithOld.p99Ms), fmt(o.sendWithOld.maxMs)],
        ['folder listing (each send paid this before #15)', fmt(o.listing.p50Ms), fmt(o.listing.p99Ms), fmt(o.listing.maxMs)],
        [`send while the prune runs (${o.prune.sendDuring.count} sends)`, fmt(o.prune.sendDuring.p50Ms), fmt(o.prune.sendDuring.p99Ms), fmt(o.prune.sendDuring.maxMs)],
      ],
    ),
  );
  out.push(`   prune to ${o.prune.maxFiles.toLocaleString('en-GB')} messages: removed ${o.prune.removed.toLocaleString('en-GB')}, kept ${o.prune.kept.toLocaleString('en-GB')}, in ${fmt(o.prune.ms / 1000, 1)} s (periodic job, not on the send path)`);
  return out;
}
