/**
 * The bot's HTTP surface (restify 11):
 * - `POST /api/messages`: Bot Framework activities; with an app id configured only those with a valid
 *   Bot Framework token (channel-auth.ts: 401, or 503 when the signing keys cannot be fetched), and only
 *   from allowed tenants (403, audited)
 * - `POST /companion/pair/start`, `POST /companion/pair/poll`: companion pairing (RFC 8628 pattern)
 * - `GET /companion/link`: WebSocket upgrade for paired companions (handled by the link server)
 * - `GET /healthz`, `GET /readyz`: liveness and readiness (health.routes.ts)
 *
 * Connections are bounded by {@link ConnectionGuard} (timeouts, an overall and a per-address cap).
 */
import restify, { type Request, type Response, type Server } from 'restify';
import { createHash } from 'node:crypto';
import type { Activity } from 'botbuilder';
import type { Logger } from '../../common/logger';
import type { Storage } from '../../storage/storage.port';
import type { PairingService } from '../pairing/pairing.service';
import type { SmartcardBot } from '../teams/teams.bot';
import { checkActivity, type DoorVerdict } from './activity.schema';
import type { ChannelAdapter } from './channel-auth';
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

/** How long one tenant's refusals share one audit entry, milliseconds (the log has every one). */
const TENANT_AUDIT_WINDOW_MS = 10 * 60_000;

/**
 * The Entra tenant an activity comes from (`conversation.tenantId`, else `channelData.tenant.id`).
 *
 * @returns the tenant id; null when there is none, or when the two disagree
 */
export function activityTenant(activity: { conversation?: { tenantId?: unknown }; channelData?: unknown }): string | null {
  const fromConversation = typeof activity.conversation?.tenantId === 'string' ? activity.conversation.tenantId : null;
  const cd = activity.channelData as { tenant?: { id?: unknown } } | null | undefined;
  const fromChannelData = typeof cd?.tenant?.id === 'string' ? cd.tenant.id : null;
  if (fromConversation && fromChannelData && fromConversation !== fromChannelData) return null;
  return fromConversation ?? fromChannelData;
}

/** An invoke's error body (see {@link doorRefusal}), or `{ error }` for other activities. */
function refusalBody(invoke: boolean, status: number, code: string, message: string): Record<string, unknown> {
  return invoke ? { statusCode: status, type: 'application/vnd.microsoft.error', value: { code, message }, error: message } : { error: message };
}

/**
 * Build the bot's restify server (not yet listening).
 *
 * @param deps - the adapter, bot, pairing service, store and logger; `allowedTenants`: Entra tenant ids whose
 *   activities are served (empty: any; config.ts requires a list with an app id); `connections`: the bounds to apply
 *   ({@link ConnectionGuard}); absent, Node's defaults apply and nothing is capped (benchmarks only);
 *   `health`: what `/readyz` checks ({@link HealthRoutesOptions}); absent, the store only
 * @returns the restify server; `server.server` is the Node HTTP server the link attaches to
 */
export function createHttpServer(deps: { adapter: ChannelAdapter; bot: SmartcardBot; pairing: PairingService; storage: Storage; logger: Logger; allowedTenants?: readonly string[]; connections?: ConnectionLimits; health?: HealthRoutesOptions }): Server {
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
    const activity = req.body as Activity;
    const invoke = activity.type === 'invoke';
    // Every log line of the turn carries its request id (the activity id, or a random one), with a line at its
    // start and end: common/log-context.ts.
    await runTurn(logger, req.body, async () => {
      try {
        // The token is checked before anything else reads the activity; it is never logged (channel-auth.ts).
        const auth = await adapter.authenticate(activity, req.headers.authorization);
        if (!auth.ok) {
          logger.warn({ status: auth.status, reason: auth.reason, activityType: activity.type, channelId: activity.channelId }, 'activity refused: channel authentication');
          if (auth.status === 401) res.header('WWW-Authenticate', 'Bearer');
          if (auth.status === 503) res.header('Retry-After', '30');
          const message = auth.status === 401 ? 'Unauthorized.' : auth.status === 503 ? 'Channel authentication is unavailable just now; try again shortly.' : 'The activity could not be processed.';
          res.send(auth.status, refusalBody(invoke, auth.status, auth.status === 401 ? 'Unauthorized' : 'ServiceUnavailable', message));
          return;
        }
        if (!(await tenantAllowed(activity))) {
          res.send(403, refusalBody(invoke, 403, 'Forbidden', 'This tenant may not use Smartcard Assist.'));
          return;
        }
        const invokeResponse = await adapter.runAuthenticated(auth.result, activity, (context) => bot.run(context));
        if (invokeResponse?.body !== undefined) res.send(invokeResponse.status ?? 200, invokeResponse.body);
        else res.send(invokeResponse?.status ?? 200);
      } catch (err) {
        logger.error({ err }, 'activity processing failed');
        if (!res.headersSent) res.send(500, { error: 'The activity could not be processed.' });
      }
    });
  });

  /**
   * Serve only allowed tenants (after authentication, so a forged request cannot write an audit entry).
   * A refusal is logged each time and audited once per tenant per {@link TENANT_AUDIT_WINDOW_MS}: the
   * entry id is derived from both, so every instance writes the same one.
   */
  async function tenantAllowed(activity: Activity): Promise<boolean> {
    const allowed = deps.allowedTenants ?? [];
    if (allowed.length === 0) return true;
    const tenant = activityTenant(activity);
    if (tenant && allowed.includes(tenant)) return true;
    const shown = tenant === null ? null : tenant.slice(0, 100);
    logger.warn({ tenant: shown, activityType: activity.type }, 'activity refused: tenant not allowed');
    const window = Math.floor(Date.now() / TENANT_AUDIT_WINDOW_MS);
    const id = `channel.tenant_refused:${createHash('sha256').update(`${tenant ?? ''}|${window}`).digest('hex').slice(0, 32)}`;
    await storage.audit
      .append({ id, at: new Date().toISOString(), actor: 'system', action: 'channel.tenant_refused', personId: null, details: { tenant: shown, activityType: String(activity.type).slice(0, 50) } })
      .catch((err: unknown) => logger.warn({ errorName: err instanceof Error ? err.name : 'unknown' }, 'tenant refusal not audited'));
    return false;
  }

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
