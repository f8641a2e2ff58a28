/**
 * Composition root of the bot process (STYLE.md 5): reads configuration, builds
 * every adapter and service once, wires them, and starts the HTTP server.
 * Nothing else in `bot/` reads the environment or constructs an adapter.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CloudAdapter, TurnContext } from 'botbuilder';
import { AppError } from '../common/app-error';
import { journeyUnreadableText } from '../cards/service.card';
import { createLogger, type Logger } from '../common/logger';
import type { Device, Storage } from '../storage/storage.port';
import type { MailPort } from './mail/mail.port';
import type { NotifyPort } from './notify/notify.port';
import { OutboxSmsAdapter } from './notify/outbox-sms.adapter';
import type { DirectoryPort } from './directory/directory.port';
import { openStorage } from '../storage/storage.factory';
import { loadConfig, type BotConfig } from './config';
import { createHttpServer } from './http/http.server';
import { exitGracefullyOnSignals, InFlightRequests, refuseWhileStopping, shutDown, type ShutdownReport } from './lifecycle';
import { connectionBudget, parseOpenFileLimit } from './http/connection-guard';
import { ChannelAdapter, createChannelAuthentication, type ChannelAuthOverrides } from './http/channel-auth';
import { DEFAULT_UNLOCK_RULES } from './journeys/unlock/unlock.journey';
import { UnlockService } from './journeys/unlock/unlock.service';
import { RegistrationService } from './journeys/registration/registration.service';
import { EffectRunner } from './journeys/effect-runner';
import { JourneyEngine } from './journeys/journey.engine';
import { CompanionLinkServer } from './link/companion-link.server';
import { OutboxMailAdapter } from './mail/outbox-mail.adapter';
import { PairingService } from './pairing/pairing.service';
import { createStoreRateLimiter } from './limits/store-rate-limiter';
import { deriveKeys, parseMasterKey, type DerivedKeys } from './security/keys';
import { seal, unseal } from './security/seal';
import type { CommandBus } from './link/bus/command-bus.port';
import { SmartcardBot } from './teams/teams.bot';
import { TeamsNotifierAdapter } from './teams/teams-notifier.adapter';
import { RaChannelNotifier } from './teams/ra-channel.notifier';
import { raCaseDefinition } from './journeys/ra-case/ra-case.definition';
import { RaDeskService } from './journeys/ra-case/ra-desk.service';
import { resetSelfService } from './journeys/unlock/self-service-reset';
import { unlockDefinition } from './journeys/unlock/unlock.definition';
import { unlockRulesFor } from './journeys/unlock/unlock-policy.config';
import { registrationDefinition } from './journeys/registration/registration.definition';

/**
 * Open the configured store and, for MongoDB (several instances), the command
 * bus on the same client. The embedded store needs no bus: one process holds
 * every companion connection.
 */
async function openStore(config: BotConfig, keys: DerivedKeys, logger: Logger): Promise<{ storage: Storage; bus: CommandBus | null; closeClient: () => Promise<void> }> {
  if (config.storage.kind !== 'mongodb') return { storage: await openStorage(config.storage, logger), bus: null, closeClient: async () => undefined };
  const { openMongoClient } = await import('../storage/mongodb/mongodb-client');
  const { openMongoStorage } = await import('../storage/mongodb/mongodb-storage.adapter');
  const { openMongoCommandBus } = await import('./link/bus/mongodb-command-bus.adapter');
  // One client for the store and the bus, with a watchdog that reconnects it when the driver's
  // own monitor is stuck after a server restart (storage/mongodb/mongodb-client.ts).
  let handle: Awaited<ReturnType<typeof openMongoClient>>;
  try {
    handle = await openMongoClient({ url: config.storage.url, logger });
  } catch (err) {
    throw new AppError('STORAGE.UNAVAILABLE', 'cannot reach MongoDB at MONGODB_URL', { cause: err });
  }
  const { client } = handle;
  try {
    const storage = await openMongoStorage({ client, ...(config.storage.database ? { database: config.storage.database } : {}), logger });
    const busKey = keys.busKey;
    const bus = await openMongoCommandBus({
      db: client.db(storage.databaseName),
      instanceId: config.instanceId,
      cipher: { seal: (plaintext, aad) => seal(busKey, plaintext, aad), open: (sealed, aad) => unseal(busKey, sealed, aad) },
      logger,
    });
    logger.info({ instanceId: config.instanceId, database: storage.databaseName, bus: bus.mode }, 'MongoDB store and command bus open');
    return { storage, bus, closeClient: () => handle.close() };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

/** A running bot: its services (for tests and benchmarks in-process) and how to stop it. */
export interface BotApp {
  config: BotConfig;
  storage: Storage;
  unlock: UnlockService;
  pairing: PairingService;
  link: CompanionLinkServer;
  adapter: CloudAdapter;
  bot: SmartcardBot;
  /** Base URL the server listens on, e.g. `http://127.0.0.1:3978`. */
  url: string;
  close(): Promise<void>;
  /** Stop gracefully within `config.shutdown.graceMs` (bot/lifecycle.ts); `close()` runs the same stop, once. */
  shutdown(): Promise<ShutdownReport>;
}

/**
 * Build every adapter and service once, wire them, and start listening.
 *
 * @param config - validated configuration ({@link loadConfig})
 * @param overrides - replace an adapter (tests, benchmarks): `mail`, `sms`, `logger`, `directory`;
 *   `wrapStorage` wraps the opened store before anything uses it (interleaving tests);
 *   `pairingClock` is the clock of the pairing service and its rate limits (limit tests);
 *   `channel` points channel authentication at other OpenID metadata and replaces the bot's
 *   own outgoing tokens (the contract test's local keys; bot/http/channel-auth.ts)
 * @returns the running app; `close()` stops the server, the link and the store
 */
export async function startBot(
  config: BotConfig,
  overrides: { mail?: MailPort; sms?: NotifyPort; logger?: Logger; directory?: DirectoryPort | null; wrapStorage?: (storage: Storage) => Storage; channel?: ChannelAuthOverrides; pairingClock?: () => Date } = {},
): Promise<BotApp> {
  const logger = overrides.logger ?? createLogger({ name: 'bot', level: config.logLevel });
  const keys = deriveKeys(parseMasterKey(config.masterKey, 'SMARTCARD_MASTER_KEY'));
  // The overall connection cap stays below the open-file limit, so a flood meets the cap, not EMFILE.
  // Decided before anything is opened: a cap that cannot fit stops start-up here.
  const fileLimit = parseOpenFileLimit(readProcLimits());
  const budget = connectionBudget(config.http.maxConnections, fileLimit);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const opened = await openStore(config, keys, logger);
  const { bus, closeClient } = opened;
  // Tests may interpose on every storage call (e.g. to schedule interleavings).
  const storage = overrides.wrapStorage ? overrides.wrapStorage(opened.storage) : opened.storage;
  let mail: MailPort;
  if (overrides.mail) mail = overrides.mail;
  else if (config.mail.transport === 'graph') {
    // Loaded only when chosen, so the outbox path never loads the Graph client.
    const { createGraphMailAdapter } = await import('./mail/graph/graph-mail.adapter');
    const graph = createGraphMailAdapter(config.mail.graph, logger);
    await graph.verify(); // a missing or wrong setting stops start-up, naming the setting
    mail = graph;
  } else mail = new OutboxMailAdapter({ dir: config.mail.outboxDir, from: { name: 'Smartcard Assist', address: config.mail.from }, logger, retention: config.mail.retention });
  // Text messages (issue #14): GOV.UK Notify, loaded only when chosen; else the local outbox (the demo's default).
  let sms: NotifyPort;
  if (overrides.sms) sms = overrides.sms;
  else if (config.sms.transport === 'notify') {
    const { GovukNotifyAdapter } = await import('./notify/govuk-notify.adapter');
    const notify = new GovukNotifyAdapter({ config: config.sms, logger });
    await notify.verify(); // a key or template id Notify refuses stops start-up, naming the setting
    sms = notify;
  } else {
    // The same retention as the mail outbox (OUTBOX_* settings), whichever mail transport is configured.
    sms = new OutboxSmsAdapter({ dir: config.sms.outboxDir, logger, ...(config.mail.retention ? { retention: config.mail.retention } : {}) });
  }

  // UNLOCK_* settings (issue #14), validated at start-up.
  const rules = unlockRulesFor(config.unlockPolicy, DEFAULT_UNLOCK_RULES);
  const now = (): Date => new Date();
  const definitions = {
    unlock: unlockDefinition({ keys, rules, now, boot: { id: config.instanceId, sharedStore: config.storage.kind === 'mongodb' } }),
    registration: registrationDefinition({ keys, approvedDomains: config.approvedEmailDomains, now }),
  };
  const currentDevice = (personId: string): Promise<Device | null> => pairing.currentDevice(personId, (d) => link.isReachable(d));

  // One way through, no setters: the link routes what companions send to the
  // journeys' services, and the effect runner reaches Teams through the notifier.
  // These closures name services built below; they are called only once the
  // server listens, when every one of them exists.
  const link: CompanionLinkServer = new CompanionLinkServer({
    storage,
    credentialHashKey: keys.credentialHashKey,
    logger,
    instanceId: config.instanceId,
    bus,
    handlers: {
      requests: {
        'unlock.submit_code': (device, request, session) => unlock.onCompanionRequest(device, request, session),
        'unlock.resume': (device, request, session) => unlock.onCompanionRequest(device, request, session),
        'unlock.result': (device, request, session) => unlock.onCompanionRequest(device, request, session),
        'register.passcode_checked': (device, request) => registration.onCompanionRequest(device, request),
      },
      onCardEvent: (device, status) => unlock.onCardEvent(device, status),
      onConnected: async (device) => {
        await engine.drain(device.personId, 'unlock');
        await engine.drain(device.personId, 'registration');
        // A restarted companion forgot any form it was showing: show it again.
        await unlock.onCompanionConnected(device).catch((err: unknown) => logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'unlock prompt not re-sent'));
        await registration
          .onCompanionConnected(device, async (deviceId: string, journeyId: string) => {
            await link.sendCommand(deviceId, { kind: 'register.prompt_passcode', journeyId }, config.companionCommandTimeoutMs);
          })
          .catch((err: unknown) => logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'registration prompt not re-sent'));
      },
    },
    // A refused second connection is told to the person in their Teams chat (issue #10).
    tellPerson: (personId, text) => notifier.tell(personId, text),
  });
  await link.start();
  // Rate limits counted in the store, shared by every instance (issue #10).
  const pairingClock = overrides.pairingClock ? { now: overrides.pairingClock } : {};
  const limits = createStoreRateLimiter({ hits: storage.rateHits, ...pairingClock });
  const pairing: PairingService = new PairingService({ storage, codeHashKey: keys.codeHashKey, credentialHashKey: keys.credentialHashKey, pollIntervalSeconds: config.pairingPollIntervalSeconds, limits, logger, ...pairingClock });
  const runner: EffectRunner = new EffectRunner({
    storage,
    link,
    mail,
    sms,
    sealKey: keys.sealKey,
    codeHashKey: keys.codeHashKey,
    timeZone: config.timeZone,
    raContact: config.raContact,
    codeTtlMinutes: Math.round(rules.codeTtlMs / 60_000),
    commandTimeoutMs: config.companionCommandTimeoutMs,
    now,
    notifier: { refresh: (personId, journey, message) => notifier.refresh(personId, journey, message) },
    // The RA desk (issue #12): case journeys, the case card in the RA channel, the person told.
    raDesk: {
      caseOpened: (raCase) => raDesk.caseOpened(raCase),
      postCaseCard: (caseRef) => raChannel.postCaseCard(caseRef),
      // One way to tell a person in their chat: the Teams notifier's.
      tellPerson: (personId, text) => notifier.tell(personId, text),
      resetSelfService: async (personId, actor, note) => {
        await resetSelfService(engine, personId, actor, note);
      },
      startAssistedUnlock: (personId, caseRef, actor) => raDesk.startAssistedUnlock(personId, caseRef, actor),
    },
  });
  const engine: JourneyEngine = new JourneyEngine({ storage, runner, logger, now, definitions });
  // The RA desk (issue #12). Its unlock side: "talk to RA" pauses the running unlock, and the case card's
  // "Start an RA-assisted unlock" starts or resumes it with the questions skipped (bot/journeys/unlock/).
  const raDesk = new RaDeskService({
    storage,
    engine,
    definition: raCaseDefinition({ now }),
    config: config.raDesk,
    now,
    logger,
    unlock: {
      pause: async (personId, caseRef) => {
        await unlock.pauseForRa(personId, caseRef);
      },
      startAssisted: async (personId, caseRef, actor) => {
        const r = await unlock.startAssistedUnlock({ personId, caseRef, actor });
        if (r.kind === 'refused') logger.warn({ caseRef, reason: r.reason }, 'RA-assisted unlock refused by the unlock journey');
      },
    },
  });
  const unlock: UnlockService = new UnlockService({
    storage,
    engine,
    link,
    notify: async (personId, message) => notifier.refresh(personId, 'unlock', message),
    keys,
    rules,
    logger,
    timeZone: config.timeZone,
    raContact: config.raContact,
    commandTimeoutMs: config.companionCommandTimeoutMs,
    currentDevice,
    // UNLOCK_POLICY=code-only (issue #14): where a code may go, from the directory profile.
    directoryLookup: async (aadObjectId) => (directory ? directory.lookup(aadObjectId) : null),
    // Code-only: with a directory, a stored person's own email/mobile never stand in for their current profile.
    hasDirectory: () => directory !== null,
    approvedDomains: config.approvedEmailDomains,
  });

  const auth = createChannelAuthentication(config.auth, overrides.channel);
  if (config.auth.kind === 'none') {
    // config.ts refuses a non-loopback HOST without an app id.
    logger.warn({ host: config.host }, 'MicrosoftAppId is not set: channel authentication is off, so the bot listens on loopback only (local development with the Agents Playground)');
  } else logger.info({ appType: config.auth.appType, allowedTenants: config.allowedTenants.length }, 'channel authentication on: Bot Framework tokens required on /api/messages');
  const adapter = new ChannelAdapter(auth, { authRequired: config.auth.kind !== 'none' });
  adapter.onTurnError = async (context: TurnContext, error: Error) => {
    const code = error instanceof AppError ? error.code : undefined;
    const field = error instanceof AppError && typeof error.meta['field'] === 'string' ? error.meta['field'] : undefined;
    logger.error({ ...(code ? { code } : {}), ...(field ? { field } : {}), err: error instanceof AppError ? error.toJSON() : { name: error.name, message: error.message, stack: error.stack }, activityType: context.activity.type }, 'turn failed');
    try {
      if (context.activity.type === 'message') {
        const busy = code === 'STORAGE.UNAVAILABLE' || code === 'JOURNEY.BUSY';
        // A stored journey that cannot be read: retrying cannot help, RA can.
        const unreadable = code === 'JOURNEY.STATE_INVALID';
        await context.sendActivity(
          unreadable
            ? journeyUnreadableText(error instanceof AppError && error.meta['journey'] === 'registration' ? 'registration' : 'unlock', config.raContact)
            : busy
              ? 'Smartcard Assist cannot reach its records just now. Nothing was lost: try again shortly.'
              : 'Sorry, something went wrong on our side. Nothing was lost: try again in a moment.',
        );
      }
    } catch {
      // The channel may be unreachable too; the log line above is what remains.
    }
  };

  let directory: DirectoryPort | null = overrides.directory ?? null;
  if (overrides.directory === undefined && config.directory.kind === 'graph') {
    const { createGraphDirectory } = await import('./directory/graph-directory.adapter');
    directory = createGraphDirectory(config.directory, logger);
  }
  const registration: RegistrationService = new RegistrationService({
    storage,
    engine,
    keys,
    logger,
    approvedDomains: config.approvedEmailDomains,
    directory,
    timeZone: config.timeZone,
    raContact: config.raContact,
    currentDevice,
    isReachable: (d) => link.isReachable(d),
  });
  const bot: SmartcardBot = new SmartcardBot({ storage, unlock, registration, pairing, isReachable: (d) => link.isReachable(d), logger, timeZone: config.timeZone, raContact: config.raContact, rules, allowedTenants: config.allowedTenants, raDesk, raChannel: { learn: (activity) => raChannel.learn(activity) } });
  const notifier: TeamsNotifierAdapter = new TeamsNotifierAdapter({ adapter, appId: config.auth.kind === 'none' ? '' : config.auth.appId, storage, engine, bot, logger });
  const raChannel = new RaChannelNotifier({ adapter, appId: config.auth.kind === 'none' ? '' : config.auth.appId, storage, engine, desk: raDesk, config: config.raDesk, logger });

  const connections = { ...config.http, maxConnections: budget.maxConnections };
  logger.info(
    { maxConnections: budget.maxConnections, openFileLimit: fileLimit === null ? 'unknown' : String(fileLimit), filesKeptFree: budget.reserve, maxConnectionsPerAddress: config.http.maxConnectionsPerAddress, headersTimeoutMs: config.http.headersTimeoutMs, requestTimeoutMs: config.http.requestTimeoutMs },
    budget.lowered ? 'connection cap lowered to fit below the open-file limit (raise ulimit -n for more)' : 'connection limits',
  );
  // Set once a graceful shutdown begins (bot/lifecycle.ts): /readyz answers 503 and new requests are refused.
  let stopping = false;
  const health = {
    checks: [
      { name: 'storage', check: () => storage.ping() },
      { name: 'mail', check: () => mail.check?.() ?? Promise.resolve() },
    ],
    isStopping: () => stopping,
  };
  const server = createHttpServer({ adapter, bot, pairing, storage, logger, connections, allowedTenants: config.allowedTenants, health });
  link.attach(server.server);
  const requests = new InFlightRequests(server.server);
  refuseWhileStopping(server, () => stopping);
  await new Promise<void>((resolve) => server.listen(config.port, config.host, () => resolve()));
  const address = server.address();
  const url = `http://${config.host}:${address.port}`;
  logger.info({ url, dataDir: config.dataDir, mail: config.mail.transport, outbox: config.mail.outboxDir, sms: config.sms.transport }, 'Smartcard Assist bot listening');

  const sweeper = setInterval(() => {
    void engine.sweep().catch((err: unknown) => logger.warn({ err }, 'effect sweep failed'));
    void pairing.sweep().catch(() => undefined); // pairings expired a minute ago
    void limits.sweep().catch(() => undefined); // rate-limit hits whose window has ended
  }, 10_000);
  sweeper.unref();

  let serverClosed: Promise<void> = Promise.resolve();
  const steps = {
    stopAccepting: () => {
      stopping = true;
      clearInterval(sweeper);
      // No new connections; idle keep-alive connections close now, busy ones after their response.
      serverClosed = new Promise<void>((resolve) => server.server.close(() => resolve()));
    },
    // Turns (HTTP requests) and the engine's steps and effect drains in flight.
    settle: async () => {
      do {
        await requests.idle();
        await engine.idle();
      } while (requests.count > 0);
    },
    closeLinks: () => link.close(),
    release: async () => {
      server.server.closeAllConnections();
      await serverClosed;
      await bus?.close().catch(() => undefined);
      await storage.close();
      await closeClient();
    },
  };
  let stopped: Promise<ShutdownReport> | null = null;
  const shutdown = (): Promise<ShutdownReport> => (stopped ??= shutDown(steps, { graceMs: config.shutdown.graceMs, logger }));
  return {
    config,
    storage,
    unlock,
    pairing,
    link,
    adapter,
    bot,
    url,
    shutdown,
    async close() {
      await shutdown();
    },
  };
}

/** The text of `/proc/self/limits` (Linux), or null where there is none. */
function readProcLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  let config: BotConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const logger = createLogger({ name: 'bot', level: config.logLevel });
  const app = await startBot(config, { logger });
  // SIGTERM / SIGINT: stop within SHUTDOWN_GRACE_MS; exit 0 when nothing was left in flight, else 1 (bot/lifecycle.ts).
  exitGracefullyOnSignals(() => app.shutdown(), { graceMs: config.shutdown.graceMs, logger });
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]).replace(/\.ts$/, '') === fileURLToPath(import.meta.url).replace(/\.ts$/, '');
if (isMain) {
  void main().catch((err: unknown) => {
    process.stderr.write(`Smartcard Assist bot failed to start: ${err instanceof AppError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
