/**
 * The companion's running parts, wired together: the passcode page, the card
 * service, pairing (when there is no credential) and the link to the bot.
 * `main.ts` builds the outside things (config, logger, reader adapter) and
 * hands them in; tests build it the same way with an in-process reader.
 *
 * Lines for the person go to `print` (stdout in main), never to the log:
 * - `PASSCODE PAGE: http://127.0.0.1:PORT/?t=TOKEN` - at start; before every prompt line
 *   (`UNLOCK:`/`REGISTER:`) the unused link again, or a new one when it was used; and a new one
 *   whenever {@link CompanionRuntime.printPageLink} is asked (a key in the terminal, `--page-link`),
 *   which replaces the unused one. Each link works once; opening it ends any earlier browser
 *   session, so a closed browser never shuts the person out.
 * - `PAIRING CODE: XXXX-XXXX (send "pair XXXX-XXXX" to Smartcard Assist in Teams; valid until HH:MM ZONE)`, e.g. `valid until 19:10 GMT`
 * - `PAIRED: <person name>`
 * - `STATUS: <one line>`
 * - `UNLOCK: <one line>`
 * - `UNLOCKED: your card is unlocked; use your new passcode` - once, when the card took the new
 *   passcode and the new PUK
 * - `REGISTER: <one line>`
 */
import { clockTime } from '../common/clock-time';
import type { Logger } from '../common/logger';
import type { CardStatus, PageShown, Request } from '../protocol/companion-link.protocol';
import type { BackoffOptions } from './backoff';
import type { CardService } from './card/card.service';
import { createCommandRouter } from './command.router';
import { linkUrlFor } from './config';
import { LinkClient, type LinkState, type RequestResult } from './link/link.client';
import type { CredentialStore, StoredCredential } from './pairing/credential.store';
import { unpairOverLink, type UnpairOutcome } from './pairing/unpair';
import { PairingClient, type PairingCode } from './pairing/pairing.client';
import type { PageView } from './passcode-page/page-view';
import { PasscodePageServer } from './passcode-page/passcode-page.server';
import { RegisterController } from './register/register.controller';
import { UnlockController, type UnlockLink } from './unlock/unlock.controller';
import { COMPANION_VERSION } from './version';

/** Prefixes of the stdout lines (stable: tests and scripts parse them). */
export const OUTPUT_PREFIX = {
  page: 'PASSCODE PAGE: ',
  pairingCode: 'PAIRING CODE: ',
  paired: 'PAIRED: ',
  status: 'STATUS: ',
  unlock: 'UNLOCK: ',
  unlocked: 'UNLOCKED: ',
  register: 'REGISTER: ',
} as const;

/**
 * What the person's desktop shows of the companion (issue #13: the tray icon's state and menu).
 * Pairing: `not_paired` (with the code to send while one is out) or `paired`; the link to the bot;
 * the card as last seen (`locked`: its passcode retry counter is 0).
 */
export interface CompanionSnapshot {
  pairing: { kind: 'not_paired'; code: { userCode: string; expiresAt: Date } | null } | { kind: 'paired'; personName: string | null };
  link: 'up' | 'down';
  card: { kind: 'unknown' } | { kind: 'none' } | { kind: 'ok'; reader: string } | { kind: 'locked'; reader: string };
}

/**
 * How long the `unlock.prompt` ack waits for the desktop side to say how the page came to the person, ms:
 * above the browser opener's own 3 s settle time, well under the bot's command timeout (default 10 s).
 */
const PAGE_SHOWN_WAIT_MS = 4_000;

/** What happened, for the desktop side (`desktop/desktop.presenter.ts`, the tray). */
export type CompanionEvent =
  /** {@link CompanionRuntime.snapshot} changed. */
  | { kind: 'state' }
  /** The bot asks for the unlock code and a new passcode (`unlock`), or the current passcode (`register`). */
  | {
      kind: 'prompt';
      flow: 'unlock' | 'register';
      /**
       * The desktop side says how it brings the page to the person (opened in the browser, a
       * notification, neither); the `unlock.prompt` ack carries it to the bot (issue #13). Absent
       * when nobody reports: `none`.
       */
      shown?: (outcome: Promise<PageShown>) => void;
    }
  /** The card took the new passcode and PUK. */
  | { kind: 'unlocked' }
  /** A card was inserted while a journey on the page waits (for the card, a code or a passcode). */
  | { kind: 'card_inserted_while_waiting' };

/** Knobs tests turn; defaults are the production values. */
export interface RuntimeTuning {
  /** Ms per protocol second during pairing (default 1000). */
  pairingSecondMs?: number;
  pairingRetry?: BackoffOptions;
  linkBackoff?: BackoffOptions;
  requestTimeoutMs?: number;
  heartbeatMs?: number;
  passcodeHoldMs?: number;
  /** How long the unlock controller waits for the PUK pair after an accepted code, in ms. */
  releaseWaitMs?: number;
  submitWaitMs?: number;
}

export interface CompanionRuntimeOptions {
  botUrl: URL;
  /** CA certificates (PEM) for the bot's server certificate (config `botCa`); null/absent = Node's built-in list. */
  botCa?: readonly string[] | null;
  workstation: string;
  /** Port of the passcode page (0 = any free port). */
  pagePort: number;
  credentials: CredentialStore;
  card: CardService;
  logger: Logger;
  /** Writes one line for the person (stdout). */
  print: (line: string) => void;
  tuning?: RuntimeTuning;
}

type Phase = { kind: 'starting' } | { kind: 'pairing'; code: PairingCode | null } | { kind: 'linked'; personName: string | null };

/** The companion process minus its composition root. */
export class CompanionRuntime {
  readonly page: PasscodePageServer;
  readonly unlock: UnlockController;
  readonly register: RegisterController;
  /** The flow the page shows when one is under way (the last one prompted). */
  private flow: 'unlock' | 'register' = 'unlock';
  private phase: Phase = { kind: 'starting' };
  private link: LinkClient | null = null;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private unsubscribeCard: (() => void) | null = null;
  private lastLinkState: LinkState = 'idle';
  private lastCard: CompanionSnapshot['card'] = { kind: 'unknown' };
  private readonly listeners = new Set<(event: CompanionEvent) => void>();
  /** How the page came to the person for the prompt being handled (see {@link pageShownFor}). */
  private promptShown: Promise<PageShown> | null = null;

  constructor(private readonly options: CompanionRuntimeOptions) {
    const tuning = options.tuning ?? {};
    const linkProxy: UnlockLink = {
      request: (request: Request, timeoutMs?: number): Promise<RequestResult> =>
        this.link ? this.link.request(request, timeoutMs) : Promise.resolve({ ok: false, reason: 'not_connected' }),
      waitUntilReady: (timeoutMs: number) => this.waitForLink(timeoutMs),
    };
    this.unlock = new UnlockController({
      link: linkProxy,
      card: options.card,
      logger: options.logger.child({ part: 'unlock' }),
      onPrompt: () => this.onPrompt('unlock'),
      onUnlocked: () => {
        this.options.print(`${OUTPUT_PREFIX.unlocked}your card is unlocked; use your new passcode`);
        this.emit({ kind: 'unlocked' });
      },
      ...(tuning.passcodeHoldMs !== undefined ? { passcodeHoldMs: tuning.passcodeHoldMs } : {}),
      ...(tuning.releaseWaitMs !== undefined ? { releaseWaitMs: tuning.releaseWaitMs } : {}),
    });
    this.register = new RegisterController({
      link: linkProxy,
      card: options.card,
      logger: options.logger.child({ part: 'register' }),
      onPrompt: () => this.onPrompt('register'),
    });
    this.page = new PasscodePageServer({
      port: options.pagePort,
      logger: options.logger.child({ part: 'page' }),
      backend: {
        view: () => this.view(),
        submitUnlock: (form) => this.unlock.submit(form),
        submitPasscode: (form) => this.register.submit(form),
        retry: () => (this.flow === 'register' ? this.register.retry() : this.unlock.retry()),
        changePasscode: () => this.unlock.forgetPasscode(),
      },
      ...(tuning.submitWaitMs !== undefined ? { submitWaitMs: tuning.submitWaitMs } : {}),
    });
  }

  /** The link's state now (`idle` when there is no link yet). */
  get linkState(): LinkState {
    return this.link?.state ?? 'idle';
  }

  /**
   * Start: the page (prints its link), the card watch, then pairing and the link in the background.
   *
   * @returns the page link printed (one-time)
   * @throws PasscodePageError when the page cannot listen
   */
  async start(): Promise<string> {
    await this.page.start();
    const url = this.printPageLink();
    this.options.card.start();
    this.unsubscribeCard = this.options.card.onStatus((status) => this.onCardStatus(status));
    this.loop = this.run().catch((err: unknown) => {
      if (this.abort.signal.aborted) return;
      this.options.logger.fatal({ err: { name: err instanceof Error ? err.name : 'unknown', message: err instanceof Error ? err.message : '' } }, 'companion loop failed');
      this.options.print(`${OUTPUT_PREFIX.status}stopped after an error; see the log`);
    });
    return url;
  }

  /**
   * Mint a new one-time page link and print it (`PASSCODE PAGE: ...`). The unused link before it
   * stops working; the live browser session (if any) lasts until the new link is opened.
   *
   * @returns the link printed, `http://127.0.0.1:PORT/?t=TOKEN` (a secret until used)
   * @throws PasscodePageError `PAGE.NOT_STARTED` before {@link start} or after {@link stop}
   */
  printPageLink(): string {
    const url = this.page.issueLink();
    this.options.print(`${OUTPUT_PREFIX.page}${url}`);
    return url;
  }

  /**
   * What the desktop shows now (tray icon and menu).
   *
   * @returns pairing, link and card state ({@link CompanionSnapshot})
   */
  snapshot(): CompanionSnapshot {
    const p = this.phase;
    const pairing: CompanionSnapshot['pairing'] =
      p.kind === 'linked' ? { kind: 'paired', personName: p.personName } : { kind: 'not_paired', code: p.kind === 'pairing' && p.code ? { userCode: p.code.userCode, expiresAt: p.code.expiresAt } : null };
    return { pairing, link: this.link?.state === 'ready' ? 'up' : 'down', card: this.lastCard };
  }

  /**
   * Subscribe to what happens ({@link CompanionEvent}); listeners run synchronously and must not throw.
   *
   * @param listener - called for each event
   * @returns unsubscribe
   */
  onEvent(listener: (event: CompanionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Unpair over the live link (the tray's "Unpair"): the bot revokes the device credential, it is
   * deleted here, and the companion pairs again (a new pairing code).
   *
   * @returns `unpaired`, or `unreachable` when the link is down or the bot did not confirm (nothing changed)
   */
  async unpair(): Promise<UnpairOutcome['kind']> {
    const link = this.link;
    if (!link || link.state !== 'ready') return 'unreachable';
    const outcome = await unpairOverLink({ request: (r, t) => link.request(r, t), credentials: this.options.credentials, logger: this.options.logger.child({ part: 'unpair' }) });
    if (outcome.kind === 'unpaired') {
      this.options.print(`${OUTPUT_PREFIX.status}unpaired: Smartcard Assist revoked this computer's pairing; pairing again`);
      // The bot closes the link (4401); the run loop then deletes nothing more and pairs again.
    }
    return outcome.kind;
  }

  /**
   * The unused page link printed last, or a new one (printed neither way): what the browser opens
   * right after a prompt line printed it.
   *
   * @returns `http://127.0.0.1:PORT/?t=TOKEN` (a secret until used)
   * @throws PasscodePageError `PAGE.NOT_STARTED` before {@link start} or after {@link stop}
   */
  currentPageLink(): string {
    return this.page.currentLink();
  }

  /** True while a browser has the passcode page open (its session asked for the page in the last 15 s). */
  pageIsOpen(): boolean {
    return this.page.isOpenInBrowser();
  }

  /** Stop everything (page, link, pairing, card watch) and drop any held passcode. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.unlock.dispose();
    this.unsubscribeCard?.();
    this.options.card.stop();
    await this.link?.stop();
    await this.page.stop();
    await this.loop;
  }

  /** The screen the page shows now. */
  view(): PageView {
    const p = this.phase;
    if (p.kind === 'starting') return { state: 'starting' };
    if (p.kind === 'pairing') return p.code ? { state: 'pairing', userCode: p.code.userCode, expiresAt: p.code.expiresAt } : { state: 'starting' };
    const idle = { personName: p.personName, connected: this.link?.state === 'ready' };
    return this.flow === 'register' ? this.register.view(idle) : this.unlock.view(idle);
  }

  // -------------------------------------------------------------------------

  private async run(): Promise<void> {
    const { credentials, botUrl, logger } = this.options;
    const signal = this.abort.signal;
    for (;;) {
      signal.throwIfAborted();
      let credential = await credentials.read(botUrl);
      if (!credential) credential = await this.pair(signal);
      const outcome = await this.runLink(credential, signal);
      if (outcome === 'stopped') return;
      logger.warn('credential refused by the bot; deleting it and pairing again');
      this.unlock.reset('This computer is no longer paired. Pair it again to unlock your card.');
      this.register.reset();
      this.options.print(`${OUTPUT_PREFIX.status}pairing was revoked by Smartcard Assist; pairing again`);
      await credentials.delete();
    }
  }

  private async pair(signal: AbortSignal): Promise<StoredCredential> {
    this.phase = { kind: 'pairing', code: null };
    const client = new PairingClient({
      botUrl: this.options.botUrl,
      workstation: this.options.workstation,
      logger: this.options.logger.child({ part: 'pairing' }),
      ...(this.options.botCa ? { ca: this.options.botCa } : {}),
      onCode: (code) => {
        this.phase = { kind: 'pairing', code };
        this.emit({ kind: 'state' });
        const until = clockTime(code.expiresAt);
        this.options.print(`${OUTPUT_PREFIX.pairingCode}${code.userCode} (send "pair ${code.userCode}" to Smartcard Assist in Teams; valid until ${until})`);
      },
      ...(this.options.tuning?.pairingSecondMs !== undefined ? { secondMs: this.options.tuning.pairingSecondMs } : {}),
      ...(this.options.tuning?.pairingRetry !== undefined ? { retry: this.options.tuning.pairingRetry } : {}),
    });
    const device = await client.pair(signal);
    const credential: StoredCredential = { ...device, botUrl: this.options.botUrl.href, pairedAt: new Date().toISOString() };
    await this.options.credentials.write(credential);
    this.options.print(`${OUTPUT_PREFIX.paired}${device.personName}`);
    this.emit({ kind: 'state' });
    return credential;
  }

  /** Run one link until the bot refuses the credential (`unauthorised`) or the runtime stops. */
  private runLink(credential: StoredCredential, signal: AbortSignal): Promise<'unauthorised' | 'stopped'> {
    const tuning = this.options.tuning ?? {};
    this.phase = { kind: 'linked', personName: credential.personName };
    return new Promise((resolve) => {
      const link = new LinkClient({
        url: linkUrlFor(this.options.botUrl),
        ...(this.options.botCa ? { ca: this.options.botCa } : {}),
        credential: credential.credential,
        workstation: this.options.workstation,
        version: COMPANION_VERSION,
        logger: this.options.logger.child({ part: 'link' }),
        onCommand: createCommandRouter({ card: this.options.card, unlock: this.unlock, register: this.register, pageShown: (show) => this.pageShownFor(show) }),
        onWelcome: (welcome) => {
          this.phase = { kind: 'linked', personName: welcome.personName };
          this.emit({ kind: 'state' });
          void this.reportCurrentCard();
        },
        onStateChange: (state) => this.onLinkState(state),
        onUnauthorised: () => {
          signal.removeEventListener('abort', onAbort);
          this.link = null;
          resolve('unauthorised');
        },
        ...(tuning.linkBackoff ? { backoff: tuning.linkBackoff } : {}),
        ...(tuning.requestTimeoutMs !== undefined ? { requestTimeoutMs: tuning.requestTimeoutMs } : {}),
        ...(tuning.heartbeatMs !== undefined ? { heartbeatMs: tuning.heartbeatMs } : {}),
      });
      const onAbort = (): void => {
        void link.stop().then(() => resolve('stopped'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.link = link;
      link.start();
    });
  }

  private onLinkState(state: LinkState): void {
    const was = this.lastLinkState;
    this.lastLinkState = state;
    this.emit({ kind: 'state' });
    if (state === 'ready') {
      const name = this.phase.kind === 'linked' ? this.phase.personName : null;
      this.options.print(`${OUTPUT_PREFIX.status}connected to Smartcard Assist${name ? ` (paired with ${name})` : ''}`);
    } else if (was === 'ready' && state === 'waiting') {
      this.options.print(`${OUTPUT_PREFIX.status}connection to Smartcard Assist lost; reconnecting`);
    }
  }

  private async reportCurrentCard(): Promise<void> {
    try {
      const status = await this.options.card.readStatus();
      this.noteCard(status);
      this.link?.sendCardEvent(status);
    } catch (err) {
      this.options.logger.warn({ errorCode: (err as { code?: string }).code ?? null }, 'could not read the card to report it');
    }
  }

  private onCardStatus(status: CardStatus): void {
    // Whether a journey on the page waits, before the controller moves on with the card.
    const waiting = status.present && this.journeyWaits();
    this.link?.sendCardEvent(status);
    this.unlock.onCardStatus(status);
    this.noteCard(status);
    if (waiting) this.emit({ kind: 'card_inserted_while_waiting' });
  }

  /** True when the page shows a journey waiting for the person or the card (not idle, done or working). */
  private journeyWaits(): boolean {
    if (this.phase.kind !== 'linked') return false;
    const state = this.view().state;
    return state === 'awaiting_unlock' || state === 'awaiting_passcode' || state === 'card_removed' || state === 'error';
  }

  private noteCard(status: CardStatus): void {
    const card: CompanionSnapshot['card'] = !status.present ? { kind: 'none' } : status.pinRetries === 0 ? { kind: 'locked', reader: status.reader } : { kind: 'ok', reader: status.reader };
    if (JSON.stringify(card) === JSON.stringify(this.lastCard)) return;
    this.lastCard = card;
    this.emit({ kind: 'state' });
  }

  private emit(event: CompanionEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.options.logger.warn({ event: event.kind, errorName: err instanceof Error ? err.name : 'unknown' }, 'a companion event listener failed');
      }
    }
  }

  private onPrompt(flow: 'unlock' | 'register'): void {
    // One flow owns the page at a time: the newest prompt wins and the other one is cleared.
    this.flow = flow;
    if (flow === 'unlock') this.register.reset();
    else this.unlock.reset();
    // A link first, whatever session lives (its browser may have closed): whoever reads the prompt
    // line can open the page at once. The unused link if there is one (a link printed earlier keeps
    // working), else a new one. An open page shows the form by itself.
    this.options.print(`${OUTPUT_PREFIX.page}${this.page.currentLink()}`);
    this.options.print(
      flow === 'unlock' ? `${OUTPUT_PREFIX.unlock}type your unlock code and a new passcode on the passcode page` : `${OUTPUT_PREFIX.register}type your current passcode on the passcode page`,
    );
    const report: { shown: Promise<PageShown> | null } = { shown: null };
    this.emit({ kind: 'prompt', flow, shown: (outcome) => void (report.shown ??= outcome) });
    this.promptShown = report.shown ?? Promise.resolve('none');
  }

  /**
   * Run `show` (a controller's `prompt`) and say how the page came to the person for the prompt it
   * raised, for the `unlock.prompt` ack (issue #13).
   *
   * @param show - hands the command to its controller (synchronous; it raises the prompt, or not for a
   *   repeat that changes nothing)
   * @returns `opened` / `notified` / `none`; null when no prompt was raised or the desktop side did not
   *   answer within {@link PAGE_SHOWN_WAIT_MS} (the bot then keeps its general text)
   */
  private async pageShownFor(show: () => void): Promise<PageShown | null> {
    this.promptShown = null;
    show();
    const shown = this.promptShown as Promise<PageShown> | null;
    this.promptShown = null;
    if (!shown) return null;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), PAGE_SHOWN_WAIT_MS);
    });
    try {
      return await Promise.race([shown, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async waitForLink(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.abort.signal.aborted) {
      if (this.link?.state === 'ready') return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (this.link) return this.link.waitUntilReady(left);
      await new Promise((r) => setTimeout(r, Math.min(left, 250)));
    }
    return false;
  }
}
