/**
 * What the local passcode page shows, and its server-rendered HTML: plain forms,
 * no script, no external resource (the CSP forbids both). Text a person reads
 * says "passcode", never "PIN".
 */
import { clockTime } from '../../common/clock-time';

/** The page's state; one variant per screen. */
export type PageView =
  | { state: 'starting' }
  /** Not paired yet: show the code to send to the bot in Teams. */
  | { state: 'pairing'; userCode: string; expiresAt: Date }
  /** Paired; nothing to do. `notice` is the last journey's closing message, if any. */
  | { state: 'idle'; personName: string | null; connected: boolean; notice: string | null }
  /**
   * The form: unlock code, new passcode twice. `error` says why the last try was refused;
   * `keepTypedCode` when the refusal was about the new passcode only, so the page puts the code
   * the person typed back in its field (the passcodes are never sent back to the browser).
   * `passcodeKept` after a wrong code: the companion holds the new passcode in its memory, so the
   * form asks for the code only (with a way to choose a different passcode).
   * `codeChannel` says where the code was sent, so the page says where to find it ("your text
   * message" or "your email"); absent = email (a bot from before issue #14).
   */
  | { state: 'awaiting_unlock'; codeExpiresAt: Date; codeChannel?: 'email' | 'sms'; error: string | null; keepTypedCode?: boolean; passcodeKept?: boolean }
  | { state: 'working'; step: 'checking_code' | 'unlocking' | 'checking_passcode' }
  /** Registration: the form for the current passcode. */
  | { state: 'awaiting_passcode'; error: string | null }
  /** Registration: the passcode verified on the card. */
  | { state: 'passcode_verified' }
  /** The card went away mid-unlock; `wrongCard` when another card is in the reader now. */
  | { state: 'card_removed'; wrongCard: boolean }
  | { state: 'done' }
  /** `title` defaults to the unlock wording. */
  | { state: 'error'; message: string; canRetry: boolean; title?: string };

export type PageState = PageView['state'];

/** Form field names of the unlock form. */
export const UNLOCK_FIELDS = { code: 'code', passcode: 'passcode', confirmation: 'confirmation' } as const;

/** Form actions of the unlock page, relative to the session's page path. */
export const UNLOCK_ACTIONS = { submit: 'unlock', changePasscode: 'change-passcode' } as const;

/** Form field names of the registration (current passcode) form. */
export const VERIFY_FIELDS = { passcode: 'current_passcode' } as const;

/** Name of the hidden field that carries the session's form token in every form. */
export const FORM_TOKEN_FIELD = 'form_token' as const;

/** What a rendered page needs besides the view: per-session values that live in the page only. */
export interface PageContext {
  /** The session's form token (secret, base64url), sent back in {@link FORM_TOKEN_FIELD} by every form. */
  formToken: string;
  /** The unlock code as the person typed it, to put back in its field (secret; only after a passcode refusal). */
  typedCode?: string | null;
}

/** Seconds between automatic reloads for screens that change by themselves; absent = no reload (a form is open). */
const REFRESH_SECONDS: Partial<Record<PageState, number>> = {
  starting: 2,
  pairing: 3,
  idle: 3,
  working: 2,
  card_removed: 2,
  done: 10,
  passcode_verified: 10,
};

/**
 * Escape text for HTML element content and double-quoted attributes.
 *
 * @param text - any text
 * @returns the text with `& < > " '` replaced by entities
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** `19:10 GMT` in this computer's zone: the project's one time format (common/clock-time.ts). */
function time(date: Date): string {
  return clockTime(date);
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.5}
h1{font-size:1.5rem}
.code{font-family:ui-monospace,monospace;font-size:2rem;letter-spacing:.15em;background:#f0f4f5;padding:.25rem .75rem;border-radius:.25rem}
label{display:block;font-weight:600;margin-top:1rem}
input{font-size:1.25rem;padding:.4rem;width:12rem;border:2px solid #4c6272;border-radius:.2rem}
.hint{color:#4c6272;font-size:.9rem;margin:.2rem 0}
button{margin-top:1.5rem;font-size:1.1rem;padding:.6rem 1.2rem;background:#007f3b;color:#fff;border:0;border-radius:.25rem;cursor:pointer}
button.secondary{margin-top:.75rem;background:#fff;color:#005eb8;border:2px solid #005eb8}
.alert{border-left:.4rem solid #d5281b;padding:.5rem 1rem;background:#fff4f4}
.ok{border-left:.4rem solid #007f3b;padding:.5rem 1rem;background:#f2fbf5}
.status{color:#4c6272}
`;

function hidden(context: PageContext): string {
  return `<input type="hidden" name="${FORM_TOKEN_FIELD}" value="${escapeHtml(context.formToken)}">`;
}

function body(view: PageView, context: PageContext): string {
  switch (view.state) {
    case 'starting':
      return `<h1>Smartcard Assist</h1><p class="status">Starting up&hellip;</p>`;
    case 'pairing':
      return [
        `<h1>Pair this computer</h1>`,
        `<p>In Microsoft Teams, send this message to Smartcard Assist:</p>`,
        `<p><span class="code" data-testid="pair-message">pair ${escapeHtml(view.userCode)}</span></p>`,
        `<p class="hint">The code works until ${escapeHtml(time(view.expiresAt))}. This page updates by itself once Teams has paired this computer.</p>`,
      ].join('\n');
    case 'idle':
      return [
        `<h1>Smartcard Assist</h1>`,
        view.notice ? `<p class="ok" role="status">${escapeHtml(view.notice)}</p>` : '',
        view.connected
          ? `<p>This computer is paired with Smartcard Assist${view.personName ? ` for ${escapeHtml(view.personName)}` : ''}. Nothing to do right now.</p>`
          : `<p class="status">Connecting to Smartcard Assist&hellip;</p>`,
        `<p class="hint">When you unlock your card in Teams, this page asks for your unlock code and a new passcode.</p>`,
      ].join('\n');
    case 'awaiting_unlock': {
      const codeInput = `<input id="code" name="${UNLOCK_FIELDS.code}" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="20"${
        view.keepTypedCode && context.typedCode ? ` value="${escapeHtml(context.typedCode)}"` : ''
      }>`;
      const codeFrom = view.codeChannel === 'sms' ? 'your text message' : 'your email';
      if (view.passcodeKept) {
        // The new passcode is held by the companion, never put back in the page: the code only.
        return [
          `<h1>Unlock your card</h1>`,
          view.error ? `<p class="alert" role="alert" data-testid="form-error">${escapeHtml(view.error)}</p>` : '',
          `<p class="ok" role="status" data-testid="passcode-kept">Your new passcode is kept: you do not need to type it again. Type the unlock code from ${codeFrom}.</p>`,
          `<p>The code works until ${escapeHtml(time(view.codeExpiresAt))}.</p>`,
          `<form method="post" action="${UNLOCK_ACTIONS.submit}">`,
          hidden(context),
          `<label for="code">Unlock code</label>`,
          codeInput,
          `<div><button type="submit">Unlock my card</button></div>`,
          `</form>`,
          `<form method="post" action="${UNLOCK_ACTIONS.changePasscode}">${hidden(context)}<button type="submit" class="secondary">Choose a different passcode</button></form>`,
        ].join('\n');
      }
      return [
        `<h1>Unlock your card</h1>`,
        view.error ? `<p class="alert" role="alert" data-testid="form-error">${escapeHtml(view.error)}</p>` : '',
        `<p>Type the unlock code from ${codeFrom}, then choose a new passcode for your card. The code works until ${escapeHtml(time(view.codeExpiresAt))}.</p>`,
        `<form method="post" action="${UNLOCK_ACTIONS.submit}">`,
        hidden(context),
        `<label for="code">Unlock code</label>`,
        codeInput,
        `<label for="passcode">New passcode</label>`,
        `<p class="hint" id="passcode-hint">6 to 8 digits. Not the same digit repeated, and not a run such as 123456 or 876543.</p>`,
        `<input id="passcode" name="${UNLOCK_FIELDS.passcode}" type="password" inputmode="numeric" autocomplete="new-password" aria-describedby="passcode-hint" required>`,
        `<label for="confirmation">Confirm new passcode</label>`,
        `<input id="confirmation" name="${UNLOCK_FIELDS.confirmation}" type="password" inputmode="numeric" autocomplete="new-password" required>`,
        `<div><button type="submit">Unlock my card</button></div>`,
        `</form>`,
      ].join('\n');
    }
    case 'working':
      switch (view.step) {
        case 'checking_code':
          return `<h1>Checking your unlock code&hellip;</h1><p>Keep your card in the reader.</p>`;
        case 'unlocking':
          return `<h1>Unlocking your card&hellip;</h1><p>Keep your card in the reader. This takes a few seconds.</p>`;
        case 'checking_passcode':
          return `<h1>Checking your passcode&hellip;</h1><p>Keep your card in the reader.</p>`;
      }
      return '';
    case 'awaiting_passcode':
      return [
        `<h1>Check your passcode</h1>`,
        view.error ? `<p class="alert" role="alert" data-testid="form-error">${escapeHtml(view.error)}</p>` : '',
        `<p>To register for self-service, show that your card works: type the passcode you use with your card now. It is checked on the card in your reader and is never sent anywhere.</p>`,
        `<form method="post" action="verify">`,
        hidden(context),
        `<label for="current_passcode">Current passcode</label>`,
        `<input id="current_passcode" name="${VERIFY_FIELDS.passcode}" type="password" inputmode="numeric" autocomplete="current-password" required>`,
        `<div><button type="submit">Check my passcode</button></div>`,
        `</form>`,
      ].join('\n');
    case 'passcode_verified':
      return `<h1>Your passcode is correct</h1><p class="ok" role="status">Your card and passcode work. Go back to Teams to carry on registering.</p>`;
    case 'card_removed':
      return [
        `<h1>Put your card back to finish</h1>`,
        view.wrongCard
          ? `<p class="alert" role="alert">The card in the reader is not the card you are unlocking. Put in the card you are unlocking.</p>`
          : `<p>Your card was taken out before the unlock finished. Put it back in the reader and the unlock will carry on by itself.</p>`,
      ].join('\n');
    case 'done':
      return `<h1>Your card is unlocked</h1><p class="ok" role="status">Your card is unlocked. Use your new passcode from now on.</p>`;
    case 'error':
      return [
        `<h1>${escapeHtml(view.title ?? 'Your card is not unlocked yet')}</h1>`,
        `<p class="alert" role="alert" data-testid="error">${escapeHtml(view.message)}</p>`,
        view.canRetry ? `<form method="post" action="retry">${hidden(context)}<button type="submit">Try again</button></form>` : '',
      ].join('\n');
  }
}

/**
 * Render a whole page. Form actions are relative (`unlock`, `verify`, `retry`): the page lives
 * under its session's path scope `/p/<scope>/`, and its forms post there.
 *
 * @param view - what to show
 * @param context - the session's form token, and the typed unlock code to keep (if any)
 * @returns an HTML5 document (UTF-8) with inline style only
 */
export function renderPage(view: PageView, context: PageContext): string {
  const refresh = REFRESH_SECONDS[view.state];
  return [
    '<!doctype html>',
    '<html lang="en-GB">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    refresh !== undefined ? `<meta http-equiv="refresh" content="${refresh}">` : '',
    '<title>Smartcard Assist companion</title>',
    `<style>${STYLE}</style>`,
    '</head>',
    `<body data-state="${view.state}">`,
    body(view, context),
    '</body>',
    '</html>',
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/**
 * A bare page for a refused request (wrong host, no session, ...).
 *
 * @param title - heading
 * @param message - one sentence saying what to do
 */
export function renderNotice(title: string, message: string): string {
  return [
    '<!doctype html>',
    '<html lang="en-GB"><head><meta charset="utf-8"><title>Smartcard Assist companion</title>',
    `<style>${STYLE}</style></head>`,
    `<body data-state="refused"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`,
  ].join('\n');
}

/**
 * The answer to a spent link: a same-origin meta refresh to the session's page. A redirect would
 * carry on the navigation that opened the link, and if that came from another site the
 * SameSite=Strict session cookie would not be sent with it; a navigation this page starts itself
 * is same-site.
 *
 * @param pagePath - the session's page, `/p/<scope>/` (URL-safe characters only)
 */
export function renderContinue(pagePath: string): string {
  const target = escapeHtml(pagePath);
  return [
    '<!doctype html>',
    `<html lang="en-GB"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${target}">`,
    `<title>Smartcard Assist companion</title><style>${STYLE}</style></head>`,
    `<body data-state="continue"><h1>Smartcard Assist</h1><p><a href="${target}">Open the companion page</a></p></body></html>`,
  ].join('\n');
}
