/**
 * The tray icon on the `systray2` package (issue #13), whose native tray
 * program ships inside the npm package (`traybin/`: Linux GTK 3 with
 * AppIndicator, falling back to an XEmbed icon; macOS; Windows): nothing is
 * downloaded at install or run time. The companion talks to it over its
 * standard input and output (JSON lines); see {@link SystrayTray}.
 *
 * The package's own program file is not executable as published and may sit
 * in a read-only folder, so the adapter copies it once into the companion's
 * data directory (`<dataDir>/tray/<version>/`, 0700) and runs that copy. A
 * packaged companion (`npm run package:companion`) finds the program in a
 * `traybin/` folder beside its executable.
 *
 * Linux needs `libayatana-appindicator3-1` (Debian 12; it provides the
 * `libappindicator3.so.1` the program links) and a tray host in the session.
 */
import { chmod, copyFile, mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Logger } from '../../common/logger';
import type { TrayPort, TrayStartOutcome } from './tray.port';
import { icoFromPng, TRAY_ICONS, type TrayIconName } from './tray-icons';
import type { TrayItemId, TrayItemView, TrayView } from './tray.view';

/**
 * The systray2 version pinned in package.json: systray2 runs its program from `<copyDir>/<its version>/`,
 * also when bundled into a packaged companion, where its package.json cannot be read at run time.
 */
export const SYSTRAY_VERSION = '2.1.4';

/** How long the tray program may take to say it is ready, ms. */
const READY_TIMEOUT_MS = 15_000;

/** The tray program's file name per platform (the package's release builds). */
function programName(platform: NodeJS.Platform): string | null {
  if (platform === 'linux') return 'tray_linux_release';
  if (platform === 'darwin') return 'tray_darwin_release';
  if (platform === 'win32') return 'tray_windows_release.exe';
  return null;
}

/** Shape of systray2's menu items (its typings), with our id carried along. */
interface MenuItem {
  title: string;
  tooltip: string;
  checked?: boolean;
  enabled?: boolean;
  hidden?: boolean;
  items?: MenuItem[];
  /** Ours: which item this is (systray2 hands the same object back on a click). */
  trayId?: TrayItemId;
}
interface SysTrayInstance {
  ready(): Promise<void>;
  onClick(listener: (action: { item: MenuItem }) => void): Promise<unknown>;
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  sendAction(action: { type: 'update-item'; item: MenuItem } | { type: 'update-menu'; menu: { icon: string; title: string; tooltip: string; items: MenuItem[] } }): Promise<unknown>;
  kill(exitNode?: boolean): Promise<void>;
  readonly process: { stderr: NodeJS.ReadableStream | null; stdin: NodeJS.WritableStream | null; exitCode: number | null; signalCode: string | null; kill(signal?: NodeJS.Signals): boolean } | null;
}
type SysTrayClass = new (conf: { menu: { icon: string; title: string; tooltip: string; items: MenuItem[] }; debug?: boolean; copyDir?: string }) => SysTrayInstance;

/** Where the package keeps its tray programs: beside a packaged executable, else in node_modules. */
function packagedProgramDirs(): string[] {
  const dirs = [join(dirname(process.execPath), 'traybin')];
  try {
    dirs.unshift(join(dirname(createRequire(import.meta.url).resolve('systray2/package.json')), 'traybin'));
  } catch {
    // Not installed as a package (a packaged companion): the folder beside the executable.
  }
  return dirs;
}

/** The tray icon drawn by systray2's program. */
export class SystrayTray implements TrayPort {
  private tray: SysTrayInstance | null = null;
  private items = new Map<TrayItemId, MenuItem>();
  private top: MenuItem[] = [];
  private icon: TrayIconName | null = null;
  private tooltip = '';

  /**
   * @param options.dataDir - the companion's data directory (the program's copy goes under `tray/`)
   * @param options.logger - non-secret facts only
   * @param options.platform - default `process.platform`
   */
  constructor(private readonly options: { dataDir: string; logger: Logger; platform?: NodeJS.Platform }) {}

  async start(view: TrayView, onClick: (id: TrayItemId) => void): Promise<TrayStartOutcome> {
    const platform = this.options.platform ?? process.platform;
    const name = programName(platform);
    if (!name) return { shown: false, reason: `no tray program for ${platform}` };
    let copyDir: string;
    try {
      copyDir = await this.placeProgram(name);
    } catch (err) {
      return { shown: false, reason: `tray program not available (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    const mod = (await import('systray2')) as unknown as { default: SysTrayClass | { default: SysTrayClass } };
    const SysTray: SysTrayClass = typeof mod.default === 'function' ? mod.default : mod.default.default;

    this.top = view.items.map((i) => this.menuItem(i));
    this.icon = view.icon;
    this.tooltip = view.tooltip;
    let tray: SysTrayInstance;
    try {
      tray = new SysTray({ menu: { icon: this.iconData(view.icon), title: '', tooltip: view.tooltip, items: this.top }, debug: false, copyDir });
    } catch (err) {
      return { shown: false, reason: `tray program could not start (${err instanceof Error ? err.message : 'error'})` };
    }
    const ready = await new Promise<true | string>((resolve) => {
      const timer = setTimeout(() => resolve('the tray program did not answer in time'), READY_TIMEOUT_MS);
      tray.ready().then(
        () => {
          clearTimeout(timer);
          resolve(true);
        },
        (err: unknown) => {
          clearTimeout(timer);
          resolve(`the tray program could not start (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        },
      );
      // A program that exits before it is ready (no display, a missing library) never resolves ready();
      // systray2 spawns it after an await, so its process appears a little later.
      const watch = setInterval(() => {
        const child = tray.process;
        if (!child) return;
        clearInterval(watch);
        const ended = (code: number | null, signal: string | null): void => {
          clearTimeout(timer);
          resolve(`the tray program ended (exit ${String(code ?? signal)})`);
        };
        // It may have ended already (before this listener): its exit event is gone then.
        if (child.exitCode !== null || child.signalCode !== null) ended(child.exitCode, child.signalCode);
        else tray.onExit(ended);
      }, 20);
      setTimeout(() => clearInterval(watch), READY_TIMEOUT_MS).unref();
    });
    if (ready !== true) {
      // systray2's kill() waits for an exit that may have happened already: end it directly.
      const child = tray.process;
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return { shown: false, reason: ready };
    }
    this.tray = tray;
    // Read what GTK writes on its standard error, so a full pipe never stalls the program; a program that
    // died between an update and its exit event must not take the companion down with a write error (EPIPE).
    tray.process?.stderr?.on('data', () => undefined);
    tray.process?.stdin?.on('error', (err: NodeJS.ErrnoException) => this.options.logger.warn({ errorCode: err.code ?? null }, 'could not write to the tray program'));
    tray.onExit((code, signal) => {
      if (this.tray === tray) this.options.logger.warn({ code, signal }, 'the tray program ended');
      this.tray = null;
    });
    void tray.onClick((action) => {
      const id = action.item.trayId;
      if (id) onClick(id);
    });
    return { shown: true };
  }

  update(view: TrayView): void {
    const tray = this.tray;
    if (!tray) return;
    if (view.icon !== this.icon || view.tooltip !== this.tooltip) {
      this.icon = view.icon;
      this.tooltip = view.tooltip;
      void tray.sendAction({ type: 'update-menu', menu: { icon: this.iconData(view.icon), title: '', tooltip: view.tooltip, items: this.top } });
    }
    const all = view.items.flatMap((i) => [i, ...(i.items ?? [])]);
    for (const next of all) {
      const item = this.items.get(next.id);
      if (!item) continue;
      if (item.title.replace(/ \(√\)$/, '') === next.title && item.tooltip === next.tooltip && item.enabled === next.enabled && item.checked === next.checked && item.hidden === next.hidden) continue;
      Object.assign(item, { title: next.title, tooltip: next.tooltip, enabled: next.enabled, checked: next.checked, hidden: next.hidden });
      void tray.sendAction({ type: 'update-item', item });
    }
  }

  async stop(): Promise<void> {
    const tray = this.tray;
    this.tray = null;
    if (!tray) return;
    // Ask it to exit; one that does not answer within 3 s is ended.
    const asked = await Promise.race([tray.kill(false).then(() => true, () => false), new Promise<false>((r) => setTimeout(() => r(false), 3000).unref())]);
    if (!asked) tray.process?.kill('SIGKILL');
  }

  private menuItem(view: TrayItemView): MenuItem {
    const item: MenuItem = {
      title: view.title,
      tooltip: view.tooltip,
      enabled: view.enabled,
      checked: view.checked,
      hidden: view.hidden,
      trayId: view.id,
      ...(view.items ? { items: view.items.map((i) => this.menuItem(i)) } : {}),
    };
    this.items.set(view.id, item);
    return item;
  }

  private iconData(name: TrayIconName): string {
    const png = TRAY_ICONS[name];
    return (this.options.platform ?? process.platform) === 'win32' ? icoFromPng(Buffer.from(png, 'base64'), 22).toString('base64') : png;
  }

  /**
   * Copy the package's tray program to `<dataDir>/tray/<systray2 version>/` (0700) unless it is there.
   *
   * @returns the folder to give systray2 as `copyDir` (it adds the version)
   */
  private async placeProgram(name: string): Promise<string> {
    const copyDir = join(this.options.dataDir, 'tray');
    const target = join(copyDir, SYSTRAY_VERSION, name);
    let source: string | null = null;
    for (const dir of packagedProgramDirs()) {
      if (await stat(join(dir, name)).then((s) => s.isFile(), () => false)) {
        source = join(dir, name);
        break;
      }
    }
    if (!source) throw Object.assign(new Error('tray program not found'), { code: 'ENOENT' });
    const [from, to] = await Promise.all([stat(source), stat(target).catch(() => null)]);
    if (!to || to.size !== from.size) {
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      await copyFile(source, target);
    }
    await chmod(target, 0o700);
    this.options.logger.debug({ version: SYSTRAY_VERSION }, 'tray program in place');
    return copyDir;
  }
}
