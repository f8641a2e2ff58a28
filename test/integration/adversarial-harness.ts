/**
 * Shared pieces of the adversarial tests (`adversarial-*.test.ts`): the real bot
 * process (embedded store, outbox mail) on its own loopback port and data
 * directory, a recording stand-in for the Bot Framework connector (what the
 * bot sends to Teams), a Teams client that posts raw activities, and a raw
 * companion that speaks the link protocol frame by frame (so a test can send
 * what a real companion never would).
 *
 * Nothing here uses pcscd or the vpcd readers.
 */
import Database from 'better-sqlite3';
import { randomBytes, randomUUID } from 'node:crypto';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { PROTOCOL_VERSION } from '../../protocol/companion-link.protocol';
import { listFiles } from '../support/e2e-secrets';
import { runAdmin, type BotStack } from '../support/e2e-stack';
import { LoopbackHttpServer } from '../support/loopback-http';

/**
 * Read the bot's embedded store with read-only SQL: what was stored, as the tests check it.
 *
 * @param dataDir - the bot's data directory (it holds `smartcard-assist.sqlite`)
 * @param query - one SELECT; `?` placeholders take `params` in order
 * @returns the rows; the database is opened read-only and closed before returning
 */
export function readStore<T>(dataDir: string, query: string, ...params: unknown[]): T[] {
  const db = new Database(path.join(dataDir, 'smartcard-assist.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(query).all(...params) as T[];
  } finally {
    db.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One request the bot made to the connector. */
export interface ConnectorCall {
  method: string;
  path: string;
  conversationId: string;
  activityId: string | null;
  body: Record<string, unknown>;
}

/** A connector stand-in that records every activity the bot sends or updates (200 with a new id). */
export class RecordingConnector extends LoopbackHttpServer {
  private next = 1;
  readonly calls: ConnectorCall[] = [];

  /** Every text and card text the bot sent in a conversation, in order. */
  textsIn(conversationId: string): string[] {
    return this.calls.filter((c) => c.conversationId === conversationId).map((c) => activityText(c.body));
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const m = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?\/?$/.exec((req.url ?? '/').split('?')[0] ?? '/');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        // keep {}
      }
      if (m) this.calls.push({ method: req.method ?? '', path: req.url ?? '', conversationId: decodeURIComponent(m[1]!), activityId: m[2] ? decodeURIComponent(m[2]) : null, body });
      const text = JSON.stringify({ id: req.method === 'PUT' && m?.[2] ? m[2] : `act-${this.next++}` });
      res.writeHead(m ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  }
}

/** Text of an activity: its `text` and the text of every card it carries. */
export function activityText(activity: unknown): string {
  const a = activity as { text?: unknown; attachments?: Array<{ content?: unknown }> };
  const parts: string[] = [];
  if (typeof a.text === 'string') parts.push(a.text);
  for (const att of a.attachments ?? []) parts.push(cardText(att.content));
  return parts.join('\n');
}

/** Every `text` found in a card (depth first). */
export function cardText(card: unknown): string {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) {
        if ((k === 'text' || k === 'title' || k === 'label' || k === 'placeholder') && typeof v === 'string') out.push(v);
        else walk(v);
      }
    }
  };
  walk(card);
  return out.join('\n');
}

/** `Action.Execute` buttons of a card, with their verb and data. */
export function executeActions(card: unknown): Array<{ verb: string; data: Record<string, unknown>; title: string }> {
  const out: Array<{ verb: string; data: Record<string, unknown>; title: string }> = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      const o = n as Record<string, unknown>;
      if (o['type'] === 'Action.Execute' && typeof o['verb'] === 'string') out.push({ verb: o['verb'], data: (o['data'] as Record<string, unknown>) ?? {}, title: String(o['title'] ?? '') });
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(card);
  return out;
}

/** Result of an HTTP request. */
export interface HttpResult {
  status: number;
  text: string;
  json: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw HTTP request on loopback (any body, any headers). */
export function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POST JSON (already serialised or not) to a bot path. */
export function postJson(bot: { url: string }, path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return httpRequest(new URL(path, bot.url).href, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text });
}

/** One person in a personal chat with the bot. */
export interface TeamsUser {
  id: string;
  name: string;
  conversationId: string;
}

export function teamsUser(name: string): TeamsUser {
  const id = randomUUID();
  return { id, name, conversationId: `a:conv-${id}` };
}

/** Posts raw Teams activities to the bot as one person (authentication off, as the Playground does). */
export class TeamsClient {
  constructor(
    private readonly bot: { url: string },
    private readonly serviceUrl: string,
  ) {}

  base(user: TeamsUser): Record<string, unknown> {
    return {
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      channelId: 'msteams',
      serviceUrl: this.serviceUrl,
      from: { id: user.id, name: user.name, aadObjectId: user.id },
      recipient: { id: '28:adv-bot', name: 'Smartcard Assist' },
      conversation: { id: user.conversationId, conversationType: 'personal', tenantId: 'adv-tenant' },
      channelData: { tenant: { id: 'adv-tenant' } },
      locale: 'en-GB',
    };
  }

  message(user: TeamsUser, text: string): Promise<HttpResult> {
    return postJson(this.bot, '/api/messages', { ...this.base(user), type: 'message', text, textFormat: 'plain' });
  }

  invoke(user: TeamsUser, verb: string, data: Record<string, unknown>, replyToId?: string): Promise<HttpResult> {
    return postJson(this.bot, '/api/messages', {
      ...this.base(user),
      type: 'invoke',
      name: 'adaptiveCard/action',
      ...(replyToId ? { replyToId } : {}),
      value: { action: { type: 'Action.Execute', verb, data } },
    });
  }

  /** Any activity (fields merged over the person's skeleton; `undefined` removes a field). */
  raw(user: TeamsUser, fields: Record<string, unknown>): Promise<HttpResult> {
    const a: Record<string, unknown> = { ...this.base(user), ...fields };
    for (const [k, v] of Object.entries(a)) if (v === undefined) delete a[k];
    return postJson(this.bot, '/api/messages', a);
  }
}

/** The card an invoke answered with (`value` of an adaptive card invoke response), or null. */
export function invokeCard(r: HttpResult): unknown {
  const b = r.json as { statusCode?: number; type?: string; value?: unknown } | null;
  return b && b.type === 'application/vnd.microsoft.card.adaptive' ? b.value : null;
}

/** A security-question answer set for a seeded person. */
export interface SeededPerson {
  personId: string;
  user: TeamsUser;
  email: string;
  cardId: string;
  puk: string;
  answers: Record<string, string>;
}

/** Questions used for seeded people, with their answers' stems. */
const QUESTIONS = ['q01', 'q02', 'q03', 'q04'] as const;

/** A random 8-digit value (first digit 2-9) that is unlikely to occur by chance in a log or file. */
export function randomDigits8(): string {
  for (;;) {
    const n = `${2 + (randomBytes(1)[0]! % 8)}${(randomBytes(4).readUInt32BE(0) % 10_000_000).toString().padStart(7, '0')}`;
    if (!/^(\d)\1+$/.test(n)) return n;
  }
}

/**
 * Register a person with the admin command (`add-person --file -`, secrets on standard input).
 *
 * @returns the person, their Teams user, card id, PUK and answers (question id -> answer)
 */
export async function seedPerson(bot: BotStack, name: string, cardId = randomBytes(16).toString('hex')): Promise<SeededPerson> {
  const user = teamsUser(name);
  const salt = randomBytes(4).toString('hex');
  const answers: Record<string, string> = {};
  QUESTIONS.forEach((q, i) => (answers[q] = `Answer${i} Zq${salt}${i}`));
  const puk = randomDigits8();
  const email = `${name.toLowerCase().replace(/[^a-z]/g, '')}.${salt}@nhs.net`;
  const file = { teamsUserId: user.id, displayName: name, email, cardId, puk, answers: QUESTIONS.map((q) => ({ questionId: q, answer: answers[q]! })) };
  const r = await runAdmin(bot, ['add-person', '--file', '-'], JSON.stringify(file));
  const m = /^added: person (\S+)$/m.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`admin add-person failed (exit ${String(r.code)}): ${r.stdout}${r.stderr}`);
  return { personId: m[1]!, user, email, cardId, puk, answers };
}

/**
 * Pair a raw device for a person over the real pairing HTTP contract and a `pair CODE` message.
 *
 * @returns the device id and bearer credential
 */
export async function pairDevice(bot: { url: string }, teams: TeamsClient, user: TeamsUser, workstation = 'WS-ADV'): Promise<{ deviceId: string; credential: string; userCode: string; deviceCode: string }> {
  const start = await postJson(bot, '/companion/pair/start', { workstation });
  if (start.status !== 200) throw new Error(`pair/start: ${start.status} ${start.text}`);
  const { deviceCode, userCode } = start.json as { deviceCode: string; userCode: string };
  const msg = await teams.message(user, `pair ${userCode}`);
  if (msg.status >= 300) throw new Error(`pair message: ${msg.status} ${msg.text}`);
  for (let i = 0; i < 20; i++) {
    const poll = await postJson(bot, '/companion/pair/poll', { deviceCode });
    const b = poll.json as { status: string; deviceId?: string; credential?: string };
    if (b.status === 'approved') return { deviceId: b.deviceId!, credential: b.credential!, userCode, deviceCode };
    await sleep(700);
  }
  throw new Error('pairing never approved');
}

/** A frame the raw companion received. */
export type Frame = Record<string, unknown> & { type: string };

/**
 * A companion that speaks the link protocol one frame at a time. It answers
 * `card.read_status` with {@link cardStatus} and every other command with
 * `ack`, unless {@link autoReply} is false.
 */
export class RawCompanion {
  readonly frames: Frame[] = [];
  closeCode: number | null = null;
  closeReason = '';
  cardStatus: unknown = { present: false, reader: null };
  autoReply = true;
  /** Milliseconds before each automatic reply (a slow card or link); 0 = at once. */
  replyDelayMs = 0;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      let frame: Frame;
      try {
        frame = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : (data as Buffer).toString('utf8')) as Frame;
      } catch {
        frame = { type: '(unparsable)', raw: String(data) };
      }
      this.frames.push(frame);
      if (this.autoReply && frame.type === 'command') {
        const cmd = frame['command'] as { kind: string };
        const reply = cmd.kind === 'card.read_status' ? { kind: 'card.status', status: this.cardStatus } : { kind: 'ack' };
        const send = (): void => this.sendJson({ type: 'reply', id: frame['id'], reply });
        if (this.replyDelayMs > 0) setTimeout(send, this.replyDelayMs);
        else send();
      }
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString('utf8');
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Open a link connection.
   *
   * @param authorization - the whole `Authorization` header, or null for none
   */
  static async connect(bot: { url: string }, authorization: string | null, options: { hello?: boolean } = {}): Promise<RawCompanion> {
    const url = new URL('/companion/link', bot.url);
    url.protocol = 'ws:';
    const ws = new WebSocket(url, { headers: authorization ? { authorization } : {}, maxPayload: 1 << 20 });
    const c = new RawCompanion(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    if (options.hello !== false) {
      c.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'adv-1', workstation: 'WS-ADV' });
      await c.waitFor((f) => f.type === 'welcome', 5000);
    }
    return c;
  }

  sendJson(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Wait for a frame (already received ones count) or for the socket to close. */
  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closeCode !== null) throw new Error(`link closed (${this.closeCode} ${this.closeReason}) before the frame came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got: ${this.frames.map((x) => x.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Wait for the socket to close. */
  async waitClosed(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === null) {
      if (Date.now() > deadline) throw new Error('the link did not close');
      await sleep(20);
    }
    return this.closeCode;
  }

  /** Send a request and wait for its response. */
  async request(req: unknown, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const id = randomUUID();
    this.sendJson({ type: 'request', id, request: req });
    const f = await this.waitFor((x) => (x.type === 'response' || x.type === 'protocol.error') && x['id'] === id, timeoutMs);
    return f.type === 'response' ? (f['response'] as Record<string, unknown>) : { kind: 'protocol.error', message: f['message'] };
  }

  /**
   * Wait for the PUK pair the bot's custody sends after an accepted code or resume
   * (the `unlock.authorised` command), the `nth` one (1-based) for that journey.
   */
  async release(journeyId: string, nth = 1, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const mine = (): Array<Record<string, unknown>> => this.commands('unlock.authorised').filter((c) => c['journeyId'] === journeyId);
    await this.waitFor(() => mine().length >= nth, timeoutMs);
    return mine()[nth - 1]!;
  }

  commands(kind?: string): Array<Record<string, unknown>> {
    return this.frames.filter((f) => f.type === 'command').map((f) => f['command'] as Record<string, unknown>).filter((c) => !kind || c['kind'] === kind);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }
}

/**
 * The unlock run's state from a stored journey `state` column: `{ v: 2, run }` since
 * issue #9 (the run beside the lock), a bare run before.
 */
export function unlockRun(stateJson: string | undefined): Record<string, unknown> {
  const s = JSON.parse(stateJson ?? '{}') as Record<string, unknown>;
  return s['v'] === 2 && typeof s['run'] === 'object' && s['run'] !== null ? (s['run'] as Record<string, unknown>) : s;
}

/** The unlock code in an unlock-code email (8 digits on a line of their own, or the first 8-digit number). */
export function unlockCodeOf(mail: OutboxEntry): string {
  const m = /\b(\d{8})\b/.exec(mail.text);
  if (!m) throw new Error(`no 8-digit code in ${mail.name}`);
  return m[1]!;
}

/** Wait until `read()` holds an item matching `pred`. */
export async function eventually<T>(read: () => Promise<T[]>, pred: (x: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await read()).find(pred);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(100);
  }
}

/**
 * Search every file under the given directories and the given texts for each secret (UTF-8).
 *
 * @returns one line per finding: `<label> in <where>`; never the value
 */
export async function scanForSecrets(dirs: string[], texts: Array<{ where: string; text: string }>, secrets: Array<{ label: string; value: string }>, allow: (where: string, label: string) => boolean = () => false): Promise<string[]> {
  const { readFile } = await import('node:fs/promises');
  const sources: Array<{ where: string; bytes: Buffer }> = texts.map((t) => ({ where: t.where, bytes: Buffer.from(t.text, 'utf8') }));
  for (const d of dirs) {
    for (const f of await listFiles(d).catch(() => [] as string[])) sources.push({ where: f, bytes: await readFile(f).catch(() => Buffer.alloc(0)) });
  }
  const found: string[] = [];
  for (const s of secrets) {
    if (s.value.length < 6) continue;
    const needles = [Buffer.from(s.value, 'utf8'), Buffer.from(s.value.toLowerCase(), 'utf8'), Buffer.from(s.value, 'utf16le')];
    for (const src of sources) {
      if (allow(src.where, s.label)) continue;
      if (needles.some((n) => src.bytes.includes(n))) found.push(`${s.label} in ${src.where}`);
    }
  }
  return found;
}

/**
 * The right (or deliberately wrong) answers for the questions card a person was shown.
 *
 * @param card - the unlock questions card (inputs `a1`..`a3` labelled with the question text)
 * @param person - the seeded person
 * @param wrong - answer wrongly (one wrong answer is a failed attempt)
 * @returns `{ a1, a2, a3 }`
 */
export async function answersFor(card: unknown, person: SeededPerson, wrong = false): Promise<Record<'a1' | 'a2' | 'a3', string>> {
  const { QUESTION_BANK } = await import('../../bot/journeys/registration/question-bank');
  const inputs: Record<string, string> = {};
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      const o = n as Record<string, unknown>;
      if (o['type'] === 'Input.Text' && typeof o['id'] === 'string' && /^a[123]$/.test(o['id'])) inputs[o['id']] = String(o['label'] ?? '');
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(card);
  const out = {} as Record<'a1' | 'a2' | 'a3', string>;
  for (const k of ['a1', 'a2', 'a3'] as const) {
    const label = inputs[k];
    const q = QUESTION_BANK.find((x) => label !== undefined && label.includes(x.text));
    if (!q) throw new Error(`questions card has no known question for ${k}: ${cardText(card)}`);
    out[k] = wrong ? `wrong ${randomBytes(3).toString('hex')}` : person.answers[q.id]!;
  }
  return out;
}
