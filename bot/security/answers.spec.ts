import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { scryptSync } from 'node:crypto';
import { ANSWER_HASH_PARAMS, answerHashScheme, hashAnswer, hashAnswerSet, normaliseAnswer, verifyAnswer, verifyAnswers, type AnswerHash } from './answers';

describe('normaliseAnswer', () => {
  it.each([
    ['case', 'Fluffy', 'fluffy'],
    ['upper case', 'LONDON', 'london'],
    ['trim', '  rex \t', 'rex'],
    ['inner runs collapse', 'St   Mary\t\tMead', 'st mary mead'],
    ['new lines collapse', 'first\r\nsecond', 'first second'],
    ['no-break space (NFKC to space)', 'Old\u00A0Trafford', 'old trafford'],
    ['em space', 'Old\u2003Trafford', 'old trafford'],
    ['full-width digits', '１９８４', '1984'],
    ['full-width letters', 'ＦＬＵＦＦＹ', 'fluffy'],
    ['ligature', 'ﬁsh', 'fish'],
    ['decomposed accent composes', 'Cafe\u0301', 'café'],
    ['composed accent kept', 'CAFÉ', 'café'],
    ['superscript digit', 'x²', 'x2'],
    ['roman numeral', 'Ⅻ', 'xii'],
    ['already normal', 'blue', 'blue'],
    ['only spaces', '   ', ''],
  ])('%s: %j -> %j', (_name, raw, expected) => {
    expect(normaliseAnswer(raw)).toBe(expected);
  });

  it('makes composed and decomposed forms equal, but keeps accents distinct from plain letters', () => {
    expect(normaliseAnswer('Zoë')).toBe(normaliseAnswer('Zoe\u0308'));
    expect(normaliseAnswer('Zoë')).not.toBe(normaliseAnswer('Zoe'));
  });

  it('is idempotent', () => {
    for (const raw of ['İstanbul', 'Straße', 'Cafe\u0301  X', 'ＡＢＣ　ｄ']) {
      const once = normaliseAnswer(raw);
      expect(normaliseAnswer(once)).toBe(once);
    }
  });
});

describe('hashAnswer / verifyAnswer (scrypt)', () => {
  it('stores a salted scrypt hash with the documented parameters, not the answer', async () => {
    const h = await hashAnswer('q07', 'Fluffy the Cat');
    expect(h.questionId).toBe('q07');
    expect(h.params).toEqual({ N: 2 ** 15, r: 8, p: 1 });
    expect(h.params).toEqual(ANSWER_HASH_PARAMS);
    expect(Buffer.from(h.salt, 'base64url')).toHaveLength(16);
    expect(Buffer.from(h.hash, 'base64url')).toHaveLength(32);
    expect(JSON.stringify(h).toLowerCase()).not.toContain('fluffy');
  });

  it('verifies the right answer, in any normalised-equal form, and refuses a wrong one', async () => {
    const h = await hashAnswer('q01', 'St Mary Mead');
    expect(await verifyAnswer(h, 'St Mary Mead')).toBe(true);
    expect(await verifyAnswer(h, '  st  MARY\tmead ')).toBe(true);
    expect(await verifyAnswer(h, 'ＳＴ ＭＡＲＹ ＭＥＡＤ')).toBe(true);
    expect(await verifyAnswer(h, 'St Mary Meade')).toBe(false);
    expect(await verifyAnswer(h, 'StMaryMead')).toBe(false);
    expect(await verifyAnswer(h, '')).toBe(false);
  });

  it('uses a fresh salt per answer', async () => {
    const [a, b] = await Promise.all([hashAnswer('q01', 'same'), hashAnswer('q01', 'same')]);
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
  });

  it('refuses an empty or over-long answer without quoting it', async () => {
    await expect(hashAnswer('q02', ' \t ')).rejects.toMatchObject({ code: 'INPUT.ANSWER_EMPTY' });
    const long = 'secretword'.repeat(30);
    const err = await hashAnswer('q02', long).catch((e: unknown) => e as AppError);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('INPUT.ANSWER_TOO_LONG');
    expect(JSON.stringify((err as AppError).toJSON())).not.toContain('secretword');
  });

  it('refuses a malformed stored hash with CRYPTO.ANSWER_HASH_INVALID and no answer in the message', async () => {
    const good = await hashAnswer('q03', 'rex');
    const bad: AnswerHash[] = [
      { ...good, params: { N: 2 ** 30, r: 8, p: 1 } },
      { ...good, params: { N: 1000, r: 8, p: 1 } },
      { ...good, salt: '' },
      { ...good, hash: 'abc' },
    ];
    for (const h of bad) {
      const err = await verifyAnswer(h, 'rex-the-answer').catch((e: unknown) => e as AppError);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('CRYPTO.ANSWER_HASH_INVALID');
      expect(JSON.stringify((err as AppError).toJSON())).not.toContain('rex-the-answer');
    }
  });

  it('honours the parameters stored with an older hash', async () => {
    const h = await hashAnswer('q04', 'blue');
    // A hash made with other parameters (as a future upgrade would leave behind) still verifies with its own.
    const { scryptSync } = await import('node:crypto');
    const salt = Buffer.from(h.salt, 'base64url');
    const old: AnswerHash = { questionId: 'q04', salt: h.salt, hash: scryptSync('blue', salt, 32, { N: 1024, r: 8, p: 1 }).toString('base64url'), params: { N: 1024, r: 8, p: 1 } };
    expect(await verifyAnswer(old, 'BLUE')).toBe(true);
    expect(await verifyAnswer(old, 'red')).toBe(false);
  });
});

describe('verifyAnswers', () => {
  it('checks several answers in parallel and reports per question, in submitted order', async () => {
    const stored = await Promise.all([hashAnswer('q01', 'one'), hashAnswer('q02', 'two'), hashAnswer('q03', 'three'), hashAnswer('q04', 'four')]);
    const result = await verifyAnswers(stored, [
      { questionId: 'q03', answer: 'THREE' },
      { questionId: 'q01', answer: 'wrong' },
      { questionId: 'q04', answer: ' four ' },
      { questionId: 'q99', answer: 'one' },
    ]);
    expect(result).toEqual([
      { questionId: 'q03', correct: true },
      { questionId: 'q01', correct: false },
      { questionId: 'q04', correct: true },
      { questionId: 'q99', correct: false },
    ]);
  });

  it('does not block the event loop while hashing', async () => {
    const stored = await hashAnswer('q01', 'one');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const start = Date.now();
    await verifyAnswers(
      [stored],
      Array.from({ length: 6 }, () => ({ questionId: 'q01', answer: 'one' })),
    );
    const elapsed = Date.now() - start;
    clearInterval(timer);
    // A blocking implementation would give ~0 ticks during the whole scrypt work.
    expect(ticks).toBeGreaterThan(Math.min(10, elapsed / 10));
  });
});

describe('hashAnswerSet / verifyAnswers with triple hashes (issue #15)', () => {
  const ANSWERS = [
    { questionId: 'q07', answer: 'Fluffy' },
    { questionId: 'q02', answer: 'St Mary Mead' },
    { questionId: 'q11', answer: 'Blue Peter' },
    { questionId: 'q04', answer: '1984' },
  ];
  let stored: AnswerHash[];
  const ready = hashAnswerSet(ANSWERS).then((h) => (stored = h));

  it('stores 4 triple records, one per left-out question, in input order, with fresh salts and no answer text', async () => {
    await ready;
    expect(stored.map((h) => h.questionId)).toEqual(['q07', 'q02', 'q11', 'q04']);
    expect(stored.map((h) => h.covers)).toEqual([
      ['q02', 'q04', 'q11'],
      ['q04', 'q07', 'q11'],
      ['q02', 'q04', 'q07'],
      ['q02', 'q07', 'q11'],
    ]);
    for (const h of stored) {
      expect(h.params).toEqual(ANSWER_HASH_PARAMS);
      expect(Buffer.from(h.salt, 'base64url')).toHaveLength(16);
      expect(Buffer.from(h.hash, 'base64url')).toHaveLength(32);
    }
    expect(new Set(stored.map((h) => h.salt)).size).toBe(4);
    const text = JSON.stringify(stored).toLowerCase();
    for (const a of ANSWERS) expect(text).not.toContain(normaliseAnswer(a.answer));
    expect(answerHashScheme(stored)).toBe('triple');
  });

  it('is the scrypt of the three normalised answers together, in question-id order (recomputed independently)', async () => {
    await ready;
    const rec = stored.find((h) => h.questionId === 'q11')!;
    const input = JSON.stringify(['smartcard-assist/answer-triple/v1', ['q02', 'st mary mead'], ['q04', '1984'], ['q07', 'fluffy']]);
    const expected = scryptSync(input, Buffer.from(rec.salt, 'base64url'), 32, { ...rec.params, maxmem: 64 * 1024 * 1024 });
    expect(rec.hash).toBe(expected.toString('base64url'));
  });

  it('passes every 3-of-4 choice in any order and typing; all entries true', async () => {
    await ready;
    for (let left = 0; left < 4; left++) {
      const asked = ANSWERS.filter((_, i) => i !== left).reverse().map((a) => ({ questionId: a.questionId, answer: `  ${a.answer.toUpperCase()} ` }));
      expect(await verifyAnswers(stored, asked)).toEqual(asked.map((a) => ({ questionId: a.questionId, correct: true })));
    }
  });

  it('fails the whole triple when any one answer is wrong, without saying which', async () => {
    await ready;
    const asked = [
      { questionId: 'q02', answer: 'St Mary Mead' },
      { questionId: 'q04', answer: '1985' },
      { questionId: 'q07', answer: 'Fluffy' },
    ];
    expect(await verifyAnswers(stored, asked)).toEqual(asked.map((a) => ({ questionId: a.questionId, correct: false })));
  });

  it('refuses an answer moved to another question, a repeated question, an unknown question, two or four answers, and an empty answer', async () => {
    await ready;
    const cases: Array<Array<{ questionId: string; answer: string }>> = [
      [{ questionId: 'q02', answer: 'Fluffy' }, { questionId: 'q07', answer: 'St Mary Mead' }, { questionId: 'q04', answer: '1984' }],
      [{ questionId: 'q02', answer: 'St Mary Mead' }, { questionId: 'q02', answer: 'St Mary Mead' }, { questionId: 'q04', answer: '1984' }],
      [{ questionId: 'q02', answer: 'St Mary Mead' }, { questionId: 'q99', answer: 'x' }, { questionId: 'q04', answer: '1984' }],
      [{ questionId: 'q02', answer: 'St Mary Mead' }, { questionId: 'q04', answer: '1984' }],
      ANSWERS,
      [{ questionId: 'q02', answer: ' ' }, { questionId: 'q07', answer: 'Fluffy' }, { questionId: 'q04', answer: '1984' }],
    ];
    for (const asked of cases) {
      const result = await verifyAnswers(stored, asked);
      expect(result.map((r) => r.questionId)).toEqual(asked.map((a) => a.questionId));
      expect(result.every((r) => !r.correct)).toBe(true);
    }
  });

  it('refuses a set that is not 4 different questions, or has an empty answer, without quoting answers', async () => {
    await expect(hashAnswerSet(ANSWERS.slice(0, 3))).rejects.toMatchObject({ code: 'INPUT.ANSWER_SET' });
    await expect(hashAnswerSet([...ANSWERS.slice(0, 3), { questionId: 'q07', answer: 'other' }])).rejects.toMatchObject({ code: 'INPUT.ANSWER_SET' });
    const err = (await hashAnswerSet([...ANSWERS.slice(0, 3), { questionId: 'q09', answer: 'secretword'.repeat(30) }]).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('INPUT.ANSWER_TOO_LONG');
    expect(JSON.stringify(err.toJSON())).not.toContain('secretword');
  });

  it('still verifies legacy per-answer records the old way (migration), per answer', async () => {
    const legacy = await Promise.all(ANSWERS.map((a) => hashAnswer(a.questionId, a.answer)));
    expect(answerHashScheme(legacy)).toBe('per_answer');
    expect(await verifyAnswers(legacy, [{ questionId: 'q07', answer: 'fluffy' }, { questionId: 'q04', answer: 'wrong' }, { questionId: 'q02', answer: 'st mary mead' }])).toEqual([
      { questionId: 'q07', correct: true },
      { questionId: 'q04', correct: false },
      { questionId: 'q02', correct: true },
    ]);
    expect(answerHashScheme([])).toBe('none');
    expect(answerHashScheme([legacy[0]!, { ...legacy[1]!, covers: ['q01', 'q03', 'q05'] }])).toBe('mixed');
  });
});
