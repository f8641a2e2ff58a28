/**
 * Settings of the directory lookup that prefills registration (issue #3): read from the environment once at
 * start-up, validated with zod, typed, and refused with a message naming the variable (STYLE.md 13).
 *
 * `DIRECTORY=graph` uses the same app registration and Graph cloud as the Graph mail adapter (the GRAPH_*
 * credential and endpoint settings, read by `loadGraphAppConfig`); only the application permission differs
 * (User.Read.All for the lookup, Mail.Send for mail). This module imports neither the Graph client nor
 * `@azure/identity`.
 */
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { loadGraphAppConfig, type GraphAppConfig } from '../mail/graph/graph-mail.config';

/** The directory lookup chosen by configuration. */
export type DirectoryConfig =
  | { kind: 'none' }
  | {
      kind: 'graph';
      /** Credential and endpoints, shared with the Graph mail adapter. */
      graph: GraphAppConfig;
      /** Time limit of one lookup (token and HTTP request together), in seconds. */
      timeoutSeconds: number;
    };

/** The environment variable behind each setting, for messages that name the setting. */
export const DIRECTORY_ENV = {
  kind: 'DIRECTORY',
  timeoutSeconds: 'DIRECTORY_TIMEOUT_SECONDS',
} as const;

/** Defaults: no lookup; a lookup that answers within 5 s, well inside a Teams turn. */
export const DIRECTORY_DEFAULTS = {
  kind: 'none',
  timeoutSeconds: 5,
  /** Longest allowed time limit, in seconds: a slow directory must not hold a Teams turn. */
  maxTimeoutSeconds: 10,
} as const;

const KINDS = ['none', 'graph'] as const;

const timeoutMessage = `must be a whole number of seconds from 1 to ${DIRECTORY_DEFAULTS.maxTimeoutSeconds}`;

/** Schema of the DIRECTORY* variables; every issue's `path` is the variable's name. */
export const DirectoryEnvSchema = z.object({
  DIRECTORY: z.enum(KINDS, { error: `must be one of ${KINDS.join(', ')}` }).default(DIRECTORY_DEFAULTS.kind),
  DIRECTORY_TIMEOUT_SECONDS: z.coerce
    .number({ error: timeoutMessage })
    .int({ error: timeoutMessage })
    .min(1, { error: timeoutMessage })
    .max(DIRECTORY_DEFAULTS.maxTimeoutSeconds, { error: timeoutMessage })
    .default(DIRECTORY_DEFAULTS.timeoutSeconds),
});

/**
 * Validate the directory settings in an environment.
 *
 * @param env - usually `process.env`; empty values count as unset. `DIRECTORY=none|graph` (default none);
 *   `DIRECTORY_TIMEOUT_SECONDS` 1..10 (default 5); for `graph`, the GRAPH_* credential settings of the mail adapter
 *   (GRAPH_CREDENTIAL, GRAPH_TENANT_ID, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET / GRAPH_CLIENT_SECRET_FILE,
 *   GRAPH_CLIENT_CERTIFICATE_PATH, GRAPH_BASE_URL, GRAPH_AUTHORITY_HOST); GRAPH_SENDER is not needed
 * @returns `{ kind: 'none' }` or `{ kind: 'graph', graph, timeoutSeconds }`
 * @throws AppError `CONFIG.INVALID` whose message names every offending variable and why (never a value)
 */
export function loadDirectoryConfig(env: Record<string, string | undefined>): DirectoryConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('DIRECTORY') && v !== undefined && v !== ''));
  const parsed = DirectoryEnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(environment)'}: ${i.message}`);
    throw new AppError('CONFIG.INVALID', `Invalid directory lookup configuration:\n  ${lines.join('\n  ')}`, {
      meta: { settings: parsed.error.issues.map((i) => i.path.map(String).join('.')).join(',') },
    });
  }
  const e = parsed.data;
  if (e.DIRECTORY === 'none') return { kind: 'none' };
  return {
    kind: 'graph',
    graph: loadGraphAppConfig(env, `directory lookup (${DIRECTORY_ENV.kind}=graph)`),
    timeoutSeconds: e.DIRECTORY_TIMEOUT_SECONDS,
  };
}
