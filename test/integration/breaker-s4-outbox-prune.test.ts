/**
 * Breaker, session 4: the outbox's retention (issue #15, pruneOutbox) racing sends. While sends of fresh and
 * old messages (some ids sent twice, as a retried effect does) run, prune runs again and again with an age
 * and a count limit. Afterwards: every send settled as sent; every message left has its marker naming it; a
 * message newer than the age limit and within the count was not removed; sending every id again writes
 * nothing new for the ones still there.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { OUTBOX_FILE_PATTERN, OutboxMailAdapter, pruneOutbox } from '../../bot/mail/outbox-mail.adapter';
import type { MailMessage } from '../../bot/mail/mail.port';

const root = mkdtempSync(join(tmpdir(), 'breaker-s4-outbox-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const NOW = new Date('2026-12-06T06:00:00.000Z');
const HOUR = 3_600_000;

function message(id: string): MailMessage {
  return { id, to: 'alex.wilber@nhs.net', subject: 'Your unlock code', text: 'code', html: '<p>code</p>', kind: 'unlock_code' };
}

describe('breaker s4: outbox prune racing sends', () => {
  it('sends and prunes interleaved: markers and messages stay paired, nothing fresh is lost, a resend writes nothing new', async () => {
    const dir = join(root, 'o1');
    // Half the messages are "old" (written 48 h ago by the adapter's clock), half fresh.
    const ids: string[] = Array.from({ length: 240 }, () => randomUUID());
    const old = new Set(ids.filter((_, i) => i % 2 === 0));
    // Two adapters on the same folder (one whose clock is 48 h behind): idempotency is by the markers on disk.
    const logger = createLogger({ name: 'breaker', level: 'silent' });
    const oldAdapter = new OutboxMailAdapter({ dir, logger, now: () => new Date(NOW.getTime() - 48 * HOUR) });
    const freshAdapter = new OutboxMailAdapter({ dir, logger, now: () => NOW });
    const send = (id: string) => (old.has(id) ? oldAdapter : freshAdapter).send(message(id));
    let pruning = true;
    const pruner = (async () => {
      let runs = 0;
      while (pruning || runs < 3) {
        await pruneOutbox(dir, { maxAgeMs: 24 * HOUR, maxFiles: 500, now: NOW });
        runs++;
        await new Promise((r) => setImmediate(r));
      }
      return runs;
    })();
    const results: Array<Promise<unknown>> = [];
    for (const id of ids) {
      results.push(send(id));
      // A retried effect: the same id again, a little later.
      if (id.endsWith('a') || id.endsWith('3')) results.push(new Promise((r) => setImmediate(r)).then(() => send(id)));
      if (results.length % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    const settled = await Promise.allSettled(results);
    pruning = false;
    expect(await pruner).toBeGreaterThanOrEqual(3);
    expect(settled.filter((s) => s.status === 'rejected')).toEqual([]);
    // One more prune with nothing racing it.
    await pruneOutbox(dir, { maxAgeMs: 24 * HOUR, maxFiles: 500, now: NOW });

    const files = readdirSync(dir).filter((n) => OUTBOX_FILE_PATTERN.test(n));
    const byId = new Map(files.map((n) => [OUTBOX_FILE_PATTERN.exec(n)![3]!, n]));
    // Every fresh message is there, exactly once; no old one is.
    for (const id of ids) {
      if (old.has(id)) expect(byId.has(id), `old ${id}`).toBe(false);
      else expect(byId.has(id), `fresh ${id}`).toBe(true);
    }
    expect(files.length).toBe(byId.size);
    // Each message left has its marker, naming it.
    for (const [id, name] of byId) expect(readFileSync(join(dir, '.ids', id), 'utf8').trim()).toBe(name);
    // Sending the fresh ids again writes nothing new.
    for (const id of ids.filter((i) => !old.has(i))) await send(id);
    expect(readdirSync(dir).filter((n) => OUTBOX_FILE_PATTERN.test(n)).length).toBe(files.length);
  });
});
