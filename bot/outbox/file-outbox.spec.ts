import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { FileOutbox, ORPHAN_MARKER_GRACE_MS, errnoOf, fileTimestamp, findSentFile, isRetryableErrno, pruneFileOutbox, writeFileOnce } from './file-outbox';
import type { FileOutboxLayout } from './file-outbox';

/** A layout of its own (not mail, not SMS): `<time>-note-<id>.txt`. */
const LAYOUT: FileOutboxLayout = {
  pattern: /^(\d{8}T\d{6})-note-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.txt$/,
  idGroup: 2,
};

function folder(): string {
  return path.join(mkdtempSync(path.join(tmpdir(), 'file-outbox-spec-')), 'outbox');
}

function note(at: Date, id: string = randomUUID(), content = `hello ${id}\n`) {
  return { id, compose: () => ({ name: `${fileTimestamp(at)}-note-${id}.txt`, content }) };
}

describe('writeFileOnce', () => {
  it('writes the file (0600, folder 0700) and its marker once; a repeat returns the same name without composing', async () => {
    const dir = folder();
    const n = note(new Date('2026-12-06T06:30:05.999Z'));
    const first = await writeFileOnce(dir, LAYOUT, n.id, n.compose);
    expect(first).toEqual({ name: `20261206T063005-note-${n.id}.txt`, written: true });
    expect(readFileSync(path.join(dir, first.name), 'utf8')).toBe(`hello ${n.id}\n`);
    expect(readFileSync(path.join(dir, '.ids', n.id), 'utf8')).toBe(first.name);
    expect(statSync(path.join(dir, first.name)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    let composed = 0;
    const again = await writeFileOnce(dir, LAYOUT, n.id, () => (composed++, n.compose()));
    expect(again).toEqual({ name: first.name, written: false });
    expect(composed).toBe(0);
    expect(readdirSync(dir).filter((f) => !f.startsWith('.'))).toEqual([first.name]);
  });

  it('writes again when the marker names a file that is gone, or a name of another id', async () => {
    const dir = folder();
    const n = note(new Date('2026-12-06T06:30:00Z'));
    mkdirSync(path.join(dir, '.ids'), { recursive: true });
    writeFileSync(path.join(dir, '.ids', n.id), `20261206T063000-note-${randomUUID()}.txt`);
    expect(await findSentFile(dir, LAYOUT, n.id)).toBeNull();
    expect((await writeFileOnce(dir, LAYOUT, n.id, n.compose)).written).toBe(true);
    expect(await findSentFile(dir, LAYOUT, n.id)).toBe(`20261206T063000-note-${n.id}.txt`);
  });

  it('a folder that is a file throws ENOTDIR, which is not retryable', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'file-outbox-spec-'));
    writeFileSync(path.join(base, 'file'), 'x');
    const n = note(new Date());
    const err = await writeFileOnce(path.join(base, 'file', 'outbox'), LAYOUT, n.id, n.compose).catch((e: unknown) => e);
    expect(errnoOf(err)).toBe('ENOTDIR');
    expect(isRetryableErrno('ENOTDIR')).toBe(false);
    expect(isRetryableErrno('ENOSPC')).toBe(true);
    expect(isRetryableErrno(undefined)).toBe(true);
  });
});

describe('pruneFileOutbox', () => {
  it('removes messages past the age, then the oldest past the count, with their markers; foreign files stay', async () => {
    const dir = folder();
    const ids: string[] = [];
    for (const at of ['2026-12-01T00:00:00Z', '2026-12-05T00:00:00Z', '2026-12-05T12:00:00Z', '2026-12-06T00:00:00Z']) {
      const n = note(new Date(at));
      ids.push(n.id);
      await writeFileOnce(dir, LAYOUT, n.id, n.compose);
    }
    writeFileSync(path.join(dir, '20200101T000000-other.txt'), 'not ours');
    const result = await pruneFileOutbox(dir, LAYOUT, { maxAgeMs: 72 * 3_600_000, maxFiles: 2, now: new Date('2026-12-06T06:00:00Z') });
    expect(result).toEqual({ removed: 2, kept: 2 });
    const left = readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
    expect(left).toEqual(['20200101T000000-other.txt', `20261205T120000-note-${ids[2]}.txt`, `20261206T000000-note-${ids[3]}.txt`]);
    expect(readdirSync(path.join(dir, '.ids')).sort()).toEqual([ids[2], ids[3]].sort());
  });

  it('removes markers whose message is gone only when older than the grace time; an absent folder is empty', async () => {
    const dir = folder();
    const kept = note(new Date('2026-12-06T00:00:00Z'));
    await writeFileOnce(dir, LAYOUT, kept.id, kept.compose);
    const stale = randomUUID();
    const recent = randomUUID();
    writeFileSync(path.join(dir, '.ids', stale), `20261201T000000-note-${stale}.txt`);
    writeFileSync(path.join(dir, '.ids', recent), `20261206T000000-note-${recent}.txt`);
    const old = (Date.now() - ORPHAN_MARKER_GRACE_MS - 60_000) / 1000;
    utimesSync(path.join(dir, '.ids', stale), old, old);
    expect(await pruneFileOutbox(dir, LAYOUT, { maxAgeMs: null, maxFiles: null, now: new Date() })).toEqual({ removed: 0, kept: 1, orphanMarkers: 1 });
    expect(existsSync(path.join(dir, '.ids', stale))).toBe(false);
    expect(existsSync(path.join(dir, '.ids', recent))).toBe(true);
    expect(await pruneFileOutbox(folder(), LAYOUT, { maxAgeMs: 1, maxFiles: 1, now: new Date() })).toEqual({ removed: 0, kept: 0 });
  });
});

/** A note outbox on the base class, as the mail and SMS adapters use it. */
class NoteOutbox extends FileOutbox<string> {
  writes = 0;
  send(id: string, at: Date): Promise<string> {
    return this.onePerId(id, async () => {
      this.writes++;
      return (await writeFileOnce(this.dir, LAYOUT, id, note(at, id).compose)).name;
    }, () => this.send(id, at));
  }
}

describe('FileOutbox', () => {
  const logger = createLogger({ name: 'spec', level: 'silent' });

  it('sends of one id at the same time write once; prune applies the retention, concurrent calls share one run', async () => {
    const dir = folder();
    const outbox = new NoteOutbox({ dir, layout: LAYOUT, logger, now: () => new Date('2026-12-06T00:00:00Z'), retention: { maxAgeMs: 3_600_000, maxFiles: null, intervalMs: 60_000 }, label: 'note outbox' });
    try {
      const id = randomUUID();
      const names = await Promise.all([outbox.send(id, new Date('2026-01-01T00:00:00Z')), outbox.send(id, new Date('2026-01-01T00:00:00Z'))]);
      expect(names).toEqual([`20260101T000000-note-${id}.txt`, `20260101T000000-note-${id}.txt`]);
      expect(outbox.writes).toBe(1);
      const [a, b] = [outbox.prune(), outbox.prune()];
      expect(a).toBe(b);
      expect(await a).toEqual({ removed: 1, kept: 0 });
      expect(readdirSync(dir).filter((f) => !f.startsWith('.'))).toEqual([]);
    } finally {
      outbox.close();
    }
  });

  it('without retention removes nothing and reports kept -1', async () => {
    const dir = folder();
    const outbox = new NoteOutbox({ dir, layout: LAYOUT, logger, label: 'note outbox' });
    await outbox.send(randomUUID(), new Date('2020-01-01T00:00:00Z'));
    expect(await outbox.prune()).toEqual({ removed: 0, kept: -1 });
    expect(readdirSync(dir).filter((f) => !f.startsWith('.'))).toHaveLength(1);
  });
});
