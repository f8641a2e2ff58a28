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

/**
 * What a person is told when their stored journey cannot be read (a malformed record,
 * `JOURNEY.STATE_INVALID`): trying again cannot help, so it names who can.
 *
 * @param journey - the journey's name as a person reads it (`unlock`, `registration`)
 * @param raContact - who to contact (the `RA_CONTACT` setting)
 * @returns one sentence pair, plain text
 */
export function journeyUnreadableText(journey: 'unlock' | 'registration', raContact: string): string {
  return `Your ${journey} could not be read from our records, so trying it again will not help. Please contact ${raContact}: they can look at it and set it right.`;
}

/**
 * The card for {@link journeyUnreadableText}: no retry button, only help.
 *
 * @param input.journey - which journey could not be read
 * @param input.raContact - who to contact (the `RA_CONTACT` setting)
 * @returns a schema 1.5 card with a `help.show` button
 */
export function journeyUnreadableCard(input: { journey: 'unlock' | 'registration'; raContact: string }): AdaptiveCard {
  return adaptiveCard([heading(`Your ${input.journey} could not be read`, 'Warning'), paragraph(journeyUnreadableText(input.journey, input.raContact))], [execute('help.show', 'Help', {})]);
}
