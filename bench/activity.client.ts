/**
 * The benchmark's channel side: posts Bot Framework activities to a bot's
 * `POST /api/messages` over keep-alive HTTP on loopback, as the Agents
 * Playground does with authentication off (no `Authorization` header).
 */
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';

/** A conversation the client speaks in: one person, one personal chat. */
export interface BenchConversation {
  conversationId: string;
  /** Teams user id of the person (also sent as `aadObjectId`). */
  userId: string;
  userName: string;
}

/** HTTP result of posting an activity. `body` is parsed JSON, or null when empty. */
export interface PostResult {
  status: number;
  body: unknown;
}

const BOT_ACCOUNT = { id: '28:bench-bot', name: 'Smartcard Assist' } as const;

export class ActivityClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });

  /**
   * @param serviceUrl - the connector the bot must answer through (see ConnectorFake)
   */
  constructor(private readonly serviceUrl: string) {}

  /** A Teams personal-chat activity skeleton from the person to the bot. */
  private base(conv: BenchConversation): Record<string, unknown> {
    return {
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      channelId: 'msteams',
      serviceUrl: this.serviceUrl,
      from: { id: conv.userId, name: conv.userName, aadObjectId: conv.userId },
      recipient: BOT_ACCOUNT,
      conversation: { id: conv.conversationId, conversationType: 'personal', tenantId: 'bench-tenant' },
      channelData: { tenant: { id: 'bench-tenant' } },
      locale: 'en-GB',
    };
  }

  /** An `Action.Execute` click: invoke `adaptiveCard/action` with `{ action: { type, verb, data } }`. */
  cardAction(botUrl: string, conv: BenchConversation, verb: string, data: Record<string, unknown>): Promise<PostResult> {
    return this.post(botUrl, { ...this.base(conv), type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb, data } } });
  }

  /** A typed message. */
  message(botUrl: string, conv: BenchConversation, text: string): Promise<PostResult> {
    return this.post(botUrl, { ...this.base(conv), type: 'message', text, textFormat: 'plain' });
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.agent.destroy();
  }

  private post(botUrl: string, activity: Record<string, unknown>): Promise<PostResult> {
    const body = JSON.stringify(activity);
    const url = new URL('/api/messages', botUrl);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = null;
            if (text) {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}
