/**
 * The bot's HTTP surface (restify 11):
 * - `POST /api/messages`: Bot Framework activities (authenticated by the adapter when an app id is configured)
 * - `POST /companion/pair/start`, `POST /companion/pair/poll`: companion pairing (RFC 8628 pattern)
 * - `GET /companion/link`: WebSocket upgrade for paired companions (handled by the link server)
 * - `GET /healthz`, `GET /readyz`: liveness and readiness (health.routes.ts)
 *
 * Connections are bounded by {@link ConnectionGuard} (timeouts, an overall and a per-address cap).
 */
import restify, { type Request, type Response, type Server } from 'restify';
import type { CloudAdapter } from 'botbuilder';
import type { Logger } from '../../common/logger';
import type { Storage } from '../../storage/storage.port';
import type { PairingService } from '../pairing/pairing.service';
import type { SmartcardBot } from '../teams/teams.bot';
import { checkActivity, type DoorVerdict } from './activity.schema';
import { ConnectionGuard, type ConnectionLimits } from './connection-guard';
import { registerPairingRoutes } from './pairing.routes';
import { registerHealthRoutes, type HealthRoutesOptions } from './health.routes';
import { runTurn } from '../../common/log-context';

/** Largest accepted request body, bytes. */
const MAX_BODY_BYTES = 256 * 1024;

/**
 * The 400 body for an activity refused at the door: `{ error }` as for every refusal here, and for
 * an invoke also the invoke error shape Teams reads from an invoke response
 * (`{ statusCode, type: 'application/vnd.microsoft.error', value: { code, message } }`, Universal Actions
 * for Adaptive Cards, "Adaptive Card Invoke Response": error response).
 *
 * @param verdict - a refusal from `checkActivity`
 * @returns the JSON body; it never holds a value that was sent, only the checked field's name
 */
export function doorRefusal(verdict: Extract<DoorVerdict, { ok: false }>): Record<string, unknown> {
  if (!verdict.invoke) return { error: verdict.message };
  return { statusCode: 400, type: 'application/vnd.microsoft.error', value: { code: verdict.code, message: verdict.message }, error: verdict.message };
}

/**
 * Build the bot's restify server (not yet listening).
 *
 * @param deps - the adapter, bot, pairing service, store and logger; `connections`: the bounds to apply
 *   ({@link ConnectionGuard}); absent, Node's defaults apply and nothing is capped (benchmarks only);
 *   `health`: what `/readyz` checks ({@link HealthRoutesOptions}); absent, the store only
 * @returns the restify server; `server.server` is the Node HTTP server the link attaches to
 */
export function createHttpServer(deps: { adapter: CloudAdapter; bot: SmartcardBot; pairing: PairingService; storage: Storage; logger: Logger; connections?: ConnectionLimits; health?: HealthRoutesOptions }): Server {
  const { adapter, bot, pairing, storage, logger } = deps;
  const server = restify.createServer({ name: 'smartcard-assist', handleUpgrades: false });
  if (deps.connections) new ConnectionGuard(server.server, deps.connections, logger);
  server.use(restify.plugins.bodyParser({ maxBodySize: MAX_BODY_BYTES, mapParams: false, rejectUnknown: true }));

  server.post('/api/messages', async (req: Request, res: Response) => {
    // Checked at the door (activity.schema.ts): 400 naming the field, before the adapter, a handler or a store write.
    const verdict = checkActivity(req.body);
    if (!verdict.ok) {
      logger.warn({ code: verdict.code, invoke: verdict.invoke, problem: verdict.message }, 'activity refused at the door');
      res.send(400, doorRefusal(verdict));
      return;
    }
    try {
      // Every log line of the turn carries its request id (the activity id, or a random one), with a line at its
      // start and end: common/log-context.ts.
      await runTurn(logger, req.body, () => adapter.process(req, res, (context) => bot.run(context)));
    } catch (err) {
      logger.error({ err }, 'activity processing failed');
      if (!res.headersSent) res.send(500, { error: 'The activity could not be processed.' });
    }
  });

  registerPairingRoutes(server, { pairing, logger });

  registerHealthRoutes(server, deps.health ?? { checks: [{ name: 'storage', check: () => storage.ping() }] }, logger);

  server.on('restifyError', (req: Request, res: Response, err: Error & { statusCode?: number; body?: unknown }, cb: () => void) => {
    // Never echo (or log) what was sent: a broken body may hold a secret.
    if (err.name === 'InvalidContentError' || /JSON/.test(err.message)) {
      err.message = 'The request body is not valid JSON.';
      err.body = { code: 'InvalidContent', message: err.message };
    }
    logger.warn({ path: req.path?.(), status: err.statusCode, error: err.name }, 'request refused');
    cb();
  });
  return server;
}
