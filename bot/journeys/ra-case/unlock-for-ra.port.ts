/**
 * What the RA desk needs from the person's unlock journey (issue #12; seam
 * agreed with the unlock journey's owner, who implements it in
 * `bot/journeys/unlock/`):
 * - "talk to RA" pauses the person's running unlock, kept as it stood;
 * - "Start an RA-assisted unlock" on the case card starts the person's unlock
 *   with the security questions skipped (resuming a paused run where it
 *   stopped), finishing at their companion with an emailed code.
 *
 * The RA desk calls {@link UnlockForRa.startAssisted} from the case journey's
 * effect `ra.assist_unlock` (carried out once, after the case's own write), and
 * {@link UnlockForRa.pause} right after a case the person asked for is stored.
 */

/** The unlock journey's side of the RA desk. */
export interface UnlockForRa {
  /**
   * Pause the person's running unlock journey for case `caseRef` (nothing happens when none runs, or it
   * cannot be paused in its phase).
   *
   * @param personId - the person's id (UUID)
   * @param caseRef - the case the person asked for, e.g. `RA-7K2Q9D`
   */
  pause(personId: string, caseRef: string): Promise<void>;
  /**
   * Start (or resume, when paused) the person's unlock with the security questions skipped: RA confirmed
   * their identity in person. The person is told in their chat by the unlock journey's own card.
   *
   * @param personId - the person's id (UUID)
   * @param caseRef - the case, e.g. `RA-7K2Q9D`
   * @param actor - who started it, `ra:<Entra object id>` (audited)
   */
  startAssisted(personId: string, caseRef: string, actor: string): Promise<void>;
}
