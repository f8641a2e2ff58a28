/**
 * What the person sees in Teams for each unlock state: a pure mapping from the
 * journey to an Adaptive Card. A stale or repeated click is answered with this
 * card for the current state.
 */
import type { AdaptiveCard } from '../../../cards';
import { maskEmail } from '../../../cards';
import {
  unlockCheckingCard,
  unlockCodeSentCard,
  unlockDoneCard,
  unlockEndedCard,
  unlockLockedOutCard,
  unlockProblemCard,
  unlockQuestionsCard,
  unlockWorkingCard,
} from '../../../cards';
import { welcomeCard } from '../../../cards';
import { maskMobile } from '../../../cards/mask-mobile';
import { unlockChooseChannelCard } from '../../../cards/unlock.card';
import { clockTime } from '../../../common/clock-time';
import { questionText } from '../registration/question-bank';
import { attemptsLeft, type CardProblem, type UnlockJourney, type UnlockRules } from './unlock.journey';

export interface ViewContext {
  displayName: string;
  email: string;
  timeZone: string;
  raContact: string;
  rules: UnlockRules;
  /** Name of the paired workstation, when known. */
  workstation: string | null;
}

const PROBLEMS: Record<CardProblem, { title: string; message: (v: ViewContext) => string; canRetry: boolean; tone?: 'information' }> = {
  not_registered: {
    title: 'You are not registered for self-service yet',
    message: (v) => `Self-service unlock needs you to register first: say "register" while your card still works. Until then, ${v.raContact} can unlock your card.`,
    canRetry: false,
  },
  no_companion: {
    title: 'Pair this computer first',
    message: () =>
      'Unlocking needs the Smartcard Assist companion on the computer with your card reader. Open the companion: it shows a pairing code like K7QF-M2XD. Send "pair" and that code here, then try again.',
    canRetry: true,
  },
  companion_offline: {
    title: 'The companion is not connected',
    message: (v) => `The Smartcard Assist companion${v.workstation ? ` on ${v.workstation}` : ''} is not answering. Check it is running on the computer with your card reader, then try again.`,
    canRetry: true,
  },
  no_card: {
    title: 'No card in the reader',
    message: () => 'Put your smartcard in the reader, then try again.',
    canRetry: true,
  },
  wrong_card: {
    title: 'This is not your registered card',
    message: (v) => `The card in the reader is not the one registered to you. Put your own card in the reader and try again. If your card has been replaced, contact ${v.raContact}.`,
    canRetry: true,
  },
  not_blocked: {
    title: 'Your card is not locked',
    message: (v) => `The card in the reader still accepts its passcode, so there is nothing to unlock. If you have forgotten your passcode, contact ${v.raContact}.`,
    canRetry: true,
    // Not an error: the card works (issue #14).
    tone: 'information',
  },
  card_unreadable: {
    title: 'The card could not be read',
    message: () => 'The companion could not read the card. Take it out, put it back in firmly, and try again.',
    canRetry: true,
  },
  no_puk: {
    title: 'Your card is not enrolled for self-unlock',
    message: (v) => `Your card cannot be unlocked from here yet. Contact ${v.raContact}.`,
    canRetry: false,
  },
  not_enrolled: {
    title: 'This card is not set up for you to unlock',
    message: (v) => `The card in the reader is not one your card records name you as the holder of, so it cannot be unlocked from here. If it is your card, contact ${v.raContact}.`,
    canRetry: true,
  },
  no_contact: {
    title: 'We have nowhere to send a code',
    message: (v) => `Your profile has no approved work email and no UK mobile number, so we cannot send you an unlock code. Contact ${v.raContact}: they can unlock your card or update your details.`,
    canRetry: false,
  },
  certificates_expired: {
    title: 'Your card needs renewing',
    message: (v) => `The certificates on your card have expired, so it cannot be used to log in and we cannot unlock it here. Your card needs renewing by your RA team. We have asked them to help; they will contact you. If you need to, contact ${v.raContact}.`,
    canRetry: false,
  },
  too_many_codes: {
    title: 'Too many codes in the last hour',
    message: (v) => `You have been sent ${v.rules.maxCodesPerHour} unlock codes in the last hour, the most we send. Say "unlock" again in an hour, or contact ${v.raContact}.`,
    canRetry: false,
  },
};

/**
 * `09:45 GMT` in the configured zone: the project's one time format ({@link clockTime}).
 *
 * @param iso - ISO 8601 instant
 * @param timeZone - IANA zone (TIME_ZONE)
 * @throws RangeError for an invalid instant or zone
 */
export function timeText(iso: string, timeZone: string): string {
  return clockTime(iso, timeZone);
}

/**
 * Render the card for the journey's current state.
 *
 * @param journey - the unlock journey (state, run id, counters)
 * @param view - person and deployment facts the card shows
 * @returns an Adaptive Card (schema 1.5)
 */
export function renderUnlockCard(journey: UnlockJourney, view: ViewContext): AdaptiveCard {
  const s = journey.state;
  const runId = journey.runId;
  const step = String(s.step);
  switch (s.phase) {
    case 'idle':
      return welcomeCard({ displayName: view.displayName });
    case 'checking_card':
      return unlockCheckingCard({ runId, step, message: 'Checking the card in your reader…' });
    case 'card_problem': {
      const p = PROBLEMS[s.problem];
      let message = p.message(view);
      if (s.problem === 'certificates_expired' && s.caseRef) {
        const when = s.expiredAt ? ` They expired on ${dateText(s.expiredAt, view.timeZone)}.` : '';
        message = `The certificates on your card have expired, so it cannot be used to log in and we cannot unlock it here.${when} Your card needs renewing: we have asked your RA team to renew it, and your case is ${s.caseRef}. They will contact you; quote the case if you contact ${view.raContact}.`;
      }
      return unlockProblemCard({ runId, step, title: p.title, message, canRetry: p.canRetry, ...(p.tone ? { tone: p.tone } : {}) });
    }
    case 'answering':
      return unlockQuestionsCard({
        runId,
        step,
        questions: s.questionIds.map((id) => ({ id, text: questionText(id) ?? 'Security question' })),
        attemptsLeft: attemptsLeft(journey, view.rules),
        ...(s.lastResult === 'wrong' ? { error: 'One or more answers did not match. Check them and try again.' } : {}),
      });
    case 'checking_answers':
      return unlockWorkingCard({ runId, step, message: 'Checking your answers…' });
    case 'code_sent': {
      const assist = journey.assist ?? null;
      return unlockCodeSentCard({
        runId,
        step,
        maskedEmail: maskEmail(view.email),
        expiresAtText: timeText(s.code.expiresAt, view.timeZone),
        minutes: Math.round(view.rules.codeTtlMs / 60_000),
        ...(assist ? { note: `Your RA team confirmed who you are in person (case ${assist.caseRef}), so there are no security questions.` } : {}),
        ...(s.code.channel === 'sms' && s.code.to ? { maskedMobile: maskMobile(s.code.to) } : {}),
        // Issue #13: the companion said how it brought its page to the person; 'none' or unknown keeps the general line.
        ...(s.page === 'opened' || s.page === 'notified' ? { page: { shown: s.page, workstation: view.workstation } } : {}),
      });
    }
    case 'choosing_channel':
      return unlockChooseChannelCard({ runId, step, maskedEmail: maskEmail(s.email), maskedMobile: maskMobile(s.mobile) });
    case 'paused':
      return unlockEndedCard({
        title: 'Paused while your RA team helps',
        message: `Your RA team has your case ${s.caseRef}. What you had done is kept: if they start an assisted unlock, you carry on from there without the security questions. To carry on by yourself instead, start again.`,
      });
    case 'unblocking':
      return unlockWorkingCard({
        runId,
        step,
        message: s.interrupted
          ? 'Your code was accepted, but the card was taken out before it was unlocked. Put it back in the reader: the companion will finish.'
          : 'Code accepted. The companion is setting your new passcode on the card…',
      });
    case 'done':
      return unlockDoneCard({ at: timeText(s.at, view.timeZone), ...(view.workstation ? { workstation: view.workstation } : {}) });
    case 'locked_out':
      return unlockLockedOutCard({ caseRef: s.caseRef });
    case 'ended':
      return unlockEndedCard({
        title: s.reason === 'cancelled' ? 'Unlock cancelled' : s.reason === 'expired' ? 'Unlock timed out' : 'Unlock stopped',
        message: `${s.detail} Say "unlock" to start again.`,
      });
  }
}

/** `5 December 2026` in the configured zone (dates of certificate expiry). */
function dateText(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone }).format(new Date(iso));
}
