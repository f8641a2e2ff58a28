import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import restify, { type Request, type Response } from 'restify';
import { describe, expect, it } from 'vitest';
import { AppError } from '../common/app-error';
import { createLogger } from '../common/logger';
import { exitGracefullyOnSignals, InFlightRequests, loadShutdownConfig, refuseWhileStopping, shutDown, type ShutdownSteps } from './lifecycle';

const logger = createLogger({ name: 'spec', level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const never = (): Promise<void> => new Promise(() => undefined);

describe('loadShutdownConfig', () => {
  it('defaults to 10 000 ms and reads a valid value', () => {
    expect(loadShutdownConfig({})).toEqual({ graceMs: 10_000 });
    expect(loadShutdownConfig({ SHUTDOWN_GRACE_MS: '' })).toEqual({ graceMs: 10_000 });
    expect(loadShutdownConfig({ SHUTDOWN_GRACE_MS: ' 2500 ' })).toEqual({ graceMs: 2500 });
  });

  it.each([
    ['abc', /whole number of milliseconds/],
    ['1.5', /whole number of milliseconds/],
    ['999', /at least 1000/],
    ['300001', /at most 300000/],
  ])('refuses SHUTDOWN_GRACE_MS=%s naming the setting', (value, reason) => {
    let err: unknown;
    try {
      loadShutdownConfig({ SHUTDOWN_GRACE_MS: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    expect((err as AppError).message).toMatch(/^SHUTDOWN_GRACE_MS: /);
    expect((err as AppError).message).toMatch(reason);
  });
});

/** Steps that record when each ran (ms since the start); each behaviour is the test's to choose. */
function recorder(behaviour: Partial<Record<keyof ShutdownSteps, () => Promise<void>>>): { steps: ShutdownSteps; log: Array<[string, number]> } {
  const t0 = Date.now();
  const log: Array<[string, number]> = [];
  const step = (name: keyof ShutdownSteps) => async () => {
    log.push([name, Date.now() - t0]);
    await (behaviour[name] ?? (async () => undefined))();
  };
  return { log, steps: { stopAccepting: step('stopAccepting'), settle: step('settle'), closeLinks: step('closeLinks'), release: step('release') } };
}

describe('shutDown', () => {
  it('runs the steps in order and is clean when the work in flight finishes', async () => {
    const { steps, log } = recorder({ settle: () => sleep(50) });
    const report = await shutDown(steps, { graceMs: 2000, logger });
    expect(log.map(([n]) => n)).toEqual(['stopAccepting', 'settle', 'closeLinks', 'release']);
    expect(report).toMatchObject({ clean: true, unfinished: [] });
  });

  it('closes the links when only the reserve is left, then lets the turns the links held up finish', async () => {
    let linksClosed = false;
    const { steps, log } = recorder({
      settle: async () => {
        while (!linksClosed) await sleep(10);
      },
      closeLinks: async () => {
        linksClosed = true;
      },
    });
    const report = await shutDown(steps, { graceMs: 1000, logger });
    const closeAt = log.find(([n]) => n === 'closeLinks')![1];
    // graceMs 1000 -> reserve 250: links close at about 750 ms.
    expect(closeAt).toBeGreaterThanOrEqual(700);
    expect(closeAt).toBeLessThan(950);
    expect(log.map(([n]) => n)).toEqual(['stopAccepting', 'settle', 'closeLinks', 'settle', 'release']);
    expect(report).toMatchObject({ clean: true, unfinished: [] });
  });

  it('ends within the grace time when work never finishes, and says what did not', async () => {
    const { steps, log } = recorder({ settle: never });
    const report = await shutDown(steps, { graceMs: 1000, logger });
    expect(report.ms).toBeLessThan(1300);
    expect(report).toMatchObject({ clean: false, unfinished: ['settle after links'] });
    expect(log.map(([n]) => n)).toContain('release');
  });

  it('counts a failing step as unfinished and still releases the rest', async () => {
    const { steps, log } = recorder({ closeLinks: async () => Promise.reject(new AppError('LINK.X', 'boom')) });
    const report = await shutDown(steps, { graceMs: 1000, logger });
    expect(report).toMatchObject({ clean: false, unfinished: ['closeLinks'] });
    expect(log.map(([n]) => n)).toContain('release');
  });
});

describe('exitGracefullyOnSignals', () => {
  const setup = (stop: () => Promise<{ clean: boolean; ms: number; unfinished: string[] }>, graceMs = 1000) => {
    const signals = new EventEmitter();
    const exits: Array<[number, number]> = [];
    const t0 = Date.now();
    let calls = 0;
    exitGracefullyOnSignals(
      () => {
        calls++;
        return stop();
      },
      { graceMs, logger, exit: (code) => void exits.push([code, Date.now() - t0]), signals: signals as unknown as NodeJS.Process },
    );
    return { signals, exits, calls: () => calls };
  };

  it('exits 0 after a clean stop, 1 after an unclean one', async () => {
    const a = setup(async () => ({ clean: true, ms: 1, unfinished: [] }));
    a.signals.emit('SIGTERM');
    await expect.poll(() => a.exits.map(([c]) => c)).toEqual([0]);
    const b = setup(async () => ({ clean: false, ms: 1, unfinished: ['settle'] }));
    b.signals.emit('SIGINT');
    await expect.poll(() => b.exits.map(([c]) => c)).toEqual([1]);
  });

  it('stops once; a second signal exits 1 at once', async () => {
    const s = setup(() => never().then(() => ({ clean: true, ms: 0, unfinished: [] })));
    s.signals.emit('SIGTERM');
    s.signals.emit('SIGTERM');
    expect(s.exits.map(([c]) => c)).toEqual([1]);
    expect(s.calls()).toBe(1);
  });

  it('exits 1 one second after the grace time when the stop hangs', async () => {
    const s = setup(() => never().then(() => ({ clean: true, ms: 0, unfinished: [] })), 100);
    s.signals.emit('SIGTERM');
    await expect.poll(() => s.exits.length, { timeout: 3000 }).toBe(1);
    expect(s.exits[0]![0]).toBe(1);
    expect(s.exits[0]![1]).toBeGreaterThanOrEqual(1050);
  });
});

describe('InFlightRequests and refuseWhileStopping', () => {
  it('counts a request until it is answered, and refuses new ones with 503 Connection: close once stopping, health probes excepted', async () => {
    let stopping = false;
    let release!: () => void;
    const server = restify.createServer({ name: 'spec' });
    refuseWhileStopping(server, () => stopping);
    server.get('/slow', async (_req: Request, res: Response) => {
      await new Promise<void>((r) => (release = r));
      res.send(200, { done: true });
    });
    server.get('/healthz', async (_req: Request, res: Response) => {
      res.send(200, { status: 'ok' });
    });
    const requests = new InFlightRequests(server.server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const slow = fetch(`${base}/slow`);
      await expect.poll(() => requests.count).toBe(1);
      let idle = false;
      void requests.idle().then(() => (idle = true));
      stopping = true;
      const refused = await fetch(`${base}/slow`);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('connection')).toBe('close');
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(((await refused.json()) as { error: string }).error).toMatch(/restarting/);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      await sleep(20);
      expect(idle).toBe(false);
      release();
      expect((await slow).status).toBe(200);
      await expect.poll(() => idle).toBe(true);
      expect(requests.count).toBe(0);
    } finally {
      server.server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
