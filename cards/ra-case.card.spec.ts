import { describe, expect, it } from 'vitest';
import { parseCardAction, RA_CASE_OUTCOMES } from './card-actions';
import { raCaseCard, type RaCaseCardInput } from './ra-case.card';

const base: RaCaseCardInput = {
  caseRef: 'RA-7K2Q9D',
  step: 3,
  status: 'open',
  ownerName: null,
  person: { displayName: 'Pat Holder', email: 'pat.holder@nhs.net', cardId: 'ab'.repeat(16) },
  reasonText: 'security answers did not match 3 times',
  openedAt: new Date('2026-12-06T09:15:00.000Z'),
  journeySteps: [
    { at: new Date('2026-12-06T09:10:00.000Z'), text: 'Started an unlock' },
    { at: new Date('2026-12-06T09:14:00.000Z'), text: 'Security answers did not match (attempt 3)' },
  ],
  attemptsUsed: 3,
  codesSent: 1,
  pausedText: null,
  caseHistory: [{ at: new Date('2026-12-06T09:15:00.000Z'), who: 'Smartcard Assist', text: 'opened the case', note: null }],
  outcomeText: null,
  canAct: true,
  notice: null,
  refreshUserIds: ['aaaaaaaa-0000-4000-8000-000000000001', 'bbbbbbbb-0000-4000-8000-000000000002'],
  outcomeTitles: { unlocked_in_person: 'Unlocked in person', assisted_unlock: 'RA-assisted unlock', attempts_reset: 'Attempts reset', referred: 'Referred', no_action: 'No action' },
};

/** Every text a person sees on the card. */
function texts(card: unknown): string {
  const out: string[] = [];
  JSON.stringify(card, (k, v: unknown) => {
    if ((k === 'text' || k === 'title' || k === 'label' || k === 'value' || k === 'placeholder') && typeof v === 'string') out.push(v);
    return v;
  });
  return out.join('\n');
}

const verbs = (card: { actions?: Array<{ verb: string }> }) => (card.actions ?? []).map((a) => a.verb);

describe('raCaseCard', () => {
  it('shows the person, the card, why the case opened, the steps with times, attempts and codes', () => {
    const card = raCaseCard(base);
    const t = texts(card);
    for (const s of ['RA-7K2Q9D', 'Pat Holder', 'pat.holder@nhs.net', 'ab'.repeat(16), 'security answers did not match 3 times', 'Started an unlock', 'Attempts used: 3. Codes sent: 1.', 'Open: nobody has claimed it yet']) {
      expect(t).toContain(s);
    }
    expect(t).toContain('{{TIME(2026-12-06T09:10:00Z)}}');
    expect(card.version).toBe('1.5');
  });

  it('offers the RA actions as Action.Execute buttons carrying the case and step, each accepted by the verb schema', () => {
    const card = raCaseCard(base);
    expect(verbs(card)).toEqual(['ra.claim', 'ra.note', 'ra.reset_attempts', 'ra.assist_unlock', 'ra.close']);
    for (const a of card.actions ?? []) {
      expect(a.type).toBe('Action.Execute');
      expect(a.data).toEqual({ caseRef: 'RA-7K2Q9D', step: '3' });
      const parsed = parseCardAction({ action: { type: 'Action.Execute', verb: a.verb, data: { ...a.data, note: 'checked', outcome: 'no_action' } } });
      expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
    }
    const outcome = card.body.find((e) => e.type === 'Input.ChoiceSet');
    expect(outcome && outcome.type === 'Input.ChoiceSet' ? outcome.choices.map((c) => c.value) : []).toEqual([...RA_CASE_OUTCOMES]);
  });

  it('refreshes for the listed members (Universal Actions) until closed', () => {
    const card = raCaseCard(base);
    expect(card.refresh).toEqual({ action: expect.objectContaining({ type: 'Action.Execute', verb: 'ra.case_refresh', data: { caseRef: 'RA-7K2Q9D' } }), userIds: [...base.refreshUserIds] });
    expect(raCaseCard({ ...base, status: 'closed', outcomeText: 'card unlocked in person' }).refresh).toBeUndefined();
  });

  it('a claimed case has no Claim button; a closed case and a non-member viewer get no buttons', () => {
    expect(verbs(raCaseCard({ ...base, status: 'claimed', ownerName: 'Alex Ra' }))).not.toContain('ra.claim');
    expect(texts(raCaseCard({ ...base, status: 'claimed', ownerName: 'Alex Ra' }))).toContain('Alex Ra');
    const closed = raCaseCard({ ...base, status: 'closed', ownerName: 'Alex Ra', outcomeText: 'card unlocked in person' });
    expect(closed.actions).toBeUndefined();
    expect(texts(closed)).toContain('Outcome: card unlocked in person.');
    expect(raCaseCard({ ...base, canAct: false }).actions).toBeUndefined();
    expect(raCaseCard({ ...base, canAct: false }).body.some((e) => e.type === 'Input.Text')).toBe(false);
  });

  it('shows values from people literally (no markdown, no date functions) and a notice for the viewer', () => {
    const card = raCaseCard({ ...base, person: { ...base.person, displayName: '[x](http://evil) {{DATE(2020-01-01T00:00:00Z)}}' }, notice: 'Alex Ra already has this case.' });
    const json = JSON.stringify(card);
    expect(json).not.toContain('{{DATE(2020');
    expect(texts(card)).toContain('Alex Ra already has this case.');
    const runs = card.body.filter((e) => e.type === 'RichTextBlock').flatMap((e) => (e.type === 'RichTextBlock' ? e.inlines.map((i) => i.text) : []));
    expect(runs.some((r) => r.startsWith('[x](http://evil)'))).toBe(true);
  });

  it('never carries a secret it was not given, and the verb schemas refuse a forged case reference', () => {
    const card = raCaseCard(base);
    expect(texts(card)).not.toMatch(/\bPIN\b|\bPUK\b|passcode is|\b\d{8}\b/);
    const forged = parseCardAction({ action: { type: 'Action.Execute', verb: 'ra.claim', data: { caseRef: 'RA-../../x', step: '3' } } });
    expect(forged).toMatchObject({ ok: false, reason: 'invalid_data', message: expect.stringContaining('caseRef must be a case reference') });
    const badOutcome = parseCardAction({ action: { type: 'Action.Execute', verb: 'ra.close', data: { caseRef: 'RA-7K2Q9D', step: '3', outcome: 'shred' } } });
    expect(badOutcome.ok).toBe(false);
  });
});
