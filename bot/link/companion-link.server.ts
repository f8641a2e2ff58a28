/**
 * Bot side of the companion link: a WebSocket endpoint (`ws`, noServer mode) on
 * `GET /companion/link`, authenticated with the device credential.
 *
 * Rules (issue #10):
 * - Revocation holds on every message: the device is read from the store for
 *   `hello`, every `request`, `reply` and `card.event`; a revoked or unknown device
 *   gets nothing (no welcome, no response) and moves nothing, and its link is closed
 *   with 4401. An open link is also closed when the device is revoked: at once on
 *   this instance ({@link CompanionLinkServer.closeRevoked}), on the instance holding
 *   it through the command bus, and otherwise (the admin command is another process)
 *   at this instance's next revocation check ({@link LINK_LIMITS} `revocationCheckMs`).
 * - One live link per device, the first one kept: a new connection for a device
 *   whose link here (or, through the bus, on another instance) answers a ping within
 *   `probeTimeoutMs` is refused with 4423 (`CloseCodes.IN_USE`); the refusal is audited
 *   (`link.duplicate_refused`) and the person is told in Teams once per kept link. A
 *   first link that does not answer is dropped and the new one takes its place.
 * - Every accepted connection is a link session with its own id (sent in `welcome`);
 *   request handlers get it, and a command may be bound to it (the PUK pair goes only
 *   to the session that presented the accepted code).
 * - Unauthenticated WebSockets (from the upgrade until a valid `hello`) are capped
 *   overall and per remote address (503 at the upgrade when full) and must say hello
 *   within `helloTimeoutMs` (else closed 4408).
 *
 * Commands to a companion are correlated by id and answered exactly once, or time
 * out. Every frame is validated with the protocol schemas; a malformed frame is
 * answered with `protocol.error` naming what is wrong (never its content) and
 * changes nothing.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import {
  BotToCompanion,
  CloseCodes,
  CommandSchema,
  CompanionToBotSchema,
  MAX_FRAME_BYTES,
  parseFrame,
  PROTOCOL_VERSION,
  ReplySchema,
  type CardStatus,
  type Command,
  type Reply,
  type Response,
} from '../../protocol/companion-link.protocol';
import type { Device, Storage } from '../../storage/storage.port';
import { hashesEqual, keyedHash } from '../security/codes';
import type { BusMessage, BusSubscription, CommandBus } from './bus/command-bus.port';
import { routeRequest, type RequestHandlers } from './companion-request.router';
import { revokeDevices } from './device-revocation';

export const LINK_PATH = '/companion/link';

/** Limits of the link; defaults here, each may be overridden (tests). */
export const LINK_LIMITS = {
  /** WebSockets from upgrade until a valid `hello`, overall. */
  maxUnauthenticated: 1000,
  /** The same, per remote address (a site behind one NAT shares it; real companions say hello within ms). */
  maxUnauthenticatedPerAddress: 64,
  /** Time from the upgrade request to a valid `hello`, ms. */
  helloTimeoutMs: 10_000,
  /** How long a device's first link may take to answer a ping before a new connection replaces it, ms. */
  probeTimeoutMs: 3000,
  /** How often every open link's device is re-read to close revoked ones, ms (one process, embedded store). */
  revocationCheckMs: 3000,
  /**
   * The same with a command bus (several instances on MongoDB; the bus carries bot-side revocations at
   * once, so this only bounds how long an admin-command revocation leaves a link open), ms.
   */
  revocationCheckWithBusMs: 30_000,
  /** At most one `link.duplicate_refused` audit entry per kept link in this time (each says how many were refused), ms. */
  duplicateAuditEveryMs: 60_000,
} as const;
export type LinkLimits = { [K in keyof typeof LINK_LIMITS]: number };

/** What the person is told in Teams when another connection with their companion's credential was refused. */
export function duplicateNotice(workstation: string): string {
  return `Another connection tried to connect to Smartcard Assist as your companion on ${workstation} and was refused; the connection already open stays. If you did not start the companion a second time, ask your RA team to revoke the pairing of ${workstation}, then pair it again.`;
}

/**
 * Messages between bot instances about companion links (over the command bus, when
 * several instances share MongoDB): commands routed to the instance holding the
 * companion's WebSocket and their replies; "is this device's link live?" probes for
 * a new connection that landed elsewhere; and "this device was revoked: close it".
 */
const LinkBusMessageSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('link.command'),
    requestId: z.string().uuid(),
    deviceId: z.string().uuid(),
    command: CommandSchema,
    timeoutMs: z.number().int().positive().max(120_000),
    replyTo: z.string().min(1).max(200),
    linkSession: z.string().uuid().optional(),
  }),
  z.object({ kind: z.literal('link.reply'), requestId: z.string().uuid(), reply: ReplySchema }),
  z.object({ kind: z.literal('link.failed'), requestId: z.string().uuid(), code: z.string().max(64), message: z.string().max(500) }),
  z.object({ kind: z.literal('link.probe'), requestId: z.string().uuid(), deviceId: z.string().uuid(), replyTo: z.string().min(1).max(200) }),
  z.object({
    kind: z.literal('link.probe_result'),
    requestId: z.string().uuid(),
    live: z.boolean(),
    notify: z.boolean(),
    audit: z.boolean(),
    refusals: z.number().int().nonnegative(),
    keptSession: z.string().uuid().nullable(),
  }),
  z.object({ kind: z.literal('link.revoked'), deviceId: z.string().uuid() }),
]);
type LinkBusMessage = z.infer<typeof LinkBusMessageSchema>;

/** What the rest of the bot needs from the link. */
export interface CompanionLink {
  /** True when this instance holds a live socket for the device (it said hello). */
  isConnected(deviceId: string): boolean;
  /** True when the device's socket is live here, or (with a command bus) on another instance as far as the store knows. */
  isReachable(device: Device): boolean;
  /**
   * Send a command and wait for its reply.
   *
   * @param deviceId - the paired device
   * @param command - a protocol command
   * @param timeoutMs - how long to wait for the reply, milliseconds
   * @param options.linkSession - send only on this link session (the PUK pair); another session of the device gets nothing
   * @returns the companion's reply (an `error` reply is returned, not thrown)
   * @throws AppError `LINK.OFFLINE` when the device is not connected, `LINK.SESSION_CHANGED` when its link is
   *   another session than `options.linkSession`, `LINK.TIMEOUT` when no reply came in time
   */
  sendCommand(deviceId: string, command: Command, timeoutMs: number, options?: { linkSession?: string }): Promise<Reply>;
}

/** Handlers the link calls for what companions send (given to the constructor). */
export interface CompanionLinkHandlers {
  /** Requests, one handler per protocol `kind` ({@link routeRequest}); `device.unpair` is answered by the link itself. */
  requests: RequestHandlers;
  onCardEvent(device: Device, status: CardStatus): Promise<void>;
  onConnected(device: Device): Promise<void>;
}

interface PendingCommand {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** What the kept link's instance says about a refused duplicate. */
interface DuplicateNote {
  /** Tell the person (the first refusal for this kept link). */
  notify: boolean;
  /** Write an audit entry now (at most one per {@link LINK_LIMITS} `duplicateAuditEveryMs`). */
  audit: boolean;
  /** Refusals since the last audit entry, this one included. */
  refusals: number;
  keptSession: string | null;
}

interface Session {
  /** Link session id (sent in `welcome`). */
  id: string;
  socket: WebSocket;
  device: Device;
  address: string;
  /** Set by the first `hello`: resolves true once the welcome went out, false when refused. */
  hello: Promise<boolean> | null;
  helloDone: boolean;
  helloTimer: NodeJS.Timeout | null;
  pending: Map<string, PendingCommand>;
  /** Card events are handled in the order they came. */
  cardEvents: Promise<void>;
  probing: Promise<boolean> | null;
  duplicates: { told: boolean; auditedAt: number | null; sinceAudit: number };
  releaseSlot: () => void;
}

type Admission =
  | { kind: 'refused'; deviceId: string | null; reason: string }
  | { kind: 'accept'; device: Device }
  | { kind: 'in_use'; device: Device; note: DuplicateNote };

/** True when `data` is a JSON `hello` frame naming a protocol version other than ours. */
function isHelloOfOtherVersion(data: Buffer): boolean {
  try {
    const v = JSON.parse(data.toString('utf8')) as { type?: unknown; protocol?: unknown };
    return v.type === 'hello' && v.protocol !== PROTOCOL_VERSION;
  } catch {
    return false;
  }
}

/** Hash of a device credential secret as stored (keyed, hex). */
export function credentialHash(key: KeyObject, secret: string): string {
  return keyedHash(key, 'device-credential', secret);
}

/** Split `Bearer <deviceId>.<secret>`; null when malformed. */
export function parseBearer(header: string | undefined): { deviceId: string; secret: string } | null {
  if (!header) return null;
  const m = /^Bearer ([0-9a-f-]{36})\.([A-Za-z0-9_-]{32,128})$/.exec(header.trim());
  if (!m) return null;
  return { deviceId: m[1]!, secret: m[2]! };
}

const errorCode = (err: unknown): string => (err instanceof AppError ? err.code : 'UNEXPECTED');

export class CompanionLinkServer implements CompanionLink {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly sessions = new Map<string, Session>();
  private readonly remote = new Map<string, PendingCommand>();
  private readonly probes = new Map<string, { resolve: (note: DuplicateNote | null) => void; timer: NodeJS.Timeout }>();
  private subscription: BusSubscription | null = null;
  private readonly limits: LinkLimits;
  private unauthenticated = 0;
  private readonly unauthenticatedByAddress = new Map<string, number>();
  private refusedUpgradesLoggedAt = 0;
  private revocationTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private closed = false;

  constructor(
    private readonly deps: {
      storage: Storage;
      credentialHashKey: KeyObject;
      logger: Logger;
      instanceId: string;
      /** Present when several instances share the store (MongoDB); null for one process. */
      bus?: CommandBus | null;
      now?: () => Date;
      /** What to do with what companions send. */
      handlers: CompanionLinkHandlers;
      /** Tell a person something in Teams (a refused second connection); absent: not told, only audited. */
      tellPerson?: (personId: string, text: string) => Promise<void>;
      limits?: Partial<LinkLimits>;
    },
  ) {
    this.limits = { ...LINK_LIMITS, ...(deps.limits ?? {}) };
  }

  /** Start the revocation check and receive messages routed from other instances (with a bus). */
  async start(): Promise<void> {
    if (!this.revocationTimer) {
      const every = this.deps.bus ? this.limits.revocationCheckWithBusMs : this.limits.revocationCheckMs;
      this.revocationTimer = setInterval(() => void this.sweepRevoked(), every);
      this.revocationTimer.unref();
    }
    const bus = this.deps.bus;
    if (!bus || this.subscription) return;
    this.subscription = await bus.subscribe(this.deps.instanceId, (m) => this.onBusMessage(m), {
      onError: (err) => this.deps.logger.warn({ errorCode: errorCode(err) }, 'command bus handler failed'),
    });
  }

  /** WebSockets now between the upgrade and a valid `hello` (for tests and health). */
  unauthenticatedCount(): number {
    return this.unauthenticated;
  }

  // -------------------------------------------------------------------------
  // Command bus
  // -------------------------------------------------------------------------

  private async onBusMessage(message: BusMessage): Promise<void> {
    const parsed = LinkBusMessageSchema.safeParse(message.payload);
    if (!parsed.success) {
      this.deps.logger.warn({ from: message.from, issue: parsed.error.issues[0]?.path.join('.') ?? '' }, 'command bus: malformed message refused');
      return;
    }
    const m = parsed.data;
    this.deps.logger.debug({ from: message.from, kind: m.kind, lagMs: Date.now() - Date.parse(message.sentAt) }, 'command bus: message received');
    switch (m.kind) {
      case 'link.command':
        // Not awaited: the bus delivers this instance's messages one at a time, so
        // waiting here for the companion (card operations take seconds, a silent
        // one the whole timeout) would hold every other command and reply behind it.
        void this.runRoutedCommand(m);
        return;
      case 'link.probe':
        void this.answerProbe(m);
        return;
      case 'link.probe_result': {
        const p = this.probes.get(m.requestId);
        if (!p) return;
        this.probes.delete(m.requestId);
        clearTimeout(p.timer);
        p.resolve(m.live ? { notify: m.notify, audit: m.audit, refusals: m.refusals, keptSession: m.keptSession } : null);
        return;
      }
      case 'link.revoked': {
        const s = this.sessions.get(m.deviceId);
        if (s) this.closeRevokedSession(s, 'revoked on another instance');
        return;
      }
      case 'link.reply':
      case 'link.failed': {
        const pending = this.remote.get(m.requestId);
        if (!pending) return;
        this.remote.delete(m.requestId);
        clearTimeout(pending.timer);
        if (m.kind === 'link.reply') pending.resolve(m.reply);
        else pending.reject(new AppError(m.code.startsWith('LINK.') ? m.code : 'LINK.OFFLINE', m.message));
        return;
      }
    }
  }

  /** Send a command routed here by another instance to its companion, and publish the outcome back. */
  private async runRoutedCommand(m: Extract<LinkBusMessage, { kind: 'link.command' }>): Promise<void> {
    let answer: LinkBusMessage;
    const started = Date.now();
    try {
      const reply = await this.sendLocal(m.deviceId, m.command, m.timeoutMs, m.linkSession);
      answer = { kind: 'link.reply', requestId: m.requestId, reply };
    } catch (err) {
      answer = { kind: 'link.failed', requestId: m.requestId, code: err instanceof AppError ? err.code : 'LINK.FAILED', message: err instanceof Error ? err.message.slice(0, 500) : 'failed' };
    }
    this.deps.logger.debug({ requestId: m.requestId, kind: m.command.kind, outcome: answer.kind, companionMs: Date.now() - started }, 'command bus: routed command answered by the companion');
    await this.deps.bus?.publish(m.replyTo, answer).catch((err: unknown) => this.deps.logger.warn({ errorCode: errorCode(err), to: m.replyTo }, 'command bus: reply not sent'));
  }

  /** Another instance has a new connection for a device whose link is here: is it live? */
  private async answerProbe(m: Extract<LinkBusMessage, { kind: 'link.probe' }>): Promise<void> {
    const s = this.sessions.get(m.deviceId);
    const note = s ? await this.probeKept(s) : null;
    const answer: LinkBusMessage = { kind: 'link.probe_result', requestId: m.requestId, live: note !== null, notify: note?.notify ?? false, audit: note?.audit ?? false, refusals: note?.refusals ?? 0, keptSession: note?.keptSession ?? null };
    await this.deps.bus?.publish(m.replyTo, answer).catch((err: unknown) => this.deps.logger.warn({ errorCode: errorCode(err), to: m.replyTo }, 'command bus: probe answer not sent'));
  }

  // -------------------------------------------------------------------------
  // Upgrade, admission, acceptance
  // -------------------------------------------------------------------------

  /** Attach to an HTTP server's `upgrade` event for {@link LINK_PATH}. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== LINK_PATH) {
      socket.write('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const release = this.takeUnauthenticatedSlot(address);
    if (!release) {
      const now = Date.now();
      if (now - this.refusedUpgradesLoggedAt > 10_000) {
        this.refusedUpgradesLoggedAt = now;
        this.deps.logger.warn({ address, unauthenticated: this.unauthenticated, perAddress: this.unauthenticatedByAddress.get(address) ?? 0 }, 'companion link: too many connections without hello; upgrade refused (503)');
      }
      socket.once('finish', () => socket.destroy());
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.once('close', release);
    socket.on('error', () => undefined);
    const helloBy = Date.now() + this.limits.helloTimeoutMs;
    // Until the handshake: a client that stalls the upgrade is cut off at the hello deadline.
    const stall = setTimeout(() => socket.destroy(), this.limits.helloTimeoutMs);
    // The credential is checked BEFORE the handshake completes, so the message
    // listener is attached in the same tick as the socket opens. Checked after,
    // a store that answers asynchronously (MongoDB: a network round trip) lets
    // the companion's first frame (hello) arrive while nothing listens, and `ws`
    // drops it: the companion then waits for a welcome that never comes.
    void this.admit(req).then(
      (admission) => {
        clearTimeout(stall);
        if (socket.destroyed) return;
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, admission, address, release, helloBy));
      },
      (err: unknown) => {
        clearTimeout(stall);
        this.deps.logger.error({ errorCode: errorCode(err) }, 'companion link: accept failed');
        if (socket.destroyed) return;
        this.wss.handleUpgrade(req, socket, head, (ws) => this.closeSoon(ws, 1011, 'server error'));
      },
    );
  }

  /** Count one unauthenticated WebSocket for `address`; null when a cap is reached. Returns the (idempotent) release. */
  private takeUnauthenticatedSlot(address: string): (() => void) | null {
    const mine = this.unauthenticatedByAddress.get(address) ?? 0;
    if (this.unauthenticated >= this.limits.maxUnauthenticated || mine >= this.limits.maxUnauthenticatedPerAddress) return null;
    this.unauthenticated += 1;
    this.unauthenticatedByAddress.set(address, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.unauthenticated -= 1;
      const n = (this.unauthenticatedByAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.unauthenticatedByAddress.delete(address);
      else this.unauthenticatedByAddress.set(address, n);
    };
  }

  /** Credential, then "is the device's first link live?" (here or, through the bus, elsewhere). */
  private async admit(req: IncomingMessage): Promise<Admission> {
    const auth = await this.authenticate(req);
    if (!auth.ok) return { kind: 'refused', deviceId: auth.deviceId, reason: auth.reason };
    const note = await this.firstLinkLive(auth.device);
    return note ? { kind: 'in_use', device: auth.device, note } : { kind: 'accept', device: auth.device };
  }

  /** Check the `Authorization: Bearer <deviceId>.<secret>` of an upgrade request against the stored device. */
  private async authenticate(req: IncomingMessage): Promise<{ ok: true; device: Device } | { ok: false; deviceId: string | null; reason: string }> {
    const bearer = parseBearer(req.headers.authorization);
    if (!bearer) return { ok: false, deviceId: null, reason: 'malformed credential' };
    const device = await this.deps.storage.devices.get(bearer.deviceId);
    if (!device) return { ok: false, deviceId: bearer.deviceId, reason: 'unknown device' };
    if (device.revokedAt) return { ok: false, deviceId: bearer.deviceId, reason: 'revoked' };
    if (!hashesEqual(device.credentialHash, credentialHash(this.deps.credentialHashKey, bearer.secret))) return { ok: false, deviceId: bearer.deviceId, reason: 'wrong secret' };
    return { ok: true, device };
  }

  /** The device's first link answered a ping (here, or on the instance the store names): what to record; null when there is none live. */
  private async firstLinkLive(device: Device): Promise<DuplicateNote | null> {
    const local = this.sessions.get(device.id);
    if (local) return this.probeKept(local);
    const owner = device.connectedInstance;
    if (!this.deps.bus || !owner || owner === this.deps.instanceId) return null;
    return this.probeRemote(device.id, owner);
  }

  /**
   * Probe a link held here: live -> the duplicate note (counted on it); dead -> dropped (the new connection replaces it), null.
   * A link that has sent no hello is not a companion yet: it never keeps a newer connection out (a silent socket
   * holding the credential answers pings by itself, in the WebSocket layer).
   */
  private async probeKept(s: Session): Promise<DuplicateNote | null> {
    const live = s.hello !== null && (await this.probe(s));
    if (live && this.sessions.get(s.device.id) === s) return this.noteDuplicate(s);
    if (this.sessions.get(s.device.id) === s) {
      this.sessions.delete(s.device.id);
      this.deps.logger.warn({ deviceId: s.device.id, session: s.id }, 'companion link: first link did not answer a ping; a new connection replaces it');
      this.closeSoon(s.socket, CloseCodes.REPLACED, 'replaced by a newer connection', true);
      this.dropSession(s, 'replaced');
    }
    return null;
  }

  /** Ping and wait up to `probeTimeoutMs` for the pong (or any frame); concurrent probes share one ping. */
  private probe(s: Session): Promise<boolean> {
    if (s.socket.readyState !== s.socket.OPEN) return Promise.resolve(false);
    if (s.probing) return s.probing;
    const socket = s.socket;
    s.probing = new Promise<boolean>((resolve) => {
      let settled = false;
      const done = (live: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('pong', onLive);
        socket.off('message', onLive);
        socket.off('close', onClose);
        s.probing = null;
        resolve(live);
      };
      const onLive = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(false), this.limits.probeTimeoutMs);
      socket.on('pong', onLive);
      socket.on('message', onLive);
      socket.on('close', onClose);
      try {
        socket.ping();
      } catch {
        done(false);
      }
    });
    return s.probing;
  }

  private noteDuplicate(s: Session): DuplicateNote {
    const d = s.duplicates;
    const now = Date.now();
    d.sinceAudit += 1;
    const notify = !d.told;
    d.told = true;
    const audit = d.auditedAt === null || now - d.auditedAt >= this.limits.duplicateAuditEveryMs;
    const refusals = d.sinceAudit;
    if (audit) {
      d.auditedAt = now;
      d.sinceAudit = 0;
    }
    return { notify, audit, refusals, keptSession: s.id };
  }

  /** Ask the instance holding the device's link whether it is live; no answer in time counts as not live (that instance is gone). */
  private async probeRemote(deviceId: string, owner: string): Promise<DuplicateNote | null> {
    const requestId = randomUUID();
    const result = new Promise<DuplicateNote | null>((resolve) => {
      const timer = setTimeout(() => {
        this.probes.delete(requestId);
        resolve(null);
      }, this.limits.probeTimeoutMs + 2000);
      this.probes.set(requestId, { resolve, timer });
    });
    try {
      await this.deps.bus!.publish(owner, { kind: 'link.probe', requestId, deviceId, replyTo: this.deps.instanceId } satisfies LinkBusMessage);
    } catch (err) {
      const p = this.probes.get(requestId);
      if (p) {
        clearTimeout(p.timer);
        this.probes.delete(requestId);
      }
      this.deps.logger.warn({ deviceId, to: owner, errorCode: errorCode(err) }, 'command bus: link probe not sent; taking the new connection');
      return null;
    }
    return result;
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /** Take an upgraded socket: listeners are attached synchronously (see {@link onUpgrade}). */
  private accept(ws: WebSocket, admission: Admission, address: string, releaseSlot: () => void, helloBy: number): void {
    ws.once('close', releaseSlot);
    ws.on('error', (err) => this.deps.logger.warn({ err: { message: err.message }, address }, 'companion link: socket error'));
    if (admission.kind === 'refused') {
      this.deps.logger.warn({ deviceId: admission.deviceId, reason: admission.reason }, 'companion link: refused');
      this.closeSoon(ws, CloseCodes.UNAUTHORISED, 'device credential refused: pair again');
      return;
    }
    const device = admission.device;
    // A live first link (or one accepted while this connection was being checked) is kept.
    const held = this.sessions.get(device.id);
    const note = admission.kind === 'in_use' ? admission.note : held ? this.noteDuplicate(held) : null;
    if (note) {
      this.deps.logger.warn({ deviceId: device.id, personId: device.personId, address, keptSession: note.keptSession }, 'companion link: second connection refused; the first link is live and kept');
      this.closeSoon(ws, CloseCodes.IN_USE, 'this device already has a live link; the first one is kept');
      void this.recordDuplicate(device, address, note).catch((err: unknown) => this.deps.logger.warn({ deviceId: device.id, errorCode: errorCode(err) }, 'companion link: refused duplicate not recorded'));
      return;
    }
    const session: Session = {
      id: randomUUID(),
      socket: ws,
      device,
      address,
      hello: null,
      helloDone: false,
      helloTimer: null,
      pending: new Map(),
      cardEvents: Promise.resolve(),
      probing: null,
      duplicates: { told: false, auditedAt: null, sinceAudit: 0 },
      releaseSlot,
    };
    this.sessions.set(device.id, session);
    session.helloTimer = setTimeout(() => {
      if (session.helloDone) return;
      this.deps.logger.warn({ deviceId: device.id, address }, 'companion link: no hello in time; closing');
      this.closeSoon(ws, CloseCodes.HELLO_TIMEOUT, 'send hello first');
    }, Math.max(0, helloBy - Date.now()));
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.send(session, { type: 'protocol.error', message: 'binary frames are not accepted; send JSON text' });
        return;
      }
      void this.onFrame(session, data as Buffer).catch((err: unknown) => this.deps.logger.error({ err, deviceId: device.id }, 'companion link: frame handling failed'));
    });
    ws.on('close', () => {
      if (session.helloTimer) clearTimeout(session.helloTimer);
      if (this.sessions.get(device.id) === session) {
        this.sessions.delete(device.id);
        void this.clearConnected(device.id).catch(() => undefined);
      }
      this.dropSession(session, 'closed');
    });
    void this.markConnected(device.id, this.deps.instanceId).then(
      () => this.deps.logger.info({ deviceId: device.id, personId: device.personId, session: session.id }, 'companion connected'),
      (err: unknown) => this.deps.logger.warn({ deviceId: device.id, errorCode: errorCode(err) }, 'companion connected, but its instance could not be recorded'),
    );
  }

  /** Audit a refused second connection (throttled) and tell the person once per kept link. No secret in either. */
  private async recordDuplicate(device: Device, address: string, note: DuplicateNote): Promise<void> {
    if (note.audit) {
      await this.deps.storage.audit.append({
        id: randomUUID(),
        at: this.now().toISOString(),
        actor: `device:${device.id}`,
        action: 'link.duplicate_refused',
        personId: device.personId,
        details: { deviceId: device.id, workstation: device.workstation, address, refusals: note.refusals, keptSession: note.keptSession },
      });
    }
    if (note.notify && this.deps.tellPerson) await this.deps.tellPerson(device.personId, duplicateNotice(device.workstation));
  }

  /** Close with a code, and cut the socket if the peer does not finish the close handshake soon. */
  private closeSoon(ws: WebSocket, code: number, reason: string, now = false): void {
    if (now) {
      ws.terminate();
      return;
    }
    ws.close(code, reason);
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  private async markConnected(deviceId: string, instance: string | null): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const d = await this.deps.storage.devices.get(deviceId);
      if (!d) return;
      const next: Device = { ...d, connectedInstance: instance, lastSeenAt: this.now().toISOString() };
      if ((await this.deps.storage.devices.save(next, d.version)) === 'saved') return;
    }
  }

  /** The socket closed here: the device is no longer reachable through this instance. */
  private async clearConnected(deviceId: string): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const d = await this.deps.storage.devices.get(deviceId);
      if (!d || d.connectedInstance !== this.deps.instanceId) return;
      if ((await this.deps.storage.devices.save({ ...d, connectedInstance: null, version: d.version + 1 }, d.version)) === 'saved') return;
    }
  }

  private dropSession(session: Session, why: string): void {
    for (const [, p] of session.pending) {
      clearTimeout(p.timer);
      p.reject(new AppError('LINK.OFFLINE', `companion disconnected (${why})`, { meta: { deviceId: session.device.id } }));
    }
    session.pending.clear();
  }

  private send(session: Session, message: BotToCompanion): void {
    if (session.socket.readyState === session.socket.OPEN) session.socket.send(JSON.stringify(message));
  }

  // -------------------------------------------------------------------------
  // Revocation
  // -------------------------------------------------------------------------

  /**
   * The device as stored now, if it is still paired (not revoked, same person); otherwise its
   * link is closed with 4401 and `revoked` returned. A store that cannot answer gives `unavailable`.
   */
  private async stillPaired(session: Session): Promise<Device | 'revoked' | 'unavailable'> {
    let current: Device | null;
    try {
      current = await this.deps.storage.devices.get(session.device.id);
    } catch (err) {
      this.deps.logger.warn({ deviceId: session.device.id, errorCode: errorCode(err) }, 'companion link: device not checked (store unavailable)');
      return 'unavailable';
    }
    if (!current || current.revokedAt !== null || current.personId !== session.device.personId) {
      this.closeRevokedSession(session, current ? 'revoked' : 'unknown device');
      return 'revoked';
    }
    return current;
  }

  /** Close one session because its device is revoked (or gone): 4401, pending commands fail, no longer reachable here. */
  private closeRevokedSession(session: Session, why: string): void {
    if (this.sessions.get(session.device.id) === session) {
      this.sessions.delete(session.device.id);
      void this.clearConnected(session.device.id).catch(() => undefined);
    }
    if (session.socket.readyState === session.socket.OPEN || session.socket.readyState === session.socket.CONNECTING) {
      this.deps.logger.warn({ deviceId: session.device.id, session: session.id, why }, 'companion link: device revoked; closing its link');
      this.closeSoon(session.socket, CloseCodes.UNAUTHORISED, 'device credential revoked: pair again');
    }
    this.dropSession(session, 'revoked');
  }

  /**
   * A device was revoked (`device-revocation.ts` `onRevoked`): close its open link here at once,
   * and tell the instance the store says holds it (command bus).
   *
   * @param device - the device as it was stored before the revocation (its `connectedInstance`)
   */
  async closeRevoked(device: Device): Promise<void> {
    const s = this.sessions.get(device.id);
    if (s) this.closeRevokedSession(s, 'revoked');
    const owner = device.connectedInstance;
    if (this.deps.bus && owner && owner !== this.deps.instanceId) {
      await this.deps.bus.publish(owner, { kind: 'link.revoked', deviceId: device.id } satisfies LinkBusMessage).catch((err: unknown) => this.deps.logger.warn({ deviceId: device.id, to: owner, errorCode: errorCode(err) }, 'command bus: revocation not sent; that instance closes the link at its next check'));
    }
  }

  /** Re-read every open link's device and close those revoked meanwhile (the admin command is another process). */
  private async sweepRevoked(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      let n = 0;
      for (const s of [...this.sessions.values()]) {
        if (this.closed) return;
        if ((await this.stillPaired(s)) === 'unavailable') return; // the store is down: try at the next check
        if (++n % 100 === 0) await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.sweeping = false;
    }
  }

  // -------------------------------------------------------------------------
  // Frames
  // -------------------------------------------------------------------------

  private async onFrame(session: Session, data: Buffer): Promise<void> {
    const parsed = parseFrame(data, CompanionToBotSchema);
    if (!parsed.ok && session.hello === null && isHelloOfOtherVersion(data)) {
      this.closeSoon(session.socket, CloseCodes.UNSUPPORTED, `protocol version not supported; this bot speaks ${PROTOCOL_VERSION}`);
      return;
    }
    if (!parsed.ok) {
      this.deps.logger.warn({ deviceId: session.device.id, error: parsed.error }, 'companion link: malformed frame refused');
      this.send(session, { type: 'protocol.error', ...(parsed.id ? { id: parsed.id } : {}), message: parsed.error });
      return;
    }
    const msg = parsed.value;
    if (msg.type === 'hello') {
      if (session.hello) {
        this.send(session, { type: 'protocol.error', message: 'hello was already received on this link' });
        return;
      }
      session.hello = this.greet(session);
      if (await session.hello) await this.deps.handlers.onConnected(session.device);
      return;
    }
    // Nothing is served before a welcome, nor to a device revoked since.
    if (!session.hello) {
      this.send(session, { type: 'protocol.error', ...('id' in msg ? { id: msg.id } : {}), message: 'send hello first' });
      return;
    }
    if (!(await session.hello)) return;
    switch (msg.type) {
      case 'reply': {
        if (!session.pending.has(msg.id)) {
          this.deps.logger.warn({ deviceId: session.device.id, id: msg.id }, 'companion link: reply to no pending command');
          return;
        }
        // A reply moves things (a card status starts the questions): the device must still be paired.
        if (typeof (await this.stillPaired(session)) === 'string') return;
        const p = session.pending.get(msg.id);
        if (!p) return;
        session.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(msg.reply);
        return;
      }
      case 'request': {
        // A store that cannot answer gets the same prompt "unavailable" as a failed handler (the
        // companion sends a result again; the page says try again), not silence until the
        // companion's request timeout (30 s).
        const current = await this.stillPaired(session);
        if (current === 'revoked') return;
        if (current === 'unavailable') {
          this.send(session, { type: 'response', id: msg.id, response: { kind: 'unlock.refused', reason: 'unavailable', message: 'Smartcard Assist could not complete that just now. Try again shortly.' } });
          return;
        }
        if (msg.request.kind === 'device.unpair') {
          await this.unpair(session, current, msg.id);
          return;
        }
        let response: Response;
        try {
          response = await routeRequest(this.deps.handlers.requests, current, msg.request, { linkSession: session.id });
        } catch (err) {
          this.deps.logger.error({ err, deviceId: session.device.id, kind: msg.request.kind }, 'companion link: request failed');
          response = { kind: 'unlock.refused', reason: 'unavailable', message: 'Smartcard Assist could not complete that just now. Try again shortly.' };
        }
        this.send(session, { type: 'response', id: msg.id, response });
        return;
      }
      case 'card.event': {
        const status = msg.status;
        const next = session.cardEvents.then(async () => {
          const current = await this.stillPaired(session);
          if (typeof current === 'string') return;
          await this.deps.handlers.onCardEvent(current, status);
        });
        session.cardEvents = next.catch((err: unknown) => this.deps.logger.warn({ deviceId: session.device.id, errorCode: errorCode(err) }, 'companion link: card event not handled'));
        await session.cardEvents;
        return;
      }
    }
  }

  /** Answer a `hello`: re-check the device (revoked since the upgrade: nothing), then welcome with the session id. */
  private async greet(session: Session): Promise<boolean> {
    try {
      const current = await this.stillPaired(session);
      if (current === 'revoked') return false;
      if (current === 'unavailable') {
        this.closeSoon(session.socket, 1011, 'try again shortly');
        return false;
      }
      session.device = current;
      const person = await this.deps.storage.persons.get(current.personId);
      if (session.socket.readyState !== session.socket.OPEN) return false;
      session.helloDone = true;
      if (session.helloTimer) clearTimeout(session.helloTimer);
      session.releaseSlot();
      this.send(session, { type: 'welcome', deviceId: current.id, personName: person?.displayName ?? '', session: session.id });
      return true;
    } catch (err) {
      this.deps.logger.error({ deviceId: session.device.id, errorCode: errorCode(err) }, 'companion link: hello not answered');
      this.closeSoon(session.socket, 1011, 'try again shortly');
      return false;
    }
  }

  /** `device.unpair`: revoke this device (the one revoke operation), answer `ok`, then close this link (4401). */
  private async unpair(session: Session, device: Device, id: string): Promise<void> {
    try {
      await revokeDevices({ storage: this.deps.storage, now: () => this.now() }, { kind: 'device', deviceId: device.id }, `device:${device.id}`, 'unpaired');
    } catch (err) {
      this.deps.logger.error({ deviceId: device.id, errorCode: errorCode(err) }, 'companion link: unpair failed');
      this.send(session, { type: 'response', id, response: { kind: 'unlock.refused', reason: 'unavailable', message: 'Smartcard Assist could not unpair this computer just now. Try again shortly.' } });
      return;
    }
    this.send(session, { type: 'response', id, response: { kind: 'ok' } });
    this.deps.logger.info({ deviceId: device.id, personId: device.personId }, 'companion unpaired by its person; device revoked');
    this.closeRevokedSession(session, 'unpaired');
  }

  // -------------------------------------------------------------------------
  // Commands to companions
  // -------------------------------------------------------------------------

  isConnected(deviceId: string): boolean {
    const s = this.sessions.get(deviceId);
    return !!s && s.helloDone && s.socket.readyState === s.socket.OPEN;
  }

  isReachable(device: Device): boolean {
    if (this.isConnected(device.id)) return true;
    return !!this.deps.bus && device.connectedInstance !== null && device.connectedInstance !== this.deps.instanceId;
  }

  async sendCommand(deviceId: string, command: Command, timeoutMs: number, options: { linkSession?: string } = {}): Promise<Reply> {
    if (this.isConnected(deviceId) || !this.deps.bus) return this.sendLocal(deviceId, command, timeoutMs, options.linkSession);
    const device = await this.deps.storage.devices.get(deviceId);
    const owner = device?.connectedInstance;
    if (!device || !owner || owner === this.deps.instanceId || device.revokedAt) {
      throw new AppError('LINK.OFFLINE', 'the companion is not connected', { meta: { deviceId } });
    }
    // Route through the instance that holds the socket.
    const requestId = randomUUID();
    const result = new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.remote.delete(requestId);
        reject(new AppError('LINK.TIMEOUT', `no reply to ${command.kind} through instance routing within ${timeoutMs + 2000} ms`, { meta: { deviceId, kind: command.kind } }));
      }, timeoutMs + 2000);
      this.remote.set(requestId, { resolve, reject, timer });
    });
    const message: LinkBusMessage = { kind: 'link.command', requestId, deviceId, command, timeoutMs, replyTo: this.deps.instanceId, ...(options.linkSession ? { linkSession: options.linkSession } : {}) };
    try {
      await this.deps.bus.publish(owner, message);
      this.deps.logger.debug({ requestId, kind: command.kind, to: owner }, 'command bus: command routed to the instance holding the companion');
    } catch (err) {
      const pending = this.remote.get(requestId);
      if (pending) {
        clearTimeout(pending.timer);
        this.remote.delete(requestId);
      }
      throw new AppError('LINK.OFFLINE', 'the instance holding the companion cannot be reached', { cause: err, meta: { deviceId } });
    }
    return result;
  }

  private sendLocal(deviceId: string, command: Command, timeoutMs: number, linkSession?: string): Promise<Reply> {
    const session = this.sessions.get(deviceId);
    if (!session || !session.helloDone || session.socket.readyState !== session.socket.OPEN) {
      return Promise.reject(new AppError('LINK.OFFLINE', 'the companion is not connected', { meta: { deviceId } }));
    }
    if (linkSession !== undefined && session.id !== linkSession) {
      return Promise.reject(new AppError('LINK.SESSION_CHANGED', `the companion's link is not the session ${command.kind} is for`, { meta: { deviceId, kind: command.kind } }));
    }
    const id = randomUUID();
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.pending.delete(id);
        reject(new AppError('LINK.TIMEOUT', `the companion did not answer ${command.kind} within ${timeoutMs} ms`, { meta: { deviceId, kind: command.kind } }));
      }, timeoutMs);
      session.pending.set(id, { resolve, reject, timer });
      this.send(session, { type: 'command', id, command });
    });
  }

  /** Close every socket (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.revocationTimer) clearInterval(this.revocationTimer);
    this.revocationTimer = null;
    await this.subscription?.close().catch(() => undefined);
    this.subscription = null;
    for (const [, p] of this.remote) {
      clearTimeout(p.timer);
      p.reject(new AppError('LINK.OFFLINE', 'shutting down'));
    }
    this.remote.clear();
    for (const [, p] of this.probes) {
      clearTimeout(p.timer);
      p.resolve(null);
    }
    this.probes.clear();
    for (const s of this.sessions.values()) {
      await this.clearConnected(s.device.id).catch(() => undefined);
      if (s.helloTimer) clearTimeout(s.helloTimer);
      s.socket.close(1001, 'server shutting down');
      this.dropSession(s, 'shutdown');
    }
    this.sessions.clear();
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
