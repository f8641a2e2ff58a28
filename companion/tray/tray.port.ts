/**
 * The tray icon as a port (issue #13): the controller (`tray.controller.ts`)
 * shows a {@link TrayView} and hears clicks; the adapter
 * (`systray.adapter.ts`, on the `systray2` package's tray program) draws it;
 * `tray.fake.ts` records it for tests.
 */
import type { TrayItemId, TrayView } from './tray.view';

/** What starting the tray did. */
export type TrayStartOutcome = { shown: true } | { shown: false; reason: string };

export interface TrayPort {
  /**
   * Show the icon and its menu.
   *
   * @param view - the first view
   * @param onClick - called with the item's id on every click of an enabled item
   * @returns `shown`, or why not (no tray program for this platform, it could not start, no tray host
   *   answered in time); never throws
   */
  start(view: TrayView, onClick: (id: TrayItemId) => void): Promise<TrayStartOutcome>;
  /** Show a new view (only what changed is sent). */
  update(view: TrayView): void;
  /** Remove the icon and end the tray program. */
  stop(): Promise<void>;
}
