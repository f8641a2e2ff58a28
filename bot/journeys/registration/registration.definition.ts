/**
 * The registration journey as the engine steps it: initial value, stored-state
 * codec (`registration.state.ts`), and the pure step with fresh values drawn
 * here (time, ids, a new code sealed for its run, a case reference).
 */
import { randomUUID } from 'node:crypto';
import { generateCaseRef, generateNumericCode, hashesEqual, keyedHash } from '../../security/codes';
import type { DerivedKeys } from '../../security/keys';
import { seal } from '../../security/seal';
import type { JourneyDefinitions } from '../journey.engine';
import { newRegistrationJourney, stepRegistration, type RegistrationContext } from './registration.journey';
import { decodeRegistration } from './registration.state';

/** Keyed hash of a registration code for run `runId`. */
export function registrationCodeHash(keys: Pick<DerivedKeys, 'codeHashKey'>, runId: string, code: string): string {
  return keyedHash(keys.codeHashKey, `registration-code:${runId}`, code);
}

/**
 * Build the registration journey's definition.
 *
 * @param deps.keys - `codeHashKey` and `sealKey`
 * @param deps.approvedDomains - email domains a registrant may use
 * @param deps.now - clock
 */
export function registrationDefinition(deps: { keys: Pick<DerivedKeys, 'codeHashKey' | 'sealKey'>; approvedDomains: readonly string[]; now: () => Date }): JourneyDefinitions['registration'] {
  const context = (runId: string): RegistrationContext => {
    const code = generateNumericCode(8);
    return {
      now: deps.now(),
      approvedDomains: deps.approvedDomains,
      newId: randomUUID,
      freshCode: { hash: registrationCodeHash(deps.keys, runId, code), sealed: (r: string) => seal(deps.keys.sealKey, code, `code:${r}`) },
      freshCaseRef: generateCaseRef(),
      hashesEqual,
    };
  };
  return {
    kind: 'registration',
    initial: (personId, runId) => newRegistrationJourney(personId, runId),
    decode: decodeRegistration,
    encode: (j) => ({ runId: j.runId, state: j.state, counters: {} }),
    step: (j, event) => stepRegistration(j, event, context(j.runId)),
  };
}
