import { describe, expect, it } from 'vitest';
import { canIssueCode, checkEmail, checkQuestionsAndAnswers, checkUkMobile, normaliseTypedCode } from './registration.rules';

const APPROVED = ['nhs.net', 'gov.uk', 'mod.uk'];

describe('checkEmail', () => {
  it.each([
    ['alex.wilber@nhs.net', 'alex.wilber@nhs.net'],
    ['  Alex.Wilber@NHS.NET  ', 'alex.wilber@nhs.net'],
    ['a.person@digital.cabinet-office.gov.uk', 'a.person@digital.cabinet-office.gov.uk'],
    ['j.smith@mod.uk', 'j.smith@mod.uk'],
    ["o'brien+cards@nhs.net", "o'brien+cards@nhs.net"],
  ])('accepts %j as %j', (raw, value) => {
    expect(checkEmail(raw, APPROVED)).toEqual({ ok: true, value });
  });

  it.each([
    ['alex@nhs.net.example.com', 'must end in'],
    ['alex@nhsnet.com', 'must end in'],
    ['alex@nhs-net.com', 'must end in'],
    ['alex@evilnhs.net', 'must end in'],
    ['alex@nhs.nett', 'must end in'],
    ['alex@gmail.com', 'must end in'],
    ['alex@xn--nhs-0ma.net', 'approved domain'],
    ['alex@nhѕ.net', 'plain letters'],
    ['alex wilber@nhs.net', 'plain letters'],
    ['alex@@nhs.net', 'one @'],
    ['@nhs.net', 'one @'],
    ['alex@', 'one @'],
    ['.alex@nhs.net', 'before the @'],
    ['alex..w@nhs.net', 'before the @'],
    ['alex@-nhs.net', 'domain after the @'],
    ['alex@nhs', 'domain after the @'],
    ['', 'Enter your work email'],
  ])('refuses %j with a reason', (raw, reason) => {
    const r = checkEmail(raw, APPROVED);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('uses the configured list', () => {
    expect(checkEmail('a@example.org', ['example.org']).ok).toBe(true);
    expect(checkEmail('a@nhs.net', ['example.org']).ok).toBe(false);
  });
});

describe('checkUkMobile', () => {
  it.each([
    ['07700 900123', '+447700900123'],
    ['07700900123', '+447700900123'],
    ['+44 7700 900123', '+447700900123'],
    ['+44 (0)7700 900123', '+447700900123'],
    ['0044 7700 900 123', '+447700900123'],
    ['447700900123', '+447700900123'],
    ['07700-900-123', '+447700900123'],
    ['07624 123456', '+447624123456'],
    ['', null],
    ['   ', null],
  ])('accepts %j as %j', (raw, value) => {
    expect(checkUkMobile(raw)).toEqual({ ok: true, value });
  });

  it.each([
    ['020 7946 0000', 'starting 07'],
    ['07000 123456', 'not a UK mobile'],
    ['07600 123456', 'not a UK mobile'],
    ['0770090012', '11 digits'],
    ['077009001234', '11 digits'],
    ['+1 415 555 0100', 'UK mobile'],
    ['07700 9OO123', 'only have digits'],
  ])('refuses %j', (raw, reason) => {
    const r = checkUkMobile(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });
});

describe('checkQuestionsAndAnswers', () => {
  const q = ['q01', 'q02', 'q03', 'q04'];
  it('counts length after normalisation: inner spaces collapse, so " d  d " (3 characters) is accepted', () => {
    expect(checkQuestionsAndAnswers(q, ['aaa', 'bbb', 'ccc', ' d  d ']).ok).toBe(true);
  });
  it('accepts 4 different bank questions with distinct answers of 3+ characters', () => {
    const r = checkQuestionsAndAnswers(q, ['Acacia Avenue', 'Bike', 'Mrs Hall', 'Rex']);
    expect(r.ok).toBe(true);
  });
  it.each([
    [['q01', 'q01', 'q03', 'q04'], ['aaa', 'bbb', 'ccc', 'ddd'], 'different questions'],
    [['q01', 'q02', 'q03', 'q99'], ['aaa', 'bbb', 'ccc', 'ddd'], 'from the list'],
    [['q01', 'q02', 'q03'], ['aaa', 'bbb', 'ccc'], 'Choose 4'],
    [q, ['aaa', ' b ', 'ccc', 'ddd'], 'Answer 2 is too short'],
    [q, ['aaa', 'bbb', 'ccc', '   d      '], 'Answer 4 is too short'],
    [q, ['Rex', 'bbb', 'ccc', '  rex '], 'same'],
    [q, ['Ｒｅｘ', 'bbb', 'ccc', 'rex'], 'same'],
  ])('refuses %j / %j', (ids, answers, reason) => {
    const r = checkQuestionsAndAnswers(ids, answers);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain(reason);
      for (const a of answers) if (a.trim().length >= 3) expect(r.reason).not.toContain(a.trim());
    }
  });
});

describe('codes', () => {
  it('normalises typed codes', () => {
    expect(normaliseTypedCode(' 1234 5678 ')).toBe('12345678');
    expect(normaliseTypedCode('1234-5678')).toBe('12345678');
    expect(normaliseTypedCode('1234567')).toBeNull();
    expect(normaliseTypedCode('1234567a')).toBeNull();
  });

  it('allows 3 codes in a rolling hour, then says when the next may be sent', () => {
    const now = new Date('2026-11-30T10:00:00.000Z');
    const times = ['2026-11-30T09:10:00.000Z', '2026-11-30T09:30:00.000Z'];
    expect(canIssueCode(times, now)).toEqual({ ok: true });
    const three = [...times, '2026-11-30T09:50:00.000Z'];
    expect(canIssueCode(three, now)).toEqual({ ok: false, nextAt: Date.parse('2026-11-30T10:10:00.000Z') });
    expect(canIssueCode(three, new Date('2026-11-30T10:10:00.001Z'))).toEqual({ ok: true });
  });
});
