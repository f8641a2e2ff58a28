/**
 * Outbox mail adapter: "sends" a message by writing it as one RFC 5322 file
 * (`.eml`) into a folder under the data directory, for the demo and tests, or
 * for a relay that picks files up.
 *
 * File name: `<yyyymmddThhmmss>-<kind>-<id>.eml`, the time in UTC. A file is
 * written under a hidden temporary name, flushed, then renamed into place, so
 * a reader never sees half a message (rename is atomic within one file system,
 * POSIX rename(2)). The folder is created with mode 0700 and files with 0600:
 * an unlock-code email holds the code.
 *
 * Idempotent on `MailMessage.id`: when a file for that id exists, a send writes
 * nothing and returns `sent`. Sends with the same id within this process are
 * serialised; two processes sharing one outbox are not supported.
 *
 * O(1) per send (issue #15): a send never lists the folder. Each message id has
 * a small marker `<dir>/.ids/<id>` holding the message's file name, written
 * before the message; a repeated send reads the marker and checks that one
 * file. (A marker whose file is gone, e.g. after a crash between the two
 * writes, is rewritten with the message.) After a power loss a retried send may
 * write a second copy: the marker is not flushed, to keep one fsync per message.
 *
 * Retention: messages older than `maxAgeMs`, and the oldest beyond `maxFiles`,
 * are removed with their markers by {@link pruneOutbox}, run every
 * `intervalMs` by the adapter when `retention` is given (settings
 * OUTBOX_MAX_AGE_HOURS, OUTBOX_MAX_FILES, OUTBOX_PRUNE_INTERVAL_MINUTES), never
 * on the send path. A send retried after its message was pruned writes it again.
 */
import { mkdir, open, opendir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../common/logger';
import { AppError, ValidationError } from '../../common/app-error';
import { MAIL_ERROR_CODES, MAIL_KINDS, MailSendFailedError, isMailAddress, validateMailMessage } from './mail.port';
import type { MailKind, MailMessage, MailPort, MailSendResult } from './mail.port';
import { composeMimeMessage, parseMimeMessage, type ParsedMimeMessage } from './mime-message';

/** Default sender when none is configured (`.invalid` is reserved, RFC 2606). */
export const DEFAULT_OUTBOX_FROM = { name: 'Smartcard Assist', address: 'no-reply@smartcard-assist.invalid' } as const;

/** The outbox file name pattern: timestamp (UTC), kind, id. */
export const OUTBOX_FILE_PATTERN = new RegExp(
  `^(\\d{8}T\\d{6})-(${MAIL_KINDS.join('|')})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\\.eml$`,
);

/** File-system errors that will not go away by trying again. */
const PERMANENT_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'ELOOP', 'EEXIST']);

export interface OutboxMailAdapterOptions {
  /** Folder for the `.eml` files; created (mode 0700) on first send. */
  dir: string;
  logger: Logger;
  /** Sender mailbox; defaults to {@link DEFAULT_OUTBOX_FROM}. */
  from?: { name?: string; address: string };
  /** Clock for the file name and `Date` header; defaults to the system clock. */
  now?: () => Date;
  /** When given, {@link pruneOutbox} runs every `intervalMs` (first run one interval after construction). */
  retention?: OutboxRetention;
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

/** Hidden folder, inside the outbox, of the per-id markers. */
const MARKER_DIR = '.ids';

/** `yyyymmddThhmmss` in UTC. */
function fileTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Writes each message as an `.eml` file; see the module comment. */
export class OutboxMailAdapter implements MailPort {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly from: { name?: string; address: string };
  private readonly now: () => Date;
  private readonly inFlight = new Map<string, Promise<MailSendResult>>();
  private readonly retention: OutboxRetention | null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private pruning: Promise<OutboxPruneResult> | null = null;

  /**
   * @param options - see {@link OutboxMailAdapterOptions}
   * @throws ValidationError (`INPUT.MAIL_FROM`) when `from.address` is not a valid address
   */
  constructor(options: OutboxMailAdapterOptions) {
    this.dir = options.dir;
    this.logger = options.logger;
    this.from = options.from ?? DEFAULT_OUTBOX_FROM;
    this.now = options.now ?? (() => new Date());
    if (!isMailAddress(this.from.address) || (this.from.name !== undefined && /[\r\n]/.test(this.from.name))) {
      throw new ValidationError('MAIL_FROM', 'The outbox sender address is not a valid email address, or its name has a line break.');
    }
    this.retention = options.retention ?? null;
    if (this.retention && (this.retention.maxAgeMs !== null || this.retention.maxFiles !== null)) {
      this.pruneTimer = setInterval(() => void this.prune().catch(() => undefined), this.retention.intervalMs);
      this.pruneTimer.unref();
    }
  }

  /**
   * Apply the retention now (also what the periodic job runs); one run at a time, a call during a run joins it.
   *
   * @returns what {@link pruneOutbox} returns; `{ removed: 0, kept: -1 }` when no retention is configured
   * @throws the file-system error when the folder cannot be read (logged as a warning by the periodic job)
   */
  prune(): Promise<OutboxPruneResult> {
    const retention = this.retention;
    if (!retention) return Promise.resolve({ removed: 0, kept: -1 });
    this.pruning ??= (async () => {
      try {
        const result = await pruneOutbox(this.dir, { maxAgeMs: retention.maxAgeMs, maxFiles: retention.maxFiles, now: this.now() });
        if (result.removed > 0) this.logger.info({ dir: this.dir, ...result }, 'outbox pruned');
        return result;
      } catch (err) {
        this.logger.warn({ dir: this.dir, errno: errnoOf(err) ?? null }, 'outbox prune failed');
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
   * Write the message to the outbox, once per id.
   *
   * @param message - validated with `validateMailMessage`
   * @returns `{ status: 'sent', providerMessageId: <file name> }`, also when the id was already written
   * @throws MailSendFailedError: `reason: 'invalid_message'` (not retryable) for a refused message;
   *   `reason: 'io'` when the file could not be written, retryable unless the error is permanent
   *   (no permission, read-only file system, the folder is a file)
   */
  async send(message: MailMessage): Promise<MailSendResult> {
    validateMailMessage(message);
    const id = message.id.toLowerCase();
    const previous = this.inFlight.get(id);
    if (previous) return previous.catch(() => this.send(message));
    const attempt = this.write({ ...message, id }).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, attempt);
    return attempt;
  }

  private async write(message: MailMessage): Promise<MailSendResult> {
    let tmp: string | undefined;
    try {
      const markers = join(this.dir, MARKER_DIR);
      await mkdir(markers, { recursive: true, mode: 0o700 });
      const marker = join(markers, message.id);
      const existing = await this.sentName(marker, message.id);
      if (existing) {
        this.logger.debug({ file: join(this.dir, existing), kind: message.kind }, 'mail already in outbox');
        return { status: 'sent', providerMessageId: existing };
      }
      const at = this.now();
      const name = `${fileTimestamp(at)}-${message.kind}-${message.id}.eml`;
      await writeFile(marker, name, { encoding: 'utf8', mode: 0o600 });
      const raw = composeMimeMessage({
        from: this.from,
        to: message.to,
        subject: message.subject,
        date: at,
        messageId: `${message.id}@${this.from.address.split('@')[1]}`,
        text: message.text,
        html: message.html,
        headers: { 'Auto-Submitted': 'auto-generated', 'X-Smartcard-Assist-Kind': message.kind },
      });
      tmp = join(this.dir, `.${message.id}.${randomUUID()}.tmp`);
      const handle = await open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(raw, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      const file = join(this.dir, name);
      await rename(tmp, file);
      tmp = undefined;
      await this.syncDir();
      this.logger.info({ file, kind: message.kind }, 'mail written to outbox');
      return { status: 'sent', providerMessageId: name };
    } catch (err) {
      if (tmp) await unlink(tmp).catch(() => undefined);
      const errno = errnoOf(err);
      throw new MailSendFailedError(`Could not write the mail to the outbox${errno ? ` (${errno})` : ''}.`, {
        retryable: !(errno && PERMANENT_ERRNOS.has(errno)),
        reason: 'io',
        kind: message.kind,
        messageId: message.id,
        cause: err,
        ...(errno ? { detail: errno } : {}),
      });
    }
  }

  /**
   * Readiness: the outbox folder exists (created when missing, mode 0700) and a file can be created in it.
   * Writes and removes one hidden `.ready-<uuid>.tmp` file, which {@link readOutbox} skips.
   *
   * @throws AppError `MAIL.UNAVAILABLE` with the errno (e.g. `ENOTDIR`, `EROFS`, `ENOSPC`) in `meta.errno`
   */
  async check(): Promise<void> {
    const probe = join(this.dir, `.ready-${randomUUID()}.tmp`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const handle = await open(probe, 'wx', 0o600);
      await handle.close();
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      const errno = errnoOf(err);
      throw new AppError(MAIL_ERROR_CODES.UNAVAILABLE, `The outbox folder is not writable${errno ? ` (${errno})` : ''}.`, { cause: err, meta: { errno: errno ?? null } });
    }
  }

  /** The file name a marker records, when that file exists; null when there is no marker or its file is gone. */
  private async sentName(marker: string, id: string): Promise<string | null> {
    let name: string;
    try {
      name = (await readFile(marker, 'utf8')).trim();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return null;
      throw err;
    }
    const match = OUTBOX_FILE_PATTERN.exec(name);
    if (!match || match[3] !== id) return null;
    try {
      await stat(join(this.dir, name));
      return name;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return null;
      throw err;
    }
  }

  /** Flush the folder entry so the rename survives a crash (best effort; not every file system allows it). */
  private async syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r').catch(() => undefined);
    if (!handle) return;
    await handle.sync().catch(() => undefined);
    await handle.close().catch(() => undefined);
  }
}

/** One message found in an outbox folder. */
export interface OutboxEntry extends ParsedMimeMessage {
  /** Absolute or dir-relative path, as `join(dir, name)`. */
  file: string;
  /** File name, `<yyyymmddThhmmss>-<kind>-<id>.eml`. */
  name: string;
  kind: MailKind;
  id: string;
}

/**
 * Read every message in an outbox folder, oldest first (for tests, tools and the demo).
 *
 * @param dir - the adapter's `dir`
 * @returns parsed messages; an absent folder gives `[]`; temporary and foreign files are skipped
 */
export async function readOutbox(dir: string): Promise<OutboxEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const entries: OutboxEntry[] = [];
  for (const name of names.sort()) {
    const match = OUTBOX_FILE_PATTERN.exec(name);
    if (!match) continue;
    const file = join(dir, name);
    const parsed = parseMimeMessage(await readFile(file, 'utf8'));
    entries.push({ ...parsed, file, name, kind: match[2] as MailKind, id: match[3]! });
  }
  return entries;
}

/** Outcome of one {@link pruneOutbox} run. */
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `yyyymmddThhmmss` (UTC) back to epoch milliseconds. */
function timestampMs(stamp: string): number {
  return Date.UTC(+stamp.slice(0, 4), +stamp.slice(4, 6) - 1, +stamp.slice(6, 8), +stamp.slice(9, 11), +stamp.slice(11, 13), +stamp.slice(13, 15));
}

/**
 * Remove old messages from an outbox folder: those whose file-name time is more than `maxAgeMs` before `now`,
 * then the oldest until at most `maxFiles` are left. Each message's marker (`.ids/<id>`) goes with it.
 * Reads the folder once as a stream (`opendir`) and removes files one at a time, so it never holds more than
 * one file-system request at once on the libuv pool; meant for a periodic job, never the send path.
 * Only files matching {@link OUTBOX_FILE_PATTERN} are touched. Then markers whose message is gone (a relay
 * took it, or it was deleted by hand) and whose file time is more than {@link ORPHAN_MARKER_GRACE_MS} old
 * (by the real clock) are removed too, so `.ids` does not grow without bound.
 *
 * @param dir - the outbox folder; absent gives `{ removed: 0, kept: 0 }`
 * @param limits - `maxAgeMs` (milliseconds) and `maxFiles`, each `null` for no limit; `now` the clock
 * @returns counts removed and kept
 * @throws the file-system error when the folder cannot be read (a file already gone is not an error)
 */
export async function pruneOutbox(dir: string, limits: { maxAgeMs: number | null; maxFiles: number | null; now: Date }): Promise<OutboxPruneResult> {
  const names: string[] = [];
  try {
    for await (const entry of await opendir(dir, { bufferSize: 256 })) {
      if (OUTBOX_FILE_PATTERN.test(entry.name)) names.push(entry.name);
    }
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { removed: 0, kept: 0 };
    throw err;
  }
  names.sort();
  const cutoff = limits.maxAgeMs === null ? -Infinity : limits.now.getTime() - limits.maxAgeMs;
  let first = 0;
  while (first < names.length && timestampMs(names[first]!.slice(0, 15)) < cutoff) first++;
  if (limits.maxFiles !== null) first = Math.max(first, names.length - limits.maxFiles);
  let removed = 0;
  for (const name of names.slice(0, first)) {
    const id = OUTBOX_FILE_PATTERN.exec(name)![3]!;
    await unlink(join(dir, name)).then(() => removed++, (err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
    });
    await unlink(join(dir, MARKER_DIR, id)).catch(() => undefined);
  }
  const keptCount = names.length - first;
  const kept = new Set(names.slice(first).map((name) => OUTBOX_FILE_PATTERN.exec(name)![3]!));
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
