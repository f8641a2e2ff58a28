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
