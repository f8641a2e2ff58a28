/**
 * Test support for the engine and effect-runner specs (no server): a real
 * embedded store on a temporary file, fakes for the companion link, mail and
 * Teams that record what they were given, and the real definitions.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/logger';
import type { Command, Reply } from '../../protocol/companion-link.protocol';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import type { Storage } from '../../storage/storage.port';
import type { CompanionLink } from '../link/companion-link.server';
import type { MailMessage, MailPort } from '../mail/mail.port';
import { deriveKeys, generateMasterKey, parseMasterKey, type DerivedKeys } from '../security/keys';
import { EffectRunner, type TeamsNotifier } from './effect-runner';
import { JourneyEngine } from './journey.engine';
import type { JourneyKind } from '../../storage/storage.port';
import { registrationDefinition } from './registration/registration.definition';
import { unlockDefinition } from './unlock/unlock.definition';
import { DEFAULT_UNLOCK_RULES } from './unlock/unlock.journey';

export interface Harness {
  storage: Storage;
  keys: DerivedKeys;
  engine: JourneyEngine;
  runner: EffectRunner;
  mail: MailMessage[];
  commands: Array<{ deviceId: string; command: Command }>;
  refreshes: Array<{ personId: string; journey: JourneyKind; message: string | null }>;
  /** What the fake companion does with the next commands (default: `ack`). */
  link: { reply: (command: Command) => Promise<Reply> };
  /** When set, the mail port throws it instead of sending. */
  mailFailure: { error: Error | null };
  now: { value: Date };
  close(): Promise<void>;
}

let n = 0;
const root = mkdtempSync(join(tmpdir(), 'journeys-spec-'));

/**
 * A fresh store and engine.
 *
 * @param wrap - interpose on the store (e.g. to force lost races)
 */
export function harness(wrap: (s: Storage) => Storage = (s) => s): Harness {
  const raw = openSqliteStorage({ file: join(root, `s${++n}.sqlite`) });
  const storage = wrap(raw);
  const keys = deriveKeys(parseMasterKey(generateMasterKey()));
  const mail: MailMessage[] = [];
  const commands: Harness['commands'] = [];
  const refreshes: Harness['refreshes'] = [];
  const linkBehaviour: Harness['link'] = { reply: async () => ({ kind: 'ack' }) };
  const now = { value: new Date('2026-11-30T09:00:00.000Z') };
  const link: CompanionLink = {
    isConnected: () => true,
    isReachable: () => true,
    sendCommand: async (deviceId, command) => {
      commands.push({ deviceId, command });
      return linkBehaviour.reply(command);
    },
  };
  const mailFailure: Harness['mailFailure'] = { error: null };
  const mailPort: MailPort = {
    send: async (m) => {
      if (mailFailure.error) throw mailFailure.error;
      if (!mail.some((x) => x.id === m.id)) mail.push(m);
      return { status: 'sent' };
    },
  };
  const notifier: TeamsNotifier = {
    refresh: async (personId, journey, message) => {
      refreshes.push({ personId, journey, message });
    },
  };
  const clock = (): Date => now.value;
  const runner = new EffectRunner({ storage, link, mail: mailPort, sealKey: keys.sealKey, codeHashKey: keys.codeHashKey, timeZone: 'Europe/London', raContact: 'the RA team', codeTtlMinutes: 15, commandTimeoutMs: 1000, now: clock, notifier });
  const logger = createLogger({ name: 'spec', level: 'silent' });
  const engine = new JourneyEngine({
    storage,
    runner,
    logger,
    now: clock,
    definitions: { unlock: unlockDefinition({ keys, rules: DEFAULT_UNLOCK_RULES, now: clock }), registration: registrationDefinition({ keys, approvedDomains: ['nhs.net'], now: clock }) },
  });
  return { storage, keys, engine, runner, mail, commands, refreshes, link: linkBehaviour, mailFailure, now, close: () => raw.close() };
}
