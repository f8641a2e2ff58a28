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
 *   the bot is installed in the team replaces both;
 * - `RA_TEAMS` (instead of `RA_MEMBER_IDS` and `RA_CHANNEL_ID`): several RA
 *   teams as JSON, each with its members, its channel and the email domains of
 *   the people whose cases it takes; the first is the default (see
 *   {@link loadRaDeskConfig}). A case goes to one team; only that team's members
 *   act on it, and its card goes to that team's channel.
 *
 * The role of a clicker is decided from their Entra object id only (Teams
 * `from.aadObjectId`), never from a name or from anything the card sends.
 */
import { z } from 'zod';
import { AppError } from '../../../common/app-error';

/** One RA team: its members, its channel, and whose cases it takes. */
export interface RaTeam {
  /** Shown on reports and stored on its cases (1-60 characters). */
  name: string;
  /** Entra object ids (lower-case) of its members. */
  memberIds: readonly string[];
  /** Its channel from configuration, or null (then a reference learned on install is used: first team only). */
  channel: { conversationId: string; serviceUrl: string } | null;
  /** Email domains (lower-case) of the people whose cases it takes; a sub-domain matches. Empty: none by domain. */
  emailDomains: readonly string[];
}

/** The RA desk's settings. */
export interface RaDeskConfig {
  /** Entra object ids (lower-case) of RA members of every team. */
  raMemberIds: readonly string[];
  /** Entra object ids (lower-case) of helpdesk members. */
  helpdeskMemberIds: readonly string[];
  /** The first team's channel from configuration, or null (then only a reference learned on install is used). */
  channel: { conversationId: string; serviceUrl: string } | null;
  /**
   * The RA teams, the first being the default (cases whose person matches no team's domains go to it).
   * One team, "RA desk", from `RA_MEMBER_IDS` and `RA_CHANNEL_ID` unless `RA_TEAMS` lists several.
   */
  teams: readonly RaTeam[];
}

/** Name of the one team `RA_MEMBER_IDS` / `RA_CHANNEL_ID` configure (the report's team). */
export const DEFAULT_RA_TEAM = 'RA desk';

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
  const helpdeskMemberIds = idList('HELPDESK_MEMBER_IDS', env['HELPDESK_MEMBER_IDS']);
  const teamsJson = env['RA_TEAMS']?.trim();
  if (teamsJson) {
    if (env['RA_MEMBER_IDS']?.trim() || env['RA_CHANNEL_ID']?.trim()) throw new AppError('CONFIG.INVALID', 'RA_TEAMS: set either RA_TEAMS or RA_MEMBER_IDS/RA_CHANNEL_ID, not both');
    const teams = parseTeams(teamsJson);
    return { raMemberIds: [...new Set(teams.flatMap((t) => t.memberIds))], helpdeskMemberIds, channel: teams[0]!.channel, teams };
  }
  const raMemberIds = idList('RA_MEMBER_IDS', env['RA_MEMBER_IDS']);
  const channelId = env['RA_CHANNEL_ID']?.trim() ?? '';
  const channel = channelId ? { conversationId: channelIdOf('RA_CHANNEL_ID', channelId), serviceUrl: serviceUrlOf('RA_CHANNEL_SERVICE_URL', env['RA_CHANNEL_SERVICE_URL']) } : null;
  if (!channel) serviceUrlOf('RA_CHANNEL_SERVICE_URL', env['RA_CHANNEL_SERVICE_URL']);
  return { raMemberIds, helpdeskMemberIds, channel, teams: [{ name: DEFAULT_RA_TEAM, memberIds: raMemberIds, channel, emailDomains: [] }] };
}

function channelIdOf(name: string, channelId: string): string {
  if (channelId.length > 300 || /[\u0000-\u001f\s]/.test(channelId)) {
    throw new AppError('CONFIG.INVALID', `${name}: must be a Teams conversation id such as 19:abc@thread.tacv2 (no spaces, at most 300 characters)`);
  }
  return channelId;
}

function serviceUrlOf(name: string, value: string | undefined): string {
  const serviceUrl = value?.trim() || TEAMS_SERVICE_URL;
  let url: URL;
  try {
    url = new URL(serviceUrl);
  } catch {
    throw new AppError('CONFIG.INVALID', `${name}: must be a URL such as https://smba.trafficmanager.net/teams/`);
  }
  const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new AppError('CONFIG.INVALID', `${name}: must use https (http only on loopback, for tests)`);
  }
  return serviceUrl;
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

const teamSchema = z
  .object({
    name: z.string().trim().min(1, { error: 'is empty' }).max(60, { error: 'is longer than 60 characters' }),
    memberIds: z.array(z.string()).min(1, { error: 'lists no member' }),
    channelId: z.string().trim().min(1, { error: 'is empty' }),
    serviceUrl: z.string().optional(),
    emailDomains: z.array(z.string()).default([]),
  })
  .strict();

/**
 * Read `RA_TEAMS`: a JSON array of teams, e.g.
 * `[{"name":"North RA","memberIds":["<guid>"],"channelId":"19:n@thread.tacv2","emailDomains":["north.nhs.net"]},
 *   {"name":"South RA","memberIds":["<guid>"],"channelId":"19:s@thread.tacv2"}]`
 * (`serviceUrl` optional, as `RA_CHANNEL_SERVICE_URL`). The first team is the default.
 */
function parseTeams(json: string): RaTeam[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new AppError('CONFIG.INVALID', 'RA_TEAMS: must be a JSON array of teams such as [{"name":"North RA","memberIds":["<Entra object id>"],"channelId":"19:abc@thread.tacv2","emailDomains":["north.nhs.net"]}]');
  }
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 20) throw new AppError('CONFIG.INVALID', 'RA_TEAMS: must be a JSON array of 1 to 20 teams');
  const teams = raw.map((t, i): RaTeam => {
    const r = teamSchema.safeParse(t);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new AppError('CONFIG.INVALID', `RA_TEAMS[${i}].${(issue?.path ?? []).map(String).join('.') || 'team'}: ${issue?.message ?? 'invalid'}`);
    }
    const domains = r.data.emailDomains.map((d) => d.trim().toLowerCase().replace(/^@/, ''));
    const bad = domains.find((d) => !DOMAIN.test(d));
    if (bad !== undefined) throw new AppError('CONFIG.INVALID', `RA_TEAMS[${i}].emailDomains: "${bad.slice(0, 60)}" is not a domain such as north.nhs.net`);
    return {
      name: r.data.name,
      memberIds: idList(`RA_TEAMS[${i}].memberIds`, r.data.memberIds.join(',')),
      channel: { conversationId: channelIdOf(`RA_TEAMS[${i}].channelId`, r.data.channelId), serviceUrl: serviceUrlOf(`RA_TEAMS[${i}].serviceUrl`, r.data.serviceUrl) },
      emailDomains: [...new Set(domains)],
    };
  });
  const names = teams.map((t) => t.name.toLowerCase());
  if (new Set(names).size !== names.length) throw new AppError('CONFIG.INVALID', 'RA_TEAMS: team names must differ');
  const channels = teams.map((t) => t.channel!.conversationId);
  if (new Set(channels).size !== channels.length) throw new AppError('CONFIG.INVALID', 'RA_TEAMS: each team needs its own channel');
  return teams;
}

/**
 * The team that takes a person's cases: the first whose email domains match the person's address (the
 * domain or a sub-domain of it), else the first team.
 *
 * @param config - the RA desk's settings
 * @param email - the person's registered email, or null when unknown
 * @returns the team
 */
export function teamForEmail(config: Pick<RaDeskConfig, 'teams'>, email: string | null): RaTeam {
  const domain = email?.trim().toLowerCase().split('@')[1] ?? '';
  const found = domain ? config.teams.find((t) => t.emailDomains.some((d) => domain === d || domain.endsWith(`.${d}`))) : undefined;
  return found ?? config.teams[0]!;
}

/**
 * A team by the name stored on a case.
 *
 * @returns the team, or the first team when the name is unknown (configuration changed since)
 */
export function teamNamed(config: Pick<RaDeskConfig, 'teams'>, name: unknown): RaTeam {
  return (typeof name === 'string' && config.teams.find((t) => t.name === name)) || config.teams[0]!;
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
