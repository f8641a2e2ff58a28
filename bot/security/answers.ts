/**
 * Security answers: normalisation and slow salted hashing (scrypt, RFC 7914).
 *
 * An answer is normalised so that trivially different typings of the same
 * answer match. Comparison is constant time. Every scrypt run goes to the shared
 * hash pool (`./hash-pool`): worker threads sized to the cores, never the event
 * loop and never the libuv thread pool that file and DNS work need.
 *
 * ## Triple hashes (issue #15)
 * A person registers 4 answers and, to unlock, is asked 3 of them; the check
 * passes only when all three are right. So at registration we store one scrypt
 * hash per possible triple (4 choose 3 = 4 records, {@link hashAnswerSet}): the
 * three normalised answers with their question ids, in ascending question-id
 * order, encoded unambiguously (JSON, see {@link tripleInput}), under a fresh
 * 16-byte salt per triple and {@link ANSWER_HASH_PARAMS} (today's cost). A check
 * hashes the submitted triple once ({@link verifyAnswers}).
 *
 * Security argument: an attacker holding a copy of the store can only test a
 * guess of all three answers of a triple at once; no stored value depends on a
 * single answer, so a weak answer (a pet's name) can no longer be cracked alone
 * and then used to attack the next. Guessing cost is the PRODUCT of the three
 * answers' guess spaces times one scrypt run, instead of their SUM times one
 * scrypt run each: strictly stronger than per-answer hashes at the same cost
 * parameters. Per-triple salts stop one guess being tested against two triples
 * or two people. Limit, stated plainly: once one triple is cracked (a joint
 * search), its three answers are known and the fourth falls to a one-answer
 * search against any other triple; the joint search is what protects the set,
 * and it is the step the per-answer scheme let an attacker skip.
 * Online, nothing changes: a wrong submission is one attempt whichever answer
 * was wrong, and the person is never told which. A triple result is all right
 * or all wrong, so the unlock audit's `wrongAnswers` count is 3 on any failure.
 *
 * ## Migration of per-answer hashes (decision)
 * Registrations stored before issue #15 hold one hash per answer (no `covers`).
 * {@link verifyAnswers} keeps verifying them the old way (one scrypt per
 * submitted answer), so nothing breaks. They are NOT upgraded on a successful
 * check: that check reveals only 3 of the 4 answers, and the 4th is needed for
 * three of the four triples; writing some triples while keeping the per-answer
 * hashes would leave the weak per-answer records in place and gain nothing. The
 * person's records are replaced by 4 triple hashes the next time they register
 * (the registration journey always writes triples), and an administrator can
 * count people still on the old shape with {@link answerHashScheme}.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AnswerHash } from '../../storage/storage.port';
import { ValidationError } from '../../common/app-error';
import { SECURITY_ERROR, SecurityError } from './security.errors';
import { sharedHashPool } from './hash-pool';

export type { AnswerHash };

/** scrypt parameters for new hashes (RFC 7914; N=2^15, r=8, p=1 uses 32 MiB per hash). */
export const ANSWER_HASH_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;

/** Sizes, in bytes, and limits, in characters. */
export const ANSWER_HASH_SIZES = {
  saltBytes: 16,
  hashBytes: 32,
  /** Longest normalised answer accepted for hashing. */
  maxAnswerChars: 200,
} as const;

/** Upper bounds accepted from a stored hash, so a corrupted record cannot exhaust memory or CPU. */
const PARAM_LIMITS = { maxN: 2 ** 20, maxR: 32, maxP: 16 } as const;

/**
 * Normalise a security answer before hashing or comparing.
 *
 * Steps: Unicode NFKC (full-width digits and letters, ligatures, composed and
 * decomposed accents all become one form); lower-case with the en-GB locale;
 * NFKC again (lower-casing can leave a non-normalised sequence); trim; collapse every
 * run of inner whitespace (spaces, tabs, new lines, no-break spaces) to one space.
 * Accents are kept: `café` and `cafe` are different answers.
 *
 * @param raw - the answer as typed
 * @returns the normalised answer (possibly empty)
 * @see Unicode Standard Annex #15 (normalisation forms)
 */
export function normaliseAnswer(raw: string): string {
  return raw.normalize('NFKC').toLocaleLowerCase('en-GB').normalize('NFKC').trim().replace(/\s+/gu, ' ');
}

/** scrypt on the shared hash pool (worker threads sized to the cores, not the libuv pool; see hash-pool.ts). */
async function scryptAsync(password: string, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return (await sharedHashPool().scrypt({ password, salt, keylen, params })).key;
}

/**
 * Hash one security answer on its own: the legacy per-answer shape (no `covers`). Registration
 * uses {@link hashAnswerSet}; this remains for tools and tests that need a per-answer record.
 *
 * @param questionId - question id from the bank, e.g. `q07`
 * @param raw - the answer as typed; normalised with {@link normaliseAnswer}
 * @returns `{ questionId, salt, hash, params }`: salt 16 bytes and hash 32 bytes, base64url
 * @throws ValidationError `INPUT.ANSWER_EMPTY` when nothing is left after normalisation,
 *   `INPUT.ANSWER_TOO_LONG` when over 200 characters (the answer itself is never in the message)
 * @throws SecurityError `CRYPTO.HASH_FAILED` if scrypt fails
 */
export async function hashAnswer(questionId: string, raw: string): Promise<AnswerHash> {
  const normalised = checkedNormalised(questionId, raw);
  const salt = randomBytes(ANSWER_HASH_SIZES.saltBytes);
  const params = { ...ANSWER_HASH_PARAMS };
  const hash = await scryptAsync(normalised, salt, ANSWER_HASH_SIZES.hashBytes, params);
  return { questionId, salt: salt.toString('base64url'), hash: hash.toString('base64url'), params };
}

function decodeStored(stored: AnswerHash): { salt: Buffer; hash: Buffer } {
  const { N, r, p } = stored.params ?? ({} as AnswerHash['params']);
  const paramsOk =
    Number.isInteger(N) && N > 1 && N <= PARAM_LIMITS.maxN && (N & (N - 1)) === 0 &&
    Number.isInteger(r) && r >= 1 && r <= PARAM_LIMITS.maxR &&
    Number.isInteger(p) && p >= 1 && p <= PARAM_LIMITS.maxP;
  const salt = Buffer.from(String(stored.salt), 'base64url');
  const hash = Buffer.from(String(stored.hash), 'base64url');
  if (!paramsOk || salt.length < 16 || hash.length < 16 || hash.length > 64) {
    throw new SecurityError(SECURITY_ERROR.ANSWER_HASH_INVALID, `stored answer hash for question ${String(stored.questionId)} is malformed or has out-of-range scrypt parameters`, {
      meta: { questionId: String(stored.questionId) },
    });
  }
  return { salt, hash };
}

/**
 * Check one answer against its stored hash.
 *
 * @param stored - the stored hash (its own salt and parameters are used)
 * @param raw - the answer as typed
 * @returns true when the normalised answer matches; compared with `timingSafeEqual`.
 *   An empty or over-long answer is false (a wrong answer is an outcome, not an error).
 * @throws SecurityError `CRYPTO.ANSWER_HASH_INVALID` when the stored hash is malformed
 */
export async function verifyAnswer(stored: AnswerHash, raw: string): Promise<boolean> {
  const { salt, hash } = decodeStored(stored);
  const normalised = typeof raw === 'string' ? normaliseAnswer(raw) : '';
  const usable = usableAnswer(normalised);
  // Hash even an unusable answer, so a refusal takes as long as a wrong answer.
  const candidate = await scryptAsync(usable ? normalised : '\0', salt, hash.length, stored.params);
  return timingSafeEqual(candidate, hash) && usable;
}

/** One submitted answer. */
export interface SubmittedAnswer {
  questionId: string;
  answer: string;
}

/** Outcome for one submitted answer. */
export interface AnswerCheck {
  questionId: string;
  correct: boolean;
}

/** Domain label mixed into every triple input, so a triple hash can never equal a per-answer hash. */
const TRIPLE_LABEL = 'smartcard-assist/answer-triple/v1';

/**
 * The scrypt password for one triple: JSON `[label, [id, answer], [id, answer], [id, answer]]`,
 * the pairs in ascending question-id order (JSON escaping makes the encoding unambiguous
 * whatever the answers contain).
 */
function tripleInput(pairs: ReadonlyArray<readonly [string, string]>): string {
  const sorted = [...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([TRIPLE_LABEL, ...sorted]);
}

function usableAnswer(normalised: string): boolean {
  return normalised !== '' && normalised.length <= ANSWER_HASH_SIZES.maxAnswerChars;
}

function checkedNormalised(questionId: string, raw: string): string {
  const normalised = normaliseAnswer(raw);
  if (normalised === '') throw new ValidationError('ANSWER_EMPTY', `the answer to question ${questionId} is empty`, { questionId });
  if (normalised.length > ANSWER_HASH_SIZES.maxAnswerChars) {
    throw new ValidationError('ANSWER_TOO_LONG', `the answer to question ${questionId} is longer than ${ANSWER_HASH_SIZES.maxAnswerChars} characters`, { questionId });
  }
  return normalised;
}

/**
 * Hash a registration's 4 answers as 4 triple records, one per 3-of-4 choice (see the module comment).
 *
 * @param answers - exactly 4 answers with 4 different question ids, as typed; each normalised with {@link normaliseAnswer}
 * @returns 4 records in the order of `answers`: record i has `questionId` = `answers[i].questionId`
 *   (the question it leaves out), `covers` = the other three ids ascending, a fresh 16-byte salt,
 *   a 32-byte hash (both base64url) and `params` = {@link ANSWER_HASH_PARAMS}
 * @throws ValidationError `INPUT.ANSWER_SET` when not exactly 4 different question ids;
 *   `INPUT.ANSWER_EMPTY` / `INPUT.ANSWER_TOO_LONG` as {@link hashAnswer} (never quoting the answer)
 * @throws SecurityError `CRYPTO.HASH_FAILED` if scrypt fails
 */
export async function hashAnswerSet(answers: readonly SubmittedAnswer[]): Promise<AnswerHash[]> {
  const ids = answers.map((a) => a.questionId);
  if (answers.length !== 4 || new Set(ids).size !== 4) {
    throw new ValidationError('ANSWER_SET', `exactly 4 answers to 4 different questions are needed (got ${answers.length} answers to ${new Set(ids).size} questions)`);
  }
  const normalised = answers.map((a) => [a.questionId, checkedNormalised(a.questionId, a.answer)] as const);
  return Promise.all(
    normalised.map(async ([left]) => {
      const pairs = normalised.filter(([q]) => q !== left);
      const covers = pairs.map(([q]) => q).sort() as [string, string, string];
      const salt = randomBytes(ANSWER_HASH_SIZES.saltBytes);
      const params = { ...ANSWER_HASH_PARAMS };
      const hash = await scryptAsync(tripleInput(pairs), salt, ANSWER_HASH_SIZES.hashBytes, params);
      return { questionId: left, covers, salt: salt.toString('base64url'), hash: hash.toString('base64url'), params };
    }),
  );
}

/**
 * Which shape a person's stored answer hashes have (for migration reports).
 *
 * @param hashes - `Person.answers`
 * @returns `triple` when every record has `covers`, `per_answer` when none has, `mixed` otherwise, `none` when empty
 */
export function answerHashScheme(hashes: readonly AnswerHash[]): 'triple' | 'per_answer' | 'mixed' | 'none' {
  if (hashes.length === 0) return 'none';
  const triples = hashes.filter((h) => h.covers).length;
  return triples === hashes.length ? 'triple' : triples === 0 ? 'per_answer' : 'mixed';
}

/**
 * Check a submission of 3 answers with one scrypt run against the matching triple record.
 * Always hashes once (a dummy input under a stored salt when nothing can match) so a
 * refusal takes as long as a wrong answer.
 */
async function verifyTriple(triples: readonly AnswerHash[], submitted: readonly SubmittedAnswer[]): Promise<boolean> {
  const ids = submitted.map((s) => s.questionId).sort();
  const record = triples.find((t) => t.covers!.length === ids.length && t.covers!.every((q, i) => q === ids[i]));
  const target = record ?? triples[0]!;
  const { salt, hash } = decodeStored(target);
  const pairs = submitted.map((s) => [s.questionId, typeof s.answer === 'string' ? normaliseAnswer(s.answer) : ''] as const);
  const usable = !!record && submitted.length === 3 && new Set(ids).size === 3 && pairs.every(([, a]) => usableAnswer(a));
  const candidate = await scryptAsync(usable ? tripleInput(pairs) : '\0', salt, hash.length, target.params);
  return timingSafeEqual(candidate, hash) && usable;
}

/**
 * Check the answers given to an unlock (3 of the person's 4 questions).
 *
 * Triple records (`covers` present, see the module comment): ONE scrypt run; the result is
 * all right or all wrong, since a triple hash cannot tell which answer was wrong.
 * Legacy per-answer records: one scrypt run per submitted answer, in parallel (unchanged).
 *
 * @param hashes - the person's stored hashes (`Person.answers`, usually 4)
 * @param submitted - the answers given, e.g. 3 of the 4 questions
 * @returns one `{ questionId, correct }` per submitted answer, in the order submitted. Triple
 *   records: every entry `correct: true` only when a record covers exactly the submitted ids and
 *   the three normalised answers match; otherwise every entry `false`. Per-answer records: each
 *   answer on its own; a question with no stored hash is `correct: false`
 * @throws SecurityError `CRYPTO.ANSWER_HASH_INVALID` when a stored hash needed is malformed
 */
export async function verifyAnswers(hashes: readonly AnswerHash[], submitted: readonly SubmittedAnswer[]): Promise<AnswerCheck[]> {
  const triples = hashes.filter((h) => h.covers);
  if (triples.length > 0) {
    const correct = await verifyTriple(triples, submitted);
    return submitted.map(({ questionId }) => ({ questionId, correct }));
  }
  const byId = new Map(hashes.map((h) => [h.questionId, h] as const));
  return Promise.all(
    submitted.map(async ({ questionId, answer }): Promise<AnswerCheck> => {
      const stored = byId.get(questionId);
      if (!stored) return { questionId, correct: false };
      return { questionId, correct: await verifyAnswer(stored, answer) };
    }),
  );
}
