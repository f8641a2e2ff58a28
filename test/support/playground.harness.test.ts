/**
 * The test harness against the real Agents Playground (pinned 0.2.28) and real
 * Chromium: the facts in `.notes/playground.md` that the end-to-end tests rely
 * on, checked with a small botbuilder bot that lives only in this file. A
 * Playground upgrade that changes its wire behaviour fails here first.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ActivityHandler, CardFactory, CloudAdapter, ConfigurationBotFrameworkAuthentication, TurnContext, type Activity, type ConversationReference } from 'botbuilder';
import restify from 'restify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPlayground, type PlaygroundPage } from './browser';
import { cardsOf, messageText, startPlayground, type PlaygroundHandle } from './playground';
import { freePort, startProcess, stopAll } from './processes';
import { chromiumService, playgroundService, requireServices } from './services';

/** True when the pid runs and is not a zombie (a container's pid 1 may not reap orphans). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const gate = await requireServices([chromiumService(), playgroundService()]);

/** A card with one required text input and one Action.Execute. */
function askCard(title: string): ReturnType<typeof CardFactory.adaptiveCard> {
  return CardFactory.adaptiveCard({
    type: 'AdaptiveCard',
    version: '1.5',
    body: [
      { type: 'TextBlock', text: title, wrap: true },
      { type: 'Input.Text', id: 'colour', label: 'Favourite colour', isRequired: true, errorMessage: 'Say a colour' },
    ],
    actions: [{ type: 'Action.Execute', title: 'Send colour', verb: 'harness.colour', data: { step: 7 } }],
  });
}

/** In-process bot: records every activity, answers a few commands. */
class HarnessBot extends ActivityHandler {
  readonly received: Array<Partial<Activity>> = [];
  constructor(private readonly adapter: CloudAdapter) {
    super();
    this.onMembersAdded(async (ctx, next) => {
      await ctx.sendActivity('harness welcome');
      await next();
    });
    this.onMessage(async (ctx, next) => {
      const text = (TurnContext.removeRecipientMention(ctx.activity) ?? ctx.activity.text ?? '').trim();
      if (text === 'ask') {
        await ctx.sendActivity({ attachments: [askCard('Question card')] });
      } else if (text === 'later') {
        const ref = TurnContext.getConversationReference(ctx.activity) as ConversationReference;
        const first = await ctx.sendActivity({ attachments: [askCard('Before update')] });
        setTimeout(() => {
          void this.adapter.continueConversationAsync('', ref, async (c) => {
            await c.updateActivity({ id: first?.id, type: 'message', attachments: [askCard('After update')] });
          });
        }, 300);
      } else {
        await ctx.sendActivity(`you said: ${text}`);
      }
      await next();
    });
  }
  protected override async onInvokeActivity(ctx: TurnContext): Promise<{ status: number; body?: unknown }> {
    if (ctx.activity.name === 'adaptiveCard/action') {
      const action = (ctx.activity.value as { action: { verb: string; data: Record<string, unknown> } }).action;
      return {
        status: 200,
        body: {
          statusCode: 200,
          type: 'application/vnd.microsoft.card.adaptive',
          value: { type: 'AdaptiveCard', version: '1.5', body: [{ type: 'TextBlock', text: `Got ${String(action.data['colour'])} from ${ctx.activity.from.id}` }] },
        },
      };
    }
    return super.onInvokeActivity(ctx);
  }
}

describe.skipIf(gate.skip)('Agents Playground harness (real Playground, real Chromium)', () => {
  let server: restify.Server;
  let bot: HarnessBot;
  let pg: PlaygroundHandle;
  let ui: PlaygroundPage | undefined;
  let botUrl: string;

  beforeAll(async () => {
    const adapter = new CloudAdapter(new ConfigurationBotFrameworkAuthentication({}));
    bot = new HarnessBot(adapter);
    server = restify.createServer();
    server.use(restify.plugins.bodyParser());
    server.post('/api/messages', async (req, res) => {
      bot.received.push(req.body as Partial<Activity>);
      await adapter.process(req, res, (ctx) => bot.run(ctx));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    botUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`;
    pg = await startPlayground({
      botUrl,
      name: 'harness-playground',
      currentUser: { id: 'harness-user-1', name: 'Hana Harness', aadObjectId: '11111111-2222-4333-8444-555555555555' },
      users: [{ id: 'harness-ra-1', name: 'Rafa Desk' }],
      botName: 'Harness Bot',
    });
  });

  afterAll(async () => {
    await ui?.close();
    await pg?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('listens on 127.0.0.1 only: the kernel lists its port bound to loopback, on no other address', () => {
    // /proc/net/tcp{,6}: local address as hex IP:port; state 0A = LISTEN. 0100007F is 127.0.0.1.
    const hexPort = pg.port.toString(16).toUpperCase().padStart(4, '0');
    const listening: string[] = [];
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const [, local, , state] = line.trim().split(/\s+/);
        if (state === '0A' && local?.endsWith(`:${hexPort}`)) listening.push(local.slice(0, -5));
      }
    }
    expect(listening).toEqual(['0100007F']);
  });

  it('installing sends installationUpdate then membersAdded [user, bot], with the configured ids', async () => {
    const before = bot.received.length;
    await pg.install();
    const welcome = await pg.waitForBotText('harness welcome');
    expect(welcome.conversationId).toBe(pg.personalChatId);
    const got = bot.received.slice(before);
    expect(got.map((a) => a.type)).toEqual(['installationUpdate', 'conversationUpdate']);
    const update = got[1]!;
    expect(update.membersAdded?.map((m) => m.id)).toEqual(['harness-user-1', pg.botId]);
    expect(update.from).toMatchObject({ id: 'harness-user-1', aadObjectId: '11111111-2222-4333-8444-555555555555' });
    expect(update.conversation).toMatchObject({ id: 'personal-harness-user-1', conversationType: 'personal' });
    expect(update.channelId).toBe('msteams');
  });

  it('a typed message reaches the bot from the current user and its reply comes back on the stream', async () => {
    const before = bot.received.length;
    await pg.sendMessage('hello harness');
    const reply = await pg.waitForBotText('you said: hello harness');
    expect(reply.kind).toBe('create');
    const msg = bot.received.slice(before).find((a) => a.type === 'message')!;
    expect(msg.from?.id).toBe('harness-user-1');
    expect(msg.text).toBe('hello harness');
  });

  it('Action.Execute through the API: action data merged with inputs, response card replaces the card', async () => {
    await pg.sendMessage('ask');
    const card = await pg.waitForBotMessage((m) => cardsOf(m).length > 0);
    const before = bot.received.length;
    const result = await pg.invokeAction({ verb: 'harness.colour', inputs: { colour: 'teal' } });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.replyToId).toBe(card.messageId);
    expect(messageText({ attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: result.card }] })).toBe('Got teal from harness-user-1');
    expect(messageText(pg.current(card.messageId)!)).toBe('Got teal from harness-user-1');
    const invoke = bot.received.slice(before).find((a) => a.type === 'invoke')!;
    expect(invoke.name).toBe('adaptiveCard/action');
    expect(invoke.replyToId).toBe(card.messageId);
    expect(invoke.value).toEqual({ action: { type: 'Action.Execute', title: 'Send colour', verb: 'harness.colour', data: { step: 7, colour: 'teal' } } });
  });

  it('in the group chat a post needs the @mention, and a card action honours another member as from.id', async () => {
    await pg.install({ conversationId: pg.groupChatId });
    await pg.sendMessage('ask', { conversationId: pg.groupChatId });
    await pg.waitForBotMessage((m) => cardsOf(m).length > 0, { conversationId: pg.groupChatId });
    const result = await pg.invokeAction({ verb: 'harness.colour', inputs: { colour: 'red' }, fromId: 'harness-ra-1', conversationId: pg.groupChatId });
    expect(result.ok && messageText({ attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: result.card }] })).toBe('Got red from harness-ra-1');
  });

  it('a proactive updateActivity arrives as an update of the same message', async () => {
    await pg.sendMessage('later');
    const first = await pg.waitForBotText('Before update');
    const updated = await pg.waitForBotMessage((m) => m.kind === 'update' && m.messageId === first.messageId);
    expect(messageText(updated)).toContain('After update');
  });

  it('asking for a verb no card offers fails with the verbs on offer', async () => {
    await expect(pg.invokeAction({ verb: 'harness.nope' })).rejects.toThrow(/harness\.colour/);
  });

  it('Chromium: type, see a card, fill the input by label, click by title, the card is replaced; screenshot kept', async () => {
    ui = await openPlayground(pg.url, { name: 'harness', waitForText: 'harness welcome' });
    await ui.sendChat('ask');
    const card = await ui.waitForCardWithText('Question card');
    await ui.clickAction('Send colour');
    // A required input left empty stops the click in the client: its error shows, the card stays.
    await card.getByText('Say a colour').waitFor({ state: 'visible' });
    expect(await card.getByText('Question card').count()).toBe(1);
    await ui.fillInput('Favourite colour', 'amber');
    await ui.clickAction('Send colour');
    await ui.waitForCardWithText('Got amber from harness-user-1');
    expect(await ui.page.locator('.ac-adaptiveCard', { hasText: 'Question card' }).count()).toBe(0);
    const shot = await ui.screenshot('card-replaced');
    expect(existsSync(shot) && statSync(shot).size).toBeGreaterThan(10_000);
    expect([...ui.blocked].every((o) => !o.includes('127.0.0.1') && !o.includes('localhost'))).toBe(true);
  });
});

describe('process helper', () => {
  it('waits for a line, and stop() ends the whole process group', async () => {
    const p = startProcess({
      name: 'harness-sleeper',
      command: process.execPath,
      args: ['-e', "const c=require('node:child_process').spawn(process.execPath,['-e','setInterval(()=>{},1000)'],{stdio:'inherit'});console.log('child '+c.pid);setInterval(()=>{},1000)"],
    });
    try {
      const m = await p.waitForLine(/^child (\d+)$/, 10_000);
      const grandchild = Number(m[1]);
      expect(alive(grandchild)).toBe(true);
      await p.stop(2_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(alive(grandchild)).toBe(false);
      expect(p.hasExited()).toBe(true);
    } finally {
      await stopAll(p);
    }
  });

  it('waitForLine rejects with the output tail when the process exits first', async () => {
    const p = startProcess({ name: 'harness-quitter', command: process.execPath, args: ['-e', "console.log('bye now'); process.exit(3)"] });
    await expect(p.waitForLine(/never printed/, 10_000)).rejects.toThrow(/exited \(code 3\)[\s\S]*bye now/);
    expect(p.exitCode()).toBe(3);
  });

  it('freePort gives a bindable loopback port', async () => {
    const port = await freePort();
    const srv = restify.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.on('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    expect((srv.address() as AddressInfo).port).toBe(port);
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
});
