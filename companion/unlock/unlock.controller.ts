/**
 * Unlock controller: the companion's side of the unlock journey (issue 2, step 5).
 *
 * `unlock.prompt` shows the form. On submit the passcode policy is checked
 * here, and ONLY the unlock code goes to the bot (`unlock.submit_code`); the
 * new passcode stays in this process's memory. The bot answers `unlock.accepted`
 * (no secret), and its PUK custody then sends the PUK pair as the
 * `unlock.authorised` command; only a pair for the journey and card this
 * controller is waiting on is used. The card is then unblocked and the outcome
 * sent as `unlock.result`. If the card is pulled
 * mid-way the page says "put your card back"; when the same card returns the
 * controller sends `unlock.resume` and finishes with the passcode it still
 * holds. After a wrong code the new passcode stays held (it passed the policy;
 * it is never sent back to the browser) and the page asks for the code only,
 * saying the passcode is kept; "Choose a different passcode" drops it. The resume carries the accepted code again: the bot sends the PUK pair
 * only to the link session that presented the code, so after a lost link the
 * code is what proves this is the same companion (issue #10). The passcode and
 * the code are dropped together after success, on `unlock.closed`, or after
 * {@link PASSCODE_HOLD_MS}.
 */
import type { Logger } from '../../common/logger';
import {
  OneTimeCodeSchema,
  type CardStatus,
  type Command,
  type Request,
  type Response,
} from '../../protocol/companion-link.protocol';
import type { PukOnCard, UnblockOutcome, UnblockRequest } from '../card/card.service';
import type { RequestResult } from '../link/link.client';
import type { PageView } from '../passcode-page/page-view';
import type { UnlockForm } from '../passcode-page/passcode-page.server';
import { checkPasscode } from '../passcode-policy';

/** Longest time the new passcode is held in memory, in ms (10 minutes). */
export const PASSCODE_HOLD_MS = 10 * 60 * 1000;

/** How long to wait for the `unlock.authorised` command after `unlock.accepted`, in ms (30 s). */
export const RELEASE_WAIT_MS = 30 * 1000;

/** What the controller needs of the link. */
export interface UnlockLink {
  request(request: Request, timeoutMs?: number): Promise<RequestResult>;
  waitUntilReady(timeoutMs: number): Promise<boolean>;
}

/** What the controller needs of the card. */
export interface UnlockCard {
  unblock(request: UnblockRequest): Promise<UnblockOutcome>;
}

export interface UnlockControllerOptions {
  link: UnlockLink;
  card: UnlockCard;
  logger: Logger;
  /** Called when an `unlock.prompt` arrives (so the composition root can print a page link). */
  onPrompt?: () => void;
  /** Called once when the card was unblocked with the new passcode and took the new PUK (so the terminal can say so). */
  onUnlocked?: () => void;
  /** Passcode hold time, in ms; default {@link PASSCODE_HOLD_MS}. */
  passcodeHoldMs?: number;
  /** How long to keep trying to deliver `unlock.result` across reconnects, in ms; default 10 minutes. */
  resultDeliveryMs?: number;
  /** How long to wait for the PUK pair after the bot accepted the code, in ms; default {@link RELEASE_WAIT_MS}. */
  releaseWaitMs?: number;
}

/** The PUK pair from an `unlock.authorised` command. Secret: held only until the unblock starts. */
interface PukPair {
  puk: string;
  newPuk: string;
  pukUncertain: boolean;
}

/** Waiting for the bot's `unlock.authorised` for one journey and card. */
interface ReleaseWait {
  journeyId: string;
  cardId: string;
  /** Resolves with the pair, or null when the wait was cancelled. */
  promise: Promise<PukPair | null>;
  settle: (pair: PukPair | null) => void;
}

interface Journey {
  journeyId: string;
  cardId: string;
  codeExpiresAt: Date;
  /** How the code was sent (`unlock.prompt` codeChannel; absent from an older bot = email): the page says where to look. */
  codeChannel: 'email' | 'sms';
  /** The bot accepted the code (so `unlock.resume` is the way back in). */
  codeAccepted: boolean;
  /** What the card holds, as far as we know. */
  pukOnCard: PukOnCard;
}

type State =
  | { kind: 'idle'; notice: string | null }
  | { kind: 'awaiting'; journey: Journey; error: string | null; keepTypedCode?: boolean }
  | { kind: 'working'; journey: Journey; step: 'checking_code' | 'unlocking' }
  | { kind: 'card_removed'; journey: Journey; wrongCard: boolean }
  | { kind: 'done'; journey: Journey; closed: boolean }
  | { kind: 'error'; journey: Journey; message: string; canRetry: boolean };

type Refusal = Extract<Response, { kind: 'unlock.refused' }>;

const TEXT = {
  badCode: (channel: 'email' | 'sms'): string => `The unlock code is the 8 digits in your ${channel === 'sms' ? 'text message' : 'email'}. Type just those digits.`,
  unreachable: 'The companion could not reach Smartcard Assist just now. Check your network connection and try again.',
  unexpected: 'Smartcard Assist gave an answer the companion did not expect. Try again, or start again in Teams.',
  pukRejected: 'Your card refused the unlock, so it is still locked. Smartcard Assist will tell you what to do next in Teams.',
  cardError: 'Your card did not finish the unlock. Make sure the card is fully in the reader, then try again.',
  heldTooLong: 'The unlock took too long, so the companion has forgotten your new passcode. Start again in Teams.',
  keptTooLong: 'The companion keeps a new passcode only for a few minutes, so it has forgotten the one you chose. Type the unlock code and choose a new passcode again.',
  releaseLate: 'Smartcard Assist accepted your code, but the unlock did not reach this computer in time. Try again.',
} as const;

function refusalText(r: Refusal): { message: string; canRetry: boolean; form: boolean } {
  switch (r.reason) {
    case 'wrong_code':
      if (r.triesLeft !== undefined && r.triesLeft <= 0) {
        return { message: r.message || 'That unlock code is not right, and there are no tries left. Start again in Teams.', canRetry: false, form: false };
      }
      return {
        message: `That unlock code is not right.${r.triesLeft !== undefined ? ` You can try ${r.triesLeft} more ${r.triesLeft === 1 ? 'time' : 'times'}.` : ''}`,
        canRetry: true,
        form: true,
      };
    case 'expired':
      return { message: r.message || 'Your unlock code has expired. Start again in Teams to get a new one.', canRetry: false, form: false };
    case 'used':
      return { message: r.message || 'That unlock code has already been used. Start again in Teams to get a new one.', canRetry: false, form: false };
    case 'too_many_tries':
      return { message: r.message || 'Too many wrong unlock codes. Start again in Teams.', canRetry: false, form: false };
    case 'wrong_card':
      return { message: r.message || 'The card in the reader is not the card this unlock is for.', canRetry: false, form: false };
    case 'not_waiting':
      return { message: r.message || 'Smartcard Assist is not waiting for an unlock code now. Start again in Teams.', canRetry: false, form: false };
    case 'unavailable':
      return { message: r.message || 'Smartcard Assist could not check your code just now. Try again in a moment.', canRetry: true, form: false };
    case 'code_needed':
      return { message: r.message || 'The connection to Smartcard Assist changed, and this computer no longer has your code. Start again in Teams.', canRetry: false, form: false };
  }
}

/** Drives the companion's unlock page and the card unblock. */
export class UnlockController {
  private state: State = { kind: 'idle', notice: null };
  /** The new passcode, between a valid submit and success/close/timeout. Secret. */
  private passcode: string | null = null;
  /** The unlock code typed with it, held as long as the passcode (a resume on a new link presents it again). Secret. */
  private code: string | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  /** `unlock.result` deliveries still running (a resume waits for them). */
  private resultDelivery: Promise<void> = Promise.resolve();
  private readonly settleWaiters = new Set<() => void>();
  /** Set between an `unlock.submit_code`/`unlock.resume` and the PUK pair (or its cancellation). */
  private release: ReleaseWait | null = null;

  constructor(private readonly options: UnlockControllerOptions) {}

  /** The page's screen for the unlock part (idle is completed by the caller with link facts). */
  view(idle: { personName: string | null; connected: boolean }): PageView {
    const s = this.state;
    switch (s.kind) {
      case 'idle':
        return { state: 'idle', personName: idle.personName, connected: idle.connected, notice: s.notice };
      case 'awaiting':
        return {
          state: 'awaiting_unlock',
          codeExpiresAt: s.journey.codeExpiresAt,
          codeChannel: s.journey.codeChannel,
          error: s.error,
          ...(s.keepTypedCode ? { keepTypedCode: true } : {}),
          // Derived, so the form asks for the passcode again as soon as the hold time drops it.
          ...(this.passcode !== null ? { passcodeKept: true } : {}),
        };
      case 'working':
        return { state: 'working', step: s.step };
      case 'card_removed':
        return { state: 'card_removed', wrongCard: s.wrongCard };
      case 'done':
        return { state: 'done' };
      case 'error':
        return { state: 'error', message: s.message, canRetry: s.canRetry };
    }
  }

  /** Name of the current state, for tests and logs. */
  get stateKind(): State['kind'] {
    return this.state.kind;
  }

  /** True while a new passcode is held in memory (for tests; never exposes it). */
  get holdsPasscode(): boolean {
    return this.passcode !== null;
  }

  /**
   * Command `unlock.prompt`: show the form for this journey. A repeat for the journey on the
   * page refreshes the form (new code expiry) while no code has been accepted; once the card
   * work started or finished it changes nothing.
   *
   * @param command - journey id, card id, code expiry, and how the code was sent (`codeChannel`; absent = email)
   */
  prompt(command: Extract<Command, { kind: 'unlock.prompt' }>): void {
    const s = this.state;
    if (s.kind !== 'idle' && s.journey.journeyId === command.journeyId) {
      // The same journey again (e.g. a new code was sent): refresh the form unless the code was
      // already accepted and the card work is under way or finished.
      if (s.kind === 'awaiting' || (s.kind === 'error' && !s.journey.codeAccepted)) {
        this.dropPasscode();
        s.journey.codeExpiresAt = new Date(command.codeExpiresAt);
        s.journey.codeChannel = command.codeChannel ?? 'email';
        this.setState({ kind: 'awaiting', journey: s.journey, error: null });
        this.options.logger.info({ journeyId: command.journeyId }, 'unlock prompt repeated; form refreshed');
        this.options.onPrompt?.();
      } else {
        this.options.logger.info({ journeyId: command.journeyId, state: s.kind }, 'repeated unlock prompt; page unchanged');
      }
      return;
    }
    this.dropPasscode();
    const journey: Journey = {
      journeyId: command.journeyId,
      cardId: command.cardId,
      codeExpiresAt: new Date(command.codeExpiresAt),
      codeChannel: command.codeChannel ?? 'email',
      codeAccepted: false,
      pukOnCard: 'current',
    };
    this.setState({ kind: 'awaiting', journey, error: null });
    this.options.logger.info({ journeyId: journey.journeyId }, 'unlock prompt shown');
    this.options.onPrompt?.();
  }

  /**
   * Command `unlock.closed`: the journey ended. Drop the passcode; keep the success screen
   * after an unlock, otherwise go idle with the bot's message.
   *
   * @param command - journey id, outcome, message for the person
   */
  closed(command: Extract<Command, { kind: 'unlock.closed' }>): void {
    const s = this.state;
    if (s.kind === 'idle' || s.journey.journeyId !== command.journeyId) {
      this.options.logger.info({ journeyId: command.journeyId }, 'unlock closed for a journey not on the page; ignored');
      return;
    }
    this.dropPasscode();
    this.cancelRelease();
    if (command.outcome === 'unlocked' && s.kind === 'done') {
      this.setState({ ...s, closed: true });
    } else {
      this.setState({ kind: 'idle', notice: command.message.trim() || null });
    }
    this.options.logger.info({ journeyId: command.journeyId, outcome: command.outcome }, 'unlock journey closed');
  }

  /** The link was lost for good (credential revoked): forget everything. */
  reset(notice: string | null = null): void {
    this.dropPasscode();
    this.cancelRelease();
    this.setState({ kind: 'idle', notice });
  }

  /**
   * Command `unlock.authorised`: the PUK pair for the journey whose code the bot accepted. Used
   * only while this controller waits for a pair for that journey and card (after its own
   * `unlock.submit_code` or `unlock.resume`); otherwise ignored (a late or repeated release).
   * The PUKs are never logged.
   *
   * @param command - journey id, card id, current PUK, new PUK (8 digits each), pukUncertain
   */
  authorised(command: Extract<Command, { kind: 'unlock.authorised' }>): void {
    const wait = this.release;
    if (!wait || wait.journeyId !== command.journeyId || wait.cardId !== command.cardId) {
      this.options.logger.info({ journeyId: command.journeyId, waiting: wait !== null }, 'PUK release for no unlock waiting for it; ignored');
      return;
    }
    this.release = null;
    wait.settle({ puk: command.puk, newPuk: command.newPuk, pukUncertain: command.pukUncertain === true });
  }

  /**
   * The unlock form was sent. Checks the code's shape and the passcode policy here, then sends
   * only the code to the bot and, once authorised, unblocks the card. When a new passcode is kept
   * from a try with a wrong code and the form has no passcode (the page then shows the code field
   * only), the kept one is used; a passcode typed in the form replaces it.
   *
   * @param form - code, new passcode, confirmation (secrets; passcode and confirmation empty = use the kept one)
   * @returns resolves when the page has something new to show (outcome known, or a refusal)
   */
  async submit(form: UnlockForm): Promise<void> {
    const s = this.state;
    if (s.kind !== 'awaiting') return;
    const journey = s.journey;
    const code = form.code.replace(/[\s-]/g, '');
    if (!OneTimeCodeSchema.safeParse(code).success) {
      this.setState({ kind: 'awaiting', journey, error: TEXT.badCode(journey.codeChannel) });
      return;
    }
    const kept = form.passcode === '' && form.confirmation === '' ? this.passcode : null;
    const passcode = kept ?? form.passcode;
    const policy = checkPasscode(passcode, kept ?? form.confirmation, { unlockCode: code });
    if (!policy.ok) {
      // Only the passcode was refused: the page puts the typed code back in its field. A kept
      // passcode refused now (it equals this code) is dropped, so the form asks for a new one.
      if (kept !== null) this.dropPasscode();
      this.setState({ kind: 'awaiting', journey, error: policy.message, keepTypedCode: true });
      return;
    }
    if (kept !== null) this.code = code; // the hold time still runs from the first try
    else this.holdPasscode(passcode, code);
    this.setState({ kind: 'working', journey, step: 'checking_code' });
    this.options.logger.info({ journeyId: journey.journeyId }, 'unlock code sent to the bot');
    const release = this.expectRelease(journey);
    const result = await this.options.link.request({ kind: 'unlock.submit_code', journeyId: journey.journeyId, cardId: journey.cardId, code });
    await this.afterAuthorisationRequest(journey, result, release);
  }

  /**
   * "Choose a different passcode" on the form that kept one after a wrong code: drop it, so the
   * form asks for a new passcode twice. Does nothing once a code was accepted.
   */
  forgetPasscode(): void {
    const s = this.state;
    if (s.kind !== 'awaiting' || s.journey.codeAccepted || this.passcode === null) return;
    this.dropPasscode();
    this.setState({ kind: 'awaiting', journey: s.journey, error: null });
    this.options.logger.info({ journeyId: s.journey.journeyId }, 'kept passcode dropped at the person\'s request');
  }

  /** "Try again" on an error screen: back to the form, or resume when the code was already accepted. */
  retry(): void {
    const s = this.state;
    if (s.kind !== 'error' || !s.canRetry) return;
    if (s.journey.codeAccepted && this.passcode !== null) {
      void this.resume(s.journey);
      return;
    }
    this.dropPasscode();
    this.setState({ kind: 'awaiting', journey: s.journey, error: null });
  }

  /**
   * A card was inserted or removed. When the page waits for the card to come back and this is the
   * journey's card, resume the unlock.
   *
   * @param status - the reader's new status
   */
  onCardStatus(status: CardStatus): void {
    const s = this.state;
    if (s.kind !== 'card_removed') return;
    if (!status.present) {
      if (s.wrongCard) this.setState({ ...s, wrongCard: false });
      return;
    }
    if (status.cardId !== s.journey.cardId) {
      this.setState({ ...s, wrongCard: true });
      return;
    }
    this.options.logger.info({ journeyId: s.journey.journeyId }, 'card is back; resuming the unlock');
    void this.resume(s.journey);
  }

  /**
   * Wait until the page has an outcome to show (not `working`).
   *
   * @param timeoutMs - give up after this many ms
   */
  waitForSettled(timeoutMs: number): Promise<void> {
    if (this.state.kind !== 'working') return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.settleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.settleWaiters.add(done);
    });
  }

  /** Drop the passcode and stop timers (shutdown). */
  dispose(): void {
    this.dropPasscode();
    this.cancelRelease();
  }

  // -------------------------------------------------------------------------

  private async resume(journey: Journey): Promise<void> {
    if (this.passcode === null) {
      this.setState({ kind: 'error', journey, message: TEXT.heldTooLong, canRetry: false });
      return;
    }
    this.setState({ kind: 'working', journey, step: 'unlocking' });
    await this.resultDelivery; // the bot must know what the card holds before it answers a resume
    if (!this.isCurrent(journey)) return;
    const release = this.expectRelease(journey);
    const code = this.code;
    const result = await this.options.link.request({ kind: 'unlock.resume', journeyId: journey.journeyId, cardId: journey.cardId, ...(code !== null ? { code } : {}) });
    await this.afterAuthorisationRequest(journey, result, release);
  }

  /** Start waiting for the PUK pair of `journey` (before the request goes, so an early command is not missed). */
  private expectRelease(journey: Journey): ReleaseWait {
    this.cancelRelease();
    let settle: (pair: PukPair | null) => void = () => undefined;
    const promise = new Promise<PukPair | null>((resolve) => (settle = resolve));
    const wait: ReleaseWait = { journeyId: journey.journeyId, cardId: journey.cardId, promise, settle };
    this.release = wait;
    return wait;
  }

  /** Stop waiting for a PUK pair (journey closed, refused, reset). */
  private cancelRelease(wait: ReleaseWait | null = this.release): void {
    if (!wait) return;
    if (this.release === wait) this.release = null;
    wait.settle(null);
  }

  private async afterAuthorisationRequest(journey: Journey, result: RequestResult, release: ReleaseWait): Promise<void> {
    const log = this.options.logger;
    if (!this.isCurrent(journey)) {
      this.cancelRelease(release);
      return;
    }
    if (!result.ok || result.response.kind !== 'unlock.accepted' || result.response.journeyId !== journey.journeyId) this.cancelRelease(release);
    if (!result.ok) {
      log.warn({ journeyId: journey.journeyId, reason: result.reason }, 'no answer from the bot to an unlock request');
      if (!journey.codeAccepted) this.dropPasscode();
      this.setState({ kind: 'error', journey, message: TEXT.unreachable, canRetry: true });
      return;
    }
    const response = result.response;
    if (response.kind === 'unlock.refused') {
      log.info({ journeyId: journey.journeyId, reason: response.reason, triesLeft: response.triesLeft ?? null }, 'bot refused the unlock');
      const text = refusalText(response);
      if (text.form && !journey.codeAccepted) {
        // A wrong code: keep the new passcode (it passed the policy) so only the code is typed
        // again; forget the code that was refused.
        this.code = null;
        this.setState({ kind: 'awaiting', journey, error: text.message });
      } else {
        if (!text.canRetry) this.dropPasscode();
        this.setState({ kind: 'error', journey, message: text.message, canRetry: text.canRetry });
      }
      return;
    }
    if (response.kind !== 'unlock.accepted' || response.journeyId !== journey.journeyId) {
      log.warn({ journeyId: journey.journeyId, kind: response.kind }, 'unexpected answer to an unlock request');
      this.setState({ kind: 'error', journey, message: TEXT.unexpected, canRetry: true });
      return;
    }
    journey.codeAccepted = true;
    // The pair comes as the `unlock.authorised` command (it may even have come already).
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.options.releaseWaitMs ?? RELEASE_WAIT_MS);
      timer.unref();
    });
    const pair = await Promise.race([release.promise, late]);
    clearTimeout(timer);
    if (pair === 'late') this.cancelRelease(release);
    if (!this.isCurrent(journey)) return;
    if (pair === null || pair === 'late') {
      if (pair === 'late') log.warn({ journeyId: journey.journeyId }, 'code accepted but no PUK release arrived in time');
      this.setState({ kind: 'error', journey, message: TEXT.releaseLate, canRetry: true });
      return;
    }
    // The bot cannot tell which of the two PUKs the card holds (an earlier attempt may have
    // changed it): try the current one, then the new one.
    if (pair.pukUncertain) journey.pukOnCard = 'unknown';
    await this.unblock(journey, pair.puk, pair.newPuk);
  }

  private async unblock(journey: Journey, puk: string, newPuk: string): Promise<void> {
    const log = this.options.logger;
    const passcode = this.passcode;
    if (passcode === null) {
      this.setState({ kind: 'error', journey, message: TEXT.heldTooLong, canRetry: false });
      return;
    }
    this.setState({ kind: 'working', journey, step: 'unlocking' });
    const outcome = await this.options.card.unblock({ cardId: journey.cardId, puk, newPuk, newPasscode: passcode, pukOnCard: journey.pukOnCard });
    journey.pukOnCard = outcome.pukOnCard;
    log.info({ journeyId: journey.journeyId, outcome: outcome.outcome, pukOnCard: outcome.pukOnCard }, 'unblock finished');

    const base = { kind: 'unlock.result' as const, journeyId: journey.journeyId, cardId: journey.cardId, pukOnCard: outcome.pukOnCard };
    switch (outcome.outcome) {
      case 'unblocked':
        this.dropPasscode();
        if (this.isCurrent(journey)) this.setState({ kind: 'done', journey, closed: false });
        this.options.onUnlocked?.();
        this.deliverResult({ ...base, outcome: 'unblocked' });
        return;
      case 'card_removed':
      case 'wrong_card':
        if (this.isCurrent(journey)) this.setState({ kind: 'card_removed', journey, wrongCard: outcome.outcome === 'wrong_card' });
        this.deliverResult({ ...base, outcome: 'card_removed' });
        return;
      case 'puk_rejected':
        this.dropPasscode();
        if (this.isCurrent(journey)) this.setState({ kind: 'error', journey, message: TEXT.pukRejected, canRetry: false });
        this.deliverResult({ ...base, outcome: 'puk_rejected', sw: outcome.sw });
        return;
      case 'card_error':
        if (this.isCurrent(journey)) this.setState({ kind: 'error', journey, message: TEXT.cardError, canRetry: true });
        this.deliverResult({ ...base, outcome: 'card_error', ...(outcome.sw ? { sw: outcome.sw } : {}) });
        return;
    }
  }

  /** Send `unlock.result` until the bot answers (across reconnects), for at most `resultDeliveryMs`. */
  private deliverResult(request: Extract<Request, { kind: 'unlock.result' }>): void {
    const log = this.options.logger;
    const deadline = Date.now() + (this.options.resultDeliveryMs ?? 10 * 60 * 1000);
    const previous = this.resultDelivery;
    this.resultDelivery = (async () => {
      await previous;
      for (;;) {
        const result = await this.options.link.request(request);
        if (result.ok) {
          const r = result.response;
          // The bot could not record it (its store was unreachable): send it again, as when the link drops.
          const notRecorded = r.kind === 'unlock.refused' && r.reason === 'unavailable';
          if (!notRecorded) {
            if (r.kind !== 'ok') log.warn({ journeyId: request.journeyId, kind: r.kind }, 'unexpected answer to unlock.result');
            return;
          }
        } else if (result.reason === 'refused_by_bot') {
          log.error({ journeyId: request.journeyId }, 'bot refused unlock.result');
          return;
        }
        const left0 = deadline - Date.now();
        if (result.ok && left0 > 0) {
          log.warn({ journeyId: request.journeyId }, 'unlock.result not recorded by the bot; sending it again shortly');
          await new Promise((r) => setTimeout(r, Math.min(left0, 2000)));
          continue;
        }
        if (result.ok) {
          log.error({ journeyId: request.journeyId, outcome: request.outcome }, 'gave up delivering unlock.result');
          return;
        }
        if (result.reason === 'refused_by_bot') {
          log.error({ journeyId: request.journeyId }, 'bot refused unlock.result');
          return;
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          log.error({ journeyId: request.journeyId, outcome: request.outcome }, 'gave up delivering unlock.result');
          return;
        }
        log.warn({ journeyId: request.journeyId, reason: result.reason }, 'unlock.result not delivered; retrying when the link is back');
        const ready = await this.options.link.waitUntilReady(Math.min(left, 30_000));
        if (!ready) await new Promise((r) => setTimeout(r, Math.min(left, 1000)));
      }
    })();
  }

  private isCurrent(journey: Journey): boolean {
    const s = this.state;
    return s.kind !== 'idle' && s.journey === journey;
  }

  private holdPasscode(passcode: string, code: string): void {
    this.dropPasscode();
    this.passcode = passcode;
    this.code = code;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      this.passcode = null;
      this.code = null;
      const s = this.state;
      this.options.logger.info('new passcode dropped after the hold time');
      if (s.kind === 'card_removed' || (s.kind === 'error' && s.canRetry && s.journey.codeAccepted)) {
        this.setState({ kind: 'error', journey: s.journey, message: TEXT.heldTooLong, canRetry: false });
      } else if (s.kind === 'awaiting') {
        // A passcode kept after a wrong code: the form asks for a new one again.
        this.setState({ ...s, error: TEXT.keptTooLong });
      }
    }, this.options.passcodeHoldMs ?? PASSCODE_HOLD_MS);
    this.holdTimer.unref();
  }

  private dropPasscode(): void {
    this.passcode = null;
    this.code = null;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
  }

  private setState(state: State): void {
    this.state = state;
    if (state.kind !== 'working') {
      for (const w of [...this.settleWaiters]) w();
    }
  }
}
