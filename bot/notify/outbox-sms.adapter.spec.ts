import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger';
import type { NotifyMessage } from './notify.port';
import { OutboxSmsAdapter, readSmsOutbox, renderLocally } from './outbox-sms.adapter';

function setup(dir = path.join(mkdtempSync(path.join(tmpdir(), 'sms-outbox-spec-')), 'sms-outbox')) {
  const lines: string[] = [];
  const logger = createLogger({ name: 'spec', level: 'trace', destination: new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }) });
  return { dir, lines, adapter: new OutboxSmsAdapter({ dir, logger, now: () => new Date('2026-12-06T05:10:11.123Z') }) };
}

function message(): NotifyMessage {
  const id = randomUUID();
  return { id, channel: 'sms', kind: 'unlock_code', to: '+447700900123', reference: id, personalisation: { code: '48213907', minutes: '15', expires_at: '05:25 GMT' } };
}

describe('SMS outbox', () => {
  it('writes one file per id, named by time, channel, kind and id; a repeat writes nothing', async () => {
    const { dir, adapter, lines } = setup();
    const m = message();
    const first = await adapter.send(m);
    const again = await adapter.send(m);
    expect(first).toEqual({ status: 'sent', notificationId: `20261206T051011-sms-unlock_code-${m.id}.json`, reference: m.id });
    expect(again).toEqual(first);
    const stored = await readSmsOutbox(dir);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ id: m.id, to: '+447700900123', at: '2026-12-06T05:10:11.123Z', text: renderLocally('unlock_code', m.personalisation) });
    expect(stored[0]!.text).toContain('48213907');
    for (const l of lines) {
      expect(l).not.toContain('48213907');
      expect(l).not.toContain('7700900123');
    }
  });

  it('a folder that is a file fails as a permanent io error, naming the errno', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'sms-outbox-spec-'));
    const file = path.join(base, 'not-a-folder');
    writeFileSync(file, 'x');
    const { adapter } = setup(path.join(file, 'sms-outbox'));
    await expect(adapter.send(message())).rejects.toMatchObject({ code: 'NOTIFY.SEND_FAILED', meta: { reason: 'io', retryable: false, detail: 'ENOTDIR' } });
  });

  it('an absent folder reads as empty; foreign files are skipped', async () => {
    const { dir, adapter } = setup();
    expect(await readSmsOutbox(dir)).toEqual([]);
    await adapter.send(message());
    writeFileSync(path.join(dir, 'notes.txt'), 'x');
    expect(await readSmsOutbox(dir)).toHaveLength(1);
  });

  it('prunes like the mail outbox: messages older than maxAgeMs go with their markers; a later send of that id writes again', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'sms-outbox-spec-')), 'sms-outbox');
    const logger = createLogger({ name: 'spec', level: 'silent' });
    let clock = new Date('2026-12-01T00:00:00.000Z');
    const adapter = new OutboxSmsAdapter({ dir, logger, now: () => clock, retention: { maxAgeMs: 72 * 3_600_000, maxFiles: null, intervalMs: 3_600_000 } });
    try {
      const old = message();
      await adapter.send(old);
      clock = new Date('2026-12-06T00:00:00.000Z');
      const fresh = message();
      await adapter.send(fresh);
      expect(await adapter.prune()).toMatchObject({ removed: 1, kept: 1 });
      expect((await readSmsOutbox(dir)).map((r) => r.id)).toEqual([fresh.id]);
      expect(existsSync(path.join(dir, '.ids', old.id))).toBe(false);
      expect(existsSync(path.join(dir, '.ids', fresh.id))).toBe(true);
      const again = await adapter.send(old);
      expect(again.notificationId).toBe(`20261206T000000-sms-unlock_code-${old.id}.json`);
      expect((await readSmsOutbox(dir)).map((r) => r.id).sort()).toEqual([fresh.id, old.id].sort());
    } finally {
      adapter.close();
    }
  });

  it('without retention, prune removes nothing and says so (kept: -1)', async () => {
    const { adapter, dir } = setup();
    await adapter.send(message());
    expect(await adapter.prune()).toEqual({ removed: 0, kept: -1 });
    expect(await readSmsOutbox(dir)).toHaveLength(1);
  });
});
