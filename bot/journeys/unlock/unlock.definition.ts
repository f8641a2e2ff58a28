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
export function unlockDefinition(deps: { keys: Pick<DerivedKeys, 'codeHashKey' | 'sealKey'>; rules: UnlockRules; now: () => Date }): JourneyDefinitions['unlock'] {
  const context = (runId: string): StepContext => {
    const code = generateNumericCode(8);
    return {
      now: deps.now(),
      rules: deps.rules,
      newId: randomUUID,
      shuffle,
      freshCode: { hash: unlockCodeHash(deps.keys, runId, code), sealed: (r: string) => seal(deps.keys.sealKey, code, `code:${r}`) },
      freshCaseRef: generateCaseRef(),
      hashesEqual,
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
