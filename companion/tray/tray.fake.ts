/** A tray that records what it was shown and lets a test click its items. */
import type { TrayPort, TrayStartOutcome } from './tray.port';
import type { TrayItemId, TrayItemView, TrayView } from './tray.view';

export class FakeTray implements TrayPort {
  view: TrayView | null = null;
  stopped = false;
  private onClick: ((id: TrayItemId) => void) | null = null;

  start(view: TrayView, onClick: (id: TrayItemId) => void): Promise<TrayStartOutcome> {
    this.view = view;
    this.onClick = onClick;
    return Promise.resolve({ shown: true });
  }

  update(view: TrayView): void {
    this.view = view;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  /** The item shown with this id (menus and submenus). */
  item(id: TrayItemId): TrayItemView {
    const all = (this.view?.items ?? []).flatMap((i) => [i, ...(i.items ?? [])]);
    const found = all.find((i) => i.id === id);
    if (!found) throw new Error(`no tray item ${id}`);
    return found;
  }

  /**
   * Click an item as a person would.
   *
   * @throws Error when the item is hidden or disabled (a person cannot click it)
   */
  click(id: TrayItemId): void {
    const item = this.item(id);
    if (item.hidden || !item.enabled) throw new Error(`tray item ${id} cannot be clicked (hidden or disabled)`);
    this.onClick?.(id);
  }
}
