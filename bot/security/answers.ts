/**
 * Security answers: normalisation and slow salted hashing (scrypt).
 *
 * An answer is normalised so that trivially different typings of the same
 * answer match, then hashed with scrypt (RFC 7914) under a fresh 16-byte salt.
 * Hashing runs on the libuv thread pool (async `crypto.scrypt`), never on the
 * event loop; comparison is constant time.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { AnswerHash } from '../../storage/storage.port';
import { ValidationError } from '../../common/app-error';
import { SECURITY_ERROR, SecurityError } from './security.errors';

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

function scryptAsync(password: string, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => {
      if (err) reject(new SecurityError(SECURITY_ERROR.HASH_FAILED, 'scrypt failed', { cause: err, meta: { N: params.N, r: params.r, p: params.p } }));
      else resolve(key);
    });
  });
}

/**
 * Hash one security answer for storage.
 *
 * @param questionId - question id from the bank, e.g. `q07`
 * @param raw - the answer as typed; normalised with {@link normaliseAnswer}
 * @returns `{ questionId, salt, hash, params }`: salt 16 bytes and hash 32 bytes, base64url
 * @throws ValidationError `INPUT.ANSWER_EMPTY` when nothing is left after normalisation,
 *   `INPUT.ANSWER_TOO_LONG` when over 200 characters (the answer itself is never in the message)
 * @throws SecurityError `CRYPTO.HASH_FAILED` if scrypt fails
 */
export async function hashAnswer(questionId: string, raw: string): Promise<AnswerHash> {
  const normalised = normaliseAnswer(raw);
  if (normalised === '') throw new ValidationError('ANSWER_EMPTY', `the answer to question ${questionId} is empty`, { questionId });
  if (normalised.length > ANSWER_HASH_SIZES.maxAnswerChars) {
    throw new ValidationError('ANSWER_TOO_LONG', `the answer to question ${questionId} is longer than ${ANSWER_HASH_SIZES.maxAnswerChars} characters`, { questionId });
  }
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
  const usable = normalised !== '' && normalised.length <= ANSWER_HASH_SIZES.maxAnswerChars;
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

/**
 * Check several answers at once; the scrypt runs proceed in parallel on the thread pool.
 *
 * @param hashes - the person's stored hashes (usually 4)
 * @param submitted - the answers given, e.g. 3 of the 4 questions
 * @returns one `{ questionId, correct }` per submitted answer, in the order submitted; a
 *   question with no stored hash is `correct: false`
 * @throws SecurityError `CRYPTO.ANSWER_HASH_INVALID` when a stored hash needed is malformed
 */
export async function verifyAnswers(hashes: readonly AnswerHash[], submitted: readonly SubmittedAnswer[]): Promise<AnswerCheck[]> {
  const byId = new Map(hashes.map((h) => [h.questionId, h] as const));
  return Promise.all(
    submitted.map(async ({ questionId, answer }): Promise<AnswerCheck> => {
      const stored = byId.get(questionId);
      if (!stored) return { questionId, correct: false };
      return { questionId, correct: await verifyAnswer(stored, answer) };
    }),
  );
}
