/**
 * The command bus over MongoDB: several bot instances on one database reach
 * each other with no second service.
 *
 * Messages live in a capped collection (`command_bus`, bounded in bytes, so
 * it never needs cleaning): `{ _id: '<to>:<seq>', to, seq, from, at, body }`.
 * - Order without atomic updates: a publisher reads the highest `seq` for
 *   `to` and inserts `seq + 1`; two publishers meet on one `_id` and the loser
 *   retries. So `seq` is dense per target and matches commit order. When no
 *   message for `to` is retained (new, or everything aged out), the next seq is
 *   the current time in ms, which stays above any earlier one; a subscriber
 *   also publishes a small anchor to itself now and then so that its sequence
 *   does not age out while it listens.
 * - Reading: a tailable await cursor on `{ to, seq > last }` (the server holds
 *   each getMore until data arrives or `maxAwaitTimeMS` passes). FerretDB v1
 *   closes a tailable cursor whose first batch is short, so the subscriber
 *   makes sure one message (an anchor) matches before it opens, and reads with
 *   batches of one. A dead cursor (server restart, network) is reopened after
 *   `last`, so nothing retained is lost. Servers without capped collections or
 *   tailable cursors (Cosmos DB for MongoDB) get the same reads by polling.
 * - The cursor only wakes the subscriber; `seq` decides what is delivered.
 *   FerretDB v1 (1.24.2, any backend) serves an await getMore by re-running the
 *   query every 10 ms until `maxTimeMS`: a document it takes just before that
 *   deadline moves the cursor past it, the deadline then cuts the re-query and
 *   the batch comes back empty, so that cursor never returns the document; a
 *   re-query cut in the middle moves the cursor back and returns documents
 *   again (`internal/handler/msg_getmore.go` awaitData, `cursor.Reset`). Measured
 *   on a raw cursor with a 60 ms window: 8 of 101 inserts never returned, 18
 *   returned twice. So after every empty getMore the subscriber reads
 *   `{ to, seq > last }` by `seq` (one indexed query per await window), a
 *   message whose `seq` jumps over retained ones is delivered after those are
 *   read back in order, and one at or below `last` is skipped. Before this, a
 *   missed command waited for a later cursor rewind (seconds, seen as 6-16 s
 *   "stalls") or was skipped for good when the next message came first.
 * - Payloads are sealed with the given cipher (AAD `bus:<to>`), so no command,
 *   reply or PUK is at rest in clear.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoError, type Collection, type Db, type Document, type FindCursor } from 'mongodb';
import type { Logger } from '../../../common/logger';
import type { BusHandler, BusMessage, BusSubscription, CommandBus, SubscribeOptions } from './command-bus.port';
import { COMMAND_BUS_ERROR } from './command-bus.port';
import { BusError, checkAfter, checkInstanceId, encodePayload } from './command-bus.validation';
import { isDuplicateKey, isUnavailable, MONGO_CODE } from '../../../storage/mongodb/mongodb.errors';

/** Seals payloads at rest; the composition root wires it to the service's AES-256-GCM seal with a bus sub-key. */
export interface PayloadCipher {
  /** Returns an opaque string; `aad` binds it to its recipient. */
  seal(plaintext: string, aad: string): string;
  /** Inverse of `seal`; throws when the value was altered or the AAD differs. */
  open(sealed: string, aad: string): string;
}

/** Defaults of {@link openMongoCommandBus}. */
export const MONGO_BUS_DEFAULTS = {
  collection: 'command_bus',
  /** Capped collection size, bytes (64 MiB). */
  capBytes: 64 * 1024 * 1024,
  /** How long the server holds an empty getMore, ms (also bounds how long close() waits). */
  maxAwaitTimeMS: 500,
  /** Poll interval when the server has no tailable cursors, ms. */
  pollMs: 100,
  /** A listening subscriber publishes an anchor to itself this often, ms. */
  anchorEveryMs: 60_000,
  /**
   * A tailable cursor is replaced by a fresh one (on `seq > last`) after it returned this many documents, or
   * at once when it moved back. FerretDB v1 re-runs a tailable query over every document it matches on each
   * await poll (every 10 ms), so a cursor's cost grows with the messages sent since it opened.
   */
  cursorDocuments: 100,
  /** Reopen delays after a failure, ms (doubles up to the max). */
  retryMinMs: 100,
  retryMaxMs: 2000,
  /** Publish retries when other publishers keep taking the next seq. */
  publishAttempts: 200,
  /**
   * How long this process trusts the last seq it inserted for a target, ms. Far
   * below the time a message takes to age out of the cap, so a stale guess always
   * meets a retained `_id` and never goes back in the sequence.
   */
  seqCacheMs: 5000,
} as const;

/** Options of {@link openMongoCommandBus}. */
export interface MongoCommandBusOptions {
  /** Database shared by the instances (the storage database is fine). */
  db: Db;
  /** This instance's id (written as `from`). */
  instanceId: string;
  cipher: PayloadCipher;
  logger?: Logger;
  collection?: string;
  capBytes?: number;
  maxAwaitTimeMS?: number;
  pollMs?: number;
  anchorEveryMs?: number;
  /** Force a read mode; default: tailable where the collection is capped, else poll. */
  mode?: 'tailable' | 'poll';
}

/** Messages read per query when reading back what a cursor skipped. */
const READ_BACK_BATCH = 100;

type BusDoc = Document & { _id: string; to: string; seq: number; from: string; at: Date; body: string; anchor?: true };

/** The MongoDB command bus, plus how it reads. */
export interface MongoCommandBus extends CommandBus {
  readonly mode: 'tailable' | 'poll';
}

/**
 * Open the bus: create the capped collection and its index if missing.
 *
 * @returns the bus; `mode` says whether it tails a capped collection or polls
 * @throws BusError `BUS.UNAVAILABLE` when the database cannot be reached
 */
export async function openMongoCommandBus(options: MongoCommandBusOptions): Promise<MongoCommandBus> {
  checkInstanceId(options.instanceId, 'instanceId');
  const name = options.collection ?? MONGO_BUS_DEFAULTS.collection;
  try {
    let capped = false;
    try {
      await options.db.createCollection(name, { capped: true, size: options.capBytes ?? MONGO_BUS_DEFAULTS.capBytes });
      capped = true;
    } catch (err) {
      if (isUnavailable(err)) throw err;
      if (err instanceof MongoError && err.code === MONGO_CODE.NAMESPACE_EXISTS) {
        const [info] = await options.db.listCollections({ name }).toArray();
        capped = (info as { options?: { capped?: boolean } } | undefined)?.options?.capped === true;
      } else {
        // No capped collections here (Cosmos DB for MongoDB): a plain collection, read by polling.
        options.logger?.info({ collection: name, mongoCode: err instanceof MongoError && typeof err.code === 'number' ? err.code : null }, 'capped collection refused: command bus polls');
      }
    }
    const collection = options.db.collection<BusDoc>(name);
    const indexes = await collection.listIndexes().toArray().catch(() => []);
    if (!indexes.some((i) => i.name === 'command_bus_to_seq')) await collection.createIndex({ to: 1, seq: 1 }, { name: 'command_bus_to_seq' });
    const mode = options.mode ?? (capped ? 'tailable' : 'poll');
    return new MongoCommandBusImpl(collection, options, mode);
  } catch (err) {
    throw toBusError('open', err);
  }
}

function toBusError(operation: string, err: unknown): BusError {
  if (err instanceof BusError) return err;
  if (isUnavailable(err)) {
    return new BusError(COMMAND_BUS_ERROR.UNAVAILABLE, `${operation}: the MongoDB server cannot be reached or cannot serve now`, { cause: err, meta: { operation } });
  }
  const code = err instanceof MongoError && typeof err.code === 'number' ? err.code : null;
  return new BusError(COMMAND_BUS_ERROR.UNAVAILABLE, `${operation}: the MongoDB server refused the request${code !== null ? ` (code ${code})` : ''}`, { meta: { operation, mongoCode: code } });
}

class MongoCommandBusImpl implements MongoCommandBus {
  readonly instanceId: string;
  /** Publishes in flight per target, chained: this process inserts one target's messages one at a time, in call order. */
  private readonly tails = new Map<string, Promise<unknown>>();
  /** Last seq this process inserted per target, and when (see insertNext). */
  private readonly lastSeqOf = new Map<string, { seq: number; at: number }>();
  private readonly subscriptions = new Set<MongoSubscription>();
  private closed = false;

  constructor(
    private readonly collection: Collection<BusDoc>,
    private readonly options: MongoCommandBusOptions,
    readonly mode: 'tailable' | 'poll',
  ) {
    this.instanceId = options.instanceId;
  }

  async publish(to: string, payload: unknown): Promise<BusMessage> {
    this.assertOpen();
    checkInstanceId(to, 'to');
    const json = encodePayload(payload);
    const started = Date.now();
    const doc = await this.insertNext(to, { from: this.instanceId, body: this.options.cipher.seal(json, `bus:${to}`) }, 'publish');
    this.options.logger?.debug({ to, seq: doc.seq, insertMs: Date.now() - started }, 'command bus: published');
    return { id: doc._id, to, from: doc.from, seq: doc.seq, sentAt: doc.at.toISOString(), payload: JSON.parse(json) as unknown };
  }

  /** Insert the next message of `to`'s sequence (in-process lock per target; across processes the `_id` decides). */
  async insertNext(to: string, fields: { from: string; body: string; anchor?: true }, operation: string): Promise<BusDoc> {
    return this.inOrder(to, async () => {
      try {
        for (let attempt = 0; attempt < MONGO_BUS_DEFAULTS.publishAttempts; attempt++) {
          // The seq this process used last for `to`, if recent, saves the read: when another
          // publisher went first, the insert meets its `_id` and the next turn reads.
          const known = attempt === 0 ? this.lastSeqOf.get(to) : undefined;
          const top = known && Date.now() - known.at < MONGO_BUS_DEFAULTS.seqCacheMs ? known.seq : await this.highestSeq(to);
          const seq = top === 0 ? Date.now() : top + 1;
          const doc: BusDoc = { _id: `${to}:${seq}`, to, seq, at: new Date(), ...fields };
          try {
            await this.collection.insertOne(doc);
            this.lastSeqOf.set(to, { seq, at: Date.now() });
            return doc;
          } catch (err) {
            if (!isDuplicateKey(err)) throw err;
          }
        }
        throw new BusError(COMMAND_BUS_ERROR.UNAVAILABLE, `${operation}: other publishers kept taking the next sequence number; gave up`, { meta: { operation } });
      } catch (err) {
        throw toBusError(operation, err);
      }
    });
  }

  /** Run `fn` after every earlier call for `to` has settled (FIFO per target). */
  private inOrder<T>(to: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(to) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.catch(() => undefined);
    this.tails.set(to, tail);
    void tail.then(() => {
      if (this.tails.get(to) === tail) this.tails.delete(to);
    });
    return result;
  }

  async highestSeq(to: string): Promise<number> {
    const top = await this.collection.find({ to }, { projection: { seq: 1 } }).sort({ seq: -1 }).limit(1).next();
    return top ? Number(top.seq) : 0;
  }

  async subscribe(instanceId: string, handler: BusHandler, options: SubscribeOptions = {}): Promise<BusSubscription> {
    this.assertOpen();
    checkInstanceId(instanceId, 'instanceId');
    let after: number;
    try {
      after = options.after === undefined ? await this.highestSeq(instanceId) : checkAfter(options.after, instanceId);
    } catch (err) {
      throw toBusError('subscribe', err);
    }
    const subscription = new MongoSubscription(this, this.collection, instanceId, handler, options, after, this.options, (s) => this.subscriptions.delete(s));
    this.subscriptions.add(subscription);
    await subscription.start();
    return subscription;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }

  open(doc: BusDoc): BusMessage {
    const json = this.options.cipher.open(doc.body, `bus:${doc.to}`);
    return { id: doc._id, to: doc.to, from: doc.from, seq: Number(doc.seq), sentAt: doc.at instanceof Date ? doc.at.toISOString() : String(doc.at), payload: JSON.parse(json) as unknown };
  }

  private assertOpen(): void {
    if (this.closed) throw new BusError(COMMAND_BUS_ERROR.CLOSED, 'the command bus is closed');
  }
}

class MongoSubscription implements BusSubscription {
  private closed = false;
  private cursor: FindCursor<BusDoc> | null = null;
  private loop: Promise<void> | null = null;
  private lastAnchorAt = 0;
  /** The current cursor returned a document already seen (it moved back): replace it. */
  private movedBack = false;

  constructor(
    private readonly bus: MongoCommandBusImpl,
    private readonly collection: Collection<BusDoc>,
    readonly instanceId: string,
    private readonly handler: BusHandler,
    private readonly options: SubscribeOptions,
    private lastSeq: number,
    private readonly busOptions: MongoCommandBusOptions,
    private readonly onClose: (s: MongoSubscription) => void,
  ) {}

  lastSeenId(): string | null {
    return this.lastSeq > 0 ? `${this.instanceId}:${this.lastSeq}` : null;
  }

  /** Resolves when the first cursor is open (or the poll loop runs): later publishes are seen. */
  async start(): Promise<void> {
    if (this.bus.mode === 'tailable') {
      try {
        await this.openCursor();
      } catch (err) {
        throw toBusError('subscribe', err);
      }
    }
    this.loop = this.run();
  }

  private async openCursor(): Promise<void> {
    // FerretDB v1 closes a tailable cursor whose first batch is empty: make sure one message matches.
    const pending = await this.collection.find({ to: this.instanceId, seq: { $gt: this.lastSeq } }, { projection: { _id: 1 } }).limit(1).next();
    if (!pending || Date.now() - this.lastAnchorAt > (this.busOptions.anchorEveryMs ?? MONGO_BUS_DEFAULTS.anchorEveryMs)) await this.anchor();
    this.cursor = this.collection.find(
      { to: this.instanceId, seq: { $gt: this.lastSeq } },
      { tailable: true, awaitData: true, batchSize: 1, maxAwaitTimeMS: this.busOptions.maxAwaitTimeMS ?? MONGO_BUS_DEFAULTS.maxAwaitTimeMS },
    );
    // Run the find now, so that start() resolving means the cursor exists.
    await this.cursor.hasNext().then((has) => (has ? undefined : undefined));
    this.busOptions.logger?.debug({ instanceId: this.instanceId, afterSeq: this.lastSeq }, 'command bus: cursor opened');
  }

  private async anchor(): Promise<void> {
    this.lastAnchorAt = Date.now();
    await this.bus.insertNext(this.instanceId, { from: this.instanceId, body: '', anchor: true }, 'subscribe.anchor');
  }

  /**
   * Read until closed. A failure (server gone, cursor killed, client reconnected) closes the
   * cursor and opens a new one after `lastSeq` with a growing pause (up to `retryMaxMs`), so
   * once the server answers again the subscription reads again within that pause. The first
   * failure of a run is logged at warn with its cause, the rest at debug, and the recovery once.
   */
  private async run(): Promise<void> {
    let retryMs: number = MONGO_BUS_DEFAULTS.retryMinMs;
    let failingSince: number | null = null;
    let failures = 0;
    while (!this.closed) {
      let outcome: 'ended' | 'renew' = 'ended';
      try {
        if (this.bus.mode === 'tailable') {
          if (!this.cursor) await this.openCursor();
          if (failingSince !== null) {
            this.busOptions.logger?.info({ instanceId: this.instanceId, failures, downMs: Date.now() - failingSince }, 'command bus reading again');
            failingSince = null;
            failures = 0;
          }
          retryMs = MONGO_BUS_DEFAULTS.retryMinMs;
          outcome = await this.tail();
        } else {
          await this.poll();
        }
      } catch (err) {
        if (this.closed) break;
        failures += 1;
        const detail = { instanceId: this.instanceId, err: err instanceof Error ? { name: err.name, message: err.message } : String(err), retryMs, failures };
        if (failingSince === null) {
          failingSince = Date.now();
          this.busOptions.logger?.warn(detail, 'command bus read failed; reopening');
        } else {
          this.busOptions.logger?.debug(detail, 'command bus still cannot read; reopening');
        }
        await this.dropCursor();
        await sleep(retryMs);
        retryMs = Math.min(retryMs * 2, MONGO_BUS_DEFAULTS.retryMaxMs);
        continue;
      }
      // The cursor ended without an error (killed, or the server closed it): open a new one, not in a spin.
      // One given up on purpose (renew) is replaced at once.
      await this.dropCursor();
      if (!this.closed && outcome === 'ended') await sleep(MONGO_BUS_DEFAULTS.retryMinMs);
    }
  }

  private async dropCursor(): Promise<void> {
    const cursor = this.cursor;
    this.cursor = null;
    await cursor?.close().catch(() => undefined);
  }

  /**
   * Read the tailable cursor until it dies (`ended`), it should be replaced (`renew`: it moved back, or it
   * returned {@link MONGO_BUS_DEFAULTS} `cursorDocuments`), or the subscription closes.
   */
  private async tail(): Promise<'ended' | 'renew'> {
    const cursor = this.cursor;
    if (!cursor) return 'ended';
    const anchorEvery = this.busOptions.anchorEveryMs ?? MONGO_BUS_DEFAULTS.anchorEveryMs;
    let returned = 0;
    this.movedBack = false;
    while (!this.closed) {
      const doc = await cursor.tryNext();
      if (doc) {
        returned += 1;
        await this.deliverFromCursor(doc);
      } else {
        if (cursor.closed || cursor.killed) {
          this.busOptions.logger?.debug({ instanceId: this.instanceId, lastSeq: this.lastSeq }, 'command bus: cursor ended; reopening');
          return 'ended';
        }
        // An await window passed with nothing: make sure the cursor skipped nothing (see the file header).
        await this.readBack();
      }
      if (Date.now() - this.lastAnchorAt > anchorEvery) await this.anchor();
      if (this.movedBack || returned >= MONGO_BUS_DEFAULTS.cursorDocuments) {
        this.busOptions.logger?.debug({ instanceId: this.instanceId, lastSeq: this.lastSeq, returned, movedBack: this.movedBack }, 'command bus: cursor renewed');
        return 'renew';
      }
    }
    return 'ended';
  }

  /**
   * A document from the tailable cursor: one past a retained unseen one waits for it; one already seen
   * means the cursor moved back (it returns what follows one per getMore), so what is new is read now.
   */
  private async deliverFromCursor(doc: BusDoc): Promise<void> {
    const seq = Number(doc.seq);
    if (seq <= this.lastSeq) {
      this.movedBack = true;
      await this.readBack();
      return;
    }
    if (this.lastSeq > 0 && seq > this.lastSeq + 1) await this.readBack(seq);
    await this.deliver(doc, 'cursor');
  }

  /**
   * Read and deliver, in `seq` order, the retained messages after `lastSeq` (below `below` when given)
   * that the cursor did not return.
   *
   * @param below - exclusive upper bound on `seq` (the message the cursor returned after a jump)
   */
  private async readBack(below?: number): Promise<void> {
    let read = 0;
    let firstLagMs: number | null = null;
    for (;;) {
      const seqRange = below === undefined ? { $gt: this.lastSeq } : { $gt: this.lastSeq, $lt: below };
      const docs = await this.collection.find({ to: this.instanceId, seq: seqRange }).sort({ seq: 1 }).limit(READ_BACK_BATCH).toArray();
      for (const doc of docs) {
        if (this.closed) return;
        if (!doc.anchor) {
          read += 1;
          firstLagMs ??= doc.at instanceof Date ? Date.now() - doc.at.getTime() : null;
        }
        await this.deliver(doc, 'read-back');
      }
      if (docs.length < READ_BACK_BATCH || this.closed) break;
    }
    if (read > 0) {
      this.busOptions.logger?.debug({ instanceId: this.instanceId, read, firstLagMs, lastSeq: this.lastSeq }, 'command bus: the cursor skipped messages; read back by seq');
    }
  }

  private async poll(): Promise<void> {
    const pollMs = this.busOptions.pollMs ?? MONGO_BUS_DEFAULTS.pollMs;
    const anchorEvery = this.busOptions.anchorEveryMs ?? MONGO_BUS_DEFAULTS.anchorEveryMs;
    while (!this.closed) {
      const docs = await this.collection.find({ to: this.instanceId, seq: { $gt: this.lastSeq } }).sort({ seq: 1 }).limit(100).toArray();
      for (const doc of docs) {
        if (this.closed) return;
        await this.deliver(doc, 'poll');
      }
      if (Date.now() - this.lastAnchorAt > anchorEvery) await this.anchor();
      if (docs.length === 0) await sleep(pollMs);
    }
  }

  private async deliver(doc: BusDoc, via: 'cursor' | 'read-back' | 'poll'): Promise<void> {
    const seq = Number(doc.seq);
    if (seq <= this.lastSeq) return;
    if (this.lastSeq > 0 && seq > this.lastSeq + 1 && seq - this.lastSeq < 1e9) {
      this.options.onGap?.({ to: this.instanceId, fromSeq: this.lastSeq, toSeq: seq, missed: seq - this.lastSeq - 1 });
    }
    this.lastSeq = seq;
    if (doc.anchor) return;
    this.busOptions.logger?.debug({ instanceId: this.instanceId, from: doc.from, seq, via, lagMs: doc.at instanceof Date ? Date.now() - doc.at.getTime() : null }, 'command bus: delivered');
    let message: BusMessage;
    try {
      message = this.bus.open(doc);
    } catch (err) {
      this.busOptions.logger?.warn({ instanceId: this.instanceId, messageId: doc._id }, 'command bus message could not be opened (altered, or sealed with another key); skipped');
      this.options.onError?.(err, { id: doc._id, to: doc.to, from: doc.from, seq, sentAt: '', payload: null });
      return;
    }
    try {
      await this.handler(message);
    } catch (err) {
      if (this.options.onError) this.options.onError(err, message);
      else this.busOptions.logger?.warn({ instanceId: this.instanceId, messageId: message.id }, 'command bus handler threw');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    await this.cursor?.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
  }
}
