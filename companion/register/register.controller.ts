/**
 * Register controller: the companion's side of "prove you hold a working card"
 * (DESIGN.md, "Register for self-service", step 2).
 *
 * `register.prompt_passcode` shows a form for the current passcode. On submit
 * the passcode is VERIFYed on the card in the reader (SP 800-73-4 Part 2,
 * 3.2.1) and dropped at once; only the outcome and the card id go to the bot
 * (`register.passcode_checked`). The passcode never leaves this process.
 */
import type { Logger } from '../../common/logger';
import type { Command, Request } from '../../protocol/companion-link.protocol';
import type { VerifyOutcome } from '../card/card.service';
import type { RequestResult } from '../link/link.client';
import type { PageView } from '../passcode-page/page-view';
import type { VerifyForm } from '../passcode-page/passcode-page.server';

/** What the controller needs of the link. */
export interface RegisterLink {
  request(request: Request, timeoutMs?: number): Promise<RequestResult>;
}

/** What the controller needs of the card. */
export interface RegisterCard {
  verifyPasscode(passcode: string): Promise<VerifyOutcome>;
}

export interface RegisterControllerOptions {
  link: RegisterLink;
  card: RegisterCard;
  logger: Logger;
  /** Called when a `register.prompt_passcode` arrives (so the composition root can print a page link). */
  onPrompt?: () => void;
}

type State =
  | { kind: 'idle'; notice: string | null }
  | { kind: 'awaiting'; journeyId: string; error: string | null }
  | { kind: 'working'; journeyId: string }
  | { kind: 'verified'; journeyId: string }
  | { kind: 'error'; journeyId: string; message: string; canRetry: boolean };

const TITLE = 'Your passcode was not checked';

const TEXT = {
  format: 'Your passcode is 6 to 8 digits. Type just the digits.',
  noCard: 'Put your card in the reader, then try again.',
  cardError: 'Your card could not be read. Make sure it is fully in the reader, then try again.',
  blocked: 'Your card is locked, so the passcode cannot be checked. Go back to Teams and choose "Unlock my smartcard".',
  lockedNow: 'That passcode is not right, and your card is now locked. Go back to Teams and choose "Unlock my smartcard".',
  unreachable: 'The companion could not reach Smartcard Assist just now. Check your network connection and try again.',
  unexpected: 'Smartcard Assist gave an answer the companion did not expect. Try again, or start again in Teams.',
} as const;

function wrongText(triesLeft: number): string {
  return `That passcode is not right. Your card locks after ${triesLeft} more wrong ${triesLeft === 1 ? 'try' : 'tries'}.`;
}

/** Drives the page for the registration passcode check. */
export class RegisterController {
  private state: State = { kind: 'idle', notice: null };

  constructor(private readonly options: RegisterControllerOptions) {}

  /** True unless idle (the page shows this flow). */
  get active(): boolean {
    return this.state.kind !== 'idle';
  }

  /** Name of the current state, for tests and logs. */
  get stateKind(): State['kind'] {
    return this.state.kind;
  }

  /** The page's screen for this flow (idle is completed by the caller). */
  view(idle: { personName: string | null; connected: boolean }): PageView {
    const s = this.state;
    switch (s.kind) {
      case 'idle':
        return { state: 'idle', personName: idle.personName, connected: idle.connected, notice: s.notice };
      case 'awaiting':
        return { state: 'awaiting_passcode', error: s.error };
      case 'working':
        return { state: 'working', step: 'checking_passcode' };
      case 'verified':
        return { state: 'passcode_verified' };
      case 'error':
        return { state: 'error', title: TITLE, message: s.message, canRetry: s.canRetry };
    }
  }

  /**
   * Command `register.prompt_passcode`: show the form. A repeat for the journey on the page changes nothing.
   *
   * @param command - the journey id
   */
  prompt(command: Extract<Command, { kind: 'register.prompt_passcode' }>): void {
    const s = this.state;
    if (s.kind !== 'idle' && s.journeyId === command.journeyId && s.kind !== 'verified') return;
    this.state = { kind: 'awaiting', journeyId: command.journeyId, error: null };
    this.options.logger.info({ journeyId: command.journeyId }, 'registration passcode prompt shown');
    this.options.onPrompt?.();
  }

  /**
   * Command `register.closed`: the bot no longer needs the page. The success screen stays after a
   * verified outcome; otherwise the page goes idle with the bot's message.
   *
   * @param command - journey id, outcome, message for the person
   */
  closed(command: Extract<Command, { kind: 'register.closed' }>): void {
    const s = this.state;
    if (s.kind === 'idle' || s.journeyId !== command.journeyId) return;
    if (!(command.outcome === 'verified' && s.kind === 'verified')) this.state = { kind: 'idle', notice: command.message.trim() || null };
    this.options.logger.info({ journeyId: command.journeyId, outcome: command.outcome }, 'registration passcode check closed');
  }

  /** Forget everything (credential revoked, or another flow took the page). */
  reset(notice: string | null = null): void {
    this.state = { kind: 'idle', notice };
  }

  /** "Try again" on an error screen: back to the form. */
  retry(): void {
    const s = this.state;
    if (s.kind === 'error' && s.canRetry) this.state = { kind: 'awaiting', journeyId: s.journeyId, error: null };
  }

  /**
   * The form was sent: VERIFY on the card, drop the passcode, report the outcome to the bot.
   *
   * @param form - the current passcode as typed (secret)
   * @returns resolves when the page has the outcome
   */
  async submit(form: VerifyForm): Promise<void> {
    const s = this.state;
    if (s.kind !== 'awaiting') return;
    const journeyId = s.journeyId;
    // The PIV format rule (SP 800-73-4 Part 2, 2.4.3), checked here so a typo costs no try on the card.
    if (!/^[0-9]{6,8}$/.test(form.passcode)) {
      this.state = { kind: 'awaiting', journeyId, error: TEXT.format };
      return;
    }
    this.state = { kind: 'working', journeyId };
    const result = await this.options.card.verifyPasscode(form.passcode);
    this.options.logger.info({ journeyId, outcome: result.outcome }, 'passcode checked on the card');
    if (!this.isCurrent(journeyId)) return;

    // Nothing to report when no card was read: let the person put it in and try again.
    if (result.outcome === 'no_card') {
      this.state = { kind: 'awaiting', journeyId, error: TEXT.noCard };
      return;
    }
    const answer = await this.options.link.request({ kind: 'register.passcode_checked', journeyId, result });
    if (!this.isCurrent(journeyId)) return;
    if (!answer.ok) {
      this.options.logger.warn({ journeyId, reason: answer.reason }, 'passcode check not delivered to the bot');
      this.state = { kind: 'error', journeyId, message: TEXT.unreachable, canRetry: true };
      return;
    }
    if (answer.response.kind === 'register.refused') {
      this.state = { kind: 'error', journeyId, message: answer.response.message || TEXT.unexpected, canRetry: false };
      return;
    }
    if (answer.response.kind !== 'ok') {
      this.state = { kind: 'error', journeyId, message: TEXT.unexpected, canRetry: true };
      return;
    }
    switch (result.outcome) {
      case 'verified':
        this.state = { kind: 'verified', journeyId };
        return;
      case 'wrong_passcode':
        this.state =
          result.triesLeft > 0
            ? { kind: 'awaiting', journeyId, error: wrongText(result.triesLeft) }
            : { kind: 'error', journeyId, message: TEXT.lockedNow, canRetry: false };
        return;
      case 'blocked':
        this.state = { kind: 'error', journeyId, message: TEXT.blocked, canRetry: false };
        return;
      case 'card_error':
        this.state = { kind: 'awaiting', journeyId, error: TEXT.cardError };
        return;
    }
  }

  private isCurrent(journeyId: string): boolean {
    const s = this.state;
    return s.kind !== 'idle' && s.journeyId === journeyId;
  }
}
