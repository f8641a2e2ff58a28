/**
 * The command bus in one process: the embedded single-machine case, where the
 * bot is one instance and the bus only connects parts of it (and tests).
 *
 * Buses made with one {@link MemoryBusHub} see each other's messages, as bot
 * instances on one database do. The hub keeps the last
 * {@link MEMORY_BUS_DEFAULTS.retain} messages per instance for resuming.
 */
import type { BusHandler, BusMessage, BusSubscription, CommandBus, SubscribeOptions } from './command-bus.port';
import { COMMAND_BUS_ERROR } from './command-bus.port';
import { BusError, checkAfter, checkInstanceId, encodePayload } from './command-bus.validation';

export const MEMORY_BUS_DEFAULTS = {
  /** Messages kept per instance for `after` resumes. */
  retain: 10_000,
} as const;

interface Mailbox {
  seq: number;
  retained: BusMessage[];
  subscribers: Set<MemorySubscription>;
}

/** Shared state of in-memory buses. */
export class MemoryBusHub {
  private readonly boxes = new Map<string, Mailbox>();

  box(to: string): Mailbox {
    let box = this.boxes.get(to);
    if (!box) {
      box = { seq: 0, retained: [], subscribers: new Set() };
      this.boxes.set(to, box);
    }
    return box;
  }
}

class MemorySubscription implements BusSubscription {
  private lastSeq: number;
  private queue: BusMessage[] = [];
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(
    readonly instanceId: string,
    private readonly handler: BusHandler,
    private readonly options: SubscribeOptions,
    startAfter: number,
    private readonly onClose: (s: MemorySubscription) => void,
  ) {
    this.lastSeq = startAfter;
  }

  lastSeenId(): string | null {
    return this.lastSeq > 0 ? `${this.instanceId}:${this.lastSeq}` : null;
  }

  offer(message: BusMessage): void {
    if (this.closed) return;
    this.queue.push(message);
    this.running ??= this.drain();
  }

  private async drain(): Promise<void> {
    // Deliver on a later tick, never inside publish().
    await Promise.resolve();
    while (!this.closed && this.queue.length > 0) {
      const message = this.queue.shift()!;
      if (message.seq <= this.lastSeq) continue;
      if (message.seq > this.lastSeq + 1 && this.lastSeq > 0) {
        this.options.onGap?.({ to: this.instanceId, fromSeq: this.lastSeq, toSeq: message.seq, missed: message.seq - this.lastSeq - 1 });
      }
      this.lastSeq = message.seq;
      try {
        await this.handler(structuredClone(message));
      } catch (err) {
        this.options.onError?.(err, message);
      }
    }
    this.running = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.onClose(this);
    await this.running;
  }
}

/** The in-memory command bus. */
export class MemoryCommandBus implements CommandBus {
  private readonly subscriptions = new Set<MemorySubscription>();
  private closed = false;

  /**
   * @param instanceId - this bus's instance id (written as `from`)
   * @param hub - share one hub between buses that must reach each other (default: a private one)
   */
  constructor(
    readonly instanceId: string,
    private readonly hub: MemoryBusHub = new MemoryBusHub(),
  ) {
    checkInstanceId(instanceId, 'instanceId');
  }

  async publish(to: string, payload: unknown): Promise<BusMessage> {
    this.assertOpen();
    checkInstanceId(to, 'to');
    const json = encodePayload(payload);
    const box = this.hub.box(to);
    box.seq += 1;
    const message: BusMessage = { id: `${to}:${box.seq}`, to, from: this.instanceId, seq: box.seq, sentAt: new Date().toISOString(), payload: JSON.parse(json) };
    box.retained.push(message);
    if (box.retained.length > MEMORY_BUS_DEFAULTS.retain) box.retained.shift();
    for (const s of box.subscribers) s.offer(message);
    return structuredClone(message);
  }

  async subscribe(instanceId: string, handler: BusHandler, options: SubscribeOptions = {}): Promise<BusSubscription> {
    this.assertOpen();
    checkInstanceId(instanceId, 'instanceId');
    const box = this.hub.box(instanceId);
    const after = options.after === undefined ? box.seq : checkAfter(options.after, instanceId);
    const subscription = new MemorySubscription(instanceId, handler, options, after, (s) => {
      box.subscribers.delete(s);
      this.subscriptions.delete(s);
    });
    box.subscribers.add(subscription);
    this.subscriptions.add(subscription);
    for (const m of box.retained) if (m.seq > after) subscription.offer(m);
    return subscription;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new BusError(COMMAND_BUS_ERROR.CLOSED, 'the command bus is closed');
  }
}
