/**
 * Mapping of driver errors to storage errors (no server needed: the driver's
 * error classes are built directly, as the driver builds them).
 */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError, MongoTopologyClosedError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { STORAGE_ERROR, StorageError } from '../storage.errors';
import { isDuplicateKey, isUnavailable, toStorageError } from './mongodb.errors';

const serverError = (fields: Record<string, unknown>) => new MongoServerError({ ok: 0, ...fields } as never);

describe('mongodb errors', () => {
  it('network, selection, shutdown, step-down and throttling errors are STORAGE.UNAVAILABLE', () => {
    const cases = [
      new MongoNetworkError('connection 3 to 127.0.0.1:27117 closed'),
      new MongoServerSelectionError('Server selection timed out after 1500 ms', {} as never),
      serverError({ code: 91, codeName: 'ShutdownInProgress', errmsg: 'shutting down' }),
      serverError({ code: 189, codeName: 'PrimarySteppedDown', errmsg: 'stepped down' }),
      serverError({ code: 16500, errmsg: 'Request rate is large' }),
      serverError({ code: 1, errmsg: 'sqlite: database is locked' }),
    ];
    for (const err of cases) {
      expect(isUnavailable(err)).toBe(true);
      const mapped = toStorageError('journeys.save', err);
      expect(mapped).toBeInstanceOf(StorageError);
      expect(mapped.code).toBe(STORAGE_ERROR.UNAVAILABLE);
      expect(mapped.meta.operation).toBe('journeys.save');
    }
    expect(toStorageError('persons.get', new MongoTopologyClosedError()).message).toBe('persons.get: storage is closed');
  });

  it('a socket error the driver lets through unwrapped (EPIPE after the server died) is STORAGE.UNAVAILABLE, another plain error is not', () => {
    // What Node throws when the driver writes to a socket the server ended (seen after a FerretDB SIGKILL).
    const epipe = Object.assign(new Error('This socket has been ended by the other party'), { code: 'EPIPE' });
    expect(toStorageError('persons.get', epipe).code).toBe(STORAGE_ERROR.UNAVAILABLE);
    expect(toStorageError('persons.get', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })).code).toBe(STORAGE_ERROR.UNAVAILABLE);
    expect(toStorageError('persons.get', new TypeError('x is undefined')).code).toBe(STORAGE_ERROR.QUERY_FAILED);
    expect(toStorageError('persons.get', Object.assign(new Error('no such file'), { code: 'ENOENT' })).code).toBe(STORAGE_ERROR.QUERY_FAILED);
  });

  it('a duplicate key is recognised from MongoDB (E11000) and from FerretDB on SQLite (code 1, UNIQUE constraint)', () => {
    expect(isDuplicateKey(serverError({ code: 11000, errmsg: 'E11000 duplicate key error collection: db.persons index: _id_ dup key: { _id: "x#1" }' }))).toBe(true);
    expect(isDuplicateKey(serverError({ code: 1, errmsg: "constraint failed: UNIQUE constraint failed: index 'p_1a2b_p_t' (2067)" }))).toBe(true);
    expect(isDuplicateKey(serverError({ code: 1, errmsg: 'something else' }))).toBe(false);
    expect(isDuplicateKey(new Error('E11000'))).toBe(false);
  });

  it('a duplicate key becomes UNIQUE_VIOLATION naming the field, and nothing of the server message (which quotes the value) survives', () => {
    const err = serverError({ code: 11000, errmsg: 'E11000 duplicate key error dup key: { cardId: "0123456789abcdef0123456789abcdef" }' });
    const mapped = toStorageError('persons.save', err, 'cardId');
    expect(mapped.code).toBe(STORAGE_ERROR.UNIQUE_VIOLATION);
    expect(mapped.message).toBe('persons.save: another record already has this cardId');
    expect(JSON.stringify(mapped.toJSON())).not.toContain('0123456789abcdef');
  });

  it('other server refusals are QUERY_FAILED with the code, without the server message', () => {
    const mapped = toStorageError('open', serverError({ code: 2, codeName: 'BadValue', errmsg: 'invalid key: "secretish.key"' }));
    expect(mapped.code).toBe(STORAGE_ERROR.QUERY_FAILED);
    expect(mapped.meta.mongoCode).toBe(2);
    expect(JSON.stringify(mapped.toJSON())).not.toContain('secretish');
  });

  it('a StorageError passes through unchanged', () => {
    const own = new StorageError(STORAGE_ERROR.INVALID_RECORD, 'persons.insert: invalid record: cardId: bad');
    expect(toStorageError('persons.insert', own)).toBe(own);
  });
});
