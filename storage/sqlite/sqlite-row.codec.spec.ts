import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { STORAGE_ERROR } from '../storage.errors';
import { makeJourney, makePerson, thrownBy } from '../storage.fixtures';
import { RECORDS } from '../storage.schemas';
import { snakeCase, sqliteCodec } from './sqlite-row.codec';

function thrown(fn: () => unknown): AppError {
  const err = thrownBy(fn);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('sqlite row codec (derived from the record schema)', () => {
  const persons = sqliteCodec(RECORDS.persons, { json: ['answers', 'selfServiceLock'] });
  const journeys = sqliteCodec(RECORDS.journeys, { json: ['state', 'counters', 'pendingEffects', 'ui'], derived: { pendingCount: (j) => j.pendingEffects.length } });

  it('names columns in snake_case from the schema fields, derived columns last', () => {
    expect(snakeCase('selfServiceLock')).toBe('self_service_lock');
    expect(persons.columns).toEqual(['id', 'teams_user_id', 'display_name', 'email', 'mobile', 'answers', 'card_id', 'self_service_lock', 'created_at', 'updated_at', 'version']);
    expect(journeys.columns.at(-1)).toBe('pending_count');
    expect(persons.fieldOf('teams_user_id')).toBe('teamsUserId');
  });

  it('encodes JSON columns as text, a null nullable JSON field as NULL, and a null JSON value as the text null', () => {
    const p = makePerson({ selfServiceLock: null, mobile: null });
    const row = persons.encode(p);
    expect(row.answers).toBe(JSON.stringify(p.answers));
    expect(row.self_service_lock).toBeNull();
    expect(row.mobile).toBeNull();
    const j = makeJourney({ state: null });
    expect(journeys.encode(j)).toMatchObject({ state: 'null', pending_count: 0, ui: '{"activityId":null}' });
    expect(journeys.decode(journeys.encode(j), 'test')).toEqual(j);
  });

  it('refuses a layout that disagrees with the schema (at start-up, not at run time)', () => {
    expect(() => sqliteCodec(RECORDS.persons, { json: ['answers'] })).toThrow(/selfServiceLock is not scalar and not listed as JSON/);
    expect(() => sqliteCodec(RECORDS.persons, { json: ['answers', 'selfServiceLock', 'email'] })).toThrow(/email is scalar but listed as JSON/);
  });

  it('a row that breaks the schema or holds damaged JSON is CORRUPT_RECORD naming the field, never the value', () => {
    const p = makePerson();
    const bad = thrown(() => persons.decode({ ...persons.encode(p), version: 0, email: 'Secret-Value@x' }, 'persons.get'));
    expect(bad.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(bad.message).toMatch(/persons\.email.*persons\.version|persons\.version.*persons\.email/);
    expect(bad.message).not.toContain('Secret-Value');
    const json = thrown(() => persons.decode({ ...persons.encode(p), answers: '[{"secret' }, 'persons.get'));
    expect(json.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(json.message).toMatch(/persons\.answers/);
    expect(json.message).not.toContain('secret');
  });
});
