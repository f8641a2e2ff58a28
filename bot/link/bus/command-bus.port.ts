/**
 * The command bus port: messages from one bot instance to another, so that a
 * companion command issued where the person's Teams turn landed reaches the
 * instance holding that companion's WebSocket, and its reply comes back.
 *
 * Adapters: in memory (one process, the embedded single-machine case) and
 * MongoDB (`mongodb-command-bus.adapter.ts` beside this file: a capped collection read with a
 * tailable await cursor; several instances over one database, no second
 * service). `command-bus.conformance.ts` runs the same tests against both.
 *
 * Guarantees every adapter keeps:
 * - Messages to one instance are numbered `seq` 1, 2, 3... in the order they
 *   were committed, and a subscriber gets them in that order, each once.
 * - A new subscription gets only messages published after `subscribe`
 *   resolved; one given `after` (a message id it saw last, e.g. kept across a
 *   restart) gets every message after that one that is still retained.
 * - A handler that throws does not stop the subscription (the error goes to
 *   `onError`); handlers run one at a time, in order.
 * - Delivery is at most once per subscription, not "exactly once" across a
 *   crash: a message being handled when the process dies is redelivered only
 *   to a subscription resumed with an `after` before it. Commands therefore
 *   carry their own id and are idempotent at the receiver.
 *
 * WARNING: a bus may keep messages at rest (MongoDB), and a routed
 * `unlock.authorised` command carries a PUK pair for the companion. Nothing is
 * at rest in clear: the MongoDB adapter seals every payload (AES-256-GCM, the
 * bus sub-key) with the cipher it is given, and the capped collection ages
 * messages out.
 */

/** One message as delivered. */
export interface BusMessage<T = unknown> {
  /** `<to>:<seq>`: unique; pass it as `after` to resume after this message. */
  id: string;
  /** Instance the message is for. */
  to: string;
  /** Instance that published it (its bus's own instance id). */
  from: string;
  /** Position in `to`'s sequence: increases by 1 per message to `to` (a gap means messages were dropped by retention). */
  seq: number;
  /** When it was published, ISO 8601 UTC (publisher's clock). */
  sentAt: string;
  /** JSON value given to `publish`. */
  payload: T;
}

/** Called for each message, one at a time, in `seq` order. */
export type BusHandler = (message: BusMessage) => void | Promise<void>;

/** Options of {@link CommandBus.subscribe}. */
export interface SubscribeOptions {
  /** Resume after this message id (`<to>:<seq>`) instead of starting from now. */
  after?: string;
  /** Where a handler's throw goes (default: dropped after the subscription logs it, if it has a logger). */
  onError?: (error: unknown, message: BusMessage) => void;
  /** Told when retention dropped messages between two delivered ones (`missed` = how many). */
  onGap?: (info: { to: string; fromSeq: number; toSeq: number; missed: number }) => void;
}

/** A live subscription. */
export interface BusSubscription {
  readonly instanceId: string;
  /** Id of the last message delivered (or skipped as seen), null before the first. Keep it to resume after a restart. */
  lastSeenId(): string | null;
  /** Stop delivering; resolves when no handler runs any more. Idempotent. */
  close(): Promise<void>;
}

/** The port. */
export interface CommandBus {
  /** This bus's own instance id, written as `from` on what it publishes. */
  readonly instanceId: string;
  /**
   * Send `payload` to instance `to`.
   *
   * @param to - target instance id (1..200 characters, no control characters)
   * @param payload - JSON value (at most {@link COMMAND_BUS_LIMITS.payloadBytes} bytes as JSON)
   * @returns the message as stored (its id and seq)
   * @throws AppError `BUS.INVALID_MESSAGE` for a bad target or payload; `BUS.UNAVAILABLE` when it cannot be stored; `BUS.CLOSED` after close
   */
  publish(to: string, payload: unknown): Promise<BusMessage>;
  /**
   * Receive the messages for `instanceId`.
   *
   * @returns once the subscription is live: anything published after this resolves is delivered
   * @throws AppError `BUS.INVALID_MESSAGE` for a bad id or `after`; `BUS.UNAVAILABLE`; `BUS.CLOSED`
   */
  subscribe(instanceId: string, handler: BusHandler, options?: SubscribeOptions): Promise<BusSubscription>;
  /** Close every subscription of this bus and refuse further calls. */
  close(): Promise<void>;
}

/** Error codes (namespace `BUS`). */
export const COMMAND_BUS_ERROR = {
  INVALID_MESSAGE: 'BUS.INVALID_MESSAGE',
  UNAVAILABLE: 'BUS.UNAVAILABLE',
  CLOSED: 'BUS.CLOSED',
} as const;

/** Limits every adapter applies. */
export const COMMAND_BUS_LIMITS = {
  /** Largest payload, as JSON text, in bytes (UTF-8). */
  payloadBytes: 256 * 1024,
  /** Longest instance id, characters. */
  instanceIdLength: 200,
} as const;

/** Parse a message id `<to>:<seq>`; null when malformed. */
export function parseBusMessageId(id: string): { to: string; seq: number } | null {
  const at = id.lastIndexOf(':');
  if (at <= 0) return null;
  const seq = Number(id.slice(at + 1));
  if (!Number.isSafeInteger(seq) || seq < 1) return null;
  return { to: id.slice(0, at), seq };
}
