/**
 * Bot side of the companion link: a WebSocket endpoint (`ws`, noServer mode) on
 * `GET /companion/link`, authenticated with the device credential.
 *
 * One live socket per device (a new one replaces the old with close code 4409).
 * Commands to a companion are correlated by id and answered exactly once, or
 * time out. Every frame is validated with the protocol schemas; a malformed
 * frame is answered with `protocol.error` naming what is wrong (never its
 * content) and changes nothing.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import {
  BotToCompanion,
  CloseCodes,
  CompanionToBotSchema,
  MAX_FRAME_BYTES,
  parseFrame,
  PROTOCOL_VERSION,
  type CardStatus,
  type Command,
  type Reply,
  type Response,
} from '../../protocol/companion-link.protocol';
import type { Device, Storage } from '../../storage/storage.port';
import type { BusMessage, BusSubscription, CommandBus } from './bus/command-bus.port';
import { z } from 'zod';
import { CommandSchema, ReplySchema } from '../../protocol/companion-link.protocol';
import { hashesEqual, keyedHash } from '../security/codes';
import { routeRequest, type RequestHandlers } from './companion-request.router';

export const LINK_PATH = '/companion/link';

/**
 * Messages between bot instances about companion commands (over the command
 * bus, when several instances share MongoDB): the instance where a Teams turn
 * landed asks the instance holding the companion's WebSocket to send a command,
 * and gets the reply back.
 */
const LinkBusMessageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('link.command'), requestId: z.string().uuid(), deviceId: z.string().uuid(), command: CommandSchema, timeoutMs: z.number().int().positive().max(120_000), replyTo: z.string().min(1).max(200) }),
  z.object({ kind: z.literal('link.reply'), requestId: z.string().uuid(), reply: ReplySchema }),
  z.object({ kind: z.literal('link.failed'), requestId: z.string().uuid(), code: z.string().max(64), message: z.string().max(500) }),
]);
type LinkBusMessage = z.infer<typeof LinkBusMessageSchema>;

/** What the rest of the bot needs from the link. */
export interface CompanionLink {
  /** True when this instance holds a live socket for the device. */
  isConnected(deviceId: string): boolean;
  /** True when the device's socket is live here, or (with a command bus) on another instance as far as the store knows. */
  isReachable(device: Device): boolean;
  /**
   * Send a command and wait for its reply.
   *
   * @param deviceId - the paired device
   * @param command - a protocol command
   * @param timeoutMs - how long to wait for the reply, milliseconds
   * @returns the companion's reply (an `error` reply is returned, not thrown)
   * @throws AppError `LINK.OFFLINE` when the device is not connected, `LINK.TIMEOUT` when no reply came in time
   */
  sendCommand(deviceId: string, command: Command, timeoutMs: number): Promise<Reply>;
}

/** Handlers the link calls for what companions send (given to the constructor). */
export interface CompanionLinkHandlers {
  /** Requests, one handler per protocol `kind` ({@link routeRequest}). */
  requests: RequestHandlers;
  onCardEvent(device: Device, status: CardStatus): Promise<void>;
  onConnected(device: Device): Promise<void>;
}

interface Session {
  socket: WebSocket;
  device: Device;
  helloReceived: boolean;
  pending: Map<string, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>;
}

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

export class CompanionLinkServer implements CompanionLink {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly sessions = new Map<string, Session>();
  private readonly remote = new Map<string, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private subscription: BusSubscription | null = null;

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
    },
  ) {}

  /** Start receiving commands routed from other instances (no-op without a bus). */
  async start(): Promise<void> {
    const bus = this.deps.bus;
    if (!bus || this.subscription) return;
    this.subscription = await bus.subscribe(this.deps.instanceId, (m) => this.onBusMessage(m), {
      onError: (err) => this.deps.logger.warn({ errorCode: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'command bus handler failed'),
    });
  }

  private async onBusMessage(message: BusMessage): Promise<void> {
    const parsed = LinkBusMessageSchema.safeParse(message.payload);
    if (!parsed.success) {
      this.deps.logger.warn({ from: message.from, issue: parsed.error.issues[0]?.path.join('.') ?? '' }, 'command bus: malformed message refused');
      return;
    }
    const m = parsed.data;
    this.deps.logger.debug({ from: message.from, kind: m.kind, requestId: m.requestId, lagMs: Date.now() - Date.parse(message.sentAt) }, 'command bus: message received');
    if (m.kind === 'link.command') {
      // Not awaited: the bus delivers this instance's messages one at a time, so
      // waiting here for the companion (card operations take seconds, a silent
      // one the whole timeout) would hold every other command and reply behind it.
      void this.runRoutedCommand(m);
      return;
    }
    const pending = this.remote.get(m.requestId);
    if (!pending) return;
    this.remote.delete(m.requestId);
    clearTimeout(pending.timer);
    if (m.kind === 'link.reply') pending.resolve(m.reply);
    else pending.reject(new AppError(m.code.startsWith('LINK.') ? m.code : 'LINK.OFFLINE', m.message));
  }

  /** Send a command routed here by another instance to its companion, and publish the outcome back. */
  private async runRoutedCommand(m: Extract<LinkBusMessage, { kind: 'link.command' }>): Promise<void> {
    let answer: LinkBusMessage;
    const started = Date.now();
    try {
      const reply = await this.sendLocal(m.deviceId, m.command, m.timeoutMs);
      answer = { kind: 'link.reply', requestId: m.requestId, reply };
    } catch (err) {
      answer = { kind: 'link.failed', requestId: m.requestId, code: err instanceof AppError ? err.code : 'LINK.FAILED', message: err instanceof Error ? err.message.slice(0, 500) : 'failed' };
    }
    this.deps.logger.debug({ requestId: m.requestId, kind: m.command.kind, outcome: answer.kind, companionMs: Date.now() - started }, 'command bus: routed command answered by the companion');
    await this.deps.bus?.publish(m.replyTo, answer).catch((err: unknown) => this.deps.logger.warn({ errorCode: err instanceof AppError ? err.code : 'UNEXPECTED', to: m.replyTo }, 'command bus: reply not sent'));
  }


  /** Attach to an HTTP server's `upgrade` event for {@link LINK_PATH}. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== LINK_PATH) {
        socket.write('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        socket.destroy();
        return;
      }
      // The credential is checked BEFORE the handshake completes, so the message
      // listener is attached in the same tick as the socket opens. Checked after,
      // a store that answers asynchronously (MongoDB: a network round trip) lets
      // the companion's first frame (hello) arrive while nothing listens, and `ws`
      // drops it: the companion then waits for a welcome that never comes.
      void this.authenticate(req).then(
        (auth) => this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, auth)),
        (err: unknown) => {
          this.deps.logger.error({ errorCode: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'companion link: accept failed');
          this.wss.handleUpgrade(req, socket, head, (ws) => ws.close(1011, 'server error'));
        },
      );
    });
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

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /** Take an authenticated socket: listeners are attached synchronously (see {@link attach}). */
  private accept(ws: WebSocket, auth: Awaited<ReturnType<CompanionLinkServer['authenticate']>>): void {
    if (!auth.ok) {
      this.deps.logger.warn({ deviceId: auth.deviceId, reason: auth.reason }, 'companion link: refused');
      ws.close(CloseCodes.UNAUTHORISED, 'device credential refused: pair again');
      return;
    }
    const device = auth.device;
    const previous = this.sessions.get(device.id);
    if (previous) {
      previous.socket.close(CloseCodes.REPLACED, 'replaced by a newer connection');
      this.dropSession(previous, 'replaced');
    }
    const session: Session = { socket: ws, device, helloReceived: false, pending: new Map() };
    this.sessions.set(device.id, session);
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.send(session, { type: 'protocol.error', message: 'binary frames are not accepted; send JSON text' });
        return;
      }
      void this.onFrame(session, data as Buffer).catch((err: unknown) => this.deps.logger.error({ err, deviceId: device.id }, 'companion link: frame handling failed'));
    });
    ws.on('close', () => {
      if (this.sessions.get(device.id) === session) {
        this.sessions.delete(device.id);
        void this.clearConnected(device.id).catch(() => undefined);
      }
      this.dropSession(session, 'closed');
    });
    ws.on('error', (err) => this.deps.logger.warn({ err: { message: err.message }, deviceId: device.id }, 'companion link: socket error'));
    void this.markConnected(device.id, this.deps.instanceId).then(
      () => this.deps.logger.info({ deviceId: device.id, personId: device.personId }, 'companion connected'),
      (err: unknown) => this.deps.logger.warn({ deviceId: device.id, errorCode: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'companion connected, but its instance could not be recorded'),
    );
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

  private async onFrame(session: Session, data: Buffer): Promise<void> {
    const parsed = parseFrame(data, CompanionToBotSchema);
    if (!parsed.ok && !session.helloReceived && isHelloOfOtherVersion(data)) {
      session.socket.close(CloseCodes.UNSUPPORTED, `protocol version not supported; this bot speaks ${PROTOCOL_VERSION}`);
      return;
    }
    if (!parsed.ok) {
      this.deps.logger.warn({ deviceId: session.device.id, error: parsed.error }, 'companion link: malformed frame refused');
      this.send(session, { type: 'protocol.error', ...(parsed.id ? { id: parsed.id } : {}), message: parsed.error });
      return;
    }
    const msg = parsed.value;
    const handlers = this.deps.handlers;
    switch (msg.type) {
      case 'hello': {
        session.helloReceived = true;
        if (msg.protocol !== PROTOCOL_VERSION) {
          session.socket.close(CloseCodes.UNSUPPORTED, 'protocol version not supported');
          return;
        }
        const person = await this.deps.storage.persons.get(session.device.personId);
        this.send(session, { type: 'welcome', deviceId: session.device.id, personName: person?.displayName ?? '' });
        await handlers.onConnected(session.device);
        return;
      }
      case 'reply': {
        const p = session.pending.get(msg.id);
        if (!p) {
          this.deps.logger.warn({ deviceId: session.device.id, id: msg.id }, 'companion link: reply to no pending command');
          return;
        }
        session.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(msg.reply);
        return;
      }
      case 'request': {
        if (!session.helloReceived) {
          this.send(session, { type: 'protocol.error', id: msg.id, message: 'send hello first' });
          return;
        }
        // The credential is checked on every request, not only at connect: a device
        // revoked while its link is open gets nothing more. A store that cannot answer
        // gets the same prompt "unavailable" as a failed handler (the companion sends a
        // result again; the page says try again), not silence until the companion's
        // request timeout (30 s).
        let current: Device | null;
        try {
          current = await this.deps.storage.devices.get(session.device.id);
        } catch (err) {
          this.deps.logger.error({ errorCode: err instanceof AppError ? err.code : 'UNEXPECTED', deviceId: session.device.id, kind: msg.request.kind }, 'companion link: request failed');
          this.send(session, { type: 'response', id: msg.id, response: { kind: 'unlock.refused', reason: 'unavailable', message: 'Smartcard Assist could not complete that just now. Try again shortly.' } });
          return;
        }
        if (!current || current.revokedAt) {
          this.deps.logger.warn({ deviceId: session.device.id }, 'companion link: device revoked; closing');
          session.socket.close(CloseCodes.UNAUTHORISED, 'device credential revoked: pair again');
          return;
        }
        let response: Response;
        try {
          response = await routeRequest(handlers.requests, session.device, msg.request);
        } catch (err) {
          this.deps.logger.error({ err, deviceId: session.device.id, kind: msg.request.kind }, 'companion link: request failed');
          response = { kind: 'unlock.refused', reason: 'unavailable', message: 'Smartcard Assist could not complete that just now. Try again shortly.' };
        }
        this.send(session, { type: 'response', id: msg.id, response });
        return;
      }
      case 'card.event': {
        await handlers.onCardEvent(session.device, msg.status);
        return;
      }
    }
  }

  isConnected(deviceId: string): boolean {
    const s = this.sessions.get(deviceId);
    return !!s && s.socket.readyState === s.socket.OPEN;
  }

  isReachable(device: Device): boolean {
    if (this.isConnected(device.id)) return true;
    return !!this.deps.bus && device.connectedInstance !== null && device.connectedInstance !== this.deps.instanceId;
  }

  async sendCommand(deviceId: string, command: Command, timeoutMs: number): Promise<Reply> {
    if (this.isConnected(deviceId) || !this.deps.bus) return this.sendLocal(deviceId, command, timeoutMs);
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
    const message: LinkBusMessage = { kind: 'link.command', requestId, deviceId, command, timeoutMs, replyTo: this.deps.instanceId };
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

  private sendLocal(deviceId: string, command: Command, timeoutMs: number): Promise<Reply> {
    const session = this.sessions.get(deviceId);
    if (!session || session.socket.readyState !== session.socket.OPEN) {
      return Promise.reject(new AppError('LINK.OFFLINE', 'the companion is not connected', { meta: { deviceId } }));
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
    await this.subscription?.close().catch(() => undefined);
    this.subscription = null;
    for (const [, p] of this.remote) {
      clearTimeout(p.timer);
      p.reject(new AppError('LINK.OFFLINE', 'shutting down'));
    }
    this.remote.clear();
    for (const s of this.sessions.values()) {
      await this.clearConnected(s.device.id).catch(() => undefined);
      s.socket.close(1001, 'server shutting down');
      this.dropSession(s, 'shutdown');
    }
    this.sessions.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
