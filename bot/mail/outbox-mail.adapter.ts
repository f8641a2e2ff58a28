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
 *
 * The write-once, marker and prune logic is shared with the SMS outbox: bot/outbox/file-outbox.ts.
 */
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../common/logger';
import { AppError, ValidationError } from '../../common/app-error';
import { MAIL_ERROR_CODES, MAIL_KINDS, MailSendFailedError, isMailAddress, validateMailMessage } from './mail.port';
import type { MailKind, MailMessage, MailPort, MailSendResult } from './mail.port';
import { composeMimeMessage, parseMimeMessage, type ParsedMimeMessage } from './mime-message';
import { FileOutbox, errnoOf, fileTimestamp, isRetryableErrno, pruneFileOutbox, writeFileOnce } from '../outbox/file-outbox';
import type { FileOutboxLayout, OutboxPruneResult, OutboxRetention } from '../outbox/file-outbox';

export type { OutboxRetention } from '../outbox/file-outbox';

/** Default sender when none is configured (`.invalid` is reserved, RFC 2606). */
export const DEFAULT_OUTBOX_FROM = { name: 'Smartcard Assist', address: 'no-reply@smartcard-assist.invalid' } as const;

/** The outbox file name pattern: timestamp (UTC), kind, id. */
export const OUTBOX_FILE_PATTERN = new RegExp(
  `^(\\d{8}T\\d{6})-(${MAIL_KINDS.join('|')})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\\.eml$`,
);

/** Where the id sits in {@link OUTBOX_FILE_PATTERN}. */
const LAYOUT: FileOutboxLayout = { pattern: OUTBOX_FILE_PATTERN, idGroup: 3 };

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

/** Writes each message as an `.eml` file; see the module comment. */
export class OutboxMailAdapter extends FileOutbox<MailSendResult> implements MailPort {
  private readonly from: { name?: string; address: string };

  /**
   * @param options - see {@link OutboxMailAdapterOptions}; {@link FileOutbox.prune} runs the retention now; `close()` stops its timer
   * @throws ValidationError (`INPUT.MAIL_FROM`) when `from.address` is not a valid address
   */
  constructor(options: OutboxMailAdapterOptions) {
    const from = options.from ?? DEFAULT_OUTBOX_FROM;
    if (!isMailAddress(from.address) || (from.name !== undefined && /[\r\n]/.test(from.name))) {
      throw new ValidationError('MAIL_FROM', 'The outbox sender address is not a valid email address, or its name has a line break.');
    }
    super({ dir: options.dir, layout: LAYOUT, logger: options.logger, now: options.now, retention: options.retention, label: 'outbox' });
    this.from = from;
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
    return this.onePerId(id, () => this.write({ ...message, id }), () => this.send(message));
  }

  private async write(message: MailMessage): Promise<MailSendResult> {
    try {
      const { name, written } = await writeFileOnce(this.dir, LAYOUT, message.id, () => {
        const at = this.now();
        const content = composeMimeMessage({
          from: this.from,
          to: message.to,
          subject: message.subject,
          date: at,
          messageId: `${message.id}@${this.from.address.split('@')[1]}`,
          text: message.text,
          html: message.html,
          headers: { 'Auto-Submitted': 'auto-generated', 'X-Smartcard-Assist-Kind': message.kind },
        });
        return { name: `${fileTimestamp(at)}-${message.kind}-${message.id}.eml`, content };
      });
      if (written) this.logger.info({ file: join(this.dir, name), kind: message.kind }, 'mail written to outbox');
      else this.logger.debug({ file: join(this.dir, name), kind: message.kind }, 'mail already in outbox');
      return { status: 'sent', providerMessageId: name };
    } catch (err) {
      const errno = errnoOf(err);
      throw new MailSendFailedError(`Could not write the mail to the outbox${errno ? ` (${errno})` : ''}.`, {
        retryable: isRetryableErrno(errno),
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

/**
 * Remove old messages from an outbox folder: those whose file-name time is more than `maxAgeMs` before `now`,
 * then the oldest until at most `maxFiles` are left. Each message's marker (`.ids/<id>`) goes with it.
 * Reads the folder once as a stream (`opendir`) and removes files one at a time, so it never holds more than
 * one file-system request at once on the libuv pool; meant for a periodic job, never the send path.
 * Only files matching {@link OUTBOX_FILE_PATTERN} are touched. Then markers whose message is gone (a relay
 * took it, or it was deleted by hand) and whose file time is more than `ORPHAN_MARKER_GRACE_MS` (bot/outbox/file-outbox.ts) old
 * (by the real clock) are removed too, so `.ids` does not grow without bound.
 *
 * @param dir - the outbox folder; absent gives `{ removed: 0, kept: 0 }`
 * @param limits - `maxAgeMs` (milliseconds) and `maxFiles`, each `null` for no limit; `now` the clock
 * @returns counts removed and kept
 * @throws the file-system error when the folder cannot be read (a file already gone is not an error)
 */
export function pruneOutbox(dir: string, limits: { maxAgeMs: number | null; maxFiles: number | null; now: Date }): Promise<OutboxPruneResult> {
  return pruneFileOutbox(dir, LAYOUT, limits);
}
