/**
 * Outbox SMS adapter: the demo's stand-in for GOV.UK Notify. "Sends" a message by writing it as one JSON file
 * into a folder under the data directory, with the text the person would read (rendered here from the same
 * placeholders as the Notify template, {@link renderLocally}).
 *
 * File name: `<yyyymmddThhmmss>-<channel>-<kind>-<id>.json`, the time in UTC. Written under a hidden temporary
 * name, flushed, then renamed into place (atomic within one file system, POSIX rename(2)), so a reader never sees
 * half a message. Folder mode 0700, files 0600: an unlock-code message holds the code.
 *
 * Idempotent on the message id: when a file for that id exists, a send writes nothing and returns `sent`.
 * Each id has a marker `.ids/<id>` holding its file name, written before the message, so a send finds its
 * message in O(1) (no folder listing: a listing cost ~0.4 s a send with 100,000 messages in the folder). A file
 * written before markers existed is not found by a repeat send. Sends with the same id within this process are
 * serialised. Logs name the file, kind and channel, never the number or the text.
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../common/logger';
import { NOTIFY_CHANNELS, NOTIFY_KINDS, NotifySendFailedError, validateNotifyMessage } from './notify.port';
import type { NotifyChannel, NotifyKind, NotifyMessage, NotifyPort, NotifySendResult, UnlockCodePersonalisation } from './notify.port';

/** The outbox file name pattern: timestamp (UTC), channel, kind, id. */
const OUTBOX_SMS_FILE = new RegExp(
  `^(\\d{8}T\\d{6})-(${NOTIFY_CHANNELS.join('|')})-(${NOTIFY_KINDS.join('|')})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\\.json$`,
);

/** Folder of the per-id markers (hidden: {@link readSmsOutbox} skips it). */
const MARKER_DIR = '.ids';

/** File-system errors that will not go away by trying again. */
const PERMANENT_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'ELOOP', 'EEXIST']);

/**
 * The text the local outbox writes for a message: the wording a Notify template for this kind is expected to
 * have (docs/notify.md), with its placeholders filled.
 *
 * @param kind - what the message is for
 * @param p - the placeholders
 * @returns the message text (SMS: one paragraph of at most 3 fragments)
 */
export function renderLocally(kind: NotifyKind, p: UnlockCodePersonalisation): string {
  switch (kind) {
    case 'unlock_code':
      return `Your smartcard unlock code is ${p.code}. It works once, for ${p.minutes} minutes (until ${p.expires_at}). Enter it in the Smartcard Assist companion on your computer. Did not ask for it? Do not use it, and contact your RA team.`;
  }
}

/** One message as the outbox stores it. */
export interface OutboxSmsRecord {
  id: string;
  channel: NotifyChannel;
  kind: NotifyKind;
  to: string;
  reference: string;
  /** When it was written, ISO 8601 UTC. */
  at: string;
  /** The rendered text (holds the code). */
  text: string;
  personalisation: UnlockCodePersonalisation;
}

export interface OutboxSmsAdapterOptions {
  /** Folder for the files; created (mode 0700) on first send. */
  dir: string;
  logger: Logger;
  /** Clock for the file name; defaults to the system clock. */
  now?: () => Date;
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Writes each message as a JSON file; see the module comment. */
export class OutboxSmsAdapter implements NotifyPort {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly inFlight = new Map<string, Promise<NotifySendResult>>();

  /** @param options - see {@link OutboxSmsAdapterOptions} */
  constructor(options: OutboxSmsAdapterOptions) {
    this.dir = options.dir;
    this.logger = options.logger;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Write the message to the outbox, once per id.
   *
   * @param message - validated with `validateNotifyMessage`
   * @returns `{ status: 'sent', notificationId: <file name>, reference }`, also when the id was already written
   * @throws NotifySendFailedError: `invalid_message` (not retryable) for a refused message; `io` when the file
   *   could not be written, retryable unless the error is permanent (no permission, read-only, folder is a file)
   */
  async send(message: NotifyMessage): Promise<NotifySendResult> {
    validateNotifyMessage(message);
    const id = message.id.toLowerCase();
    const previous = this.inFlight.get(id);
    if (previous) return previous.catch(() => this.send(message));
    const attempt = this.write({ ...message, id }).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, attempt);
    return attempt;
  }

  private async write(message: NotifyMessage): Promise<NotifySendResult> {
    let tmp: string | undefined;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const markers = join(this.dir, MARKER_DIR);
      await mkdir(markers, { recursive: true, mode: 0o700 });
      const marker = join(markers, message.id);
      const existing = await this.sentName(marker, message.id);
      if (existing) {
        this.logger.debug({ file: join(this.dir, existing), kind: message.kind, channel: message.channel }, 'message already in the SMS outbox');
        return { status: 'sent', notificationId: existing, reference: message.reference };
      }
      const at = this.now();
      const name = `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '')}-${message.channel}-${message.kind}-${message.id}.json`;
      // The marker first: a crash after the rename below still finds the message on the next send.
      await writeFile(marker, name, { encoding: 'utf8', mode: 0o600 });
      const record: OutboxSmsRecord = {
        id: message.id,
        channel: message.channel,
        kind: message.kind,
        to: message.to,
        reference: message.reference,
        at: at.toISOString(),
        text: renderLocally(message.kind, message.personalisation),
        personalisation: message.personalisation,
      };
      tmp = join(this.dir, `.${message.id}.${randomUUID()}.tmp`);
      const handle = await open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      const file = join(this.dir, name);
      await rename(tmp, file);
      tmp = undefined;
      this.logger.info({ file, kind: message.kind, channel: message.channel, reference: message.reference }, 'message written to the SMS outbox');
      return { status: 'sent', notificationId: name, reference: message.reference };
    } catch (err) {
      if (tmp) await unlink(tmp).catch(() => undefined);
      const errno = errnoOf(err);
      throw new NotifySendFailedError(`Could not write the message to the SMS outbox${errno ? ` (${errno})` : ''}.`, {
        retryable: !(errno && PERMANENT_ERRNOS.has(errno)),
        reason: 'io',
        channel: message.channel,
        kind: message.kind,
        messageId: message.id,
        ...(errno ? { detail: errno } : {}),
      });
    }
  }

  /** The file name the marker records, when that file exists; null when there is no marker or its file is gone. */
  private async sentName(marker: string, id: string): Promise<string | null> {
    let name: string;
    try {
      name = (await readFile(marker, 'utf8')).trim();
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return null;
      throw err;
    }
    const match = OUTBOX_SMS_FILE.exec(name);
    if (!match || match[4] !== id) return null;
    try {
      await stat(join(this.dir, name));
      return name;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return null;
      throw err;
    }
  }
}

/**
 * Read every message in an SMS outbox folder, oldest first (for tests, tools and the demo).
 *
 * @param dir - the adapter's `dir`
 * @returns the stored records with their file names; an absent folder gives `[]`; temporary and foreign files
 *   are skipped
 */
export async function readSmsOutbox(dir: string): Promise<Array<OutboxSmsRecord & { file: string; name: string }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const out: Array<OutboxSmsRecord & { file: string; name: string }> = [];
  for (const name of names.sort()) {
    if (!OUTBOX_SMS_FILE.test(name)) continue;
    const file = join(dir, name);
    out.push({ ...(JSON.parse(await readFile(file, 'utf8')) as OutboxSmsRecord), file, name });
  }
  return out;
}
