/**
 * The command bus conformance suite: the same tests for every adapter of
 * `command-bus.port.ts`, run across two buses standing for two bot instances
 * (two processes' clients on one database, or two handles on one hub).
 *
 *   runCommandBusConformance('memory', async () => { const hub = new MemoryBusHub(); return { a: new MemoryCommandBus('A', hub), b: new MemoryCommandBus('B', hub) }; });
 *
 * The factory returns two fresh buses with instance ids 'A' and 'B' that see
 * each other and nothing older; the suite closes them.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../../common/app-error';
import type { BusMessage, CommandBus } from './command-bus.port';
import { COMMAND_BUS_ERROR, COMMAND_BUS_LIMITS, parseBusMessageId } from './command-bus.port';

/** Two buses: `a` is instance 'A', `b` is instance 'B'. */
export interface BusPair {
  a: CommandBus;
  b: CommandBus;
}

/** Collects messages and waits for a count. */
class Inbox {
  readonly messages: BusMessage[] = [];
  readonly push = (m: BusMessage): void => {
    this.messages.push(m);
  };
  async waitFor(n: number, timeoutMs = 10_000): Promise<BusMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} messages, got ${this.messages.length} within ${timeoutMs} ms`);
      await sleep(5);
    }
    return this.messages;
  }
}

/**
 * Register the command bus conformance tests.
 *
 * @param name - adapter name for the titles
 * @param factory - two fresh buses ('A' and 'B') that reach each other
 * @param options.quietMs - how long "nothing more arrives" is watched, ms (default 300)
 */
export function runCommandBusConformance(name: string, factory: () => Promise<BusPair>, options: { quietMs?: number } = {}): void {
  const quietMs = options.quietMs ?? 300;

  describe(`command bus conformance: ${name}`, () => {
    let a: CommandBus;
    let b: CommandBus;
    beforeEach(async () => {
      ({ a, b } = await factory());
    });
    afterEach(async () => {
      await a.close();
      await b.close();
    });

    it('a message from A reaches the subscriber of B on the other bus, whole, and no one else', async () => {
      const inboxB = new Inbox();
      const inboxC = new Inbox();
      await b.subscribe('B', inboxB.push);
      await b.subscribe('C', inboxC.push);
      const payload = { kind: 'card.status', commandId: randomUUID(), nested: { list: [1, 'two', null, true], text: 'é ✓' } };
      const sent = await a.publish('B', payload);
      const [got] = await inboxB.waitFor(1);
      expect(got).toEqual(sent);
      expect(got!.payload).toEqual(payload);
      expect(got!.from).toBe('A');
      expect(got!.to).toBe('B');
      expect(parseBusMessageId(got!.id)).toEqual({ to: 'B', seq: got!.seq });
      expect(Number.isNaN(Date.parse(got!.sentAt))).toBe(false);
      await sleep(quietMs);
      expect(inboxB.messages).toHaveLength(1);
      expect(inboxC.messages).toHaveLength(0);
    });

    it('concurrent publishes from both buses arrive once each, in a gapless seq order', async () => {
      const inbox = new Inbox();
      await b.subscribe('B', inbox.push);
      const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).publish('B', { i })));
      const got = await inbox.waitFor(40);
      await sleep(quietMs);
      expect(inbox.messages).toHaveLength(40);
      const seqs = got.map((m) => m.seq);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
      expect(new Set(got.map((m) => (m.payload as { i: number }).i))).toEqual(new Set(Array.from({ length: 40 }, (_, i) => i)));
      expect(new Set(sent.map((m) => m.id))).toEqual(new Set(got.map((m) => m.id)));
    });

    it('request and reply across instances: B answers to message.from', async () => {
      const replies = new Inbox();
      await a.subscribe('A', replies.push);
      await b.subscribe('B', async (m) => {
        const request = m.payload as { commandId: string; n: number };
        await b.publish(m.from, { replyTo: request.commandId, n: request.n * 2 });
      });
      const commandId = randomUUID();
      await a.publish('B', { commandId, n: 21 });
      const [reply] = await replies.waitFor(1);
      expect(reply!.payload).toEqual({ replyTo: commandId, n: 42 });
      expect(reply!.from).toBe('B');
    });

    it('a new subscription gets only what is published after it is live', async () => {
      await a.publish('B', { early: true });
      const inbox = new Inbox();
      await b.subscribe('B', inbox.push);
      await a.publish('B', { late: true });
      await inbox.waitFor(1);
      await sleep(quietMs);
      expect(inbox.messages.map((m) => m.payload)).toEqual([{ late: true }]);
    });

    it('resuming with after= the last seen id gets exactly what was published meanwhile, in order', async () => {
      const first = new Inbox();
      const sub = await b.subscribe('B', first.push);
      for (let i = 1; i <= 3; i++) await a.publish('B', { i });
      await first.waitFor(3);
      const last = sub.lastSeenId();
      expect(last).toBe(first.messages[2]!.id);
      await sub.close();
      for (let i = 4; i <= 6; i++) await a.publish('B', { i });
      const second = new Inbox();
      await b.subscribe('B', second.push, { after: last! });
      await second.waitFor(3);
      await sleep(quietMs);
      expect(second.messages.map((m) => m.payload)).toEqual([{ i: 4 }, { i: 5 }, { i: 6 }]);
      expect(second.messages[0]!.seq).toBe(first.messages[2]!.seq + 1);
    });

    it('a handler that throws does not stop the subscription; the error goes to onError', async () => {
      const inbox = new Inbox();
      const errors: unknown[] = [];
      await b.subscribe(
        'B',
        (m) => {
          inbox.push(m);
          if ((m.payload as { fail?: boolean }).fail) throw new Error('handler failed');
        },
        { onError: (err) => errors.push(err) },
      );
      await a.publish('B', { fail: true });
      await a.publish('B', { fail: false });
      await inbox.waitFor(2);
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error).message).toBe('handler failed');
    });

    it('handlers run one at a time, in order', async () => {
      let running = 0;
      let maxRunning = 0;
      const order: number[] = [];
      await b.subscribe('B', async (m) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(5);
        order.push((m.payload as { i: number }).i);
        running--;
      });
      for (let i = 0; i < 10; i++) await a.publish('B', { i });
      const deadline = Date.now() + 10_000;
      while (order.length < 10 && Date.now() < deadline) await sleep(10);
      expect(order).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(maxRunning).toBe(1);
    });

    it('after close: the subscription gets nothing more, and a closed bus refuses calls', async () => {
      const inbox = new Inbox();
      const sub = await b.subscribe('B', inbox.push);
      await sub.close();
      await sub.close();
      await a.publish('B', { after: 'close' });
      await sleep(quietMs);
      expect(inbox.messages).toHaveLength(0);
      await b.close();
      const err = await b.publish('A', {}).then(
        () => null,
        (e: unknown) => e as AppError,
      );
      expect(err?.code).toBe(COMMAND_BUS_ERROR.CLOSED);
    });

    it('refuses bad targets, bad after ids and payloads that are not JSON or too large, without echoing them', async () => {
      const codeOf = async (p: Promise<unknown>) =>
        p.then(
          () => null,
          (e: unknown) => e as AppError,
        );
      expect((await codeOf(a.publish('', {})))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect((await codeOf(a.publish('x'.repeat(COMMAND_BUS_LIMITS.instanceIdLength + 1), {})))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect((await codeOf(a.publish('B\n', {})))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      expect((await codeOf(a.publish('B', cyclic)))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect((await codeOf(a.publish('B', { n: 1n })))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect((await codeOf(a.publish('B', undefined)))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      const big = await codeOf(a.publish('B', { blob: 'secretish'.repeat(COMMAND_BUS_LIMITS.payloadBytes / 8) }));
      expect(big?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect(JSON.stringify(big?.toJSON())).not.toContain('secretish');
      expect((await codeOf(b.subscribe('B', () => undefined, { after: 'nonsense' })))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
      expect((await codeOf(b.subscribe('B', () => undefined, { after: 'C:5' })))?.code).toBe(COMMAND_BUS_ERROR.INVALID_MESSAGE);
    });
  });
}
