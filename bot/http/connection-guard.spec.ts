import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { addressKey, ConnectionGuard, connectionBudget, DEFAULT_MAX_CONNECTIONS, parseOpenFileLimit } from './connection-guard';

const LIMITS_TEXT = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                1048576              files
Max locked memory         8388608              8388608              bytes
`;

describe('parseOpenFileLimit', () => {
  it('reads the soft limit from /proc/self/limits', () => {
    expect(parseOpenFileLimit(LIMITS_TEXT)).toBe(20000);
    expect(parseOpenFileLimit(LIMITS_TEXT.replace('20000 ', 'unlimited'))).toBe(Infinity);
  });
  it('is null when unknown', () => {
    expect(parseOpenFileLimit(null)).toBeNull();
    expect(parseOpenFileLimit('Max cpu time unlimited unlimited seconds\n')).toBeNull();
  });
});

describe('connectionBudget', () => {
  it('keeps a fifth of the file limit (at least 256) free, and lowers the default to fit', () => {
    expect(connectionBudget(null, 20000)).toEqual({ maxConnections: DEFAULT_MAX_CONNECTIONS, reserve: 4000, lowered: false });
    expect(connectionBudget(null, 1024)).toEqual({ maxConnections: 768, reserve: 256, lowered: true });
    expect(connectionBudget(null, 10000)).toEqual({ maxConnections: 8000, reserve: 2000, lowered: true });
  });
  it('takes a configured cap that fits, and refuses one that does not, naming the setting and the limit', () => {
    expect(connectionBudget(16000, 20000)).toEqual({ maxConnections: 16000, reserve: 4000, lowered: false });
    expect(() => connectionBudget(16001, 20000)).toThrow(/HTTP_MAX_CONNECTIONS: 16001 .*ulimit -n.* 20000.*at most 16000/);
  });
  it('refuses a file limit too low to run with', () => {
    expect(() => connectionBudget(null, 300)).toThrow(/open-file limit \(ulimit -n\) is 300.*raise it to 320/);
    expect(connectionBudget(null, 320).maxConnections).toBe(64);
  });
  it('does not clamp when the limit is unknown or unlimited', () => {
    expect(connectionBudget(null, null)).toEqual({ maxConnections: DEFAULT_MAX_CONNECTIONS, reserve: null, lowered: false });
    expect(connectionBudget(50000, Infinity)).toEqual({ maxConnections: 50000, reserve: null, lowered: false });
  });
});

describe('addressKey', () => {
  it('counts IPv4 (also IPv4-mapped) per address and IPv6 per /64', () => {
    expect(addressKey('127.0.0.2')).toBe('127.0.0.2');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('2001:db8:0:12::1')).toBe('2001:db8:0:12::/64');
    expect(addressKey('2001:db8:0:12:ffff:1:2:3')).toBe('2001:db8:0:12::/64');
    expect(addressKey('2001:0DB8:0000:0012:0000:0000:0000:0009')).toBe('2001:db8:0:12::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
  it('is null with no usable address', () => {
    expect(addressKey(undefined)).toBeNull();
    expect(addressKey('')).toBeNull();
    expect(addressKey('not-an-ip')).toBeNull();
  });
});

describe('ConnectionGuard at the overall cap', () => {
  let server: Server | null = null;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    server = null;
  });

  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('closes the connection waiting longest to make room, never one whose request is being answered', async () => {
    let release: () => void = () => undefined;
    const answered = new Promise<void>((r) => (release = r));
    server = createServer((req, res) => {
      if (req.url === '/slow') void answered.then(() => res.end('slow done'));
      else res.end('ok');
    });
    const guard = new ConnectionGuard(server, { headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5000, maxConnections: 3, maxConnectionsPerAddress: 0 }, createLogger({ name: 'guard-spec', level: 'silent' }));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;

    // A request in progress (answered later), then two silent connections, oldest first.
    const slow = new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/slow', agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    await sleep(100);
    const closed: string[] = [];
    for (const name of ['silent-1', 'silent-2']) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => closed.push(name));
      sockets.push(s);
      await sleep(100);
    }
    expect(guard.counts()).toEqual({ open: 3, waiting: 2, upgraded: 0, addresses: 1 });

    // At the cap: a new request is served, in place of the oldest silent connection.
    const fresh = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    expect(fresh).toBe('ok');
    await sleep(100);
    expect(closed).toEqual(['silent-1']);
    release();
    expect(await slow).toBe('slow done');
  });
});
