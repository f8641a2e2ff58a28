/**
 * The usage report RA managers ask for (issue #12; the national service's
 * scheduled report of registrations and unlocks): counts over a time range,
 * per RA team, computed from audit entries only (the audit log holds no
 * secret, and every count below is one audited action).
 *
 * What is counted, for entries with `from <= at < to`:
 * - registrations: `registration.completed` and `registration.replaced` (a
 *   person registering again, e.g. with a new card);
 * - self-unlocks: `unlock.completed` that was not RA-assisted;
 * - lockouts: `unlock.self_service_locked`;
 * - RA-assisted unlocks: `unlock.completed` marked assisted (`details.assisted`
 *   true, or a `details.caseRef`), or the person's first `unlock.completed`
 *   after an applied `ra_case.assist_unlock` of a case not closed in between;
 * - cases opened: `ra_case.opened`; cases closed: `ra_case.close` applied
 *   (its `details.outcome` is the close outcome; refused and no-op clicks are
 *   audited under the same action with outcome `refused` / `unchanged` and are
 *   not counted);
 * - the median time from case open to close, over the cases closed in the
 *   range (the open time from the case's `ra_case.opened` entry, else from
 *   `openedAt`, e.g. the stored case's `createdAt`).
 *
 * Entries before `from` are context only (a case opened, an assisted unlock
 * started, before the range); entries at or after `to` are ignored.
 *
 * Teams: one row per RA team, in configuration order (one team, "RA desk",
 * unless `RA_TEAMS` lists several). A case's counts (opened, closed, the
 * median, an RA-assisted unlock of it) go to the team named on its audit
 * entries (`details.team`); a person's counts (registrations, self-unlocks,
 * lockouts, an assisted unlock not tied to a case entry) go to the team their
 * email routes them to (`options.teamOfPerson`). Anything unattributed, or
 * naming a team no longer configured, goes to the first team.
 *
 * Pure: no clock, no store. `usage-report.loader.ts` reads the entries
 * through the storage port.
 */
import type { AuditEntry } from '../../storage/storage.port';

/** A half-open time range, ISO 8601 UTC: `from` inclusive, `to` exclusive. */
export interface ReportRange {
  from: string;
  to: string;
}

/** One team's counts. */
export interface TeamUsage {
  team: string;
  registrations: number;
  selfUnlocks: number;
  lockouts: number;
  raAssistedUnlocks: number;
  casesOpened: number;
  casesClosed: number;
  /** Median of open -> close over the cases closed in the range whose open time is known, in ms; null when none. */
  medianOpenToCloseMs: number | null;
}

export interface UsageReport {
  range: ReportRange;
  teams: TeamUsage[];
}

/** The one RA team's name in reports (see the module note). */
export const DEFAULT_TEAM = 'RA desk';

const REGISTRATION_ACTIONS = new Set(['registration.completed', 'registration.replaced']);

/**
 * Median of a list of numbers.
 *
 * @param values - any order
 * @returns the middle value (odd count), the mean of the two middle values (even count), null for none
 */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const caseRefOf = (e: AuditEntry): string | null => (typeof e.details['caseRef'] === 'string' ? e.details['caseRef'] : null);

/**
 * Count the report from audit entries.
 *
 * @param entries - audit entries (any order) from some time before `range.from` up to `range.to`
 * @param range - the range counted
 * @param options.team - the one team's name when `teams` is not given (default {@link DEFAULT_TEAM})
 * @param options.teams - the RA teams' names in order (the first takes what is unattributed)
 * @param options.teamOfPerson - person id -> team name (where their email routes them)
 * @param options.openedAt - open times of cases (ref -> ISO time) for cases whose `ra_case.opened` entry is not among `entries`
 * @returns one row per team, in order
 */
export function computeUsageReport(
  entries: readonly AuditEntry[],
  range: ReportRange,
  options: { team?: string; teams?: readonly string[]; teamOfPerson?: Readonly<Record<string, string>>; openedAt?: Readonly<Record<string, string>> } = {},
): UsageReport {
  const inRange = (e: AuditEntry) => e.at >= range.from && e.at < range.to;
  const sorted = entries.filter((e) => e.at < range.to).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const names = options.teams && options.teams.length > 0 ? [...options.teams] : [options.team ?? DEFAULT_TEAM];
  const rows = new Map(names.map((team): [string, TeamUsage] => [team, { team, registrations: 0, selfUnlocks: 0, lockouts: 0, raAssistedUnlocks: 0, casesOpened: 0, casesClosed: 0, medianOpenToCloseMs: null }]));
  const first = rows.get(names[0]!)!;
  const rowOf = (team: unknown): TeamUsage => (typeof team === 'string' && rows.get(team)) || first;
  /** A case's team: named on its entries (the first seen); a person's: where their email routes them. */
  const caseTeam = new Map<string, string>();
  const teamOfCase = (e: AuditEntry): TeamUsage => {
    const ref = caseRefOf(e);
    if (ref && typeof e.details['team'] === 'string' && !caseTeam.has(ref)) caseTeam.set(ref, e.details['team']);
    return rowOf(ref ? caseTeam.get(ref) : e.details['team']);
  };
  const teamOfPerson = (e: AuditEntry): TeamUsage => rowOf(e.personId ? options.teamOfPerson?.[e.personId] : undefined);
  const openedAt = new Map<string, string>(Object.entries(options.openedAt ?? {}));
  /** Person id -> case ref of an assisted unlock started and not yet used or closed. */
  const assisting = new Map<string, string>();
  const durations = new Map<TeamUsage, number[]>();
  // Refused and no-op clicks are audited under the same action with outcome `refused` / `unchanged`; an applied
  // action has `applied`, or for a close the close outcome (`attempts_reset`...).
  const applied = (e: AuditEntry) => e.details['outcome'] !== 'refused' && e.details['outcome'] !== 'unchanged';
  for (const e of sorted) {
    const counted = inRange(e);
    switch (e.action) {
      case 'ra_case.opened': {
        const ref = caseRefOf(e);
        const row = teamOfCase(e);
        if (ref && !openedAt.has(ref)) openedAt.set(ref, e.at);
        if (counted) row.casesOpened++;
        break;
      }
      case 'ra_case.assist_unlock':
        if (applied(e)) teamOfCase(e);
        if (applied(e) && e.personId && caseRefOf(e)) assisting.set(e.personId, caseRefOf(e)!);
        break;
      case 'ra_case.close': {
        if (!applied(e)) break;
        const ref = caseRefOf(e);
        const row = teamOfCase(e);
        if (e.personId && ref && assisting.get(e.personId) === ref) assisting.delete(e.personId);
        if (!counted) break;
        row.casesClosed++;
        const opened = ref ? openedAt.get(ref) : undefined;
        if (opened) durations.set(row, [...(durations.get(row) ?? []), Date.parse(e.at) - Date.parse(opened)]);
        break;
      }
      case 'unlock.completed': {
        const marked = e.details['assisted'] === true || typeof e.details['caseRef'] === 'string';
        const viaCase = typeof e.details['caseRef'] === 'string' ? e.details['caseRef'] : e.personId ? assisting.get(e.personId) : undefined;
        const assisted = marked || (!!e.personId && assisting.has(e.personId));
        if (e.personId) assisting.delete(e.personId);
        if (!counted) break;
        if (assisted) (viaCase && caseTeam.has(viaCase) ? rowOf(caseTeam.get(viaCase)) : teamOfPerson(e)).raAssistedUnlocks++;
        else teamOfPerson(e).selfUnlocks++;
        break;
      }
      case 'unlock.self_service_locked':
        if (counted) teamOfPerson(e).lockouts++;
        break;
      default:
        if (counted && REGISTRATION_ACTIONS.has(e.action)) teamOfPerson(e).registrations++;
    }
  }
  for (const row of rows.values()) row.medianOpenToCloseMs = median(durations.get(row) ?? []);
  return { range, teams: [...rows.values()] };
}

/** A duration in words: `45 min`, `3 h 5 min`, `2 d 4 h`; `-` for none. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Column names of the CSV (one line per team). */
const CSV_HEADER = 'team,from,to,registrations,self_unlocks,lockouts,ra_assisted_unlocks,cases_opened,cases_closed,median_open_to_close_minutes';

const csvField = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/**
 * The report as CSV (RFC 4180: a header line, CRLF line ends).
 *
 * @returns the header and one line per team; the median in minutes with one decimal, empty when no case closed
 */
export function usageReportCsv(report: UsageReport): string {
  const lines = report.teams.map((t) =>
    [t.team, report.range.from, report.range.to, t.registrations, t.selfUnlocks, t.lockouts, t.raAssistedUnlocks, t.casesOpened, t.casesClosed, t.medianOpenToCloseMs === null ? '' : (t.medianOpenToCloseMs / 60_000).toFixed(1)]
      .map((v) => csvField(String(v)))
      .join(','),
  );
  return [CSV_HEADER, ...lines].join('\r\n') + '\r\n';
}

/** The counts of one team as label/value pairs, in report order (text and card). */
export function usageFacts(t: TeamUsage): Array<{ title: string; value: string }> {
  return [
    { title: 'Registrations', value: String(t.registrations) },
    { title: 'Self-service unlocks', value: String(t.selfUnlocks) },
    { title: 'Lockouts', value: String(t.lockouts) },
    { title: 'RA-assisted unlocks', value: String(t.raAssistedUnlocks) },
    { title: 'Cases opened', value: String(t.casesOpened) },
    { title: 'Cases closed', value: String(t.casesClosed) },
    { title: 'Median time to close a case', value: formatDuration(t.medianOpenToCloseMs) },
  ];
}

/** A range in words: whole UTC days as `from 2026-12-01 to 2026-12-07 (UTC days, both included)`, else the two times. */
export function rangeText(range: ReportRange): string {
  const midnight = (t: string) => t.endsWith('T00:00:00.000Z');
  if (midnight(range.from) && midnight(range.to)) {
    const last = new Date(Date.parse(range.to) - 86_400_000).toISOString().slice(0, 10);
    return `from ${range.from.slice(0, 10)} to ${last} (UTC days, both included)`;
  }
  return `from ${range.from} to ${range.to} (UTC, the end excluded)`;
}

/** The report as plain text (the admin command's default output). */
export function usageReportText(report: UsageReport): string {
  const out = [`Usage ${rangeText(report.range)}`];
  for (const t of report.teams) {
    out.push(`${t.team}:`);
    for (const f of usageFacts(t)) out.push(`  ${f.title}: ${f.value}`);
  }
  return out.join('\n') + '\n';
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * A report range from calendar dates (UTC days), both days included.
 *
 * @param from - `YYYY-MM-DD`, the first day
 * @param to - `YYYY-MM-DD`, the last day (its whole day is counted)
 * @returns `{ ok: true, range }` (`to` is the next day's midnight, exclusive), or `{ ok: false, message }` saying what is wrong
 */
export function reportRangeFromDates(from: string | undefined, to: string | undefined): { ok: true; range: ReportRange } | { ok: false; message: string } {
  const day = (name: string, v: string | undefined): Date | string => {
    if (!v) return `${name} is missing: give a date as YYYY-MM-DD`;
    const m = DAY.exec(v.trim());
    const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : null;
    if (!m || !d || d.toISOString().slice(0, 10) !== v.trim()) return `${name} "${v.slice(0, 20)}" is not a date as YYYY-MM-DD`;
    return d;
  };
  const f = day('--from', from);
  const t = day('--to', to);
  if (typeof f === 'string') return { ok: false, message: f };
  if (typeof t === 'string') return { ok: false, message: t };
  if (t < f) return { ok: false, message: '--to is before --from' };
  return { ok: true, range: { from: f.toISOString(), to: new Date(t.getTime() + 86_400_000).toISOString() } };
}
