/**
 * Puts a {@link VirtualPivCard} into pcscd's vpcd virtual reader: the card is a
 * TCP client of vpcd (vsmartcard). Connection up = card inserted, connection
 * closed = card removed.
 *
 * Framing both ways (vsmartcard vpcd): a 2-byte big-endian length, then the
 * payload. A 1-byte payload from vpcd is a control byte: 0x00 power off,
 * 0x01 power on, 0x02 reset (no reply), 0x04 "send your ATR" (reply: the ATR,
 * framed). A longer payload is a command APDU; the reply is the response APDU.
 */
import { isIP, Socket } from 'node:net';
import type { Logger } from '../../common/logger';
import { insName } from '../piv/piv.constants';
import type { VirtualPivCard } from './virtual-piv-card';

/** TCP port vpcd listens on for the first virtual reader (`Virtual PCD 00 00`). */
export const VPCD_DEFAULT_PORT = 35963;
/** Only loopback is ever used (vpcd listens on all interfaces; this client never leaves the machine). */
export const VPCD_DEFAULT_HOST = '127.0.0.1';

/** vpcd control bytes. */
export const VPCD_CONTROL = {
  POWER_OFF: 0x00,
  POWER_ON: 0x01,
  RESET: 0x02,
  GET_ATR: 0x04,
} as const;

/** Options for {@link VpcdClient}. */
export interface VpcdClientOptions {
  /** The card to put in the reader. */
  card: VirtualPivCard;
  /** Loopback host; default `127.0.0.1`. */
  host?: string;
  /** vpcd port; default {@link VPCD_DEFAULT_PORT} (35964 is the second reader). */
  port?: number;
  /** Debug-level lines for connect/disconnect and command names; never command data. */
  logger?: Logger;
  /**
   * When set, reconnect (re-insert the card) this many ms after vpcd drops the
   * connection (e.g. pcscd restarted), until {@link VpcdClient.disconnect} is called.
   */
  reconnectDelayMs?: number;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** A vpcd connection for one virtual card. Reusable: connect, disconnect, connect again. */
export class VpcdClient {
  /** The card in this client's reader slot. */
  readonly card: VirtualPivCard;
  readonly host: string;
  readonly port: number;
  private readonly logger: Logger | undefined;
  private readonly reconnectDelayMs: number | undefined;
  private socket: Socket | undefined;
  private closed: Promise<void> | undefined;
  private wantConnected = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private frames = 0;

  /**
   * @param options - see {@link VpcdClientOptions}
   * @throws RangeError when `host` is not a loopback address or `port` is not 1-65535
   */
  constructor(options: VpcdClientOptions) {
    this.card = options.card;
    this.host = options.host ?? VPCD_DEFAULT_HOST;
    this.port = options.port ?? VPCD_DEFAULT_PORT;
    if (!isLoopback(this.host)) throw new RangeError(`vpcd host must be a loopback address, got "${this.host}"`);
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) throw new RangeError(`vpcd port must be 1-65535, got ${this.port}`);
    this.logger = options.logger;
    this.reconnectDelayMs = options.reconnectDelayMs;
  }

  /** The TCP connection to vpcd is up (the card is in the reader). */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  /**
   * Frames received from vpcd on the current connection (0 after each connect). vpcd asks
   * for the ATR within ~0.5 s of a connection; a count stuck at 0 means vpcd is not serving
   * this client (e.g. another virtual card already holds the port and this one waits in the backlog).
   */
  get framesReceived(): number {
    return this.frames;
  }

  /**
   * Insert the card: connect to vpcd. Resolves once connected; pcscd reports the
   * insertion on its next poll (~250-400 ms later). No-op when already connected.
   *
   * @throws Error when vpcd does not accept the connection (pcscd not running: `scripts/pcscd.sh start`)
   */
  async connect(): Promise<void> {
    this.wantConnected = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (this.socket) return;
    await this.open();
  }

  /**
   * Remove the card: close the connection; the card loses power at once (so it
   * may be called from a card hook mid-command). Resolves when the socket closed.
   */
  async disconnect(): Promise<void> {
    this.wantConnected = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    const closed = this.closed;
    if (!socket) return;
    this.drop(socket);
    socket.destroy();
    await closed;
  }

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = new Socket();
      let settled = false;
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!settled) {
          settled = true;
          const hint = error.code === 'ECONNREFUSED' ? ' (is pcscd with vpcd running? scripts/pcscd.sh start)' : '';
          reject(new Error(`vpcd at ${this.host}:${this.port} not reachable: ${error.code ?? error.message}${hint}`, { cause: error }));
        } else {
          this.logger?.debug({ err: error }, 'vpcd connection error');
        }
      });
      socket.on('close', () => {
        resolveClosed();
        const wasCurrent = this.socket === socket;
        this.drop(socket);
        if (wasCurrent) {
          this.logger?.info({ port: this.port }, 'vpcd closed the connection: card removed');
          this.scheduleReconnect();
        }
      });
      socket.connect({ host: this.host, port: this.port }, () => {
        settled = true;
        this.socket = socket;
        this.closed = closed;
        this.pending = Buffer.alloc(0);
        this.frames = 0;
        this.logger?.debug({ port: this.port, cardId: this.card.cardId }, 'connected to vpcd: card inserted');
        resolve();
      });
    });
  }

  /** Forget a socket: the card is out of the reader, so it has no power. */
  private drop(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.pending = Buffer.alloc(0);
    this.card.powerOff();
  }

  private scheduleReconnect(): void {
    if (!this.wantConnected || this.reconnectDelayMs === undefined || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.wantConnected || this.socket) return;
      this.open().catch((error: unknown) => {
        this.logger?.debug({ err: error }, 'vpcd reconnect failed; retrying');
        this.scheduleReconnect();
      });
    }, this.reconnectDelayMs);
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) return;
      const payload = this.pending.subarray(2, 2 + length);
      this.pending = this.pending.subarray(2 + length);
      this.frames++;
      this.handle(socket, payload);
      if (this.socket !== socket) return; // removed while handling (card hook)
    }
  }

  private handle(socket: Socket, payload: Buffer): void {
    if (payload.length === 1) {
      switch (payload[0]) {
        case VPCD_CONTROL.POWER_OFF:
          this.card.powerOff();
          return;
        case VPCD_CONTROL.POWER_ON:
          this.card.powerOn();
          return;
        case VPCD_CONTROL.RESET:
          if (this.card.isPowered) this.card.reset();
          else this.card.powerOn();
          return;
        case VPCD_CONTROL.GET_ATR:
          this.send(socket, this.card.atr);
          return;
        default:
          this.logger?.debug({ control: payload[0] }, 'unknown vpcd control byte ignored');
          return;
      }
    }
    if (payload.length === 0) return;
    // An APDU: vpcd powers the card before it sends one; power it anyway if a control byte was missed.
    if (!this.card.isPowered) this.card.powerOn();
    this.logger?.trace({ command: insName(payload[1] ?? -1) }, 'vpcd command');
    const response = this.card.transmit(payload);
    if (response === null) return; // the card lost power mid-command: no answer
    if (this.socket === socket) this.send(socket, response);
  }

  private send(socket: Socket, payload: Buffer): void {
    const frame = Buffer.alloc(2 + payload.length);
    frame.writeUInt16BE(payload.length, 0);
    payload.copy(frame, 2);
    socket.write(frame);
  }
}
