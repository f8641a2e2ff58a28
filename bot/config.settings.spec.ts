/**
 * One validated configuration per process (issue #11): every setting the bot reads is documented in
 * docs/configuration.md, nothing documented is unread, and a wrong value of each is refused at start-up
 * (`loadConfig` throws AppError CONFIG.INVALID) with a message naming the setting and the reason.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../common/app-error';
import { documentedSettings, variablesIn } from '../test/support/settings-doc';
import { loadConfig } from './config';

const ROOT = path.resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'config-settings-'));
const KEY = randomBytes(32).toString('base64');
const GUID_A = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const GUID_B = '11111111-2222-4333-8444-555555555555';
/** A valid environment each case changes. */
const BASE = { SMARTCARD_MASTER_KEY: KEY, SMARTCARD_DATA_DIR: tmp };
/** Graph settings that are valid for client-secret mail. */
const GRAPH = { MAIL_TRANSPORT: 'graph', GRAPH_CREDENTIAL: 'client-secret', GRAPH_TENANT_ID: GUID_A, GRAPH_CLIENT_ID: GUID_B, GRAPH_CLIENT_SECRET: 'not-a-real-secret', GRAPH_SENDER: 'smartcard-assist@trust.example.org' };
/** GOV.UK Notify settings that are valid (the key's secret part is the 'not-a-real-secret' stand-in's UUID form). */
const NOTIFY = { SMS_TRANSPORT: 'notify', NOTIFY_API_KEY: `smartcard_assist_test-${GUID_A}-${GUID_B}`, NOTIFY_SMS_TEMPLATE_ID: GUID_B };
/** A Bot Framework registration that is valid. */
const APP = { MicrosoftAppId: GUID_B, MicrosoftAppType: 'SingleTenant', MicrosoftAppPassword: 'not-a-real-secret', MicrosoftAppTenantId: GUID_A, ALLOWED_TENANTS: GUID_A };

/** bot/config.ts and every module whose `load...Config(env)` it calls. */
function botConfigSources(): string[] {
  const main = path.join(ROOT, 'bot', 'config.ts');
  const src = readFileSync(main, 'utf8');
  const files = [main];
  for (const m of src.matchAll(/import \{[^}]*\bload\w*Config\b[^}]*\} from '(\.[^']+)'/g)) files.push(path.join(ROOT, 'bot', `${m[1]!}.ts`));
  return files;
}

/** What loadConfig says about `env`, or null when it accepts it. */
function refusal(env: Record<string, string | undefined>): string | null {
  try {
    loadConfig(env);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG.INVALID');
    return (err as AppError).message;
  }
}

/** One misconfiguration: the environment (over {@link BASE}), the setting the message must name, and why. */
interface Case {
  env: Record<string, string | undefined>;
  setting: string;
  reason: RegExp;
}

const unreadable = path.join(tmp, 'absent');
const shortKeyFile = path.join(tmp, 'short.key');
writeFileSync(shortKeyFile, 'c2hvcnQ=\n');

const CASES: Case[] = [
  { env: { PORT: '70000' }, setting: 'PORT', reason: /65535/ },
  { env: { PORT: 'http' }, setting: 'PORT', reason: /number/i },
  { env: { HOST: '0.0.0.0' }, setting: 'HOST', reason: /loopback|reachable from other machines/ },
  { env: { SMARTCARD_MASTER_KEY: undefined }, setting: 'SMARTCARD_MASTER_KEY', reason: /must be set/ },
  { env: { SMARTCARD_MASTER_KEY: 'c2hvcnQ=' }, setting: 'SMARTCARD_MASTER_KEY', reason: /32 bytes|base64|hex/ },
  { env: { SMARTCARD_MASTER_KEY: 'ab'.repeat(32) }, setting: 'SMARTCARD_MASTER_KEY', reason: /repeated byte/ },
  { env: { SMARTCARD_MASTER_KEY: undefined, SMARTCARD_MASTER_KEY_FILE: unreadable }, setting: 'SMARTCARD_MASTER_KEY_FILE', reason: /cannot read.*ENOENT/ },
  { env: { SMARTCARD_MASTER_KEY: undefined, SMARTCARD_MASTER_KEY_FILE: shortKeyFile }, setting: 'SMARTCARD_MASTER_KEY_FILE', reason: /32 bytes|base64|hex|decode/ },
  { env: { LOG_LEVEL: 'verbose' }, setting: 'LOG_LEVEL', reason: /fatal|expected one of|Invalid option/i },
  { env: { SHUTDOWN_GRACE_MS: '500' }, setting: 'SHUTDOWN_GRACE_MS', reason: /at least 1000/ },
  { env: { SHUTDOWN_GRACE_MS: 'soon' }, setting: 'SHUTDOWN_GRACE_MS', reason: /whole number of milliseconds/ },
  { env: { OUTBOX_MAX_AGE_HOURS: '-1' }, setting: 'OUTBOX_MAX_AGE_HOURS', reason: /at least 0/ },
  { env: { OUTBOX_MAX_AGE_HOURS: 'a week' }, setting: 'OUTBOX_MAX_AGE_HOURS', reason: /whole number of hours/ },
  { env: { OUTBOX_MAX_FILES: '2.5' }, setting: 'OUTBOX_MAX_FILES', reason: /whole number of messages/ },
  { env: { OUTBOX_PRUNE_INTERVAL_MINUTES: '0' }, setting: 'OUTBOX_PRUNE_INTERVAL_MINUTES', reason: /at least 1/ },
  { env: { BOT_INSTANCE_ID: 'x'.repeat(65) }, setting: 'BOT_INSTANCE_ID', reason: /64|too big|too long/i },
  { env: { MicrosoftAppId: 'my-bot' }, setting: 'MicrosoftAppId', reason: /GUID/ },
  { env: { ...APP, MicrosoftAppType: 'Personal' }, setting: 'MicrosoftAppType', reason: /MultiTenant, SingleTenant or UserAssignedMSI/ },
  { env: { ...APP, MicrosoftAppPassword: undefined }, setting: 'MicrosoftAppPassword', reason: /must be set/ },
  { env: { ...APP, MicrosoftAppType: 'UserAssignedMSI' }, setting: 'MicrosoftAppPassword', reason: /must be empty/ },
  { env: { ...APP, MicrosoftAppTenantId: undefined }, setting: 'MicrosoftAppTenantId', reason: /must be set/ },
  { env: { ...APP, MicrosoftAppTenantId: 'not a tenant' }, setting: 'MicrosoftAppTenantId', reason: /tenant id|GUID/ },
  { env: { ...APP, ALLOWED_TENANTS: undefined }, setting: 'ALLOWED_TENANTS', reason: /must list/ },
  { env: { ...APP, ALLOWED_TENANTS: `${GUID_A},contoso` }, setting: 'ALLOWED_TENANTS', reason: /not a tenant id/ },
  { env: { ALLOW_UNAUTHENTICATED_CHANNEL: 'maybe' }, setting: 'ALLOW_UNAUTHENTICATED_CHANNEL', reason: /expected one of|Invalid option|true/i },
  { env: { ALLOW_UNAUTHENTICATED_CHANNEL: 'false' }, setting: 'ALLOW_UNAUTHENTICATED_CHANNEL', reason: /MicrosoftAppId is empty/ },
  { env: { STORAGE: 'postgres' }, setting: 'STORAGE', reason: /sqlite or mongodb/ },
  { env: { STORAGE: 'mongodb' }, setting: 'MONGODB_URL', reason: /must be set when STORAGE=mongodb/ },
  { env: { STORAGE: 'mongodb', MONGODB_URL: 'postgres://db/x' }, setting: 'MONGODB_URL', reason: /mongodb:\/\// },
  { env: { MONGODB_DATABASE: 'smart card' }, setting: 'MONGODB_DATABASE', reason: /letters, digits/ },
  { env: { MAIL_TRANSPORT: 'smtp' }, setting: 'MAIL_TRANSPORT', reason: /outbox or graph/ },
  { env: { MAIL_FROM: 'nobody' }, setting: 'MAIL_FROM', reason: /email address/ },
  { env: { ...GRAPH, GRAPH_CREDENTIAL: undefined }, setting: 'GRAPH_CREDENTIAL', reason: /is missing/ },
  { env: { ...GRAPH, GRAPH_CREDENTIAL: 'password' }, setting: 'GRAPH_CREDENTIAL', reason: /client-secret, client-certificate, managed-identity/ },
  { env: { ...GRAPH, GRAPH_TENANT_ID: 'not a tenant' }, setting: 'GRAPH_TENANT_ID', reason: /tenant/ },
  { env: { ...GRAPH, GRAPH_CLIENT_ID: 'my-app' }, setting: 'GRAPH_CLIENT_ID', reason: /GUID/ },
  { env: { ...GRAPH, GRAPH_CLIENT_SECRET: undefined }, setting: 'GRAPH_CLIENT_SECRET', reason: /is missing/ },
  { env: { ...GRAPH, GRAPH_CLIENT_SECRET: undefined, GRAPH_CLIENT_SECRET_FILE: unreadable }, setting: 'GRAPH_CLIENT_SECRET_FILE', reason: /cannot read the file \(ENOENT\)/ },
  { env: { ...GRAPH, GRAPH_CREDENTIAL: 'client-certificate', GRAPH_CLIENT_SECRET: undefined }, setting: 'GRAPH_CLIENT_CERTIFICATE_PATH', reason: /is missing|needed/ },
  { env: { ...GRAPH, GRAPH_SENDER: undefined }, setting: 'GRAPH_SENDER', reason: /is missing/ },
  { env: { ...GRAPH, GRAPH_SENDER: 'the mailbox' }, setting: 'GRAPH_SENDER', reason: /address|object id/ },
  { env: { ...GRAPH, GRAPH_SAVE_TO_SENT_ITEMS: 'sometimes' }, setting: 'GRAPH_SAVE_TO_SENT_ITEMS', reason: /true or false/ },
  { env: { ...GRAPH, GRAPH_BASE_URL: 'http://graph.microsoft.com' }, setting: 'GRAPH_BASE_URL', reason: /https URL/ },
  { env: { ...GRAPH, GRAPH_AUTHORITY_HOST: 'https://login.microsoftonline.com/tenant' }, setting: 'GRAPH_AUTHORITY_HOST', reason: /no path/ },
  { env: { ...GRAPH, GRAPH_MAX_CONCURRENCY: '9' }, setting: 'GRAPH_MAX_CONCURRENCY', reason: /1 to 4/ },
  { env: { ...GRAPH, GRAPH_MAX_RETRIES: '-1' }, setting: 'GRAPH_MAX_RETRIES', reason: /0 to 5/ },
  { env: { ...GRAPH, GRAPH_MAX_RETRY_WAIT_SECONDS: '600' }, setting: 'GRAPH_MAX_RETRY_WAIT_SECONDS', reason: /1 to 120/ },
  { env: { ...GRAPH, GRAPH_REQUEST_TIMEOUT_SECONDS: '0' }, setting: 'GRAPH_REQUEST_TIMEOUT_SECONDS', reason: /1 to 120/ },
  { env: { DIRECTORY: 'ldap' }, setting: 'DIRECTORY', reason: /none, graph/ },
  { env: { DIRECTORY_TIMEOUT_SECONDS: '30' }, setting: 'DIRECTORY_TIMEOUT_SECONDS', reason: /1 to 10/ },
  { env: { TIME_ZONE: 'Mars/Olympus_Mons' }, setting: 'TIME_ZONE', reason: /IANA time zone/ },
  { env: { RA_CONTACT: 'x'.repeat(201) }, setting: 'RA_CONTACT', reason: /200|too big|too long/i },
  { env: { APPROVED_EMAIL_DOMAINS: 'nhs' }, setting: 'APPROVED_EMAIL_DOMAINS', reason: /domain like nhs\.net/ },
  { env: { PAIRING_POLL_INTERVAL_SECONDS: '0' }, setting: 'PAIRING_POLL_INTERVAL_SECONDS', reason: />=1|too small/i },
  { env: { COMPANION_COMMAND_TIMEOUT_MS: '100' }, setting: 'COMPANION_COMMAND_TIMEOUT_MS', reason: />=500|too small/i },
  { env: { RA_MEMBER_IDS: 'alice' }, setting: 'RA_MEMBER_IDS', reason: /not an Entra object id/ },
  { env: { HELPDESK_MEMBER_IDS: `${GUID_A},bob` }, setting: 'HELPDESK_MEMBER_IDS', reason: /not an Entra object id/ },
  { env: { RA_CHANNEL_ID: 'the RA channel' }, setting: 'RA_CHANNEL_ID', reason: /conversation id/ },
  { env: { RA_CHANNEL_SERVICE_URL: 'http://smba.example.org/teams/' }, setting: 'RA_CHANNEL_SERVICE_URL', reason: /https/ },
  { env: { RA_TEAMS: 'north' }, setting: 'RA_TEAMS', reason: /JSON array/ },
  { env: { UNLOCK_POLICY: 'portal' }, setting: 'UNLOCK_POLICY', reason: /questions or code-only/ },
  { env: { UNLOCK_CODE_DIGITS: '5' }, setting: 'UNLOCK_CODE_DIGITS', reason: /at least 6/ },
  { env: { UNLOCK_CODE_SINGLE_USE: 'false' }, setting: 'UNLOCK_CODE_SINGLE_USE', reason: /must be true/ },
  { env: { UNLOCK_CODE_TTL_MINUTES: '16' }, setting: 'UNLOCK_CODE_TTL_MINUTES', reason: /1 to 15/ },
  { env: { UNLOCK_CODE_MAX_TRIES: '6' }, setting: 'UNLOCK_CODE_MAX_TRIES', reason: /1 to 5/ },
  { env: { UNLOCK_CODES_PER_HOUR: '4' }, setting: 'UNLOCK_CODES_PER_HOUR', reason: /1 to 3/ },
  { env: { UNLOCK_CODE_CHANNELS: 'email,fax' }, setting: 'UNLOCK_CODE_CHANNELS', reason: /not a channel/ },
  { env: { SMS_TRANSPORT: 'carrier-pigeon' }, setting: 'SMS_TRANSPORT', reason: /outbox or notify/ },
  { env: { ...NOTIFY, NOTIFY_API_KEY: undefined }, setting: 'NOTIFY_API_KEY', reason: /is missing/ },
  { env: { ...NOTIFY, NOTIFY_API_KEY: 'not-a-real-secret' }, setting: 'NOTIFY_API_KEY', reason: /not a GOV\.UK Notify API key/ },
  { env: { ...NOTIFY, NOTIFY_API_KEY: undefined, NOTIFY_API_KEY_FILE: unreadable }, setting: 'NOTIFY_API_KEY_FILE', reason: /cannot read the file \(ENOENT\)/ },
  { env: { ...NOTIFY, NOTIFY_SMS_TEMPLATE_ID: undefined }, setting: 'NOTIFY_SMS_TEMPLATE_ID', reason: /is missing/ },
  { env: { ...NOTIFY, NOTIFY_SMS_TEMPLATE_ID: 'unlock-code' }, setting: 'NOTIFY_SMS_TEMPLATE_ID', reason: /UUID/ },
  { env: { ...NOTIFY, NOTIFY_EMAIL_TEMPLATE_ID: 'unlock-code' }, setting: 'NOTIFY_EMAIL_TEMPLATE_ID', reason: /UUID/ },
  { env: { ...NOTIFY, NOTIFY_BASE_URL: 'http://api.notifications.service.gov.uk' }, setting: 'NOTIFY_BASE_URL', reason: /https URL/ },
  { env: { ...NOTIFY, NOTIFY_MAX_RETRIES: '6' }, setting: 'NOTIFY_MAX_RETRIES', reason: /0 to 5/ },
  { env: { ...NOTIFY, NOTIFY_MAX_RETRY_WAIT_SECONDS: '0' }, setting: 'NOTIFY_MAX_RETRY_WAIT_SECONDS', reason: /1 to 120/ },
  { env: { ...NOTIFY, NOTIFY_REQUEST_TIMEOUT_SECONDS: '600' }, setting: 'NOTIFY_REQUEST_TIMEOUT_SECONDS', reason: /1 to 120/ },
  { env: { HTTP_HEADERS_TIMEOUT_MS: '10' }, setting: 'HTTP_HEADERS_TIMEOUT_MS', reason: />=1000|too small/i },
  { env: { HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '8000' }, setting: 'HTTP_REQUEST_TIMEOUT_MS', reason: /shorter than HTTP_HEADERS_TIMEOUT_MS/ },
  { env: { HTTP_KEEP_ALIVE_TIMEOUT_MS: '0' }, setting: 'HTTP_KEEP_ALIVE_TIMEOUT_MS', reason: />=1000|too small/i },
  { env: { HTTP_MAX_CONNECTIONS: '3' }, setting: 'HTTP_MAX_CONNECTIONS', reason: />=16|too small/i },
  { env: { HTTP_MAX_CONNECTIONS_PER_ADDRESS: '-1' }, setting: 'HTTP_MAX_CONNECTIONS_PER_ADDRESS', reason: />=0|too small/i },
];

/** Settings that take any value (a folder name): nothing to refuse in loadConfig, and why. */
const FREE_FORM: Record<string, string> = {
  SMARTCARD_DATA_DIR: 'any folder name; a folder that cannot be created stops start-up when it is opened',
};

describe('bot settings: documented, read, and each misconfiguration refused by name', () => {
  it('the base environment of the cases is accepted (so each refusal comes from its own change)', () => {
    expect(refusal(BASE)).toBeNull();
    expect(refusal({ ...BASE, ...GRAPH })).toBeNull();
    expect(refusal({ ...BASE, ...APP })).toBeNull();
    expect(refusal({ ...BASE, ...NOTIFY })).toBeNull();
  });

  it('docs/configuration.md lists exactly the variables the bot\'s configuration reads', () => {
    const read = new Set(botConfigSources().flatMap(variablesIn));
    const documented = new Set(documentedSettings('Bot'));
    expect([...read].filter((v) => !documented.has(v)).sort(), 'read but not documented').toEqual([]);
    expect([...documented].filter((v) => !read.has(v)).sort(), 'documented but not read').toEqual([]);
    // The scan found the loaders too (mail, directory, RA desk, shutdown).
    expect(read.has('GRAPH_SENDER') && read.has('DIRECTORY_TIMEOUT_SECONDS') && read.has('SHUTDOWN_GRACE_MS')).toBe(true);
  });

  it('every documented setting has a misconfiguration below, or is free-form', () => {
    const covered = new Set(CASES.map((c) => c.setting));
    expect(documentedSettings('Bot').filter((v) => !covered.has(v) && !(v in FREE_FORM))).toEqual([]);
  });

  it.each(CASES.map((c) => [c.setting, Object.entries(c.env).map(([k, v]) => `${k}=${v === undefined ? '(unset)' : v.slice(0, 40)}`).join(' '), c] as const))('refuses %s (%s)', (_s, _e, c) => {
    const message = refusal({ ...BASE, ...c.env });
    expect(message, 'accepted').not.toBeNull();
    expect(message).toMatch(new RegExp(`(^|[\\s(:])${c.setting}\\b`));
    // The reason is on the line that names the setting.
    const line = message!.split('\n').find((l) => new RegExp(`(^|[\\s(:])${c.setting}\\b`).test(l))!;
    expect(line).toMatch(c.reason);
    // A secret's value is never in the message.
    for (const secret of [KEY, 'not-a-real-secret']) expect(message).not.toContain(secret);
  });
});
