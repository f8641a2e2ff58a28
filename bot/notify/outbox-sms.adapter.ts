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
 *
 * Retention: as the mail outbox, messages older than `maxAgeMs`, and the oldest beyond `maxFiles`, are removed
 * with their markers every `intervalMs` when `retention` is given (bot/main.ts passes the mail outbox's
 * OUTBOX_MAX_AGE_HOURS, OUTBOX_MAX_FILES, OUTBOX_PRUNE_INTERVAL_MINUTES), never on the send path. The write-once,
 * marker and prune logic is shared with the mail outbox: bot/outbox/file-outbox.ts.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/logger';
import { NOTIFY_CHANNELS, NOTIFY_KINDS, NotifySendFailedError, validateNotifyMessage } from './notify.port';
import type { NotifyChannel, NotifyKind, NotifyMessage, NotifyPort, NotifySendResult, UnlockCodePersonalisation } from './notify.port';
import { FileOutbox, errnoOf, fileTimestamp, isRetryableErrno, writeFileOnce } from '../outbox/file-outbox';
import type { FileOutboxLayout, OutboxRetention } from '../outbox/file-outbox';

/** The outbox file name pattern: timestamp (UTC), channel, kind, id. */
const OUTBOX_SMS_FILE = new RegExp(
  `^(\\d{8}T\\d{6})-(${NOTIFY_CHANNELS.join('|')})-(${NOTIFY_KINDS.join('|')})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\\.json$`,
);

/** Where the id sits in {@link OUTBOX_SMS_FILE}; the markers' folder `.ids` is hidden, {@link readSmsOutbox} skips it. */
const LAYOUT: FileOutboxLayout = { pattern: OUTBOX_SMS_FILE, idGroup: 4 };

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
  /** Clock for the file name and the age limit; defaults to the system clock. */
  now?: () => Date;
  /** When given, old messages are pruned every `intervalMs` (first run one interval after construction). */
  retention?: OutboxRetention;
}

/** Writes each message as a JSON file; see the module comment. */
export class OutboxSmsAdapter extends FileOutbox<NotifySendResult> implements NotifyPort {
  /** @param options - see {@link OutboxSmsAdapterOptions}; {@link FileOutbox.prune} runs the retention now; `close()` stops its timer */
  constructor(options: OutboxSmsAdapterOptions) {
    super({ dir: options.dir, layout: LAYOUT, logger: options.logger, now: options.now, retention: options.retention, label: 'SMS outbox' });
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
    return this.onePerId(id, () => this.write({ ...message, id }), () => this.send(message));
  }

  private async write(message: NotifyMessage): Promise<NotifySendResult> {
    try {
      const { name, written } = await writeFileOnce(this.dir, LAYOUT, message.id, () => {
        const at = this.now();
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
        return { name: `${fileTimestamp(at)}-${message.channel}-${message.kind}-${message.id}.json`, content: `${JSON.stringify(record, null, 2)}\n` };
      });
      const file = join(this.dir, name);
      if (written) this.logger.info({ file, kind: message.kind, channel: message.channel, reference: message.reference }, 'message written to the SMS outbox');
      else this.logger.debug({ file, kind: message.kind, channel: message.channel }, 'message already in the SMS outbox');
      return { status: 'sent', notificationId: name, reference: message.reference };
    } catch (err) {
      const errno = errnoOf(err);
      throw new NotifySendFailedError(`Could not write the message to the SMS outbox${errno ? ` (${errno})` : ''}.`, {
        retryable: isRetryableErrno(errno),
        reason: 'io',
        channel: message.channel,
        kind: message.kind,
        messageId: message.id,
        ...(errno ? { detail: errno } : {}),
      });
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
