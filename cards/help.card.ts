/** The help card: what the bot does and the commands a person can type. */
import type { AdaptiveCard } from './adaptive-card.types';
import { CARD_VERBS } from './card-actions';
import { adaptiveCard, execute, heading, paragraph } from './card-elements';

/** The typed commands the bot understands, as shown on the help card. */
export const HELP_COMMANDS = [
  { command: 'unlock', meaning: 'Unlock your smartcard if it is locked. You can also type "my card is locked".' },
  { command: 'register', meaning: 'Register for self-service unlock.' },
  { command: 'pair CODE', meaning: 'Pair this computer: send the code the Smartcard Assist companion shows, e.g. "pair K7QF-M2XD".' },
  { command: 'help', meaning: 'Show this help.' },
  { command: 'cancel', meaning: 'Stop what you are doing now.' },
] as const;

/**
 * Help card.
 *
 * @returns a schema 1.5 card listing the commands, with buttons `unlock.start` and `pair.help`
 */
export function helpCard(): AdaptiveCard {
  return adaptiveCard(
    [
      heading('How Smartcard Assist helps'),
      paragraph(
        'If your smartcard is locked after too many wrong passcodes, I can unlock it: you answer your security questions here, ' +
          'I email you an unlock code, and you enter the code and a new passcode in the Smartcard Assist companion on your computer.',
      ),
      paragraph('You can type these commands:', { spacing: 'Medium', weight: 'Bolder' }),
      { type: 'FactSet', facts: HELP_COMMANDS.map((c) => ({ title: c.command, value: c.meaning })) },
      paragraph('Never type your passcode in Teams. If self-service does not work for you, contact your RA team.', { isSubtle: true, spacing: 'Medium' }),
    ],
    [execute(CARD_VERBS.UNLOCK_START, 'Unlock my smartcard', {}, { style: 'positive' }), execute(CARD_VERBS.PAIR_HELP, 'Pair this computer', {})],
  );
}
