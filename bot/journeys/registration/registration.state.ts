/**
 * How the registration journey is stored in its `JourneyRecord.state`,
 * decoded with a zod schema: a malformed stored state is an error naming the
 * field, never a cast. The stored shape is the {@link RegistrationState} itself.
 */
import { z } from 'zod';
import { AppError } from '../../../common/app-error';
import type { JourneyRecord } from '../../../storage/storage.port';
import { AnswerHashSchema } from '../../../storage/storage.schemas';
import type { RegistrationJourney, RegistrationState } from './registration.journey';

const step = z.number().int().nonnegative();
const iso = z.string().min(1);
const carried = { codeTimes: z.array(iso) };
const answerHash = AnswerHashSchema;
const cardCheck = z.enum(['waiting', 'wrong_passcode', 'no_card', 'no_companion', 'companion_offline', 'card_error']);

/** Schema of {@link RegistrationState}, one variant per phase. */
export const registrationStateSchema = z.discriminatedUnion('phase', [
  z.object({ phase: z.literal('idle'), step, ...carried }),
  z.object({
    phase: z.literal('contact'),
    step,
    email: z.string(),
    mobile: z.string(),
    prefilled: z.enum(['directory', 'registered', 'none']),
    errors: z.object({ email: z.string().optional(), mobile: z.string().optional() }),
    ...carried,
  }),
  z.object({ phase: z.literal('card_check'), step, email: z.string(), mobile: z.string().nullable(), deviceId: z.string().nullable(), check: cardCheck, triesLeft: z.number().int().nullable(), ...carried }),
  z.object({ phase: z.literal('questions'), step, email: z.string(), mobile: z.string().nullable(), deviceId: z.string(), cardId: z.string(), chosen: z.array(z.string()), error: z.string().nullable(), ...carried }),
  z.object({
    phase: z.literal('confirm_email'),
    step,
    email: z.string(),
    mobile: z.string().nullable(),
    deviceId: z.string(),
    cardId: z.string(),
    answers: z.array(answerHash),
    error: z.string().nullable(),
    typedEmail: z.string().optional(),
    ...carried,
  }),
  z.object({
    phase: z.literal('code_sent'),
    step,
    email: z.string(),
    sentTo: z.string(),
    mobile: z.string().nullable(),
    deviceId: z.string(),
    cardId: z.string(),
    answers: z.array(answerHash),
    code: z.object({ hash: z.string(), issuedAt: iso, expiresAt: iso, mailed: z.boolean() }),
    wrongTries: z.number().int().nonnegative(),
    error: z.string().nullable(),
    ...carried,
  }),
  z.object({ phase: z.literal('done'), step, at: iso, email: z.string(), mobile: z.string().nullable(), selfUnlockReady: z.boolean(), ...carried }),
  z.object({ phase: z.literal('problem'), step, problem: z.enum(['ra_locked', 'card_taken', 'card_blocked']), detail: z.string(), ...carried }),
  z.object({ phase: z.literal('ended'), step, reason: z.enum(['cancelled', 'expired', 'failed', 'too_many_tries']), detail: z.string(), ...carried }),
]);

/**
 * Decode a stored registration record.
 *
 * @throws AppError `JOURNEY.STATE_INVALID` naming the malformed field (e.g. `state.code.expiresAt`)
 */
export function decodeRegistration(rec: Pick<JourneyRecord, 'personId' | 'runId' | 'state'>): RegistrationJourney {
  const r = registrationStateSchema.safeParse(rec.state);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = ['state', ...(issue?.path ?? []).map(String)].join('.');
    throw new AppError('JOURNEY.STATE_INVALID', `stored registration journey is malformed at ${field}: ${issue?.message ?? 'invalid'}`, { meta: { field, journey: 'registration' } });
  }
  const state: RegistrationState = r.data;
  return { personId: rec.personId, runId: rec.runId, state };
}
