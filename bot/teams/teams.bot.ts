/**
 * The Teams activity handler: turns typed messages and `Action.Execute`
 * invokes (Universal Actions, invoke name `adaptiveCard/action`) into journey
 * calls, and answers each with the card for the journey's current state.
 *
 * A stale or repeated click carries an old run id or step; the journey ignores
 * it and the invoke response is the current card, so nothing is sent or
 * counted twice.
 */
import {
  ActivityHandler,
  CardFactory,
  TurnContext,
  type AdaptiveCardInvokeResponse,
  type AdaptiveCardInvokeValue,
  type ConversationReference,
} from 'botbuilder';
import type { AdaptiveCard } from '../../cards';
import { parseCardAction, tryAgainShortlyCard, type CardAction, type CardActionOf, type CardVerb } from '../../cards';
import { journeyUnreadableCard } from '../../cards/service.card';
import { helpCard } from '../../cards';
import { pairHelpCard, pairingResultCard } from '../../cards';
import { unlockEndedCard } from '../../cards';
import { welcomeCard } from '../../cards';
import { usageReportCard } from '../../cards';
import { helpdeskCaseCard, helpdeskFormCard, helpdeskRefusedCard } from '../../cards';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { Device, JourneyKind, JourneyRecord, Person, Storage } from '../../storage/storage.port';
import type { PairingService } from '../pairing/pairing.service';
import type { UnlockRules } from '../journeys/unlock/unlock.journey';
import type { UnlockService } from '../journeys/unlock/unlock.service';
import { provisionalPersonId, type RegistrationService, type TeamsIdentity } from '../journeys/registration/registration.service';
import { renderUnlockCard } from '../journeys/unlock/unlock.view';
import { decodeUnlock } from '../journeys/unlock/unlock.state';
import type { RaAction } from '../journeys/ra-case/ra-case.journey';
import { MAX_HANDOFF_REASON, type DeskSender, type HandoffOutcome, type RaDeskService } from '../journeys/ra-case/ra-desk.service';
import { rangeText, usageFacts } from '../report/usage-report';
import { parseIntent } from './intents';

export interface TeamsBotDeps {
  storage: Storage;
  unlock: UnlockService;
  pairing: PairingService;
  /** Whether a device's companion can be reached now. */
  isReachable: (device: Device) => boolean;
  logger: Logger;
  timeZone: string;
  raContact: string;
  rules: UnlockRules;
  /** Entra tenant ids allowed; empty = any. */
  allowedTenants: string[];
  /** Registration journey (issue #3). */
  registration: RegistrationService;
  /** The RA desk (issue #12): case actions, "talk to RA". */
  raDesk: RaDeskService;
  /** Learns the RA channel's conversation reference when the bot is installed in a team. */
  raChannel: { learn(activity: TurnContext['activity']): Promise<void> };
}

/** The Teams identity of the sender of an activity. */
export function identityOf(activity: { from?: { id?: string; aadObjectId?: string; name?: string } }): TeamsIdentity | null {
  const from = activity.from;
  const primary = from?.aadObjectId || from?.id;
  if (!primary) return null;
  return { teamsUserId: primary, altIds: from?.aadObjectId && from.id ? [from.id] : [], displayName: from?.name ?? '', aadObjectId: from?.aadObjectId ?? null };
}

function tenantOf(activity: { conversation?: { tenantId?: string }; channelData?: unknown }): string | null {
  const cd = activity.channelData as { tenant?: { id?: string } } | undefined;
  return activity.conversation?.tenantId ?? cd?.tenant?.id ?? null;
}

const NOT_REGISTERED = (raContact: string): AdaptiveCard =>
  unlockEndedCard({ title: 'You are not registered for self-service yet', message: `Self-service unlock needs you to register first: say "register" (you will need your card and its passcode). Until then, ${raContact} can unlock your card.` });

export class SmartcardBot extends ActivityHandler {
  /** Conversation reference last stored per person by this process (JSON), to skip unchanged writes. */
  private readonly lastReference = new Map<string, string>();

  constructor(private readonly deps: TeamsBotDeps) {
    super();

    this.onMembersAdded(async (context, next) => {
      const botId = context.activity.recipient?.id;
      const added = context.activity.membersAdded ?? [];
      // Welcome once per install: when the bot (or the person, in a personal chat) is added.
      if (added.some((m) => m.id === botId) || (context.activity.conversation?.conversationType === 'personal' && added.length > 0)) {
        const name = context.activity.from?.name ?? '';
        await context.sendActivity({ attachments: [CardFactory.adaptiveCard(welcomeCard({ displayName: firstName(name) }))] });
      }
      await next();
    });

    this.onConversationUpdate(async (context, next) => {
      // Installed in a team: remember how to reach the RA channel (issue #12).
      await this.deps.raChannel.learn(context.activity).catch((err: unknown) => this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'RA channel reference not stored'));
      await next();
    });

    this.onMessage(async (context, next) => {
      await this.handleMessage(context);
      await next();
    });
  }

  /** Refuse turns from tenants not on the allow-list. */
  override async run(context: TurnContext): Promise<void> {
    if (this.deps.allowedTenants.length > 0) {
      const tenant = tenantOf(context.activity);
      if (!tenant || !this.deps.allowedTenants.includes(tenant)) {
        this.deps.logger.warn({ tenant, type: context.activity.type }, 'turn refused: tenant not allowed');
        if (context.activity.type === 'invoke') {
          await context.sendActivity({ type: 'invokeResponse', value: { status: 403, body: { statusCode: 403, type: 'application/vnd.microsoft.error', value: { code: 'Forbidden', message: 'This tenant may not use Smartcard Assist.' } } } });
        }
        return;
      }
    }
    await super.run(context);
  }

  private async person(context: TurnContext): Promise<Person | null> {
    const from = context.activity.from;
    // Teams gives the Entra object id; a person may also be registered by channel user id.
    const ids = [from?.aadObjectId, from?.id].filter((x): x is string => !!x);
    let person: Person | null = null;
    for (const id of ids) {
      person = await this.deps.storage.persons.findByTeamsUserId(id);
      if (person) break;
    }
    // Remember how to reach the person proactively, also before they are registered
    // (their registration runs under a provisional id that becomes their person id).
    const primary = ids[0];
    if (primary && (context.activity.conversation?.conversationType ?? 'personal') === 'personal') {
      const reference = TurnContext.getConversationReference(context.activity) as Partial<ConversationReference>;
      const personId = person?.id ?? provisionalPersonId(primary);
      const json = JSON.stringify(reference);
      // One write per change, not per click; a failed write does not fail the turn.
      if (this.lastReference.get(personId) !== json) {
        try {
          await this.deps.storage.conversations.put({ personId, reference: reference as Record<string, unknown>, updatedAt: new Date().toISOString() });
          if (this.lastReference.size > 50_000) this.lastReference.clear();
          this.lastReference.set(personId, json);
        } catch (err) {
          this.deps.logger.warn({ errorCode: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'conversation reference not stored');
        }
      }
    }
    return person;
  }

  /** The card for a stored journey record (unlock or registration), for proactive updates. */
  async cardForRecord(record: JourneyRecord): Promise<AdaptiveCard> {
    const person = await this.deps.storage.persons.get(record.personId);
    if (record.kind === 'registration') return this.deps.registration.view(record, person);
    if (!person) return NOT_REGISTERED(this.deps.raContact);
    return this.view(person, record);
  }

  async view(person: Person, record: JourneyRecord): Promise<AdaptiveCard> {
    const device = await this.deps.pairing.currentDevice(person.id, this.deps.isReachable);
    return renderUnlockCard(
      decodeUnlock(record),
      { displayName: firstName(person.displayName), email: person.email, timeZone: this.deps.timeZone, raContact: this.deps.raContact, rules: this.deps.rules, workstation: device?.workstation ?? null },
    );
  }

  private async sendCard(context: TurnContext, card: AdaptiveCard): Promise<string | undefined> {
    const r = await context.sendActivity({ attachments: [CardFactory.adaptiveCard(card)] });
    return r?.id;
  }

  private async handleMessage(context: TurnContext): Promise<void> {
    const activity = context.activity;
    if (!activity.text && activity.value !== undefined) {
      // A legacy Action.Submit: our cards only use Action.Execute.
      await context.sendActivity('That button is from an older card. Say "unlock" or "help" to carry on.');
      return;
    }
    const intent = parseIntent(activity.text);
    const person = await this.person(context);
    switch (intent.kind) {
      case 'help':
        await this.sendCard(context, helpCard());
        return;
      case 'greeting':
        await this.sendCard(context, welcomeCard({ displayName: firstName(activity.from?.name ?? '') }));
        return;
      case 'register': {
        const identity = identityOf(activity);
        if (!identity) return;
        const record = await this.deps.registration.start(identity);
        const id = await this.sendCard(context, await this.deps.registration.view(record, person));
        if (id) await this.deps.registration.setCardActivity(record.personId, record.runId, id);
        return;
      }
      case 'pair_help':
        await this.sendCard(context, await this.pairHelp(person));
        return;
      case 'pair': {
        // Pairing comes before registration (registration checks the card through the companion).
        const identity = identityOf(activity);
        if (!identity) return;
        const { personId } = await this.deps.registration.resolve(identity);
        const r = await this.deps.pairing.approve({ id: personId }, intent.code);
        await this.sendCard(context, r.ok ? pairingResultCard({ ok: true, workstation: r.workstation }) : pairingResultCard({ ok: false, message: r.message }));
        return;
      }
      case 'unlock': {
        const identity = !person && this.deps.unlock.codeOnly() ? identityOf(activity) : null;
        if (identity) {
          // UNLOCK_POLICY=code-only (issue #14): no registration needed; the card and the directory decide.
          await context.sendActivities([{ type: 'typing' }]);
          const record = await this.deps.unlock.startCodeOnly(identity);
          const id = await this.sendCard(context, await this.codeOnlyView(identity, record));
          if (id) await this.deps.unlock.setCardActivity(record.personId, record.runId, id);
          return;
        }
        if (!person) {
          await this.sendCard(context, NOT_REGISTERED(this.deps.raContact));
          return;
        }
        await context.sendActivities([{ type: 'typing' }]);
        const record = await this.deps.unlock.start(person);
        const id = await this.sendCard(context, await this.view(person, record));
        if (id) await this.deps.unlock.setCardActivity(person.id, record.runId, id);
        return;
      }
      case 'cancel': {
        if (!person) {
          await context.sendActivity('There is nothing to cancel.');
          return;
        }
        const { record, cancelled } = await this.deps.unlock.cancel(person);
        if (!cancelled) {
          await context.sendActivity('There is nothing to cancel.');
          return;
        }
        if (record.ui.activityId) {
          await context.updateActivity({ type: 'message', id: record.ui.activityId, attachments: [CardFactory.adaptiveCard(await this.view(person, record))] });
        }
        await context.sendActivity('Cancelled. Say "unlock" to start again.');
        return;
      }
      case 'talk_to_ra': {
        if (!person) {
          await context.sendActivity(`You are not registered with Smartcard Assist, so there is no card to look at yet. Contact ${this.deps.raContact} directly, or say "register".`);
          return;
        }
        const { caseRef, created } = await this.deps.raDesk.requestByPerson(person);
        await context.sendActivity(
          created
            ? `I have asked your RA team to help: your case is ${caseRef}. Anything you had started is kept, not lost. You will hear here when someone picks it up.`
            : `Your RA team already has your case ${caseRef}. You will hear here when something happens.`,
        );
        return;
      }
      case 'report': {
        const r = await this.deps.raDesk.report(deskSender(activity), intent);
        if (r.kind === 'not_member') {
          await context.sendActivity('Only RA team members can ask for the usage report. Nothing was shown, and your request was recorded.');
          return;
        }
        if (r.kind === 'bad_dates') {
          await context.sendActivity(`I could not read those dates: ${r.message}. Say "report" for the last 7 days, or "report 2026-12-01 2026-12-07" (UTC days, both included).`);
          return;
        }
        await this.sendCard(context, usageReportCard({ range: rangeText(r.report.range), teams: r.report.teams.map((t) => ({ team: t.team, facts: usageFacts(t) })) }));
        return;
      }
      case 'open_case_form': {
        await this.sendCard(context, await this.helpdeskForm(deskSender(activity)));
        return;
      }
      case 'open_case_for': {
        await context.sendActivity(handoffAnswer(await this.deps.raDesk.openForPerson(deskSender(activity), intent.email, intent.reason), intent.email));
        return;
      }
      case 'unknown':
        await context.sendActivity('Sorry, I did not understand that. Here is what I can do:');
        await this.sendCard(context, helpCard());
        return;
    }
  }

  private async pairHelp(person: Person | null): Promise<AdaptiveCard> {
    const device = person ? await this.deps.pairing.currentDevice(person.id, this.deps.isReachable) : null;
    const connected = !!device && this.deps.isReachable(device);
    return pairHelpCard({ companionConnected: connected, ...(device ? { workstation: device.workstation } : {}) });
  }

  /** `Action.Execute` clicks (invoke `adaptiveCard/action`): answer with the card to show now. */
  protected override async onAdaptiveCardInvoke(context: TurnContext, invokeValue: AdaptiveCardInvokeValue): Promise<AdaptiveCardInvokeResponse> {
    const parsed = parseCardAction(invokeValue);
    if (!parsed.ok) {
      this.deps.logger.warn({ reason: parsed.reason, message: parsed.message }, 'card action refused');
      return { statusCode: 400, type: 'application/vnd.microsoft.error', value: { code: 'BadRequest', message: parsed.message } as never };
    }
    let card: AdaptiveCard;
    try {
      card = await this.cardFor(context, parsed.action);
    } catch (err) {
      // One place for a failed click: log it, say so in plain words, and offer the
      // current card. Every write is a single compare-and-set, so nothing is half-done.
      const code = err instanceof AppError ? err.code : 'UNEXPECTED';
      const field = err instanceof AppError && typeof err.meta['field'] === 'string' ? err.meta['field'] : undefined;
      this.deps.logger.error({ code, ...(field ? { field } : {}), verb: parsed.action.verb, ...(err instanceof AppError ? { err: err.toJSON() } : { err }) }, 'card action failed');
      // A stored journey that cannot be read: retrying cannot help, RA can.
      const journey = journeyOfAction(parsed.action);
      card = code === 'JOURNEY.STATE_INVALID' ? journeyUnreadableCard({ journey: journey ?? 'unlock', raContact: this.deps.raContact }) : tryAgainShortlyCard({ journey });
    }
    return { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card as never };
  }

  /** One handler per card verb, each given the action narrowed to its verb (no prefix matching). */
  private readonly cardHandlers: CardHandlers = {
    'help.show': async () => helpCard(),
    'pair.help': async (_action, turn) => this.pairHelp(turn.person),
    'journey.show': async (action, turn) => {
      if (action.data.journey === 'registration') {
        const identity = identityOf(turn.context.activity);
        return identity ? this.deps.registration.view(await this.deps.registration.current(identity), turn.person) : helpCard();
      }
      return turn.person ? this.view(turn.person, await this.deps.unlock.load(turn.person.id)) : NOT_REGISTERED(this.deps.raContact);
    },
    'unlock.start': async (_action, turn) =>
      (await this.codeOnlyTurn(turn)) ??
      this.unlockTurn(turn, async (person) => {
        const record = await this.deps.unlock.start(person, { keepActiveRun: true });
        if (turn.context.activity.replyToId) await this.deps.unlock.setCardActivity(person.id, record.runId, turn.context.activity.replyToId);
        return record;
      }),
    'unlock.check_card': async (action, turn) =>
      (await this.codeOnlyTurn(turn)) ??
      this.unlockTurn(turn, async (person) => {
        const record = await this.deps.unlock.checkAgain(person, action.data.runId, action.data.step);
        if (turn.context.activity.replyToId) await this.deps.unlock.setCardActivity(person.id, record.runId, turn.context.activity.replyToId);
        return record;
      }),
    'unlock.answers': async (action, turn) => {
      const d = action.data;
      return this.unlockTurn(turn, (person) => this.deps.unlock.submitAnswers(person, d.runId, d.step, [d.a1, d.a2, d.a3]));
    },
    'unlock.resend_code': async (action, turn) => this.unlockTurn(turn, (person) => this.deps.unlock.resendCode(person, action.data.runId, action.data.step)),
    'unlock.choose_channel': async (action, turn) => this.unlockTurn(turn, (person) => this.deps.unlock.chooseChannel(person, action.data.runId, action.data.step, action.data.channel)),
    'unlock.cancel': async (action, turn) => this.unlockTurn(turn, async (person) => (await this.deps.unlock.cancel(person, action.data)).record),
    'register.start': async (_action, turn) =>
      this.registrationTurn(turn, async (identity, reg) => {
        const record = await reg.start(identity);
        if (turn.context.activity.replyToId) await reg.setCardActivity(record.personId, record.runId, turn.context.activity.replyToId);
        return record;
      }),
    'register.contact': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.submitContact(identity, action.data.runId, action.data.step, action.data.email, action.data.mobile)),
    'register.check_card': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.checkCard(identity, action.data.runId, action.data.step)),
    'register.questions': async (action, turn) => {
      const d = action.data;
      return this.registrationTurn(turn, (identity, reg) => reg.submitQuestions(identity, d.runId, d.step, [d.q1, d.q2, d.q3, d.q4], [d.a1, d.a2, d.a3, d.a4]));
    },
    'register.send_code': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.sendCode(identity, action.data.runId, action.data.step, action.data.email ?? '', false)),
    'register.resend_code': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.sendCode(identity, action.data.runId, action.data.step, '', true)),
    'register.code': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.submitCode(identity, action.data.runId, action.data.step, action.data.code)),
    'register.cancel': async (action, turn) => this.registrationTurn(turn, (identity, reg) => reg.cancel(identity, action.data.runId, action.data.step)),
    'ra.claim': async (action, turn) => this.raTurn(turn, action.data.caseRef, 'claim', action.data.step),
    'ra.note': async (action, turn) => this.raTurn(turn, action.data.caseRef, 'note', action.data.step, { note: action.data.note }),
    'ra.reset_attempts': async (action, turn) => this.raTurn(turn, action.data.caseRef, 'reset_attempts', action.data.step),
    'ra.assist_unlock': async (action, turn) => this.raTurn(turn, action.data.caseRef, 'assist_unlock', action.data.step),
    'ra.close': async (action, turn) => this.raTurn(turn, action.data.caseRef, 'close', action.data.step, { outcome: action.data.outcome }),
    'ra.case_refresh': async (action, turn) => (await this.deps.raDesk.card(action.data.caseRef, deskSender(turn.context.activity))) ?? helpCard(),
    'helpdesk.form': async (_action, turn) => this.helpdeskForm(deskSender(turn.context.activity)),
    'helpdesk.open_case': async (action, turn) => {
      const { email, reason } = action.data;
      const r = await this.deps.raDesk.openForPerson(deskSender(turn.context.activity), email, reason);
      if ('caseRef' in r) return helpdeskCaseCard({ caseRef: r.caseRef, person: r.person, created: r.kind === 'opened', personTold: r.kind === 'opened' && r.personTold });
      if (r.kind === 'not_helpdesk') return helpdeskRefusedCard();
      return helpdeskFormCard({ email, reason, error: handoffFormError(r, email) });
    },
  };

  /** The helpdesk form for helpdesk (and RA) members; anyone else is refused (audited). */
  private async helpdeskForm(sender: DeskSender): Promise<AdaptiveCard> {
    return (await this.deps.raDesk.mayHandOff(sender)) ? helpdeskFormCard({ email: '', reason: '', error: null }) : helpdeskRefusedCard();
  }

  /** An RA case click: the desk decides (role, owner, closed, stale) and the clicker sees the case as it is now. */
  private async raTurn(turn: CardTurn, caseRef: string, action: RaAction, step: string, input: { note?: string; outcome?: CaseOutcomeInput } = {}): Promise<AdaptiveCard> {
    const sender = deskSender(turn.context.activity);
    const { verdict } = await this.deps.raDesk.act(caseRef, action, sender, Number(step), input);
    const card = await this.deps.raDesk.card(caseRef, sender, this.deps.raDesk.notice(verdict));
    return card ?? unlockEndedCard({ title: 'No such RA case', message: `There is no RA case ${caseRef}. Nothing was changed.` });
  }

  private async cardFor(context: TurnContext, action: CardAction): Promise<AdaptiveCard> {
    const person = await this.person(context);
    return routeCardAction(this.cardHandlers, action, { context, person });
  }

  /** An unlock click: the registered person only; answers with the unlock card after the step. */
  /**
   * UNLOCK_POLICY=code-only (issue #14): "Start again" / "Try again" from someone with no person record
   * (not enrolled yet) checks their card afresh; null when this is not such a click.
   */
  private async codeOnlyTurn(turn: CardTurn): Promise<AdaptiveCard | null> {
    if (turn.person || !this.deps.unlock.codeOnly()) return null;
    const identity = identityOf(turn.context.activity);
    if (!identity) return null;
    const record = await this.deps.unlock.startCodeOnly(identity);
    if (turn.context.activity.replyToId) await this.deps.unlock.setCardActivity(record.personId, record.runId, turn.context.activity.replyToId);
    return this.codeOnlyView(identity, record);
  }

  /** The unlock card of a code-only run: the person's own once enrolled, else from the Teams identity. */
  private async codeOnlyView(identity: TeamsIdentity, record: JourneyRecord): Promise<AdaptiveCard> {
    const enrolled = await this.deps.storage.persons.get(record.personId);
    if (enrolled) return this.view(enrolled, record);
    return renderUnlockCard(decodeUnlock(record), { displayName: firstName(identity.displayName), email: '', timeZone: this.deps.timeZone, raContact: this.deps.raContact, rules: this.deps.rules, workstation: null });
  }

  private async unlockTurn(turn: CardTurn, act: (person: Person) => Promise<JourneyRecord>): Promise<AdaptiveCard> {
    if (!turn.person) return NOT_REGISTERED(this.deps.raContact);
    return this.view(turn.person, await act(turn.person));
  }

  /** A registration click: answers with the registration card after the step. */
  private async registrationTurn(turn: CardTurn, act: (identity: TeamsIdentity, reg: RegistrationService) => Promise<JourneyRecord>): Promise<AdaptiveCard> {
    const identity = identityOf(turn.context.activity);
    if (!identity) return helpCard();
    const record = await act(identity, this.deps.registration);
    const after = turn.person ?? (await this.deps.storage.persons.get(record.personId));
    return this.deps.registration.view(record, after);
  }
}

/** What the helpdesk member is told about a handoff (plain words; the case reference when there is one). */
function handoffAnswer(r: HandoffOutcome, typedEmail: string): string {
  const shown = typedEmail.slice(0, 100);
  switch (r.kind) {
    case 'opened':
      return `Case ${r.caseRef} is open for ${r.person.displayName} (${r.person.email}) and with the RA team. ${r.personTold ? 'They have been told in their Teams chat with Smartcard Assist.' : 'They have not chatted with Smartcard Assist yet, so they could not be told in Teams: give them the reference.'}`;
    case 'exists':
      return `${r.person.displayName} (${r.person.email}) already has an open case, ${r.caseRef}, with the RA team. Nothing new was opened; quote ${r.caseRef}.`;
    case 'not_helpdesk':
      return 'Only helpdesk staff can open RA cases for someone else. Nothing was opened, and your request was recorded. If this is about your own card, say "talk to RA".';
    case 'bad_email':
      return `"${shown}" is not an email address. Nothing was opened. Say "open case for name@nhs.net: reason".`;
    case 'no_reason':
      return `Say why after the address, e.g. "open case for ${shown}: locked out, identity checked by phone". Nothing was opened.`;
    case 'reason_too_long':
      return `The reason is too long (at most ${MAX_HANDOFF_REASON} characters). Nothing was opened.`;
    case 'not_registered':
      return `No one is registered with Smartcard Assist as ${r.email}. Nothing was opened. Check the address, or contact the RA team directly: they can help people who are not registered.`;
    case 'ambiguous':
      return `More than one person is registered with Smartcard Assist as ${r.email}. Nothing was opened: contact the RA team directly so they can tell them apart.`;
  }
}

/** What was wrong with a handoff from the form, shown on the form again (values kept). */
function handoffFormError(r: HandoffOutcome, typedEmail: string): string {
  switch (r.kind) {
    case 'opened':
    case 'exists':
    case 'not_helpdesk':
      return handoffAnswer(r, typedEmail);
    case 'bad_email':
      return typedEmail.trim() === '' ? "Enter the person's email address. Nothing was opened." : `"${typedEmail.slice(0, 100)}" is not an email address. Nothing was opened.`;
    case 'no_reason':
      return 'Say why the person needs their RA team. Nothing was opened.';
    case 'reason_too_long':
      return `The reason is too long (at most ${MAX_HANDOFF_REASON} characters). Nothing was opened.`;
    case 'not_registered':
      return `No one is registered with Smartcard Assist as ${r.email}. Nothing was opened. Check the address, or contact the RA team directly: they can help people who are not registered.`;
    case 'ambiguous':
      return `More than one person is registered with Smartcard Assist as ${r.email}. Nothing was opened: contact the RA team directly so they can tell them apart.`;
  }
}

/** A close outcome as the card sends it. */
type CaseOutcomeInput = CardActionOf<'ra.close'>['data']['outcome'];

/** The sender of an activity as the RA desk sees them (roles are decided on the Entra object id only). */
function deskSender(activity: { from?: { id?: string; aadObjectId?: string; name?: string } }): DeskSender {
  return { aadObjectId: activity.from?.aadObjectId ?? null, channelUserId: activity.from?.id ?? null, name: activity.from?.name ?? '' };
}

/** What a card-action handler is given besides its action. */
interface CardTurn {
  context: TurnContext;
  /** The registered person clicking, or null. */
  person: Person | null;
}

/** One handler per verb of the card-action union (cards/card-actions.ts). */
type CardHandlers = { [V in CardVerb]: (action: CardActionOf<V>, turn: CardTurn) => Promise<AdaptiveCard> };

/** Hand a parsed action to the handler for its verb. */
function routeCardAction<V extends CardVerb>(handlers: CardHandlers, action: CardActionOf<V>, turn: CardTurn): Promise<AdaptiveCard> {
  const handler: (action: CardActionOf<V>, turn: CardTurn) => Promise<AdaptiveCard> = handlers[action.verb];
  return handler(action, turn);
}

/** Which journey's "try again" card a failed click of each verb shows. */
/** A person's journey whose card a "try again" button shows. */
type PersonJourney = Exclude<JourneyKind, 'ra-case'>;

const VERB_JOURNEY: { [V in CardVerb]: (action: CardActionOf<V>) => PersonJourney | null } = {
  'help.show': () => null,
  'pair.help': () => null,
  'journey.show': (action) => action.data.journey,
  'unlock.start': () => 'unlock',
  'unlock.check_card': () => 'unlock',
  'unlock.answers': () => 'unlock',
  'unlock.resend_code': () => 'unlock',
  'unlock.choose_channel': () => 'unlock',
  'unlock.cancel': () => 'unlock',
  'register.start': () => 'registration',
  'register.contact': () => 'registration',
  'register.check_card': () => 'registration',
  'register.questions': () => 'registration',
  'register.send_code': () => 'registration',
  'register.resend_code': () => 'registration',
  'register.code': () => 'registration',
  'register.cancel': () => 'registration',
  'ra.claim': () => null,
  'ra.note': () => null,
  'ra.reset_attempts': () => null,
  'ra.assist_unlock': () => null,
  'ra.close': () => null,
  'ra.case_refresh': () => null,
  'helpdesk.form': () => null,
  'helpdesk.open_case': () => null,
};

function journeyOfAction<V extends CardVerb>(action: CardActionOf<V>): PersonJourney | null {
  const of: (action: CardActionOf<V>) => PersonJourney | null = VERB_JOURNEY[action.verb];
  return of(action);
}

function firstName(displayName: string): string {
  return displayName.trim().split(/\s+/)[0] ?? '';
}
