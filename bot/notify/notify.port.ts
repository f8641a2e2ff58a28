/**
 * Notify port: how the service sends a text message (SMS), or an email built from a template held by the
 * carrier, whatever carries it (STYLE.md 3). It sits beside the mail port (`bot/mail/mail.port.ts`).
 *
 * Adapters: `outbox-sms.adapter.ts` (one JSON file per message under the data directory: the demo's default)
 * and `govuk-notify.adapter.ts` (GOV.UK Notify's v2 API through the `notifications-node-client` package).
 *
 * A message names a template by its `kind`; the adapter maps the kind to the carrier's template (GOV.UK Notify:
 * a template id from configuration) and fills the template's placeholders from `personalisation`. The
 * personalisation may hold a secret (the one-time code): adapters never put it in a log line, an error message
 * or error meta. `reference` is the non-secret handle the carrier stores with the message (GOV.UK Notify:
 * `reference`, searchable in its dashboard); the effect runner uses the effect id.
 */
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { isMailAddress } from '../mail/mail.port';

/** What a message is for: each kind has one template per channel. */
export const NOTIFY_KINDS = ['unlock_code'] as const;
export type NotifyKind = (typeof NOTIFY_KINDS)[number];

/** The channels a message can take. */
export const NOTIFY_CHANNELS = ['sms', 'email'] as const;
export type NotifyChannel = (typeof NOTIFY_CHANNELS)[number];

/**
 * Placeholders of the `unlock_code` templates (GOV.UK Notify writes them `((code))`, `((minutes))`,
 * `((expires_at))`). `code` is the secret.
 */
export interface UnlockCodePersonalisation {
  /** The one-time unlock code (digits). Secret: never logged. */
  code: string;
  /** How long the code works, in whole minutes, e.g. `15`. */
  minutes: string;
  /** When the code stops working, 24-hour clock with the zone, e.g. `09:45 GMT`. */
  expires_at: string;
}

interface MessageBase {
  /** Idempotency key (UUID, e.g. the effect id): a second send with the same id sends nothing new. */
  id: string;
  kind: NotifyKind;
  personalisation: UnlockCodePersonalisation;
  /**
   * Non-secret reference stored with the message by the carrier, 1-100 characters from `A-Za-z0-9._:-`
   * (GOV.UK Notify allows up to 1,000); never the code.
   */
  reference: string;
}

/** A text message to one mobile number. */
export interface SmsMessage extends MessageBase {
  channel: 'sms';
  /** Mobile number in E.164 form (ITU-T E.164), e.g. `+447700900123`. */
  to: string;
}

/** An email built from the carrier's template, to one address. */
export interface TemplatedEmailMessage extends MessageBase {
  channel: 'email';
  /** Recipient address (addr-spec, RFC 5322 3.4.1). */
  to: string;
}

export type NotifyMessage = SmsMessage | TemplatedEmailMessage;

/** Result of a send the carrier accepted (GOV.UK Notify: answered 201 Created), or had accepted under the same id. */
export interface NotifySendResult {
  status: 'sent';
  /** The carrier's id of the message (GOV.UK Notify: the notification id; outbox: the file name). */
  notificationId: string;
  /** The reference as sent. */
  reference: string;
}

export interface NotifyPort {
  /**
   * Send one message, at most once per `message.id` in this process.
   *
   * @param message - checked with {@link validateNotifyMessage} first
   * @returns `{ status: 'sent', ... }` only when the carrier accepted the message
   * @throws NotifySendFailedError (`NOTIFY.SEND_FAILED`) when it was not accepted; `meta.reason` says why and
   *   `meta.retryable` whether trying again later may work. Its message and meta never hold the number, the
   *   address or a personalisation value.
   */
  send(message: NotifyMessage): Promise<NotifySendResult>;
}

/** Error codes of the notify area. */
export const NOTIFY_ERROR_CODES = { SEND_FAILED: 'NOTIFY.SEND_FAILED' } as const;

/**
 * Why a send failed:
 * - `invalid_message`: refused here before sending (bad number, reference, no template for the channel);
 * - `rejected`: the carrier refused it (GOV.UK Notify 400 `ValidationError` / `BadRequestError`, or another 4xx);
 * - `auth`: the carrier refused the credentials (GOV.UK Notify 403 `AuthError`);
 * - `rate_limited`: still 429 when the retries ran out, or a daily limit (`TooManyRequestsError`);
 * - `provider`: 5xx when the retries ran out, or an answer other than 201;
 * - `network`: no answer (refused connection, reset, timeout) when the retries ran out;
 * - `io`: a local file could not be written (outbox).
 */
export type NotifyFailureReason = 'invalid_message' | 'rejected' | 'auth' | 'rate_limited' | 'provider' | 'network' | 'io';

/**
 * A message was not sent. The message and meta never hold the number, address or personalisation; meta holds
 * `retryable`, `reason`, `channel`, `kind`, `messageId` and, when there was an answer, `status` (HTTP),
 * `notifyError` (the error type, e.g. `RateLimitError`) and `attempts`.
 */
export class NotifySendFailedError extends AppError {
  readonly retryable: boolean;
  readonly reason: NotifyFailureReason;

  constructor(
    message: string,
    options: {
      retryable: boolean;
      reason: NotifyFailureReason;
      channel?: NotifyChannel;
      kind?: NotifyKind;
      messageId?: string;
      status?: number;
      notifyError?: string;
      attempts?: number;
      detail?: string;
    },
  ) {
    const { retryable, reason, ...rest } = options;
    const meta: Record<string, string | number | boolean> = { retryable, reason };
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) meta[k] = v;
    super(NOTIFY_ERROR_CODES.SEND_FAILED, message, { meta });
    this.retryable = retryable;
    this.reason = reason;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** E.164: `+`, a country code not starting with 0, 8-15 digits in all (ITU-T E.164 6.1). */
const E164 = /^\+[1-9]\d{7,14}$/;
const REFERENCE = /^[A-Za-z0-9._:-]{1,100}$/;

/** True when `value` is a phone number in E.164 form, e.g. `+447700900123`. */
export function isE164(value: string): boolean {
  return E164.test(value);
}

const personalisationSchema = z.object(
  {
    code: z.string({ error: 'is missing' }).regex(/^\d{6,12}$/, { error: 'must be 6-12 digits' }),
    minutes: z.string({ error: 'is missing' }).regex(/^\d{1,3}$/, { error: 'must be a whole number of minutes' }),
    expires_at: z.string({ error: 'is missing' }).min(1, { error: 'is empty' }).max(60, { error: 'is longer than 60 characters' }),
  },
  { error: 'is missing' },
);

const baseFields = {
  id: z.string({ error: 'is missing' }).regex(UUID, { error: 'must be a UUID' }),
  kind: z.enum(NOTIFY_KINDS, { error: `must be one of ${NOTIFY_KINDS.join(', ')}` }),
  personalisation: personalisationSchema,
  reference: z.string({ error: 'is missing' }).regex(REFERENCE, { error: 'must be 1-100 characters from A-Z a-z 0-9 . _ : -' }),
};

/** Schema of a {@link NotifyMessage}; issue messages name the field, never its value. */
const NotifyMessageSchema = z
  .discriminatedUnion(
    'channel',
    [
      z.object({ ...baseFields, channel: z.literal('sms'), to: z.string({ error: 'is missing' }).refine(isE164, { error: 'is not a mobile number in E.164 form (+447700900123)' }) }),
      z.object({ ...baseFields, channel: z.literal('email'), to: z.string({ error: 'is missing' }).refine(isMailAddress, { error: 'is not a valid email address' }) }),
    ],
    { error: `channel must be one of ${NOTIFY_CHANNELS.join(', ')}` },
  )
  .refine((m) => !m.reference.includes(m.personalisation.code), { error: 'must not contain the code', path: ['reference'] });

/**
 * Check a message before any adapter sends it.
 *
 * @returns the message, unchanged
 * @throws NotifySendFailedError with `retryable: false`, `reason: 'invalid_message'` and a message naming the
 *   fields that are wrong (e.g. "Notify message refused: to is not a mobile number in E.164 form (+447700900123)")
 */
export function validateNotifyMessage(message: NotifyMessage): NotifyMessage {
  const parsed = NotifyMessageSchema.safeParse(message);
  if (parsed.success) return message;
  const problems = parsed.error.issues.map((i) => (i.path.length ? `${i.path.map(String).join('.')} ${i.message}` : i.message));
  const m = message as Partial<NotifyMessage> | null | undefined;
  const channel = NOTIFY_CHANNELS.find((c) => c === m?.channel);
  const kind = NOTIFY_KINDS.find((k) => k === m?.kind);
  const id = typeof m?.id === 'string' && UUID.test(m.id) ? m.id : undefined;
  throw new NotifySendFailedError(`Notify message refused: ${problems.join('; ')}`, {
    retryable: false,
    reason: 'invalid_message',
    ...(channel ? { channel } : {}),
    ...(kind ? { kind } : {}),
    ...(id ? { messageId: id } : {}),
  });
}
