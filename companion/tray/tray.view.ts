/**
 * What the tray icon shows, worked out from the companion's state (issue #13):
 * a pure function of the runtime's snapshot and the readers, so it is tested
 * without a desktop. The menu has a fixed shape (the tray program updates
 * items in place): a status line, the pairing code, open passcode page,
 * choose reader (any, then {@link READER_SLOTS} reader slots), unpair, quit.
 */
import { clockTime } from '../../common/clock-time';
import type { CompanionSnapshot } from '../companion.runtime';
import type { TrayIconName } from './tray-icons';

/** How many readers the "Choose reader" menu lists (more are reachable with "Any reader"). */
export const READER_SLOTS = 8;

/** Menu item identities: what a click means. `reader:N` is the N-th reader listed. */
export type TrayItemId = 'status' | 'pairing_code' | 'open_page' | 'choose_reader' | 'reader_any' | `reader:${number}` | 'unpair' | 'quit';

/** One menu item as shown. */
export interface TrayItemView {
  id: TrayItemId;
  title: string;
  tooltip: string;
  enabled: boolean;
  checked: boolean;
  hidden: boolean;
  items?: TrayItemView[];
}

/** The icon, its tooltip and its menu. */
export interface TrayView {
  icon: TrayIconName;
  tooltip: string;
  items: TrayItemView[];
}

/** The state in words, for the tooltip and the first menu line (a person reads it). */
export function stateText(snapshot: CompanionSnapshot): string {
  const pairing = snapshot.pairing.kind === 'paired' ? (snapshot.pairing.personName ? `Paired with ${snapshot.pairing.personName}` : 'Paired') : 'Not paired';
  const link = snapshot.link === 'up' ? 'connected' : 'not connected';
  const card = { unknown: 'card not read yet', none: 'no card', ok: 'card OK', locked: 'card locked' }[snapshot.card.kind];
  return `${pairing} · ${link} · ${card}`;
}

/** The icon for a state: grey unless paired and connected; then blue (no card), green (card OK), red (locked). */
function iconFor(snapshot: CompanionSnapshot): TrayIconName {
  if (snapshot.pairing.kind !== 'paired' || snapshot.link !== 'up') return 'grey';
  if (snapshot.card.kind === 'locked') return 'red';
  if (snapshot.card.kind === 'ok') return 'green';
  return 'blue';
}

const item = (id: TrayItemId, title: string, tooltip: string, more: Partial<Omit<TrayItemView, 'id' | 'title' | 'tooltip'>> = {}): TrayItemView => ({
  id,
  title,
  tooltip,
  enabled: true,
  checked: false,
  hidden: false,
  ...more,
});

/**
 * The tray's view of the companion now.
 *
 * @param snapshot - from `CompanionRuntime.snapshot()`
 * @param readers - reader names present now, in the port's order
 * @param chosen - the reader chosen in the menu; null = any reader (the one that holds a card)
 * @returns icon, tooltip and the menu (always the same items; unused ones hidden)
 */
export function trayView(snapshot: CompanionSnapshot, readers: readonly string[], chosen: string | null): TrayView {
  const state = stateText(snapshot);
  const pairing = snapshot.pairing;
  const pairingItem =
    pairing.kind === 'paired'
      ? item('pairing_code', 'Pairing code', 'This computer is paired', { hidden: true, enabled: false })
      : pairing.code
        ? item('pairing_code', `Pairing code: ${pairing.code.userCode} (send "pair ${pairing.code.userCode}" in Teams)`, `Valid until ${clockTime(pairing.code.expiresAt)}`)
        : item('pairing_code', 'Pairing code: waiting for Smartcard Assist', 'Smartcard Assist has not given a code yet', { enabled: false });
  // The chosen reader is listed even while it is unplugged, so the choice stays visible.
  const listed = chosen !== null && !readers.includes(chosen) ? [chosen, ...readers] : [...readers];
  const slots = Array.from({ length: READER_SLOTS }, (_, i) => {
    const name = listed[i];
    return item(`reader:${i}`, name ?? '', name ? 'Use only this reader' : '', { hidden: name === undefined, checked: name !== undefined && name === chosen });
  });
  return {
    icon: iconFor(snapshot),
    tooltip: `Smartcard Assist: ${state}`,
    items: [
      item('status', state, 'What the Smartcard Assist companion is doing', { enabled: false }),
      pairingItem,
      item('open_page', 'Open passcode page', 'Open the passcode page in your browser'),
      item('choose_reader', 'Choose reader', 'Which card reader to use', {
        items: [item('reader_any', 'Any reader (the one that holds a card)', 'Use the reader that holds a card', { checked: chosen === null }), ...slots],
      }),
      item('unpair', 'Unpair this computer', snapshot.link === 'up' ? 'Revoke this computer\'s pairing with Smartcard Assist' : 'Needs the connection to Smartcard Assist', {
        hidden: pairing.kind !== 'paired',
        enabled: snapshot.link === 'up',
      }),
      item('quit', 'Quit', 'Stop the Smartcard Assist companion'),
    ],
  };
}
