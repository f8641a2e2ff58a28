import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { STORAGE_ERROR } from '../storage.errors';
import { makeConversation, makeJourney, makePairing, makePerson, thrownBy } from '../storage.fixtures';
import { RECORDS } from '../storage.schemas';
import { documentCodec } from './mongodb-document.codec';

function thrown(fn: () => unknown): AppError {
  const err = thrownBy(fn);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('MongoDB document codec (derived from the record schema)', () => {
  const persons = documentCodec(RECORDS.persons, { json: [] });
  const journeys = documentCodec(RECORDS.journeys, { json: ['state', 'counters', 'pendingEffects'], derived: { pendingCount: (j) => j.pendingEffects.length } });

  it('keeps the key out of the fields (it is `k` or `_id`), open values as JSON text, sub-documents as they are', () => {
    const p = makePerson();
    const fields = persons.toFields(p);
    expect(fields).not.toHaveProperty('id');
    expect(fields.answers).toEqual(p.answers);
    expect(persons.fromDoc({ ...fields, k: p.id }, 'test')).toEqual(p);
    const j = makeJourney();
    expect(journeys.toFields(j)).toMatchObject({ state: JSON.stringify(j.state), pendingCount: 0, ui: { activityId: null } });
    const conversations = documentCodec(RECORDS.conversations, { json: ['reference'] });
    const c = makeConversation();
    expect(conversations.fromKeyedDoc({ ...conversations.toFields(c), _id: c.personId }, 'test')).toEqual(c);
  });

  it('lists unique fields from the descriptor, and a missing nullable field reads as null', () => {
    expect(documentCodec(RECORDS.pairings, { json: [] }).uniques.map((u) => u.field)).toEqual(['deviceCodeHash', 'userCodeHash']);
    const p = makePerson({ mobile: null });
    const { mobile: _dropped, ...fields } = persons.toFields(p);
    expect(persons.fromDoc({ ...fields, k: p.id }, 'test')).toEqual(p);
  });

  it('returns fresh objects: changing a decoded record leaves the document alone', () => {
    const p = makePerson();
    const doc = { ...persons.toFields(p), k: p.id };
    const got = persons.fromDoc(doc, 'test');
    got.answers[0]!.hash = 'changed';
    expect(persons.fromDoc(doc, 'test')).toEqual(p);
  });

  it('refuses a JSON field that is not an open-shaped schema field', () => {
    expect(() => documentCodec(RECORDS.pairings, { json: ['status'] })).toThrow(/status is not a non-scalar field/);
  });

  it('a document that breaks the schema is CORRUPT_RECORD naming the field, never the value', () => {
    const pr = makePairing();
    const pairings = documentCodec(RECORDS.pairings, { json: [] });
    const err = thrown(() => pairings.fromDoc({ ...pairings.toFields(pr), k: pr.id, userCodeHash: 'plaintext-code-K7QFM2XD' }, 'pairings.getByUserCodeHash'));
    expect(err.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(err.message).toMatch(/pairings\.userCodeHash/);
    expect(err.message).not.toContain('K7QFM2XD');
    const j = makeJourney();
    const json = thrown(() => journeys.fromDoc({ ...journeys.toFields(j), k: j.key, counters: '{"secret' }, 'journeys.get'));
    expect(json.message).toMatch(/journeys\.counters/);
    expect(json.message).not.toContain('secret');
  });
});
