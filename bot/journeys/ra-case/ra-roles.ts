/**
 * Who may act on RA cases, from configuration (issue #12; DESIGN.md "Trust
 * boundaries": RA and helpdesk actions check the actor's role).
 *
 * Settings (environment, read once at start-up):
 * - `RA_MEMBER_IDS`: comma-separated Entra object ids of RA team members;
 * - `HELPDESK_MEMBER_IDS`: comma-separated Entra object ids of helpdesk staff;
 * - `RA_CHANNEL_ID`: the Teams conversation id of the RA team's channel
 *   (`19:...@thread.tacv2`), where case cards are posted;
 * - `RA_CHANNEL_SERVICE_URL`: the Bot Framework service URL for that channel
 *   (default `https://smba.trafficmanager.net/teams/`); a reference learned when
 *   the bot is installed in the team replaces both.
 *
 * The role of a clicker is decided from their Entra object id only (Teams
 * `from.aadObjectId`), never from a name or from anything the card sends.
 */
import { AppError } from '../../../common/app-error';

/** The RA desk's settings. */
export interface RaDeskConfig {
  /** Entra object ids (lower-case) of RA members. */
  raMemberIds: readonly string[];
  /** Entra object ids (lower-case) of helpdesk members. */
  helpdeskMemberIds: readonly string[];
  /** The RA channel from configuration, or null (then only a reference learned on install is used). */
  channel: { conversationId: string; serviceUrl: string } | null;
}

/** Default Bot Framework service URL for Teams. */
const TEAMS_SERVICE_URL = 'https://smba.trafficmanager.net/teams/';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Most ids per list (an Adaptive Card `refresh.userIds` takes at most 60; more members should use a group later). */
const MAX_MEMBERS = 60;

function idList(name: string, value: string | undefined): string[] {
  const ids = (value ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
  for (const id of ids) {
    if (!GUID.test(id)) throw new AppError('CONFIG.INVALID', `${name}: "${id.slice(0, 60)}" is not an Entra object id (a GUID such as 2f1c7d1e-0a5b-4c9e-9f0e-6a1b2c3d4e5f)`);
  }
  if (ids.length > MAX_MEMBERS) throw new AppError('CONFIG.INVALID', `${name}: ${ids.length} ids; at most ${MAX_MEMBERS} are supported`);
  return [...new Set(ids)];
}

/**
 * Read the RA desk's settings.
 *
 * @param env - usually `process.env`
 * @returns the settings; empty member lists when unset (then nobody may act on a case)
 * @throws AppError `CONFIG.INVALID` naming the setting and what is wrong with it
 */
export function loadRaDeskConfig(env: Record<string, string | undefined>): RaDeskConfig {
  const raMemberIds = idList('RA_MEMBER_IDS', env['RA_MEMBER_IDS']);
  const helpdeskMemberIds = idList('HELPDESK_MEMBER_IDS', env['HELPDESK_MEMBER_IDS']);
  const channelId = env['RA_CHANNEL_ID']?.trim() ?? '';
  if (channelId && (channelId.length > 300 || /[\u0000-\u001f\s]/.test(channelId))) {
    throw new AppError('CONFIG.INVALID', 'RA_CHANNEL_ID: must be a Teams conversation id such as 19:abc@thread.tacv2 (no spaces, at most 300 characters)');
  }
  const serviceUrl = env['RA_CHANNEL_SERVICE_URL']?.trim() || TEAMS_SERVICE_URL;
  let url: URL;
  try {
    url = new URL(serviceUrl);
  } catch {
    throw new AppError('CONFIG.INVALID', 'RA_CHANNEL_SERVICE_URL: must be a URL such as https://smba.trafficmanager.net/teams/');
  }
  const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new AppError('CONFIG.INVALID', 'RA_CHANNEL_SERVICE_URL: must use https (http only on loopback, for tests)');
  }
  return { raMemberIds, helpdeskMemberIds, channel: channelId ? { conversationId: channelId, serviceUrl } : null };
}

/** The ids a Teams sender is known by (Entra object id first). */
export interface SenderIds {
  aadObjectId: string | null;
}

/**
 * The role of a sender.
 *
 * @param config - the RA desk's settings
 * @param sender - the sender's Entra object id (Teams `from.aadObjectId`); null = none (no role)
 * @returns `ra` for RA members (also when listed as helpdesk), `helpdesk`, or `none`
 */
export function roleOf(config: Pick<RaDeskConfig, 'raMemberIds' | 'helpdeskMemberIds'>, sender: SenderIds): 'ra' | 'helpdesk' | 'none' {
  const id = sender.aadObjectId?.trim().toLowerCase();
  if (!id) return 'none';
  if (config.raMemberIds.includes(id)) return 'ra';
  if (config.helpdeskMemberIds.includes(id)) return 'helpdesk';
  return 'none';
}
