/**
 * The page comes to the person (issue #13): when Smartcard Assist asks for the
 * unlock code or the passcode, open the passcode page in the browser
 * (`openPage: 'browser'`) or raise a notification whose "Open passcode page"
 * opens it (`'notify'`); and the desktop notifications of the issue: a card
 * inserted while a journey waits, the code request, unlock done, and the link
 * lost for more than a minute (and back).
 *
 * It listens to the runtime's events (`companion.runtime.ts`) and never
 * changes the runtime's state beyond minting page links.
 */
import type { Logger } from '../../common/logger';
import type { PageShown } from '../../protocol/companion-link.protocol';
import type { CompanionEvent, CompanionSnapshot } from '../companion.runtime';
import type { DesktopNotifier, Notice, PageOpener } from './desktop.port';

/** What the presenter needs of the runtime. */
export interface PresenterRuntime {
  onEvent(listener: (event: CompanionEvent) => void): () => void;
  snapshot(): CompanionSnapshot;
  /** Mint a new one-time link and print it (`PASSCODE PAGE: ...`). */
  printPageLink(): string;
  /** The unused link printed last, or a new one. */
  currentPageLink(): string;
  /** True while a browser has the page open (a live page session): it shows a new prompt by itself. */
  pageIsOpen(): boolean;
}

export interface DesktopPresenterOptions {
  runtime: PresenterRuntime;
  /** Opens links in the browser; null = never (no desktop). */
  opener: PageOpener | null;
  /** Raises notifications; null = none (`COMPANION_NOTIFICATIONS=off`). */
  notifier: DesktopNotifier | null;
  /** On a code or passcode request: open the page, notify with an "Open" action, or neither. */
  openPage: 'browser' | 'notify' | 'off';
  logger: Logger;
  /** Link down this long before "not connected" is said, ms (issue #13: more than a minute). */
  linkLostAfterMs?: number;
}

/** Texts a person reads (say "passcode", never "PIN"; no secret). */
const NOTICES = {
  code_request: { title: 'Smartcard Assist: type your unlock code', body: 'Type the unlock code Smartcard Assist sent you and a new passcode on the passcode page.' },
  passcode_request: { title: 'Smartcard Assist: type your passcode', body: 'Type your current passcode on the passcode page to finish registering your card.' },
  card_inserted: { title: 'Smartcard Assist: card found', body: 'Your smartcard is in the reader. Carry on on the passcode page.' },
  unlocked: { title: 'Smartcard Assist: card unlocked', body: 'Your smartcard is unlocked. Use your new passcode.' },
  link_lost: { title: 'Smartcard Assist: not connected', body: 'This computer has not reached Smartcard Assist for more than {for}. It keeps trying.' },
  link_back: { title: 'Smartcard Assist: connected again', body: 'This computer reaches Smartcard Assist again.' },
} as const;

/** A duration as a person says it: `a minute`, `2 minutes`, `30 seconds`. */
function spokenDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return ms === 60_000 ? 'a minute' : `${ms / 60_000} minutes`;
  const s = Math.round(ms / 1000);
  return s === 1 ? 'a second' : `${s} seconds`;
}

/** Opens the page and raises notifications as the runtime reports what happens. */
export class DesktopPresenter {
  private unsubscribe: (() => void) | null = null;
  private linkWasUp = false;
  private lostTimer: NodeJS.Timeout | null = null;
  private lostSaid = false;

  constructor(private readonly options: DesktopPresenterOptions) {}

  /** Start listening to the runtime. */
  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.options.runtime.onEvent((event) => this.onEvent(event));
  }

  /** Stop listening; pending notification actions are withdrawn. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.lostTimer) clearTimeout(this.lostTimer);
    this.lostTimer = null;
    this.options.notifier?.close();
  }

  /**
   * Bring the page to the person now (a second start of the companion, the tray's "Open passcode page"):
   * mint a new link (printed) and open it in the browser when there is an opener.
   *
   * @returns the link minted (a secret until used)
   */
  async showPage(): Promise<string> {
    const link = this.options.runtime.printPageLink();
    if (this.options.opener) await this.options.opener.open(link);
    return link;
  }

  /**
   * Raise a notification (also for the tray, e.g. the pairing code); nothing without a notifier.
   *
   * @param notice - what to say
   */
  notify(notice: Notice): void {
    this.options.notifier?.notify(notice);
  }

  private onEvent(event: CompanionEvent): void {
    switch (event.kind) {
      case 'prompt': {
        // How the page came to the person goes back to the bot with the prompt's ack (issue #13).
        const shown = this.onPrompt(event.flow);
        if (event.shown) event.shown(shown);
        else void shown;
        return;
      }
      case 'unlocked':
        this.say('unlocked');
        return;
      case 'card_inserted_while_waiting':
        this.say('card_inserted', true);
        return;
      case 'state':
        this.onState(this.options.runtime.snapshot());
        return;
    }
  }

  /**
   * Bring the page to the person for a prompt.
   *
   * @param flow - the flow asking
   * @returns `opened` (opened in the browser now, or a browser already shows the page, which shows the
   *   new form by itself), `notified` (a notification offers to open it), or `none` (no notifier and
   *   not opened); never rejects
   */
  private async onPrompt(flow: 'unlock' | 'register'): Promise<PageShown> {
    const { openPage, opener, notifier } = this.options;
    const kind = flow === 'unlock' ? 'code_request' : 'passcode_request';
    const pageIsOpen = this.options.runtime.pageIsOpen();
    // A browser that has the page open shows the new form by itself: no second tab (the bot prompts
    // again, e.g., after the link came back); the notification still offers "Open".
    if (openPage === 'browser' && opener && !pageIsOpen) {
      // The link just printed with the prompt: the browser uses it; a later "Open" mints a new one.
      const outcome = await opener.open(this.options.runtime.currentPageLink());
      this.say(kind, true, outcome.opened ? ' It has opened in your browser.' : '');
      if (outcome.opened) return 'opened';
      return notifier ? 'notified' : 'none';
    }
    this.say(kind, true);
    if (pageIsOpen) return 'opened';
    return notifier ? 'notified' : 'none';
  }

  private onState(snapshot: CompanionSnapshot): void {
    this.offerPairing(snapshot);
    const up = snapshot.link === 'up';
    if (up) {
      if (this.lostTimer) clearTimeout(this.lostTimer);
      this.lostTimer = null;
      if (this.lostSaid) this.say('link_back');
      this.lostSaid = false;
      this.linkWasUp = true;
      return;
    }
    // Down: only a link that was up can be lost; a timer already running keeps its start.
    if (!this.linkWasUp || this.lostTimer || this.lostSaid) return;
    this.lostTimer = setTimeout(() => {
      this.lostTimer = null;
      if (this.options.runtime.snapshot().link === 'up') return;
      this.lostSaid = true;
      this.options.logger.info('link to Smartcard Assist down for more than a minute; the person is told');
      this.say('link_lost');
    }, this.options.linkLostAfterMs ?? 60_000);
    this.lostTimer.unref?.();
  }

  /** The pairing code last offered with a locked card (once per code). */
  private pairingOffered: string | null = null;

  /**
   * An unpaired companion that sees a locked card tells the person how to start (issue #14, the person's
   * effort: the pairing code comes to them, no tray menu to open). Said once per pairing code; nothing
   * when paired, without a code yet, or without a locked card. The code is the one the terminal and the
   * tray menu already show (short-lived, useless without the person's own Teams account).
   *
   * @param snapshot - the runtime's state now
   */
  private offerPairing(snapshot: CompanionSnapshot): void {
    const { pairing, card } = snapshot;
    if (pairing.kind !== 'not_paired' || !pairing.code || card.kind !== 'locked') return;
    if (this.pairingOffered === pairing.code.userCode) return;
    this.pairingOffered = pairing.code.userCode;
    this.options.notifier?.notify({
      kind: 'pairing_code',
      title: 'Smartcard Assist: your smartcard is locked',
      body: `To unlock it, send "pair ${pairing.code.userCode}" to Smartcard Assist in Teams, then "unlock".`,
    });
  }

  private say(kind: keyof typeof NOTICES, withOpen = false, extra = ''): void {
    const text = NOTICES[kind];
    const opener = this.options.opener;
    this.options.notifier?.notify({
      kind,
      title: text.title,
      body: `${text.body.replace('{for}', spokenDuration(this.options.linkLostAfterMs ?? 60_000))}${extra}`,
      ...(withOpen && opener ? { onOpen: () => void this.showPage() } : {}),
    });
  }
}
