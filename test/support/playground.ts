/**
 * The Microsoft 365 Agents Playground (npm `@microsoft/m365agentsplayground`,
 * pinned 0.2.28) as a Teams stand-in for tests: start it on a chosen port
 * against a bot endpoint with a generated users/chats config, and drive a
 * conversation through its own HTTP + WebSocket interface (what its web UI
 * calls), without a browser. Facts and pitfalls: `.notes/playground.md`.
 *
 * NOTE: that interface is internal to the Playground and undocumented; it is
 * pinned by the exact package version in package.json.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { artifactDir, artifactPath, REPO_ROOT, safeFileName } from './artifacts';
import { freePort, startProcess, type ManagedProcess } from './processes';
import { playgroundCli } from './services';

/** One user in the Playground's tenant (its config file's `User` shape). */
export interface PlaygroundUser {
  /** Channel account id: what the bot sees as `activity.from.id`. */
  id: string;
  name: string;
  email: string;
  /** The Playground's own spelling (sic). */
  userPrincipleName: string;
  /** Sent to the bot as `activity.from.aadObjectId`. */
  aadObjectId: string;
  givenName: string;
  surname: string;
}

/** A user given by a test: id and name are enough, the rest is derived. */
export type PlaygroundUserInput = Pick<PlaygroundUser, 'id' | 'name'> & Partial<PlaygroundUser>;

/** The Playground's built-in tenant id (also what `tenantId` defaults to here). */
export const PLAYGROUND_DEFAULT_TENANT_ID = '00000000-0000-0000-0000-0000000000001';
/** The Playground's built-in bot account id (`activity.recipient.id`). */
export const PLAYGROUND_DEFAULT_BOT_ID = '00000000-0000-0000-0000-00000000000011';

/** The Playground's built-in users: index 0 is its default current user, 1-5 the other members. */
export const PLAYGROUND_DEFAULT_USERS: readonly PlaygroundUser[] = [
  ['user-id-0', 'Alex Wilber', 'alexw', '20'],
  ['user-id-1', 'Megan Bowen', 'meganb', '21'],
  ['user-id-2', 'Adele Vance', 'adelev', '22'],
  ['user-id-3', 'Isaiah Langer', 'isaiahl', '23'],
  ['user-id-4', 'Patti Fernandez', 'pattif', '24'],
  ['user-id-5', 'Lynne Robbins', 'lynner', '25'],
].map(([id, name, mail, n]) => {
  const [givenName = '', surname = ''] = (name as string).split(' ');
  return {
    id: id as string,
    name: name as string,
    email: `${mail}@example.com`,
    userPrincipleName: `${mail}@example.com`,
    aadObjectId: `00000000-0000-0000-0000-00000000000${n}`,
    givenName,
    surname,
  };
});

/** Options of {@link startPlayground}. */
export interface StartPlaygroundOptions {
  /** Bot endpoint, loopback, e.g. `http://127.0.0.1:3978/api/messages`. */
  botUrl: string;
  /** Port for the Playground (on 127.0.0.1: scripts/loopback-only.cjs); default: a free port. */
  port?: number;
  /** Who types in this Playground; default Alex Wilber `user-id-0`. */
  currentUser?: PlaygroundUserInput;
  /** The other members of the group chat and team: up to 5 (padded from the defaults, skipping the current user's id). */
  users?: PlaygroundUserInput[];
  tenantId?: string;
  botId?: string;
  /** Bot display name (max 42 characters); also the @mention text in group chats and channels. */
  botName?: string;
  /** Personal chat conversation id; default `personal-<current user id>` (unique per user, as in Teams). */
  personalChatId?: string;
  groupChatId?: string;
  /** Team id = General channel conversation id; default `team-id`. */
  teamId?: string;
  /** The one extra channel; default `{ id: 'channel-announcements-id', name: 'Announcements' }`. */
  channel?: { id: string; name: string };
  /** Log name (`artifacts/logs/<name>.log`); default `playground-<port>`. */
  name?: string;
  /** Milliseconds to wait for start-up; default 30 000. */
  timeoutMs?: number;
}

/** An attachment as the Playground relays it. */
export interface PlaygroundAttachment {
  contentType: string;
  content: unknown;
}

/** A bot message seen on the Playground's conversation stream (a new one or an update of one). */
export interface BotMessage {
  /** Position in the stream (0-based), for `since` cursors. */
  seq: number;
  kind: 'create' | 'update';
  /** Conversation shown in the UI (for a channel thread reply: the channel). */
  conversationId: string;
  /** The Playground's message id: the bot's `ResourceResponse.id`, the `replyToId` of a card action. */
  messageId: string;
  /** Milliseconds since the epoch. */
  timestamp: number;
  text?: string;
  attachments: PlaygroundAttachment[];
  /** The stream frame as received. */
  raw: unknown;
}

/** Result of posting a card action. */
export type InvokeResult =
  | {
      ok: true;
      /** HTTP status from the Playground (200). */
      status: number;
      /** Invoke response `type`, e.g. `application/vnd.microsoft.card.adaptive` or `application/vnd.microsoft.activity.message`. */
      type: string | undefined;
      /** Invoke response `value` (a card JSON, a message string...). */
      value: unknown;
      /** The card that replaced the clicked one, when `type` is an Adaptive Card. */
      card: AdaptiveCardJson | undefined;
      /** The message the action was posted against. */
      replyToId: string;
    }
  | { ok: false; status: number; body: unknown; replyToId: string };

/** Minimal Adaptive Card JSON shape (the parts tests read). */
export interface AdaptiveCardJson {
  type: 'AdaptiveCard';
  version?: string;
  body?: unknown[];
  actions?: unknown[];
  [key: string]: unknown;
}

/** An `Action.Execute` found on a card. */
export interface ExecuteAction {
  type: 'Action.Execute';
  verb: string;
  title?: string;
  data?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The configuration the Playground reports at `GET /_internal/v1/config`. */
export interface PlaygroundRuntimeConfig {
  tenantId: string;
  bot: { id: string; name: string };
  currentUser: PlaygroundUser;
  users: PlaygroundUser[];
  personalChat: { id: string; name: string };
  groupChats: Array<{ id: string; name: string; members: string[] }>;
  teams: Array<{ id: string; name: string; aadGroupId: string; channels: Array<{ id: string; name: string }>; members: string[] }>;
}

/** Options shared by the conversation helpers. */
export interface ConversationOptions {
  /** Conversation id; default the personal chat. */
  conversationId?: string;
}

/** Options of {@link PlaygroundHandle.waitForBotMessage}. */
export interface WaitOptions {
  /** Milliseconds; default 15 000. */
  timeoutMs?: number;
  /** Look at stream entries with `seq >= since`; default: the cursor set by this handle's last send/invoke/install. */
  since?: number;
  /** Only this conversation; default any. */
  conversationId?: string;
}

/** A running Playground and its conversation helpers. */
export interface PlaygroundHandle {
  /** Base URL for a browser, e.g. `http://127.0.0.1:56150`. */
  readonly url: string;
  readonly port: number;
  readonly process: ManagedProcess;
  /** Path of the generated config file. */
  readonly configFile: string;
  /** What the Playground reports it runs with. */
  readonly config: PlaygroundRuntimeConfig;
  readonly currentUser: PlaygroundUser;
  readonly personalChatId: string;
  readonly groupChatId: string;
  readonly teamId: string;
  readonly botId: string;
  /** Every bot message/update seen on the stream so far, in order. */
  messages(): BotMessage[];
  /** Stream position now: pass as `since` to wait only for later messages. */
  mark(): number;
  /**
   * Install the bot in a conversation, as opening it in the UI does: the bot gets
   * `installationUpdate` (action add) then `conversationUpdate` with `membersAdded`
   * [current user, bot].
   */
  install(options?: ConversationOptions): Promise<void>;
  /**
   * Type a message as the current user (the Playground always sends typed text as its current user).
   * In a group chat or channel the text gets an @mention of the bot unless `mention: false`
   * (the bot only receives mentioned posts there).
   *
   * @returns the Playground's id of the user's message
   * @throws Error on a non-200 answer (body in the message)
   */
  sendMessage(text: string, options?: ConversationOptions & { mention?: boolean }): Promise<{ messageId: string }>;
  /**
   * Click an `Action.Execute` as a given user, as the UI does: `value.action` = `{ type, title, verb, data }`
   * with the card action's `data` merged with `inputs` (inputs win). The target card is the newest bot
   * message (current version) offering `verb`, unless `replyToId` is given.
   *
   * @returns the invoke response (a replacing card is recorded as that message's current version)
   * @throws Error when no card offers the verb and no `replyToId` is given
   */
  invokeAction(args: {
    verb: string;
    /** Values of the card's inputs by input id (what a person types). */
    inputs?: Record<string, unknown>;
    /** Replaces the action's own `data` when given (e.g. to forge or replay a stale click). */
    data?: Record<string, unknown>;
    /** Clicking user's id; default the current user. Other users work in group chats and teams. */
    fromId?: string;
    conversationId?: string;
    replyToId?: string;
  }): Promise<InvokeResult>;
  /** `Action.Submit` (arrives as a message with `value`, no text). */
  submit(args: { value: Record<string, unknown>; replyToId: string; fromId?: string; conversationId?: string }): Promise<void>;
  /**
   * Wait for a bot message (new or updated) matching `predicate`.
   *
   * @returns the first match at or after `since`
   * @throws Error on timeout, listing what the bot did send
   */
  waitForBotMessage(predicate: (m: BotMessage) => boolean, options?: WaitOptions): Promise<BotMessage>;
  /** Shorthand: wait for a bot message whose text or card text contains `text` (or matches the RegExp). */
  waitForBotText(text: string | RegExp, options?: WaitOptions): Promise<BotMessage>;
  /** Current version of a message (after updates and invoke-response replacements). */
  current(messageId: string): BotMessage | undefined;
  stop(): Promise<void>;
}

const CARD_TYPE = 'application/vnd.microsoft.card.adaptive';

/**
 * All Adaptive Cards in a message.
 *
 * @param m - a bot message
 * @returns card JSON objects, in attachment order
 */
export function cardsOf(m: Pick<BotMessage, 'attachments'>): AdaptiveCardJson[] {
  return m.attachments.filter((a) => a.contentType === CARD_TYPE && typeof a.content === 'object' && a.content !== null).map((a) => a.content as AdaptiveCardJson);
}

function walk(node: unknown, visit: (o: Record<string, unknown>) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, visit);
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    visit(o);
    for (const v of Object.values(o)) walk(v, visit);
  }
}

/**
 * Visible text of a card: TextBlock texts, TextRun texts, facts, input labels and placeholders, action titles.
 *
 * @param card - Adaptive Card JSON
 * @returns the strings joined by newlines
 */
export function cardText(card: unknown): string {
  const out: string[] = [];
  walk(card, (o) => {
    const t = o['type'];
    if ((t === 'TextBlock' || t === 'TextRun') && typeof o['text'] === 'string') out.push(o['text']);
    if (typeof o['title'] === 'string' && typeof t === 'string' && t.startsWith('Action.')) out.push(o['title']);
    if (typeof t === 'string' && t.startsWith('Input.')) {
      if (typeof o['label'] === 'string') out.push(o['label']);
      if (typeof o['placeholder'] === 'string') out.push(o['placeholder']);
    }
    if (t === undefined && typeof o['title'] === 'string' && typeof o['value'] === 'string') out.push(`${o['title']} ${o['value']}`);
  });
  return out.join('\n');
}

/**
 * Text of a message: its `text` plus the text of every card in it.
 *
 * @param m - a bot message
 * @returns joined text
 */
export function messageText(m: Pick<BotMessage, 'text' | 'attachments'>): string {
  return [m.text ?? '', ...cardsOf(m).map(cardText)].filter(Boolean).join('\n');
}

/**
 * `Action.Execute` actions of a card (in `actions`, in `ActionSet`s and inside `Action.ShowCard` cards).
 *
 * @param card - Adaptive Card JSON
 * @returns the actions found, in document order
 */
export function executeActions(card: unknown): ExecuteAction[] {
  const out: ExecuteAction[] = [];
  walk(card, (o) => {
    if (o['type'] === 'Action.Execute' && typeof o['verb'] === 'string') out.push(o as ExecuteAction);
  });
  return out;
}

function toUser(u: PlaygroundUserInput): PlaygroundUser {
  const local = safeFileName(u.id).toLowerCase();
  const [givenName = u.name, ...rest] = u.name.split(' ');
  return {
    id: u.id,
    name: u.name,
    email: u.email ?? `${local}@example.com`,
    userPrincipleName: u.userPrincipleName ?? u.email ?? `${local}@example.com`,
    aadObjectId: u.aadObjectId ?? `00000000-0000-4000-8000-${Buffer.from(u.id).toString('hex').padStart(12, '0').slice(-12)}`,
    givenName: u.givenName ?? givenName,
    surname: u.surname ?? (rest.join(' ') || givenName),
  };
}

/**
 * Build the Playground config file content (JSON is valid YAML, which the Playground parses).
 *
 * @param o - start options
 * @returns the config object (schema version 0.1.1: exactly 5 other users, unique ids)
 * @throws Error when more than 5 users are given or ids repeat
 */
export function buildPlaygroundConfig(o: Omit<StartPlaygroundOptions, 'botUrl'>): Record<string, unknown> {
  const current = toUser(o.currentUser ?? (PLAYGROUND_DEFAULT_USERS[0] as PlaygroundUser));
  const given = (o.users ?? []).map(toUser);
  if (given.length > 5) throw new Error('the Playground takes exactly 5 users besides the current user');
  const taken = new Set([current.id, ...given.map((u) => u.id)]);
  if (taken.size !== given.length + 1) throw new Error('Playground user ids must be unique (current user included)');
  const users = [...given];
  for (const d of PLAYGROUND_DEFAULT_USERS) {
    if (users.length >= 5) break;
    if (!taken.has(d.id)) {
      users.push(d);
      taken.add(d.id);
    }
  }
  return {
    version: '0.1.1',
    tenantId: o.tenantId ?? PLAYGROUND_DEFAULT_TENANT_ID,
    bot: { id: o.botId ?? PLAYGROUND_DEFAULT_BOT_ID, name: o.botName ?? 'Smartcard Assist' },
    currentUser: current,
    users,
    personalChat: { id: o.personalChatId ?? `personal-${safeFileName(current.id)}` },
    groupChat: { id: o.groupChatId ?? 'group-chat-id', name: 'Group Chat' },
    team: {
      id: o.teamId ?? 'team-id',
      name: 'My Team',
      aadGroupId: '00000000-0000-0000-0000-000000000031',
      channels: [o.channel ?? { id: 'channel-announcements-id', name: 'Announcements' }],
    },
  };
}

async function postJson(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed };
}

/**
 * Start an Agents Playground against a bot, offline, with a generated config, and connect to its stream.
 *
 * Runs `node node_modules/@microsoft/m365agentsplayground/cli.js -e BOT -c msteams -p PORT --disable-telemetry`
 * with `TEAMSAPPTESTER_BROWSER=none`, `APPLICATION_INSIGHTS_NO_STATSBEAT=true`,
 * `M365_AGENTS_PLAYGROUND_CONFIG_PATH` (generated under `artifacts/playground/`) and
 * `M365_AGENTS_PLAYGROUND_LOGFILE` (`artifacts/playground/<name>.internal.log`).
 *
 * WARNING: that internal log records every activity in full, card input values included (what a
 * person types, as Teams' own servers would see it). It is kept out of `artifacts/logs/` so a
 * secret scan of product logs does not trip on it; its stdout log (`artifacts/logs/<name>.log`)
 * holds only the listening line.
 *
 * @param options - see {@link StartPlaygroundOptions}
 * @returns a handle; call `stop()` in `afterAll`
 * @throws Error when it does not come up, or comes up on another port (the CLI silently falls back to a random port when busy)
 */
export async function startPlayground(options: StartPlaygroundOptions): Promise<PlaygroundHandle> {
  const bot = new URL(options.botUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(bot.hostname)) throw new Error(`startPlayground: bot URL must be loopback, got ${bot.hostname}`);
  const port = options.port ?? (await freePort());
  const name = options.name ?? `playground-${port}`;
  const configObject = buildPlaygroundConfig(options);
  const configFile = artifactPath('playground', `${name}.yml`);
  writeFileSync(configFile, `${JSON.stringify(configObject, null, 2)}\n`);
  const timeoutMs = options.timeoutMs ?? 30_000;

  const proc = startProcess({
    name,
    command: process.execPath,
    // The CLI has no listening-address option; the preload keeps it on 127.0.0.1 (scripts/loopback-only.cjs).
    args: ['--require', path.join(REPO_ROOT, 'scripts', 'loopback-only.cjs'), playgroundCli(), '-e', options.botUrl, '-c', 'msteams', '-p', String(port), '--disable-telemetry'],
    cwd: artifactDir('playground'),
    env: {
      TEAMSAPPTESTER_BROWSER: 'none',
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
      M365_AGENTS_PLAYGROUND_CONFIG_PATH: configFile,
      M365_AGENTS_PLAYGROUND_LOGFILE: artifactPath('playground', `${name}.internal.log`),
      TEAMSAPPTESTER_PORT: undefined,
      M365_AGENTS_PLAYGROUND_SERVICE_URL: undefined,
    },
  });
  let ws: WebSocket | undefined;
  try {
    const m = await proc.waitForLine(/Listening on (\d+)/, timeoutMs);
    const actual = Number(m[1]);
    if (actual !== port) throw new Error(`Playground asked for port ${port} but listens on ${actual} (port busy?)`);
    const base = `http://127.0.0.1:${port}`;
    const cfgRes = await fetch(`${base}/_internal/v1/config`, { signal: AbortSignal.timeout(10_000) });
    if (!cfgRes.ok) throw new Error(`GET /_internal/v1/config answered ${cfgRes.status}`);
    const config = ((await cfgRes.json()) as { config: PlaygroundRuntimeConfig }).config;

    const events: BotMessage[] = [];
    const latest = new Map<string, BotMessage>();
    const listeners = new Set<() => void>();
    let cursor = 0;
    let streamError: string | undefined;
    const record = (m: BotMessage): void => {
      events.push(m);
      latest.set(m.messageId, m);
      for (const l of [...listeners]) l();
    };

    ws = new WebSocket(`ws://127.0.0.1:${port}/_ws_conversation/v1/conversations/stream`);
    ws.on('message', (data) => {
      let frame: { action?: string; actionConversationId?: string; message?: { messageId?: string; timestamp?: number; text?: string; attachments?: PlaygroundAttachment[] } };
      try {
        frame = JSON.parse(String(data)) as typeof frame;
      } catch {
        return;
      }
      if ((frame.action !== 'createMessage' && frame.action !== 'updateMessage') || !frame.message?.messageId) return;
      const msg: BotMessage = {
        seq: events.length,
        kind: frame.action === 'createMessage' ? 'create' : 'update',
        conversationId: frame.actionConversationId ?? '',
        messageId: frame.message.messageId,
        timestamp: frame.message.timestamp ?? Date.now(),
        attachments: frame.message.attachments ?? [],
        raw: frame,
      };
      if (frame.message.text !== undefined) msg.text = frame.message.text;
      record(msg);
    });
    ws.on('error', (err) => {
      streamError = err.message;
    });
    ws.on('close', () => {
      streamError ??= 'stream closed';
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('Playground conversation stream did not open')), 10_000);
      ws!.once('open', () => {
        clearTimeout(t);
        streamError = undefined;
        resolve();
      });
      ws!.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });

    const team = config.teams[0];
    const currentUser = config.currentUser;
    const personalChatId = config.personalChat.id;
    const botName = config.bot.name;
    const conv = (o?: ConversationOptions): string => o?.conversationId ?? personalChatId;
    const isChannel = (id: string): boolean => !!team?.channels.some((c) => c.id === id);
    const isGroup = (id: string): boolean => config.groupChats.some((g) => g.id === id) || isChannel(id);

    const findTarget = (verb: string, conversationId: string | undefined, replyToId: string | undefined): { replyToId: string; action: ExecuteAction | undefined; conversationId: string | undefined } => {
      if (replyToId) {
        const versions = events.filter((e) => e.messageId === replyToId).reverse();
        for (const v of versions) {
          const a = cardsOf(v).flatMap(executeActions).find((x) => x.verb === verb);
          if (a) return { replyToId, action: a, conversationId: v.conversationId };
        }
        return { replyToId, action: undefined, conversationId: versions[0]?.conversationId };
      }
      const newestFirst = [...latest.values()].sort((a, b) => b.seq - a.seq);
      for (const m of newestFirst) {
        if (conversationId && m.conversationId !== conversationId) continue;
        const a = cardsOf(m).flatMap(executeActions).find((x) => x.verb === verb);
        if (a) return { replyToId: m.messageId, action: a, conversationId: m.conversationId };
      }
      const offered = newestFirst.flatMap((m) => cardsOf(m).flatMap(executeActions).map((x) => x.verb));
      throw new Error(`no bot card offers Action.Execute verb "${verb}"${conversationId ? ` in ${conversationId}` : ''}; verbs on current cards: ${[...new Set(offered)].join(', ') || 'none'}`);
    };

    const handle: PlaygroundHandle = {
      url: base,
      port,
      process: proc,
      configFile,
      config,
      currentUser,
      personalChatId,
      groupChatId: config.groupChats[0]?.id ?? '',
      teamId: team?.id ?? '',
      botId: config.bot.id,
      messages: () => [...events],
      mark: () => events.length,
      async install(o) {
        cursor = events.length;
        const r = await postJson(`${base}/_debug/conversation/${encodeURIComponent(conv(o))}/installation`, {});
        if (r.status !== 200) throw new Error(`install in ${conv(o)}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      },
      async sendMessage(text, o) {
        const id = conv(o);
        cursor = events.length;
        const mention = (o?.mention ?? true) && isGroup(id);
        const atText = `<at>${botName}</at>`;
        const body = mention
          ? { type: 'text', text: `${atText} ${text}`, textFormat: 'plain', from: { id: currentUser.id }, mentions: [{ mentioned: { id: config.bot.id }, text: atText }] }
          : { type: 'text', text, textFormat: 'plain', from: { id: currentUser.id } };
        const r = await postJson(`${base}/_conversation/v1/conversations/${encodeURIComponent(id)}/messages`, body);
        if (r.status !== 200) throw new Error(`send message to ${id}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
        return { messageId: String((r.body as { messageId?: unknown }).messageId) };
      },
      async invokeAction(args) {
        const target = findTarget(args.verb, args.conversationId, args.replyToId);
        const conversationId = args.conversationId ?? target.conversationId ?? personalChatId;
        const action: Record<string, unknown> = { type: 'Action.Execute' };
        if (target.action?.title !== undefined) action['title'] = target.action.title;
        action['verb'] = args.verb;
        action['data'] = { ...(args.data ?? target.action?.data ?? {}), ...(args.inputs ?? {}) };
        cursor = events.length;
        // A card posted in a channel lives in its own post conversation (`<channel>;messageid=<post id>`),
        // which is what the UI sends for a click on it and what the Playground looks the card up in.
        const invokeConversationId = isChannel(conversationId) ? `${conversationId};messageid=${target.replyToId}` : conversationId;
        const r = await postJson(`${base}/_conversation/v1/invoke`, {
          name: 'adaptiveCard/action',
          value: { action },
          from: { id: args.fromId ?? currentUser.id },
          conversation: { id: invokeConversationId },
          replyToId: target.replyToId,
        });
        if (r.status !== 200) return { ok: false, status: r.status, body: r.body, replyToId: target.replyToId };
        const b = (r.body ?? {}) as { type?: string; value?: unknown };
        const card = b.type === CARD_TYPE && b.value && typeof b.value === 'object' ? (b.value as AdaptiveCardJson) : undefined;
        if (card) {
          // The UI swaps the clicked card for this one; mirror that so the next lookup sees it.
          const prev = latest.get(target.replyToId);
          const replaced: BotMessage = {
            seq: events.length,
            kind: 'update',
            conversationId: prev?.conversationId ?? conversationId,
            messageId: target.replyToId,
            timestamp: Date.now(),
            attachments: [{ contentType: CARD_TYPE, content: card }],
            raw: { action: 'invokeResponse', body: r.body },
          };
          record(replaced);
          cursor = replaced.seq;
        }
        return { ok: true, status: r.status, type: b.type, value: b.value, card, replyToId: target.replyToId };
      },
      async submit(args) {
        cursor = events.length;
        const r = await postJson(`${base}/_conversation/v1/submit`, {
          value: args.value,
          from: { id: args.fromId ?? currentUser.id },
          conversation: { id: args.conversationId ?? personalChatId },
          replyToId: args.replyToId,
        });
        if (r.status !== 200) throw new Error(`submit: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      },
      waitForBotMessage(predicate, o = {}) {
        const since = o.since ?? cursor;
        const timeoutMs = o.timeoutMs ?? 15_000;
        const scan = (): BotMessage | undefined => events.slice(since).find((e) => (!o.conversationId || e.conversationId === o.conversationId) && predicate(e));
        const found = scan();
        if (found) return Promise.resolve(found);
        return new Promise((resolve, reject) => {
          const check = (): void => {
            const m = scan();
            if (m) {
              clearTimeout(timer);
              listeners.delete(check);
              resolve(m);
            }
          };
          const timer = setTimeout(() => {
            listeners.delete(check);
            const seen = events
              .slice(since)
              .map((e) => `  #${e.seq} ${e.kind} ${e.messageId}: ${messageText(e).replace(/\s+/g, ' ').slice(0, 160)}`)
              .join('\n');
            reject(new Error(`no matching bot message within ${timeoutMs} ms${streamError ? ` (stream: ${streamError})` : ''}. Seen since #${since}:\n${seen || '  (nothing)'}`));
          }, timeoutMs);
          listeners.add(check);
        });
      },
      waitForBotText(text, o) {
        return handle.waitForBotMessage((m) => {
          const t = messageText(m);
          return typeof text === 'string' ? t.includes(text) : text.test(t);
        }, o);
      },
      current: (messageId) => latest.get(messageId),
      async stop() {
        ws?.close();
        await proc.stop();
      },
    };
    return handle;
  } catch (err) {
    ws?.close();
    await proc.stop();
    throw err;
  }
}
