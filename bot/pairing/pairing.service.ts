/**
 * Companion pairing, following the OAuth 2.0 Device Authorization Grant pattern
 * (RFC 8628): the companion gets a device code (secret) and a short user code;
 * the person sends the user code to the bot in Teams; the companion's next poll
 * receives a revocable device credential, of which only a keyed hash is kept.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from '../../common/logger';
import type { PairPollResponse, PairStartRequest, PairStartResponse } from '../../protocol/companion-link.protocol';
import type { Device, Pairing, Person, Storage } from '../../storage/storage.port';
import { formatUserCode, generateSecret, generateUserCode, keyedHash, normaliseUserCode } from '../security/codes';
import { credentialHash } from '../link/companion-link.server';

export const PAIRING_RULES = {
  /** Lifetime of a pairing code, seconds (issue #2: 10 minutes). */
  codeTtlSeconds: 600,
  /** Wrong codes a person may send in the window before being told to wait. */
  maxFailuresPerWindow: 5,
  /** Window for counting wrong codes, milliseconds. */
  failureWindowMs: 10 * 60_000,
} as const;

export type ApproveResult =
  | { ok: true; workstation: string }
  | { ok: false; reason: 'malformed' | 'unknown_or_expired' | 'already_used' | 'too_many_tries'; message: string };

export class PairingService {
  private readonly approvals = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: {
      storage: Storage;
      codeHashKey: KeyObject;
      credentialHashKey: KeyObject;
      pollIntervalSeconds: number;
      logger: Logger;
      now?: () => Date;
    },
  ) {}

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  private hashUserCode(normalised: string): string {
    return keyedHash(this.deps.codeHashKey, 'pairing-user-code', normalised);
  }

  private hashDeviceCode(deviceCode: string): string {
    return keyedHash(this.deps.codeHashKey, 'pairing-device-code', deviceCode);
  }

  /**
   * Start a pairing (RFC 8628 3.1-3.2).
   * @returns device code (secret, for the companion only), user code `XXXX-XXXX`, lifetime and poll interval in seconds
   */
  async start(request: PairStartRequest): Promise<PairStartResponse> {
    const now = this.now();
    for (let attempt = 0; attempt < 5; attempt++) {
      const userCode = generateUserCode();
      const normalised = normaliseUserCode(userCode);
      if (!normalised) continue;
      const deviceCode = generateSecret(32);
      const pairing: Pairing = {
        id: randomUUID(),
        deviceCodeHash: this.hashDeviceCode(deviceCode),
        userCodeHash: this.hashUserCode(normalised),
        workstation: request.workstation,
        status: 'pending',
        personId: null,
        deviceId: null,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + PAIRING_RULES.codeTtlSeconds * 1000).toISOString(),
        lastPolledAt: null,
        version: 1,
      };
      const r = await this.deps.storage.pairings.insert(pairing);
      if (r.status === 'created') {
        this.deps.logger.info({ pairingId: pairing.id, workstation: request.workstation }, 'pairing started');
        return { deviceCode, userCode: formatUserCode(normalised), expiresIn: PAIRING_RULES.codeTtlSeconds, interval: this.deps.pollIntervalSeconds };
      }
    }
    throw new Error('could not allocate a unique pairing code');
  }

  /**
   * Poll for the outcome (RFC 8628 3.4-3.5). The credential is minted on the
   * first poll after approval and returned that once.
   */
  async poll(deviceCode: string): Promise<PairPollResponse> {
    const now = this.now();
    for (let attempt = 0; attempt < 5; attempt++) {
      const p = await this.deps.storage.pairings.getByDeviceCodeHash(this.hashDeviceCode(deviceCode));
      if (!p || p.status === 'issued') return { status: 'expired_token' };
      if (p.status === 'denied') return { status: 'access_denied' };
      if (now.getTime() >= Date.parse(p.expiresAt)) return { status: 'expired_token' };
      if (p.status === 'pending') {
        const tooSoon = p.lastPolledAt !== null && now.getTime() - Date.parse(p.lastPolledAt) < (this.deps.pollIntervalSeconds * 1000) / 2;
        const saved = await this.deps.storage.pairings.save({ ...p, lastPolledAt: now.toISOString(), version: p.version + 1 }, p.version);
        if (saved === 'conflict') continue;
        return tooSoon ? { status: 'slow_down', interval: this.deps.pollIntervalSeconds + 5 } : { status: 'authorization_pending' };
      }
      // approved: mint the credential once.
      const deviceId = randomUUID();
      const saved = await this.deps.storage.pairings.save({ ...p, status: 'issued', deviceId, lastPolledAt: now.toISOString(), version: p.version + 1 }, p.version);
      if (saved === 'conflict') continue;
      const secret = generateSecret(32);
      const device: Device = {
        id: deviceId,
        personId: p.personId as string,
        workstation: p.workstation,
        credentialHash: credentialHash(this.deps.credentialHashKey, secret),
        createdAt: now.toISOString(),
        lastSeenAt: null,
        revokedAt: null,
        connectedInstance: null,
        version: 1,
      };
      await this.deps.storage.devices.insert(device);
      await this.deps.storage.audit.append({ id: randomUUID(), at: now.toISOString(), actor: `device:${deviceId}`, action: 'pairing.credential_issued', personId: device.personId, details: { deviceId, workstation: p.workstation } });
      const person = await this.deps.storage.persons.get(device.personId);
      this.deps.logger.info({ deviceId, personId: device.personId }, 'device credential issued');
      return { status: 'approved', deviceId, credential: `${deviceId}.${secret}`, personName: person?.displayName ?? '' };
    }
    return { status: 'authorization_pending' };
  }

  /**
   * A person sent `pair CODE` in Teams: bind the waiting companion to them.
   *
   * @param person - the person sending the code (registered)
   * @param typed - the code as typed (case, spaces and dash tolerated)
   */
  async approve(person: { id: string }, typed: string): Promise<ApproveResult> {
    // One check at a time per person, so a burst of guesses cannot all pass the
    // failure count before any of them is recorded.
    const previous = this.approvals.get(person.id) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.approveNow(person, typed));
    const tail = run.then(() => undefined, () => undefined);
    this.approvals.set(person.id, tail);
    void tail.then(() => {
      if (this.approvals.get(person.id) === tail) this.approvals.delete(person.id);
    });
    return run;
  }

  private async approveNow(person: { id: string }, typed: string): Promise<ApproveResult> {
    const now = this.now();
    const since = now.getTime() - PAIRING_RULES.failureWindowMs;
    const recent = await this.deps.storage.audit.list({ personId: person.id, limit: 10_000 });
    const failures = recent.filter((e) => e.action === 'pairing.code_refused' && Date.parse(e.at) >= since).length;
    if (failures >= PAIRING_RULES.maxFailuresPerWindow) {
      return { ok: false, reason: 'too_many_tries', message: 'Too many pairing codes did not match. Wait 10 minutes, then start pairing again on the companion.' };
    }
    const normalised = normaliseUserCode(typed);
    const refuse = async (reason: 'malformed' | 'unknown_or_expired' | 'already_used', message: string): Promise<ApproveResult> => {
      await this.deps.storage.audit.append({ id: randomUUID(), at: now.toISOString(), actor: `person:${person.id}`, action: 'pairing.code_refused', personId: person.id, details: { reason } });
      return { ok: false, reason, message };
    };
    if (!normalised) return refuse('malformed', 'That does not look like a pairing code. It is 8 letters and digits shown by the companion, like K7QF-M2XD.');
    for (let attempt = 0; attempt < 5; attempt++) {
      const p = await this.deps.storage.pairings.getByUserCodeHash(this.hashUserCode(normalised));
      if (!p || now.getTime() >= Date.parse(p.expiresAt)) return refuse('unknown_or_expired', 'That pairing code is not known or has expired. Check the code on the companion, or restart pairing there for a new one.');
      if (p.status !== 'pending') {
        if (p.personId === person.id) return { ok: true, workstation: p.workstation };
        return refuse('already_used', 'That pairing code has already been used.');
      }
      const saved = await this.deps.storage.pairings.save({ ...p, status: 'approved', personId: person.id, version: p.version + 1 }, p.version);
      if (saved === 'conflict') continue;
      await this.deps.storage.audit.append({ id: randomUUID(), at: now.toISOString(), actor: `person:${person.id}`, action: 'pairing.approved', personId: person.id, details: { pairingId: p.id, workstation: p.workstation } });
      return { ok: true, workstation: p.workstation };
    }
    return { ok: false, reason: 'unknown_or_expired', message: 'Pairing is busy; send the code again.' };
  }

  /**
   * The device to use for a person now: the most recently seen, not revoked,
   * preferring one connected somewhere.
   */
  async currentDevice(personId: string, reachable: (device: Device) => boolean): Promise<Device | null> {
    const devices = (await this.deps.storage.devices.listByPerson(personId)).filter((d) => !d.revokedAt);
    if (devices.length === 0) return null;
    const score = (d: Device): number => (reachable(d) ? 2e15 : 0) + Date.parse(d.lastSeenAt ?? d.createdAt);
    devices.sort((a, b) => score(b) - score(a));
    return devices[0] ?? null;
  }
}
