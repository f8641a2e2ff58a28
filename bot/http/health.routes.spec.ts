import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import restify, { type Server } from 'restify';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { createLogger } from '../../common/logger';
import { registerHealthRoutes, type HealthRoutesOptions, type ReadinessCheck } from './health.routes';

let server: Server | null = null;
afterEach(async () => {
  const s = server;
  server = null;
  if (s) await new Promise<void>((r) => s.close(() => r()));
});

/** Serve the health routes on loopback; returns a GET helper and the log lines. */
async function serve(options: HealthRoutesOptions): Promise<{ get: (path: string) => Promise<{ status: number; body: Record<string, unknown> }>; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const s = restify.createServer({ name: 'spec' });
  registerHealthRoutes(s, options, createLogger({ name: 'spec', destination }));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  server = s;
  const base = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return {
    logs,
    get: async (path) => {
      const res = await fetch(base + path);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}

/** A check whose answer the test changes, counting its calls. */
function part(name: string, answer: () => Promise<void> = async () => undefined): ReadinessCheck & { calls: number; set: (a: () => Promise<void>) => void } {
  let current = answer;
  const c = {
    name,
    calls: 0,
    set: (a: () => Promise<void>) => (current = a),
    check: () => {
      c.calls++;
      return current();
    },
  };
  return c;
}

const down = (code: string) => async (): Promise<void> => {
  throw new AppError(code, 'mongodb://user:pw@db.example/ unreachable');
};

describe('GET /healthz and GET /readyz', () => {
  it('answers 200 ready with every part when each answers', async () => {
    const { get } = await serve({ checks: [part('storage'), part('mail')] });
    expect(await get('/readyz')).toEqual({ status: 200, body: { status: 'ready', checks: { storage: 'ok', mail: 'ok' } } });
    expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it.each([
    ['storage', ['storage']],
    ['mail', ['mail']],
    ['both', ['storage', 'mail']],
  ])('answers 503 naming the failing part (%s down) while /healthz stays 200', async (which, failing) => {
    const storage = part('storage', which !== 'mail' ? down('STORAGE.UNAVAILABLE') : undefined);
    const mail = part('mail', which !== 'storage' ? down('MAIL.UNAVAILABLE') : undefined);
    const { get } = await serve({ checks: [storage, mail] });
    const r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ status: 'not ready', failing });
    expect((await get('/healthz')).status).toBe(200);
  });

  it('counts a check that does not answer in time as failing, and answers within the bound', async () => {
    const { get } = await serve({ checks: [part('storage'), part('mail', () => new Promise(() => undefined))], timeoutMs: 200 });
    const t0 = Date.now();
    const r = await get('/readyz');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r).toEqual({ status: 503, body: { status: 'not ready', failing: ['mail'], checks: { storage: 'ok', mail: 'timeout' } } });
  });

  it('answers 503 stopping, checking nothing, once shutdown has begun', async () => {
    let stopping = false;
    const storage = part('storage');
    const { get } = await serve({ checks: [storage], isStopping: () => stopping });
    expect((await get('/readyz')).status).toBe(200);
    stopping = true;
    expect(await get('/readyz')).toEqual({ status: 503, body: { status: 'stopping', failing: [] } });
    expect(storage.calls).toBe(1);
    expect((await get('/healthz')).status).toBe(200);
  });

  it('lets probes that arrive during one round share it', async () => {
    let release!: () => void;
    const storage = part('storage', () => new Promise<void>((r) => (release = r)));
    const { get } = await serve({ checks: [storage] });
    const probes = Promise.all([get('/readyz'), get('/readyz'), get('/readyz')]);
    await new Promise((r) => setTimeout(r, 100));
    release();
    expect((await probes).map((p) => p.status)).toEqual([200, 200, 200]);
    expect(storage.calls).toBe(1);
  });

  it('logs a part once when it starts failing and once when it is back, by name and code, never the error text', async () => {
    const storage = part('storage', down('STORAGE.UNAVAILABLE'));
    const { get, logs } = await serve({ checks: [storage] });
    await get('/readyz');
    await get('/readyz');
    storage.set(async () => undefined);
    await get('/readyz');
    await get('/readyz');
    const lines = logs.filter((l) => String(l['msg']).startsWith('readiness'));
    expect(lines.map((l) => [l['msg'], l['part'], l['code'] ?? null])).toEqual([
      ['readiness: part not reachable', 'storage', 'STORAGE.UNAVAILABLE'],
      ['readiness: part reachable again', 'storage', null],
    ]);
    expect(JSON.stringify(logs)).not.toContain('user:pw');
  });
});
