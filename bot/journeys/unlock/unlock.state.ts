/**
 * How the unlock journey is stored in its `JourneyRecord` (`state` and
 * `counters`), decoded with a zod schema: a malformed stored state is an error
 * naming the field, never a cast.
 *
 * Stored `state` (version 2): the run's `UnlockState` fields, flat (so `state.phase`
 * reads as before), plus `v: 2`, `lock` and `resetAt`.
 * Records written before issue #9 hold a bare `UnlockState` and count failures
 * in `counters.answerFailures`; they decode as version 2 (a `locked_out` run
 * becomes the record's lock, so an upgrade cannot unlock anyone).
 */
import { z } from 'zod';
import { AppError } from '../../../common/app-error';
import type { JourneyRecord, SelfServiceLock } from '../../../storage/storage.port';
import type { UnlockAssist, UnlockJourney, UnlockState } from './unlock.journey';

const iso = z.string().min(1);
const step = z.number().int().nonnegative();

const problem = z.enum(['not_registered', 'no_companion', 'companion_offline', 'no_card', 'wrong_card', 'not_blocked', 'card_unreadable', 'no_puk', 'too_many_codes', 'not_enrolled', 'no_contact', 'certificates_expired']);

const issuedCode = z.object({
  hash: z.string(),
  issuedAt: iso,
  expiresAt: iso,
  wrongTries: z.number().int().nonnegative(),
  mailed: z.boolean(),
  channel: z.enum(['email', 'sms']).optional(),
  to: z.string().regex(/^\+[1-9][0-9]{6,14}$/).optional(),
});
const checkingCard = z.object({
  phase: z.literal('checking_card'),
  step,
  deviceId: z.string(),
  // An RA-assisted resume: the run's code, kept while the card is read again.
  kept: z.object({ deviceId: z.string(), cardId: z.string(), code: issuedCode, codesIssued: z.number().int().nonnegative() }).optional(),
});
const cardProblem = z.object({ phase: z.literal('card_problem'), step, problem, deviceId: z.string().nullable(), caseRef: z.string().min(1).optional(), expiredAt: iso.optional() });
const answering = z.object({ phase: z.literal('answering'), step, deviceId: z.string(), cardId: z.string(), questionIds: z.array(z.string()), lastResult: z.literal('wrong').nullable() });
const codeSent = z.object({
  phase: z.literal('code_sent'),
  step,
  deviceId: z.string(),
  cardId: z.string(),
  code: issuedCode,
  codesIssued: z.number().int().nonnegative(),
  page: z.enum(['opened', 'notified', 'none']).optional(),
});

/** Schema of {@link UnlockState}, one variant per phase. */
export const unlockStateSchema = z.discriminatedUnion('phase', [
  z.object({ phase: z.literal('idle'), step }),
  checkingCard,
  cardProblem,
  answering,
  // Issue #12: a run paused while RA helps, kept as it stood.
  z.object({ phase: z.literal('paused'), step, caseRef: z.string().min(1), at: iso, from: z.discriminatedUnion('phase', [checkingCard, cardProblem, answering, codeSent]) }),
  z.object({ phase: z.literal('checking_answers'), step, deviceId: z.string(), cardId: z.string(), questionIds: z.array(z.string()), claimId: z.string(), claimedAt: iso, claimedBy: z.string().min(1).optional() }),
  // Issue #14, code-only: the person picks email or SMS.
  z.object({ phase: z.literal('choosing_channel'), step, deviceId: z.string(), cardId: z.string(), email: z.string().min(3), mobile: z.string().regex(/^\+447[0-9]{9}$/) }),
  codeSent,
  z.object({
    phase: z.literal('unblocking'),
    step,
    deviceId: z.string(),
    cardId: z.string(),
    authorisedAt: iso,
    interrupted: z.boolean(),
    // Issue #10; absent in runs stored before it (a resume then needs the code, which was not kept: start again).
    linkSession: z.string().nullable().default(null),
    codeHash: z.string().nullable().default(null),
    codeWrongTries: z.number().int().nonnegative().default(0),
  }),
  z.object({ phase: z.literal('done'), step, at: iso, cardId: z.string() }),
  z.object({ phase: z.literal('locked_out'), step, caseRef: z.string() }),
  z.object({ phase: z.literal('ended'), step, reason: z.enum(['cancelled', 'expired', 'failed']), detail: z.string() }),
]) satisfies z.ZodType<UnlockState>;

const lockSchema = z.object({ at: iso, caseRef: z.string(), reason: z.enum(['answers_failed', 'locked_by_ra']) }) satisfies z.ZodType<SelfServiceLock>;

/** What version 2 adds beside the run's own fields (stored flat, so `state.phase` still reads as before). */
const assistSchema = z.object({ caseRef: z.string().min(1), actor: z.string().min(1), at: iso, runId: z.string().min(1).optional() });
const lockPartSchema = z.object({ v: z.literal(2), lock: lockSchema.nullable(), resetAt: iso.nullable(), codeTimes: z.array(iso).max(100).optional(), assist: assistSchema.nullable().optional(), renewal: z.object({ cardId: z.string(), caseRef: z.string().min(1) }).nullable().optional() });

/**
 * Decode a stored unlock record.
 *
 * @param rec - the journey record (kind `unlock`)
 * @returns the journey the pure step works on
 * @throws AppError `JOURNEY.STATE_INVALID` naming the malformed field (e.g. `state.step`)
 */
export function decodeUnlock(rec: Pick<JourneyRecord, 'personId' | 'runId' | 'state' | 'counters' | 'updatedAt'>): UnlockJourney {
  const attempts = attemptsOf(rec.counters);
  const raw = rec.state as { v?: unknown; lock?: unknown } | null;
  if (raw && typeof raw === 'object' && raw.v === 2) {
    const meta = lockPartSchema.safeParse(raw);
    if (!meta.success) throw invalid(meta.error, 'state');
    const run = unlockStateSchema.safeParse(raw);
    if (!run.success) throw invalid(run.error, 'state');
    return { personId: rec.personId, runId: rec.runId, state: run.data, counters: { answerAttempts: attempts }, lock: meta.data.lock, resetAt: meta.data.resetAt, ...(meta.data.codeTimes ? { codeTimes: meta.data.codeTimes } : {}), ...(meta.data.assist ? { assist: meta.data.assist } : {}), ...(meta.data.renewal ? { renewal: meta.data.renewal } : {}) };
  }
  const legacy = unlockStateSchema.safeParse(raw);
  if (!legacy.success) throw invalid(legacy.error, 'state');
  const run = legacy.data;
  // A lock stored beside an old-format state (no `v`) counts: reading it as unlocked would undo it.
  let stored: SelfServiceLock | null = null;
  if (raw && typeof raw === 'object' && 'lock' in raw) {
    const parsed = lockSchema.nullable().safeParse(raw.lock);
    if (!parsed.success) throw invalid(parsed.error, 'state.lock');
    stored = parsed.data;
  }
  const lock: SelfServiceLock | null = stored ?? (run.phase === 'locked_out' ? { at: rec.updatedAt, caseRef: run.caseRef, reason: 'answers_failed' } : null);
  return { personId: rec.personId, runId: rec.runId, state: run, counters: { answerAttempts: attempts }, lock, resetAt: null };
}

/** The record's `state` and `counters` for a journey (inverse of {@link decodeUnlock}). */
export function encodeUnlock(journey: UnlockJourney): { state: UnlockState & { v: 2; lock: SelfServiceLock | null; resetAt: string | null; codeTimes?: string[]; assist?: UnlockAssist; renewal?: { cardId: string; caseRef: string } }; counters: Record<string, number> } {
  return {
    state: {
      ...journey.state,
      v: 2,
      lock: journey.lock,
      resetAt: journey.resetAt,
      ...(journey.codeTimes && journey.codeTimes.length > 0 ? { codeTimes: journey.codeTimes } : {}),
      ...(journey.assist ? { assist: journey.assist } : {}),
      ...(journey.renewal ? { renewal: journey.renewal } : {}),
    },
    counters: { answerAttempts: journey.counters.answerAttempts },
  };
}

/** Stored answer attempts (`answerFailures` in records before issue #9): a whole number >= 0, else refused naming the field. */
function attemptsOf(counters: Record<string, unknown>): number {
  const field = counters['answerAttempts'] !== undefined ? 'answerAttempts' : counters['answerFailures'] !== undefined ? 'answerFailures' : null;
  if (field === null) return 0;
  const parsed = z.number().int().nonnegative().safeParse(counters[field]);
  if (!parsed.success) throw invalid(parsed.error, `counters.${field}`);
  return parsed.data;
}

function invalid(error: z.ZodError, root: string): AppError {
  const issue = error.issues[0];
  const field = [root, ...(issue?.path ?? []).map(String)].join('.');
  return new AppError('JOURNEY.STATE_INVALID', `stored unlock journey is malformed at ${field}: ${issue?.message ?? 'invalid'}`, { meta: { field, journey: 'unlock' } });
}
