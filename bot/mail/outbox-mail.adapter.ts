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
 */
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
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
}

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
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const existing = (await readdir(this.dir)).find((name) => name.endsWith(`-${message.id}.eml`));
      if (existing) {
        this.logger.debug({ file: join(this.dir, existing), kind: message.kind }, 'mail already in outbox');
        return { status: 'sent', providerMessageId: existing };
      }
      const at = this.now();
      const name = `${fileTimestamp(at)}-${message.kind}-${message.id}.eml`;
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
