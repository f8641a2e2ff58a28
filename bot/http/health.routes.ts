/**
 * Health routes of the bot, for a load balancer or an orchestrator (issue #11, "Operations"):
 * - `GET /healthz`: liveness. 200 `{ status: 'ok' }` while the process serves HTTP at all; it checks nothing
 *   else, so a store outage does not get a healthy process restarted.
 * - `GET /readyz`: readiness. 200 `{ status: 'ready', checks }` when every part it needs answers (the store, the
 *   mail carrier); 503 `{ status: 'not ready', failing: ['storage'], checks }` naming each part that does not;
 *   503 `{ status: 'stopping', failing: [] }` once a graceful shutdown has begun (bot/lifecycle.ts), so traffic
 *   moves to another instance before this one stops.
 *
 * Each check is bounded in time, and probes that arrive while one round of checks runs share its answer, so a
 * burst of probes costs one round. A part that starts or stops failing is logged once (warn / info), by its name
 * and error code, never by the error's text (a driver message may hold a URL).
 */
import type { Request, Response, Server } from 'restify';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';

/** One part the bot needs to serve: its name in `/readyz` answers and a cheap check that it answers. */
export interface ReadinessCheck {
  /** Shown in `failing` and `checks`, e.g. `storage`, `mail`. */
  name: string;
  /** Resolves when the part answers; throws (anything) when it does not. */
  check(): Promise<void>;
}

/** Result of one round of checks. */
export type Readiness =
  | { ready: true; checks: Record<string, 'ok'> }
  | { ready: false; failing: string[]; checks: Record<string, 'ok' | 'failing' | 'timeout'> };

export interface HealthRoutesOptions {
  /** The parts `/readyz` checks, in the order they are reported. */
  checks: readonly ReadinessCheck[];
  /** True once shutdown has begun: `/readyz` answers 503 `stopping` without checking anything. */
  isStopping?: () => boolean;
  /** Time one check may take before it counts as failing, milliseconds; default {@link READINESS_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Default time one readiness check may take, milliseconds. */
export const READINESS_TIMEOUT_MS = 3000;

/**
 * Run every check at once, each bounded by `timeoutMs`.
 *
 * @param checks - the parts to check
 * @param timeoutMs - time one check may take, milliseconds
 * @param onFailure - told of each failing part and why (for the log)
 * @returns `{ ready: true, checks }` or `{ ready: false, failing, checks }` (failing: names, in `checks` order)
 */
export async function checkReadiness(
  checks: readonly ReadinessCheck[],
  timeoutMs: number,
  onFailure: (name: string, reason: 'failing' | 'timeout', err: unknown) => void = () => undefined,
): Promise<Readiness> {
  const results = await Promise.all(
    checks.map(async (c): Promise<'ok' | 'failing' | 'timeout'> => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
        timer.unref();
      });
      try {
        const r = await Promise.race([c.check().then(() => 'ok' as const), timedOut]);
        if (r === 'timeout') onFailure(c.name, 'timeout', null);
        return r;
      } catch (err) {
        onFailure(c.name, 'failing', err);
        return 'failing';
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const named = Object.fromEntries(checks.map((c, i) => [c.name, results[i]!]));
  const failing = checks.filter((_c, i) => results[i] !== 'ok').map((c) => c.name);
  return failing.length === 0 ? { ready: true, checks: named as Record<string, 'ok'> } : { ready: false, failing, checks: named };
}

/**
 * Add `GET /healthz` and `GET /readyz` to the bot's server (see the module comment).
 *
 * @param server - the restify server from `createHttpServer`
 * @param options - the readiness checks and the shutdown flag ({@link HealthRoutesOptions})
 * @param logger - where a part that starts or stops failing is logged
 */
export function registerHealthRoutes(server: Server, options: HealthRoutesOptions, logger: Logger): void {
  const timeoutMs = options.timeoutMs ?? READINESS_TIMEOUT_MS;
  const failingNow = new Set<string>();
  let round: Promise<Readiness> | null = null;

  const evaluate = (): Promise<Readiness> => {
    round ??= checkReadiness(options.checks, timeoutMs, (name, reason, err) => {
      if (failingNow.has(name)) return;
      failingNow.add(name);
      logger.warn({ part: name, reason, code: err instanceof AppError ? err.code : null, error: err instanceof Error ? err.name : null }, 'readiness: part not reachable');
    })
      .then((r) => {
        for (const name of [...failingNow]) {
          if (r.checks[name] === 'ok') {
            failingNow.delete(name);
            logger.info({ part: name }, 'readiness: part reachable again');
          }
        }
        return r;
      })
      .finally(() => {
        round = null;
      });
    return round;
  };

  server.get('/healthz', async (_req: Request, res: Response) => {
    res.setHeader('cache-control', 'no-store');
    res.send(200, { status: 'ok' });
  });

  server.get('/readyz', async (_req: Request, res: Response) => {
    res.setHeader('cache-control', 'no-store');
    if (options.isStopping?.()) {
      res.send(503, { status: 'stopping', failing: [] });
      return;
    }
    const r = await evaluate();
    if (r.ready) res.send(200, { status: 'ready', checks: r.checks });
    else res.send(503, { status: 'not ready', failing: r.failing, checks: r.checks });
  });
}
