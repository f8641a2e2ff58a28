/**
 * Breaker, session 4: the SMS outbox (the default SMS transport, issue #14). A send must not list the folder
 * (it did, for every send: ~0.4 s a send with 100,000 messages, and the folder has no retention), and must stay
 * idempotent on the id across a restart (a crash after the write, before the effect was removed: the retry
 * writes nothing new) and after a crash between the marker and the message (the retry writes the message).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../common/logger';
import type { NotifyMessage } from '../../bot/notify/notify.port';
import { OutboxSmsAdapter, readSmsOutbox } from '../../bot/notify/outbox-sms.adapter';

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return { ...real, readdir: vi.fn(real.readdir), opendir: vi.fn(real.opendir) };
});

const root = mkdtempSync(join(tmpdir(), 'breaker-s4-sms-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const logger = createLogger({ name: 'breaker', level: 'silent' });
let n = 0;

function message(): NotifyMessage {
  const id = randomUUID();
  return { id, channel: 'sms', kind: 'unlock_code', to: '+447700900123', reference: id, personalisation: { code: '48213907', minutes: '15', expires_at: '05:25 GMT' } };
}

const messagesIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('breaker s4: SMS outbox', () => {
  it('a send (first or repeated) never lists the outbox folder', async () => {
    const dir = join(root, `o${++n}`);
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `20261206T000000-sms-unlock_code-${randomUUID()}.json`), '{}');
    const adapter = new OutboxSmsAdapter({ dir, logger });
    const listed = (): number => [...vi.mocked(fsp.readdir).mock.calls, ...vi.mocked(fsp.opendir).mock.calls].filter((c) => String(c[0]).startsWith(dir)).length;
    const m = message();
    await adapter.send(m);
    await adapter.send(m);
    await adapter.send(message());
    expect(listed()).toBe(0);
    expect(messagesIn(dir)).toHaveLength(202);
  });

  it('a restarted bot retrying the same id writes nothing new; a crash between the marker and the message is repaired by the retry', async () => {
    const dir = join(root, `o${++n}`);
    const m = message();
    const first = await new OutboxSmsAdapter({ dir, logger }).send(m);
    const again = await new OutboxSmsAdapter({ dir, logger }).send(m);
    expect(again).toEqual(first);
    expect(messagesIn(dir)).toHaveLength(1);

    // Crash after the marker, before the message was renamed into place: the retry writes it.
    const lost = message();
    mkdirSync(join(dir, '.ids'), { recursive: true });
    writeFileSync(join(dir, '.ids', lost.id), `20261206T000000-sms-unlock_code-${lost.id}.json`);
    await new OutboxSmsAdapter({ dir, logger }).send(lost);
    const stored = await readSmsOutbox(dir);
    expect(stored.map((r) => r.id).sort()).toEqual([m.id, lost.id].sort());
    expect(stored.find((r) => r.id === lost.id)?.personalisation.code).toBe('48213907');
  });
});
