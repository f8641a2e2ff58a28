import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { openRotatingLog } from './rotating-log';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function logDir(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'rotating-log-'));
  cleanup.push(() => rm(base, { recursive: true, force: true }));
  return join(base, 'logs');
}

const lines = async (path: string): Promise<Array<{ n: number }>> =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { n: number });

describe('rotating log file', () => {
  it('rotates past the size limit, keeps `keep` older files (0600), drops the oldest, never splits a line', async () => {
    const dir = await logDir();
    const file = join(dir, 'companion.log');
    const logger = createLogger({ name: 'rot', level: 'info', destination: openRotatingLog({ file, maxBytes: 2000, keep: 2 }) });
    for (let n = 1; n <= 60; n++) logger.info({ n, pin: '123456' }, 'a line of about one hundred bytes for the rotation test');
    logger.flush();

    expect((await readdir(dir)).sort()).toEqual(['companion.log', 'companion.log.1', 'companion.log.2']);
    for (const name of ['companion.log', 'companion.log.1', 'companion.log.2']) {
      const s = await stat(join(dir, name));
      expect(s.mode & 0o777, name).toBe(0o600);
      expect(s.size, name).toBeLessThan(2000 + 300);
    }
    const live = await lines(file);
    const one = await lines(`${file}.1`);
    const two = await lines(`${file}.2`);
    // Newest in the live file, each older file directly before it, with no gap between them; the oldest lines dropped.
    expect(live.at(-1)!.n).toBe(60);
    expect(one.at(-1)!.n).toBe(live[0]!.n - 1);
    expect(two.at(-1)!.n).toBe(one[0]!.n - 1);
    expect(two[0]!.n).toBeGreaterThan(1);
    // Secrets stay redacted after rotation.
    expect(await readFile(file, 'utf8')).not.toContain('123456');
  });

  it('appends to an existing live file and counts its size', async () => {
    const dir = await logDir();
    const file = join(dir, 'companion.log');
    const first = createLogger({ name: 'rot', destination: openRotatingLog({ file, maxBytes: 1_000_000, keep: 3 }) });
    first.info({ n: 1 }, 'first run');
    const second = createLogger({ name: 'rot', destination: openRotatingLog({ file, maxBytes: (await stat(file)).size + 10, keep: 3 }) });
    second.info({ n: 2 }, 'second run');
    expect((await lines(`${file}.1`)).map((l) => l.n)).toEqual([1, 2]);
    second.info({ n: 3 }, 'after rotation');
    expect((await lines(file)).map((l) => l.n)).toEqual([3]);
  });
});
