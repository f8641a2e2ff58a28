/**
 * Pairing client: the device-authorization pattern of RFC 8628 over the bot's
 * `POST /companion/pair/start` and `POST /companion/pair/poll`.
 *
 * The companion asks for a code, shows the short user code to the person (who
 * sends `pair CODE` to the bot in Teams), and polls at the interval the bot
 * gave until it is approved. `slow_down` widens the interval (RFC 8628 3.5);
 * an expired or denied code is replaced by a fresh one, so a companion left
 * running always shows a usable code. The device code and the credential are
 * secrets: neither is ever logged.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { z } from 'zod';
import type { Logger } from '../../common/logger';
import {
  PairPollResponseSchema,
  PairStartResponseSchema,
  type PairPollResponse,
  type PairStartRequest,
  type PairStartResponse,
} from '../../protocol/companion-link.protocol';
import { backoffDelay, type BackoffOptions } from '../backoff';
import { botFetch } from '../bot-tls';
import { pairUrlFor } from '../config';

/** A user code to show the person. */
export interface PairingCode {
  /** `XXXX-XXXX`, what the person sends to the bot (`pair XXXX-XXXX`). */
  userCode: string;
  /** When the code stops working. */
  expiresAt: Date;
}

/** What a successful pairing yields. */
export interface PairedDevice {
  deviceId: string;
  /** Bearer credential `<deviceId>.<secret>`. Secret. */
  credential: string;
  personName: string;
}

export interface PairingClientOptions {
  /** Bot base URL. */
  botUrl: URL;
  /** Workstation name sent in `pair/start` (already sanitised). */
  workstation: string;
  logger: Logger;
  /** Called with each new user code (the first and every replacement). */
  onCode: (code: PairingCode) => void;
  /** Milliseconds per protocol second (`interval`, `expiresIn`); 1000 except in tests. */
  secondMs?: number;
  /** Backoff when the bot cannot be reached; default 1 s to 30 s. */
  retry?: BackoffOptions;
  /** Timeout of each HTTP request, in ms; default 10 000. */
  requestTimeoutMs?: number;
  /** CA certificates (PEM) to verify an `https://` bot with, instead of Node's built-in list (companion/bot-tls.ts). */
  ca?: readonly string[];
}

type HttpResult<T> = { ok: true; value: T } | { ok: false; status: number | null; reason: string };

/** Runs the pairing flow until the bot approves this companion. */
export class PairingClient {
  private readonly secondMs: number;
  private readonly retry: BackoffOptions;
  private readonly requestTimeoutMs: number;
  /** Global fetch, or one that trusts the configured private CA too. */
  private readonly fetch: typeof fetch;

  constructor(private readonly options: PairingClientOptions) {
    this.secondMs = options.secondMs ?? 1000;
    this.retry = options.retry ?? { initialMs: 1000, maxMs: 30_000 };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.fetch = options.ca ? botFetch(options.ca) : fetch;
  }

  /**
   * Pair: start, show the code, poll until approved; start a new code when one expires or is denied.
   *
   * @param signal - aborts the flow (shutdown)
   * @returns the device id, credential and person name from the `approved` poll (RFC 8628 3.5)
   * @throws the abort reason (an `AbortError`) when `signal` fires; nothing else (network
   *   failures and refusals are retried with backoff)
   */
  async pair(signal: AbortSignal): Promise<PairedDevice> {
    const log = this.options.logger;
    let failures = 0;
    for (;;) {
      signal.throwIfAborted();
      const started = await this.post('start', { workstation: this.options.workstation } satisfies PairStartRequest, PairStartResponseSchema, signal);
      if (!started.ok) {
        const wait = backoffDelay(failures++, this.retry);
        log.warn({ status: started.status, reason: started.reason, retryInMs: wait }, 'pairing start failed; retrying');
        await delay(wait, undefined, { signal });
        continue;
      }
      failures = 0;
      const start: PairStartResponse = started.value;
      const expiresAt = new Date(Date.now() + start.expiresIn * this.secondMs);
      this.options.onCode({ userCode: start.userCode, expiresAt });
      log.info({ expiresInSeconds: start.expiresIn, intervalSeconds: start.interval }, 'pairing code issued; waiting for approval');

      const outcome = await this.pollUntilDone(start, expiresAt, signal);
      if (outcome.status === 'approved') {
        log.info({ deviceId: outcome.deviceId }, 'pairing approved');
        return { deviceId: outcome.deviceId, credential: outcome.credential, personName: outcome.personName };
      }
      log.info({ outcome: outcome.status }, 'pairing code no longer usable; starting a new one');
    }
  }

  private async pollUntilDone(
    start: PairStartResponse,
    expiresAt: Date,
    signal: AbortSignal,
  ): Promise<Extract<PairPollResponse, { status: 'approved' | 'expired_token' | 'access_denied' }>> {
    let intervalSeconds = start.interval;
    let failures = 0;
    for (;;) {
      const extra = failures > 0 ? backoffDelay(failures - 1, this.retry) : 0;
      await delay(intervalSeconds * this.secondMs + extra, undefined, { signal });
      if (Date.now() >= expiresAt.getTime()) return { status: 'expired_token' };
      const polled = await this.post('poll', { deviceCode: start.deviceCode }, PairPollResponseSchema, signal);
      if (!polled.ok) {
        failures += 1;
        if (polled.status === 429) intervalSeconds += 5; // RFC 8628 3.5: treat like slow_down
        this.options.logger.warn({ status: polled.status, reason: polled.reason }, 'pairing poll failed; retrying');
        continue;
      }
      failures = 0;
      const r = polled.value;
      switch (r.status) {
        case 'authorization_pending':
          break;
        case 'slow_down':
          intervalSeconds = Math.max(r.interval, intervalSeconds + 1);
          this.options.logger.info({ intervalSeconds }, 'pairing poll asked to slow down');
          break;
        case 'expired_token':
        case 'access_denied':
        case 'approved':
          return r;
      }
    }
  }

  private async post<T>(step: 'start' | 'poll', body: unknown, schema: z.ZodType<T>, signal: AbortSignal): Promise<HttpResult<T>> {
    let res: globalThis.Response;
    try {
      res = await this.fetch(pairUrlFor(this.options.botUrl, step), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.requestTimeoutMs)]),
        redirect: 'error',
      });
    } catch (err) {
      signal.throwIfAborted();
      return { ok: false, status: null, reason: err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : 'request failed' };
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch {
      signal.throwIfAborted();
      return { ok: false, status: res.status, reason: 'response is not JSON' };
    }
    // RFC 8628 answers pending/slow_down/expired with HTTP 400 and a JSON body: trust the body's shape, not the status.
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      return { ok: false, status: res.status, reason: `response does not match the protocol at ${parsed.error.issues[0]?.path.join('.') || '(body)'}` };
    }
    return { ok: true, value: parsed.data };
  }
}
