import { describe, expect, it } from 'vitest';
import { AppError } from '../../../common/app-error';
import { newUnlockJourney } from './unlock.journey';
import { decodeUnlock, encodeUnlock } from './unlock.state';

const base = { personId: 'p1', runId: 'r1', updatedAt: '2026-11-30T09:00:00.000Z' };

describe('unlock journey state codec', () => {
  it('round-trips a journey through the record', () => {
    const j = { ...newUnlockJourney('p1', 'r1'), lock: { at: base.updatedAt, caseRef: 'RA-AAAAAA', reason: 'answers_failed' as const }, counters: { answerAttempts: 2 } };
    const enc = encodeUnlock(j);
    expect(decodeUnlock({ ...base, ...enc })).toEqual(j);
  });

  it('reads a record written before issue #9: bare state, failures counter, locked_out becomes the lock', () => {
    const j = decodeUnlock({ ...base, state: { phase: 'locked_out', step: 4, caseRef: 'RA-OLD001' }, counters: { answerFailures: 3 } });
    expect(j.lock).toEqual({ at: base.updatedAt, caseRef: 'RA-OLD001', reason: 'answers_failed' });
    expect(j.counters.answerAttempts).toBe(3);
    expect(j.resetAt).toBeNull();
  });

  it('reads an unblocking run stored before issue #10 with no link session, code hash or resume tries (a resume then needs the code)', () => {
    const j = decodeUnlock({ ...base, state: { v: 2, phase: 'unblocking', step: 7, deviceId: 'd', cardId: 'c', authorisedAt: base.updatedAt, interrupted: true, lock: null, resetAt: null }, counters: {} });
    expect(j.state).toEqual({ phase: 'unblocking', step: 7, deviceId: 'd', cardId: 'c', authorisedAt: base.updatedAt, interrupted: true, linkSession: null, codeHash: null, codeWrongTries: 0 });
    const now = { ...j, state: { ...j.state, linkSession: 'session-1', codeHash: 'h', codeWrongTries: 2 } };
    expect(decodeUnlock({ ...base, ...encodeUnlock(now) })).toEqual(now);
  });

  it('a malformed stored state is an error naming the field', () => {
    const bad = () => decodeUnlock({ ...base, state: { v: 2, phase: 'answering', step: 'x', deviceId: 'd', cardId: 'c', questionIds: [], lastResult: null, lock: null, resetAt: null }, counters: {} });
    expect(bad).toThrow(AppError);
    expect(bad).toThrow(/state\.step/);
    expect(() => decodeUnlock({ ...base, state: { phase: 'flying', step: 1 }, counters: {} })).toThrow(/state\.phase/);
  });

  it('an attempt count that is not a whole number >= 0 is refused naming counters.answerAttempts (F-F)', () => {
    const state = encodeUnlock(newUnlockJourney('p1', 'r1')).state;
    for (const answerAttempts of [-5, 1.5, Number.NaN]) {
      const read = () => decodeUnlock({ ...base, state, counters: { answerAttempts } });
      expect(read).toThrow(AppError);
      expect(read).toThrow(/counters\.answerAttempts/);
      try {
        read();
      } catch (err) {
        expect(err).toMatchObject({ code: 'JOURNEY.STATE_INVALID', meta: { field: 'counters.answerAttempts' } });
      }
    }
    expect(() => decodeUnlock({ ...base, state: { phase: 'idle', step: 0 }, counters: { answerFailures: -1 } })).toThrow(/counters\.answerFailures/);
  });

  it('an old-format state (no v) carrying a lock keeps it; a malformed one is refused naming state.lock (F-F)', () => {
    const lock = { at: base.updatedAt, caseRef: 'RA-RA0042', reason: 'locked_by_ra' as const };
    const j = decodeUnlock({ ...base, state: { phase: 'idle', step: 2, lock }, counters: {} });
    expect(j.lock).toEqual(lock);
    expect(() => decodeUnlock({ ...base, state: { phase: 'idle', step: 2, lock: { caseRef: 7 } }, counters: {} })).toThrow(/state\.lock/);
  });
});
