/**
 * Proactive Teams updates for journeys that move outside a Teams turn (the
 * companion finished, a mail failed): re-render the person's current card in
 * place, or post it. Implements the effect runner's {@link TeamsNotifier} port.
 *
 * The card is the one place the journey's outcome is shown: a journey's
 * `message` is not posted under it, because every journey card already says
 * the same (the unlock's "Your smartcard is unlocked", a failed code email), and
 * a person shown the success twice wonders whether something happened twice
 * (issue #14).
 */
import { CardFactory, type CloudAdapter, type ConversationReference } from 'botbuilder';
import type { Logger } from '../../common/logger';
import type { JourneyKind, Storage } from '../../storage/storage.port';
import type { TeamsNotifier } from '../journeys/effect-runner';
import { journeyKey, type JourneyEngine } from '../journeys/journey.engine';
import type { SmartcardBot } from './teams.bot';

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

  /**
   * Post a short message in the person's chat, with no card (e.g. "another connection with your
   * companion's credential was refused"). Nothing is sent when no conversation reference is stored.
   *
   * @param personId - whom to tell
   * @param text - plain text for the person (no secret)
   */
  async tell(personId: string, text: string): Promise<void> {
    const conv = await this.deps.storage.conversations.get(personId);
    if (!conv) {
      this.deps.logger.warn({ personId }, 'no conversation reference: cannot tell the person in Teams');
      return;
    }
    await this.deps.adapter.continueConversationAsync(this.deps.appId, conv.reference as Partial<ConversationReference>, async (ctx) => {
      await ctx.sendActivity(text);
    });
  }

  /**
   * Re-render the person's current card for `journey`: in place when its activity is known, else
   * posted (and its activity kept for the next update). Nothing else is sent.
   *
   * @param personId - whose card
   * @param journey - which journey's card
   * @param message - the journey's text for the same moment; not posted (the card says it, see above),
   *   only logged as present
   */
  async refresh(personId: string, journey: JourneyKind, message: string | null): Promise<void> {
    const conv = await this.deps.storage.conversations.get(personId);
    if (!conv) {
      this.deps.logger.warn({ personId }, 'no conversation reference: cannot update Teams');
      return;
    }
    const record = await this.deps.storage.journeys.get(journeyKey(personId, journey));
    if (!record) return;
    const card = await this.deps.bot.cardForRecord(record);
    if (message) this.deps.logger.debug({ personId, journey }, 'journey message not posted: the card shows the outcome');
    await this.deps.adapter.continueConversationAsync(this.deps.appId, conv.reference as Partial<ConversationReference>, async (ctx) => {
      const attachment = CardFactory.adaptiveCard(card);
      if (record.ui.activityId) {
        await ctx.updateActivity({ type: 'message', id: record.ui.activityId, attachments: [attachment] });
      } else {
        const r = await ctx.sendActivity({ attachments: [attachment] });
        if (r?.id) await this.deps.engine.setCardActivity(personId, journey, record.runId, r.id);
      }
    });
  }
}
