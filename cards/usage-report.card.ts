/**
 * The usage report as a card (issue #12): what an RA member sees after typing
 * "report" in the RA channel. Counts only: no person, no secret.
 */
import type { AdaptiveCard, Fact } from './adaptive-card.types';
import { adaptiveCard, heading, paragraph } from './card-elements';

/**
 * Build the usage report card.
 *
 * @param input.range - the range in words, e.g. `from 2026-12-01 to 2026-12-07 (UTC days, both included)`
 * @param input.teams - per RA team, its counts as title/value pairs in report order
 * @returns a schema 1.5 card with one FactSet per team
 */
export function usageReportCard(input: { range: string; teams: Array<{ team: string; facts: Fact[] }> }): AdaptiveCard {
  return adaptiveCard([
    heading('Smartcard Assist usage'),
    paragraph(`Usage ${input.range}.`, { isSubtle: true }),
    ...input.teams.flatMap((t) => [paragraph(t.team, { weight: 'Bolder' }), { type: 'FactSet' as const, facts: t.facts }]),
  ]);
}
