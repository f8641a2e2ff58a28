/** Cards of the registration journey (self-registration is a later issue). */
import type { AdaptiveCard } from './adaptive-card.types';
import { CARD_VERBS } from './card-actions';
import { adaptiveCard, execute, heading, paragraph } from './card-elements';

/**
 * "Coming soon" answer to `register.start`.
 *
 * @returns a schema 1.5 card with a `help.show` button
 */
export function registerComingSoonCard(): AdaptiveCard {
  return adaptiveCard(
    [
      heading('Registration is coming soon'),
      paragraph('Soon you will be able to register for self-service unlock here: your contact details, proof that your card works, and your security questions.'),
      paragraph('Until then, your RA team can register you.'),
    ],
    [execute(CARD_VERBS.HELP_SHOW, 'Help', {})],
  );
}
