import * as AC from 'adaptivecards';
import { describe, expect, it } from 'vitest';
import { usageReportCard } from './usage-report.card';

describe('usageReportCard', () => {
  it('shows the range and one FactSet per team, and parses with adaptivecards 3.0.6 without failures', () => {
    const card = usageReportCard({
      range: 'from 2026-12-01 to 2026-12-07 (UTC days, both included)',
      teams: [{ team: 'RA desk', facts: [{ title: 'Registrations', value: '4' }, { title: 'Lockouts', value: '1' }] }],
    });
    const json = JSON.stringify(card);
    expect(json).toContain('Usage from 2026-12-01 to 2026-12-07 (UTC days, both included).');
    expect(card.body.filter((e) => e.type === 'FactSet')).toEqual([{ type: 'FactSet', facts: [{ title: 'Registrations', value: '4' }, { title: 'Lockouts', value: '1' }] }]);
    expect(card.actions).toBeUndefined();
    const sdk = new AC.AdaptiveCard();
    const context = new AC.SerializationContext();
    sdk.parse(card, context);
    expect(context.eventCount).toBe(0);
    expect(sdk.validateProperties().validationEvents.map((e) => e.message)).toEqual([]);
  });
});
