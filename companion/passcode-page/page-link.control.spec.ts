import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { PAGE_LINK_PATTERN, PageLinkControl, pageLinkSocketPath, requestPageLink, requestShow, requestUnpair, watchLinkRequests } from './page-link.control';

const logger = createLogger({ name: 'page-link-spec', level: 'silent' });
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const link = (n: number): string => `http://127.0.0.1:4321/?t=${String(n).padStart(43, 'A')}`;

async function dataDir(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'page-link-'));
  cleanup.push(() => rm(base, { recursive: true, force: true }));
  return join(base, 'companion'); // not there yet: the control creates it 0700
}

async function control(dir: string, issue: () => string): Promise<PageLinkControl> {
  const c = new PageLinkControl({ socketPath: pageLinkSocketPath(dir), issue, logger });
  cleanup.push(() => c.stop());
  return c;
}

describe.skipIf(process.platform === 'win32')('page link control socket (--page-link)', () => {
  it('answers each request with a fresh link from issue(); the socket is 0600 in a 0700 directory', async () => {
    const dir = await dataDir();
    let n = 0;
    const c = await control(dir, () => link(++n));
    expect(await c.start()).toEqual({ listening: true });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(pageLinkSocketPath(dir))).mode & 0o777).toBe(0o600);
    expect(await requestPageLink(pageLinkSocketPath(dir))).toEqual({ ok: true, link: link(1) });
    expect(await requestPageLink(pageLinkSocketPath(dir))).toEqual({ ok: true, link: link(2) });
    expect(n).toBe(2);
  });

  it('a connection that asks nothing, or asks something else, mints nothing', async () => {
    const dir = await dataDir();
    let n = 0;
    const c = await control(dir, () => link(++n));
    await c.start();
    for (const said of ['', 'please\n', 'link\nlink\n', 'x'.repeat(100)]) {
      const got = await new Promise<string>((resolve) => {
        let text = '';
        const s = connect(pageLinkSocketPath(dir), () => {
          if (said) s.write(said);
          setTimeout(() => s.end(), 100);
        });
        s.setEncoding('utf8');
        s.on('data', (d: string) => (text += d));
        s.on('close', () => resolve(text));
        s.on('error', () => resolve(text));
      });
      expect(got, JSON.stringify(said)).toBe('');
    }
    expect(n).toBe(0);
  });

  it('a show request (a second start) calls show() and is answered; without show() it is refused and mints nothing', async () => {
    const dir = await dataDir();
    let shown = 0;
    let minted = 0;
    const c = new PageLinkControl({ socketPath: pageLinkSocketPath(dir), issue: () => link(++minted), show: () => void shown++, logger });
    cleanup.push(() => c.stop());
    await c.start();
    expect(await requestShow(pageLinkSocketPath(dir))).toBe(true);
    expect(await requestShow(pageLinkSocketPath(dir))).toBe(true);
    expect(shown).toBe(2);
    expect(minted).toBe(0);
    await c.stop();
    const other = await dataDir();
    const noShow = await control(other, () => link(++minted));
    await noShow.start();
    expect(await requestShow(pageLinkSocketPath(other), 1000)).toBe(false);
    expect(minted).toBe(0);
    expect(await requestShow(join(other, 'nothing.sock'), 1000)).toBe(false);
  });

  it('an unpair request runs unpair() and answers its outcome; without unpair() it is refused', async () => {
    const dir = await dataDir();
    const outcomes: Array<'unpaired' | 'unreachable'> = ['unreachable', 'unpaired'];
    const c = new PageLinkControl({ socketPath: pageLinkSocketPath(dir), issue: () => link(1), unpair: () => Promise.resolve(outcomes.shift()!), logger });
    cleanup.push(() => c.stop());
    await c.start();
    expect(await requestUnpair(pageLinkSocketPath(dir))).toBe('unreachable');
    expect(await requestUnpair(pageLinkSocketPath(dir))).toBe('unpaired');
    await c.stop();
    const other = await dataDir();
    await (await control(other, () => link(1))).start();
    expect(await requestUnpair(pageLinkSocketPath(other), 1000)).toBe('no_answer');
    expect(await requestUnpair(join(other, 'nothing.sock'), 1000)).toBe('no_answer');
  });

  it('says no companion runs when nothing listens, and after stop the socket file is gone', async () => {
    const dir = await dataDir();
    expect(await requestPageLink(pageLinkSocketPath(dir))).toMatchObject({ ok: false, reason: 'not_running', message: expect.stringContaining('No companion is running') });
    const c = await control(dir, () => link(1));
    await c.start();
    await c.stop();
    await expect(stat(pageLinkSocketPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await requestPageLink(pageLinkSocketPath(dir))).toMatchObject({ ok: false, reason: 'not_running' });
  });

  it('replaces a socket file left by a companion that died, but not one another companion answers on', async () => {
    const dir = await dataDir();
    const first = await control(dir, () => link(1));
    await first.start();
    const second = await control(dir, () => link(2));
    expect(await second.start()).toEqual({ listening: false, reason: 'in_use' });
    expect(await requestPageLink(pageLinkSocketPath(dir))).toEqual({ ok: true, link: link(1) });
    await first.stop();
    await writeFile(pageLinkSocketPath(dir), ''); // a stale file where the socket was
    const third = await control(dir, () => link(3));
    expect(await third.start()).toEqual({ listening: true });
    expect(await requestPageLink(pageLinkSocketPath(dir))).toEqual({ ok: true, link: link(3) });
  });

  it('gives no link when the companion cannot mint one (page not listening)', async () => {
    const dir = await dataDir();
    const c = await control(dir, () => {
      throw Object.assign(new Error('the passcode page is not listening'), { code: 'PAGE.NOT_STARTED' });
    });
    await c.start();
    expect(await requestPageLink(pageLinkSocketPath(dir), 2000)).toMatchObject({ ok: false, reason: 'no_answer' });
  });
});

describe('link shape and the terminal key', () => {
  it('PAGE_LINK_PATTERN takes only a loopback link with a 43-character token', () => {
    expect(PAGE_LINK_PATTERN.test(link(7))).toBe(true);
    for (const bad of ['http://127.0.0.1:4321/?t=short', 'http://evil.example:4321/?t=' + 'A'.repeat(43), `${link(7)}\nrm -rf`, 'https://127.0.0.1:1/?t=' + 'A'.repeat(43)]) {
      expect(PAGE_LINK_PATTERN.test(bad), bad).toBe(false);
    }
  });

  it('every line typed asks for one link; stop ends the watch', async () => {
    const input = new PassThrough();
    let asked = 0;
    const stop = watchLinkRequests(input, () => (asked += 1));
    input.write('\n');
    input.write('anything\n\n');
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toBe(3);
    stop();
    input.write('\n');
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toBe(3);
  });
});
