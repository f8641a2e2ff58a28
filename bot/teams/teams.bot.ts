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
  type CloudAdapter,
  type ConversationReference,
} from 'botbuilder';
import type { AdaptiveCard } from '../../cards';
import { parseCardAction, tryAgainShortlyCard, type CardAction } from '../../cards';
import { helpCard } from '../../cards';
import { pairHelpCard, pairingResultCard } from '../../cards';
import { unlockEndedCard } from '../../cards';
import { welcomeCard } from '../../cards';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { Device, JourneyKind, JourneyRecord, Person, Storage } from '../../storage/storage.port';
import type { PairingService } from '../pairing/pairing.service';
import type { UnlockRules } from '../journeys/unlock/unlock.journey';
import type { UnlockService } from '../journeys/unlock/unlock.service';
import { provisionalPersonId, type RegistrationService, type TeamsIdentity } from '../journeys/registration/registration.service';
import type { TeamsNotifier } from '../journeys/effect-runner';
import { journeyKey, type JourneyEngine } from '../journeys/journey.engine';
import { renderUnlockCard } from '../journeys/unlock/unlock.view';
import { decodeUnlock } from '../journeys/unlock/unlock.state';
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
}

/** The Teams identity of the sender of an activity. */
export function identityOf(activity: { from?: { id?: string; aadObjectId?: string; name?: string } }): TeamsIdentity | null {
  const from = activity.from;
  const primary = from?.aadObjectId || from?.id;
  if (!primary) return null;
  return { teamsUserId: primary, altIds: from?.aadObjectId && from.id ? [from.id] : [], displayName: from?.name ?? '', aadObjectId: from?.aadObjectId ?? null };
}

/** The Teams identity used to find a person: `aadObjectId` when Teams gives it, else the channel user id. */
export function teamsUserIdOf(activity: { from?: { id?: string; aadObjectId?: string } }): string | null {
  return activity.from?.aadObjectId || activity.from?.id || null;
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
      this.deps.logger.error({ code, verb: parsed.action.verb, ...(err instanceof AppError ? { err: err.toJSON() } : { err }) }, 'card action failed');
      const verb = parsed.action.verb;
      const journey = verb.startsWith('register.') ? 'registration' : verb.startsWith('unlock.') ? 'unlock' : verb === 'journey.show' ? parsed.action.data.journey : null;
      card = tryAgainShortlyCard({ journey });
    }
    return { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card as never };
  }

  private async cardFor(context: TurnContext, action: CardAction): Promise<AdaptiveCard> {
    const person = await this.person(context);
    switch (action.verb) {
      case 'help.show':
        return helpCard();
      case 'pair.help':
        return this.pairHelp(person);
      case 'journey.show':
        if (action.data.journey === 'registration') {
          const identity = identityOf(context.activity);
          return identity ? this.deps.registration.view(await this.deps.registration.current(identity), person) : helpCard();
        }
        return person ? this.view(person, await this.deps.unlock.load(person.id)) : NOT_REGISTERED(this.deps.raContact);
      default:
        break;
    }
    if (action.verb.startsWith('register.')) return this.registrationCard(context, action, person);
    if (!person) return NOT_REGISTERED(this.deps.raContact);
    const replyToId = context.activity.replyToId;
    switch (action.verb) {
      case 'unlock.start': {
        const record = await this.deps.unlock.start(person, { keepActiveRun: true });
        if (replyToId) await this.deps.unlock.setCardActivity(person.id, record.runId, replyToId);
        return this.view(person, record);
      }
      case 'unlock.check_card': {
        const record = await this.deps.unlock.checkAgain(person, action.data.runId, action.data.step);
        if (replyToId) await this.deps.unlock.setCardActivity(person.id, record.runId, replyToId);
        return this.view(person, record);
      }
      case 'unlock.answers': {
        const d = action.data;
        return this.view(person, await this.deps.unlock.submitAnswers(person, d.runId, d.step, [d.a1, d.a2, d.a3]));
      }
      case 'unlock.resend_code':
        return this.view(person, await this.deps.unlock.resendCode(person, action.data.runId, action.data.step));
      case 'unlock.cancel':
        return this.view(person, (await this.deps.unlock.cancel(person, action.data)).record);
      default:
        return helpCard();
    }
  }

  private async registrationCard(context: TurnContext, action: CardAction, person: Person | null): Promise<AdaptiveCard> {
    const identity = identityOf(context.activity);
    if (!identity) return helpCard();
    const reg = this.deps.registration;
    let record: JourneyRecord;
    switch (action.verb) {
      case 'register.start':
        record = await reg.start(identity);
        if (context.activity.replyToId) await reg.setCardActivity(record.personId, record.runId, context.activity.replyToId);
        break;
      case 'register.contact':
        record = await reg.submitContact(identity, action.data.runId, action.data.step, action.data.email, action.data.mobile);
        break;
      case 'register.check_card':
        record = await reg.checkCard(identity, action.data.runId, action.data.step);
        break;
      case 'register.questions': {
        const d = action.data;
        record = await reg.submitQuestions(identity, d.runId, d.step, [d.q1, d.q2, d.q3, d.q4], [d.a1, d.a2, d.a3, d.a4]);
        break;
      }
      case 'register.send_code':
        record = await reg.sendCode(identity, action.data.runId, action.data.step, action.data.email ?? '', false);
        break;
      case 'register.resend_code':
        record = await reg.sendCode(identity, action.data.runId, action.data.step, '', true);
        break;
      case 'register.code':
        record = await reg.submitCode(identity, action.data.runId, action.data.step, action.data.code);
        break;
      case 'register.cancel':
        record = await reg.cancel(identity, action.data.runId, action.data.step);
        break;
      default:
        record = await reg.current(identity);
    }
    const after = person ?? (await this.deps.storage.persons.get(record.personId));
    return reg.view(record, after);
  }
}

function firstName(displayName: string): string {
  return displayName.trim().split(/\s+/)[0] ?? '';
}

/** Proactive card updates for journeys that move outside a Teams turn (the companion finished). */
export class TeamsNotifierAdapter implements TeamsNotifier {
  constructor(
    private readonly deps: {
      adapter: CloudAdapter;
      appId: string;
      storage: Storage;
      engine: JourneyEngine;
      bot: SmartcardBot;
      logger: Logger;
    },
  ) {}

  async refresh(personId: string, journey: JourneyKind, message: string | null): Promise<void> {
    const conv = await this.deps.storage.conversations.get(personId);
    if (!conv) {
      this.deps.logger.warn({ personId }, 'no conversation reference: cannot update Teams');
      return;
    }
    const record = await this.deps.storage.journeys.get(journeyKey(personId, journey));
    if (!record) return;
    const card = await this.deps.bot.cardForRecord(record);
    await this.deps.adapter.continueConversationAsync(this.deps.appId, conv.reference as Partial<ConversationReference>, async (ctx) => {
      const attachment = CardFactory.adaptiveCard(card);
      if (record.ui.activityId) {
        await ctx.updateActivity({ type: 'message', id: record.ui.activityId, attachments: [attachment] });
      } else {
        const r = await ctx.sendActivity({ attachments: [attachment] });
        if (r?.id) await this.deps.engine.setCardActivity(personId, journey, record.runId, r.id);
      }
      if (message) await ctx.sendActivity(message);
    });
  }
}
