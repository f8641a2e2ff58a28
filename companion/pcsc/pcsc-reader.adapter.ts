/**
 * {@link CardReaderPort} over PC/SC (`pcsclite`). The ONLY module that imports
 * `pcsclite` (STYLE.md 1).
 *
 * - Readers come and go with the context's reader list; card insertion and
 *   removal come from each reader's status changes (pcsc-lite's event counter
 *   in the upper 16 bits of the state also reveals a card swapped between polls).
 * - Connections are SCARD_SHARE_SHARED, T=0 or T=1, closed with RESET or LEAVE.
 * - When pcscd goes away or restarts (0x80100013, 0x8010001D, 0x8010001E) the
 *   context never recovers: every reader is reported removed and a new context
 *   is made every `retryDelayMs` until pcscd is back.
 * - `close()` closes every reader and the context so the process can exit.
 */
import type { Logger } from '../../common/logger';
import type { CardConnection, CardReaderPort, ReaderEvent } from '../piv/card-connection';
import { CARD_ERROR_CODE, CardError } from '../piv/piv.errors';
import { CONTEXT_LOST_CODES, PCSC_CODE, PCSC_SERVICE_DOWN_MESSAGE, pcscCode, pcscCodeHex, toCardError } from './pcsc-errors';

type AnyOrNothing = unknown;

/** The parts of a `pcsclite` CardReader this adapter uses. */
interface PcscReader {
  readonly name: string;
  readonly connected: boolean;
  readonly SCARD_SHARE_SHARED: number;
  readonly SCARD_PROTOCOL_T0: number;
  readonly SCARD_PROTOCOL_T1: number;
  readonly SCARD_STATE_PRESENT: number;
  readonly SCARD_STATE_EMPTY: number;
  readonly SCARD_STATE_MUTE: number;
  readonly SCARD_LEAVE_CARD: number;
  readonly SCARD_RESET_CARD: number;
  on(type: 'status', listener: (status: { state: number; atr?: Buffer }) => void): unknown;
  on(type: 'error', listener: (error: unknown) => void): unknown;
  on(type: 'end', listener: () => void): unknown;
  connect(options: { share_mode?: number; protocol?: number }, callback: (err: AnyOrNothing, protocol: number) => void): void;
  disconnect(disposition: number, callback: (err: AnyOrNothing) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, callback: (err: AnyOrNothing, response: Buffer) => void): void;
  close(): void;
}

/** The parts of a `pcsclite` context this adapter uses. */
interface PcscContext {
  on(type: 'reader', listener: (reader: PcscReader) => void): unknown;
  on(type: 'error', listener: (error: unknown) => void): unknown;
  close(): void;
}

type PcscFactory = () => PcscContext;

/** Receive buffer for SCardTransmit, in bytes: room for an extended-length response (65536 + SW1 SW2). */
const RECEIVE_BUFFER_BYTES = 65_538;

/** After a response shorter than SW1 SW2, how long to wait for pcscd to report the card removed, in ms (its poll is ~400 ms). */
const REMOVAL_GRACE_MS = 1500;

/** Longest wait for open connections to close in {@link PcscReaderAdapter.close}, in ms. */
const CLOSE_TIMEOUT_MS = 2000;

interface ReaderEntry {
  readonly reader: PcscReader;
  present: boolean;
  atr: Buffer;
  /** pcsc-lite's card event counter (upper 16 bits of the reader state). */
  eventCount: number;
  connection: PcscConnection | undefined;
}

/** Options for {@link PcscReaderAdapter.open}. */
export interface PcscReaderAdapterOptions {
  /** Reader and service events at debug/info/warn; APDUs are not logged here (the PIV layer does that). */
  logger?: Logger;
  /** Milliseconds between attempts to make a new PC/SC context while pcscd is away; default 2000. */
  retryDelayMs?: number;
  /**
   * When true, `open()` does not fail if pcscd is not running: the adapter keeps
   * trying in the background and reports readers once pcscd is up. Default false.
   */
  waitForService?: boolean;
}

let factoryPromise: Promise<PcscFactory> | undefined;

/** Load the CommonJS binding lazily (so importing this module never loads native code). */
function loadPcsclite(): Promise<PcscFactory> {
  factoryPromise ??= import('pcsclite').then((mod) => {
    const factory = ((mod as { default?: unknown }).default ?? mod) as unknown;
    if (typeof factory !== 'function') throw new Error('pcsclite did not export a function');
    return factory as PcscFactory;
  });
  return factoryPromise;
}

/** A reader monitor and connection factory over pcscd. */
export class PcscReaderAdapter implements CardReaderPort {
  private readonly factory: PcscFactory;
  private readonly logger: Logger | undefined;
  private readonly retryDelayMs: number;
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private readonly entries = new Map<string, ReaderEntry>();
  private context: PcscContext | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastServiceError: string | undefined;

  private constructor(factory: PcscFactory, options: PcscReaderAdapterOptions) {
    this.factory = factory;
    this.logger = options.logger;
    this.retryDelayMs = options.retryDelayMs ?? 2000;
  }

  /**
   * Make a PC/SC context and start watching readers. Readers are reported
   * asynchronously (`reader.added` a few ms later).
   *
   * @param options - see {@link PcscReaderAdapterOptions}
   * @throws CardError `CARD.READER_UNAVAILABLE` when the binding cannot be loaded, or pcscd is not
   *   running and `waitForService` is not set (PC/SC 0x8010001D)
   */
  static async open(options: PcscReaderAdapterOptions = {}): Promise<PcscReaderAdapter> {
    let factory: PcscFactory;
    try {
      factory = await loadPcsclite();
    } catch (error) {
      throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `the PC/SC binding (pcsclite) could not be loaded: ${(error as Error).message}`, { cause: error });
    }
    const adapter = new PcscReaderAdapter(factory, options);
    try {
      adapter.establish();
    } catch (error) {
      if (!options.waitForService) throw error;
      adapter.logger?.warn({ err: error }, 'PC/SC service not available; will keep trying');
      adapter.scheduleRetry();
    }
    return adapter;
  }

  /** A PC/SC context is established (pcscd reachable, as far as the adapter knows). */
  get serviceAvailable(): boolean {
    return this.context !== undefined;
  }

  readers(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Subscribe to events. The listener is first called, synchronously, with the
   * current state (`reader.added` per reader, `card.inserted` per card present);
   * later events arrive as pcscd reports them (~250-400 ms after the fact for vpcd).
   */
  onEvent(listener: (event: ReaderEvent) => void): () => void {
    this.listeners.add(listener);
    for (const [name, entry] of this.entries) {
      this.call(listener, { type: 'reader.added', reader: name });
      if (entry.present) this.call(listener, { type: 'card.inserted', reader: name, atr: entry.atr });
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Open a shared connection (SCARD_SHARE_SHARED, T=0 or T=1) to the card in `reader`.
   *
   * @throws CardError `CARD.READER_UNAVAILABLE` (pcscd down, unknown reader, adapter closed),
   *   `CARD.NOT_PRESENT` (0x8010000C), `CARD.IN_USE` (a connection from this adapter to the reader
   *   is still open, or another program holds it exclusively), `CARD.UNRESPONSIVE`
   */
  async connect(reader: string): Promise<CardConnection> {
    if (this.closed) throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, 'the PC/SC reader adapter is closed', { meta: { reader } });
    if (!this.context) {
      throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `${PCSC_SERVICE_DOWN_MESSAGE}${this.lastServiceError ? ` (${this.lastServiceError})` : ''}`, {
        meta: { reader },
      });
    }
    const entry = this.entries.get(reader);
    if (!entry) {
      const known = this.readers();
      throw new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `reader "${reader}" not found; readers now: ${known.length ? known.map((r) => `"${r}"`).join(', ') : 'none'}`, {
        meta: { reader },
      });
    }
    if (entry.connection?.isDead) await entry.connection.close('leave');
    if (entry.connection) {
      throw new CardError(CARD_ERROR_CODE.IN_USE, `a connection to reader "${reader}" is already open in this process; close it first`, { meta: { reader } });
    }
    const r = entry.reader;
    if (r.connected) await this.forceDisconnect(r);
    const protocol = await new Promise<number>((resolve, reject) => {
      r.connect({ share_mode: r.SCARD_SHARE_SHARED, protocol: r.SCARD_PROTOCOL_T0 | r.SCARD_PROTOCOL_T1 }, (err, negotiated) => {
        if (err) reject(this.mapError(err, 'connect', reader));
        else if (typeof negotiated !== 'number') reject(new CardError(CARD_ERROR_CODE.TRANSMIT_FAILED, `connect on reader "${reader}" returned no protocol`, { meta: { reader } }));
        else resolve(negotiated);
      });
    });
    const connection = new PcscConnection(this, entry, protocol);
    entry.connection = connection;
    this.logger?.debug({ reader, protocol: protocol === r.SCARD_PROTOCOL_T1 ? 'T=1' : 'T=0' }, 'card connected');
    return connection;
  }

  /** Stop watching: close open connections (RESET), every reader and the context, so the process can exit. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const closing = Promise.all([...this.entries.values()].map((e) => e.connection?.close('reset').catch(() => undefined)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    this.teardown(false);
    this.listeners.clear();
  }

  // ---------------------------------------------------------------------------

  /** @throws CardError READER_UNAVAILABLE when pcscd is not running */
  private establish(): void {
    let ctx: PcscContext;
    try {
      ctx = this.factory();
    } catch (error) {
      this.lastServiceError = error instanceof Error ? error.message : String(error);
      throw this.mapError(error, 'establish PC/SC context');
    }
    this.context = ctx;
    this.lastServiceError = undefined;
    ctx.on('error', (error) => this.onContextError(ctx, error));
    ctx.on('reader', (reader) => this.addReader(ctx, reader));
    this.logger?.debug('PC/SC context established');
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.context) return;
      try {
        this.establish();
        this.logger?.info('PC/SC service is back');
      } catch {
        this.scheduleRetry();
      }
    }, this.retryDelayMs);
  }

  private onContextError(ctx: PcscContext, error: unknown): void {
    if (ctx !== this.context || this.closed) return; // e.g. 0x80100002 "cancelled" after close()
    const code = pcscCode(error);
    this.lastServiceError = error instanceof Error ? error.message : String(error);
    this.logger?.warn({ pcscCode: code !== undefined ? pcscCodeHex(code) : null, error: this.lastServiceError }, 'PC/SC context failed; making a new one');
    this.teardown(true);
    this.scheduleRetry();
  }

  /** Called by a connection when an operation failed with a code that means the context is gone. */
  contextLost(error: unknown): void {
    if (this.closed || !this.context) return;
    this.onContextError(this.context, error);
  }

  /** Forget every reader (emitting removals when `announce`) and close the context. */
  private teardown(announce: boolean): void {
    const ctx = this.context;
    this.context = undefined;
    for (const [name, entry] of [...this.entries]) {
      this.entries.delete(name);
      entry.connection?.markDead('service');
      if (announce) {
        if (entry.present) this.emit({ type: 'card.removed', reader: name });
        this.emit({ type: 'reader.removed', reader: name });
      }
      try {
        entry.reader.close();
      } catch (error) {
        this.logger?.debug({ err: error, reader: name }, 'closing reader failed');
      }
    }
    try {
      ctx?.close();
    } catch (error) {
      this.logger?.debug({ err: error }, 'closing PC/SC context failed');
    }
  }

  private addReader(ctx: PcscContext, reader: PcscReader): void {
    if (ctx !== this.context || this.closed) {
      reader.close();
      return;
    }
    const name = reader.name;
    const entry: ReaderEntry = { reader, present: false, atr: Buffer.alloc(0), eventCount: -1, connection: undefined };
    this.entries.set(name, entry);
    reader.on('error', (error) => {
      // Status-thread errors; the context error path handles a lost service.
      this.logger?.debug({ reader: name, error: error instanceof Error ? error.message : String(error) }, 'reader status error');
    });
    reader.on('end', () => {
      if (this.entries.get(name) !== entry) return;
      this.entries.delete(name);
      entry.connection?.markDead('reader');
      if (entry.present) this.emit({ type: 'card.removed', reader: name });
      this.emit({ type: 'reader.removed', reader: name });
      this.logger?.info({ reader: name }, 'reader removed');
    });
    reader.on('status', (status) => this.onStatus(entry, status));
    this.logger?.info({ reader: name }, 'reader added');
    this.emit({ type: 'reader.added', reader: name });
  }

  private onStatus(entry: ReaderEntry, status: { state: number; atr?: Buffer }): void {
    if (this.entries.get(entry.reader.name) !== entry) return;
    const r = entry.reader;
    const name = r.name;
    const eventCount = (status.state >>> 16) & 0xffff;
    const present = (status.state & r.SCARD_STATE_PRESENT) !== 0 && (status.state & r.SCARD_STATE_MUTE) === 0;
    const swapped = entry.present && present && entry.eventCount >= 0 && ((eventCount - entry.eventCount) & 0xffff) >= 2;
    entry.eventCount = eventCount;
    if (entry.present && (!present || swapped)) {
      entry.present = false;
      entry.connection?.markDead('card');
      this.logger?.info({ reader: name }, 'card removed');
      this.emit({ type: 'card.removed', reader: name });
    }
    if (!entry.present && present) {
      entry.present = true;
      entry.atr = Buffer.from(status.atr ?? Buffer.alloc(0));
      this.logger?.info({ reader: name, atr: entry.atr.toString('hex') }, 'card inserted');
      this.emit({ type: 'card.inserted', reader: name, atr: entry.atr });
    } else if ((status.state & r.SCARD_STATE_MUTE) !== 0 && (status.state & r.SCARD_STATE_PRESENT) !== 0) {
      this.logger?.warn({ reader: name }, 'card in the reader does not answer (mute)');
    }
  }

  /** Disconnect a reader the binding still thinks is connected (e.g. a disconnect failed after removal). */
  private async forceDisconnect(r: PcscReader): Promise<void> {
    await new Promise<void>((resolve) => r.disconnect(r.SCARD_LEAVE_CARD, () => resolve()));
    if (r.connected) {
      throw new CardError(CARD_ERROR_CODE.IN_USE, `reader "${r.name}" still has a stale connection that could not be closed`, { meta: { reader: r.name } });
    }
  }

  /** Map a binding error, and start a new context when the service was lost. */
  mapError(error: unknown, operation: string, reader?: string): CardError {
    const code = pcscCode(error);
    if (code !== undefined && CONTEXT_LOST_CODES.has(code) && operation !== 'establish PC/SC context') this.contextLost(error);
    return toCardError(error, operation, reader);
  }

  /** A connection finished closing. */
  released(entry: ReaderEntry, connection: PcscConnection): void {
    if (entry.connection === connection) entry.connection = undefined;
  }

  private emit(event: ReaderEvent): void {
    for (const listener of [...this.listeners]) this.call(listener, event);
  }

  private call(listener: (event: ReaderEvent) => void, event: ReaderEvent): void {
    try {
      listener(event);
    } catch (error) {
      this.logger?.error({ err: error, event: event.type }, 'reader event listener threw');
    }
  }
}

/** One open PC/SC card connection; transmits are serialised. */
class PcscConnection implements CardConnection {
  readonly reader: string;
  readonly atr: Buffer;
  private readonly adapter: PcscReaderAdapter;
  private readonly entry: ReaderEntry;
  private readonly protocol: number;
  private queue: Promise<unknown> = Promise.resolve();
  private open = true;
  /** Why the connection can no longer reach its card: the card was removed, the reader went, or pcscd went. */
  private deadBecause: 'card' | 'reader' | 'service' | undefined;

  constructor(adapter: PcscReaderAdapter, entry: ReaderEntry, protocol: number) {
    this.adapter = adapter;
    this.entry = entry;
    this.reader = entry.reader.name;
    this.atr = entry.atr;
    this.protocol = protocol;
  }

  markDead(reason: 'card' | 'reader' | 'service'): void {
    this.deadBecause ??= reason;
  }

  /** The card (or its reader, or pcscd) went away after this connection was made; it can only be closed. */
  get isDead(): boolean {
    return this.deadBecause !== undefined;
  }

  private deadError(): CardError {
    const meta = { reader: this.reader, operation: 'transmit', pcscCode: null };
    if (this.deadBecause === 'service') {
      return new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `transmit on reader "${this.reader}" failed: ${PCSC_SERVICE_DOWN_MESSAGE}`, { meta });
    }
    if (this.deadBecause === 'reader') {
      return new CardError(CARD_ERROR_CODE.READER_UNAVAILABLE, `transmit on reader "${this.reader}" failed: the reader was disconnected`, { meta });
    }
    return new CardError(CARD_ERROR_CODE.REMOVED, `transmit on reader "${this.reader}" failed: the card was removed`, { meta });
  }

  transmit(apdu: Buffer): Promise<Buffer> {
    const run = (): Promise<Buffer> =>
      new Promise<Buffer>((resolve, reject) => {
        if (!this.open) {
          reject(new CardError(CARD_ERROR_CODE.TRANSMIT_FAILED, `connection to reader "${this.reader}" is closed`, { meta: { reader: this.reader } }));
          return;
        }
        if (this.isDead) {
          reject(this.deadError());
          return;
        }
        this.entry.reader.transmit(apdu, RECEIVE_BUFFER_BYTES, this.protocol, (err, response) => {
          if (err) reject(this.adapter.mapError(err, 'transmit', this.reader));
          else if (response.length >= 2) resolve(response);
          else this.shortResponse(response).then(resolve, reject);
        });
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * SCardTransmit "succeeded" with fewer than 2 bytes: a card that lost power mid-APDU
   * (pulled) answers like this, and pcscd reports the removal a moment later. Wait up to
   * {@link REMOVAL_GRACE_MS} for that: if it comes, throw `CARD.REMOVED`; if not, hand the
   * short response up so the card layer reports `CARD.RESPONSE_TOO_SHORT`.
   */
  private async shortResponse(response: Buffer): Promise<Buffer> {
    const deadline = Date.now() + REMOVAL_GRACE_MS;
    while (!this.isDead && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    if (this.isDead) {
      throw new CardError(CARD_ERROR_CODE.REMOVED, `transmit on reader "${this.reader}" failed: the card was removed mid-command (response of ${response.length} bytes)`, {
        meta: { reader: this.reader, operation: 'transmit', pcscCode: null, responseLength: response.length },
      });
    }
    return response;
  }

  /**
   * Close the connection (SCardDisconnect). Errors because the card or the service is
   * gone are ignored: the connection is released either way. Idempotent.
   *
   * @param disposition - `reset` (default: clears the PIN-verified state) or `leave`
   */
  async close(disposition: 'reset' | 'leave' = 'reset'): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.queue;
    const r = this.entry.reader;
    const mode = disposition === 'reset' ? r.SCARD_RESET_CARD : r.SCARD_LEAVE_CARD;
    await new Promise<void>((resolve) => {
      r.disconnect(mode, (err) => {
        if (err) {
          const code = pcscCode(err);
          // After removal pcsc-lite may refuse the RESET; try LEAVE so the binding forgets the handle.
          if (code === PCSC_CODE.SCARD_W_REMOVED_CARD && mode !== r.SCARD_LEAVE_CARD) {
            r.disconnect(r.SCARD_LEAVE_CARD, () => resolve());
            return;
          }
        }
        resolve();
      });
    });
    this.adapter.released(this.entry, this);
  }
}
