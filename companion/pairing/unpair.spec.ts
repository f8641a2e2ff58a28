import { randomUUID } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { PROTOCOL_VERSION } from '../../protocol/companion-link.protocol';
import { FakeBot } from '../link/bot-link.fake';
import { CredentialStore } from './credential.store';
import { unpairFromCommandLine } from './unpair';

const logger = createLogger({ name: 'unpair-spec', level: 'silent' });

let root: string;
let bot: FakeBot;
let store: CredentialStore;

/** A credential the fake bot accepts (when `known`), stored in the companion's credential file. */
async function paired(known = true): Promise<string> {
  const deviceId = randomUUID();
  const credential = `${deviceId}.${'k'.repeat(43)}`;
  if (known) bot.credentials.set(credential, { deviceId, personName: 'Una Pair' });
  await store.write({ deviceId, credential, personName: 'Una Pair', botUrl: bot.url.href, pairedAt: new Date().toISOString() });
  return credential;
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
const run = (timeoutMs = 5000) => unpairFromCommandLine({ botUrl: bot.url, workstation: 'WS-SPEC', version: 'spec', credentials: store, logger, timeoutMs });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'unpair-spec-'));
  bot = new FakeBot();
  await bot.start();
  store = new CredentialStore(join(root, 'data'), logger);
});
afterEach(async () => {
  await bot.stop();
  await rm(root, { recursive: true, force: true });
});

describe('companion --unpair', () => {
  it('asks the bot to revoke (device.unpair), then deletes the stored credential; the bot no longer accepts it', async () => {
    const credential = await paired();
    expect(await run()).toEqual({ kind: 'unpaired' });
    expect(bot.requests()).toEqual([{ kind: 'device.unpair' }]);
    expect(bot.credentials.has(credential)).toBe(false);
    expect(await exists(store.path)).toBe(false);
  });

  it('with no stored credential does nothing', async () => {
    expect(await run()).toEqual({ kind: 'not_paired' });
    expect(bot.connections).toEqual([]);
  });

  it('a credential the bot already refuses (4401) is deleted', async () => {
    await paired(false);
    expect(await run()).toEqual({ kind: 'already_revoked' });
    expect(await exists(store.path)).toBe(false);
    expect(bot.requests()).toEqual([]);
  });

  it('while the companion itself holds the link (the bot keeps the first, 4423): nothing changes', async () => {
    const credential = await paired();
    bot.keepFirstLink = true;
    const url = new URL('/companion/link', bot.url);
    url.protocol = 'ws:';
    const first = new WebSocket(url, { headers: { Authorization: `Bearer ${credential}` } });
    await new Promise<void>((resolve, reject) => {
      first.once('open', () => resolve());
      first.once('error', reject);
    });
    first.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'spec', workstation: 'WS-SPEC' }));
    expect(await run()).toEqual({ kind: 'in_use' });
    expect(bot.requests()).toEqual([]);
    expect(bot.credentials.has(credential)).toBe(true);
    expect(await exists(store.path)).toBe(true);
    first.close();
  });

  it('when the bot cannot be reached, the credential is kept', async () => {
    await paired();
    await bot.stop();
    expect(await run(800)).toEqual({ kind: 'unreachable' });
    expect(await exists(store.path)).toBe(true);
  });
});
