/**
 * A tiny stand-in for the Bot Framework Connector service on loopback: the
 * part of its REST contract a bot uses to answer in a conversation, as the
 * Agents Playground serves it with authentication off.
 *
 * - `POST /v3/conversations/{conversationId}/activities` (send to conversation)
 * - `POST /v3/conversations/{conversationId}/activities/{activityId}` (reply to activity)
 * - `PUT  /v3/conversations/{conversationId}/activities/{activityId}` (update activity)
 *
 * Each answers 200 with `{ "id": "<new activity id>" }` (Bot Framework REST API:
 * Conversations, ResourceResponse). Anything else is 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const ACTIVITY_PATH = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?\/?$/;

/** What the connector received, all conversations together. */
export interface ConnectorCounts {
  /** Activities posted or updated, all conversations. */
  activities: number;
  /** Requests refused (unknown path, bad JSON). */
  refused: number;
  /** TCP connections the bot opened to the connector (1 per reply = no keep-alive). */
  connections: number;
}

export class ConnectorFake {
  private server: Server | null = null;
  private nextId = 1;
  private readonly lastText = new Map<string, string>();
  readonly counts: ConnectorCounts = { activities: 0, refused: 0, connections: 0 };

  /**
   * Listen on 127.0.0.1 (any free port).
   *
   * @returns the base URL to put in an activity's `serviceUrl`, e.g. `http://127.0.0.1:40123/`
   */
  async start(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 30_000;
    server.on('connection', () => {
      this.counts.connections += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  /** Text of the last message activity the bot sent in a conversation, if any. */
  lastTextIn(conversationId: string): string | undefined {
    return this.lastText.get(conversationId);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const match = ACTIVITY_PATH.exec((req.url ?? '/').split('?')[0] ?? '/');
    const method = req.method ?? 'GET';
    const allowed = match && (method === 'POST' || (method === 'PUT' && match[2] !== undefined));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!match || !allowed) {
        this.counts.refused += 1;
        reply(res, 404, { error: { code: 'NotFound', message: 'the connector stand-in serves only conversation activities' } });
        return;
      }
      let activity: { type?: unknown; text?: unknown };
      try {
        activity = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof activity;
      } catch {
        this.counts.refused += 1;
        reply(res, 400, { error: { code: 'BadArgument', message: 'the body is not JSON' } });
        return;
      }
      this.counts.activities += 1;
      const conversationId = decodeURIComponent(match[1] ?? '');
      if (activity.type === 'message' && typeof activity.text === 'string') this.lastText.set(conversationId, activity.text);
      reply(res, 200, { id: method === 'PUT' ? match[2] : `connector-${this.nextId++}` });
    });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
