/**
 * Settings of the Microsoft Graph mail adapter: read from the environment once at start-up, validated with zod,
 * typed, and refused with a message naming the variable (STYLE.md 13).
 *
 * This module imports neither the Graph client nor `@azure/identity`, so the bot's configuration can use it
 * without loading them.
 */
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { z } from 'zod';
import { AppError } from '../../../common/app-error';
import { isMailAddress } from '../mail.port';

/**
 * A secret setting (client secret) that does not print itself: `JSON.stringify`, `util.inspect`, template strings
 * and pino all see `[redacted]`. Call {@link SecretValue.reveal} only where the credential is built.
 */
export class SecretValue {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The secret itself, for the credential constructor only. */
  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}

/** How the adapter proves who it is to Microsoft Entra ID (app-only, OAuth 2.0 client credentials). */
export type GraphCredentialConfig =
  | { kind: 'client-secret'; tenantId: string; clientId: string; clientSecret: SecretValue }
  | {
      kind: 'client-certificate';
      tenantId: string;
      clientId: string;
      /** PEM file holding the unencrypted private key and the certificate (as `@azure/identity` reads it). */
      certificatePath: string;
    }
  | {
      kind: 'managed-identity';
      /** Client id of a user-assigned managed identity; absent = the system-assigned identity. */
      clientId?: string;
    };

type GraphCredentialKind = GraphCredentialConfig['kind'];

/**
 * The app registration and endpoints every app-only Graph caller of this service shares (mail, directory): one
 * tenant, one application, one Graph cloud.
 */
export interface GraphAppConfig {
  credential: GraphCredentialConfig;
  /** Graph service root without the version, https only, e.g. `https://graph.microsoft.com`. */
  baseUrl: string;
  /** Entra ID authority host, https only, e.g. `https://login.microsoftonline.com`. */
  authorityHost: string;
}

/** The typed settings of the Graph mail adapter. */
export interface GraphMailConfig extends GraphAppConfig {
  /** The mailbox that sends: its user principal name / SMTP address, or its Entra object id (GUID). */
  sender: string;
  /** Keep a copy of every message in the sender's Sent Items (Graph `saveToSentItems`). */
  saveToSentItems: boolean;
  /** Sends in flight at once for the sender mailbox (Exchange Online allows 4 per app per mailbox). */
  maxConcurrency: number;
  /** Retries of one send after 429 or 503. */
  maxRetries: number;
  /** Longest wait before one retry, in seconds; a longer `Retry-After` ends the send as retryable. */
  maxRetryWaitSeconds: number;
  /** Time limit of one HTTP attempt, in seconds. */
  requestTimeoutSeconds: number;
}

/** The environment variable behind each setting, for messages that name the setting. */
export const GRAPH_ENV = {
  credential: 'GRAPH_CREDENTIAL',
  tenantId: 'GRAPH_TENANT_ID',
  clientId: 'GRAPH_CLIENT_ID',
  clientSecret: 'GRAPH_CLIENT_SECRET',
  clientSecretFile: 'GRAPH_CLIENT_SECRET_FILE',
  certificatePath: 'GRAPH_CLIENT_CERTIFICATE_PATH',
  sender: 'GRAPH_SENDER',
  saveToSentItems: 'GRAPH_SAVE_TO_SENT_ITEMS',
  baseUrl: 'GRAPH_BASE_URL',
  authorityHost: 'GRAPH_AUTHORITY_HOST',
  maxConcurrency: 'GRAPH_MAX_CONCURRENCY',
  maxRetries: 'GRAPH_MAX_RETRIES',
  maxRetryWaitSeconds: 'GRAPH_MAX_RETRY_WAIT_SECONDS',
  requestTimeoutSeconds: 'GRAPH_REQUEST_TIMEOUT_SECONDS',
} as const;

/** Defaults: the global Microsoft cloud. */
export const GRAPH_DEFAULTS = {
  baseUrl: 'https://graph.microsoft.com',
  authorityHost: 'https://login.microsoftonline.com',
  saveToSentItems: false,
  maxConcurrency: 4,
  maxRetries: 3,
  maxRetryWaitSeconds: 30,
  requestTimeoutSeconds: 30,
} as const;

/**
 * Microsoft's public authority hosts. For any other host (a sovereign-cloud alias, a test server) the credential
 * skips instance discovery, which would otherwise ask login.microsoftonline.com about it.
 */
export const KNOWN_AUTHORITY_HOSTS = ['login.microsoftonline.com', 'login.microsoftonline.us', 'login.chinacloudapi.cn', 'login.partner.microsoftonline.cn'] as const;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** An https URL with no path, query or credentials; returns its origin. */
const httpsOrigin = z
  .string()
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return u.protocol === 'https:' && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username && !u.password;
      } catch {
        return false;
      }
    },
    { error: 'must be an https URL with no path, e.g. https://graph.microsoft.com' },
  )
  .transform((s) => new URL(s).origin);

const intIn = (min: number, max: number) =>
  z.coerce.number({ error: `must be a whole number from ${min} to ${max}` }).int({ error: `must be a whole number from ${min} to ${max}` })
    .min(min, { error: `must be a whole number from ${min} to ${max}` })
    .max(max, { error: `must be a whole number from ${min} to ${max}` });

const CREDENTIAL_KINDS = ['client-secret', 'client-certificate', 'managed-identity'] as const;

/** Settings of the app registration and endpoints (shared by every Graph caller); see {@link GraphAppConfig}. */
const appFields = {
  GRAPH_CREDENTIAL: z.enum(CREDENTIAL_KINDS, { error: `must be one of ${CREDENTIAL_KINDS.join(', ')}` }).optional(),
  GRAPH_TENANT_ID: z
    .string()
    .refine((s) => GUID.test(s) || DOMAIN.test(s), {
      error: 'must be the directory (tenant) id, a GUID, or a verified domain such as contoso.onmicrosoft.com',
    })
    .optional(),
  GRAPH_CLIENT_ID: z.string().regex(GUID, { error: 'must be the application (client) id, a GUID' }).optional(),
  GRAPH_CLIENT_SECRET: z.string().min(1).optional(),
  GRAPH_CLIENT_SECRET_FILE: z.string().min(1).optional(),
  GRAPH_CLIENT_CERTIFICATE_PATH: z.string().min(1).optional(),
  GRAPH_BASE_URL: httpsOrigin.default(GRAPH_DEFAULTS.baseUrl),
  GRAPH_AUTHORITY_HOST: httpsOrigin.default(GRAPH_DEFAULTS.authorityHost),
};

type AppEnv = z.output<z.ZodObject<typeof appFields>>;

/**
 * Build the credential from the app settings, adding an issue (named by the variable) for each one missing.
 * `GRAPH_CLIENT_SECRET_FILE` is read here (first line, trimmed).
 */
function credentialFrom(e: AppEnv, ctx: z.RefinementCtx): GraphCredentialConfig | undefined {
  const need = (key: keyof AppEnv & string, why: string) => {
    if (e[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `is missing: ${why}` });
  };
  need('GRAPH_CREDENTIAL', `set ${CREDENTIAL_KINDS.join(', ')}`);
  let credential: GraphCredentialConfig | undefined;
  switch (e.GRAPH_CREDENTIAL) {
    case 'client-secret': {
      need('GRAPH_TENANT_ID', 'the directory (tenant) id is needed for a client secret');
      need('GRAPH_CLIENT_ID', 'the application (client) id is needed for a client secret');
      if (e.GRAPH_CLIENT_SECRET !== undefined && e.GRAPH_CLIENT_SECRET_FILE !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['GRAPH_CLIENT_SECRET_FILE'], message: 'set GRAPH_CLIENT_SECRET or GRAPH_CLIENT_SECRET_FILE, not both' });
      }
      let secret = e.GRAPH_CLIENT_SECRET;
      if (secret === undefined && e.GRAPH_CLIENT_SECRET_FILE !== undefined) {
        try {
          secret = readFileSync(e.GRAPH_CLIENT_SECRET_FILE, 'utf8').split(/\r?\n/)[0]!.trim();
          if (!secret) ctx.addIssue({ code: 'custom', path: ['GRAPH_CLIENT_SECRET_FILE'], message: 'the file is empty' });
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['GRAPH_CLIENT_SECRET_FILE'], message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
        }
      } else if (secret === undefined) {
        ctx.addIssue({ code: 'custom', path: ['GRAPH_CLIENT_SECRET'], message: 'is missing: set GRAPH_CLIENT_SECRET or GRAPH_CLIENT_SECRET_FILE for GRAPH_CREDENTIAL=client-secret' });
      }
      if (e.GRAPH_TENANT_ID && e.GRAPH_CLIENT_ID && secret) {
        credential = { kind: 'client-secret', tenantId: e.GRAPH_TENANT_ID, clientId: e.GRAPH_CLIENT_ID, clientSecret: new SecretValue(secret) };
      }
      break;
    }
    case 'client-certificate':
      need('GRAPH_TENANT_ID', 'the directory (tenant) id is needed for a client certificate');
      need('GRAPH_CLIENT_ID', 'the application (client) id is needed for a client certificate');
      need('GRAPH_CLIENT_CERTIFICATE_PATH', 'the PEM file with the private key and certificate is needed for GRAPH_CREDENTIAL=client-certificate');
      if (e.GRAPH_TENANT_ID && e.GRAPH_CLIENT_ID && e.GRAPH_CLIENT_CERTIFICATE_PATH) {
        credential = { kind: 'client-certificate', tenantId: e.GRAPH_TENANT_ID, clientId: e.GRAPH_CLIENT_ID, certificatePath: e.GRAPH_CLIENT_CERTIFICATE_PATH };
      }
      break;
    case 'managed-identity':
      credential = { kind: 'managed-identity', ...(e.GRAPH_CLIENT_ID ? { clientId: e.GRAPH_CLIENT_ID } : {}) };
      break;
    case undefined:
      break;
  }
  return credential;
}

/**
 * Schema of the app registration and endpoints alone (no sender); parses to a {@link GraphAppConfig}.
 *
 * Every issue's `path` is the variable's name.
 */
export const GraphAppConfigSchema = z.object(appFields).transform((e, ctx): GraphAppConfig => {
  const credential = credentialFrom(e, ctx);
  if (!credential) return z.NEVER;
  return { credential, baseUrl: e.GRAPH_BASE_URL, authorityHost: e.GRAPH_AUTHORITY_HOST };
});

/**
 * Schema of the Graph mail adapter's environment variables; parses to a {@link GraphMailConfig}.
 *
 * Every issue's `path` is the variable's name. `GRAPH_CLIENT_SECRET_FILE` is read here (first line, trimmed).
 */
export const GraphMailConfigSchema = z
  .object({
    ...appFields,
    GRAPH_SENDER: z
      .string()
      .refine((s) => isMailAddress(s) || GUID.test(s), { error: 'must be the sender mailbox address (user principal name) or its object id (GUID)' })
      .optional(),
    GRAPH_SAVE_TO_SENT_ITEMS: bool.default(GRAPH_DEFAULTS.saveToSentItems),
    GRAPH_MAX_CONCURRENCY: intIn(1, 4).default(GRAPH_DEFAULTS.maxConcurrency),
    GRAPH_MAX_RETRIES: intIn(0, 5).default(GRAPH_DEFAULTS.maxRetries),
    GRAPH_MAX_RETRY_WAIT_SECONDS: intIn(1, 120).default(GRAPH_DEFAULTS.maxRetryWaitSeconds),
    GRAPH_REQUEST_TIMEOUT_SECONDS: intIn(1, 120).default(GRAPH_DEFAULTS.requestTimeoutSeconds),
  })
  .transform((e, ctx): GraphMailConfig => {
    if (e.GRAPH_SENDER === undefined) {
      ctx.addIssue({ code: 'custom', path: ['GRAPH_SENDER'], message: 'is missing: set the sender mailbox address (or its object id)' });
    }
    const credential = credentialFrom(e, ctx);
    if (!credential || !e.GRAPH_SENDER) return z.NEVER;
    return {
      credential,
      sender: e.GRAPH_SENDER,
      saveToSentItems: e.GRAPH_SAVE_TO_SENT_ITEMS,
      baseUrl: e.GRAPH_BASE_URL,
      authorityHost: e.GRAPH_AUTHORITY_HOST,
      maxConcurrency: e.GRAPH_MAX_CONCURRENCY,
      maxRetries: e.GRAPH_MAX_RETRIES,
      maxRetryWaitSeconds: e.GRAPH_MAX_RETRY_WAIT_SECONDS,
      requestTimeoutSeconds: e.GRAPH_REQUEST_TIMEOUT_SECONDS,
    };
  });

/** Parse the GRAPH_* variables of `env` (empty values count as unset) or throw `CONFIG.INVALID` titled `title`. */
function parseGraphEnv<T>(schema: z.ZodType<T>, env: Record<string, string | undefined>, title: string): T {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('GRAPH_') && v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(environment)'}: ${i.message}`);
    throw new AppError('CONFIG.INVALID', `${title}:\n  ${lines.join('\n  ')}`, {
      meta: { settings: parsed.error.issues.map((i) => i.path.map(String).join('.')).join(',') },
    });
  }
  return parsed.data;
}

/**
 * Validate the Graph settings in an environment.
 *
 * @param env - usually `process.env`; empty values count as unset
 * @returns the typed settings
 * @throws AppError `CONFIG.INVALID` whose message names every offending variable and why (never a value)
 */
export function loadGraphMailConfig(env: Record<string, string | undefined>): GraphMailConfig {
  return parseGraphEnv(GraphMailConfigSchema, env, 'Invalid Microsoft Graph mail configuration');
}

/**
 * Validate only the app registration and endpoints (GRAPH_CREDENTIAL, GRAPH_TENANT_ID, GRAPH_CLIENT_ID,
 * GRAPH_CLIENT_SECRET / _FILE, GRAPH_CLIENT_CERTIFICATE_PATH, GRAPH_BASE_URL, GRAPH_AUTHORITY_HOST), for a Graph
 * caller other than mail (the directory lookup); the mail-only settings such as GRAPH_SENDER are not read.
 *
 * @param env - usually `process.env`; empty values count as unset
 * @param purpose - what the settings are for, in the error's title, e.g. `directory lookup`
 * @returns the typed settings
 * @throws AppError `CONFIG.INVALID` whose message names every offending variable and why (never a value)
 */
export function loadGraphAppConfig(env: Record<string, string | undefined>, purpose: string): GraphAppConfig {
  return parseGraphEnv(GraphAppConfigSchema, env, `Invalid Microsoft Graph ${purpose} configuration`);
}

/** The OAuth 2.0 scope for app-only Graph calls: the Graph origin plus `/.default` (all granted application permissions). */
export function graphScope(config: Pick<GraphAppConfig, 'baseUrl'>): string {
  return `${config.baseUrl}/.default`;
}
