/**
 * The part the file outboxes share (mail `.eml` in bot/mail/outbox-mail.adapter.ts, SMS `.json` in
 * bot/notify/outbox-sms.adapter.ts): one file per message, written once per message id, found again in O(1)
 * through a marker, and pruned by age and count on a timer.
 *
 * Layout of an outbox folder: message files `<yyyymmddThhmmss>-...-<id>.<ext>` (UTC time first, so the name
 * order is the time order), and a hidden folder `.ids/` with one marker per id holding its message's file name,
 * written before the message (issue #15: a send never lists the folder). A message file is written under a
 * hidden temporary name, flushed, then renamed into place (atomic within one file system, POSIX rename(2)).
 * Folder mode 0700, files 0600: a message may hold an unlock code. The marker is not flushed (one fsync per
 * message), so after a power loss a retried send may write a second copy.
 */
import { mkdir, open, opendir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../common/logger';

/** How one outbox names its message files. */
export interface FileOutboxLayout {
  /** Whole-name pattern of a message file; must start with the 15-character `yyyymmddThhmmss` UTC time. */
  pattern: RegExp;
  /** Index of the capture group in `pattern` holding the message id (lower-case UUID). */
  idGroup: number;
}

/** How long sent messages are kept; `null` = no limit of that kind. */
export interface OutboxRetention {
  /** Remove messages whose file-name time is older than this, milliseconds. */
  maxAgeMs: number | null;
  /** Keep at most this many messages; the oldest beyond it are removed. */
  maxFiles: number | null;
  /** Time between prune runs, milliseconds. */
  intervalMs: number;
}

/** Outcome of one {@link pruneFileOutbox} run. */
export interface OutboxPruneResult {
  /** Messages removed (with their markers). */
  removed: number;
  /** Messages left. */
  kept: number;
  /** Markers removed whose message had already gone (taken by a relay, or deleted by hand). */
  orphanMarkers?: number;
}

/** A marker with no message is removed only when older than this (its message may be being written), ms. */
export const ORPHAN_MARKER_GRACE_MS = 3_600_000;

/** Hidden folder, inside the outbox, of the per-id markers. */
const MARKER_DIR = '.ids';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** File-system errors that will not go away by trying again. */
const PERMANENT_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'ELOOP', 'EEXIST']);

/**
 * The errno name of a Node file-system error.
 *
 * @param err - anything thrown
 * @returns e.g. `'ENOENT'`, or undefined when it has no string `code`
 */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether a failed write is worth retrying.
 *
 * @param errno - from {@link errnoOf}
 * @returns false for errors that do not go away (no permission, read-only file system, the folder is a file, ...)
 */
export function isRetryableErrno(errno: string | undefined): boolean {
  return !(errno && PERMANENT_ERRNOS.has(errno));
}

/**
 * `yyyymmddThhmmss` in UTC, the start of every message file name.
 *
 * @param at - the send time
 * @returns 15 characters, e.g. `20261206T063000`
 */
export function fileTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
}

/** `yyyymmddThhmmss` (UTC) back to epoch milliseconds. */
function timestampMs(stamp: string): number {
  return Date.UTC(+stamp.slice(0, 4), +stamp.slice(4, 6) - 1, +stamp.slice(6, 8), +stamp.slice(9, 11), +stamp.slice(11, 13), +stamp.slice(13, 15));
}

/**
 * The file name of the message already sent with this id, found through its marker (O(1), no listing).
 *
 * @param dir - the outbox folder
 * @param layout - the outbox's file naming
 * @param id - the message id, lower case
 * @returns the file name when the marker names a file of this id that exists; null when there is no marker,
 *   it names something else, or its file is gone
 * @throws the file-system error other than ENOENT
 */
export async function findSentFile(dir: string, layout: FileOutboxLayout, id: string): Promise<string | null> {
  let name: string;
  try {
    name = (await readFile(join(dir, MARKER_DIR, id), 'utf8')).trim();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  const match = layout.pattern.exec(name);
  if (!match || match[layout.idGroup] !== id) return null;
  try {
    await stat(join(dir, name));
    return name;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Write one message file once per id: when {@link findSentFile} finds it, nothing is written; else the marker,
 * then the file (temporary name, flush, rename, folder flush best effort). Creates the folder (0700) when missing.
 *
 * @param dir - the outbox folder
 * @param layout - the outbox's file naming
 * @param id - the message id, lower case
 * @param compose - called only when the message is new: its file name (matching `layout.pattern`) and content
 * @returns `{ name, written }`: the file name, and whether this call wrote it
 * @throws the file-system error (a temporary file left behind is removed); callers map it to their port's error
 */
export async function writeFileOnce(
  dir: string,
  layout: FileOutboxLayout,
  id: string,
  compose: () => { name: string; content: string },
): Promise<{ name: string; written: boolean }> {
  const markers = join(dir, MARKER_DIR);
  await mkdir(markers, { recursive: true, mode: 0o700 });
  const existing = await findSentFile(dir, layout, id);
  if (existing) return { name: existing, written: false };
  const { name, content } = compose();
  // The marker first: a crash after the rename below still finds the message on the next send.
  await writeFile(join(markers, id), name, { encoding: 'utf8', mode: 0o600 });
  const tmp = join(dir, `.${id}.${randomUUID()}.tmp`);
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
  return { name, written: true };
}

/** Flush the folder entry so the rename survives a crash (best effort; not every file system allows it). */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close().catch(() => undefined);
}

/**
 * Remove old messages from an outbox folder: those whose file-name time is more than `maxAgeMs` before `now`,
 * then the oldest until at most `maxFiles` are left. Each message's marker (`.ids/<id>`) goes with it.
 * Reads the folder once as a stream (`opendir`) and removes files one at a time, so it never holds more than
 * one file-system request at once on the libuv pool; meant for a periodic job, never the send path.
 * Only files matching `layout.pattern` are touched. Then markers whose message is gone (a relay took it, or it
 * was deleted by hand) and whose file time is more than {@link ORPHAN_MARKER_GRACE_MS} old (by the real clock)
 * are removed too, so `.ids` does not grow without bound.
 *
 * @param dir - the outbox folder; absent gives `{ removed: 0, kept: 0 }`
 * @param layout - the outbox's file naming
 * @param limits - `maxAgeMs` (milliseconds) and `maxFiles`, each `null` for no limit; `now` the clock
 * @returns counts removed and kept
 * @throws the file-system error when the folder cannot be read (a file already gone is not an error)
 */
export async function pruneFileOutbox(
  dir: string,
  layout: FileOutboxLayout,
  limits: { maxAgeMs: number | null; maxFiles: number | null; now: Date },
): Promise<OutboxPruneResult> {
  const names: string[] = [];
  try {
    for await (const entry of await opendir(dir, { bufferSize: 256 })) {
      if (layout.pattern.test(entry.name)) names.push(entry.name);
    }
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { removed: 0, kept: 0 };
    throw err;
  }
  names.sort();
  const idOf = (name: string): string => layout.pattern.exec(name)![layout.idGroup]!;
  const cutoff = limits.maxAgeMs === null ? -Infinity : limits.now.getTime() - limits.maxAgeMs;
  let first = 0;
  while (first < names.length && timestampMs(names[first]!.slice(0, 15)) < cutoff) first++;
  if (limits.maxFiles !== null) first = Math.max(first, names.length - limits.maxFiles);
  let removed = 0;
  for (const name of names.slice(0, first)) {
    await unlink(join(dir, name)).then(() => removed++, (err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
    });
    await unlink(join(dir, MARKER_DIR, idOf(name))).catch(() => undefined);
  }
  const keptCount = names.length - first;
  const kept = new Set(names.slice(first).map(idOf));
  names.length = 0;
  const orphanMarkers = await pruneOrphanMarkers(join(dir, MARKER_DIR), kept);
  return { removed, kept: keptCount, ...(orphanMarkers > 0 ? { orphanMarkers } : {}) };
}

/** Remove markers not in `kept` older than {@link ORPHAN_MARKER_GRACE_MS}; returns how many. */
async function pruneOrphanMarkers(markers: string, kept: ReadonlySet<string>): Promise<number> {
  const orphans: string[] = [];
  try {
    for await (const entry of await opendir(markers, { bufferSize: 256 })) {
      if (UUID.test(entry.name) && !kept.has(entry.name)) orphans.push(entry.name);
    }
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 0;
    throw err;
  }
  const cutoff = Date.now() - ORPHAN_MARKER_GRACE_MS;
  let removed = 0;
  for (const id of orphans) {
    const file = join(markers, id);
    const info = await stat(file).catch(() => null);
    if (!info || info.mtimeMs >= cutoff) continue;
    await unlink(file).then(() => removed++, () => undefined);
  }
  return removed;
}

/** What {@link FileOutbox} needs to know about one outbox. */
export interface FileOutboxOptions {
  /** The outbox folder; created (mode 0700) on first send. */
  dir: string;
  /** How the outbox names its message files. */
  layout: FileOutboxLayout;
  logger: Logger;
  /** Clock for file names and the age limit; defaults to the system clock. */
  now?: (() => Date) | undefined;
  /** When given, {@link FileOutbox.prune} runs every `intervalMs` (first run one interval after construction). */
  retention?: OutboxRetention | undefined;
  /** Names the outbox in log lines, e.g. `'outbox'` gives "outbox pruned". */
  label: string;
}

/**
 * Base of a file outbox adapter: the folder, clock and logger, sends serialised per message id, and the
 * retention ({@link pruneFileOutbox} every `retention.intervalMs`, on a timer that does not keep the process
 * alive, one run at a time). The adapter writes with {@link writeFileOnce} inside {@link FileOutbox.onePerId}.
 */
export class FileOutbox<R> {
  readonly dir: string;
  protected readonly logger: Logger;
  protected readonly now: () => Date;
  private readonly layout: FileOutboxLayout;
  private readonly retention: OutboxRetention | null;
  private readonly label: string;
  private readonly inFlight = new Map<string, Promise<R>>();
  private pruneTimer: NodeJS.Timeout | null = null;
  private pruning: Promise<OutboxPruneResult> | null = null;

  /** @param options - see {@link FileOutboxOptions} */
  constructor(options: FileOutboxOptions) {
    this.dir = options.dir;
    this.layout = options.layout;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
    this.label = options.label;
    this.retention = options.retention ?? null;
    if (this.retention && (this.retention.maxAgeMs !== null || this.retention.maxFiles !== null)) {
      this.pruneTimer = setInterval(() => void this.prune().catch(() => undefined), this.retention.intervalMs);
      this.pruneTimer.unref();
    }
  }

  /**
   * Apply the retention now (also what the periodic job runs); one run at a time, a call during a run joins it.
   *
   * @returns what {@link pruneFileOutbox} returns (message counts); `{ removed: 0, kept: -1 }` when no retention
   *   is configured
   * @throws the file-system error when the folder cannot be read (logged as a warning)
   */
  prune(): Promise<OutboxPruneResult> {
    const retention = this.retention;
    if (!retention) return Promise.resolve({ removed: 0, kept: -1 });
    this.pruning ??= (async () => {
      try {
        const result = await pruneFileOutbox(this.dir, this.layout, { maxAgeMs: retention.maxAgeMs, maxFiles: retention.maxFiles, now: this.now() });
        if (result.removed > 0) this.logger.info({ dir: this.dir, ...result }, `${this.label} pruned`);
        return result;
      } catch (err) {
        this.logger.warn({ dir: this.dir, errno: errnoOf(err) ?? null }, `${this.label} prune failed`);
        throw err;
      } finally {
        this.pruning = null;
      }
    })();
    return this.pruning;
  }

  /** Stop the periodic prune (a run in progress finishes). */
  close(): void {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
  }

  /**
   * Run `write` for an id unless one for the same id is under way in this process: then wait for that one and
   * return its result, or, when it failed, start again (through `retry`).
   *
   * @param id - the message id, lower case
   * @param write - the send
   * @param retry - called when the send under way failed; usually the adapter's `send` again
   * @returns the result of the one send that wrote (or found) the message
   */
  protected onePerId(id: string, write: () => Promise<R>, retry: () => Promise<R>): Promise<R> {
    const previous = this.inFlight.get(id);
    if (previous) return previous.catch(retry);
    const attempt = write().finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, attempt);
    return attempt;
  }
}
