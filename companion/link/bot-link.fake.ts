/**
 * A stand-in for the bot's companion endpoints, for specs and integration tests
 * of the companion (STYLE.md 17: a fake only where the real part is another
 * process; it speaks the real contract). It serves the pairing endpoints
 * (`POST /companion/pair/start`, `/companion/pair/poll`, RFC 8628 answers) and
 * the link (`GET /companion/link` WebSocket, Bearer credential, `hello` then
 * `welcome`, commands with ids, responses to requests, close 4401 for a refused
 * credential). Every frame it receives is validated with the protocol schemas
 * and recorded; tests assert on what arrived.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CloseCodes,
  CompanionToBotSchema,
  MAX_FRAME_BYTES,
  parseFrame,
  type BotToCompanion,
  type Command,
  type CompanionToBot,
  type PairPollResponse,
  type Reply,
  type Request,
  type Response,
} from '../../protocol/companion-link.protocol';

/** A PUK pair the fake hands out after `unlock.accepted` (see {@link FakeBot.releaseOnAccept}). */
export interface PukRelease {
  puk: string;
  newPuk: string;
  pukUncertain?: boolean;
}

/** A frame the fake received, with the connection number it came on and when. */
export interface Received {
  connection: number;
  at: number;
  frame: CompanionToBot;
}

interface PendingPair {
  deviceCode: string;
  userCode: string;
  workstation: string;
  approvedFor: string | null;
  denied: boolean;
  collected: boolean;
}

export interface FakeBotOptions {
  /** Poll interval the fake hands out, in protocol seconds; default 1. */
  pairInterval?: number;
  /** Code lifetime, in protocol seconds; default 600. */
  pairExpiresIn?: number;
  /**
   * Answers requests; default: `ok` for `unlock.result`, `unlock.refused`/`unavailable` otherwise.
   * Commands that follow a response (the PUK pair) come from {@link FakeBot.afterResponse}.
   */
  onRequest?: (request: Request) => Response | Promise<Response> | null;
}

/** The fake bot. */
export class FakeBot {
  /** Every valid frame received, in order. */
  readonly received: Received[] = [];
  /** Parse errors of frames that did not validate. */
  readonly refused: string[] = [];
  /** Connection attempts (after the upgrade), with time and Authorization header presence. */
  readonly connections: { at: number; authorised: boolean }[] = [];
  /** Close codes the fake saw from companions (code per connection). */
  readonly closes: number[] = [];
  /** Credentials the link accepts. */
  readonly credentials = new Map<string, { deviceId: string; personName: string }>();
  onRequest: (request: Request) => Response | Promise<Response> | null;
  /** When > 0, the next connections are accepted and closed at once with 1011 (bot trouble). */
  dropNextConnections = 0;
  /** When true, upgrades are refused with HTTP 401 (as a proxy might). */
  refuseUpgradeWith401 = false;
  /** When false, requests get no response at all. */
  answerRequests = true;
  /**
   * When true, a new connection while one is live is refused with 4423 (`CloseCodes.IN_USE`), as
   * the real bot does for a first link that answers pings (issue #10); default false: the newer
   * connection replaces the live one (4409).
   */
  keepFirstLink = false;
  /**
   * Commands to send just after a response went out, as the real bot's outbox does
   * (e.g. the PUK custody's `unlock.authorised` after `unlock.accepted`). Null: none.
   */
  afterResponse: ((request: Request, response: Response) => Command[] | null) | null = null;
  /** Replies to the commands {@link afterResponse} sent, in order of arrival. */
  readonly followUpReplies: { command: Command['kind']; reply: Reply | 'no_reply' }[] = [];

  private server: Server | null = null;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private readonly pairs: PendingPair[] = [];
  private current: { socket: WebSocket; connection: number } | null = null;
  private readonly replyWaiters = new Map<string, (reply: Reply) => void>();
  private frameWaiters: { predicate: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];

  constructor(private readonly options: FakeBotOptions = {}, wsOptions: { autoPong?: boolean } = {}) {
    this.onRequest = options.onRequest ?? ((request) => (request.kind === 'unlock.result' ? { kind: 'ok' } : { kind: 'unlock.refused', reason: 'unavailable', message: 'Not now.' }));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, autoPong: wsOptions.autoPong ?? true });
  }

  /** Base URL (http) of the fake, after {@link start}. */
  url = new URL('http://127.0.0.1:0');

  /** Listen on 127.0.0.1 (any free port). */
  async start(): Promise<URL> {
    const server = createServer((req, res) => void this.handleHttp(req, res));
    server.on('upgrade', (req: IncomingMessage, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path !== '/companion/link') {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      if (this.refuseUpgradeWith401) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return this.url;
  }

  /** Stop listening and close every socket. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // ---- pairing --------------------------------------------------------------

  /** User codes handed out so far. */
  get userCodes(): string[] {
    return this.pairs.map((p) => p.userCode);
  }

  /**
   * Approve a user code as if the person sent `pair CODE` in Teams.
   *
   * @returns the credential the companion will receive on its next poll
   */
  approve(userCode: string, personName = 'Alex Wilber'): string {
    const pair = this.pairs.find((p) => p.userCode === userCode);
    if (!pair) throw new Error(`unknown user code ${userCode}`);
    const deviceId = randomUUID();
    const credential = `${deviceId}.${randomBytes(32).toString('base64url')}`;
    this.credentials.set(credential, { deviceId, personName });
    pair.approvedFor = credential;
    return credential;
  }

  /** Revoke a credential: later connections close 4401, and so do open ones now. */
  revoke(credential: string): void {
    this.credentials.delete(credential);
    for (const s of this.sockets) s.close(CloseCodes.UNAUTHORISED, 'device credential refused: pair again');
  }

  // ---- link -------------------------------------------------------------------

  /** Number of the live connection (1-based), or 0. */
  get liveConnection(): number {
    return this.current?.connection ?? 0;
  }

  /**
   * Send a command and wait for the reply with its id.
   *
   * @throws Error when no companion is connected or no reply comes within `timeoutMs`
   */
  command(command: Command, timeoutMs = 5000): Promise<Reply> {
    const id = randomUUID();
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replyWaiters.delete(id);
        reject(new Error(`no reply to ${command.kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.replyWaiters.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      if (!this.sendFrame({ type: 'command', id, command })) {
        clearTimeout(timer);
        this.replyWaiters.delete(id);
        reject(new Error('no companion connected'));
      }
    });
  }

  /**
   * After every `unlock.accepted`, send the PUK pair as the `unlock.authorised` command, as the
   * bot's PUK custody does (the pair is chosen per request, or null to send nothing).
   *
   * @param pair - `{ puk, newPuk, pukUncertain? }` (8 digits each), or a function of the request
   */
  releaseOnAccept(pair: PukRelease | ((request: Request) => PukRelease | null)): void {
    this.afterResponse = (request, response) => {
      if (response.kind !== 'unlock.accepted' || (request.kind !== 'unlock.submit_code' && request.kind !== 'unlock.resume')) return null;
      const p = typeof pair === 'function' ? pair(request) : pair;
      if (!p) return null;
      return [{ kind: 'unlock.authorised', journeyId: request.journeyId, cardId: request.cardId, puk: p.puk, newPuk: p.newPuk, ...(p.pukUncertain ? { pukUncertain: true } : {}) }];
    };
  }

  /** Send raw text (or bytes) on the live connection. */
  sendRaw(data: string | Buffer, binary = false): void {
    if (!this.current) throw new Error('no companion connected');
    this.current.socket.send(data, { binary });
  }

  /** Close the live connection with a code. */
  closeLive(code: number, reason = ''): void {
    this.current?.socket.close(code, reason);
  }

  /**
   * Wait for a received frame that matches.
   *
   * @param predicate - test on each frame (earlier frames count too)
   * @param timeoutMs - give up after this many ms
   */
  waitFor(predicate: (r: Received) => boolean, timeoutMs = 5000): Promise<Received> {
    const found = this.received.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise<Received>((resolve, reject) => {
      const entry = { predicate, resolve: (r: Received) => (clearTimeout(timer), resolve(r)) };
      const timer = setTimeout(() => {
        this.frameWaiters = this.frameWaiters.filter((w) => w !== entry);
        reject(new Error('frame not received in time'));
      }, timeoutMs);
      this.frameWaiters.push(entry);
    });
  }

  /** Requests received, in order. */
  requests(): Request[] {
    return this.received.flatMap((r) => (r.frame.type === 'request' ? [r.frame.request] : []));
  }

  // ---- internals --------------------------------------------------------------

  private sendFrame(frame: BotToCompanion): boolean {
    if (!this.current) return false;
    this.current.socket.send(JSON.stringify(frame));
    return true;
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const connection = this.connections.length + 1;
    const header = req.headers.authorization ?? '';
    const credential = header.startsWith('Bearer ') ? header.slice(7) : '';
    const who = this.credentials.get(credential);
    this.connections.push({ at: Date.now(), authorised: who !== undefined });
    this.sockets.add(ws);
    ws.on('close', (code) => {
      this.sockets.delete(ws);
      this.closes.push(code);
      if (this.current?.socket === ws) this.current = null;
    });
    if (!who) {
      ws.close(CloseCodes.UNAUTHORISED, 'device credential refused: pair again');
      return;
    }
    if (this.dropNextConnections > 0) {
      this.dropNextConnections -= 1;
      ws.close(1011, 'bot trouble');
      return;
    }
    if (this.keepFirstLink && this.current) {
      ws.close(CloseCodes.IN_USE, 'this device already has a live link');
      return;
    }
    this.current?.socket.close(CloseCodes.REPLACED, 'replaced');
    this.current = { socket: ws, connection };
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseFrame(data as Buffer, CompanionToBotSchema);
      if (!parsed.ok) {
        this.refused.push(parsed.error);
        ws.send(JSON.stringify({ type: 'protocol.error', ...(parsed.id ? { id: parsed.id } : {}), message: parsed.error } satisfies BotToCompanion));
        return;
      }
      const received: Received = { connection, at: Date.now(), frame: parsed.value };
      this.received.push(received);
      for (const w of this.frameWaiters.filter((x) => x.predicate(received))) {
        this.frameWaiters = this.frameWaiters.filter((x) => x !== w);
        w.resolve(received);
      }
      void this.onFrame(ws, parsed.value, who);
    });
  }

  private async onFrame(ws: WebSocket, frame: CompanionToBot, who: { deviceId: string; personName: string }): Promise<void> {
    switch (frame.type) {
      case 'hello':
        ws.send(JSON.stringify({ type: 'welcome', deviceId: who.deviceId, personName: who.personName, session: randomUUID() } satisfies BotToCompanion));
        return;
      case 'reply': {
        const waiter = this.replyWaiters.get(frame.id);
        this.replyWaiters.delete(frame.id);
        waiter?.(frame.reply);
        return;
      }
      case 'request': {
        if (!this.answerRequests) return;
        if (frame.request.kind === 'device.unpair') {
          // As the real bot: revoke the credential, answer ok, close the link 4401.
          for (const [credential, w] of this.credentials) if (w.deviceId === who.deviceId) this.credentials.delete(credential);
          ws.send(JSON.stringify({ type: 'response', id: frame.id, response: { kind: 'ok' } } satisfies BotToCompanion));
          ws.close(CloseCodes.UNAUTHORISED, 'device credential revoked: pair again');
          return;
        }
        const response = await this.onRequest(frame.request);
        if (response && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'response', id: frame.id, response } satisfies BotToCompanion));
        const then = response && this.afterResponse ? (this.afterResponse(frame.request, response) ?? []) : [];
        for (const command of then) {
          void this.command(command).then(
            (reply) => this.followUpReplies.push({ command: command.kind, reply }),
            () => this.followUpReplies.push({ command: command.kind, reply: 'no_reply' }),
          );
        }
        return;
      }
      case 'card.event':
        return;
    }
  }

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'body is not JSON' }));
      return;
    }
    const json = (status: number, value: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    };
    if (req.method === 'POST' && req.url === '/companion/pair/start') {
      const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
      const pick = (): string => Array.from(randomBytes(4), (b) => alphabet[b % alphabet.length]).join('');
      const pair: PendingPair = {
        deviceCode: randomBytes(32).toString('base64url'),
        userCode: `${pick()}-${pick()}`,
        workstation: String(body['workstation'] ?? ''),
        approvedFor: null,
        denied: false,
        collected: false,
      };
      this.pairs.push(pair);
      json(200, { deviceCode: pair.deviceCode, userCode: pair.userCode, expiresIn: this.options.pairExpiresIn ?? 600, interval: this.options.pairInterval ?? 1 });
      return;
    }
    if (req.method === 'POST' && req.url === '/companion/pair/poll') {
      const pair = this.pairs.find((p) => p.deviceCode === body['deviceCode']);
      let answer: PairPollResponse;
      if (!pair || pair.collected) answer = { status: 'expired_token' };
      else if (pair.denied) answer = { status: 'access_denied' };
      else if (pair.approvedFor) {
        pair.collected = true;
        const who = this.credentials.get(pair.approvedFor)!;
        answer = { status: 'approved', deviceId: who.deviceId, credential: pair.approvedFor, personName: who.personName };
      } else answer = { status: 'authorization_pending' };
      json(answer.status === 'approved' ? 200 : 400, answer);
      return;
    }
    res.writeHead(404).end();
  }

  /** Pairing facts for assertions (workstation names sent). */
  get workstations(): string[] {
    return this.pairs.map((p) => p.workstation);
  }
}
