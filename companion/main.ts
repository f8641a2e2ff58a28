/**
 * Companion composition root (STYLE.md 5): read the config, build the logger
 * and the card reader adapter, hand them to the runtime, stop cleanly on
 * SIGINT/SIGTERM. No logic lives here.
 *
 * Lines for the person go to stdout (see `companion.runtime.ts` for the exact
 * formats: `PASSCODE PAGE: `, `PAIRING CODE: `, `PAIRED: `, `STATUS: `, `UNLOCK: `);
 * the log goes to `COMPANION_LOG_FILE` (default `<data dir>/logs/companion.log`, rotated by size:
 * `desktop/rotating-log.ts`), or stderr with `COMPANION_LOG_FILE=-`.
 *
 * A new passcode page link, at any time: press Enter in the companion's
 * terminal (when stdin is a terminal), or run `companion --page-link` (same
 * data directory), which asks this process over its control socket and prints
 * `PASSCODE PAGE: <link>`; see `passcode-page/page-link.control.ts`.
 *
 * `companion --install-autostart` writes the XDG autostart entry that starts the
 * companion at login (`desktop/autostart.ts`; Windows and macOS: README) and exits.
 *
 * `companion --unpair` revokes this computer's pairing at the bot (the same
 * operation as `npm run admin -- revoke-device`) and deletes the stored
 * credential, then exits; see `pairing/unpair.ts`. When the companion runs for
 * this user, it asks that one (over the control socket) to unpair over its link,
 * which then pairs again (the tray's "Unpair" does the same).
 *
 * In a desktop session (issue #13; `desktop/`, docs/companion-desktop.md) the companion
 * also opens its page when a code is asked for, raises notifications and shows a
 * tray icon; headless (no DISPLAY, or the settings off) it prints its lines only.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { AppError } from '../common/app-error';
import { createLogger } from '../common/logger';
import { CardService } from './card/card.service';
import { CompanionRuntime, OUTPUT_PREFIX } from './companion.runtime';
import { companionCommand, loadCompanionConfig, type CompanionConfig } from './config';
import { CredentialStore } from './pairing/credential.store';
import { unpairFromCommandLine, type UnpairOutcome } from './pairing/unpair';
import { companionCommandLine, installAutostart } from './desktop/autostart';
import { DesktopPresenter } from './desktop/desktop.presenter';
import { CommandNotifier } from './desktop/notifier.adapter';
import { CommandPageOpener } from './desktop/page-opener.adapter';
import { openRotatingLog } from './desktop/rotating-log';
import { acquireInstanceLock, instanceLockPath, runningInstance, type InstanceLock } from './desktop/single-instance';
import { PageLinkControl, pageLinkSocketPath, requestPageLink, requestShow, requestUnpair, watchLinkRequests } from './passcode-page/page-link.control';
import { ReaderChoicePort } from './pcsc/reader-choice.port';
import type { CardReaderPort } from './piv/card-connection';
import { ReaderChoiceStore } from './tray/reader-choice.store';
import { SystrayTray } from './tray/systray.adapter';
import { TrayController } from './tray/tray.controller';
import { COMPANION_VERSION } from './version';

async function openReader(config: CompanionConfig, logger: ReturnType<typeof createLogger>): Promise<CardReaderPort> {
  if (config.reader.kind === 'virtual') {
    const { InProcessReaderAdapter } = await import('./virtual-card/in-process-reader.adapter');
    const { VirtualPivCard } = await import('./virtual-card/virtual-piv-card');
    const reader = new InProcessReaderAdapter({ ...(config.reader.readerName ? { readerName: config.reader.readerName } : {}), logger: logger.child({ part: 'reader' }) });
    const { cardId, pin, puk, blocked, certificates } = config.reader.card;
    reader.insert(new VirtualPivCard({ cardId, pin, puk, blocked, ...(certificates ? { certificates } : {}) }));
    logger.info({ reader: reader.readerName, cardId, blocked }, 'virtual card inserted in the in-process reader');
    return reader;
  }
  const { PcscReaderAdapter } = await import('./pcsc/pcsc-reader.adapter');
  return PcscReaderAdapter.open({ logger: logger.child({ part: 'reader' }), waitForService: true });
}

/** `--page-link`: ask the running companion for a new link, print it, and exit (0 with a link, 1 without). */
async function askForPageLink(socketPath: string): Promise<never> {
  const answer = await requestPageLink(socketPath);
  if (answer.ok) {
    process.stdout.write(`${OUTPUT_PREFIX.page}${answer.link}\n`);
    process.exit(0);
  }
  process.stderr.write(`companion: ${answer.message}\n`);
  process.exit(1);
}

/** What `--unpair` prints for each outcome, and its exit code. */
const UNPAIR_ANSWERS: Record<UnpairOutcome['kind'], { line: string; exit: number }> = {
  unpaired: { line: `${OUTPUT_PREFIX.status}unpaired: Smartcard Assist revoked this computer's pairing and its credential was deleted`, exit: 0 },
  not_paired: { line: `${OUTPUT_PREFIX.status}this computer is not paired; nothing to do`, exit: 0 },
  already_revoked: { line: `${OUTPUT_PREFIX.status}Smartcard Assist had already revoked this computer's pairing; its credential was deleted`, exit: 0 },
  in_use: { line: 'companion: another connection holds this pairing: if the companion is running, stop it first, then run --unpair again; if it is not, ask your RA team to revoke this computer\'s pairing. Nothing was changed.', exit: 1 },
  unreachable: { line: 'companion: Smartcard Assist could not be reached to revoke the pairing. Nothing was changed; try again.', exit: 1 },
};

/**
 * `--install-autostart`: write the XDG autostart entry that starts this companion at login with the
 * other flags given (`desktop/autostart.ts`), say where, exit 0.
 */
async function writeAutostart(): Promise<never> {
  const flags = process.argv.slice(2).filter((a) => a !== '--install-autostart');
  const path = await installAutostart({ env: process.env, command: companionCommandLine(flags) });
  process.stdout.write(`${OUTPUT_PREFIX.status}the companion will start at login: ${path} written\n`);
  process.exit(0);
}

/**
 * Take the single-instance lock (`desktop/single-instance.ts`), or, when another companion runs for
 * this data directory, ask it to show itself, say so on stdout and exit 0.
 */
async function takeInstanceLock(config: CompanionConfig, logger: ReturnType<typeof createLogger>): Promise<InstanceLock> {
  const outcome = await acquireInstanceLock(instanceLockPath(config.dataDir));
  if (outcome.kind === 'acquired') {
    if (outcome.tookOverFromPid !== null) logger.info({ stalePid: outcome.tookOverFromPid }, 'took over the lock of a companion that is no longer running');
    return outcome.lock;
  }
  const shown = await requestShow(pageLinkSocketPath(config.dataDir));
  logger.info({ pid: outcome.pid, shown }, 'another companion runs for this user; this start defers to it');
  logger.flush?.();
  process.stdout.write(
    `${OUTPUT_PREFIX.status}the Smartcard Assist companion is already running (process ${outcome.pid}); ${
      shown ? 'it was asked to show itself' : 'it did not answer: look for its tray icon, or stop it and start again'
    }\n`,
  );
  process.exit(0);
}

async function main(): Promise<void> {
  let config: CompanionConfig;
  let unpair = false;
  try {
    const command = companionCommand(process.env, process.argv.slice(2));
    if (command.kind === 'page-link') await askForPageLink(command.socketPath);
    unpair = command.kind === 'unpair';
    config = loadCompanionConfig(process.env, process.argv.slice(2));
    if (command.kind === 'install-autostart') await writeAutostart();
  } catch (err) {
    process.stderr.write(`companion: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  if (config.logFile) mkdirSync(dirname(config.logFile), { recursive: true, mode: 0o700 });
  const destination = config.logFile ? openRotatingLog({ file: config.logFile, maxBytes: config.logMaxBytes, keep: config.logKeep }) : pino.destination(2);
  const logger = createLogger({ name: 'companion', level: config.logLevel, destination });
  const print = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  if (unpair) {
    // A companion running for this user holds the link (the bot keeps one per device): it unpairs over it.
    const running = await runningInstance(instanceLockPath(config.dataDir));
    let kind: UnpairOutcome['kind'];
    if (running !== null) {
      const forwarded = await requestUnpair(pageLinkSocketPath(config.dataDir));
      kind = forwarded === 'no_answer' ? 'in_use' : forwarded;
    } else {
      kind = (await unpairFromCommandLine({ botUrl: config.botUrl, workstation: config.workstation, version: COMPANION_VERSION, credentials: new CredentialStore(config.dataDir, logger.child({ part: 'credential' })), logger: logger.child({ part: 'unpair' }), ca: config.botCa })).kind;
    }
    const answer = UNPAIR_ANSWERS[kind];
    (answer.exit === 0 ? process.stdout : process.stderr).write(`${answer.line}\n`);
    logger.flush?.();
    process.exit(answer.exit);
  }

  // One companion per user session: a second start asks the first to show itself and exits 0.
  const instance = await takeInstanceLock(config, logger);

  const baseReader = await openReader(config, logger);
  // With the tray, the person chooses the reader in its menu: the card service sees the chosen one (or all).
  const savedChoice = config.desktop.tray ? await new ReaderChoiceStore(config.dataDir).read() : undefined;
  const choice = config.desktop.tray ? new ReaderChoicePort(baseReader, { chosen: savedChoice ? savedChoice.reader : config.reader.readerName, logger: logger.child({ part: 'readers' }) }) : null;
  const reader: CardReaderPort = choice ?? baseReader;
  const card = new CardService({ reader, readerName: choice ? null : config.reader.readerName, logger: logger.child({ part: 'card' }) });
  const runtime = new CompanionRuntime({
    botUrl: config.botUrl,
    botCa: config.botCa,
    workstation: config.workstation,
    pagePort: config.pagePort,
    credentials: new CredentialStore(config.dataDir, logger.child({ part: 'credential' })),
    card,
    logger,
    print,
  });

  // The page comes to the person (issue #13): opened on a code request, notifications; see desktop/.
  const { desktop } = config;
  const presenter = new DesktopPresenter({
    runtime,
    opener: desktop.openPage !== 'off' || desktop.tray ? new CommandPageOpener({ command: desktop.browserCommand, logger: logger.child({ part: 'browser' }) }) : null,
    notifier: desktop.notifications ? new CommandNotifier({ logger: logger.child({ part: 'notify' }) }) : null,
    openPage: desktop.openPage,
    linkLostAfterMs: desktop.linkLostNoticeMs,
    logger: logger.child({ part: 'desktop' }),
  });
  presenter.start();

  const control = new PageLinkControl({
    socketPath: pageLinkSocketPath(config.dataDir),
    issue: () => runtime.printPageLink(),
    show: () => void presenter.showPage(),
    unpair: async () => ((await runtime.unpair()) === 'unpaired' ? 'unpaired' : 'unreachable'),
    logger: logger.child({ part: 'page-link' }),
  });
  let stopWatchingKeys: (() => void) | null = null;

  let tray: TrayController | null = null;
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'companion stopping');
    stopWatchingKeys?.();
    await tray?.stop().catch(() => undefined);
    presenter.stop();
    await control.stop().catch(() => undefined);
    await runtime.stop().catch(() => undefined);
    await reader.close().catch(() => undefined);
    await instance.release().catch(() => undefined);
    logger.info('companion stopped');
    logger.flush?.();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  logger.info({ botUrl: config.botUrl.origin, reader: config.reader.kind, workstation: config.workstation, dataDir: config.dataDir }, 'companion starting');
  await runtime.start();
  await control.start();
  if (choice) {
    // The tray is optional: a companion whose tray cannot be shown runs on headless (logged).
    tray = new TrayController({
      tray: new SystrayTray({ dataDir: config.dataDir, logger: logger.child({ part: 'tray' }) }),
      runtime,
      desktop: presenter,
      readers: choice,
      saveReaderChoice: (name) => new ReaderChoiceStore(config.dataDir).write(name),
      quit: () => void shutdown('tray quit'),
      logger: logger.child({ part: 'tray' }),
    });
    const shown = await tray.start();
    if (!shown.shown) tray = null;
  }
  // Only a person at a terminal types here; a companion started in the background gets no terminal input.
  if (process.stdin.isTTY) {
    stopWatchingKeys = watchLinkRequests(process.stdin, () => runtime.printPageLink());
    print(`${OUTPUT_PREFIX.status}press Enter here for a new passcode page link (or run the companion with --page-link)`);
  }
}

main().catch((err: unknown) => {
  const message = err instanceof AppError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  process.stderr.write(`companion: ${message}\n`);
  process.exit(1);
});
