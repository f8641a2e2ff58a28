/**
 * Bounds on the bot's HTTP connections (issue #10, finding 4): a slowloris or a
 * connection flood must not use up the process's files and take /healthz and the
 * companion links down with it.
 *
 * - Timeouts (Node's own HTTP server): a request head must arrive within
 *   `headersTimeoutMs`, a whole request within `requestTimeoutMs`; an idle
 *   keep-alive connection closes after `keepAliveTimeoutMs`. Node checks them on an
 *   interval, set here to one second (its default is 30 s).
 * - An overall cap, below the open-file limit: when it is reached, a new
 *   connection takes the place of the connection that has waited longest with no
 *   request in progress (a slow or idle one); only when there is none is the new
 *   one refused. Requests being answered and upgraded connections (companion
 *   links) are never closed for room, so /healthz and open links keep working
 *   while a flood churns through the waiting ones.
 * - A per-address cap on HTTP connections (not on upgraded ones: many companions
 *   behind one NAT address each hold a link); over it, a new connection from that
 *   address is closed at once. IPv6 addresses count per /64.
 *
 * The cap on unauthenticated WebSockets is the link's (bot/link).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';

/** Connection limits as configured (bot/config.ts, `HTTP_*`). */
export interface ConnectionLimits {
  /** A request head must be complete within this, milliseconds (Node `server.headersTimeout`). */
  headersTimeoutMs: number;
  /** A whole request (head and body) must be received within this, milliseconds (Node `server.requestTimeout`). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this, milliseconds (Node `server.keepAliveTimeout`). */
  keepAliveTimeoutMs: number;
  /** Connections held at once, of every kind (see {@link connectionBudget}). */
  maxConnections: number;
  /** HTTP connections (not upgraded) held at once from one address or IPv6 /64; 0 = no per-address cap. */
  maxConnectionsPerAddress: number;
}

/** How often Node's HTTP server checks the header and request timeouts, milliseconds. */
const TIMEOUT_CHECK_INTERVAL_MS = 1000;
/** How often a summary of refused connections is logged (one line, not one per socket), milliseconds. */
const REPORT_INTERVAL_MS = 10_000;
/** Distinct addresses remembered per report window (bounded: a spoofed-address flood cannot grow it). */
const REPORT_MAX_ADDRESSES = 1000;
/** Default overall cap when none is configured. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Fewest connections worth running with; a lower file limit stops start-up. */
const MIN_CONNECTIONS = 64;

/**
 * The soft open-file limit (`ulimit -n`) from the text of `/proc/self/limits` (Linux).
 *
 * @param limitsText - contents of `/proc/self/limits`, or null when it cannot be read (not Linux)
 * @returns the soft limit (files), `Infinity` for "unlimited", or null when unknown
 */
export function parseOpenFileLimit(limitsText: string | null): number | null {
  if (!limitsText) return null;
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limitsText);
  if (!m) return null;
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/**
 * The overall connection cap: the configured one, or by default
 * {@link DEFAULT_MAX_CONNECTIONS}, always leaving files free below the open-file limit
 * for the store, the outbox, logs and outgoing requests (a fifth of the limit, at least 256).
 *
 * @param configured - `HTTP_MAX_CONNECTIONS`, or null for the default
 * @param fileLimit - soft open-file limit ({@link parseOpenFileLimit}); null when unknown (no clamp)
 * @returns the cap, how many files it leaves free (null when unknown), and whether the default was lowered to fit
 * @throws AppError `CONFIG.INVALID` when a configured cap does not fit below the file limit, or the limit leaves fewer than 64 connections
 */
export function connectionBudget(configured: number | null, fileLimit: number | null): { maxConnections: number; reserve: number | null; lowered: boolean } {
  if (fileLimit === null || fileLimit === Infinity) return { maxConnections: configured ?? DEFAULT_MAX_CONNECTIONS, reserve: null, lowered: false };
  const reserve = Math.max(256, Math.ceil(fileLimit / 5));
  const room = fileLimit - reserve;
  if (room < MIN_CONNECTIONS) {
    throw new AppError('CONFIG.INVALID', `the open-file limit (ulimit -n) is ${fileLimit}: too low for the bot, which keeps ${reserve} files free and needs room for at least ${MIN_CONNECTIONS} connections; raise it to ${reserve + MIN_CONNECTIONS} or more`);
  }
  if (configured !== null) {
    if (configured > room) {
      throw new AppError('CONFIG.INVALID', `HTTP_MAX_CONNECTIONS: ${configured} does not fit below the open-file limit (ulimit -n) ${fileLimit}, which must keep ${reserve} files free; set at most ${room}, or raise the limit`);
    }
    return { maxConnections: configured, reserve, lowered: false };
  }
  return { maxConnections: Math.min(DEFAULT_MAX_CONNECTIONS, room), reserve, lowered: room < DEFAULT_MAX_CONNECTIONS };
}

/**
 * The key a remote address is counted under: an IPv4 address as is (also when
 * IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its /64 prefix (one host
 * usually holds a whole /64).
 *
 * @param address - `socket.remoteAddress`
 * @returns the key, or null when there is no usable address (the socket already closed)
 */
export function addressKey(address: string | undefined): string | null {
  if (!address) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return null;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => (g.includes('.') ? g : Number.parseInt(g || '0', 16).toString(16))).join(':')}::/64`;
}

/** One accepted connection. */
interface Tracked {
  socket: Socket;
  key: string;
  /** Requests in progress (received and not yet answered). */
  active: number;
  /** Handed to the WebSocket link (an upgrade request came). */
  upgraded: boolean;
}

/** Counts since the last report. */
interface Refusals {
  perAddress: number;
  /** Waiting connections closed to make room under the overall cap. */
  evicted: number;
  /** New connections refused: the overall cap was reached and nothing could make room. */
  full: number;
  byAddress: Map<string, number>;
}

/** What the guard holds now (for logs and tests). */
export interface ConnectionCounts {
  open: number;
  /** With no request in progress and not upgraded: the ones that may be closed for room. */
  waiting: number;
  upgraded: number;
  /** Addresses with at least one HTTP connection. */
  addresses: number;
}

/**
 * Bounds the connections of one HTTP server; see the module comment. Apply it before
 * the server listens (Node reads the timeout check interval when listening starts).
 */
export class ConnectionGuard {
  private readonly tracked = new Map<Socket, Tracked>();
  /** Connections with no request in progress, oldest waiting first (Map keeps insertion order). */
  private readonly waiting = new Map<Socket, Tracked>();
  /** HTTP (not upgraded) connections per address key. */
  private readonly perAddress = new Map<string, number>();
  private refusals: Refusals = { perAddress: 0, evicted: 0, full: 0, byAddress: new Map() };
  private readonly reporter: NodeJS.Timeout;

  /**
   * @param server - the Node HTTP server (restify: `server.server`), not yet listening
   * @param limits - the limits to apply
   * @param logger - refused connections are summarised here every 10 s (counts and the busiest address, nothing sent)
   */
  constructor(
    server: Server,
    private readonly limits: ConnectionLimits,
    private readonly logger: Logger,
  ) {
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = limits.requestTimeoutMs;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // Read by Node when the server starts listening (`http.createServer` option of the same name).
    (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(TIMEOUT_CHECK_INTERVAL_MS, limits.headersTimeoutMs);
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    // restify answers `Expect: 100-continue` requests from this event, which Node emits instead of 'request'.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex) => this.onUpgrade(socket));
    server.once('close', () => clearInterval(this.reporter));
    this.reporter = setInterval(() => this.report(), REPORT_INTERVAL_MS);
    this.reporter.unref();
  }

  /** What is held now. */
  counts(): ConnectionCounts {
    let upgraded = 0;
    for (const t of this.tracked.values()) if (t.upgraded) upgraded++;
    return { open: this.tracked.size, waiting: this.waiting.size, upgraded, addresses: this.perAddress.size };
  }

  private onConnection(socket: Socket): void {
    const key = addressKey(socket.remoteAddress);
    if (key === null) {
      socket.destroy();
      return;
    }
    const fromAddress = this.perAddress.get(key) ?? 0;
    if (this.limits.maxConnectionsPerAddress > 0 && fromAddress >= this.limits.maxConnectionsPerAddress) {
      this.refuse('perAddress', key);
      socket.destroy();
      return;
    }
    if (this.tracked.size >= this.limits.maxConnections) {
      const oldest = this.waiting.values().next();
      if (oldest.done) {
        this.refuse('full', key);
        socket.destroy();
        return;
      }
      this.refuse('evicted', oldest.value.key);
      this.untrack(oldest.value);
      oldest.value.socket.destroy();
    }
    const t: Tracked = { socket, key, active: 0, upgraded: false };
    this.tracked.set(socket, t);
    this.waiting.set(socket, t);
    this.perAddress.set(key, (this.perAddress.get(key) ?? 0) + 1);
    socket.once('close', () => this.untrack(t));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const t = this.tracked.get(req.socket as Socket);
    if (!t) return;
    t.active++;
    this.waiting.delete(t.socket);
    res.once('close', () => {
      t.active--;
      // Waiting again (keep-alive): to the back of the queue, as the newest waiter.
      if (t.active === 0 && !t.upgraded && this.tracked.get(t.socket) === t && !t.socket.destroyed) this.waiting.set(t.socket, t);
    });
  }

  private onUpgrade(socket: Duplex): void {
    const t = this.tracked.get(socket as Socket);
    if (!t || t.upgraded) return;
    t.upgraded = true;
    this.waiting.delete(t.socket);
    this.release(t.key);
  }

  private untrack(t: Tracked): void {
    if (this.tracked.get(t.socket) !== t) return;
    this.tracked.delete(t.socket);
    this.waiting.delete(t.socket);
    if (!t.upgraded) this.release(t.key);
  }

  private release(key: string): void {
    const n = (this.perAddress.get(key) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(key);
    else this.perAddress.set(key, n);
  }

  private refuse(kind: 'perAddress' | 'evicted' | 'full', key: string): void {
    const r = this.refusals;
    r[kind]++;
    if (r.byAddress.has(key) || r.byAddress.size < REPORT_MAX_ADDRESSES) r.byAddress.set(key, (r.byAddress.get(key) ?? 0) + 1);
  }

  private report(): void {
    const r = this.refusals;
    if (r.perAddress + r.evicted + r.full === 0) return;
    this.refusals = { perAddress: 0, evicted: 0, full: 0, byAddress: new Map() };
    let busiest: [string, number] | null = null;
    for (const e of r.byAddress) if (!busiest || e[1] > busiest[1]) busiest = e;
    this.logger.warn(
      {
        windowSeconds: REPORT_INTERVAL_MS / 1000,
        refusedOverAddressCap: r.perAddress,
        closedForRoom: r.evicted,
        refusedAtCap: r.full,
        busiestAddress: busiest?.[0],
        busiestAddressCount: busiest?.[1],
        addressesSeen: r.byAddress.size,
        ...this.counts(),
        maxConnections: this.limits.maxConnections,
        maxConnectionsPerAddress: this.limits.maxConnectionsPerAddress,
      },
      'connection limits applied (slow or flooding clients)',
    );
  }
}
