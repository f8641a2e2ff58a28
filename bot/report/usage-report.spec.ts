import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../storage/storage.port';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import { makeCase } from '../../storage/storage.fixtures';
import { computeUsageReport, median, reportRangeFromDates, usageReportCsv, usageReportText } from './usage-report';
import { loadUsageReport } from './usage-report.loader';

const RANGE = { from: '2026-12-01T00:00:00.000Z', to: '2026-12-08T00:00:00.000Z' };
let n = 0;
/** One audit row as the journeys write it. */
function row(at: string, action: string, personId: string | null, details: AuditEntry['details'] = {}, actor = 'system'): AuditEntry {
  return { id: `e-${++n}`, at, actor, action, personId, details };
}
const day = (d: number, h = 9, m = 0) => new Date(Date.UTC(2026, 11, d, h, m)).toISOString();

describe('median', () => {
  it('odd count: the middle; even count: the mean of the two middle; none: null', () => {
    expect(median([30, 10, 20])).toBe(20);
    expect(median([40, 10, 30, 20])).toBe(25);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNull();
  });
});

describe('computeUsageReport', () => {
  it('counts each kind exactly, inside the range only; refused clicks and other actions are not counted', () => {
    const entries: AuditEntry[] = [
      // Before the range: context only.
      row('2026-11-29T09:00:00.000Z', 'registration.completed', 'p0'),
      row('2026-11-30T23:59:59.999Z', 'unlock.completed', 'p0'),
      // In the range.
      row(day(1, 0, 0), 'registration.completed', 'p1'),
      row(day(2), 'registration.replaced', 'p2'),
      row(day(2), 'registration.cancelled', 'p3'),
      row(day(2), 'person.added', 'p4', {}, 'admin'),
      row(day(3), 'unlock.completed', 'p1'),
      row(day(3), 'unlock.completed', 'p2'),
      row(day(3), 'unlock.started', 'p2'),
      row(day(4), 'unlock.self_service_locked', 'p5', { caseRef: 'RA-AAAAAA' }),
      row(day(4), 'ra_case.opened', 'p5', { caseRef: 'RA-AAAAAA', outcome: 'applied' }),
      row(day(4, 10), 'ra_case.close', 'p5', { caseRef: 'RA-AAAAAA', outcome: 'refused', reason: 'not_member' }, 'teams:x'),
      row(day(4, 10, 30), 'ra_case.close', 'p5', { caseRef: 'RA-AAAAAA', outcome: 'unchanged', reason: 'already_yours' }, 'ra:a'),
      // An applied close carries the close outcome (as the case journey audits it).
      row(day(4, 11), 'ra_case.close', 'p5', { caseRef: 'RA-AAAAAA', outcome: 'attempts_reset', actorName: 'Alex Ra' }, 'ra:a'),
      // After the range (to is exclusive).
      row('2026-12-08T00:00:00.000Z', 'registration.completed', 'p6'),
      row('2026-12-08T00:00:00.000Z', 'unlock.self_service_locked', 'p6'),
    ];
    const r = computeUsageReport(entries, RANGE);
    expect(r.teams).toEqual([{ team: 'RA desk', registrations: 2, selfUnlocks: 2, lockouts: 1, raAssistedUnlocks: 0, casesOpened: 1, casesClosed: 1, medianOpenToCloseMs: 2 * 3_600_000 }]);
  });

  it('an unlock after an applied assisted-unlock start is RA-assisted (once); after the case closed, or without one, it is self-service', () => {
    const entries: AuditEntry[] = [
      // Started before the range, completed in it: assisted.
      row('2026-11-28T10:00:00.000Z', 'ra_case.opened', 'pa', { caseRef: 'RA-BBBBBB', outcome: 'applied' }),
      row('2026-11-30T10:00:00.000Z', 'ra_case.assist_unlock', 'pa', { caseRef: 'RA-BBBBBB', outcome: 'applied' }, 'ra:a'),
      row(day(2), 'unlock.completed', 'pa'),
      // The next unlock of the same person is their own.
      row(day(5), 'unlock.completed', 'pa'),
      // A refused assisted-unlock click starts nothing.
      row(day(2), 'ra_case.assist_unlock', 'pb', { caseRef: 'RA-CCCCCC', outcome: 'refused' }, 'teams:x'),
      row(day(3), 'unlock.completed', 'pb'),
      // Started, then the case closed: the later unlock is self-service.
      row(day(2), 'ra_case.assist_unlock', 'pc', { caseRef: 'RA-DDDDDD', outcome: 'applied' }, 'ra:a'),
      row(day(2, 12), 'ra_case.close', 'pc', { caseRef: 'RA-DDDDDD', outcome: 'applied' }, 'ra:a'),
      row(day(3), 'unlock.completed', 'pc'),
      // Marked assisted by the journey.
      row(day(4), 'unlock.completed', 'pd', { assisted: true }),
      row(day(4), 'unlock.completed', 'pe', { caseRef: 'RA-EEEEEE' }),
    ];
    const t = computeUsageReport(entries, RANGE).teams[0]!;
    expect({ assisted: t.raAssistedUnlocks, self: t.selfUnlocks, closed: t.casesClosed, opened: t.casesOpened }).toEqual({ assisted: 3, self: 3, closed: 1, opened: 0 });
    // RA-DDDDDD's open time is unknown (no entry, none given): closed is counted, no duration.
    expect(t.medianOpenToCloseMs).toBeNull();
  });

  it('median over cases closed in the range: odd and even counts; the open time may come from before the range or from the stored case', () => {
    const open = (ref: string, at: string) => row(at, 'ra_case.opened', 'p', { caseRef: ref, outcome: 'applied' });
    const close = (ref: string, at: string) => row(at, 'ra_case.close', 'p', { caseRef: ref, outcome: 'no_action' }, 'ra:a');
    const three = [open('RA-000001', day(2, 9)), close('RA-000001', day(2, 10)), open('RA-000002', '2026-11-30T09:00:00.000Z'), close('RA-000002', day(1, 9)), close('RA-000003', day(3, 9))];
    // 1 h, 24 h, and 3 h (RA-000003 opened at 06:00 per the stored case).
    const odd = computeUsageReport(three, RANGE, { openedAt: { 'RA-000003': day(3, 6) } }).teams[0]!;
    expect(odd).toMatchObject({ casesOpened: 1, casesClosed: 3, medianOpenToCloseMs: 3 * 3_600_000 });
    const even = computeUsageReport([...three, open('RA-000004', day(4, 9)), close('RA-000004', day(4, 11))], RANGE, { openedAt: { 'RA-000003': day(3, 6) } }).teams[0]!;
    expect(even).toMatchObject({ casesOpened: 2, casesClosed: 4, medianOpenToCloseMs: 2.5 * 3_600_000 });
  });

  it('an empty range: zeros and no median; text and CSV say so', () => {
    const r = computeUsageReport([row('2026-11-01T00:00:00.000Z', 'registration.completed', 'p')], RANGE);
    expect(r.teams[0]).toEqual({ team: 'RA desk', registrations: 0, selfUnlocks: 0, lockouts: 0, raAssistedUnlocks: 0, casesOpened: 0, casesClosed: 0, medianOpenToCloseMs: null });
    expect(usageReportCsv(r)).toBe(
      'team,from,to,registrations,self_unlocks,lockouts,ra_assisted_unlocks,cases_opened,cases_closed,median_open_to_close_minutes\r\n' +
        'RA desk,2026-12-01T00:00:00.000Z,2026-12-08T00:00:00.000Z,0,0,0,0,0,0,\r\n',
    );
    expect(usageReportText(r)).toContain('Median time to close a case: -');
    expect(usageReportText(r).split('\n')[0]).toBe('Usage from 2026-12-01 to 2026-12-07 (UTC days, both included)');
  });

  it('CSV gives the median in minutes; text in hours and minutes', () => {
    const r = computeUsageReport([row(day(2, 9), 'ra_case.opened', 'p', { caseRef: 'RA-000009', outcome: 'applied' }), row(day(2, 10, 30), 'ra_case.close', 'p', { caseRef: 'RA-000009', outcome: 'applied' })], RANGE);
    expect(usageReportCsv(r).split('\r\n')[1]).toBe('RA desk,2026-12-01T00:00:00.000Z,2026-12-08T00:00:00.000Z,0,0,0,0,1,1,90.0');
    expect(usageReportText(r)).toContain('Median time to close a case: 1 h 30 min');
  });
});

describe('reportRangeFromDates', () => {
  it('UTC days, both included; bad or reversed dates are refused saying why', () => {
    expect(reportRangeFromDates('2026-12-01', '2026-12-07')).toEqual({ ok: true, range: RANGE });
    expect(reportRangeFromDates('2026-12-01', '2026-12-01')).toEqual({ ok: true, range: { from: RANGE.from, to: '2026-12-02T00:00:00.000Z' } });
    expect(reportRangeFromDates(undefined, '2026-12-01')).toMatchObject({ ok: false, message: expect.stringContaining('--from is missing') });
    expect(reportRangeFromDates('2026-02-30', '2026-12-01')).toMatchObject({ ok: false, message: expect.stringContaining('--from "2026-02-30" is not a date') });
    expect(reportRangeFromDates('2026-12-02', '2026-12-01')).toMatchObject({ ok: false, message: '--to is before --from' });
  });
});

describe('loadUsageReport (through the storage port, SQLite)', () => {
  it('reads the range and the look-back in pages, and the open time of an older case from the store', async () => {
    const storage = openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'usage-report-')), 's.sqlite') });
    try {
      // Opened 40 days before the range (outside the look-back): its open time comes from the stored case.
      await storage.cases.insert(makeCase({ ref: 'RA-01D000', createdAt: '2026-10-22T09:00:00.000Z' }));
      await storage.audit.append(row('2026-10-22T09:00:00.000Z', 'ra_case.opened', 'p', { caseRef: 'RA-01D000', outcome: 'applied' }));
      await storage.audit.append(row(day(1, 9), 'ra_case.close', 'p', { caseRef: 'RA-01D000', outcome: 'applied' }, 'ra:a'));
      // Pairs and triples of entries at one instant across page ends (paging by time keeps each once).
      for (let i = 0; i < 25; i++) await storage.audit.append(row(day(2, 9, Math.floor(i / 3)), 'registration.completed', `p${i}`));
      await storage.audit.append(row(day(2, 10), 'unlock.self_service_locked', 'px'));
      const r = await loadUsageReport(storage, RANGE, { pageSize: 4 });
      expect(r.teams[0]).toMatchObject({ registrations: 25, lockouts: 1, casesClosed: 1, casesOpened: 0, medianOpenToCloseMs: Date.parse(day(1, 9)) - Date.parse('2026-10-22T09:00:00.000Z') });
      // As many entries at one instant as a page holds cannot be paged by time: refused, naming why.
      for (let i = 0; i < 5; i++) await storage.audit.append(row(day(6, 9), 'unlock.completed', `q${i}`));
      await expect(loadUsageReport(storage, RANGE, { pageSize: 4 })).rejects.toMatchObject({ code: 'REPORT.TOO_DENSE' });
      expect((await loadUsageReport(storage, RANGE, { pageSize: 6 })).teams[0]).toMatchObject({ registrations: 25, selfUnlocks: 5 });
    } finally {
      await storage.close();
    }
  });
});

describe('computeUsageReport with several RA teams', () => {
  it("case counts go to the team on the case's entries; person counts to the person's team; the unattributed to the first team", () => {
    const entries: AuditEntry[] = [
      row(day(2), 'ra_case.opened', 'p-south', { caseRef: 'RA-SSSSSS', outcome: 'applied', team: 'South RA' }),
      row(day(2, 10), 'ra_case.assist_unlock', 'p-south', { caseRef: 'RA-SSSSSS', outcome: 'applied', team: 'South RA' }, 'ra:s'),
      row(day(2, 11), 'unlock.completed', 'p-south', {}),
      row(day(2, 12), 'ra_case.close', 'p-south', { caseRef: 'RA-SSSSSS', outcome: 'assisted_unlock', team: 'South RA' }, 'ra:s'),
      row(day(3), 'ra_case.opened', 'p-north', { caseRef: 'RA-NNNNNN', outcome: 'applied', team: 'North RA' }),
      row(day(3), 'ra_case.close', 'p-north', { caseRef: 'RA-NNNNNN', outcome: 'refused', team: 'North RA' }, 'teams:x'),
      row(day(3, 10), 'unlock.self_service_locked', 'p-south', {}),
      row(day(4), 'registration.completed', 'p-south', {}),
      row(day(4), 'registration.completed', 'p-north', {}),
      row(day(4), 'unlock.completed', 'p-north', {}),
      // An old case entry naming a team no longer configured, and a person with no team: the first team.
      row(day(5), 'ra_case.opened', 'p-gone', { caseRef: 'RA-GGGGGG', outcome: 'applied', team: 'Gone RA' }),
      row(day(5), 'registration.completed', 'p-unknown', {}),
    ];
    const r = computeUsageReport(entries, RANGE, { teams: ['North RA', 'South RA'], teamOfPerson: { 'p-south': 'South RA', 'p-north': 'North RA' } });
    expect(r.teams).toEqual([
      { team: 'North RA', registrations: 2, selfUnlocks: 1, lockouts: 0, raAssistedUnlocks: 0, casesOpened: 2, casesClosed: 0, medianOpenToCloseMs: null },
      { team: 'South RA', registrations: 1, selfUnlocks: 0, lockouts: 1, raAssistedUnlocks: 1, casesOpened: 1, casesClosed: 1, medianOpenToCloseMs: 3 * 3_600_000 },
    ]);
    // One team (no list): everything in one row, named as before.
    expect(computeUsageReport(entries, RANGE).teams.map((t) => [t.team, t.casesOpened, t.registrations])).toEqual([['RA desk', 3, 3]]);
  });
});
