/**
 * The tray icon's behaviour (issue #13): shows the companion's state
 * ({@link trayView}) and carries out the menu: show the pairing code, open the
 * passcode page, choose the reader, unpair, quit. The drawing is the
 * {@link TrayPort}'s; the page and notifications are the desktop presenter's.
 */
import type { Logger } from '../../common/logger';
import type { CompanionEvent, CompanionSnapshot } from '../companion.runtime';
import type { Notice } from '../desktop/desktop.port';
import type { UnpairOutcome } from '../pairing/unpair';
import type { TrayPort, TrayStartOutcome } from './tray.port';
import { trayView, type TrayItemId, type TrayView } from './tray.view';

/** The readers the menu lists and the choice among them: the reader port's `ReaderChoicePort` (companion/pcsc/reader-choice.port.ts). */
export interface TrayReaders {
  /** The readers to list (a chosen one that is unplugged included). */
  listReaders(): Array<{ name: string }>;
  chosenReader(): string | null;
  /** Use only this reader, or any (null); refused (`ok: false`) for a reader that is not connected. */
  chooseReader(name: string | null): { ok: boolean };
}

export interface TrayControllerOptions {
  tray: TrayPort;
  runtime: {
    onEvent(listener: (event: CompanionEvent) => void): () => void;
    snapshot(): CompanionSnapshot;
    unpair(): Promise<UnpairOutcome['kind']>;
  };
  desktop: {
    /** Print a new page link and open it. */
    showPage(): Promise<string>;
    notify(notice: Notice): void;
  };
  readers: TrayReaders;
  /** Keep the person's reader choice (e.g. `ReaderChoiceStore.write`); absent = not kept. */
  saveReaderChoice?: (reader: string | null) => Promise<void>;
  /** Stop the companion (the menu's Quit). */
  quit: () => void;
  logger: Logger;
  /** How often the reader list is looked at for readers that came or went, ms (default 2000). */
  readerPollMs?: number;
}

/** Keeps the tray in step with the companion and acts on its menu. */
export class TrayController {
  private unsubscribe: (() => void) | null = null;
  private poll: NodeJS.Timeout | null = null;
  private shown: string | null = null;
  /** The readers as listed in the menu shown last (slot N = `reader:N`). */
  private listed: string[] = [];

  constructor(private readonly options: TrayControllerOptions) {}

  /**
   * Show the tray icon and follow the companion.
   *
   * @returns what the tray port said (`shown`, or why not: the companion runs on without it)
   */
  async start(): Promise<TrayStartOutcome> {
    const view = this.view();
    const outcome = await this.options.tray.start(view, (id) => void this.onClick(id));
    if (!outcome.shown) {
      this.options.logger.warn({ reason: outcome.reason }, 'tray icon not shown; the companion runs without it');
      return outcome;
    }
    this.shown = JSON.stringify(view);
    this.unsubscribe = this.options.runtime.onEvent((event) => {
      if (event.kind === 'state') this.refresh();
    });
    this.poll = setInterval(() => this.refresh(), this.options.readerPollMs ?? 2000);
    this.poll.unref?.();
    // What changed while the tray program started (e.g. the pairing code arrived).
    this.refresh();
    this.options.logger.info('tray icon shown');
    return outcome;
  }

  /** Stop following and remove the icon. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    if (this.shown !== null) await this.options.tray.stop();
    this.shown = null;
  }

  private view(): TrayView {
    const { readers } = this.options;
    const all = readers.listReaders().map((r) => r.name);
    const chosen = readers.chosenReader();
    this.listed = chosen !== null && !all.includes(chosen) ? [chosen, ...all] : all;
    return trayView(this.options.runtime.snapshot(), all, chosen);
  }

  private refresh(): void {
    if (this.shown === null) return;
    const view = this.view();
    const text = JSON.stringify(view);
    if (text === this.shown) return;
    this.shown = text;
    this.options.tray.update(view);
  }

  private async onClick(id: TrayItemId): Promise<void> {
    const { logger, desktop, runtime, readers } = this.options;
    logger.info({ item: id }, 'tray menu item chosen');
    try {
      if (id === 'open_page') {
        await desktop.showPage();
      } else if (id === 'pairing_code') {
        const pairing = runtime.snapshot().pairing;
        if (pairing.kind === 'not_paired' && pairing.code) {
          desktop.notify({
            kind: 'pairing_code',
            title: `Smartcard Assist pairing code: ${pairing.code.userCode}`,
            body: `Send "pair ${pairing.code.userCode}" to Smartcard Assist in Teams to pair this computer.`,
          });
        }
        // The page shows the code too, with what to do.
        await desktop.showPage();
      } else if (id === 'reader_any' || id.startsWith('reader:')) {
        const name = id === 'reader_any' ? null : this.listed[Number(id.slice('reader:'.length))];
        if (name !== undefined && readers.chooseReader(name).ok) await this.options.saveReaderChoice?.(name);
      } else if (id === 'unpair') {
        const outcome = await runtime.unpair();
        desktop.notify(
          outcome === 'unpaired'
            ? { kind: 'pairing_code', title: 'Smartcard Assist: this computer is unpaired', body: 'Its pairing was revoked. A new pairing code is in the menu when you want to pair it again.' }
            : { kind: 'link_lost', title: 'Smartcard Assist: not unpaired', body: 'Smartcard Assist could not be reached, so nothing changed. Try again when it is connected.' },
        );
      } else if (id === 'quit') {
        this.options.quit();
        return;
      }
    } catch (err) {
      logger.warn({ item: id, errorCode: (err as { code?: string }).code ?? null }, 'tray menu action failed');
    }
    this.refresh();
  }
}
