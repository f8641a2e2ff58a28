/**
 * Contract test: Bot Framework channel authentication on `POST /api/messages` (issue #11).
 *
 * Entra ID and the Bot Connector cannot run here, so their wire contract is served on
 * loopback (STYLE.md 17): an OpenID configuration and key set with locally generated RSA
 * keys (test/support/openid-fake), and tokens shaped as the Bot Connector's (RS256, `kid`,
 * `iss` https://api.botframework.com, `aud` = app id, `serviceurl`). The real bot (`startBot`,
 * embedded store) runs in this process with its channel authentication pointed at that
 * metadata; only the bot's own outgoing token (for replies, otherwise fetched from Entra ID or
 * the managed-identity endpoint) is replaced. Replies go to a recording connector on loopback.
 *
 * For each app type (MultiTenant, SingleTenant, UserAssignedMSI): forged, expired,
 * wrong-audience, wrong-issuer, unsigned (`alg: none`) and other bad tokens get 401 and the bot
 * does nothing (no reply, no stored change); a valid token is served; a tenant not on the
 * allow-list is refused and audited. With the signing keys out of reach the bot answers 503 and
 * logs why. No token appears in any log line.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { TokenCredentials, type ServiceClientCredentialsFactory } from 'botframework-connector';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig, type BotConfig } from '../../bot/config';
import { startBot, type BotApp } from '../../bot/main';
import { createLogger } from '../../common/logger';
import { channelClaims, compactJws, newSigningKey, type SigningKey } from '../support/openid-fake/channel-tokens';
import { OpenIdFake } from '../support/openid-fake/openid-fake.server';
import { postJson, RecordingConnector, sleep, type HttpResult } from './adversarial-harness';

type AppType = 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI';

/** The bot's own outgoing token in this test (the recording connector does not check it). */
const OUTGOING_TOKEN = `outgoing-${randomBytes(8).toString('hex')}`;

/** Keep the inbound checks of the real credentials factory; replace only the bot's outgoing tokens. */
const outgoingOnly = (real: ServiceClientCredentialsFactory): ServiceClientCredentialsFactory => ({
  isValidAppId: (appId: string) => real.isValidAppId(appId),
  isAuthenticationDisabled: () => real.isAuthenticationDisabled(),
  createCredentials: async () => new TokenCredentials(OUTGOING_TOKEN),
});

/** Log lines of every bot in this file, and what the SDK wrote to the console. */
const logLines: string[] = [];
const logger = createLogger({ name: 'auth-bot', level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });
const consoleLines: string[] = [];
/** Every token and header value sent in this file (none may appear in a log). */
const sentTokens: string[] = [];

let root = '';
const started: BotApp[] = [];
const masterKey = randomBytes(32).toString('base64');

function registration(appType: AppType, appId: string, tenant: string): Record<string, string> {
  const password = { MicrosoftAppPassword: `pw-${randomBytes(12).toString('base64url')}` };
  if (appType === 'MultiTenant') return { MicrosoftAppId: appId, MicrosoftAppType: appType, ...password };
  if (appType === 'SingleTenant') return { MicrosoftAppId: appId, MicrosoftAppType: appType, MicrosoftAppTenantId: tenant, ...password };
  return { MicrosoftAppId: appId, MicrosoftAppType: appType, MicrosoftAppTenantId: tenant };
}

async function bot(name: string, env: Record<string, string>, metadataUrl: string): Promise<{ app: BotApp; config: BotConfig }> {
  const config = loadConfig({ SMARTCARD_DATA_DIR: path.join(root, name), SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', ...env });
  const app = await startBot(config, { logger, channel: { endpoints: { ToBotFromChannelOpenIdMetadataUrl: metadataUrl, ToBotFromEmulatorOpenIdMetadataUrl: metadataUrl }, wrapCredentials: outgoingOnly } });
  started.push(app);
  return { app, config };
}

/** Every row of every table of the embedded store (to compare before and after). */
function storeRows(config: BotConfig): string {
  if (config.storage.kind !== 'sqlite') throw new Error('embedded store expected');
  const db = new Database(config.storage.file, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>;
    return JSON.stringify(tables.map((t) => [t.name, db.prepare(`SELECT * FROM "${t.name}"`).all()]));
  } finally {
    db.close();
  }
}

/** A Teams personal-chat message. */
function teamsMessage(serviceUrl: string, tenant: string, text = 'help'): Record<string, unknown> {
  const userId = randomUUID();
  return {
    type: 'message',
    id: `${Date.now()}`,
    timestamp: new Date().toISOString(),
    channelId: 'msteams',
    serviceUrl,
    from: { id: `29:${userId}`, name: 'Tess Token', aadObjectId: userId },
    recipient: { id: '28:smartcard-assist', name: 'Smartcard Assist' },
    conversation: { id: `a:conv-${userId}`, conversationType: 'personal', tenantId: tenant },
    channelData: { tenant: { id: tenant } },
    locale: 'en-GB',
    text,
    textFormat: 'plain',
  };
}

function send(app: BotApp, activity: Record<string, unknown>, authorization: string | null): Promise<HttpResult> {
  if (authorization) sentTokens.push(authorization);
  return postJson(app, '/api/messages', activity, authorization ? { authorization } : {});
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'bot-auth-'));
  // The SDK writes some refusals to the console; keep them to check no token is among them.
  for (const level of ['error', 'warn', 'log'] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      consoleLines.push(args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a))).join(' '));
    });
  }
});

afterAll(async () => {
  for (const app of started.splice(0)) await app.close().catch(() => undefined);
  vi.restoreAllMocks();
  if (root) await rm(root, { recursive: true, force: true });
});

describe.each<AppType>(['MultiTenant', 'SingleTenant', 'UserAssignedMSI'])('channel authentication, %s app (contract: Bot Connector tokens, OpenID keys on loopback)', (appType) => {
  const channelKey = newSigningKey();
  const attackerKey = newSigningKey();
  const fake = new OpenIdFake([channelKey]);
  const connector = new RecordingConnector();
  const appId = randomUUID();
  const tenant = randomUUID();
  let app: BotApp;
  let config: BotConfig;
  let serviceUrl = '';

  beforeAll(async () => {
    await fake.start();
    serviceUrl = await connector.start();
    ({ app, config } = await bot(`bot-${appType}`, { ...registration(appType, appId, tenant), ALLOWED_TENANTS: tenant }, fake.metadataUrl));
  });

  afterAll(async () => {
    await connector.stop();
    await fake.stop();
  });

  const bearer = (key: SigningKey | null, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string =>
    `Bearer ${compactJws({ alg: key ? 'RS256' : 'none', typ: 'JWT', kid: channelKey.kid, ...header }, claims, key?.privateKey ?? null)}`;

  const refused: Array<[string, () => string | null]> = [
    ['no token', () => null],
    ['forged: signed with another key under the channel key id', () => bearer(attackerKey, channelClaims(appId, serviceUrl))],
    ['forged: signed with a key the metadata does not list', () => bearer(attackerKey, channelClaims(appId, serviceUrl), { kid: attackerKey.kid })],
    ['expired ten minutes ago (past the 5 minutes of tolerance)', () => bearer(channelKey, channelClaims(appId, serviceUrl, -600))],
    ['for another audience (another app id)', () => bearer(channelKey, channelClaims(randomUUID(), serviceUrl))],
    ['from another issuer', () => bearer(channelKey, { ...channelClaims(appId, serviceUrl), iss: 'https://api.botframework.example' })],
    ['Entra ID issuer, attacker key', () => bearer(attackerKey, { ...channelClaims(appId, serviceUrl), iss: 'https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0', azp: appId, ver: '2.0' }, { kid: attackerKey.kid })],
    ['unsigned (alg: none)', () => bearer(null, channelClaims(appId, serviceUrl))],
    ['HS256 keyed with the public key (algorithm confusion)', () => bearer(null, channelClaims(appId, serviceUrl), { alg: 'HS256' })],
    ['for another serviceUrl (replies to an attacker)', () => bearer(channelKey, channelClaims(appId, 'https://attacker.example/'))],
    ['not a JWT', () => 'Bearer not-a-token'],
    ['Basic scheme', () => `Basic ${Buffer.from(`${appId}:x`).toString('base64')}`],
  ];

  it.each(refused)('%s: 401, nothing sent, nothing stored', async (_name, authorization) => {
    const before = storeRows(config);
    const calls = connector.calls.length;
    const activity = teamsMessage(serviceUrl, tenant);
    const r = await send(app, activity, authorization());
    expect(r.status).toBe(401);
    await sleep(300); // room for a reply or a write that should not happen
    expect(connector.calls.length - calls).toBe(0);
    expect(storeRows(config)).toBe(before);
  });

  it('a valid token is served: the reply goes to the serviceUrl and the conversation is stored', async () => {
    const before = storeRows(config);
    const activity = teamsMessage(serviceUrl, tenant);
    const r = await send(app, activity, bearer(channelKey, channelClaims(appId, serviceUrl)));
    expect(r.status).toBe(200);
    const conversationId = (activity['conversation'] as { id: string }).id;
    for (let i = 0; i < 50 && connector.textsIn(conversationId).length === 0; i++) await sleep(50);
    expect(connector.textsIn(conversationId).length).toBeGreaterThan(0);
    expect(storeRows(config)).not.toBe(before);
    expect(storeRows(config)).toContain(conversationId);
  });

  it('a valid token from a tenant not on ALLOWED_TENANTS: refused (403) and audited, nothing sent', async () => {
    const other = randomUUID();
    const calls = connector.calls.length;
    const activity = teamsMessage(serviceUrl, other);
    const r = await send(app, activity, bearer(channelKey, channelClaims(appId, serviceUrl)));
    expect(r.status).toBe(403);
    await sleep(300);
    expect(connector.calls.length - calls).toBe(0);
    const audit = await app.storage.audit.list({ limit: 10_000 });
    const entry = audit.find((e) => e.action === 'channel.tenant_refused' && e.details['tenant'] === other);
    expect(entry).toBeDefined();
    expect(entry!.actor).toBe('system');
    // The person was not stored, nor their conversation.
    expect(storeRows(config)).not.toContain((activity['conversation'] as { id: string }).id);
  });
});

describe('channel authentication when the signing keys cannot be fetched', () => {
  const channelKey = newSigningKey();
  const connector = new RecordingConnector();
  const appId = randomUUID();
  const tenant = randomUUID();
  let serviceUrl = '';

  beforeAll(async () => {
    serviceUrl = await connector.start();
  });
  afterAll(async () => {
    await connector.stop();
  });

  const bearer = (claims: Record<string, unknown>, alg = 'RS256'): string => `Bearer ${compactJws({ alg, typ: 'JWT', kid: channelKey.kid }, claims, alg === 'RS256' ? channelKey.privateKey : null)}`;

  it('metadata server down: 503 (not 500), the reason logged; an unsigned token is still 401; nothing sent or stored', async () => {
    // A metadata URL on a port nothing listens on any more.
    const gone = new OpenIdFake([channelKey]);
    await gone.start();
    const url = gone.metadataUrl;
    await gone.stop();
    const { app, config } = await bot('keys-down', { ...registration('SingleTenant', appId, tenant), ALLOWED_TENANTS: tenant }, url);
    const before = storeRows(config);
    const logsFrom = logLines.length;

    const r = await send(app, teamsMessage(serviceUrl, tenant), bearer(channelClaims(appId, serviceUrl)));
    expect(r.status).toBe(503);
    const unsigned = await send(app, teamsMessage(serviceUrl, tenant), bearer(channelClaims(appId, serviceUrl), 'none'));
    expect(unsigned.status).toBe(401);
    await sleep(300);
    expect(connector.calls).toEqual([]);
    expect(storeRows(config)).toBe(before);
    const why = logLines.slice(logsFrom).map((l) => JSON.parse(l) as { msg: string; reason?: string; status?: number }).filter((l) => l.status === 503);
    expect(why.map((l) => l.reason)).toEqual([expect.stringMatching(/signing keys could not be fetched \(ECONNREFUSED\)/)]);
  });

  it('key set answering 500: 503, the reason logged', async () => {
    const broken = new OpenIdFake([channelKey]);
    broken.keysStatus = 500;
    await broken.start();
    try {
      const { app } = await bot('keys-500', { ...registration('MultiTenant', appId, tenant), ALLOWED_TENANTS: tenant }, broken.metadataUrl);
      const logsFrom = logLines.length;
      const r = await send(app, teamsMessage(serviceUrl, tenant), bearer(channelClaims(appId, serviceUrl)));
      expect(r.status).toBe(503);
      expect(broken.hits['/v1/.well-known/keys']).toBeGreaterThanOrEqual(1);
      const why = logLines.slice(logsFrom).map((l) => JSON.parse(l) as { reason?: string; status?: number }).filter((l) => l.status === 503);
      expect(why.map((l) => l.reason)).toEqual([expect.stringMatching(/signing keys could not be fetched \(Failed to load Keys: 500\)/)]);
    } finally {
      await broken.stop();
    }
  });
});

describe('without an app id', () => {
  it('start-up says channel authentication is off and the bot listens on loopback only', async () => {
    const logsFrom = logLines.length;
    const config = loadConfig({ SMARTCARD_DATA_DIR: path.join(root, 'no-app-id'), SMARTCARD_MASTER_KEY: masterKey, PORT: '0', HOST: '127.0.0.1' });
    const app = await startBot(config, { logger });
    started.push(app);
    expect(new URL(app.url).hostname).toBe('127.0.0.1');
    const lines = logLines.slice(logsFrom).map((l) => JSON.parse(l) as { msg: string; host?: string });
    expect(lines.find((l) => /channel authentication is off/.test(l.msg) && /loopback only/.test(l.msg))).toMatchObject({ host: '127.0.0.1' });
  });
});

describe('no token is logged', () => {
  it('no log line and no console line holds a token sent in this file, or any part of its signature', () => {
    expect(sentTokens.length).toBeGreaterThan(30);
    const text = [...logLines, ...consoleLines].join('\n');
    const found: string[] = [];
    for (const t of sentTokens) {
      const value = t.replace(/^\S+ /, '');
      const pieces = [value, ...value.split('.').filter((p) => p.length >= 16)];
      if (pieces.some((p) => text.includes(p))) found.push(t.slice(0, 12));
    }
    expect(found).toEqual([]);
    expect(text).not.toContain(OUTGOING_TOKEN);
  });
});
