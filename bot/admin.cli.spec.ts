import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger';
import { openSqliteStorage } from '../storage/sqlite/sqlite-storage.adapter';
import { makePerson } from '../storage/storage.fixtures';
import { adminResetSelfService } from './admin.cli';
import { journeyKey } from './journeys/journey.key';
import { decodeUnlock } from './journeys/unlock/unlock.state';
import { deriveKeys, generateMasterKey, parseMasterKey } from './security/keys';

describe('admin reset-self-service', () => {
  it('clears a lock stored only on the person (older versions), found by the email of a person with an open case; audited as admin', async () => {
    const storage = openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'admin-spec-')), 's.sqlite') });
    try {
      const keys = deriveKeys(parseMasterKey(generateMasterKey()));
      const lock = { at: '2026-11-30T08:00:00.000Z', caseRef: 'RA-ADM001', reason: 'answers_failed' as const };
      const person = makePerson({ selfServiceLock: lock });
      await storage.persons.insert(person);
      const at = '2026-11-30T08:00:00.000Z';
      await storage.cases.insert({ ref: 'RA-ADM001', personId: person.id, reason: 'answers_failed', status: 'open', context: {}, sourceId: 'src-1', createdAt: at, updatedAt: at, version: 1 });
      const { person: found, result } = await adminResetSelfService(storage, keys, createLogger({ name: 'spec', level: 'silent' }), person.email.toUpperCase(), 'called the desk');
      expect(found.id).toBe(person.id);
      expect(result.attemptsBefore).toBe(0);
      const j = decodeUnlock((await storage.journeys.get(journeyKey(person.id, 'unlock')))!);
      expect(j.lock).toBeNull();
      expect(j.resetAt).not.toBeNull();
      expect((await storage.persons.get(person.id))!.selfServiceLock).toBeNull();
      const audit = (await storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'unlock.self_service_reset');
      expect(audit).toHaveLength(1);
      expect(audit[0]!.actor).toBe('admin');
      // An email matching no person with an open case is refused plainly.
      await expect(adminResetSelfService(storage, keys, createLogger({ name: 'spec', level: 'silent' }), 'nobody@nhs.net', null)).rejects.toMatchObject({ code: 'INPUT.PERSON_NOT_FOUND' });
    } finally {
      await storage.close();
    }
  });
});
