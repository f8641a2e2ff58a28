/**
 * The companion's ports to the person's desktop (issue #13): open the passcode
 * page in the default browser, and raise desktop notifications. Adapters:
 * `page-opener.adapter.ts` (xdg-open / open / rundll32) and
 * `notifier.adapter.ts` (notify-send / osascript); fakes for tests in
 * `desktop.fake.ts`.
 */

/** What an attempt to open the page did. */
export type OpenOutcome = { opened: true } | { opened: false; reason: string };

/** Opens a passcode page link in the person's browser. */
export interface PageOpener {
  /**
   * Open a link in the default browser (or the configured program).
   *
   * @param url - a passcode page link, `http://127.0.0.1:PORT/?t=TOKEN` (one-time; a secret until used:
   *   never logged). Anything else is refused.
   * @returns `opened`, or why not (the program is missing or failed); never throws
   */
  open(url: string): Promise<OpenOutcome>;
}

/** Why a notification is raised (the list of issue #13). */
export type NoticeKind = 'code_request' | 'passcode_request' | 'card_inserted' | 'unlocked' | 'link_lost' | 'link_back' | 'pairing_code';

/** One desktop notification. Text a person reads: "passcode", never "PIN"; never a secret. */
export interface Notice {
  kind: NoticeKind;
  title: string;
  body: string;
  /** When present, the notification offers "Open passcode page", which calls this. */
  onOpen?: () => void;
}

/** Raises desktop notifications. */
export interface DesktopNotifier {
  /**
   * Show a notification; returns at once (a click on its action comes later through `notice.onOpen`).
   * A desktop without a notification service drops it (logged); never throws.
   */
  notify(notice: Notice): void;
  /** Withdraw pending notifications' action waits (stop). */
  close(): void;
}
