import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger';
import { openSqliteStorage } from '../storage/sqlite/sqlite-storage.adapter';
import { randomUUID } from 'node:crypto';
import { makeCase, makeDevice, makeJourney, makePerson } from '../storage/storage.fixtures';
import { adminResetSelfService, adminRevokeDevice, findPerson, formatCases, listCases } from './admin.cli';
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

describe('admin revoke-device', () => {
  const open = () => openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'admin-revoke-spec-')), 's.sqlite') });
  const T = new Date('2026-12-06T10:00:00.000Z');

  it('revokes one device by id: revokedAt stored, one device.revoked audit entry with actor admin; a repeat changes nothing', async () => {
    const storage = open();
    try {
      const person = makePerson();
      await storage.persons.insert(person);
      const device = makeDevice({ personId: person.id, workstation: 'WS-ONE', connectedInstance: 'bot-1' });
      const other = makeDevice({ personId: person.id, workstation: 'WS-TWO' });
      await storage.devices.insert(device);
      await storage.devices.insert(other);
      const r = await adminRevokeDevice(storage, { device: device.id.toUpperCase() }, () => T);
      expect(r.personId).toBe(person.id);
      expect(r.outcome.revoked.map((d) => d.id)).toEqual([device.id]);
      // Returned as it was before: the instance that held its link is named, to close it.
      expect(r.outcome.revoked[0]!.connectedInstance).toBe('bot-1');
      expect((await storage.devices.get(device.id))!.revokedAt).toBe(T.toISOString());
      expect((await storage.devices.get(other.id))!.revokedAt).toBeNull();
      const audit = (await storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'device.revoked');
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor: 'admin', details: { deviceId: device.id, workstation: 'WS-ONE', reason: 'admin' } });
      const again = await adminRevokeDevice(storage, { device: device.id }, () => new Date(T.getTime() + 60_000));
      expect(again.outcome.revoked).toEqual([]);
      expect(again.outcome.alreadyRevoked.map((d) => d.id)).toEqual([device.id]);
      expect((await storage.devices.get(device.id))!.revokedAt).toBe(T.toISOString());
      expect((await storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'device.revoked')).toHaveLength(1);
    } finally {
      await storage.close();
    }
  });

  it('revokes every device of a person found by Teams user id', async () => {
    const storage = open();
    try {
      const person = makePerson();
      await storage.persons.insert(person);
      const devices = [makeDevice({ personId: person.id }), makeDevice({ personId: person.id })];
      for (const d of devices) await storage.devices.insert(d);
      const r = await adminRevokeDevice(storage, { person: person.teamsUserId }, () => T);
      expect(r.personId).toBe(person.id);
      expect(r.outcome.revoked.map((d) => d.id).sort()).toEqual(devices.map((d) => d.id).sort());
      for (const d of devices) expect((await storage.devices.get(d.id))!.revokedAt).toBe(T.toISOString());
      expect((await storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'device.revoked' && a.actor === 'admin')).toHaveLength(2);
    } finally {
      await storage.close();
    }
  });

  it('refuses plainly: a device id that is not a UUID, an unknown device, an unknown person, a person with no device', async () => {
    const storage = open();
    try {
      const lonely = makePerson();
      await storage.persons.insert(lonely);
      await expect(adminRevokeDevice(storage, { device: 'not-a-uuid' })).rejects.toMatchObject({ code: 'INPUT.USAGE' });
      await expect(adminRevokeDevice(storage, { device: randomUUID() })).rejects.toMatchObject({ code: 'INPUT.DEVICE_NOT_FOUND' });
      await expect(adminRevokeDevice(storage, { person: 'nobody-at-all' })).rejects.toMatchObject({ code: 'INPUT.PERSON_NOT_FOUND' });
      await expect(adminRevokeDevice(storage, { person: lonely.id })).rejects.toMatchObject({ code: 'INPUT.DEVICE_NOT_FOUND' });
      expect(await storage.audit.list({ limit: 10 })).toEqual([]);
    } finally {
      await storage.close();
    }
  });
});

describe('admin cases', () => {
  const open = () => openSqliteStorage({ file: join(mkdtempSync(join(tmpdir(), 'admin-cases-spec-')), 's.sqlite') });

  it('lists open and claimed cases oldest first with person, reason, status, owner and opened time; closed cases are left out', async () => {
    const storage = open();
    try {
      const pat = makePerson({ displayName: 'Pat Holder', email: 'pat.holder@nhs.net' });
      await storage.persons.insert(pat);
      const claimed = makeCase({ ref: 'RA-C1A1M0', personId: pat.id, reason: 'requested', status: 'claimed', createdAt: '2026-12-06T09:00:00.000Z' });
      const fresh = makeCase({ ref: 'RA-0PEN00', personId: pat.id, reason: 'answers_failed', status: 'open', createdAt: '2026-12-06T10:00:00.000Z' });
      const closed = makeCase({ ref: 'RA-C10SED', personId: pat.id, status: 'closed', createdAt: '2026-12-06T08:00:00.000Z' });
      for (const c of [fresh, closed, claimed]) await storage.cases.insert(c);
      // The claimed case's journey names its owner.
      const state = { status: 'claimed', step: 2, personId: pat.id, reason: 'requested', openedAt: claimed.createdAt, context: {}, owner: { id: 'a', name: 'Alex Ra', at: claimed.createdAt }, paused: null, history: [], outcome: null };
      await storage.journeys.insert(makeJourney({ key: 'RA-C1A1M0:ra-case', personId: 'RA-C1A1M0', kind: 'ra-case', state }));
      const rows = await listCases(storage);
      expect(rows).toEqual([
        { ref: 'RA-C1A1M0', person: 'Pat Holder <pat.holder@nhs.net>', reason: 'requested', status: 'claimed', owner: 'Alex Ra', openedAt: '2026-12-06T09:00:00.000Z' },
        { ref: 'RA-0PEN00', person: 'Pat Holder <pat.holder@nhs.net>', reason: 'answers_failed', status: 'open', owner: '-', openedAt: '2026-12-06T10:00:00.000Z' },
      ]);
      const text = formatCases(rows).split('\n');
      expect(text[0]).toMatch(/^REF\s+STATUS\s+REASON\s+PERSON\s+OWNER\s+OPENED AT \(UTC\)$/);
      expect(text[1]).toMatch(/^RA-C1A1M0\s+claimed\s+requested\s+Pat Holder <pat.holder@nhs.net>\s+Alex Ra\s+2026-12-06T09:00:00.000Z$/);
      expect(text[2]).toMatch(/^RA-0PEN00\s+open\s+answers_failed\s+.*\s+-\s+2026-12-06T10:00:00.000Z$/);
      expect(formatCases([])).toBe('no open cases\n');
    } finally {
      await storage.close();
    }
  });

  it('finds a person by registered email (any case); two persons with one email are refused as ambiguous', async () => {
    const storage = open();
    try {
      const a = makePerson({ email: 'sam.one@nhs.net' });
      await storage.persons.insert(a);
      expect((await findPerson(storage, 'Sam.One@NHS.net'))?.id).toBe(a.id);
      expect(await findPerson(storage, 'nobody@nhs.net')).toBeNull();
      await storage.persons.insert(makePerson({ email: 'sam.one@nhs.net' }));
      await expect(findPerson(storage, 'sam.one@nhs.net')).rejects.toMatchObject({ code: 'INPUT.PERSON_AMBIGUOUS' });
    } finally {
      await storage.close();
    }
  });
});
