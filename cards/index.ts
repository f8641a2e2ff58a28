/** Public surface of `cards/`: builders, card-action parsing and types. Imports nothing outside `cards/`. */
export * from './adaptive-card.types';
export * from './card-actions';
export { maskEmail } from './mask-email';
export { welcomeCard } from './welcome.card';
export { helpCard } from './help.card';
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
  type CardCheckState,
} from './register.card';
export { pairHelpCard, pairingResultCard } from './pairing.card';
export {
  unlockCheckingCard,
  unlockProblemCard,
  unlockQuestionsCard,
  unlockCodeSentCard,
  unlockWorkingCard,
  unlockDoneCard,
  unlockLockedOutCard,
  unlockEndedCard,
} from './unlock.card';
export { raCaseCard, type RaCaseCardInput } from './ra-case.card';
export { usageReportCard } from './usage-report.card';
export { helpdeskFormCard, helpdeskCaseCard, helpdeskRefusedCard } from './helpdesk.card';
