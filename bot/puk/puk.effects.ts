/**
 * The PUK custody's effects, as a journey step asks for them. They are stored
 * with the step's new state in one write (the journey's outbox) and carried
 * out by {@link PukCustody} through the effect runner. No secret in them: the
 * PUKs stay sealed on the card record until the moment of sending.
 */

/**
 * Release the card's PUK pair (current and the rotation PUK) to the one paired
 * companion unblocking that card for that run. Ensures a pending rotation PUK
 * on the card record first (compare-and-set).
 */
export interface PukReleaseEffect {
  type: 'puk.release';
  /** Unique id (UUID); the custody's audit entries for it are keyed on it. */
  id: string;
  personId: string;
  /** The companion that submitted the code (or resumed). */
  deviceId: string;
  cardId: string;
  /** The unlock run (journey id on the wire). */
  runId: string;
  /**
   * The link session the pair may go to (the one that presented the accepted code, or resumed
   * with it); a later session of the same device gets nothing (issue #10). Absent in effects
   * stored before issue #10; null when the step knew no session.
   */
  linkSession?: string | null;
}

/** The card now holds the pending rotation PUK: make it the current one. */
export interface PukCommitEffect {
  type: 'puk.commit';
  id: string;
  personId: string;
  /** The companion that reported the change. */
  deviceId: string;
  cardId: string;
  runId: string;
}
