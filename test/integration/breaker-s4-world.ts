/**
 * Breaker, session 4 (support for breaker-s4-unlock-*.test.ts): an unlock service in process over the real
 * embedded store, the real engine, the real effect runner (mail and SMS ports recording), a fake directory
 * and a fake companion reporting a blocked card.
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../common/logger';
import type { DirectoryContact } from '../../bot/directory/directory.port';
import { EffectRunner } from '../../bot/journeys/effect-runner';
import { JourneyEngine } from '../../bot/journeys/journey.engine';
import { harness, type Harness } from '../../bot/journeys/journey.spec-support';
import { registrationDefinition } from '../../bot/journeys/registration/registration.definition';
import { provisionalPersonId } from '../../bot/journeys/registration/registration.service';
import { unlockDefinition } from '../../bot/journeys/unlock/unlock.definition';
import { DEFAULT_UNLOCK_RULES, type UnlockRules } from '../../bot/journeys/unlock/unlock.journey';
import { UnlockService } from '../../bot/journeys/unlock/unlock.service';
import { decodeUnlock } from '../../bot/journeys/unlock/unlock.state';
import { journeyKey } from '../../bot/journeys/journey.key';
import type { NotifyMessage } from '../../bot/notify/notify.port';
import { sealPuk } from '../../bot/puk/puk.custody';
import { holderTag } from '../../bot/puk/puk.rules';
import type { Device, Person } from '../../storage/storage.port';

export const CARD = 'e'.repeat(32);
export const AAD = '5a1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
export const RA_ID = 'aaaaaaaa-0000-4000-8000-000000000001';
export const CODE_ONLY: UnlockRules = { ...DEFAULT_UNLOCK_RULES, policy: 'code-only' };
export const silent = createLogger({ name: 'breaker', level: 'silent' });

let h: Harness | undefined;

/** Close the store of the last {@link world} (call in afterEach). */
export async function closeWorld(): Promise<void> {
  await h?.close();
  h = undefined;
}

export interface World {
  h: Harness;
  service: UnlockService;
  sms: NotifyMessage[];
  personId: string;
  device: Device;
}

/**
 * A store with one card (PUK enrolled) and either a stored person bound to it, or the card named by the
 * import for the directory profile's email (not enrolled yet).
 */
export async function world(options: { rules: UnlockRules; person?: Partial<Person>; contact: DirectoryContact | null; approvedDomains?: string[]; restartOf?: World }): Promise<World> {
  // restartOf: a new engine, runner and service (a restarted bot) over the same store and device; nothing seeded.
  const hh = options.restartOf?.h ?? harness();
  h = hh;
  const at = hh.now.value.toISOString();
  const personId = options.restartOf?.personId ?? (options.person ? (options.person.id ?? randomUUID()) : provisionalPersonId(AAD));
  if (options.restartOf) {
    // Seeded already.
  } else if (options.person) {
    const p: Person = { id: personId, teamsUserId: AAD, displayName: 'Alex Wilber', email: 'alex.wilber@nhs.net', mobile: null, answers: [], cardId: CARD, selfServiceLock: null, createdAt: at, updatedAt: at, version: 1, ...options.person };
    await hh.storage.persons.insert(p);
    await hh.storage.cards.insert({ cardId: CARD, personId, puk: sealPuk(hh.keys.sealKey, '12345678', CARD), pendingPuk: null, updatedAt: at, version: 1 });
  } else {
    const email = options.contact?.email?.toLowerCase() ?? 'alex.wilber@nhs.net';
    await hh.storage.cards.insert({ cardId: CARD, personId: holderTag(hh.keys.codeHashKey, email), puk: sealPuk(hh.keys.sealKey, '12345678', CARD), pendingPuk: null, updatedAt: at, version: 1 });
  }
  hh.link.reply = async (command) => (command.kind === 'card.read_status' ? { kind: 'card.status', status: { present: true, reader: 'Virtual PCD', cardId: CARD, pinRetries: 0 } } : { kind: 'ack' });
  const sms: NotifyMessage[] = options.restartOf?.sms ?? [];
  const clock = (): Date => hh.now.value;
  const runner = new EffectRunner({
    storage: hh.storage,
    link: { isConnected: () => true, isReachable: () => true, sendCommand: async (id, command) => (hh.commands.push({ deviceId: id, command }), hh.link.reply(command)) },
    mail: { send: async (m) => (hh.mail.some((x) => x.id === m.id) || hh.mail.push(m), { status: 'sent' as const }) },
    sms: { send: async (m) => (sms.some((x) => x.id === m.id) || sms.push(m), { status: 'sent' as const, notificationId: m.id, reference: m.reference }) },
    sealKey: hh.keys.sealKey,
    codeHashKey: hh.keys.codeHashKey,
    timeZone: 'Europe/London',
    raContact: 'the RA team',
    codeTtlMinutes: 15,
    commandTimeoutMs: 1000,
    now: clock,
    notifier: { refresh: async () => undefined },
  });
  const engine = new JourneyEngine({
    storage: hh.storage,
    runner,
    logger: silent,
    now: clock,
    definitions: { unlock: unlockDefinition({ keys: hh.keys, rules: options.rules, now: clock }), registration: registrationDefinition({ keys: hh.keys, approvedDomains: ['nhs.net'], now: clock }) },
  });
  const device = options.restartOf?.device ?? ({ id: randomUUID(), personId, workstation: 'WS1' } as Device);
  const service = new UnlockService({
    storage: hh.storage,
    engine,
    link: { isConnected: () => true, isReachable: () => true, sendCommand: async (id, command) => (hh.commands.push({ deviceId: id, command }), hh.link.reply(command)) },
    keys: hh.keys,
    rules: options.rules,
    logger: silent,
    timeZone: 'Europe/London',
    raContact: 'the RA team',
    commandTimeoutMs: 1000,
    notify: async () => undefined,
    currentDevice: async () => device,
    now: clock,
    directoryLookup: async () => options.contact,
    approvedDomains: options.approvedDomains ?? ['nhs.net'],
  });
  return { h: hh, service, sms, personId, device };
}

export const phaseOf = async (w: World) => decodeUnlock((await w.h.storage.journeys.get(journeyKey(w.personId, 'unlock')))!).state;
export const codeSends = (w: World) => [...w.h.mail.filter((m) => m.kind === 'unlock_code').map((m) => `email:${m.to}`), ...w.sms.filter((m) => m.kind === 'unlock_code').map((m) => `sms:${m.to}`)];

