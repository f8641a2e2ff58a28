/**
 * The unlock journey as the engine steps it: initial value, stored-state codec
 * (`unlock.state.ts`), and the pure step with fresh values drawn here (time,
 * ids, a new code sealed for its run, a case reference).
 */
import { randomInt, randomUUID } from 'node:crypto';
import { generateCaseRef, generateNumericCode, hashesEqual, keyedHash } from '../../security/codes';
import type { DerivedKeys } from '../../security/keys';
import { seal } from '../../security/seal';
import type { JourneyDefinitions } from '../journey.engine';
import { newUnlockJourney, stepUnlock, type StepContext, type UnlockRules } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';

/** Fisher-Yates with `crypto.randomInt`. */
export function shuffle<T>(items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** Keyed hash of an unlock code for run `runId` (what the journey stores and compares). */
export function unlockCodeHash(keys: Pick<DerivedKeys, 'codeHashKey'>, runId: string, code: string): string {
  return keyedHash(keys.codeHashKey, `unlock-code:${runId}`, code);
}

/**
 * Build the unlock journey's definition.
 *
 * @param deps.keys - `codeHashKey` (code hashes) and `sealKey` (the code travels sealed to the mail effect)
 * @param deps.rules - limits (attempts, code lifetime, claim timeout)
 * @param deps.now - clock
 */
export function unlockDefinition(deps: {
  keys: Pick<DerivedKeys, 'codeHashKey' | 'sealKey'>;
  rules: UnlockRules;
  now: () => Date;
  /**
   * This process's boot id (the bot's `config.instanceId`) and whether other bot processes
   * share the store (MongoDB); see {@link claimAliveFor}. Absent (the admin CLI): claims end only by timeout.
   */
  boot?: { id: string; sharedStore: boolean };
}): JourneyDefinitions['unlock'] {
  const context = (runId: string): StepContext => {
    const code = generateNumericCode(deps.rules.codeDigits);
    return {
      now: deps.now(),
      rules: deps.rules,
      newId: randomUUID,
      shuffle,
      freshCode: { hash: unlockCodeHash(deps.keys, runId, code), sealed: (r: string) => seal(deps.keys.sealKey, code, `code:${r}`) },
      freshCaseRef: generateCaseRef(),
      hashesEqual,
      ...(deps.boot ? { bootId: deps.boot.id, claimAlive: claimAliveFor(deps.boot.id, deps.boot.sharedStore) } : {}),
    };
  };
  return {
    kind: 'unlock',
    initial: (personId, runId) => newUnlockJourney(personId, runId),
    decode: decodeUnlock,
    encode: (j) => ({ runId: j.runId, ...encodeUnlock(j) }),
    step: (j, event) => stepUnlock(j, event, context(j.runId)),
  };
}

/**
 * Which answer claims may still be in progress, seen from the process of boot `bootId`.
 *
 * Boot ids are `<instance>-<start time>` (`bot/config.ts` `instanceId`). A claim made by this
 * boot is alive (its check runs here or its result is on the way). With a store no other bot
 * process shares (SQLite), any other boot is an earlier run of this bot: gone. With a shared
 * store (MongoDB, several instances) another instance may be checking, so only an earlier boot
 * of this same instance name (`BOT_INSTANCE_ID`, restarted) counts as gone; other claims end
 * by the claim timeout.
 *
 * @param bootId - this process's boot id
 * @param sharedStore - true when other bot processes may use the same store
 * @returns the predicate for `StepContext.claimAlive`
 */
export function claimAliveFor(bootId: string, sharedStore: boolean): (claimedBy: string) => boolean {
  const instanceOf = (id: string): string => (id.includes('-') ? id.slice(0, id.lastIndexOf('-')) : id);
  return (claimedBy) => claimedBy === bootId || (sharedStore && instanceOf(claimedBy) !== instanceOf(bootId));
}
