/**
 * Cards the bot shows when it cannot do what was asked right now.
 */
import type { AdaptiveCard } from './adaptive-card.types';
import { adaptiveCard, execute, heading, paragraph } from './card-elements';

/**
 * "Try again shortly": the service could not reach its records (or another
 * passing fault). Nothing was lost; the button shows the journey's current card.
 *
 * @param input.journey - which journey the click belonged to, or null when unknown
 * @returns a schema 1.5 card with a `journey.show` button (or `help.show` when the journey is unknown)
 */
export function tryAgainShortlyCard(input: { journey: 'unlock' | 'registration' | null }): AdaptiveCard {
  return adaptiveCard(
    [
      heading('Smartcard Assist is busy', 'Warning'),
      paragraph('We could not reach our records just now. Nothing you have done so far was lost. Try again in a minute.'),
    ],
    [input.journey ? execute('journey.show', 'Try again', { journey: input.journey }) : execute('help.show', 'Help', {})],
  );
}
