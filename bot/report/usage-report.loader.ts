/**
 * The usage report from the store, through the storage port only (so the
 * same code runs on SQLite and MongoDB): the audit entries of the range and
 * a look-back before it, paged, then {@link computeUsageReport}.
 */
import { AppError } from '../../common/app-error';
import type { AuditEntry, Storage } from '../../storage/storage.port';
import { computeUsageReport, type ReportRange, type UsageReport } from './usage-report';
import { teamForEmail, type RaDeskConfig } from '../journeys/ra-case/ra-roles';

/** How far before the range entries are read for context (a case opened or an assisted unlock started earlier), in ms: 30 days. */
const LOOKBACK_MS = 30 * 86_400_000;

/** Audit entries per read (the port's largest page). */
const PAGE = 10_000;

/**
 * Every audit entry with `from <= at < to`, oldest first, read in pages (by time: at most pageSize - 1 entries may share one instant).
 *
 * @throws AppError `REPORT.TOO_DENSE` when more than one page of entries share one time (they cannot be paged by time)
 */
async function auditBetween(storage: Storage, from: string, to: string, pageSize: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  let cursor = from;
  let seenAtCursor = new Set<string>();
  for (;;) {
    const page = await storage.audit.list({ from: cursor, to, limit: pageSize });
    const fresh = page.filter((e) => !(e.at === cursor && seenAtCursor.has(e.id)));
    out.push(...fresh);
    if (page.length < pageSize) return out;
    if (fresh.length === 0) throw new AppError('REPORT.TOO_DENSE', `more than ${pageSize} audit entries at ${cursor}: the report cannot page through them`);
    const last = page[page.length - 1]!.at;
    if (last !== cursor) seenAtCursor = new Set();
    for (const e of page) if (e.at === last) seenAtCursor.add(e.id);
    cursor = last;
  }
}

/**
 * Compute the usage report from the store.
 *
 * @param storage - the storage port
 * @param range - ISO 8601 UTC, from inclusive, to exclusive
 * @param options.pageSize - audit entries per read (default and most 10000; smaller in tests)
 * @param options.teams - the RA teams (configuration); absent: one team, "RA desk"
 * @returns the report, one row per team (see `usage-report.ts`)
 */
export async function loadUsageReport(storage: Storage, range: ReportRange, options: { pageSize?: number; teams?: Pick<RaDeskConfig, 'teams'> } = {}): Promise<UsageReport> {
  const since = new Date(Date.parse(range.from) - LOOKBACK_MS).toISOString();
  const entries = await auditBetween(storage, since, range.to, Math.min(options.pageSize ?? PAGE, PAGE));
  const opened = new Set(entries.filter((e) => e.action === 'ra_case.opened').map((e) => e.details['caseRef']));
  const openedAt: Record<string, string> = {};
  for (const e of entries) {
    const ref = e.details['caseRef'];
    if (e.action !== 'ra_case.close' || e.at < range.from || typeof ref !== 'string' || opened.has(ref) || ref in openedAt) continue;
    const stored = await storage.cases.get(ref);
    if (stored) openedAt[ref] = stored.createdAt;
  }
  if (!options.teams || options.teams.teams.length < 2) return computeUsageReport(entries, range, { openedAt, ...(options.teams ? { team: options.teams.teams[0]!.name } : {}) });
  // Several teams: each person counted in range goes to the team their email routes them to.
  const teamOfPerson: Record<string, string> = {};
  for (const id of new Set(entries.filter((e) => e.at >= range.from && e.personId).map((e) => e.personId!))) {
    const person = await storage.persons.get(id);
    teamOfPerson[id] = teamForEmail(options.teams, person?.email ?? null).name;
  }
  return computeUsageReport(entries, range, { openedAt, teams: options.teams.teams.map((t) => t.name), teamOfPerson });
}
