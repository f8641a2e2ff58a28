/**
 * Bot configuration: read once at start-up from the environment, validated with
 * zod, typed, and refused with a message naming the variable (STYLE.md 13).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AppError } from '../common/app-error';
import { loadGraphMailConfig, type GraphMailConfig } from './mail/graph/graph-mail.config';
import { loadDirectoryConfig, type DirectoryConfig } from './directory/directory.config';
import { loadShutdownConfig, type ShutdownConfig } from './lifecycle';
import { parseMasterKey } from './security/keys';
import { loadRaDeskConfig, type RaDeskConfig } from './journeys/ra-case/ra-roles';
import { loadUnlockPolicyConfig, type UnlockPolicyConfig } from './journeys/unlock/unlock-policy.config';
import { loadNotifyConfig, type NotifyConfig } from './notify/notify.config';
import { loadOutboxRetentionConfig } from './mail/outbox-mail.adapter.config';
import type { OutboxRetention } from './mail/outbox-mail.adapter';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const domainList = z
  .string()
  .transform((s) => s.split(',').map((d) => d.trim().toLowerCase()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'each entry must be a domain like nhs.net')).min(1));

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3978),
  HOST: z.string().min(1).default('127.0.0.1'),
  SMARTCARD_DATA_DIR: z.string().min(1).default('data'),
  /** 32-byte master key, base64 or hex. Or SMARTCARD_MASTER_KEY_FILE. */
  SMARTCARD_MASTER_KEY: z.string().min(1).optional(),
  SMARTCARD_MASTER_KEY_FILE: z.string().min(1).optional(),
  STORAGE: z.enum(['sqlite', 'mongodb'], { message: 'must be sqlite or mongodb' }).default('sqlite'),
  /** `mongodb://` or `mongodb+srv://` URL (may hold credentials; never logged). Required when STORAGE=mongodb. */
  MONGODB_URL: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://').optional(),
  MONGODB_DATABASE: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be 1-63 letters, digits, _ or -').optional(),
  MAIL_TRANSPORT: z.enum(['outbox', 'graph'], { message: 'must be outbox or graph' }).default('outbox'),
  MAIL_FROM: z.string().email('MAIL_FROM must be an email address').default('smartcard-assist@localhost.localdomain'),
  /** Bot Framework app registration; empty = local development with no channel authentication (Playground). */
  MicrosoftAppId: z.string().optional(),
  MicrosoftAppPassword: z.string().optional(),
  MicrosoftAppTenantId: z.string().optional(),
  MicrosoftAppType: z.enum(['MultiTenant', 'SingleTenant', 'UserAssignedMSI'], { message: 'must be MultiTenant, SingleTenant or UserAssignedMSI' }).optional(),
  /** Comma-separated Entra tenant ids allowed to use the bot; required (GUIDs) with an app id; empty without one = any. */
  ALLOWED_TENANTS: z.string().optional(),
  TIME_ZONE: z.string().default('Europe/London'),
  RA_CONTACT: z.string().min(1).max(200).default('your local Registration Authority (RA) team'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PAIRING_POLL_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(60).default(5),
  COMPANION_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(500).max(120_000).default(10_000),
  APPROVED_EMAIL_DOMAINS: domainList.default(['nhs.net', 'gov.uk', 'mod.uk']),
  BOT_INSTANCE_ID: z.string().min(1).max(64).optional(),
  /** Connection bounds (issue #10, finding 4; bot/http/connection-guard.ts). */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(120_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(5000),
  /** Unset: 10,000, lowered to fit below the open-file limit at start-up. */
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(16).max(1_000_000).optional(),
  /**
   * HTTP connections from one address at once (upgraded links not counted). Teams' own traffic comes from a
   * few Bot Framework service addresses, and behind a reverse proxy every connection comes from the proxy:
   * raise it there, or 0 (off) when the proxy bounds connections itself.
   */
  HTTP_MAX_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(0).max(1_000_000).default(1000),
  /** `false`: refuse to start without an app registration. (`true` no longer allows a non-loopback HOST without one.) */
  ALLOW_UNAUTHENTICATED_CHANNEL: bool.optional(),
});

export interface BotConfig {
  port: number;
  host: string;
  dataDir: string;
  masterKey: string;
  storage: { kind: 'sqlite'; file: string } | { kind: 'mongodb'; url: string; database?: string };
  /**
   * `retention`: OUTBOX_MAX_AGE_HOURS, OUTBOX_MAX_FILES, OUTBOX_PRUNE_INTERVAL_MINUTES (bot/mail/outbox-mail.adapter.config.ts,
   * issue #15), for the mail outbox and the SMS outbox; loaded with Graph mail too, where only the SMS outbox uses it.
   */
  mail: { transport: 'outbox'; outboxDir: string; from: string; retention: OutboxRetention } | { transport: 'graph'; graph: GraphMailConfig; outboxDir: string; from: string; retention?: OutboxRetention };
  auth:
    | { kind: 'none' }
    | { kind: 'bot-framework'; appId: string; appPassword: string | undefined; tenantId: string | undefined; appType: 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI' };
  allowedTenants: string[];
  timeZone: string;
  raContact: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  pairingPollIntervalSeconds: number;
  companionCommandTimeoutMs: number;
  approvedEmailDomains: string[];
  instanceId: string;
  /** Directory prefill for registration (off by default). */
  directory: DirectoryConfig;
  /** RA desk: RA_MEMBER_IDS, HELPDESK_MEMBER_IDS, RA_CHANNEL_ID, RA_CHANNEL_SERVICE_URL (bot/journeys/ra-case/ra-roles.ts). */
  raDesk: RaDeskConfig;
  /** Graceful shutdown on SIGTERM (bot/lifecycle.ts): SHUTDOWN_GRACE_MS. */
  shutdown: ShutdownConfig;
  /** UNLOCK_POLICY and the one-time code settings (bot/journeys/unlock/unlock-policy.config.ts, issue #14). */
  unlockPolicy: UnlockPolicyConfig;
  /** SMS_TRANSPORT and the NOTIFY_* settings (bot/notify/notify.config.ts, issue #14); the outbox folder is `SMARTCARD_DATA_DIR/sms-outbox`. */
  sms: NotifyConfig & { outboxDir: string };
  /** Connection bounds of the HTTP server (bot/http/connection-guard.ts). */
  http: {
    /** A request head must be complete within this, milliseconds. */
    headersTimeoutMs: number;
    /** A whole request (head and body) must be received within this, milliseconds; at least `headersTimeoutMs`. */
    requestTimeoutMs: number;
    /** An idle keep-alive connection closes after this, milliseconds. */
    keepAliveTimeoutMs: number;
    /** Connections held at once; null = 10,000 lowered to fit below the open-file limit (decided at start-up). */
    maxConnections: number | null;
    /** HTTP connections held at once from one address (IPv6: one /64), upgraded links not counted; 0 = no per-address cap. */
    maxConnectionsPerAddress: number;
  };
}

/** An Entra ID (Azure AD) object or tenant id. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Addresses only this machine can reach. */
const LOOPBACK_HOST = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|::1|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/**
 * The Bot Framework app registration (setting names as in the Bot Framework SDK's
 * `ConfigurationServiceClientCredentialFactory`), checked as the SDK and Azure need it:
 * MultiTenant and SingleTenant need a password (client secret), SingleTenant and
 * UserAssignedMSI a tenant, and a managed identity has no password. With an app id the
 * tenants whose users may use the bot must be listed. Without one, the channel is not
 * authenticated, so the bot may listen on loopback only.
 *
 * @throws AppError `CONFIG.INVALID` naming the setting and the reason
 */
function channelAuth(e: z.infer<typeof EnvSchema>, allowedTenants: string[]): BotConfig['auth'] {
  const refuse = (message: string): never => {
    throw new AppError('CONFIG.INVALID', message);
  };
  if (!e.MicrosoftAppId) {
    if (e.ALLOW_UNAUTHENTICATED_CHANNEL === false) refuse('MicrosoftAppId is empty but ALLOW_UNAUTHENTICATED_CHANNEL=false: set the app registration');
    // Without an app registration anyone who reaches /api/messages could act as any Teams user.
    if (!LOOPBACK_HOST.test(e.HOST)) {
      refuse(`HOST: ${e.HOST} is reachable from other machines but MicrosoftAppId is empty; without Bot Framework authentication the bot listens on loopback only (127.0.0.1, ::1, localhost). Set the app registration (MicrosoftAppId, MicrosoftAppType, MicrosoftAppPassword or a managed identity, MicrosoftAppTenantId) to listen elsewhere${e.ALLOW_UNAUTHENTICATED_CHANNEL ? ' (ALLOW_UNAUTHENTICATED_CHANNEL=true no longer opens other addresses)' : ''}`);
    }
    return { kind: 'none' };
  }
  if (!GUID.test(e.MicrosoftAppId)) refuse('MicrosoftAppId: must be a GUID (the Azure Bot\'s Microsoft App ID)');
  const appType = e.MicrosoftAppType ?? 'MultiTenant';
  if (appType === 'UserAssignedMSI' && e.MicrosoftAppPassword) refuse('MicrosoftAppPassword: must be empty for a UserAssignedMSI app (the managed identity has no password)');
  if (appType !== 'UserAssignedMSI' && !e.MicrosoftAppPassword) refuse(`MicrosoftAppPassword: must be set for a ${appType} app (the app registration's client secret)`);
  if (appType !== 'MultiTenant' && !e.MicrosoftAppTenantId) refuse(`MicrosoftAppTenantId: must be set for a ${appType} app`);
  if (e.MicrosoftAppTenantId && !GUID.test(e.MicrosoftAppTenantId) && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(e.MicrosoftAppTenantId)) {
    refuse('MicrosoftAppTenantId: must be a tenant id (a GUID) or a tenant domain such as contoso.onmicrosoft.com');
  }
  if (allowedTenants.length === 0) refuse('ALLOWED_TENANTS: must list the Entra tenant ids (GUIDs) whose users may use the bot when MicrosoftAppId is set');
  const notGuid = allowedTenants.find((t) => !GUID.test(t));
  if (notGuid !== undefined) refuse(`ALLOWED_TENANTS: "${notGuid.slice(0, 64)}" is not a tenant id (a GUID)`);
  return { kind: 'bot-framework', appId: e.MicrosoftAppId, appPassword: e.MicrosoftAppPassword, tenantId: e.MicrosoftAppTenantId, appType };
}

/**
 * Validate the environment and build the configuration.
 *
 * @param env - usually `process.env`
 * @returns the typed configuration
 * @throws AppError `CONFIG.INVALID` whose message names every offending variable and why
 */
export function loadConfig(env: Record<string, string | undefined>): BotConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(environment)'}: ${i.message}`);
    throw new AppError('CONFIG.INVALID', `Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.SMARTCARD_DATA_DIR);
  let masterKey = e.SMARTCARD_MASTER_KEY;
  if (!masterKey && e.SMARTCARD_MASTER_KEY_FILE) {
    try {
      masterKey = readFileSync(e.SMARTCARD_MASTER_KEY_FILE, 'utf8').trim();
    } catch (err) {
      throw new AppError('CONFIG.INVALID', `SMARTCARD_MASTER_KEY_FILE: cannot read ${e.SMARTCARD_MASTER_KEY_FILE} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (!masterKey) throw new AppError('CONFIG.INVALID', 'SMARTCARD_MASTER_KEY or SMARTCARD_MASTER_KEY_FILE must be set (32 random bytes, base64 or hex)');
  // The key's form is checked with the other settings (a wrong key stops start-up naming its variable, never its value).
  try {
    parseMasterKey(masterKey, e.SMARTCARD_MASTER_KEY ? 'SMARTCARD_MASTER_KEY' : 'SMARTCARD_MASTER_KEY_FILE');
  } catch (err) {
    throw new AppError('CONFIG.INVALID', err instanceof Error ? err.message : 'SMARTCARD_MASTER_KEY: not a valid key');
  }

  if (e.STORAGE === 'mongodb' && !e.MONGODB_URL) throw new AppError('CONFIG.INVALID', 'MONGODB_URL must be set when STORAGE=mongodb (mongodb:// or mongodb+srv://)');
  const allowedTenants = (e.ALLOWED_TENANTS ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of allowedTenants) {
    if (!/^[0-9a-fA-F-]{36}$/.test(t) && !/^[\w.-]+$/.test(t)) throw new AppError('CONFIG.INVALID', `ALLOWED_TENANTS: "${t}" is not a tenant id`);
  }
  const auth = channelAuth(e, allowedTenants);
  if (e.HTTP_REQUEST_TIMEOUT_MS < e.HTTP_HEADERS_TIMEOUT_MS) {
    throw new AppError('CONFIG.INVALID', `HTTP_REQUEST_TIMEOUT_MS: ${e.HTTP_REQUEST_TIMEOUT_MS} is shorter than HTTP_HEADERS_TIMEOUT_MS (${e.HTTP_HEADERS_TIMEOUT_MS}); a request's head is part of the request`);
  }
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: e.TIME_ZONE });
  } catch {
    throw new AppError('CONFIG.INVALID', `TIME_ZONE: "${e.TIME_ZONE}" is not an IANA time zone`);
  }
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir,
    masterKey,
    storage:
      e.STORAGE === 'mongodb'
        ? { kind: 'mongodb', url: e.MONGODB_URL as string, ...(e.MONGODB_DATABASE ? { database: e.MONGODB_DATABASE } : {}) }
        : { kind: 'sqlite', file: path.join(dataDir, 'smartcard-assist.sqlite') },
    mail:
      e.MAIL_TRANSPORT === 'graph'
        ? { transport: 'graph', graph: loadGraphMailConfig(env), outboxDir: path.join(dataDir, 'outbox'), from: e.MAIL_FROM, retention: loadOutboxRetentionConfig(env) }
        : { transport: 'outbox', outboxDir: path.join(dataDir, 'outbox'), from: e.MAIL_FROM, retention: loadOutboxRetentionConfig(env) },
    auth,
    allowedTenants,
    timeZone: e.TIME_ZONE,
    raContact: e.RA_CONTACT,
    logLevel: e.LOG_LEVEL,
    pairingPollIntervalSeconds: e.PAIRING_POLL_INTERVAL_SECONDS,
    companionCommandTimeoutMs: e.COMPANION_COMMAND_TIMEOUT_MS,
    approvedEmailDomains: e.APPROVED_EMAIL_DOMAINS,
    // Unique per process start: the command bus addresses instances by it.
    instanceId: `${e.BOT_INSTANCE_ID ?? `bot-${process.pid}`}-${Date.now().toString(36)}`,
    directory: loadDirectoryConfig(env),
    shutdown: loadShutdownConfig(env),
    raDesk: loadRaDeskConfig(env),
    unlockPolicy: loadUnlockPolicyConfig(env),
    sms: { ...loadNotifyConfig(env), outboxDir: path.join(dataDir, 'sms-outbox') },
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS ?? null,
      maxConnectionsPerAddress: e.HTTP_MAX_CONNECTIONS_PER_ADDRESS,
    },
  };
}
