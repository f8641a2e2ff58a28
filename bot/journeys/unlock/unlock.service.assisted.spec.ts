/**
 * UnlockService.startAssistedUnlock and pauseForRa (issue #12) over a real embedded store, the real
 * engine and effect runner, and a fake companion that reports a blocked card: what is stored and sent.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import type { Device, Person } from '../../../storage/storage.port';
import { sealPuk } from '../../puk/puk.custody';
import { harness, type Harness } from '../journey.spec-support';
import { journeyKey } from '../journey.key';
import { DEFAULT_UNLOCK_RULES } from './unlock.journey';
import { UnlockService } from './unlock.service';
import { decodeUnlock } from './unlock.state';

const CARD = 'c'.repeat(32);
const RA = 'ra:0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
let h: Harness;

afterEach(async () => h?.close());

async function setUp(options: { device?: boolean } = {}) {
  h = harness();
  const at = h.now.value.toISOString();
  const person: Person = { id: randomUUID(), teamsUserId: 'user-1', displayName: 'Alex Wilber', email: 'alex.wilber@nhs.net', mobile: null, answers: [], cardId: CARD, selfServiceLock: null, createdAt: at, updatedAt: at, version: 1 };
  await h.storage.persons.insert(person);
  await h.storage.cards.insert({ cardId: CARD, personId: person.id, puk: sealPuk(h.keys.sealKey, '12345678', CARD), pendingPuk: null, updatedAt: at, version: 1 });
  const device = { id: randomUUID(), personId: person.id, workstation: 'WS1' } as Device;
  h.link.reply = async (command) => (command.kind === 'card.read_status' ? { kind: 'card.status', status: { present: true, reader: 'Virtual PCD', cardId: CARD, pinRetries: 0 } } : { kind: 'ack' });
  const told: string[] = [];
  const service = new UnlockService({
    storage: h.storage,
    engine: h.engine,
    link: { isConnected: () => true, isReachable: () => true, sendCommand: async (id, command) => h.link.reply(command).then((r) => (h.commands.push({ deviceId: id, command }), r)) },
    keys: h.keys,
    rules: DEFAULT_UNLOCK_RULES,
    logger: createLogger({ name: 'spec', level: 'silent' }),
    timeZone: 'Europe/London',
    raContact: 'the RA team',
    commandTimeoutMs: 1000,
    notify: async (personId) => void told.push(personId),
    currentDevice: async () => (options.device === false ? null : device),
    now: () => h.now.value,
  });
  return { person, device, service, told };
}

describe('UnlockService: RA-assisted unlock (issue #12)', () => {
  it('a person with no security questions gets an emailed code with none asked, is told in Teams, and the start is audited', async () => {
    const { person, service, told } = await setUp();
    const r = await service.startAssistedUnlock({ personId: person.id, caseRef: 'RA-7K2Q9D', actor: RA });
    expect(r).toMatchObject({ kind: 'started', phase: 'code_sent' });
    const rec = await h.storage.journeys.get(journeyKey(person.id, 'unlock'));
    const j = decodeUnlock(rec!);
    expect(j.state.phase).toBe('code_sent');
    expect(j.assist).toMatchObject({ caseRef: 'RA-7K2Q9D', actor: RA });
    // The code went by email (the mail port received it) and the companion was asked for it.
    expect(h.mail.filter((m) => m.kind === 'unlock_code').map((m) => m.to)).toEqual(['alex.wilber@nhs.net']);
    expect(h.commands.some((c) => c.command.kind === 'unlock.prompt')).toBe(true);
    expect(told).toContain(person.id);
    const audit = await h.storage.audit.list({ personId: person.id, limit: 50 });
    expect(audit.find((e) => e.action === 'unlock.assisted_started')).toMatchObject({ actor: RA, details: { caseRef: 'RA-7K2Q9D' } });
    expect(audit.find((e) => e.action === 'unlock.questions_skipped')).toMatchObject({ actor: RA });
    // No code in any audit entry.
    const code = /\b(\d{8})\b/.exec(h.mail[0]!.text)?.[1];
    expect(code).toBeDefined();
    expect(JSON.stringify(audit)).not.toContain(code!);
  });

  it('"talk to RA" pauses the run; the assisted unlock resumes the same run', async () => {
    const { person, service } = await setUp();
    // A run waiting for the emailed code (started by RA earlier today, say): pause, then resume.
    const first = await service.startAssistedUnlock({ personId: person.id, caseRef: 'RA-7K2Q9D', actor: RA });
    if (first.kind === 'refused') throw new Error('refused');
    const paused = await service.pauseForRa(person.id, 'RA-AAAAAA');
    expect(paused).toEqual({ paused: { runId: first.runId, phase: 'code_sent', step: expect.any(Number) } });
    expect(decodeUnlock((await h.storage.journeys.get(journeyKey(person.id, 'unlock')))!).state.phase).toBe('paused');
    // Nothing to pause twice.
    expect(await service.pauseForRa(person.id, 'RA-AAAAAA')).toEqual({ paused: null });
    const resumed = await service.startAssistedUnlock({ personId: person.id, caseRef: 'RA-AAAAAA', actor: RA });
    expect(resumed).toEqual({ kind: 'resumed', runId: first.runId, phase: 'code_sent' });
  });

  it('with no companion the person sees how to pair; bad input and an unknown person change nothing', async () => {
    const { person, service } = await setUp({ device: false });
    expect(await service.startAssistedUnlock({ personId: person.id, caseRef: 'RA-7K2Q9D', actor: RA })).toMatchObject({ kind: 'started', phase: 'card_problem' });
    expect(await service.startAssistedUnlock({ personId: randomUUID(), caseRef: 'RA-7K2Q9D', actor: RA })).toEqual({ kind: 'refused', reason: 'no_person' });
    expect(await service.startAssistedUnlock({ personId: person.id, caseRef: 'case 1', actor: RA })).toEqual({ kind: 'refused', reason: 'bad_input' });
    expect(await service.startAssistedUnlock({ personId: person.id, caseRef: 'RA-7K2Q9D', actor: 'person:x' })).toEqual({ kind: 'refused', reason: 'bad_input' });
    expect(h.mail).toEqual([]);
  });
});
