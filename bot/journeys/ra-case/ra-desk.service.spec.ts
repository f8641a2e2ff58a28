import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import { makePerson } from '../../../storage/storage.fixtures';
import { journeyKey } from '../journey.key';
import { harness, type Harness } from '../journey.spec-support';
import { raCaseDefinition } from './ra-case.definition';
import { decodeRaCase } from './ra-case.state';
import { RaDeskService, type DeskSender } from './ra-desk.service';
import { loadRaDeskConfig } from './ra-roles';

const RA = 'aaaaaaaa-0000-4000-8000-000000000001';
const HELP = 'cccccccc-0000-4000-8000-000000000003';
const ra: DeskSender = { aadObjectId: RA, channelUserId: '29:ra', name: 'Alex Ra' };
const help: DeskSender = { aadObjectId: HELP, channelUserId: '29:help', name: 'Casey Help' };
const stranger: DeskSender = { aadObjectId: 'dddddddd-0000-4000-8000-000000000004', channelUserId: '29:x', name: 'Dana Nobody' };

function desk(h: Harness): RaDeskService {
  return new RaDeskService({
    storage: h.storage,
    engine: h.engine,
    definition: raCaseDefinition({ now: () => h.now.value }),
    config: loadRaDeskConfig({ RA_MEMBER_IDS: RA, HELPDESK_MEMBER_IDS: HELP }),
    now: () => h.now.value,
    logger: createLogger({ name: 'spec', level: 'silent' }),
  });
}

async function withDesk(fn: (h: Harness, d: RaDeskService) => Promise<void>): Promise<void> {
  const h = harness();
  try {
    await fn(h, desk(h));
  } finally {
    await h.close();
  }
}

describe('RaDeskService.openForPerson (helpdesk handoff)', () => {
  it('a helpdesk member opens a case for a registered email: stored with the reason, opened by them, audited; the person message names the helpdesk', () =>
    withDesk(async (h, d) => {
      const sam = makePerson({ displayName: 'Sam Jones', email: 'sam.jones@nhs.net' });
      await h.storage.persons.insert(sam);
      const r = await d.openForPerson(help, ' Sam.Jones@NHS.net ', '  Locked out, identity checked by phone ');
      expect(r).toMatchObject({ kind: 'opened', person: { displayName: 'Sam Jones', email: 'sam.jones@nhs.net' }, personTold: false });
      const ref = (r as { caseRef: string }).caseRef;
      const stored = await h.storage.cases.get(ref);
      expect(stored).toMatchObject({ personId: sam.id, reason: 'helpdesk', status: 'open', context: { openedBy: 'Casey Help' } });
      const j = decodeRaCase((await h.storage.journeys.get(journeyKey(ref, 'ra-case')))!);
      expect(j.state.history[0]).toMatchObject({ action: 'opened', actor: `helpdesk:${HELP}`, actorName: 'Casey Help', detail: 'Locked out, identity checked by phone' });
      const audit = (await h.storage.audit.list({ personId: sam.id, limit: 10 })).filter((e) => e.action === 'ra_case.opened');
      expect(audit).toEqual([expect.objectContaining({ actor: `helpdesk:${HELP}`, details: expect.objectContaining({ caseRef: ref, reason: 'helpdesk' }) })]);
      // The person's message waits in the case's outbox (no Teams here): it names the helpdesk and the case.
      const pending = (await h.storage.journeys.get(journeyKey(ref, 'ra-case')))!.pendingEffects.find((e) => e.type === 'ra.tell_person');
      expect(JSON.stringify(pending?.payload)).toMatch(new RegExp(`Casey Help from the IT helpdesk has asked your RA team.*${ref}`));
      // Asked again: the same case, nothing new.
      expect(await d.openForPerson(help, 'sam.jones@nhs.net', 'again')).toMatchObject({ kind: 'exists', caseRef: ref });
      expect(await h.storage.cases.listByPerson(sam.id)).toHaveLength(1);
    }));

  it('an unregistered email, a bad email, no reason: a clear outcome and nothing stored', () =>
    withDesk(async (h, d) => {
      expect(await d.openForPerson(help, 'nobody@nhs.net', 'locked')).toEqual({ kind: 'not_registered', email: 'nobody@nhs.net' });
      expect(await d.openForPerson(help, 'not-an-email', 'locked')).toEqual({ kind: 'bad_email' });
      await h.storage.persons.insert(makePerson({ email: 'kim@nhs.net' }));
      expect(await d.openForPerson(help, 'kim@nhs.net', '   ')).toEqual({ kind: 'no_reason' });
      expect(await d.openForPerson(help, 'kim@nhs.net', 'x'.repeat(501))).toEqual({ kind: 'reason_too_long' });
      expect(await h.storage.cases.listActive(10)).toEqual([]);
      expect(await h.storage.audit.list({ limit: 10 })).toEqual([]);
    }));

  it('a non-member is refused and audited, and the email is not even looked up', () =>
    withDesk(async (h, d) => {
      await h.storage.persons.insert(makePerson({ email: 'kim@nhs.net' }));
      expect(await d.openForPerson(stranger, 'kim@nhs.net', 'please')).toEqual({ kind: 'not_helpdesk' });
      expect(await h.storage.cases.listActive(10)).toEqual([]);
      const audit = await h.storage.audit.list({ limit: 10 });
      expect(audit).toEqual([expect.objectContaining({ actor: `teams:${stranger.aadObjectId}`, action: 'ra_case.helpdesk_open', personId: null, details: { outcome: 'refused', reason: 'not_helpdesk', role: 'none' } })]);
    }));
});

describe('opening a case is single-winner', () => {
  it('"talk to RA" and a helpdesk handoff racing for one person open one case; every caller gets its reference', () =>
    withDesk(async (h, d) => {
      const p = makePerson({ email: 'race@nhs.net' });
      await h.storage.persons.insert(p);
      const results = await Promise.all([d.requestByPerson(p), d.requestByPerson(p), d.openForPerson(help, 'race@nhs.net', 'locked'), d.requestByPerson(p)]);
      const cases = await h.storage.cases.listByPerson(p.id);
      expect(cases).toHaveLength(1);
      for (const r of results) expect(r).toMatchObject({ caseRef: cases[0]!.ref });
      expect(results.filter((r) => ('created' in r ? r.created : r.kind === 'opened'))).toHaveLength(1);
      expect((await h.storage.audit.list({ personId: p.id, limit: 10 })).filter((e) => e.action === 'ra_case.opened')).toHaveLength(1);
      // Once that case is closed, asking again opens a new one.
      await h.storage.cases.save({ ...cases[0]!, status: 'closed' }, cases[0]!.version);
      const again = await d.requestByPerson(p);
      expect(again.created).toBe(true);
      expect(again.caseRef).not.toBe(cases[0]!.ref);
    }));
});

describe('RaDeskService.report', () => {
  it('RA members get the counts (default: the last 7 UTC days); others are refused and audited; bad dates say why', () =>
    withDesk(async (h, d) => {
      h.now.value = new Date('2026-12-07T15:00:00.000Z');
      const at = (iso: string) => ({ id: iso + Math.random(), at: iso, actor: 'system', personId: null, details: {} });
      await h.storage.audit.append({ ...at('2026-12-01T09:00:00.000Z'), action: 'unlock.self_service_locked' });
      await h.storage.audit.append({ ...at('2026-11-30T23:59:59.000Z'), action: 'unlock.self_service_locked' });
      await h.storage.audit.append({ ...at('2026-12-07T14:00:00.000Z'), action: 'registration.completed' });
      const r = await d.report(ra, { from: null, to: null });
      expect(r).toMatchObject({ kind: 'report', report: { range: { from: '2026-12-01T00:00:00.000Z', to: '2026-12-08T00:00:00.000Z' }, teams: [{ lockouts: 1, registrations: 1 }] } });
      expect(await d.report(ra, { from: '2026-11-30', to: '2026-11-30' })).toMatchObject({ kind: 'report', report: { teams: [{ lockouts: 1, registrations: 0 }] } });
      expect(await d.report(ra, { from: '2026-12-09', to: '2026-12-01' })).toEqual({ kind: 'bad_dates', message: 'the last date is before the first date' });
      const before = (await h.storage.audit.list({ limit: 100 })).length;
      expect(await d.report(help, { from: null, to: null })).toEqual({ kind: 'not_member' });
      const refused = (await h.storage.audit.list({ limit: 100 })).slice(before);
      expect(refused).toEqual([expect.objectContaining({ action: 'report.requested', actor: `helpdesk:${HELP}`, details: { outcome: 'refused', reason: 'not_member', role: 'helpdesk' } })]);
    }));
});

describe('the unlock side and the card refresh', () => {
  it('"talk to RA" asks the unlock journey to pause; an assisted unlock is handed to it; without it, the self-service reset is done instead', async () => {
    const h = harness();
    try {
      const calls: string[] = [];
      const unlock = { pause: async (p: string, c: string) => void calls.push(`pause ${p} ${c}`), startAssisted: async (p: string, c: string, a: string) => void calls.push(`assist ${p} ${c} ${a}`) };
      const d = new RaDeskService({ storage: h.storage, engine: h.engine, definition: raCaseDefinition({ now: () => h.now.value }), config: loadRaDeskConfig({ RA_MEMBER_IDS: RA, HELPDESK_MEMBER_IDS: HELP }), now: () => h.now.value, logger: createLogger({ name: 'spec', level: 'silent' }), unlock });
      const p = makePerson({ email: 'pause@nhs.net' });
      await h.storage.persons.insert(p);
      const { caseRef } = await d.requestByPerson(p);
      // A helpdesk handoff for someone with no case pauses nothing (only the person's own ask does).
      const q = makePerson({ email: 'handed@nhs.net' });
      await h.storage.persons.insert(q);
      await d.openForPerson(help, 'handed@nhs.net', 'locked');
      expect(calls).toEqual([`pause ${p.id} ${caseRef}`]);
      await d.startAssistedUnlock(p.id, caseRef, `ra:${RA}`);
      expect(calls.at(-1)).toBe(`assist ${p.id} ${caseRef} ra:${RA}`);

      // No unlock side: the one self-service reset, audited with the RA actor.
      await desk(h).startAssistedUnlock(q.id, 'RA-7K2Q9D', `ra:${RA}`);
      const resets = (await h.storage.audit.list({ personId: q.id, limit: 50 })).filter((e) => e.action === 'unlock.self_service_reset');
      expect(resets).toEqual([expect.objectContaining({ actor: `ra:${RA}` })]);
    } finally {
      await h.close();
    }
  });

  it("the card refreshes for RA members by their Teams user ids, learned from what they send (configuration names Entra ids)", () =>
    withDesk(async (h, d) => {
      const p = makePerson({ email: 'refresh@nhs.net' });
      await h.storage.persons.insert(p);
      const { caseRef } = await d.requestByPerson(p);
      // Nobody's Teams id is known yet: no refresh clause (the posted card is updated in place for everyone).
      expect((await d.card(caseRef, null))?.refresh).toBeUndefined();
      await d.act(caseRef, 'claim', ra, 1);
      expect((await d.card(caseRef, null))?.refresh?.userIds).toEqual(['29:ra']);
      // Another instance over the same store sees it; a stranger's or helpdesk's ids are never added.
      const other = desk(h);
      await other.rememberMembers([stranger, help]);
      expect((await other.card(caseRef, null))?.refresh?.userIds).toEqual(['29:ra']);
      // Members added with the bot in the team are learned too.
      const RA2 = 'bbbbbbbb-0000-4000-8000-000000000002';
      const two = new RaDeskService({ storage: h.storage, engine: h.engine, definition: raCaseDefinition({ now: () => h.now.value }), config: loadRaDeskConfig({ RA_MEMBER_IDS: `${RA},${RA2}` }), now: () => h.now.value, logger: createLogger({ name: 'spec', level: 'silent' }) });
      await two.rememberMembers([{ aadObjectId: RA2.toUpperCase(), channelUserId: '29:ra2' }]);
      expect((await two.card(caseRef, null))?.refresh?.userIds).toEqual(['29:ra', '29:ra2']);
    }));
});

describe('several RA teams (RA_TEAMS)', () => {
  it("a case goes to the team of the person's email domain; only that team's members act on it; its card refreshes for them", async () => {
    const h = harness();
    try {
      const NORTH = RA;
      const SOUTH = 'bbbbbbbb-0000-4000-8000-000000000002';
      const config = loadRaDeskConfig({
        HELPDESK_MEMBER_IDS: HELP,
        RA_TEAMS: JSON.stringify([
          { name: 'North RA', memberIds: [NORTH], channelId: '19:north@thread.tacv2', emailDomains: ['north.nhs.net'] },
          { name: 'South RA', memberIds: [SOUTH], channelId: '19:south@thread.tacv2', emailDomains: ['south.nhs.net'] },
        ]),
      });
      const d = new RaDeskService({ storage: h.storage, engine: h.engine, definition: raCaseDefinition({ now: () => h.now.value }), config, now: () => h.now.value, logger: createLogger({ name: 'spec', level: 'silent' }) });
      const p = makePerson({ email: 'sam@ward.south.nhs.net' });
      await h.storage.persons.insert(p);
      const { caseRef } = await d.requestByPerson(p);
      const j = decodeRaCase((await h.storage.journeys.get(journeyKey(caseRef, 'ra-case')))!);
      expect(j.state.context['raTeam']).toBe('South RA');
      expect(d.teamOf(j).channel?.conversationId).toBe('19:south@thread.tacv2');
      const north: DeskSender = { aadObjectId: NORTH, channelUserId: '29:north', name: 'Nora North' };
      const south: DeskSender = { aadObjectId: SOUTH, channelUserId: '29:south', name: 'Sid South' };
      // A member of another RA team is refused as a non-member (audited), and sees no RA buttons.
      expect((await d.act(caseRef, 'claim', north, 1)).verdict).toEqual({ kind: 'refused', reason: 'not_member', owner: null });
      expect((await d.card(caseRef, north))?.actions ?? []).toEqual([]);
      const refusals = (await h.storage.audit.list({ personId: p.id, limit: 50 })).filter((e) => e.action === 'ra_case.claim');
      expect(refusals).toEqual([expect.objectContaining({ actor: `teams:${NORTH}`, details: expect.objectContaining({ outcome: 'refused', reason: 'not_member' }) })]);
      expect((await d.act(caseRef, 'claim', south, 1)).verdict).toEqual({ kind: 'applied', action: 'claim' });
      // The card names the team and refreshes for its members only (both members' ids are known now).
      const card = (await d.card(caseRef, null))!;
      expect(card.refresh?.userIds).toEqual(['29:south']);
      expect(JSON.stringify(card.body)).toContain('South RA');
      // Every applied action's audit entry names the team (for a per-team report).
      const applied = (await h.storage.audit.list({ personId: p.id, limit: 50 })).filter((e) => e.details['outcome'] === 'applied' && e.action.startsWith('ra_case.'));
      expect(applied.map((e) => [e.action, e.details['team']])).toEqual([
        ['ra_case.opened', 'South RA'],
        ['ra_case.claim', 'South RA'],
      ]);
      // A person matching no team's domain goes to the first team.
      const q = makePerson({ email: 'kim@gov.uk' });
      await h.storage.persons.insert(q);
      const other = await d.requestByPerson(q);
      expect(decodeRaCase((await h.storage.journeys.get(journeyKey(other.caseRef, 'ra-case')))!).state.context['raTeam']).toBe('North RA');
    } finally {
      await h.close();
    }
  });
});
