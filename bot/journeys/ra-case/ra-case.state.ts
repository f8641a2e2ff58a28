/**
 * How an RA case's journey is stored in its `JourneyRecord` (kind `ra-case`,
 * key `<caseRef>:ra-case`, the record's `personId` field holding the case
 * reference): `state` is {@link RaCaseState}, decoded with a zod schema, so a
 * malformed stored state is an error naming the field, never a cast.
 */
import { z } from 'zod';
import { AppError } from '../../../common/app-error';
import type { JourneyRecord } from '../../../storage/storage.port';
import { RA_CASE_OUTCOMES } from '../../../cards/card-actions';
import type { RaCaseJourney, RaCaseState } from './ra-case.journey';

const iso = z.string().min(1);
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const action = z.enum(['opened', 'claim', 'note', 'reset_attempts', 'assist_unlock', 'close']);

const raCaseStateSchema = z.object({
  status: z.enum(['new', 'open', 'claimed', 'assisted', 'closed']),
  step: z.number().int().nonnegative(),
  personId: z.string().nullable(),
  reason: z.enum(['answers_failed', 'requested', 'helpdesk', 'no_puk_enrolled', 'certificates_expired']).nullable(),
  openedAt: iso.nullable(),
  context: z.record(z.string(), scalar),
  owner: z.object({ id: z.string(), name: z.string(), at: iso }).nullable(),
  paused: z.object({ kind: z.enum(['unlock', 'registration']), runId: z.string(), phase: z.string(), step: z.number().int() }).nullable(),
  history: z.array(z.object({ at: iso, actor: z.string(), actorName: z.string(), action, detail: z.string().nullable() })),
  outcome: z.object({ code: z.enum(RA_CASE_OUTCOMES), at: iso }).nullable(),
}) satisfies z.ZodType<RaCaseState>;

/**
 * Decode a stored case record.
 *
 * @param rec - the journey record (kind `ra-case`; `personId` is the case reference)
 * @returns the case the pure step works on
 * @throws AppError `JOURNEY.STATE_INVALID` naming the malformed field (e.g. `state.owner.id`)
 */
export function decodeRaCase(rec: Pick<JourneyRecord, 'personId' | 'runId' | 'state'>): RaCaseJourney {
  const parsed = raCaseStateSchema.safeParse(rec.state);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = ['state', ...(issue?.path ?? []).map(String)].join('.');
    throw new AppError('JOURNEY.STATE_INVALID', `stored RA case journey is malformed at ${field}: ${issue?.message ?? 'invalid'}`, { meta: { field } });
  }
  return { caseRef: rec.personId, runId: rec.runId, state: parsed.data };
}
