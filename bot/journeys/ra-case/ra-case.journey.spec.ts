import { describe, expect, it } from 'vitest';
import { journeyKey } from '../journey.key';
import { harness } from '../journey.spec-support';
import type { Effect } from '../journey.effects';
import { raCaseDefinition } from './ra-case.definition';
import { newRaCaseJourney, stepRaCase, type RaActor, type RaCaseEvent, type RaCaseJourney } from './ra-case.journey';
import { decodeRaCase } from './ra-case.state';

const T0 = new Date('2026-12-06T09:00:00.000Z');
const REF = 'RA-7K2Q9D';
const alex: RaActor = { id: 'aaaaaaaa-0000-4000-8000-000000000001', name: 'Alex Ra', role: 'ra' };
const blake: RaActor = { id: 'bbbbbbbb-0000-4000-8000-000000000002', name: 'Blake Ra', role: 'ra' };
const helpdesk: RaActor = { id: 'cccccccc-0000-4000-8000-000000000003', name: 'Casey Help', role: 'helpdesk' };
const stranger: RaActor = { id: 'dddddddd-0000-4000-8000-000000000004', name: 'Dana Nobody', role: 'none' };

function ctx() {
  let n = 0;
  return { now: T0, newId: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}` };
}

const openEvent: RaCaseEvent = { type: 'open', personId: 'p1', reason: 'answers_failed', context: { cardId: 'a'.repeat(32), failedAttempts: 3 }, paused: null, actor: 'system', actorName: 'Smartcard Assist' };

function opened(): RaCaseJourney {
  return stepRaCase(newRaCaseJourney(REF, 'run-1'), openEvent, ctx()).journey;
}

const act = (j: RaCaseJourney, actor: RaActor, action: Extract<RaCaseEvent, { type: 'act' }>['action'], extra: Partial<Extract<RaCaseEvent, { type: 'act' }>> = {}) =>
  stepRaCase(j, { type: 'act', action, actor, step: j.state.step, ...extra }, ctx());

const types = (effects: Effect[]) => effects.map((e) => e.type);

describe('stepRaCase', () => {
  it('opens once: the card goes to the RA channel, the person is told, the opening is audited; opening again changes nothing', () => {
    const r = stepRaCase(newRaCaseJourney(REF, 'run-1'), openEvent, ctx());
    expect(r.changed).toBe(true);
    expect(r.journey.state).toMatchObject({ status: 'open', step: 1, personId: 'p1', reason: 'answers_failed', openedAt: T0.toISOString() });
    expect(types(r.effects)).toEqual(['audit', 'ra.case_status', 'ra.case_card', 'ra.tell_person']);
    expect(r.effects[0]).toMatchObject({ type: 'audit', actor: 'system', action: 'ra_case.opened', personId: 'p1', details: { caseRef: REF } });
    const again = stepRaCase(r.journey, openEvent, ctx());
    expect(again).toMatchObject({ changed: false, verdict: { kind: 'unchanged', reason: 'already_open' } });
  });

  it('claim: the first RA member owns the case; a second is told who has it; the owner clicking again changes nothing', () => {
    const first = act(opened(), alex, 'claim');
    expect(first.verdict).toEqual({ kind: 'applied', action: 'claim' });
    expect(first.journey.state.owner).toEqual({ id: alex.id, name: 'Alex Ra', at: T0.toISOString() });
    expect(first.effects.find((e) => e.type === 'ra.tell_person')).toMatchObject({ text: expect.stringContaining('Alex Ra') });
    // Blake's card was shown before the claim (old step): still told who owns it, not "stale".
    const second = stepRaCase(first.journey, { type: 'act', action: 'claim', actor: blake, step: 1 }, ctx());
    expect(second).toMatchObject({ changed: false, effects: [], verdict: { kind: 'refused', reason: 'owned', owner: { id: alex.id, name: 'Alex Ra' } } });
    const again = stepRaCase(first.journey, { type: 'act', action: 'claim', actor: alex, step: 1 }, ctx());
    expect(again).toMatchObject({ changed: false, verdict: { kind: 'unchanged', reason: 'already_yours' } });
  });

  it('refuses helpdesk members and non-members, whatever the action, and changes nothing', () => {
    const j = opened();
    for (const actor of [helpdesk, stranger]) {
      for (const action of ['claim', 'note', 'reset_attempts', 'assist_unlock', 'close'] as const) {
        const r = act(j, actor, action, { note: 'x', outcome: 'no_action' });
        expect(r).toMatchObject({ changed: false, effects: [], verdict: { kind: 'refused', reason: 'not_member' } });
        expect(r.journey).toBe(j);
      }
    }
  });

  it('a stale card (older step) is refused; a double-clicked reset resets once', () => {
    const claimed = act(opened(), alex, 'claim').journey;
    const reset = act(claimed, alex, 'reset_attempts');
    expect(reset.changed).toBe(true);
    expect(reset.effects.filter((e) => e.type === 'ra.reset_self_service')).toEqual([expect.objectContaining({ personId: 'p1', caseRef: REF, actor: `ra:${alex.id}` })]);
    const double = stepRaCase(reset.journey, { type: 'act', action: 'reset_attempts', actor: alex, step: claimed.state.step }, ctx());
    expect(double).toMatchObject({ changed: false, effects: [], verdict: { kind: 'refused', reason: 'stale' } });
  });

  it('reset, assisted unlock and close need the owner; a note may come from any RA member but not empty', () => {
    const j = opened();
    expect(act(j, alex, 'reset_attempts').verdict).toMatchObject({ kind: 'refused', reason: 'not_claimed' });
    const claimed = act(j, alex, 'claim').journey;
    for (const action of ['reset_attempts', 'assist_unlock', 'close'] as const) {
      expect(act(claimed, blake, action, { outcome: 'no_action' }).verdict).toMatchObject({ kind: 'refused', reason: 'not_owner', owner: { name: 'Alex Ra' } });
    }
    expect(act(claimed, blake, 'note', { note: '   ' }).verdict).toMatchObject({ kind: 'refused', reason: 'empty_note' });
    const noted = act(claimed, blake, 'note', { note: ' Identity checked at the desk ' });
    expect(noted.journey.state.history.at(-1)).toMatchObject({ action: 'note', actorName: 'Blake Ra', detail: 'Identity checked at the desk' });
    expect(types(noted.effects)).not.toContain('ra.tell_person');
  });

  it('close records the outcome, mirrors the status and tells the person; every action on a closed case is refused', () => {
    const claimed = act(opened(), alex, 'claim').journey;
    expect(act(claimed, alex, 'close').verdict).toMatchObject({ kind: 'refused', reason: 'no_outcome' });
    const closed = act(claimed, alex, 'close', { outcome: 'unlocked_in_person' });
    expect(closed.journey.state).toMatchObject({ status: 'closed', outcome: { code: 'unlocked_in_person', at: T0.toISOString() } });
    expect(closed.effects).toContainEqual(expect.objectContaining({ type: 'ra.case_status', caseRef: REF, status: 'closed' }));
    expect(closed.effects).toContainEqual(expect.objectContaining({ type: 'audit', action: 'ra_case.close', details: expect.objectContaining({ outcome: 'unlocked_in_person', actorName: 'Alex Ra' }) }));
    for (const action of ['claim', 'note', 'reset_attempts', 'assist_unlock', 'close'] as const) {
      expect(act(closed.journey, alex, action, { note: 'n', outcome: 'no_action' })).toMatchObject({ changed: false, verdict: { kind: 'refused', reason: 'closed' } });
    }
  });

  it('assisted unlock moves the case on and tells the person what to do', () => {
    const claimed = act(opened(), alex, 'claim').journey;
    const r = act(claimed, alex, 'assist_unlock');
    expect(r.journey.state.status).toBe('assisted');
    expect(r.effects.find((e) => e.type === 'ra.tell_person')).toMatchObject({ text: expect.stringMatching(/assisted unlock.*you do not need to answer your security questions/i) });
    expect(r.effects).toContainEqual(expect.objectContaining({ type: 'ra.case_status', status: 'claimed' }));
    // The unlock journey is asked to start (or resume) the person's unlock with the questions skipped.
    expect(r.effects.filter((e) => e.type === 'ra.assist_unlock')).toEqual([expect.objectContaining({ personId: opened().state.personId, caseRef: REF, actor: `ra:${alex.id}` })]);
    // A repeated click (stale step) asks nothing again.
    expect(act(r.journey, alex, 'assist_unlock', { step: claimed.state.step }).effects).toEqual([]);
  });

  it('the person hears what to do next: a helpdesk opening names the helpdesk; a claim says who; a close says what next, by outcome', () => {
    const byHelpdesk = stepRaCase(newRaCaseJourney(REF, 'run-1'), { ...openEvent, reason: 'helpdesk', actor: `helpdesk:${helpdesk.id}`, actorName: 'Casey Help', note: ' called the desk ' }, ctx());
    expect(byHelpdesk.journey.state.history[0]).toMatchObject({ actorName: 'Casey Help', detail: 'called the desk' });
    const told = (r: { effects: Effect[] }) => r.effects.find((e) => e.type === 'ra.tell_person') as { text: string } | undefined;
    expect(told(byHelpdesk)?.text).toMatch(/^Casey Help from the IT helpdesk has asked your RA team.*RA-7K2Q9D.*You do not need to do anything now\.$/);
    expect(told(stepRaCase(newRaCaseJourney(REF, 'run-1'), openEvent, ctx()))?.text).toMatch(/^Your case RA-7K2Q9D is with your RA team/);
    // The person who asked ("talk to RA") gets the reference in their own turn's answer: no second message.
    expect(told(stepRaCase(newRaCaseJourney(REF, 'run-1'), { ...openEvent, reason: 'requested', actor: 'person:p1', actorName: 'Pat' }, ctx()))).toBeUndefined();
    const claimed = act(byHelpdesk.journey, alex, 'claim');
    expect(told(claimed)?.text).toBe('Alex Ra from your RA team is now looking after your case RA-7K2Q9D. They will contact you; you can also reply here with "talk to RA" to check on it.');
    const next = { unlocked_in_person: /use it with your passcode/, assisted_unlock: /should now be unlocked/, attempts_reset: /unlock your card yourself again: say "unlock"/, referred: /passed your case on/, no_action: /found nothing that needed doing/ } as const;
    for (const [outcome, re] of Object.entries(next)) {
      const text = told(act(claimed.journey, alex, 'close', { outcome: outcome as keyof typeof next }))?.text ?? '';
      expect(text).toMatch(re);
      expect(text).toMatch(/^Your case RA-7K2Q9D is closed .*say "talk to RA" and a new case opens\.$/);
      expect(text).not.toMatch(/\bPIN\b/);
    }
  });

  it('the stored state round-trips through its codec; a malformed one names the field', () => {
    const j = act(act(opened(), alex, 'claim').journey, alex, 'note', { note: 'hello' }).journey;
    expect(decodeRaCase({ personId: REF, runId: 'run-1', state: JSON.parse(JSON.stringify(j.state)) })).toEqual(j);
    expect(() => decodeRaCase({ personId: REF, runId: 'run-1', state: { ...j.state, owner: { id: 1 } } })).toThrow(/state\.owner\.id/);
  });
});

describe('RA case on the engine', () => {
  it('two claims at once: one owner, the other told who has it (decided in one compare-and-set step)', async () => {
    const h = harness();
    try {
      const def = raCaseDefinition({ now: () => h.now.value });
      await h.engine.run(def, REF, async () => openEvent);
      const claim = (actor: RaActor) => h.engine.run(def, REF, async (j) => ({ type: 'act' as const, action: 'claim' as const, actor, step: j.state.step }));
      const results = await Promise.all([claim(alex), claim(blake), claim(alex), claim(blake)]);
      const applied = results.filter((r) => r.result?.verdict.kind === 'applied');
      expect(applied).toHaveLength(1);
      const stored = decodeRaCase((await h.storage.journeys.get(journeyKey(REF, 'ra-case')))!);
      const owner = stored.state.owner!;
      for (const r of results) {
        if (r.result?.verdict.kind === 'refused') expect(r.result.verdict).toMatchObject({ reason: 'owned', owner: { id: owner.id } });
      }
      const claims = (await h.storage.audit.list({ personId: 'p1', limit: 100 })).filter((e) => e.action === 'ra_case.claim');
      expect(claims).toHaveLength(1);
      expect(claims[0]!.actor).toBe(`ra:${owner.id}`);
    } finally {
      await h.close();
    }
  });
});
