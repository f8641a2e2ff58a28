/**
 * UnlockService.startCodeOnly / chooseChannel (issue #14) over a real embedded store, the real engine and
 * effect runner, a fake directory and a fake companion reporting a blocked card: the person is enrolled
 * (record stored, card bound) only when the card-management import named them holder, and the code goes
 * where they chose.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger';
import type { Device } from '../../../storage/storage.port';
import type { DirectoryContact } from '../../directory/directory.port';
import { sealPuk } from '../../puk/puk.custody';
import { holderTag, UNASSIGNED_CARD_OWNER } from '../../puk/puk.rules';
import { provisionalPersonId } from '../registration/registration.service';
import { harness, type Harness } from '../journey.spec-support';
import { journeyKey } from '../journey.key';
import { DEFAULT_UNLOCK_RULES, type UnlockRules } from './unlock.journey';
import { UnlockService } from './unlock.service';
import { unlockDefinition } from './unlock.definition';
import { JourneyEngine } from '../journey.engine';
import { registrationDefinition } from '../registration/registration.definition';
import { decodeUnlock } from './unlock.state';

const CARD = 'd'.repeat(32);
const AAD = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
const identity = { teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD };
const CODE_ONLY: UnlockRules = { ...DEFAULT_UNLOCK_RULES, policy: 'code-only' };
let h: Harness;
afterEach(async () => h?.close());

async function setUp(contact: DirectoryContact | null, owner: 'holder' | 'unassigned' | 'other' = 'holder', rules = CODE_ONLY) {
  h = harness();
  const at = h.now.value.toISOString();
  const personId = provisionalPersonId(AAD);
  const cardOwner = owner === 'holder' ? holderTag(h.keys.codeHashKey, 'alex.wilber@nhs.net') : owner === 'unassigned' ? UNASSIGNED_CARD_OWNER : holderTag(h.keys.codeHashKey, 'someone.else@nhs.net');
  await h.storage.cards.insert({ cardId: CARD, personId: cardOwner, puk: sealPuk(h.keys.sealKey, '12345678', CARD), pendingPuk: null, updatedAt: at, version: 1 });
  h.link.reply = async (command) => (command.kind === 'card.read_status' ? { kind: 'card.status', status: { present: true, reader: 'Virtual PCD', cardId: CARD, pinRetries: 0 } } : { kind: 'ack' });
  const device = { id: randomUUID(), personId, workstation: 'WS1' } as Device;
  // The engine steps the journey with the same rules as the service (as bot/main.ts wires them).
  const engine = new JourneyEngine({
    storage: h.storage,
    runner: h.runner,
    logger: createLogger({ name: 'spec', level: 'silent' }),
    now: () => h.now.value,
    definitions: { unlock: unlockDefinition({ keys: h.keys, rules, now: () => h.now.value }), registration: registrationDefinition({ keys: h.keys, approvedDomains: ['nhs.net'], now: () => h.now.value }) },
  });
  const service = new UnlockService({
    storage: h.storage,
    engine,
    link: { isConnected: () => true, isReachable: () => true, sendCommand: async (_id, command) => h.link.reply(command) },
    keys: h.keys,
    rules,
    logger: createLogger({ name: 'spec', level: 'silent' }),
    timeZone: 'Europe/London',
    raContact: 'the RA team',
    commandTimeoutMs: 1000,
    notify: async () => undefined,
    currentDevice: async () => device,
    now: () => h.now.value,
    directoryLookup: async () => contact,
    approvedDomains: ['nhs.net'],
  });
  return { personId, service };
}

describe('UnlockService: code-only enrolment (issue #14)', () => {
  it('named holder with an approved email only: enrolled (record stored, card bound, no answers) and the code emailed at once', async () => {
    const { personId, service } = await setUp({ email: 'Alex.Wilber@nhs.net', mobile: null });
    const rec = await service.startCodeOnly(identity);
    expect(decodeUnlock(rec).state.phase).toBe('code_sent');
    const person = await h.storage.persons.get(personId);
    expect(person).toMatchObject({ teamsUserId: AAD, email: 'alex.wilber@nhs.net', cardId: CARD, answers: [] });
    expect((await h.storage.cards.get(CARD))?.personId).toBe(personId);
    expect(h.mail.filter((m) => m.kind === 'unlock_code').map((m) => m.to)).toEqual(['alex.wilber@nhs.net']);
  });

  it('email and UK mobile: the person picks; email picked is mailed', async () => {
    const { personId, service } = await setUp({ email: 'alex.wilber@nhs.net', mobile: '07700 900123' });
    const rec = await service.startCodeOnly(identity);
    const j = decodeUnlock(rec);
    expect(j.state).toMatchObject({ phase: 'choosing_channel', email: 'alex.wilber@nhs.net', mobile: '+447700900123' });
    expect(h.mail).toEqual([]);
    const person = (await h.storage.persons.get(personId))!;
    const after = await service.chooseChannel(person, rec.runId, String(j.state.step), 'email');
    expect(decodeUnlock(after).state.phase).toBe('code_sent');
    expect(h.mail.filter((m) => m.kind === 'unlock_code')).toHaveLength(1);
    // The same click again changes nothing (stale step).
    await service.chooseChannel(person, rec.runId, String(j.state.step), 'sms');
    expect(decodeUnlock((await h.storage.journeys.get(journeyKey(personId, 'unlock')))!).state).toMatchObject({ phase: 'code_sent', code: { mailed: true } });
  });

  it.each([
    ['a card named for someone else', { email: 'alex.wilber@nhs.net', mobile: null }, 'other', 'not_enrolled'],
    ['a card imported with no holder', { email: 'alex.wilber@nhs.net', mobile: null }, 'unassigned', 'not_enrolled'],
    ['no directory profile', null, 'holder', 'not_enrolled'],
  ] as const)('%s: nothing enrolled, no code', async (_name, contact, owner, problem) => {
    const { personId, service } = await setUp(contact, owner);
    const rec = await service.startCodeOnly(identity);
    expect(decodeUnlock(rec).state).toMatchObject({ phase: 'card_problem', problem });
    expect(await h.storage.persons.get(personId)).toBeNull();
    expect(h.mail).toEqual([]);
    expect((await h.storage.cards.get(CARD))?.personId).not.toBe(personId);
  });

  it('under the questions policy startCodeOnly is refused', async () => {
    const { service } = await setUp({ email: 'alex.wilber@nhs.net', mobile: null }, 'holder', DEFAULT_UNLOCK_RULES);
    await expect(service.startCodeOnly(identity)).rejects.toMatchObject({ code: 'UNLOCK.POLICY' });
  });
});
