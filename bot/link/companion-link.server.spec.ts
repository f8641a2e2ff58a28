/**
 * The link server in-process (issue #10): a real `ws` endpoint on a loopback HTTP
 * server over an embedded store in a temporary file, with small limits, and raw
 * WebSocket clients. Checks the unauthenticated-socket caps and hello timeout,
 * one live link per device (the first kept; a silent one replaced), revocation
 * on every message and between messages, and commands bound to a link session.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CloseCodes, PROTOCOL_VERSION, type CardStatus } from '../../protocol/companion-link.protocol';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import { makeDevice, makePerson } from '../../storage/storage.fixtures';
import type { Device, Storage } from '../../storage/storage.port';
import { deriveKeys, generateMasterKey, parseMasterKey } from '../security/keys';
import { MemoryBusHub, MemoryCommandBus } from './bus/memory-command-bus.adapter';
import { CompanionLinkServer, credentialHash, type LinkLimits } from './companion-link.server';

const keys = deriveKeys(parseMasterKey(generateMasterKey()));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Client {
  ws: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: Promise<number>;
}

interface World {
  storage: Storage;
  server: Server;
  link: CompanionLinkServer;
  url: string;
  told: Array<{ personId: string; text: string }>;
  cardEvents: Array<{ deviceId: string; status: CardStatus }>;
  clients: Client[];
}

let w: World;
/** A second instance on the same store and bus (multi-instance specs). */
let w2: World | null = null;

async function setup(limits: Partial<LinkLimits> = {}, shared: { storage?: Storage; instanceId?: string; hub?: MemoryBusHub } = {}): Promise<World> {
  const storage = shared.storage ?? openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'link-spec-')), 's.sqlite') });
  const told: World['told'] = [];
  const cardEvents: World['cardEvents'] = [];
  const instanceId = shared.instanceId ?? 'spec-1';
  const link = new CompanionLinkServer({
    storage,
    credentialHashKey: keys.credentialHashKey,
    logger: createLogger({ name: 'link-spec', level: 'silent' }),
    instanceId,
    bus: shared.hub ? new MemoryCommandBus(instanceId, shared.hub) : null,
    handlers: {
      requests: {
        'unlock.submit_code': async () => ({ kind: 'ok' }),
        'unlock.resume': async (_d, r, l) => ({ kind: 'unlock.accepted', journeyId: r.journeyId, ...(l.linkSession ? {} : {}) }),
        'unlock.result': async () => ({ kind: 'ok' }),
        'register.passcode_checked': async () => ({ kind: 'ok' }),
      },
      onCardEvent: async (device, status) => void cardEvents.push({ deviceId: device.id, status }),
      onConnected: async () => undefined,
    },
    tellPerson: async (personId, text) => void told.push({ personId, text }),
    limits: { probeTimeoutMs: 300, helloTimeoutMs: 2000, revocationCheckMs: 200, ...limits },
  });
  await link.start();
  const server = createServer((_req, res) => res.writeHead(404).end());
  link.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { storage, server, link, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/companion/link`, told, cardEvents, clients: [] };
}

/** A paired device with its bearer credential. */
async function device(): Promise<{ device: Device; bearer: string }> {
  const person = makePerson();
  await w.storage.persons.insert(person);
  const secret = randomBytes(32).toString('base64url');
  const d = makeDevice({ personId: person.id, credentialHash: credentialHash(keys.credentialHashKey, secret) });
  await w.storage.devices.insert(d);
  return { device: d, bearer: `Bearer ${d.id}.${secret}` };
}

/** Open a socket; resolves with the client, or the HTTP status when the upgrade was refused. */
function connect(bearer: string | null, options: { hello?: boolean; from?: string } = {}): Promise<Client | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(w.url, { headers: bearer ? { authorization: bearer } : {}, ...(options.from ? { localAddress: options.from } : {}) });
    const frames: Array<Record<string, unknown>> = [];
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => {
      const c = { ws, frames, closed };
      w.clients.push(c);
      if (options.hello !== false) ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'spec', workstation: 'WS' }));
      resolve(c);
    });
  });
}

async function welcomed(bearer: string): Promise<Client> {
  const c = await connect(bearer);
  if (typeof c === 'number') throw new Error(`upgrade refused ${c}`);
  await until(() => c.frames.some((f) => f['type'] === 'welcome'));
  return c;
}

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function request(c: Client, req: unknown): Promise<Record<string, unknown>> {
  const id = randomUUID();
  c.ws.send(JSON.stringify({ type: 'request', id, request: req }));
  return until(() => c.frames.some((f) => f['id'] === id)).then(() => c.frames.find((f) => f['id'] === id)!);
}

beforeEach(() => {
  w = undefined as unknown as World;
});
afterEach(async () => {
  if (w2) {
    for (const c of w2.clients) c.ws.terminate();
    await w2.link.close();
    w2.server.closeAllConnections();
    await new Promise<void>((r) => w2!.server.close(() => r()));
    w2 = null;
  }
  if (!w) return;
  for (const c of w.clients) c.ws.terminate();
  await w.link.close();
  w.server.closeAllConnections();
  await new Promise<void>((r) => w.server.close(() => r()));
  await w.storage.close();
});

describe('companion link: unauthenticated sockets are capped and must say hello in time', () => {
  it('caps sockets without hello per address (503 at the upgrade), frees a slot at hello, and closes the silent ones 4408', async () => {
    w = await setup({ maxUnauthenticatedPerAddress: 3, maxUnauthenticated: 100, helloTimeoutMs: 800 });
    const devices = await Promise.all([device(), device(), device(), device()]);
    const silent: Client[] = [];
    for (const d of devices.slice(0, 3)) {
      const c = await connect(d.bearer, { hello: false });
      if (typeof c === 'number') throw new Error(`refused ${c}`);
      silent.push(c);
    }
    expect(w.link.unauthenticatedCount()).toBe(3);
    expect(await connect(devices[3]!.bearer, { hello: false })).toBe(503);
    // Even a bad credential needs a slot before it is looked at.
    expect(await connect('Bearer nonsense', { hello: false })).toBe(503);
    // The first one says hello: its slot is free again.
    const first = silent[0]!;
    first.ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'spec', workstation: 'WS' }));
    await until(() => first.frames.some((f) => f['type'] === 'welcome'));
    expect(w.link.unauthenticatedCount()).toBe(2);
    const late = await connect(devices[3]!.bearer);
    expect(typeof late).not.toBe('number');
    // The two that never said hello are closed at the deadline; the welcomed ones stay.
    expect(await silent[1]!.closed).toBe(CloseCodes.HELLO_TIMEOUT);
    expect(await silent[2]!.closed).toBe(CloseCodes.HELLO_TIMEOUT);
    expect(silent[1]!.frames).toEqual([]);
    await until(() => w.link.unauthenticatedCount() === 0);
    expect(first.ws.readyState).toBe(WebSocket.OPEN);
    expect((late as Client).ws.readyState).toBe(WebSocket.OPEN);
  });

  it('caps sockets without hello overall, across addresses', async () => {
    w = await setup({ maxUnauthenticatedPerAddress: 2, maxUnauthenticated: 3 });
    const devices = await Promise.all([device(), device(), device(), device()]);
    expect(typeof (await connect(devices[0]!.bearer, { hello: false, from: '127.0.0.1' }))).not.toBe('number');
    expect(typeof (await connect(devices[1]!.bearer, { hello: false, from: '127.0.0.1' }))).not.toBe('number');
    expect(await connect(devices[2]!.bearer, { hello: false, from: '127.0.0.1' })).toBe(503);
    expect(typeof (await connect(devices[2]!.bearer, { hello: false, from: '127.0.0.2' }))).not.toBe('number');
    expect(await connect(devices[3]!.bearer, { hello: false, from: '127.0.0.3' })).toBe(503);
    expect(w.link.unauthenticatedCount()).toBe(3);
  });
});

describe('companion link: one live link per device, the first kept', () => {
  it('refuses a second connection while the first answers pings (4423), audits it and tells the person once', async () => {
    w = await setup();
    const { device: d, bearer } = await device();
    const first = await welcomed(bearer);
    const second = (await connect(bearer)) as Client;
    expect(await second.closed).toBe(CloseCodes.IN_USE);
    const third = (await connect(bearer)) as Client;
    expect(await third.closed).toBe(CloseCodes.IN_USE);
    expect(second.frames.concat(third.frames).filter((f) => f['type'] === 'welcome')).toEqual([]);
    expect(first.ws.readyState).toBe(WebSocket.OPEN);
    expect(await request(first, { kind: 'unlock.resume', journeyId: randomUUID(), cardId: 'a'.repeat(32) })).toMatchObject({ type: 'response' });
    await until(() => w.told.length > 0);
    await sleep(100);
    expect(w.told).toEqual([{ personId: d.personId, text: expect.stringContaining(d.workstation) as string }]);
    const audit = (await w.storage.audit.list({ personId: d.personId, limit: 10 })).filter((a) => a.action === 'link.duplicate_refused');
    // Throttled: one entry for the first refusal (the next one within a minute is counted in the next entry).
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: `device:${d.id}`, details: { deviceId: d.id, refusals: 1 } });
  });

  it('replaces a first link that does not answer a ping in time (4409 to it), telling no one', async () => {
    w = await setup();
    const { device: d, bearer } = await device();
    const first = await welcomed(bearer);
    (first.ws as unknown as { _socket: Socket })._socket.pause();
    const second = await welcomed(bearer);
    expect(second.ws.readyState).toBe(WebSocket.OPEN);
    expect(w.link.isConnected(d.id)).toBe(true);
    expect(w.told).toEqual([]);
    expect(await request(second, { kind: 'unlock.resume', journeyId: randomUUID(), cardId: 'a'.repeat(32) })).toMatchObject({ type: 'response' });
  });
});

describe('companion link: revocation holds on every message and between messages', () => {
  it('closes an open link 4401 at the next check after the device is revoked in the store; a card event then moves nothing', async () => {
    w = await setup({ revocationCheckMs: 60_000 });
    const { device: d, bearer } = await device();
    const c = await welcomed(bearer);
    await w.storage.devices.save({ ...(await w.storage.devices.get(d.id))!, revokedAt: new Date().toISOString() }, (await w.storage.devices.get(d.id))!.version);
    c.ws.send(JSON.stringify({ type: 'card.event', status: { present: true, reader: 'R', cardId: 'a'.repeat(32), pinRetries: 0 } }));
    expect(await c.closed).toBe(CloseCodes.UNAUTHORISED);
    expect(w.cardEvents).toEqual([]);
  });

  it('the periodic check closes a revoked device that says nothing', async () => {
    w = await setup({ revocationCheckMs: 100 });
    const { device: d, bearer } = await device();
    const c = await welcomed(bearer);
    const t0 = Date.now();
    await w.storage.devices.save({ ...(await w.storage.devices.get(d.id))!, revokedAt: new Date().toISOString() }, (await w.storage.devices.get(d.id))!.version);
    expect(await c.closed).toBe(CloseCodes.UNAUTHORISED);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(w.link.isConnected(d.id)).toBe(false);
  });

  it('closeRevoked closes the link here at once', async () => {
    w = await setup({ revocationCheckMs: 60_000 });
    const { device: d, bearer } = await device();
    const c = await welcomed(bearer);
    await w.link.closeRevoked(d);
    expect(await c.closed).toBe(CloseCodes.UNAUTHORISED);
  });

  it('device.unpair revokes the device, answers ok, then closes 4401', async () => {
    w = await setup({ revocationCheckMs: 60_000 });
    const { device: d, bearer } = await device();
    const c = await welcomed(bearer);
    expect(await request(c, { kind: 'device.unpair' })).toMatchObject({ type: 'response', response: { kind: 'ok' } });
    expect(await c.closed).toBe(CloseCodes.UNAUTHORISED);
    expect((await w.storage.devices.get(d.id))!.revokedAt).not.toBeNull();
    expect((await w.storage.audit.list({ personId: d.personId, limit: 10 })).map((a) => [a.action, a.actor])).toEqual([['device.revoked', `device:${d.id}`]]);
  });
});

describe('companion link: commands bound to a link session', () => {
  it('sends on the named session only; another session of the device gets nothing (LINK.SESSION_CHANGED)', async () => {
    w = await setup();
    const { device: d, bearer } = await device();
    const c = await welcomed(bearer);
    const session = String(c.frames.find((f) => f['type'] === 'welcome')!['session']);
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    const sent = w.link.sendCommand(d.id, { kind: 'card.read_status' }, 2000, { linkSession: session });
    await until(() => c.frames.some((f) => f['type'] === 'command'));
    const cmd = c.frames.find((f) => f['type'] === 'command')!;
    c.ws.send(JSON.stringify({ type: 'reply', id: cmd['id'], reply: { kind: 'ack' } }));
    expect(await sent).toEqual({ kind: 'ack' });
    await expect(w.link.sendCommand(d.id, { kind: 'card.read_status' }, 2000, { linkSession: randomUUID() })).rejects.toMatchObject({ code: 'LINK.SESSION_CHANGED' });
    expect(c.frames.filter((f) => f['type'] === 'command')).toHaveLength(1);
  });
});

describe('companion link: several instances over one store and command bus', () => {
  /** Connect to the second instance (same store, same bus). */
  const connect2 = (bearer: string): Promise<Client> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(w2!.url, { headers: { authorization: bearer } });
      const frames: Array<Record<string, unknown>> = [];
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
      ws.on('error', reject);
      ws.on('open', () => {
        const c = { ws, frames, closed };
        w2!.clients.push(c);
        ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'spec', workstation: 'WS' }));
        resolve(c);
      });
    });

  it('a connection landing on another instance is refused while the first instance holds a live link; a revocation there closes it; a routed command reaches only its session', async () => {
    const hub = new MemoryBusHub();
    w = await setup({ revocationCheckWithBusMs: 60_000 }, { instanceId: 'spec-1', hub });
    w2 = await setup({ revocationCheckWithBusMs: 60_000 }, { instanceId: 'spec-2', hub, storage: w.storage });
    const { device: d, bearer } = await device();
    const first = await welcomed(bearer);
    for (let i = 0; i < 100 && (await w.storage.devices.get(d.id))!.connectedInstance !== 'spec-1'; i++) await sleep(10);
    expect((await w.storage.devices.get(d.id))!.connectedInstance).toBe('spec-1');
    // Another instance: it asks spec-1 over the bus, which pings its socket: live, so refused.
    const second = await connect2(bearer);
    expect(await second.closed).toBe(CloseCodes.IN_USE);
    expect(second.frames.filter((f) => f['type'] === 'welcome')).toEqual([]);
    expect(first.ws.readyState).toBe(WebSocket.OPEN);
    await until(() => w2!.told.length === 1);
    expect((await w.storage.audit.list({ personId: d.personId, limit: 10 })).filter((a) => a.action === 'link.duplicate_refused')).toHaveLength(1);
    // A command from spec-2, bound to the first link's session, is routed to spec-1 and answered.
    const session = String(first.frames.find((f) => f['type'] === 'welcome')!['session']);
    const sent = w2.link.sendCommand(d.id, { kind: 'card.read_status' }, 2000, { linkSession: session });
    await until(() => first.frames.some((f) => f['type'] === 'command'));
    const cmd = first.frames.find((f) => f['type'] === 'command')!;
    first.ws.send(JSON.stringify({ type: 'reply', id: cmd['id'], reply: { kind: 'ack' } }));
    expect(await sent).toEqual({ kind: 'ack' });
    await expect(w2.link.sendCommand(d.id, { kind: 'card.read_status' }, 1000, { linkSession: randomUUID() })).rejects.toMatchObject({ code: 'LINK.SESSION_CHANGED' });
    expect(first.frames.filter((f) => f['type'] === 'command')).toHaveLength(1);
    // Revoked on spec-2 (e.g. the person's unpair landed there): spec-1 closes its link at once.
    const before = (await w.storage.devices.get(d.id))!;
    await w.storage.devices.save({ ...before, revokedAt: new Date().toISOString() }, before.version);
    const t0 = Date.now();
    await w2.link.closeRevoked(before);
    expect(await first.closed).toBe(CloseCodes.UNAUTHORISED);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a first link on an instance that no longer answers the bus is not kept: the new connection is accepted after the probe times out', async () => {
    const hub = new MemoryBusHub();
    w = await setup({ revocationCheckWithBusMs: 60_000 }, { instanceId: 'spec-1', hub });
    w2 = await setup({ revocationCheckWithBusMs: 60_000, probeTimeoutMs: 200, helloTimeoutMs: 5000 }, { instanceId: 'spec-2', hub, storage: w.storage });
    const { device: d, bearer } = await device();
    // The store says a gone instance holds the link.
    const cur = (await w.storage.devices.get(d.id))!;
    await w.storage.devices.save({ ...cur, connectedInstance: 'spec-gone' }, cur.version);
    const c = await connect2(bearer);
    await until(() => c.frames.some((f) => f['type'] === 'welcome'), 5000);
    expect(w2.link.isConnected(d.id)).toBe(true);
  });
});
