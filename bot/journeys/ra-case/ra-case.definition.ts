/**
 * The RA case journey as the engine steps it: initial value, stored-state
 * codec (`ra-case.state.ts`) and the pure step with the clock and ids drawn
 * here. The engine keys the record by the case reference
 * (`engine.run(definition, caseRef, ...)`, key `<caseRef>:ra-case`).
 */
import { randomUUID } from 'node:crypto';
import type { JourneyDefinition } from '../journey.engine';
import { newRaCaseJourney, stepRaCase, type RaCaseEvent, type RaCaseJourney, type RaCaseStepResult } from './ra-case.journey';
import { decodeRaCase } from './ra-case.state';

/** The engine's view of the RA case journey. */
export type RaCaseDefinition = JourneyDefinition<'ra-case', RaCaseJourney, RaCaseEvent, RaCaseStepResult>;

/**
 * Build the RA case journey's definition.
 *
 * @param deps.now - clock
 * @param deps.newId - id source for effects (default: random UUIDs)
 */
export function raCaseDefinition(deps: { now: () => Date; newId?: () => string }): RaCaseDefinition {
  const newId = deps.newId ?? randomUUID;
  return {
    kind: 'ra-case',
    // The record's `personId` is the case reference.
    initial: (caseRef, runId) => newRaCaseJourney(caseRef, runId),
    decode: decodeRaCase,
    encode: (j) => ({ runId: j.runId, state: j.state, counters: {} }),
    step: (j, event) => stepRaCase(j, event, { now: deps.now(), newId }),
  };
}
