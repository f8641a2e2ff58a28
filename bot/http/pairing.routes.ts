/**
 * The unauthenticated companion pairing endpoints (RFC 8628 pattern):
 * - `POST /companion/pair/start` -> 200 `PairStartResponse`, 400 naming the field, 429 when limited
 * - `POST /companion/pair/poll` -> 200 `PairPollResponse`, 400 naming the field, 429 when limited
 */
import type { Request, Response, Server } from 'restify';
import { PairPollRequestSchema, PairStartRequestSchema } from '../../protocol/companion-link.protocol';
import type { PairingService } from '../pairing/pairing.service';
import { parseBody } from './parse-body';

/** Simple fixed-window limit per remote address for the unauthenticated pairing endpoints. */
class WindowLimiter {
  private readonly hits = new Map<string, { start: number; count: number }>();
  constructor(private readonly max: number, private readonly windowMs: number) {}
  allow(key: string, now = Date.now()): boolean {
    const h = this.hits.get(key);
    if (!h || now - h.start >= this.windowMs) {
      if (this.hits.size > 10_000) this.hits.clear();
      this.hits.set(key, { start: now, count: 1 });
      return true;
    }
    h.count += 1;
    return h.count <= this.max;
  }
}

/**
 * Add the pairing routes to the bot's server.
 *
 * @param server - the restify server from `createHttpServer`
 * @param deps - `pairing`: the pairing service
 */
export function registerPairingRoutes(server: Server, deps: { pairing: PairingService }): void {
  const { pairing } = deps;
  const startLimiter = new WindowLimiter(20, 60_000);
  const pollLimiter = new WindowLimiter(120, 60_000);

  server.post('/companion/pair/start', async (req: Request, res: Response) => {
    if (!startLimiter.allow(req.socket.remoteAddress ?? '?')) {
      res.send(429, { error: 'Too many pairing requests; wait a minute.' });
      return;
    }
    const p = parseBody(PairStartRequestSchema, req.body);
    if (!p.ok) {
      res.send(400, { error: p.message });
      return;
    }
    res.send(200, await pairing.start(p.value));
  });

  server.post('/companion/pair/poll', async (req: Request, res: Response) => {
    if (!pollLimiter.allow(req.socket.remoteAddress ?? '?')) {
      res.send(429, { error: 'Too many polls; slow down.' });
      return;
    }
    const p = parseBody(PairPollRequestSchema, req.body);
    if (!p.ok) {
      res.send(400, { error: p.message });
      return;
    }
    res.send(200, await pairing.poll(p.value.deviceCode));
  });
}
