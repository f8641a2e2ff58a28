/**
 * The send path never lists the outbox folder (issue #15): `readdir` and `opendir` are wrapped
 * to count calls, and a folder already holding messages gets more sends, repeats included.
 */
import { mkdtemp, readdir as realReaddir, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const listings = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    readdir: (...args: Parameters<typeof fs.readdir>) => {
      listings.count++;
      return fs.readdir(...args);
    },
    opendir: (...args: Parameters<typeof fs.opendir>) => {
      listings.count++;
      return fs.opendir(...args);
    },
  };
});

const { OutboxMailAdapter } = await import('./outbox-mail.adapter');
const { createLogger } = await import('../../common/logger');

describe('OutboxMailAdapter send is O(1): no folder listing', () => {
  const root = mkdtemp(join(tmpdir(), 'outbox-o1-'));
  afterAll(async () => rm(await root, { recursive: true, force: true }));

  it('sends to a folder of 500 old messages, and repeats, without reading the folder', async () => {
    const dir = join(await root, 'outbox');
    const mail = new OutboxMailAdapter({ dir, logger: createLogger({ name: 't', level: 'silent' }) });
    const message = (id = randomUUID()) => ({ id, to: 'alex.wilber@nhs.net', kind: 'unlock_notice' as const, subject: 'Your smartcard was unlocked', text: 'notice\n', html: '<p>notice</p>\n' });
    await mail.send(message());
    for (let i = 0; i < 500; i++) await writeFile(join(dir, `20260101T000000-unlock_notice-${randomUUID()}.eml`), 'x');
    listings.count = 0;
    const first = message();
    const sent = await mail.send(first);
    const repeat = await new OutboxMailAdapter({ dir, logger: createLogger({ name: 't', level: 'silent' }) }).send({ ...first, subject: 'changed' });
    await Promise.all(Array.from({ length: 20 }, () => mail.send(message())));
    expect(listings.count).toBe(0);
    expect(repeat).toEqual(sent);
    const names = await realReaddir(dir);
    expect(names.filter((n) => n.endsWith('.eml'))).toHaveLength(1 + 500 + 1 + 20);
    expect(names.filter((n) => n.endsWith(`-${first.id}.eml`))).toEqual([sent.providerMessageId]);
  });
});
