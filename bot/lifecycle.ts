/**
 * Graceful shutdown of the bot (issue #11, "Operations"): on SIGTERM (or SIGINT) the bot
 *
 * 1. stops accepting: the listening socket closes (idle keep-alive connections with it), `/readyz` answers
 *    503 `stopping`, a request that still arrives on an open connection gets 503 with `Connection: close`,
 *    and the effect sweep stops;
 * 2. finishes what is in flight: HTTP requests (Teams turns, pairing calls) and the journey engine's steps and
 *    effect drains, until all are done or the grace time is nearly used up;
 * 3. closes the companion links (close code 1001; a command still waiting for a companion fails, and its
 *    effect stays pending in the store), then gives the turns that were waiting on them the rest of the time;
 * 4. releases the rest (open connections, the command bus, the store) and exits: 0 when everything finished,
 *    1 when the grace time ran out first.
 *
 * Nothing is lost when the time runs out: a step's effects are stored with its state in one write
 * (bot/journeys/journey.engine.ts), so what did not run is still pending in the store, and the next start's
 * drain or sweep carries it out. The grace time bounds the whole stop: a hard timer exits after it whatever
 * still hangs. Orchestrators wait a while before SIGKILL (Kubernetes: `terminationGracePeriodSeconds`, 30 s by
 * default; systemd: `TimeoutStopSec`, 90 s); keep SHUTDOWN_GRACE_MS below that.
 */
import type { IncomingMessage, Server as NodeHttpServer, ServerResponse } from 'node:http';
import type { Request, Response, Server as RestifyServer } from 'restify';
import { z } from 'zod';
import { AppError } from '../common/app-error';
import type { Logger } from '../common/logger';

/** Defaults of the shutdown settings. */
export const SHUTDOWN_DEFAULTS = { graceMs: 10_000 } as const;

/** Shutdown settings (environment: `SHUTDOWN_GRACE_MS`). */
export interface ShutdownConfig {
  /** Longest time from the signal to exit, milliseconds (1 000 - 300 000; default 10 000). */
  graceMs: number;
}

const ShutdownEnv = z.object({
  SHUTDOWN_GRACE_MS: z.coerce
    .number({ error: 'must be a whole number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(1000, 'must be at least 1000 (1 s): turns in flight need time to finish')
    .max(300_000, 'must be at most 300000 (5 min)')
    .default(SHUTDOWN_DEFAULTS.graceMs),
});

/**
 * Read the shutdown settings.
 *
 * @param env - usually `process.env`; an empty value counts as unset
 * @returns the settings, defaults filled in
 * @throws AppError `CONFIG.INVALID` naming `SHUTDOWN_GRACE_MS` and what is wrong
 */
export function loadShutdownConfig(env: Record<string, string | undefined>): ShutdownConfig {
  const raw = env['SHUTDOWN_GRACE_MS'];
  const parsed = ShutdownEnv.safeParse({ SHUTDOWN_GRACE_MS: raw === undefined || raw.trim() === '' ? undefined : raw.trim() });
  if (!parsed.success) throw new AppError('CONFIG.INVALID', `SHUTDOWN_GRACE_MS: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return { graceMs: parsed.data.SHUTDOWN_GRACE_MS };
}

/**
 * Counts the HTTP requests a Node server is answering (upgraded WebSocket connections are not requests),
 * each from its arrival until its response has been sent or its connection closed.
 */
export class InFlightRequests {
  private active = 0;
  private waiters: Array<() => void> = [];

  /** @param server - the Node HTTP server (restify's `server.server`) */
  constructor(server: NodeHttpServer) {
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      this.active++;
      res.once('close', () => {
        this.active--;
        if (this.active === 0) this.wake();
      });
    });
  }

  /** Requests being answered now. */
  get count(): number {
    return this.active;
  }

  /** Resolves when no request is being answered. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * While `isStopping()` holds, answer every request except the health probes with 503, `Retry-After: 5` and
 * `Connection: close`, before any handler or body parser runs (a restify `pre` handler).
 *
 * @param server - the restify server
 * @param isStopping - true once shutdown has begun
 */
export function refuseWhileStopping(server: RestifyServer, isStopping: () => boolean): void {
  server.pre((req: Request, res: Response, next: (err?: false) => void) => {
    const path = (req.url ?? '').split('?')[0];
    if (!isStopping() || path === '/healthz' || path === '/readyz') return next();
    res.setHeader('connection', 'close');
    res.setHeader('retry-after', '5');
    res.send(503, { error: 'Smartcard Assist is restarting; try again in a few seconds.' });
    return next(false);
  });
}

/** The steps of a shutdown, in the order they run (see the module comment). */
export interface ShutdownSteps {
  /** Stop taking new work: close the listener, stop timers. Synchronous in effect; may return a promise. */
  stopAccepting(): void | Promise<void>;
  /** Resolves when no turn and no effect is in flight. */
  settle(): Promise<void>;
  /** Close the companion links (pending commands fail). */
  closeLinks(): Promise<void>;
  /** Close what is left: open connections, the command bus, the store. */
  release(): Promise<void>;
}

/** How a shutdown went. */
export interface ShutdownReport {
  /** True when every turn and effect in flight finished and everything closed within the grace time. */
  clean: boolean;
  /** Milliseconds from the start of the shutdown to its end. */
  ms: number;
  /** The steps that did not finish in time (`settle`, `closeLinks`, `settle after links`, `release`). */
  unfinished: string[];
}

/**
 * Run a shutdown within `graceMs`: stop accepting; wait for work in flight until `graceMs - reserve`
 * (reserve = a quarter of the grace time, at most 2 s); close the links; wait again for what the links
 * held up; release the rest in the time left.
 *
 * @param steps - what to do ({@link ShutdownSteps})
 * @param options.graceMs - the whole budget, milliseconds
 * @param options.logger - start, each overrun and the end are logged
 * @returns the report; never throws (a failing step is logged and counted as unfinished)
 */
export async function shutDown(steps: ShutdownSteps, options: { graceMs: number; logger: Logger }): Promise<ShutdownReport> {
  const { graceMs, logger } = options;
  const started = Date.now();
  const deadline = started + graceMs;
  const reserve = Math.min(2000, Math.floor(graceMs / 4));
  const unfinished: string[] = [];

  /** Run one step until `until` (epoch ms); false when it did not finish (timed out or threw). */
  const within = async (name: string, until: number, work: () => void | Promise<void>): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const left = Math.max(0, until - Date.now());
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
    try {
      const r = await Promise.race([Promise.resolve().then(work).then(() => 'done' as const), timeout]);
      if (r === 'timeout') {
        unfinished.push(name);
        logger.warn({ step: name, ms: Date.now() - started }, 'shutdown: step still running when its time ran out');
        return false;
      }
      return true;
    } catch (err) {
      unfinished.push(name);
      logger.error({ step: name, err: err instanceof AppError ? err.toJSON() : { name: (err as Error)?.name, message: (err as Error)?.message } }, 'shutdown: step failed');
      return false;
    } finally {
      clearTimeout(timer);
    }
  };

  logger.info({ graceMs }, 'shutdown: no longer accepting; finishing turns and effects in flight');
  await within('stopAccepting', deadline - reserve, () => steps.stopAccepting());
  const settled = await within('settle', deadline - reserve, () => steps.settle());
  await within('closeLinks', deadline, () => steps.closeLinks());
  // A turn that waited on a companion has its answer (LINK.OFFLINE) now: let it finish its reply.
  if (!settled) {
    // 'settle' stays listed as unfinished only when this second wait runs out too.
    unfinished.splice(unfinished.indexOf('settle'), 1);
    await within('settle after links', deadline, () => steps.settle());
  }
  await within('release', deadline, () => steps.release());
  const report: ShutdownReport = { clean: unfinished.length === 0, ms: Date.now() - started, unfinished };
  if (report.clean) logger.info({ ms: report.ms }, 'shutdown: done, nothing left in flight');
  else logger.warn({ ms: report.ms, unfinished }, 'shutdown: time ran out; what did not finish stays pending in the store for the next start');
  return report;
}

/**
 * Stop the process gracefully on SIGTERM and SIGINT: run `stop`, then exit 0 when it was clean, 1 when not.
 * A hard timer exits 1 shortly after the grace time whatever still hangs; a second signal exits 1 at once.
 *
 * @param stop - the graceful stop (e.g. `() => shutDown(steps, ...)`)
 * @param options.graceMs - the grace time, milliseconds; the hard timer fires 1 s after it
 * @param options.logger - the signal is logged
 * @param options.exit - `process.exit` (tests pass their own)
 * @param options.signals - the process to listen on (tests pass an EventEmitter)
 */
export function exitGracefullyOnSignals(
  stop: () => Promise<ShutdownReport>,
  options: { graceMs: number; logger: Logger; exit?: (code: number) => void; signals?: Pick<NodeJS.Process, 'on'> },
): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const target = options.signals ?? process;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      options.logger.warn({ signal }, 'shutdown: second signal, exiting now');
      exit(1);
      return;
    }
    stopping = true;
    options.logger.info({ signal }, 'shutdown: signal received');
    const hard = setTimeout(() => {
      options.logger.error({ graceMs: options.graceMs }, 'shutdown: still running after the grace time; exiting');
      exit(1);
    }, options.graceMs + 1000);
    void stop().then(
      (report) => {
        clearTimeout(hard);
        exit(report.clean ? 0 : 1);
      },
      (err: unknown) => {
        clearTimeout(hard);
        options.logger.error({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'shutdown failed');
        exit(1);
      },
    );
  };
  target.on('SIGTERM', () => onSignal('SIGTERM'));
  target.on('SIGINT', () => onSignal('SIGINT'));
}
