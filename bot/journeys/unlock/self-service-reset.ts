/**
 * The one reset of a person's self-service unlock: clears the lock and the
 * answer-attempt count kept in the unlock journey record, in one
 * compare-and-set step of that journey (event `reset`), with an audit entry
 * naming the actor and an effect that clears the `Person.selfServiceLock`
 * mirror (also a lock stored there by older versions).
 *
 * Callers: `npm run admin -- reset-self-service --person ...` (actor `admin`)
 * and, later, the RA desk (actor e.g. `ra:<staff id>`).
 */
import type { JourneyRecord } from '../../../storage/storage.port';
import type { JourneyEngine } from '../journey.engine';

/** Outcome of {@link resetSelfService}. */
export interface SelfServiceResetResult {
  /** The unlock journey record after the reset (its effects already carried out). */
  record: JourneyRecord;
  /** The case reference of the lock that was cleared, or null when none was set in the record. */
  clearedCaseRef: string | null;
  /** Answer attempts counted before the reset. */
  attemptsBefore: number;
}

/**
 * Reset a person's self-service unlock (lock and attempt count).
 *
 * @param engine - the journey engine (stores the step with its effects in one write, then runs them)
 * @param personId - the person's id (UUID)
 * @param actor - who resets, for the audit entry: `admin`, or `ra:<staff id>`
 * @param note - free text for the audit entry (no secrets), or null
 * @returns the record after the reset, the case reference cleared and the attempts counted before
 * @throws AppError `JOURNEY.BUSY` when the record kept changing (8 lost races in a row)
 */
export async function resetSelfService(engine: JourneyEngine, personId: string, actor: string, note: string | null): Promise<SelfServiceResetResult> {
  let clearedCaseRef: string | null = null;
  let attemptsBefore = 0;
  const { record } = await engine.run(engine.definitions.unlock, personId, async (journey) => {
    clearedCaseRef = journey.lock?.caseRef ?? null;
    attemptsBefore = journey.counters.answerAttempts;
    return { type: 'reset' as const, actor, note };
  });
  return { record, clearedCaseRef, attemptsBefore };
}
