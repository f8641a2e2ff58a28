/**
 * The MongoDB client a bot process shares between its store and its command
 * bus, with a watchdog that brings it back when the driver's own recovery is
 * stuck.
 *
 * Why a watchdog (found in issue 8, driver 7.9.0 against FerretDB v1.24.2):
 * when the server goes away, the connection that sees the close first marks
 * the server Unknown and the driver asks its monitor for a check at once. If
 * that check starts on the monitor's own connection in the instant between
 * the peer's FIN and the socket's `close` event, its `hello` never settles
 * (no reply, no error, no socket timeout: the socket is already destroyed).
 * The monitor then never checks again, the server stays Unknown with the error
 * `connection N to HOST closed`, and every operation fails server selection
 * (`MongoServerSelectionError: connection 1 to 127.0.0.1:PORT closed`) for as
 * long as the process lives, although the server is back and a new client
 * reaches it at once. It needs an operation in flight when the server closes
 * its sockets (the command bus always has one: its tailable getMore), so a bare
 * client rarely shows it; measured with the bot's store and bus, 5 of 16
 * stop/start cycles stuck. The driver exposes no option that bounds the
 * monitor's stuck check.
 *
 * The watchdog watches the driver's SDAM events. While the server is Unknown
 * it pings the same URL with a short-lived second client; once that ping
 * answers and this client still sees no server {@link MONGO_CLIENT_DEFAULTS.graceMs}
 * later (or a heartbeat has been in flight far longer than its own timeouts
 * allow), it closes and reconnects this same `MongoClient` object. Db and
 * Collection handles taken from it keep working (they look the topology up on
 * every operation); open cursors die and their owners reopen them.
 */
import { MongoClient, type MongoClientOptions } from 'mongodb';
import type { Logger } from '../../common/logger';

/** Client timeouts and watchdog timings, ms. */
export const MONGO_CLIENT_DEFAULTS = {
  /** How long an operation waits for a reachable server before it fails (then `STORAGE.UNAVAILABLE`). */
  serverSelectionTimeoutMS: 5000,
  /** TCP connect and handshake bound; also bounds a healthy monitor check (2x this). */
  connectTimeoutMS: 5000,
  /** Monitor heartbeat while idle: how soon an idle client notices the server is back. */
  heartbeatFrequencyMS: 2000,
  /** Watchdog tick. */
  tickMs: 1000,
  /** Server Unknown this long before the watchdog starts probing. */
  unknownBeforeProbeMs: 1000,
  /** After a probe answered, how long this client may take to see the server itself. */
  graceMs: 2000,
  /** Probe's own selection and connect timeouts. */
  probeTimeoutMs: 1500,
} as const;

/** Options of {@link openMongoClient}. */
export interface OpenMongoClientOptions {
  /** `mongodb://...` or `mongodb+srv://...` (may hold credentials: never logged). */
  url: string;
  serverSelectionTimeoutMS?: number;
  connectTimeoutMS?: number;
  heartbeatFrequencyMS?: number;
  /** Application name sent in the handshake. */
  appName?: string;
  logger?: Logger;
  /** Watchdog timings (tests). */
  watchdog?: Partial<Pick<typeof MONGO_CLIENT_DEFAULTS, 'tickMs' | 'unknownBeforeProbeMs' | 'graceMs' | 'probeTimeoutMs'>>;
}

/** An open client and its watchdog. */
export interface MongoClientHandle {
  readonly client: MongoClient;
  /** How many times the watchdog has reconnected the client. */
  recoveries(): number;
  /** Stop the watchdog and close the client. */
  close(): Promise<void>;
}

/**
 * Open a MongoClient (connected: the server answered a ping) with the recovery watchdog.
 *
 * @param options - `{ url, logger?, ...timeouts in ms }`
 * @returns the handle; `handle.client` is what the store and the bus take
 * @throws whatever `MongoClient` throws for a bad URL, or a driver error when no
 *   server answers within `serverSelectionTimeoutMS` (the caller maps it)
 */
export async function openMongoClient(options: OpenMongoClientOptions): Promise<MongoClientHandle> {
  const clientOptions: MongoClientOptions = {
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? MONGO_CLIENT_DEFAULTS.serverSelectionTimeoutMS,
    connectTimeoutMS: options.connectTimeoutMS ?? MONGO_CLIENT_DEFAULTS.connectTimeoutMS,
    heartbeatFrequencyMS: options.heartbeatFrequencyMS ?? MONGO_CLIENT_DEFAULTS.heartbeatFrequencyMS,
    appName: options.appName ?? 'smartcard-assist',
  };
  const client = new MongoClient(options.url, clientOptions);
  const watchdog = new ClientWatchdog(client, options, clientOptions);
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
  } catch (err) {
    watchdog.stop();
    await client.close().catch(() => undefined);
    throw err;
  }
  watchdog.start();
  return {
    client,
    recoveries: () => watchdog.recoveries,
    async close(): Promise<void> {
      watchdog.stop();
      await watchdog.idle();
      await client.close();
    },
  };
}

class ClientWatchdog {
  recoveries = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** When the (single) server turned Unknown, or null while it is known. */
  private unknownSince: number | null = null;
  /** When the heartbeat in flight started, or null. */
  private heartbeatSince: number | null = null;
  /** When a probe first answered during this Unknown spell, or null. */
  private probeOkAt: number | null = null;
  private busy: Promise<void> | null = null;
  private readonly timing: typeof MONGO_CLIENT_DEFAULTS;

  constructor(
    private readonly client: MongoClient,
    private readonly options: OpenMongoClientOptions,
    private readonly clientOptions: MongoClientOptions,
  ) {
    this.timing = { ...MONGO_CLIENT_DEFAULTS, ...options.watchdog };
    client.on('serverDescriptionChanged', (event) => {
      if (event.newDescription.type === 'Unknown') {
        this.unknownSince ??= Date.now();
      } else {
        this.unknownSince = null;
        this.probeOkAt = null;
      }
    });
    client.on('serverHeartbeatStarted', () => {
      this.heartbeatSince = Date.now();
    });
    const settled = (): void => {
      this.heartbeatSince = null;
    };
    client.on('serverHeartbeatSucceeded', settled);
    client.on('serverHeartbeatFailed', settled);
  }

  start(): void {
    this.timer = setInterval(() => {
      if (!this.busy && !this.stopped) {
        this.busy = this.tick()
          .catch((err: unknown) => this.options.logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'MongoDB client watchdog check failed'))
          .finally(() => {
            this.busy = null;
          });
      }
    }, this.timing.tickMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async idle(): Promise<void> {
    await this.busy;
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    // A heartbeat bounded by connect + handshake timeouts that has not settled long after: the monitor is stuck.
    const heartbeatLimit = 2 * Number(this.clientOptions.connectTimeoutMS) + 2000;
    if (this.heartbeatSince !== null && now - this.heartbeatSince > heartbeatLimit) {
      await this.reconnect('heartbeat_stuck', now - this.heartbeatSince);
      return;
    }
    if (this.unknownSince === null || now - this.unknownSince < this.timing.unknownBeforeProbeMs) return;
    if (this.probeOkAt === null) {
      if (await this.probe()) this.probeOkAt = Date.now();
      return;
    }
    if (now - this.probeOkAt >= this.timing.graceMs && this.unknownSince !== null) {
      await this.reconnect('server_answers_client_does_not', now - this.unknownSince);
    }
  }

  /** True when a new client reaches the server now. */
  private async probe(): Promise<boolean> {
    const probe = new MongoClient(this.options.url, {
      serverSelectionTimeoutMS: this.timing.probeTimeoutMs,
      connectTimeoutMS: this.timing.probeTimeoutMs,
      appName: `${this.clientOptions.appName ?? 'smartcard-assist'}-probe`,
    });
    try {
      await probe.db('admin').command({ ping: 1 });
      return true;
    } catch {
      return false;
    } finally {
      await probe.close().catch(() => undefined);
    }
  }

  private async reconnect(reason: string, unknownForMs: number): Promise<void> {
    if (this.stopped) return;
    this.options.logger?.warn({ reason, unknownForMs }, 'MongoDB client does not see a server that answers: reconnecting it');
    this.unknownSince = null;
    this.probeOkAt = null;
    this.heartbeatSince = null;
    const started = Date.now();
    await this.client.close().catch(() => undefined);
    if (this.stopped) return;
    try {
      await this.client.connect();
      this.recoveries += 1;
      this.options.logger?.info({ recoveries: this.recoveries, tookMs: Date.now() - started }, 'MongoDB client reconnected');
    } catch (err) {
      // Gone again meanwhile: the next operation connects (or fails as unavailable), the watchdog keeps watching.
      this.unknownSince = Date.now();
      this.options.logger?.warn({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'MongoDB client reconnect failed; will retry');
    }
  }
}
