/**
 * Mail port: how the service sends an email, whatever carries it (STYLE.md 3).
 *
 * Adapters: `outbox-mail.adapter.ts` (one RFC 5322 file per message under the
 * data directory) now, Microsoft Graph `sendMail` later. Every adapter is
 * idempotent on `MailMessage.id`, so the effect runner may repeat a send after
 * a crash without the person receiving a second email.
 */
import { z } from 'zod';
import { AppError } from '../../common/app-error';

/** What a message is for; adapters write it into file names, headers and logs. */
export const MAIL_KINDS = ['unlock_code', 'unlock_notice', 'registration_code', 'registration_notice'] as const;
export type MailKind = (typeof MAIL_KINDS)[number];

/** One email to one person. */
export interface MailMessage {
  /** Idempotency key (UUID): a second send with the same id sends nothing new. */
  id: string;
  /** Recipient address (addr-spec, RFC 5322 3.4.1). */
  to: string;
  /** Subject line; one line, no control characters. */
  subject: string;
  /** Plain-text body (lines separated by `\n`). */
  text: string;
  /** HTML body, a whole document. */
  html: string;
  kind: MailKind;
}

/** Result of a send that was accepted (or had already been accepted under the same id). */
export interface MailSendResult {
  status: 'sent';
  /** The carrier's identifier for the message (outbox: the file name; Graph: none). */
  providerMessageId?: string;
}

export interface MailPort {
  /**
   * Send one message, at most once per `message.id`.
   *
   * @throws MailSendFailedError (`MAIL.SEND_FAILED`) when the message was not sent; `meta.retryable` says whether
   *   trying again later may work (a full disk may clear; a refused message or a read-only folder will not)
   */
  send(message: MailMessage): Promise<MailSendResult>;
  /**
   * Cheap check that mail can go out now, for the readiness probe (`GET /readyz`): sends nothing.
   * Optional: an adapter without it counts as reachable.
   *
   * @throws AppError `MAIL.UNAVAILABLE` saying what is not reachable (never an address or a credential)
   */
  check?(): Promise<void>;
}

/** Error codes of the mail area. */
export const MAIL_ERROR_CODES = { SEND_FAILED: 'MAIL.SEND_FAILED', UNAVAILABLE: 'MAIL.UNAVAILABLE' } as const;

/** Why a send failed: the message was refused before sending, the carrier failed, or local I/O failed. */
export type MailFailureReason = 'invalid_message' | 'provider' | 'io';

/**
 * A message was not sent. The error message and meta never hold the address or the body (the body may hold
 * a one-time code); meta holds `retryable`, `reason`, and when known the message `kind` and `messageId`.
 */
export class MailSendFailedError extends AppError {
  readonly retryable: boolean;

  constructor(
    message: string,
    options: { retryable: boolean; reason: MailFailureReason; kind?: MailKind; messageId?: string; cause?: unknown; detail?: string },
  ) {
    super(MAIL_ERROR_CODES.SEND_FAILED, message, {
      cause: options.cause,
      meta: {
        retryable: options.retryable,
        reason: options.reason,
        ...(options.kind ? { kind: options.kind } : {}),
        ...(options.messageId ? { messageId: options.messageId } : {}),
        ...(options.detail ? { detail: options.detail } : {}),
      },
    });
    this.retryable = options.retryable;
  }
}

/** addr-spec with a dot-atom local part (RFC 5322 3.4.1, 3.2.3); no quoted local parts, no whitespace. */
const ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
/** Any C0 control character or DEL. */
const CONTROL = /[\u0000-\u001f\u007f]/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Largest accepted body part, in characters. */
export const MAX_BODY_CHARS = 512 * 1024;

/** True when `address` is an addr-spec this service can send to (max 254 characters, RFC 5321 4.5.3.1.3). */
export function isMailAddress(address: string): boolean {
  return address.length <= 254 && ADDRESS.test(address) && !address.split('@')[0]!.startsWith('.') && !address.includes('..');
}

/** Schema of a {@link MailMessage}; issue messages name the field, never its value. */
export const MailMessageSchema = z.object({
  id: z.string({ error: 'is missing' }).regex(UUID, { error: 'must be a UUID' }),
  to: z.string({ error: 'is missing' }).refine(isMailAddress, { error: 'is not a valid email address' }),
  subject: z
    .string({ error: 'is missing' })
    .min(1, { error: 'is empty' })
    .max(200, { error: 'is longer than 200 characters' })
    .refine((s) => !CONTROL.test(s), { error: 'has a line break or control character' }),
  text: z.string({ error: 'is missing' }).min(1, { error: 'is empty' }).max(MAX_BODY_CHARS, { error: 'is too long' }),
  html: z.string({ error: 'is missing' }).min(1, { error: 'is empty' }).max(MAX_BODY_CHARS, { error: 'is too long' }),
  kind: z.enum(MAIL_KINDS, { error: `must be one of ${MAIL_KINDS.join(', ')}` }),
});

/**
 * Check a message before any adapter sends it.
 *
 * @returns the message, unchanged
 * @throws MailSendFailedError with `retryable: false`, `reason: 'invalid_message'` and a message naming the
 *   fields that are wrong (e.g. "Mail message refused: to is not a valid email address")
 */
export function validateMailMessage(message: MailMessage): MailMessage {
  const parsed = MailMessageSchema.safeParse(message);
  if (parsed.success) return message;
  const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'message'} ${i.message}`);
  const kind = MAIL_KINDS.find((k) => k === (message as { kind?: unknown })?.kind);
  const id = typeof message?.id === 'string' && UUID.test(message.id) ? message.id : undefined;
  throw new MailSendFailedError(`Mail message refused: ${problems.join('; ')}`, {
    retryable: false,
    reason: 'invalid_message',
    ...(kind ? { kind } : {}),
    ...(id ? { messageId: id } : {}),
  });
}
