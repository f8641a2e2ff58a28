/** Public surface of `cards/`: builders, card-action parsing and types. Imports nothing outside `cards/`. */
export * from './adaptive-card.types';
export * from './card-actions';
export { literalText, cardAttachment, ADAPTIVE_CARD_CONTENT_TYPE } from './card-elements';
export { maskEmail, MASK_CHAR } from './mask-email';
export { welcomeCard } from './welcome.card';
export { helpCard, HELP_COMMANDS } from './help.card';
export { tryAgainShortlyCard } from './service.card';
export {
  registerComingSoonCard,
  registerContactCard,
  registerCardCheckCard,
  registerQuestionsCard,
  registerConfirmEmailCard,
  registerCodeCard,
  registerDoneCard,
  registerEndedCard,
  registerProblemCard,
  type BankQuestion,
  type CardCheckState,
  type ContactPrefill,
} from './register.card';
export { pairHelpCard, pairingResultCard, EXAMPLE_PAIRING_CODE, PAIRING_CODE_MINUTES } from './pairing.card';
export {
  unlockCheckingCard,
  unlockProblemCard,
  unlockQuestionsCard,
  unlockCodeSentCard,
  unlockWorkingCard,
  unlockDoneCard,
  unlockLockedOutCard,
  unlockEndedCard,
  QUESTIONS_PER_ATTEMPT,
  type RunStep,
} from './unlock.card';
