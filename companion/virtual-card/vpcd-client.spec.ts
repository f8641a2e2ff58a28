/**
 * VpcdClient framing against a loopback stand-in for vpcd that speaks vpcd's
 * wire framing (2-byte big-endian length + payload; 1-byte control payloads).
 * The real vpcd inside pcscd is exercised in test/integration/pcsc-*.test.ts.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { VpcdClient } from './vpcd-client';
import { DEFAULT_ATR, VirtualPivCard } from './virtual-piv-card';

const frame = (hex: string): Buffer => {
  const payload = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  payload.copy(out, 2);
  return out;
};

/** A vpcd stand-in: accepts one card, collects the frames it answers. */
async function fakeVpcd(): Promise<{ server: Server; port: number; socket: Promise<Socket>; replies: Buffer[]; nextReply: () => Promise<Buffer> }> {
  const replies: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  let resolveSocket!: (s: Socket) => void;
  const socket = new Promise<Socket>((r) => (resolveSocket = r));
  const server = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const payload = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + payload.length);
        const w = waiters.shift();
        if (w) w(Buffer.from(payload));
        else replies.push(Buffer.from(payload));
      }
    });
    resolveSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const nextReply = (): Promise<Buffer> => {
    const ready = replies.shift();
    return ready ? Promise.resolve(ready) : new Promise((r) => waiters.push(r));
  };
  return { server, port, socket, replies, nextReply };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

const newCard = (): VirtualPivCard => new VirtualPivCard({ cardId: 'cd'.repeat(16), pin: '123456', puk: '12345678' });

describe('VpcdClient', () => {
  it('answers ATR requests and APDUs, even when frames arrive split byte by byte or coalesced', async () => {
    const vpcd = await fakeVpcd();
    servers.push(vpcd.server);
    const card = newCard();
    const client = new VpcdClient({ card, port: vpcd.port });
    await client.connect();
    const s = await vpcd.socket;

    s.write(frame('04'));
    expect(await vpcd.nextReply()).toEqual(DEFAULT_ATR);

    s.write(frame('01')); // power on: no reply
    const select = frame('00a404000ba00000030800001000010000');
    for (const byte of select) s.write(Buffer.from([byte]));
    const selectReply = await vpcd.nextReply();
    expect(selectReply.subarray(-2).toString('hex')).toBe('9000');
    expect(card.isSelected).toBe(true);

    // Two APDUs in one TCP write: an empty VERIFY (63C3), then a reset control, then VERIFY again.
    s.write(Buffer.concat([frame('00200080'), frame('02'), frame('00200080')]));
    expect((await vpcd.nextReply()).toString('hex')).toBe('63c3');
    expect((await vpcd.nextReply()).toString('hex')).toBe('6985'); // reset deselected PIV: no application, conditions not satisfied
    expect(client.framesReceived).toBe(6);
    await client.disconnect();
  });

  it('disconnect() removes the card: it loses power and the verified state', async () => {
    const vpcd = await fakeVpcd();
    servers.push(vpcd.server);
    const card = newCard();
    const client = new VpcdClient({ card, port: vpcd.port });
    await client.connect();
    const s = await vpcd.socket;
    s.write(Buffer.concat([frame('01'), frame('00a404000ba00000030800001000010000'), frame('0020008008313233343536ffff')]));
    await vpcd.nextReply();
    expect((await vpcd.nextReply()).toString('hex')).toBe('9000');
    expect(card.isPinVerified).toBe(true);
    await client.disconnect();
    expect(client.connected).toBe(false);
    expect(card.isPowered).toBe(false);
    expect(card.isPinVerified).toBe(false);
  });

  it('a card pulled in onCommand sends no answer', async () => {
    const vpcd = await fakeVpcd();
    servers.push(vpcd.server);
    const card = newCard();
    const client = new VpcdClient({ card, port: vpcd.port });
    card.onCommand = () => void client.disconnect();
    await client.connect();
    const s = await vpcd.socket;
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.write(Buffer.concat([frame('01'), frame('00a404000ba00000030800001000010000')]));
    await closed;
    expect(vpcd.replies).toHaveLength(0);
    expect(card.commandsProcessed).toBe(0);
  });

  it('refuses a non-loopback host and reports a port where nothing listens', async () => {
    expect(() => new VpcdClient({ card: newCard(), host: '10.0.0.1' })).toThrow(/loopback/);
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    await expect(new VpcdClient({ card: newCard(), port }).connect()).rejects.toThrow(/ECONNREFUSED.*pcscd/);
  });
});
