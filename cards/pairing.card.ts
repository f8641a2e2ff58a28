/** Cards about pairing the Smartcard Assist companion with a person's Teams account (RFC 8628 pattern). */
import type { AdaptiveCard, CardElement } from './adaptive-card.types';
import { CARD_VERBS } from './card-actions';
import { adaptiveCard, execute, heading, literal, paragraph, run } from './card-elements';

/** Example pairing code shown in instructions (format `XXXX-XXXX`). */
export const EXAMPLE_PAIRING_CODE = 'K7QF-M2XD' as const;

/** Minutes a pairing code works, as said on the card (the companion's code is valid 10 minutes). */
export const PAIRING_CODE_MINUTES = 10;

function pairingSteps(): CardElement[] {
  return [
    paragraph('1. Open the Smartcard Assist companion on this computer (its icon is in the system tray).'),
    paragraph(`2. It shows a pairing code like ${EXAMPLE_PAIRING_CODE}.`, { spacing: 'Small' }),
    paragraph(`3. Send "pair ${EXAMPLE_PAIRING_CODE}" here, with your own code.`, { spacing: 'Small' }),
    paragraph(`The code works for ${PAIRING_CODE_MINUTES} minutes. If it runs out, the companion shows a new one.`, { isSubtle: true }),
  ];
}

/**
 * How to pair this computer.
 *
 * @param input.companionConnected - true when a companion paired with this person is connected now
 * @param input.workstation - that companion's workstation name, shown literally
 * @returns a schema 1.5 card; when connected it offers `unlock.start`, otherwise `help.show`
 */
export function pairHelpCard(input: { companionConnected: boolean; workstation?: string }): AdaptiveCard {
  if (input.companionConnected) {
    const where = input.workstation?.trim();
    return adaptiveCard(
      [
        heading('Your companion is connected', 'Good'),
        where
          ? literal('The Smartcard Assist companion on ', run(where, { weight: 'Bolder' }), ' is paired with your account and connected.')
          : literal('A Smartcard Assist companion is paired with your account and connected.'),
        paragraph('To pair a different computer:', { spacing: 'Medium' }),
        ...pairingSteps(),
      ],
      [execute(CARD_VERBS.UNLOCK_START, 'Unlock my smartcard', {}, { style: 'positive' }), execute(CARD_VERBS.HELP_SHOW, 'Help', {})],
    );
  }
  return adaptiveCard(
    [
      heading('Pair this computer'),
      paragraph('To unlock your card I need the Smartcard Assist companion on the computer where your card reader is. Pair it once:'),
      ...pairingSteps(),
    ],
    [execute(CARD_VERBS.HELP_SHOW, 'Help', {})],
  );
}

/**
 * Outcome of a `pair CODE` message.
 *
 * @param input - `{ ok: true, workstation }` (the paired workstation's name) or `{ ok: false, message }`
 *   (why pairing failed, in plain words); both are shown literally
 * @returns a schema 1.5 card: on success with `unlock.start`, on failure with `pair.help`
 */
export function pairingResultCard(input: { ok: true; workstation: string } | { ok: false; message: string }): AdaptiveCard {
  if (input.ok) {
    return adaptiveCard(
      [
        heading('This computer is paired', 'Good'),
        literal('The Smartcard Assist companion on ', run(input.workstation, { weight: 'Bolder' }), ' is now paired with your Teams account.'),
        paragraph('If your smartcard is locked, you can unlock it now.'),
      ],
      [execute(CARD_VERBS.UNLOCK_START, 'Unlock my smartcard', {}, { style: 'positive' })],
    );
  }
  return adaptiveCard(
    [heading('Pairing did not work', 'Attention'), literal(input.message)],
    [execute(CARD_VERBS.PAIR_HELP, 'How to pair', {})],
  );
}
