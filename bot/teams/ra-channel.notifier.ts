/**
 * Proactive messages of the RA desk (issue #12): the case card in the RA
 * team's channel (posted once, then updated in place). The person is told in
 * their personal chat through the Teams notifier (`TeamsNotifierAdapter.tell`).
 *
 * The channel is reached by a conversation reference: the one learned when the
 * bot was installed in a team (a `conversationUpdate` from a team channel,
 * stored under {@link RA_CHANNEL_KEY}), else the one configuration gives
 * (`RA_CHANNEL_ID`, `RA_CHANNEL_SERVICE_URL`). When `RA_CHANNEL_ID` is set,
 * only that channel's activities are learned. With several RA teams
 * (`RA_TEAMS`), each case's card goes to its own team's channel, and each
 * team's reference is learned from its own channel (kept under
 * `ra-channel:<team name>`; the first team's under {@link RA_CHANNEL_KEY}). When the first reference is
 * learned, the cards of active cases not yet posted are posted then.
 */
import { CardFactory, TurnContext, type Activity, type CloudAdapter, type ConversationReference } from 'botbuilder';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { Storage } from '../../storage/storage.port';
import type { JourneyEngine } from '../journeys/journey.engine';
import { journeyKey } from '../journeys/journey.key';
import type { RaDeskService } from '../journeys/ra-case/ra-desk.service';
import type { RaDeskConfig, RaTeam } from '../journeys/ra-case/ra-roles';
import { decodeRaCase } from '../journeys/ra-case/ra-case.state';

/** Most waiting case cards posted when the channel is first learned. */
const MAX_REPOST = 200;

/** Key of the learned RA channel reference in the conversations store (not a person id). */
const RA_CHANNEL_KEY = 'ra-channel';

export class RaChannelNotifier {
  constructor(
    private readonly deps: {
      adapter: CloudAdapter;
      appId: string;
      storage: Storage;
      engine: JourneyEngine;
      desk: RaDeskService;
      config: RaDeskConfig;
      logger: Logger;
    },
  ) {}

  /**
   * Remember the RA channel from a `conversationUpdate` in a team channel: the configured channel
   * (`RA_CHANNEL_ID`) when set, else the channel the bot was installed in.
   */
  async learn(activity: Partial<Activity>): Promise<void> {
    const cd = activity.channelData as { team?: { id?: string }; channel?: { id?: string } } | undefined;
    const conversationId = activity.conversation?.id;
    if (!cd?.team?.id || !conversationId || activity.conversation?.conversationType !== 'channel') return;
    // A reply thread's id is `<channel id>;messageid=...`: the channel is the part before it.
    const channelId = conversationId.split(';')[0]!;
    let team: RaTeam | undefined;
    if (this.deps.config.teams.some((t) => t.channel)) {
      team = this.deps.config.teams.find((t) => t.channel?.conversationId === channelId);
      if (!team) return;
    } else {
      const botAdded = (activity.membersAdded ?? []).some((m) => m.id === activity.recipient?.id);
      if (!botAdded) return;
      team = this.deps.config.teams[0]!;
    }
    // RA members added with the bot (or later): their Teams ids, for the case card's refresh.userIds.
    await this.deps.desk.rememberMembers((activity.membersAdded ?? []).map((m) => ({ aadObjectId: m.aadObjectId ?? null, channelUserId: m.id ?? null })));
    const reference = TurnContext.getConversationReference(activity) as Partial<ConversationReference>;
    const channelRef = { ...reference, conversation: { ...reference.conversation!, id: channelId } };
    const key = this.channelKey(team);
    const known = await this.deps.storage.conversations.get(key);
    await this.deps.storage.conversations.put({ personId: key, reference: JSON.parse(JSON.stringify(channelRef)) as Record<string, unknown>, updatedAt: new Date().toISOString() });
    this.deps.logger.info({ team: cd.team.id, raTeam: team.name }, 'RA channel reference stored');
    if (!known) {
      // First reference: post the cards of cases that could not be posted before (in the background; logged).
      void this.postUnposted().catch((err: unknown) => this.deps.logger.warn({ code: err instanceof AppError ? err.code : 'UNEXPECTED' }, 'RA channel: posting waiting case cards failed'));
    }
  }

  /**
   * Post the card of every active case that has none in the channel yet: first let the case's own pending
   * effects run (they post it), then post directly what is still missing (e.g. an effect given up on while
   * no channel was known).
   *
   * @returns how many cards were posted directly
   */
  private async postUnposted(): Promise<number> {
    let posted = 0;
    for (const c of await this.deps.storage.cases.listActive(MAX_REPOST)) {
      await this.deps.engine.drain(c.ref, 'ra-case');
      const rec = await this.deps.storage.journeys.get(journeyKey(c.ref, 'ra-case'));
      if (!rec || rec.ui.activityId) continue;
      await this.postCaseCard(c.ref);
      posted++;
    }
    return posted;
  }

  /** Where a team's learned channel reference is kept: the first team's under {@link RA_CHANNEL_KEY} (as before teams). */
  private channelKey(team: RaTeam): string {
    return team === this.deps.config.teams[0] ? RA_CHANNEL_KEY : `${RA_CHANNEL_KEY}:${team.name}`;
  }

  /** A team's channel reference, or null when none is known. */
  private async channelReference(team: RaTeam): Promise<Partial<ConversationReference> | null> {
    const learned = await this.deps.storage.conversations.get(this.channelKey(team));
    if (learned) return learned.reference as Partial<ConversationReference>;
    const c = team.channel;
    if (!c) return null;
    return { channelId: 'msteams', serviceUrl: c.serviceUrl, conversation: { id: c.conversationId, isGroup: true, conversationType: 'channel', name: 'RA' } };
  }

  /**
   * Post the case card to the RA channel, or update the posted one in place.
   *
   * @throws AppError `RA.NO_CHANNEL` when no channel is known (the effect is retried, e.g. after the bot is installed)
   */
  async postCaseCard(caseRef: string): Promise<void> {
    const rec = await this.deps.storage.journeys.get(journeyKey(caseRef, 'ra-case'));
    if (!rec) return;
    // The case's own team's channel (RA_TEAMS: one team per case).
    const ref = await this.channelReference(this.deps.desk.teamOf(decodeRaCase(rec)));
    if (!ref) throw new AppError('RA.NO_CHANNEL', 'no RA channel is known: set RA_CHANNEL_ID or install the bot in the RA team');
    const card = await this.deps.desk.card(caseRef, null);
    if (!card) return;
    await this.deps.adapter.continueConversationAsync(this.deps.appId, ref, async (ctx) => {
      const attachment = CardFactory.adaptiveCard(card);
      if (rec.ui.activityId) {
        await ctx.updateActivity({ type: 'message', id: rec.ui.activityId, attachments: [attachment] });
      } else {
        const r = await ctx.sendActivity({ attachments: [attachment], summary: `RA case ${caseRef}` });
        if (r?.id) await this.deps.engine.setCardActivity(caseRef, 'ra-case', rec.runId, r.id);
      }
    });
  }
}
