/** The card a person sees when they first open a chat with the bot (install / members added). */
import type { AdaptiveCard } from './adaptive-card.types';
import { CARD_VERBS } from './card-actions';
import { adaptiveCard, execute, literal, paragraph, run } from './card-elements';

/**
 * Welcome card: a greeting and the four things the bot can do.
 *
 * @param input.displayName - the person's display name from Teams, shown literally (no markdown, no HTML)
 * @returns a schema 1.5 card with buttons `unlock.start`, `register.start`, `pair.help`, `help.show`
 */
export function welcomeCard(input: { displayName: string }): AdaptiveCard {
  const name = input.displayName.trim();
  return adaptiveCard(
    [
      literal(
        run(name.length > 0 ? 'Hello, ' : 'Hello', { size: 'Large', weight: 'Bolder' }),
        ...(name.length > 0 ? [run(name, { size: 'Large', weight: 'Bolder' })] : []),
      ),
      paragraph('I am Smartcard Assist. If your smartcard is locked, I can help you unlock it yourself, without calling your RA team.'),
      paragraph('Your passcode is only ever typed into the Smartcard Assist companion on your computer, never in Teams.', { isSubtle: true }),
      paragraph('What would you like to do?', { spacing: 'Medium' }),
    ],
    [
      execute(CARD_VERBS.UNLOCK_START, 'Unlock my smartcard', {}, { style: 'positive' }),
      execute(CARD_VERBS.REGISTER_START, 'Register for self-service', {}),
      execute(CARD_VERBS.PAIR_HELP, 'Pair this computer', {}),
      execute(CARD_VERBS.HELP_SHOW, 'Help', {}),
    ],
  );
}
