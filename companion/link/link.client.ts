/**
 * The companion's one outbound WebSocket to the bot (`/companion/link`).
 *
 * Connects with `Authorization: Bearer <credential>`, sends `hello`, answers
 * every `command` exactly once with a `reply` carrying the same id, and sends
 * `request`s whose `response` it matches by id (with a timeout). Every
 * incoming frame is validated with the protocol schemas; a bad frame is logged
 * by its parse error (never by content) and, when it was a command with an id,
 * answered with an `error` reply and nothing else. Lost connections come back
 * with exponential backoff and jitter (cap 30 s); close code 4401 means the
 * credential was revoked, so the client stops and asks to pair again; 4423 means
 * another connection with this credential holds the link (the bot keeps the
 * first), so it retries slowly.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import {
  BotToCompanionSchema,
  CloseCodes,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  parseFrame,
  type CardStatus,
  type Command,
  type CompanionToBot,
  type Reply,
  type Request,
  type Response,
} from '../../protocol/companion-link.protocol';
import { backoffDelay, LINK_BACKOFF, type BackoffOptions } from '../backoff';

/** Where the link is. `ready` = socket open and `welcome` received. */
export type LinkState = 'idle' | 'connecting' | 'ready' | 'waiting' | 'unauthorised' | 'stopped';

/** Result of a request: the bot's response, or why there is none (an expected outcome, not a throw). */
export type RequestResult =
  | { ok: true; response: Response }
  | { ok: false; reason: 'not_connected' | 'timeout' | 'closed' | 'refused_by_bot' };

/** What the bot said in `welcome`. */
export interface Welcome {
  deviceId: string;
  personName: string;
  /** This link session's id (bots since issue #10); a new one on every reconnect. */
  session: string | null;
}

export interface LinkClientOptions {
  /** `ws://` or `wss://` URL of `/companion/link`. */
  url: URL;
  /** Bearer credential `<deviceId>.<secret>`. Secret: never logged. */
  credential: string;
  /** Sent in `hello`. */
  workstation: string;
  /** Companion version, sent in `hello` (max 32 chars). */
  version: string;
  logger: Logger;
  /** Handles one bot command; its value becomes the reply. A throw becomes an `error` reply. */
  onCommand: (command: Command) => Promise<Reply>;
  /** Called on every `welcome` (first connect and each reconnect). */
  onWelcome?: (welcome: Welcome) => void;
  onStateChange?: (state: LinkState) => void;
  /** Close code 4401 (or HTTP 401/403 on upgrade): the credential is no longer valid. The client has stopped. */
  onUnauthorised: () => void;
  /** Every close of a link socket, with its code (e.g. 4423: another connection holds the link). */
  onClose?: (code: number) => void;
  /** Reconnect backoff; default 0.5 s to 30 s. */
  backoff?: BackoffOptions;
  /** Default time to wait for a response, in ms; default 30 000. */
  requestTimeoutMs?: number;
  /** Time a command handler may take before an error reply is sent, in ms; default 60 000. */
  commandTimeoutMs?: number;
  /** Ping interval; a connection that misses a whole interval without a pong is dropped. In ms; default 30 000. */
  heartbeatMs?: number;
  /** Opening handshake timeout, in ms; default 10 000. */
  handshakeTimeoutMs?: number;
  /** CA certificates (PEM) to verify a `wss://` bot with, instead of Node's built-in list (companion/bot-tls.ts). */
  ca?: readonly string[];
}

interface Pending {
  resolve: (result: RequestResult) => void;
  timer: NodeJS.Timeout;
}

const ERROR_CODE_RE = /^[A-Z]+(\.[A-Z_]+)+$/;

/** Keeps the link to the bot up and carries commands, requests and card events over it. */
export class LinkClient {
  private socket: WebSocket | null = null;
  private stateValue: LinkState = 'idle';
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly inFlightCommands = new Set<string>();
  private readyWaiters: (() => void)[] = [];
  private closedPromise: Promise<void> | null = null;

  constructor(private readonly options: LinkClientOptions) {}

  /** Current state. */
  get state(): LinkState {
    return this.stateValue;
  }

  /** Start connecting (no-op when already started). */
  start(): void {
    if (this.stateValue !== 'idle') return;
    this.connect();
  }

  /**
   * Send a request and wait for its response.
   *
   * @param request - a protocol request (`unlock.submit_code`, `unlock.resume`, `unlock.result`)
   * @param timeoutMs - how long to wait for the response, in ms; default from the options
   * @returns the response, or `{ ok: false, reason }`: `not_connected` (not ready, nothing sent),
   *   `timeout`, `closed` (link dropped before the answer), `refused_by_bot` (bot answered `protocol.error`)
   */
  request(request: Request, timeoutMs = this.options.requestTimeoutMs ?? 30_000): Promise<RequestResult> {
    if (this.stateValue !== 'ready' || !this.socket) return Promise.resolve({ ok: false, reason: 'not_connected' });
    const id = randomUUID();
    return new Promise<RequestResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.options.logger.warn({ requestId: id, kind: request.kind }, 'request timed out');
        resolve({ ok: false, reason: 'timeout' });
      }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      if (!this.send({ type: 'request', id, request })) {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve({ ok: false, reason: 'not_connected' });
      }
    });
  }

  /**
   * Tell the bot a card was inserted or removed (no answer expected).
   *
   * @param status - the card status now
   * @returns true when the frame was handed to the socket, false when the link is not ready
   */
  sendCardEvent(status: CardStatus): boolean {
    if (this.stateValue !== 'ready') return false;
    return this.send({ type: 'card.event', status });
  }

  /**
   * Wait until the link is ready.
   *
   * @param timeoutMs - give up after this many ms
   * @returns true when ready, false on timeout or when the client stopped
   */
  waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.stateValue === 'ready') return Promise.resolve(true);
    if (this.stateValue === 'stopped' || this.stateValue === 'unauthorised') return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(this.stateValue === 'ready');
      };
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.readyWaiters.push(done);
    });
  }

  /** Close the link for good (shutdown): no reconnect; pending requests end as `closed`. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped') return;
    this.setState('stopped');
    this.clearTimers();
    this.failPending('closed');
    this.wakeReadyWaiters();
    const socket = this.socket;
    if (socket && socket.readyState !== WebSocket.CLOSED) {
      const closed = this.closedPromise ?? Promise.resolve();
      socket.close(1000, 'companion stopping');
      const timer = setTimeout(() => socket.terminate(), 2000);
      await closed;
      clearTimeout(timer);
    }
    this.socket = null;
  }

  // -------------------------------------------------------------------------

  private connect(): void {
    if (this.stateValue === 'stopped' || this.stateValue === 'unauthorised') return;
    this.setState('connecting');
    const { url, credential, logger } = this.options;
    const socket = new WebSocket(url, {
      headers: { Authorization: `Bearer ${credential}` },
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: this.options.handshakeTimeoutMs ?? 10_000,
      // The bot's certificate is always verified (Node's default); `ca` adds a private CA (SMARTCARD_BOT_CA_FILE).
      ...(this.options.ca ? { ca: [...this.options.ca] } : {}),
      followRedirects: false,
      perMessageDeflate: false,
    });
    this.socket = socket;
    let unauthorised = false;
    let resolveClosed!: () => void;
    this.closedPromise = new Promise<void>((r) => (resolveClosed = r));

    socket.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401 || status === 403) unauthorised = true;
      logger.warn({ status }, 'link upgrade refused by the bot');
      socket.terminate();
    });
    socket.on('open', () => {
      logger.debug({ url: url.origin }, 'link socket open; sending hello');
      this.send({ type: 'hello', protocol: PROTOCOL_VERSION, version: this.options.version, workstation: this.options.workstation });
      this.startHeartbeat(socket);
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        logger.warn('link frame refused: binary frames are not part of the protocol');
        return;
      }
      this.onFrame(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));
    });
    socket.on('pong', () => {
      (socket as WebSocket & { alive?: boolean }).alive = true;
    });
    socket.on('error', (err) => {
      // Followed by 'close'. The message of a ws error holds no header values.
      logger.warn({ err: { name: err.name, message: err.message } }, 'link socket error');
    });
    socket.on('close', (code, reasonBuf) => {
      resolveClosed();
      if (this.socket === socket) this.socket = null;
      this.stopHeartbeat();
      this.failPending('closed');
      this.inFlightCommands.clear();
      const reason = reasonBuf.toString('utf8').slice(0, 120);
      this.options.onClose?.(code);
      if (this.stateValue === 'stopped') return;
      if (code === CloseCodes.UNAUTHORISED || unauthorised) {
        logger.warn({ closeCode: code }, 'link closed: credential refused; pairing again');
        this.setState('unauthorised');
        this.wakeReadyWaiters();
        this.options.onUnauthorised();
        return;
      }
      if (code === CloseCodes.REPLACED || code === CloseCodes.IN_USE || code === CloseCodes.UNSUPPORTED) {
        // Another process holds this credential, or the bot wants another protocol: retry slowly.
        this.attempt = Math.max(this.attempt, 30);
        const why =
          code === CloseCodes.REPLACED
            ? 'link replaced by another connection with this credential'
            : code === CloseCodes.IN_USE
              ? 'link refused: another connection with this credential holds it (is the companion running twice?)'
              : 'bot does not support this protocol version';
        logger.error({ closeCode: code, reason }, why);
      }
      const wait = backoffDelay(this.attempt, this.options.backoff ?? LINK_BACKOFF);
      this.attempt += 1;
      logger.info({ closeCode: code, reason, retryInMs: wait }, 'link closed; reconnecting');
      this.setState('waiting');
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, wait);
    });
  }

  private onFrame(raw: Buffer): void {
    const { logger } = this.options;
    const parsed = parseFrame(raw, BotToCompanionSchema);
    if (!parsed.ok) {
      logger.warn({ error: parsed.error }, 'link frame refused');
      // A command that does not parse still gets its one reply, so the bot stops waiting; nothing else is answered.
      const commandId = invalidCommandId(raw);
      if (commandId !== undefined) {
        this.send({ type: 'reply', id: commandId, reply: { kind: 'error', code: 'PROTOCOL.INVALID_COMMAND', message: `command refused: ${parsed.error}`.slice(0, 500) } });
      }
      return;
    }
    const frame = parsed.value;
    switch (frame.type) {
      case 'welcome':
        this.attempt = 0;
        logger.info({ deviceId: frame.deviceId }, 'link ready');
        this.setState('ready');
        this.options.onWelcome?.({ deviceId: frame.deviceId, personName: frame.personName, session: frame.session ?? null });
        this.wakeReadyWaiters();
        return;
      case 'command':
        void this.runCommand(frame.id, frame.command);
        return;
      case 'response': {
        const pending = this.pending.get(frame.id);
        if (!pending) {
          logger.warn({ requestId: frame.id }, 'response for no pending request ignored');
          return;
        }
        this.pending.delete(frame.id);
        clearTimeout(pending.timer);
        pending.resolve({ ok: true, response: frame.response });
        return;
      }
      case 'protocol.error': {
        logger.warn({ requestId: frame.id ?? null, error: frame.message }, 'bot refused a frame');
        const pending = frame.id !== undefined ? this.pending.get(frame.id) : undefined;
        if (pending && frame.id !== undefined) {
          this.pending.delete(frame.id);
          clearTimeout(pending.timer);
          pending.resolve({ ok: false, reason: 'refused_by_bot' });
        }
        return;
      }
    }
  }

  private async runCommand(id: string, command: Command): Promise<void> {
    const { logger } = this.options;
    if (this.inFlightCommands.has(id)) {
      logger.warn({ commandId: id, kind: command.kind }, 'duplicate command id while the first is running; ignored');
      return;
    }
    this.inFlightCommands.add(id);
    const socket = this.socket;
    let timer: NodeJS.Timeout | undefined;
    let reply: Reply;
    try {
      const timeout = new Promise<Reply>((resolve) => {
        timer = setTimeout(
          () => resolve({ kind: 'error', code: 'COMPANION.TIMEOUT', message: 'the companion took too long to carry out the command' }),
          this.options.commandTimeoutMs ?? 60_000,
        );
      });
      reply = await Promise.race([this.options.onCommand(command), timeout]);
    } catch (err) {
      reply = toErrorReply(err);
      logger.warn({ commandId: id, kind: command.kind, errorCode: reply.kind === 'error' ? reply.code : null }, 'command failed');
    } finally {
      clearTimeout(timer);
      this.inFlightCommands.delete(id);
    }
    if (this.socket !== socket) {
      logger.warn({ commandId: id, kind: command.kind }, 'link dropped before the reply could be sent');
      return;
    }
    this.send({ type: 'reply', id, reply });
  }

  private send(frame: CompanionToBot): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  private startHeartbeat(socket: WebSocket): void {
    const ms = this.options.heartbeatMs ?? 30_000;
    const s = socket as WebSocket & { alive?: boolean };
    s.alive = true;
    this.heartbeatTimer = setInterval(() => {
      if (!s.alive) {
        this.options.logger.warn('link heartbeat missed; dropping the connection');
        socket.terminate();
        return;
      }
      s.alive = false;
      socket.ping();
    }, ms);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHeartbeat();
  }

  private failPending(reason: 'closed'): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve({ ok: false, reason });
    }
  }

  private wakeReadyWaiters(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }

  private setState(state: LinkState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.options.onStateChange?.(state);
  }
}

/** The id of a frame that claims to be a command, when the id itself is valid (1-64 chars); else undefined. */
function invalidCommandId(raw: Buffer): string | undefined {
  try {
    const json: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof json !== 'object' || json === null) return undefined;
    const { type, id } = json as { type?: unknown; id?: unknown };
    return type === 'command' && typeof id === 'string' && id.length >= 1 && id.length <= 64 ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Turn a thrown error into an `error` reply: an AppError keeps its code and message
 * (they carry no secrets by rule); anything else becomes `COMPANION.INTERNAL` with a generic message.
 *
 * @param err - what the command handler threw
 * @returns a reply of kind `error`
 */
export function toErrorReply(err: unknown): Extract<Reply, { kind: 'error' }> {
  if (err instanceof AppError) {
    return { kind: 'error', code: ERROR_CODE_RE.test(err.code) ? err.code : 'COMPANION.INTERNAL', message: err.message.slice(0, 500) };
  }
  return { kind: 'error', code: 'COMPANION.INTERNAL', message: 'the companion could not carry out the command' };
}
