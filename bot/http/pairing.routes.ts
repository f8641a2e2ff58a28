/**
 * The unauthenticated companion pairing endpoints (RFC 8628 pattern):
 * - `POST /companion/pair/start` -> 200 `PairStartResponse`, 400 naming the field, 429 when limited
 * - `POST /companion/pair/poll` -> 200 `PairPollResponse`, 400 naming the field, 429 when limited
 *
 * Limits (per address and overall for starts, per device code for polls) are
 * counted in the store by the pairing service (`PAIRING_LIMITS`), never here in
 * memory. A 429 carries `Retry-After` in seconds (RFC 9110 10.2.3) and a body
 * `{ error }` saying what to do. A store that cannot be reached is a 503 with
 * `Retry-After`, never a bare 500.
 */
import type { Request, Response, Server } from 'restify';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import { PairPollRequestSchema, PairStartRequestSchema } from '../../protocol/companion-link.protocol';
import { retryAfterSeconds } from '../limits/store-rate-limiter';
import type { PairingLimited, PairingService } from '../pairing/pairing.service';
import { parseBody } from './parse-body';

/** Seconds a client is asked to wait when the store cannot be reached. */
const UNAVAILABLE_RETRY_SECONDS = 5;

function sendLimited(res: Response, limited: PairingLimited): void {
  res.header('Retry-After', String(retryAfterSeconds(limited.retryAfterMs)));
  res.send(429, { error: limited.message });
}

/** Run a route's work; a failure becomes 503 (store unreachable) or 500, with a plain message and nothing that was sent. */
async function answer(res: Response, logger: Logger | undefined, route: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    const code = err instanceof AppError ? err.code : 'UNEXPECTED';
    logger?.warn({ route, code }, 'pairing request failed');
    if (res.headersSent) return;
    if (code === 'STORAGE.UNAVAILABLE') {
      res.header('Retry-After', String(UNAVAILABLE_RETRY_SECONDS));
      res.send(503, { error: `Pairing is unavailable for a moment. Try again in ${UNAVAILABLE_RETRY_SECONDS} seconds.` });
      return;
    }
    res.send(500, { error: 'Pairing failed on our side. Try again in a moment.' });
  }
}

/**
 * Add the pairing routes to the bot's server.
 *
 * @param server - the restify server from `createHttpServer`
 * @param deps - `pairing`: the pairing service (it applies the limits); `logger`: optional, for failures
 */
export function registerPairingRoutes(server: Server, deps: { pairing: PairingService; logger?: Logger }): void {
  const { pairing, logger } = deps;

  server.post('/companion/pair/start', async (req: Request, res: Response) => {
    await answer(res, logger, 'pair/start', async () => {
      const p = parseBody(PairStartRequestSchema, req.body);
      if (!p.ok) {
        res.send(400, { error: p.message });
        return;
      }
      const outcome = await pairing.startFromClient(p.value, { address: req.socket.remoteAddress });
      if (outcome.kind === 'limited') sendLimited(res, outcome);
      else res.send(200, outcome.response);
    });
  });

  server.post('/companion/pair/poll', async (req: Request, res: Response) => {
    await answer(res, logger, 'pair/poll', async () => {
      const p = parseBody(PairPollRequestSchema, req.body);
      if (!p.ok) {
        res.send(400, { error: p.message });
        return;
      }
      const outcome = await pairing.pollFromClient(p.value.deviceCode);
      if (outcome.kind === 'limited') sendLimited(res, outcome);
      else res.send(200, outcome.response);
    });
  });
}
