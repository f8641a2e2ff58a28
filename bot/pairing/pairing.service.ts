/**
 * Companion pairing, following the OAuth 2.0 Device Authorization Grant pattern
 * (RFC 8628): the companion gets a device code (secret) and a short user code;
 * the person sends the user code to the bot in Teams; the companion's next poll
 * receives a revocable device credential, of which only a keyed hash is kept.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from '../../common/logger';
import type { PairPollResponse, PairStartRequest, PairStartResponse } from '../../protocol/companion-link.protocol';
import type { Device, Pairing, Storage } from '../../storage/storage.port';
import { formatUserCode, generateSecret, generateUserCode, keyedHash, normaliseUserCode } from '../security/codes';
import { credentialHash } from '../link/companion-link.server';
import { addressKey } from '../limits/address-key';
import type { RateLimitPort, RateRule, RateVerdict } from '../limits/rate-limit.port';

export const PAIRING_RULES = {
  /** Lifetime of a pairing code, seconds (issue #2: 10 minutes). */
  codeTtlSeconds: 600,
  /**
   * How long an expired pairing is kept before {@link PairingService.sweep} deletes it, ms. After
   * expiry a pairing answers nothing but `expired_token`, as a missing one does; the minute only
   * covers clocks of several instances that differ a little.
   */
  keepExpiredMs: 60_000,
} as const;

/**
 * Limits of the unauthenticated pairing surface (issue #10), counted in the store by the
 * rate-limit port, so every bot instance shares them and no volume of new keys resets them.
 * Sliding windows: at most `points` in any `windowMs`.
 */
export const PAIRING_LIMITS = {
  /** Pairing codes checked for one person (Teams identity), wrong or right (issue #2: 5 in 10 minutes). */
  guessesPerPerson: { points: 5, windowMs: 10 * 60_000 },
  /**
   * Pairing codes checked for everyone together, a minute. Bounds guessing across made-up
   * identities (issue #10: ~15,000 a minute without it); with at most ~3,000 live codes in a space
   * of 31^8 (~8.5e11), 120 guesses a minute hit one with odds of about 4e-7 a minute.
   */
  guessesOverall: { points: 120, windowMs: 60_000 },
  /** pair/start calls from one client address (an IPv6 /64), a minute. */
  startsPerAddress: { points: 20, windowMs: 60_000 },
  /**
   * pair/start calls from everyone, a minute. Bounds live pending pairings to
   * 300 x 10 minutes of code lifetime = 3,000 (plus those expired less than
   * `keepExpiredMs` + one sweep ago).
   */
  startsOverall: { points: 300, windowMs: 60_000 },
  /**
   * pair/poll calls for one device code, a minute, whoever sends them (never per address: a
   * flood from a NAT address must not stop a real companion behind it). RFC 8628 3.5 asks a
   * client to poll every `interval` seconds (5 by default): 12 a minute; 120 leaves room for retries.
   */
  pollsPerCode: { points: 120, windowMs: 60_000 },
} as const satisfies Record<string, RateRule>;

export type ApproveResult =
  | { ok: true; workstation: string }
  | {
      ok: false;
      /** `too_many_tries`: this person's limit; `busy`: the overall limit (the code was not checked either way). */
      reason: 'malformed' | 'unknown_or_expired' | 'already_used' | 'too_many_tries' | 'busy';
      message: string;
    };

/** A pairing call refused by a limit: a message saying what to do, and when to try again. */
export interface PairingLimited {
  kind: 'limited';
  /** Which limit: the client's address, everyone's, or this device code's. */
  scope: 'address' | 'overall' | 'code';
  /** Plain words for the companion's log or the person, with the wait in them. */
  message: string;
  /** ms until a call could pass (for `Retry-After`, RFC 9110 10.2.3). */
  retryAfterMs: number;
}

export type PairStartOutcome = { kind: 'started'; response: PairStartResponse } | PairingLimited;
export type PairPollOutcome = { kind: 'polled'; response: PairPollResponse } | PairingLimited;

/** "30 seconds", "1 minute", "10 minutes": the wait in a message. */
function waitText(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds <= 90) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

export class PairingService {
  /** When the overall guess limit was last logged as a warning (once a minute at most, so a flood does not flood the log). */
  private overallWarnedAt = 0;

  constructor(
    private readonly deps: {
      storage: Storage;
      codeHashKey: KeyObject;
      credentialHashKey: KeyObject;
      pollIntervalSeconds: number;
      /** Where the limits are counted (the store, through `createStoreRateLimiter`). */
      limits: RateLimitPort;
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

  private limited(scope: PairingLimited['scope'], verdict: RateVerdict, message: string): PairingLimited {
    this.deps.logger.debug({ scope, retryAfterMs: verdict.retryAfterMs }, 'pairing call refused by a limit');
    return { kind: 'limited', scope, message, retryAfterMs: verdict.retryAfterMs };
  }

  /**
   * Pass every limit in order, or be refused by the first that is full. All are checked (reads)
   * before any is counted, so a call refused by one limit uses up none of the others, and a flood
   * refused by a full limit stores nothing; then each is counted atomically, in the same order.
   *
   * @returns null when every limit counted the call, else the first refusal's answer
   */
  private async admit<R>(now: Date, limits: readonly { key: string; rule: RateRule; refuse: (verdict: RateVerdict) => R }[]): Promise<R | null> {
    for (const l of limits) {
      const v = await this.deps.limits.check(l.key, l.rule, now);
      if (!v.allowed) return l.refuse(v);
    }
    for (const l of limits) {
      const v = await this.deps.limits.consume(l.key, l.rule, now);
      if (!v.allowed) return l.refuse(v);
    }
    return null;
  }

  /**
   * `POST /companion/pair/start` from a client: the limits ({@link PAIRING_LIMITS} `startsPerAddress`,
   * then `startsOverall`), then {@link start}. A call refused by one limit uses up neither; once the
   * overall limit is full, more calls store nothing (so a flood from many addresses adds no rows).
   *
   * @param request - the checked body
   * @param client.address - the socket's remote address (an IPv6 address counts by its /64)
   * @returns `{ kind: 'started', response }` or `{ kind: 'limited', scope, message, retryAfterMs }`
   * @throws StorageError `STORAGE.UNAVAILABLE` when the store cannot be reached
   */
  async startFromClient(request: PairStartRequest, client: { address: string | undefined }): Promise<PairStartOutcome> {
    const now = this.now();
    const address = keyedHash(this.deps.codeHashKey, 'rate-limit-address', addressKey(client.address)).slice(0, 32);
    const refused = await this.admit(now, [
      {
        key: `pair.start.addr:${address}`,
        rule: PAIRING_LIMITS.startsPerAddress,
        refuse: (v) => this.limited('address', v, `Too many pairing requests from this network address. Wait ${waitText(v.retryAfterMs)}, then start pairing again.`),
      },
      {
        key: 'pair.start.all',
        rule: PAIRING_LIMITS.startsOverall,
        refuse: (v) => this.limited('overall', v, `Too many pairing requests right now. Wait ${waitText(v.retryAfterMs)}, then start pairing again.`),
      },
    ]);
    return refused ?? { kind: 'started', response: await this.start(request) };
  }

  /**
   * `POST /companion/pair/poll` from a client: the per-code limit ({@link PAIRING_LIMITS} `pollsPerCode`),
   * then {@link poll}. Only a device code of a live pairing is counted: an unknown, used or expired code
   * gets its answer at once and stores nothing.
   *
   * @param deviceCode - the device code as sent (a secret: only its keyed hash is used)
   * @returns `{ kind: 'polled', response }` or `{ kind: 'limited', scope: 'code', message, retryAfterMs }`
   * @throws StorageError `STORAGE.UNAVAILABLE` when the store cannot be reached
   */
  async pollFromClient(deviceCode: string): Promise<PairPollOutcome> {
    const now = this.now();
    const hash = this.hashDeviceCode(deviceCode);
    const p = await this.deps.storage.pairings.getByDeviceCodeHash(hash);
    if (p && (p.status === 'pending' || p.status === 'approved') && now.getTime() < Date.parse(p.expiresAt)) {
      const v = await this.deps.limits.consume(`pair.poll.code:${hash.slice(0, 32)}`, PAIRING_LIMITS.pollsPerCode, now);
      if (!v.allowed) return this.limited('code', v, `Too many polls for this pairing code: poll once every ${this.deps.pollIntervalSeconds} seconds. Wait ${waitText(v.retryAfterMs)}, then poll again.`);
    }
    return { kind: 'polled', response: await this.poll(deviceCode) };
  }

  /**
   * Delete pairings that expired more than {@link PAIRING_RULES} `keepExpiredMs` ago (the composition root runs it now and then).
   *
   * @returns how many were deleted
   */
  sweep(): Promise<number> {
    return this.deps.storage.pairings.deleteExpired(new Date(this.now().getTime() - PAIRING_RULES.keepExpiredMs).toISOString());
  }

  /**
   * Start a pairing (RFC 8628 3.1-3.2), with no limit: the HTTP surface calls {@link startFromClient}.
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
   * Poll for the outcome (RFC 8628 3.4-3.5), with no limit: the HTTP surface calls {@link pollFromClient}.
   * The credential is minted on the first poll after approval and returned that once.
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
   * Each code sent is counted before it is checked, against the person's limit and then the overall
   * one ({@link PAIRING_LIMITS} `guessesPerPerson`, `guessesOverall`), in the store: a burst of guesses,
   * on one instance or several, has at most 5 checked per person in 10 minutes and 120 a minute in all.
   * A refused code is not checked, not audited and uses up neither limit; once the overall limit is
   * full, guesses from made-up identities store nothing.
   *
   * @param person - the person sending the code (registered, or the provisional id of a Teams identity)
   * @param typed - the code as typed (case, spaces and dash tolerated)
   * @returns `{ ok: true, workstation }`, or `{ ok: false, reason, message }` with the message to show
   * @throws StorageError `STORAGE.UNAVAILABLE` when the store cannot be reached
   */
  async approve(person: { id: string }, typed: string): Promise<ApproveResult> {
    const now = this.now();
    const refused = await this.admit<ApproveResult>(now, [
      {
        key: `pair.guess.person:${person.id}`,
        rule: PAIRING_LIMITS.guessesPerPerson,
        refuse: (v) => ({ ok: false, reason: 'too_many_tries', message: `Too many pairing codes did not match. Wait ${waitText(v.retryAfterMs)}, then start pairing again on the companion.` }),
      },
      {
        key: 'pair.guess.all',
        rule: PAIRING_LIMITS.guessesOverall,
        refuse: (v) => {
          const log = now.getTime() - this.overallWarnedAt >= 60_000 ? 'warn' : 'debug';
          if (log === 'warn') this.overallWarnedAt = now.getTime();
          this.deps.logger[log]({ retryAfterMs: v.retryAfterMs }, 'pairing codes refused unchecked: the overall limit on pairing codes is reached');
          return { ok: false, reason: 'busy', message: `Too many pairing codes are being checked right now. Wait ${waitText(v.retryAfterMs)}, then send the code again.` };
        },
      },
    ]);
    if (refused) return refused;
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
