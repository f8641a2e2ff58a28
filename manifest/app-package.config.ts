/**
 * Settings for building the Teams app package (`npm run package`): read from the
 * environment (and an optional env file), validated with zod, and refused with a
 * message naming each setting that is missing or wrong (STYLE.md 13).
 */
import { z } from 'zod';
import { AppError } from '../common/app-error';

/** The environment variables `npm run package` reads, with what each one fills. */
export const APP_PACKAGE_SETTINGS = {
  MicrosoftAppId: 'the Azure Bot\'s Microsoft App ID (a GUID): bots[0].botId, and the app id unless TEAMS_APP_ID is set',
  TEAMS_APP_ID: 'optional: the Teams app id (a GUID), when it must differ from MicrosoftAppId',
  BOT_PUBLIC_URL: 'the https:// address where Teams reaches the bot (its messaging endpoint is this plus /api/messages): validDomains',
  TEAMS_APP_VERSION: 'the app version, MAJOR.MINOR.PATCH; raise it for every upload',
  TEAMS_APP_DEVELOPER_NAME: 'who publishes the app, at most 32 characters: developer.name',
  TEAMS_APP_WEBSITE_URL: 'an https:// support page: developer.websiteUrl',
  TEAMS_APP_PRIVACY_URL: 'an https:// privacy notice: developer.privacyUrl',
  TEAMS_APP_TERMS_URL: 'an https:// terms of use page: developer.termsOfUseUrl',
} as const;

export type AppPackageSetting = keyof typeof APP_PACKAGE_SETTINGS;

/** GUID, as the Teams manifest schema's `definitions.guid`. */
const GUID = /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;
/** Three dot-separated numbers, as the Teams manifest schema's `definitions.semver` (Teams refuses pre-release tags). */
const VERSION = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;

const guid = z.string().regex(GUID, 'must be a GUID like 0b6a3f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b');

/** An absolute https:// URL with a host and no user name or password. */
function httpsUrl(what: string) {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be an absolute https:// URL (${what}); got something that is not a URL` });
      return;
    }
    if (url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `must start with https:// (${what}); got ${url.protocol}//` });
    else if (url.username || url.password) ctx.addIssue({ code: 'custom', message: `must not carry a user name or password (${what})` });
  });
}

const EnvSchema = z.object({
  MicrosoftAppId: guid,
  TEAMS_APP_ID: guid.optional(),
  BOT_PUBLIC_URL: httpsUrl('the public address of the bot').superRefine((value, ctx) => {
    if (!URL.canParse(value)) return;
    const url = new URL(value);
    if (url.search || url.hash) ctx.addIssue({ code: 'custom', message: 'must not have a ?query or #fragment: give the address where the bot is served' });
    const host = url.hostname;
    if (host === 'localhost' || host.endsWith('.localhost') || /^[0-9.]+$/.test(host) || host.startsWith('[')) {
      ctx.addIssue({ code: 'custom', message: `must name a public DNS host that Teams can reach, not ${host}` });
    }
  }),
  TEAMS_APP_VERSION: z.string().regex(VERSION, 'must be MAJOR.MINOR.PATCH, three numbers such as 1.0.0'),
  TEAMS_APP_DEVELOPER_NAME: z.string().trim().min(1, 'must not be empty').max(32, 'must be at most 32 characters (Teams manifest developer.name)'),
  TEAMS_APP_WEBSITE_URL: httpsUrl('the support page'),
  TEAMS_APP_PRIVACY_URL: httpsUrl('the privacy notice'),
  TEAMS_APP_TERMS_URL: httpsUrl('the terms of use'),
});

/** The values that fill the manifest template's `${{name}}` placeholders. */
export interface AppPackageConfig {
  /** Teams app id (manifest `id`), a GUID. */
  appId: string;
  /** The Azure Bot's Microsoft App ID (manifest `bots[0].botId`), a GUID. */
  botId: string;
  /** App version, MAJOR.MINOR.PATCH. */
  version: string;
  developerName: string;
  websiteUrl: string;
  privacyUrl: string;
  termsOfUseUrl: string;
  /** Host (and `:port` when not 443) of BOT_PUBLIC_URL, for `validDomains`. */
  botDomain: string;
  /** BOT_PUBLIC_URL + `/api/messages`: the messaging endpoint to set on the Azure Bot. */
  messagingEndpoint: string;
}

/**
 * Validate the settings and derive the values the manifest needs.
 *
 * @param env - usually `process.env` merged over an env file; empty strings count as missing
 * @returns the typed values for the manifest template
 * @throws AppError `CONFIG.INVALID` whose message has one line per offending setting: `NAME: what is wrong`
 */
export function loadAppPackageConfig(env: Record<string, string | undefined>): AppPackageConfig {
  const names = Object.keys(APP_PACKAGE_SETTINGS);
  const relevant = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => names.includes(k) && v !== undefined && v.trim() !== ''),
  );
  const parsed = EnvSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '(environment)');
      const missing = i.code === 'invalid_type' && relevant[name] === undefined;
      return missing ? `${name}: must be set (${APP_PACKAGE_SETTINGS[name as AppPackageSetting] ?? ''})` : `${name}: ${i.message}`;
    });
    throw new AppError('CONFIG.INVALID', `Invalid app package settings:\n  ${lines.join('\n  ')}`, {
      meta: { settings: [...new Set(parsed.error.issues.map((i) => String(i.path[0])))].join(',') },
    });
  }
  const e = parsed.data;
  const url = new URL(e.BOT_PUBLIC_URL);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  return {
    appId: e.TEAMS_APP_ID ?? e.MicrosoftAppId,
    botId: e.MicrosoftAppId,
    version: e.TEAMS_APP_VERSION,
    developerName: e.TEAMS_APP_DEVELOPER_NAME,
    websiteUrl: e.TEAMS_APP_WEBSITE_URL,
    privacyUrl: e.TEAMS_APP_PRIVACY_URL,
    termsOfUseUrl: e.TEAMS_APP_TERMS_URL,
    botDomain: url.host,
    messagingEndpoint: `${base}/api/messages`,
  };
}
