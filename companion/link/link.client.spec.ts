/** Link client against a real local `ws` server speaking the bot's side of the link protocol ({@link FakeBot}). */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { createLogger } from '../../common/logger';
import { PROTOCOL_VERSION, type Command, type Reply } from '../../protocol/companion-link.protocol';
import { backoffDelay } from '../backoff';
import { linkUrlFor } from '../config';
import { FakeBot } from './bot-link.fake';
import { LinkClient, type LinkClientOptions, type LinkState } from './link.client';

const JOURNEY = '3f1c2b9e-8d7a-4c6b-9e5f-1a2b3c4d5e6f';
const CARD = '00112233445566778899aabbccddeeff';

function captureLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _e, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger({ name: 'link-spec', level: 'trace', destination }), text: () => lines.join('') };
}

const until = async (check: () => boolean, timeoutMs = 5000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

let bot: FakeBot | null = null;
let client: LinkClient | null = null;
afterEach(async () => {
  await client?.stop();
  await bot?.stop();
  client = null;
  bot = null;
});

async function setup(options: Partial<LinkClientOptions> = {}, botOptions: { autoPong?: boolean } = {}) {
  bot = new FakeBot({}, botOptions);
  const url = await bot.start();
  // Pairing is not under test here: register a credential with the fake directly.
  const credential = `${'7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11'}.${'c'.repeat(43)}`;
  bot.credentials.set(credential, { deviceId: '7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11', personName: 'Alex Wilber' });
  const logs = captureLogs();
  const states: LinkState[] = [];
  const events = { unauthorised: 0, welcomes: [] as string[] };
  const commands: Command[] = [];
  client = new LinkClient({
    url: linkUrlFor(url),
    credential,
    workstation: 'WS-01',
    version: '0.1.0',
    logger: logs.logger,
    onCommand: async (command) => {
      commands.push(command);
      return { kind: 'ack' };
    },
    onWelcome: (w) => events.welcomes.push(w.personName),
    onStateChange: (s) => states.push(s),
    onUnauthorised: () => {
      events.unauthorised += 1;
    },
    backoff: { initialMs: 40, maxMs: 320 },
    requestTimeoutMs: 1000,
    ...options,
  });
  return { bot, client, credential, logs, states, events, commands };
}

describe('LinkClient: connect and talk', () => {
  it('sends the Bearer credential and hello first, then is ready on welcome', async () => {
    const { bot, client, events } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    expect(bot.connections).toEqual([expect.objectContaining({ authorised: true })]);
    expect(bot.received[0]!.frame).toEqual({ type: 'hello', protocol: PROTOCOL_VERSION, version: '0.1.0', workstation: 'WS-01' });
    expect(events.welcomes).toEqual(['Alex Wilber']);
  });

  it('answers each command exactly once with its id, and turns throws into error replies', async () => {
    const { bot, client } = await setup({
      onCommand: async (command): Promise<Reply> => {
        if (command.kind === 'unlock.closed') throw new AppError('CARD.NOT_PRESENT', 'no card in the reader');
        if (command.kind === 'unlock.prompt') throw new Error('internal detail 4242');
        return { kind: 'card.status', status: { present: false, reader: null } };
      },
    });
    client.start();
    await until(() => client.state === 'ready');
    expect(await bot.command({ kind: 'card.read_status' })).toEqual({ kind: 'card.status', status: { present: false, reader: null } });
    expect(await bot.command({ kind: 'unlock.closed', journeyId: JOURNEY, outcome: 'cancelled', message: '' })).toEqual({
      kind: 'error',
      code: 'CARD.NOT_PRESENT',
      message: 'no card in the reader',
    });
    const internal = await bot.command({ kind: 'unlock.prompt', journeyId: JOURNEY, cardId: CARD, codeExpiresAt: new Date().toISOString() });
    expect(internal).toMatchObject({ kind: 'error', code: 'COMPANION.INTERNAL' });
    expect(JSON.stringify(internal)).not.toContain('4242');
    const replies = bot.received.filter((r) => r.frame.type === 'reply');
    expect(replies).toHaveLength(3);
    expect(new Set(replies.map((r) => (r.frame as { id: string }).id)).size).toBe(3);
  });

  it('matches responses to requests by id; times out; refuses to send when not connected', async () => {
    const { bot, client } = await setup();
    expect(await client.request({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD })).toEqual({ ok: false, reason: 'not_connected' });
    bot.onRequest = (r) => (r.kind === 'unlock.submit_code' ? { kind: 'unlock.refused', reason: 'wrong_code', message: 'no', triesLeft: 4 } : { kind: 'ok' });
    client.start();
    await until(() => client.state === 'ready');
    const [a, b] = await Promise.all([
      client.request({ kind: 'unlock.submit_code', journeyId: JOURNEY, cardId: CARD, code: '12345678' }),
      client.request({ kind: 'unlock.result', journeyId: JOURNEY, cardId: CARD, outcome: 'unblocked', pukOnCard: 'new' }),
    ]);
    expect(a).toEqual({ ok: true, response: { kind: 'unlock.refused', reason: 'wrong_code', message: 'no', triesLeft: 4 } });
    expect(b).toEqual({ ok: true, response: { kind: 'ok' } });
    bot.answerRequests = false;
    const started = Date.now();
    expect(await client.request({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD }, 200)).toEqual({ ok: false, reason: 'timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('ends a pending request as closed when the link drops', async () => {
    const { bot, client } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    bot.answerRequests = false;
    const pending = client.request({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD });
    await bot.waitFor((r) => r.frame.type === 'request');
    bot.closeLive(1011);
    expect(await pending).toEqual({ ok: false, reason: 'closed' });
  });

  it('sends card events only while ready', async () => {
    const { bot, client } = await setup();
    expect(client.sendCardEvent({ present: false, reader: 'R' })).toBe(false);
    client.start();
    await until(() => client.state === 'ready');
    expect(client.sendCardEvent({ present: true, reader: 'R', cardId: CARD, pinRetries: 0 })).toBe(true);
    const ev = await bot.waitFor((r) => r.frame.type === 'card.event');
    expect(ev.frame).toEqual({ type: 'card.event', status: { present: true, reader: 'R', cardId: CARD, pinRetries: 0 } });
  });
});

describe('LinkClient: malformed frames', () => {
  it('refuses bad frames by their error, never their content, answers a bad command with one error reply, and stays up', async () => {
    const { bot, client, logs, commands } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    const before = bot.received.length;
    bot.sendRaw('not json SECRET-MARKER-1');
    bot.sendRaw(JSON.stringify({ type: 'mystery', secret: 'SECRET-MARKER-2' }));
    bot.sendRaw(JSON.stringify({ type: 'command', id: 'cmd-bad-1', command: { kind: 'unlock.prompt', journeyId: JOURNEY, cardId: 'SECRET-MARKER-3', codeExpiresAt: 'x' } }));
    bot.sendRaw(JSON.stringify({ type: 'response', id: 'resp-1', response: { kind: 'unlock.accepted', journeyId: 'SECRET-MARKER-4' } }));
    // A PUK release whose PUK is malformed: refused with an error reply that does not echo it.
    bot.sendRaw(JSON.stringify({ type: 'command', id: 'cmd-bad-2', command: { kind: 'unlock.authorised', journeyId: JOURNEY, cardId: CARD, puk: 'SECRET-MARKER-6', newPuk: '1' } }));
    bot.sendRaw(Buffer.from('SECRET-MARKER-5'), true);
    bot.sendRaw(JSON.stringify({ type: 'command', id: 'x'.repeat(65), command: { kind: 'card.read_status' } }));
    const reply = await bot.waitFor((r) => r.frame.type === 'reply');
    expect(reply.frame).toMatchObject({ type: 'reply', id: 'cmd-bad-1', reply: { kind: 'error', code: 'PROTOCOL.INVALID_COMMAND' } });
    const reply2 = await bot.waitFor((r) => r.frame.type === 'reply' && r.frame.id === 'cmd-bad-2');
    expect(reply2.frame).toMatchObject({ type: 'reply', id: 'cmd-bad-2', reply: { kind: 'error', code: 'PROTOCOL.INVALID_COMMAND' } });
    expect(JSON.stringify([reply.frame, reply2.frame])).not.toContain('SECRET-MARKER');
    // Still up and working: a good command after the bad ones is answered.
    expect(await bot.command({ kind: 'card.read_status' })).toEqual({ kind: 'ack' });
    const after = bot.received.slice(before).map((r) => r.frame.type);
    expect(after).toEqual(['reply', 'reply', 'reply']); // the error replies for cmd-bad-1 and cmd-bad-2, and the ack; nothing else was answered
    expect(commands.map((c) => c.kind)).toEqual(['card.read_status']);
    expect(bot.connections).toHaveLength(1);
    const text = logs.text();
    expect(text).toContain('link frame refused');
    expect(text).not.toContain('SECRET-MARKER');
  });

  it('drops a frame larger than the protocol limit (close 1009) and reconnects', async () => {
    const { bot, client } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    bot.sendRaw(JSON.stringify({ type: 'protocol.error', message: 'y'.repeat(20_000) }));
    await until(() => bot.connections.length === 2 && client.state === 'ready');
    expect(bot.closes[0]).toBe(1009);
  });
});

describe('LinkClient: reconnect, revoke, stop', () => {
  it('reconnects with exponential backoff and jitter, capped, and resets after a welcome', async () => {
    const { bot, client } = await setup();
    bot.dropNextConnections = 6;
    client.start();
    await until(() => client.state === 'ready' && bot.connections.length === 7, 10_000);
    const gaps = bot.connections.slice(1).map((c, i) => c.at - bot.connections[i]!.at);
    const ceilings = [40, 80, 160, 320, 320, 320];
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(ceilings[i]! / 2 - 5);
      expect(gap).toBeLessThanOrEqual(ceilings[i]! + 150);
    });
    // After a welcome the next drop starts from the first step again.
    bot.closeLive(1011);
    const dropAt = Date.now();
    await until(() => bot.connections.length === 8 && client.state === 'ready');
    expect(bot.connections[7]!.at - dropAt).toBeLessThanOrEqual(40 + 150);
  });

  it('backoff delays stay within [d/2, d] and never exceed the cap', () => {
    const opts = { initialMs: 500, maxMs: 30_000 };
    expect(backoffDelay(0, opts, () => 0)).toBe(250);
    expect(backoffDelay(0, opts, () => 0.999999)).toBe(500);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(3000);
    expect(backoffDelay(50, opts, () => 0.999999)).toBe(30_000);
    expect(backoffDelay(50, opts, () => 0)).toBe(15_000);
  });

  it('close 4401 stops the client and asks to pair again, with no further connection attempts', async () => {
    const { bot, client, credential, events } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    bot.revoke(credential);
    await until(() => events.unauthorised === 1);
    expect(client.state).toBe('unauthorised');
    await new Promise((r) => setTimeout(r, 400));
    expect(bot.connections).toHaveLength(1);
    expect(await client.request({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD })).toEqual({ ok: false, reason: 'not_connected' });
  });

  it('an unknown credential at connect time is 4401 too', async () => {
    const { bot, client, credential, events } = await setup();
    bot.credentials.delete(credential);
    client.start();
    await until(() => events.unauthorised === 1);
    expect(bot.connections).toEqual([expect.objectContaining({ authorised: false })]);
  });

  it('an HTTP 401 on the upgrade means the same as 4401', async () => {
    const { bot, client, events } = await setup();
    bot.refuseUpgradeWith401 = true;
    client.start();
    await until(() => events.unauthorised === 1);
    expect(client.state).toBe('unauthorised');
  });

  it('drops a connection whose peer stops answering pings, then reconnects', async () => {
    const { bot, client } = await setup({ heartbeatMs: 80 }, { autoPong: false });
    client.start();
    await until(() => bot.connections.length >= 2, 5000);
  });

  it('stop() closes with 1000, ends pending requests and does not reconnect', async () => {
    const { bot, client } = await setup();
    client.start();
    await until(() => client.state === 'ready');
    bot.answerRequests = false;
    const pending = client.request({ kind: 'unlock.resume', journeyId: JOURNEY, cardId: CARD });
    await client.stop();
    expect(await pending).toEqual({ ok: false, reason: 'closed' });
    await until(() => bot.closes.length === 1);
    expect(bot.closes).toEqual([1000]);
    await new Promise((r) => setTimeout(r, 200));
    expect(bot.connections).toHaveLength(1);
    expect(client.state).toBe('stopped');
  });
});
