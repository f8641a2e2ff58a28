/**
 * Per-turn log context: a request id that every log line written while one
 * turn (one `/api/messages` request and the effects it awaits) runs carries,
 * whichever component's logger writes it.
 *
 * It rides on Node's `AsyncLocalStorage`, so nothing has to hand a child
 * logger down through the services; `createLogger` (common/logger.ts) merges
 * the current context into each line with pino's `mixin`. Work a turn starts
 * and leaves running (a deferred effect drain) keeps the id it was started with.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

/** Fields added to every log line written inside {@link withLogContext}. */
export interface LogContext {
  /** Identifies one turn across every log line it writes: the activity id, or a random UUID. */
  requestId: string;
}

const storage = new AsyncLocalStorage<LogContext>();

/** A request id taken from a sender's value must look like an id: 1-128 of these characters. */
const SAFE_ID = /^[A-Za-z0-9:._@|#=+/-]{1,128}$/;

/**
 * The request id for an incoming activity: its `id` when that looks like an id, else a random UUID.
 *
 * NOTE: the id comes from the sender (Teams: `1:...` or a UUID; the Agents Playground: a UUID). It is a
 * correlation id for logs, never trusted for anything else; one that is too long or holds other characters
 * (a space, a quote, a line break) is replaced, so a log line never carries what a client chose to inject.
 *
 * @param activity - the parsed request body (any shape)
 * @returns a string of 1-128 characters
 */
export function requestIdFor(activity: unknown): string {
  const id = (activity as { id?: unknown } | null)?.id;
  return typeof id === 'string' && SAFE_ID.test(id) ? id : randomUUID();
}

/**
 * Run `fn` with `context` on every log line written during it (and in work it starts).
 *
 * @param context - the fields to add, e.g. `{ requestId }`
 * @param fn - the turn
 * @returns what `fn` returns
 */
export function withLogContext<T>(context: LogContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The context of the code running now, or undefined outside any turn. */
export function currentLogContext(): LogContext | undefined {
  return storage.getStore();
}

/**
 * Run one turn under its request id ({@link requestIdFor}), with a line when it starts (debug) and one when it
 * ends (info `turn done` or warn `turn failed`, with the activity's type and the time taken), so every turn has
 * lines to find by its id even when nothing inside it logs.
 *
 * @param logger - the service logger
 * @param activity - the parsed request body; only its `id` (as the request id), `type` and `name` are read
 * @param turn - the turn (e.g. `adapter.process(...)`)
 * @returns what `turn` returns
 * @throws what `turn` throws, after the `turn failed` line
 */
export async function runTurn<T>(logger: Logger, activity: unknown, turn: () => Promise<T>): Promise<T> {
  const a = (activity ?? {}) as { type?: unknown; name?: unknown };
  const fields = { activityType: typeof a.type === 'string' ? a.type.slice(0, 40) : null, ...(typeof a.name === 'string' ? { activityName: a.name.slice(0, 80) } : {}) };
  return withLogContext({ requestId: requestIdFor(activity) }, async () => {
    const started = Date.now();
    logger.debug(fields, 'turn started');
    try {
      const result = await turn();
      logger.info({ ...fields, ms: Date.now() - started }, 'turn done');
      return result;
    } catch (err) {
      logger.warn({ ...fields, ms: Date.now() - started, error: err instanceof Error ? err.name : 'unknown' }, 'turn failed');
      throw err;
    }
  });
}
