import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { makePerson } from '../../storage/storage.fixtures';
import { seal } from '../security/seal';
import { harness, type Harness } from './journey.spec-support';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('effect runner', () => {
  it('an audit entry and a case are stored once however often the effect is carried out', async () => {
    h = harness();
    const person = makePerson();
    const audit = { type: 'audit' as const, id: randomUUID(), personId: person.id, actor: 'system', action: 'spec.once', details: { n: 1 } };
    const kase = { type: 'case.open' as const, id: randomUUID(), personId: person.id, ref: 'RA-SPEC01', reason: 'answers_failed' as const, context: { failedAttempts: 3 } };
    for (let i = 0; i < 3; i++) {
      await h.runner.carryOut(audit);
      await h.runner.carryOut(kase);
    }
    expect((await h.storage.audit.list({ personId: person.id, limit: 10 })).filter((a) => a.action === 'spec.once')).toHaveLength(1);
    expect(await h.storage.cases.listByPerson(person.id)).toHaveLength(1);
  });

  it('mirrors the lock onto the person with the lock time, and a reset clears the mirror', async () => {
    h = harness();
    const person = makePerson();
    await h.storage.persons.insert(person);
    await h.runner.carryOut({ type: 'person.lock_self_service', id: randomUUID(), personId: person.id, caseRef: 'RA-SPEC02', reason: 'answers_failed', at: '2026-11-30T08:00:00.000Z' });
    expect((await h.storage.persons.get(person.id))!.selfServiceLock).toEqual({ at: '2026-11-30T08:00:00.000Z', caseRef: 'RA-SPEC02', reason: 'answers_failed' });
    await h.runner.carryOut({ type: 'person.clear_self_service_lock', id: randomUUID(), personId: person.id });
    expect((await h.storage.persons.get(person.id))!.selfServiceLock).toBeNull();
  });

  it('mails the sealed code to the person and reports it mailed to the unlock journey', async () => {
    h = harness();
    const person = makePerson();
    await h.storage.persons.insert(person);
    const runId = randomUUID();
    const follow = await h.runner.carryOut({ type: 'mail.unlock_code', id: randomUUID(), personId: person.id, codeSealed: seal(h.keys.sealKey, '73920584', `code:${runId}`), codeHash: 'hash-1', runId, expiresAt: '2026-11-30T09:15:00.000Z' });
    expect(h.mail).toHaveLength(1);
    expect(h.mail[0]!.to).toBe(person.email);
    expect(h.mail[0]!.text).toContain('73920584');
    expect(follow).toEqual({ kind: 'unlock', event: { type: 'code_mailed', runId, codeHash: 'hash-1', at: h.now.value.toISOString() } });
    expect(h.runner.onFinalFailure({ type: 'mail.unlock_code', id: 'x', personId: person.id, codeSealed: 'x', codeHash: 'hash-1', runId, expiresAt: 'x' })).toEqual({ kind: 'unlock', event: { type: 'code_mail_failed', runId, codeHash: 'hash-1' } });
  });

  it('a companion that answers a command with an error fails the effect (to be retried)', async () => {
    h = harness();
    h.link.reply = async () => ({ kind: 'error', code: 'CARD.NOT_PRESENT', message: 'no card' });
    await expect(h.runner.carryOut({ type: 'companion.command', id: randomUUID(), deviceId: 'd1', command: { kind: 'card.read_status' } })).rejects.toMatchObject({ code: 'LINK.COMMAND_FAILED' });
  });

  it('hands a Teams refresh to the notifier for the named journey', async () => {
    h = harness();
    await h.runner.carryOut({ type: 'teams.refresh', id: randomUUID(), personId: 'p1', message: 'Hello', journey: 'registration' });
    await h.runner.carryOut({ type: 'teams.refresh', id: randomUUID(), personId: 'p1', message: null });
    expect(h.refreshes).toEqual([
      { personId: 'p1', journey: 'registration', message: 'Hello' },
      { personId: 'p1', journey: 'unlock', message: null },
    ]);
  });
});
