/**
 * Wire protocol between the bot and the workstation companion.
 *
 * This module is the one piece shared by `bot/` and `companion/` (STYLE.md 4).
 * Every message that crosses the link is validated with these zod schemas on
 * receipt; anything that does not parse is refused with a `protocol.error`
 * naming what is wrong, and never changes stored state.
 *
 * Transport:
 * - Pairing (RFC 8628 device-authorization pattern) is plain HTTP JSON:
 *   `POST /companion/pair/start` and `POST /companion/pair/poll`.
 * - After pairing, the companion keeps one outbound WebSocket to
 *   `GET /companion/link` with `Authorization: Bearer <deviceId>.<secret>`.
 *   Frames are UTF-8 JSON text, one message each, at most {@link MAX_FRAME_BYTES}.
 *
 * Correlation: a `command` from the bot carries an `id`; the companion answers
 * with exactly one `reply` carrying the same `id`. A `request` from the
 * companion likewise gets one `response` with its `id`.
 */
import { z } from 'zod';

/** Largest accepted WebSocket frame, in bytes. */
export const MAX_FRAME_BYTES = 16 * 1024;

/**
 * Protocol version; the companion sends it in the `hello` message.
 * 2: the PUK pair reaches the companion as the `unlock.authorised` COMMAND (sent by the
 * bot's PUK custody after the code was accepted), no longer in the response to
 * `unlock.submit_code` / `unlock.resume`, which now answer `unlock.accepted`.
 */
export const PROTOCOL_VERSION = 2 as const;

/** Card identifier: the CHUID GUID (NIST SP 800-73-4 Part 1, 3.1.2), 32 lower-case hex digits. */
export const CardIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'card id must be 32 lower-case hex digits (CHUID GUID)');

/** A PIV PUK: 8 digits (NIST SP 800-73-4 Part 2, 2.4.3 allows 8 bytes; this service issues digits). */
export const PukSchema = z.string().regex(/^[0-9]{8}$/, 'PUK must be 8 digits');

/** A one-time unlock code as the person types it: 8 digits, spaces and dashes removed by the sender. */
export const OneTimeCodeSchema = z.string().regex(/^[0-9]{8}$/, 'code must be 8 digits');

/** Journey identifier (UUID). */
export const JourneyIdSchema = z.string().uuid();

const MessageId = z.string().min(1).max(64);

// ---------------------------------------------------------------------------
// Pairing over HTTP (RFC 8628 pattern)
// ---------------------------------------------------------------------------

/** Body of `POST /companion/pair/start`. */
export const PairStartRequestSchema = z.object({
  /** Human name of the workstation, shown to the person in Teams. 1-64 printable chars. */
  workstation: z.string().trim().min(1).max(64).regex(/^[\p{L}\p{N} ._-]+$/u, 'workstation name has characters other than letters, digits, space . _ -'),
});
export type PairStartRequest = z.infer<typeof PairStartRequestSchema>;

/** Response of `POST /companion/pair/start` (RFC 8628 3.2). */
export const PairStartResponseSchema = z.object({
  /** Secret the companion polls with; never shown to a person. */
  deviceCode: z.string().min(32),
  /** Short code the person sends to the bot, formatted `XXXX-XXXX`. */
  userCode: z.string().regex(/^[A-Z0-9]{4}-[A-Z0-9]{4}$/),
  /** Seconds until both codes expire. */
  expiresIn: z.number().int().positive(),
  /** Minimum seconds between polls. */
  interval: z.number().int().positive(),
});
export type PairStartResponse = z.infer<typeof PairStartResponseSchema>;

/** Body of `POST /companion/pair/poll`. */
export const PairPollRequestSchema = z.object({ deviceCode: z.string().min(32).max(128) });

/**
 * Response of `POST /companion/pair/poll` (RFC 8628 3.5 error codes).
 * `approved` is returned once only: the credential is minted on that poll and
 * only its hash is stored; a later poll gets `expired_token`.
 */
export const PairPollResponseSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('authorization_pending') }),
  z.object({ status: z.literal('slow_down'), interval: z.number().int().positive() }),
  z.object({ status: z.literal('expired_token') }),
  z.object({ status: z.literal('access_denied') }),
  z.object({
    status: z.literal('approved'),
    deviceId: z.string().uuid(),
    /** Bearer credential `<deviceId>.<secret>`; the companion stores it in a file readable by its user only. */
    credential: z.string().min(40),
    /** Display name of the person the companion is now paired with. */
    personName: z.string(),
  }),
]);
export type PairPollResponse = z.infer<typeof PairPollResponseSchema>;

// ---------------------------------------------------------------------------
// Card facts the companion reports (never a passcode)
// ---------------------------------------------------------------------------

/** What the companion can tell about the card in its reader. */
export const CardStatusSchema = z.discriminatedUnion('present', [
  z.object({ present: z.literal(false), reader: z.string().nullable() }),
  z.object({
    present: z.literal(true),
    reader: z.string(),
    cardId: CardIdSchema,
    /** PIN retry counter read with an empty VERIFY (SP 800-73-4 Part 2, 3.2.1); 0 = blocked. */
    pinRetries: z.number().int().min(0).max(15),
    /**
     * The card's usable certificates (issue #14, added without a protocol version change): the PIV
     * Authentication (`9A`, object 5FC105) and Card Authentication (`9E`, object 5FC101) certificates
     * read with GET DATA (SP 800-73-4 Part 1, Table 3), each with its `notAfter` (RFC 5280 4.1.2.5) as
     * ISO 8601 UTC. `[]`: read, and the card has no usable certificate (no object, 6A82, or malformed
     * bytes, which the companion refuses and logs). Absent: not read (a companion from before issue #14).
     * The bot decides "expired" with its own clock.
     */
    certificates: z
      .array(z.object({ slot: z.enum(['9A', '9E']), notAfter: z.string().datetime() }))
      .max(2)
      .refine((list) => new Set(list.map((c) => c.slot)).size === list.length, 'a slot appears twice')
      .optional(),
  }),
]);
export type CardStatus = z.infer<typeof CardStatusSchema>;

// ---------------------------------------------------------------------------
// Bot -> companion commands
// ---------------------------------------------------------------------------

export const CommandSchema = z.discriminatedUnion('kind', [
  /** Read the card in the reader: identifier and PIN retry counter. Reply: `card.status`. */
  z.object({ kind: z.literal('card.read_status') }),
  /**
   * Ask the person, on the companion's local page, for the unlock code they were
   * sent and a new passcode (twice). Reply: `ack` at once; the code comes later as
   * an `unlock.submit_code` request.
   */
  z.object({
    kind: z.literal('unlock.prompt'),
    journeyId: JourneyIdSchema,
    cardId: CardIdSchema,
    /** ISO 8601 time the code expires, shown on the page. */
    codeExpiresAt: z.string().datetime(),
    /**
     * How the code was sent, so the page says where to find it: `email` or `sms` (a text
     * message; issue #14). Optional and additive: absent (a bot from before it) means email,
     * and a companion from before it ignores the field.
     */
    codeChannel: z.enum(['email', 'sms']).optional(),
  }),
  /**
   * The code was accepted and every check passed at the moment of sending: here is
   * the card's current PUK and the PUK to change it to. Sent by the bot's PUK custody
   * (`bot/puk/`) only to the one paired companion unblocking that card for that run.
   * The companion then runs RESET RETRY COUNTER and reports `unlock.result`.
   * Reply: `ack` at once (also when the companion no longer waits for it; it then
   * ignores it). Never logged: `puk` and `newPuk` are redacted log keys.
   */
  z.object({
    kind: z.literal('unlock.authorised'),
    journeyId: JourneyIdSchema,
    cardId: CardIdSchema,
    puk: PukSchema,
    newPuk: PukSchema,
    /** True when an earlier attempt may have left `newPuk` on the card already: try `puk`, then `newPuk`. */
    pukUncertain: z.boolean().optional(),
  }),
  /** Tell the companion the unlock journey ended (done, cancelled, locked out); it clears its page. Reply: `ack`. */
  z.object({
    kind: z.literal('unlock.closed'),
    journeyId: JourneyIdSchema,
    outcome: z.enum(['unlocked', 'cancelled', 'locked_out', 'expired', 'failed']),
    message: z.string().max(500),
  }),
  /**
   * Registration: ask the person, on the companion's local page, for their
   * current passcode and VERIFY it on the card in the reader. Reply: `ack` at
   * once; the outcome comes later as a `register.passcode_checked` request.
   * The passcode never leaves the workstation.
   */
  z.object({ kind: z.literal('register.prompt_passcode'), journeyId: JourneyIdSchema }),
  /** The registration journey no longer needs the passcode page; clear it. Reply: `ack`. */
  z.object({
    kind: z.literal('register.closed'),
    journeyId: JourneyIdSchema,
    outcome: z.enum(['verified', 'cancelled', 'expired', 'failed']),
    message: z.string().max(500),
  }),
]);
export type Command = z.infer<typeof CommandSchema>;
export type CommandKind = Command['kind'];

export const ReplySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('card.status'), status: CardStatusSchema }),
  z.object({
    kind: z.literal('ack'),
    /**
     * Answer to `unlock.prompt` only (issue #13, the page comes to the person): what the companion did
     * to bring its passcode page to the person: `opened` (in the browser, or a browser already shows
     * it), `notified` (a desktop notification that opens it), `none` (neither: headless,
     * `COMPANION_OPEN_PAGE=off` without notifications). Optional and additive: a companion from before
     * it omits it, and a bot from before it ignores it.
     */
    page: z.enum(['opened', 'notified', 'none']).optional(),
  }),
  z.object({
    kind: z.literal('error'),
    /** Namespaced error code, e.g. `CARD.NOT_PRESENT`, `CARD.READER_UNAVAILABLE`. */
    code: z.string().regex(/^[A-Z]+(\.[A-Z_]+)+$/),
    message: z.string().max(500),
  }),
]);
export type Reply = z.infer<typeof ReplySchema>;
/** How the companion brought its page to the person for an `unlock.prompt` (the `ack`'s `page`). */
export type PageShown = NonNullable<Extract<Reply, { kind: 'ack' }>['page']>;

// ---------------------------------------------------------------------------
// Companion -> bot requests (the companion starts them)
// ---------------------------------------------------------------------------

export const RequestSchema = z.discriminatedUnion('kind', [
  /**
   * The person typed the unlock code on the companion page. The new passcode
   * stays on the workstation. Response: `unlock.accepted` or `unlock.refused`; after
   * `unlock.accepted` the PUK pair follows as the `unlock.authorised` command.
   */
  z.object({ kind: z.literal('unlock.submit_code'), journeyId: JourneyIdSchema, cardId: CardIdSchema, code: OneTimeCodeSchema }),
  /**
   * The card was pulled (or the APDU failed) after a code was accepted; the
   * card is back and the companion asks for the PUK again to finish.
   * Response: `unlock.accepted` (the `unlock.authorised` command follows) or `unlock.refused`.
   *
   * The PUK goes only to the link session that presented the accepted code (the
   * `session` of its `welcome`). From another link session (the link was lost and
   * came back) the resume must carry the code again (`code`, added in issue #10;
   * optional, so a companion that still has its first link may leave it out); without
   * it the answer is `unlock.refused` with reason `code_needed`.
   */
  z.object({ kind: z.literal('unlock.resume'), journeyId: JourneyIdSchema, cardId: CardIdSchema, code: OneTimeCodeSchema.optional() }),
  /** Outcome of RESET RETRY COUNTER and the PUK change. Response: `ok`. */
  z.object({
    kind: z.literal('unlock.result'),
    journeyId: JourneyIdSchema,
    cardId: CardIdSchema,
    /** `unblocked`: new passcode set and PUK changed to `newPuk`. */
    outcome: z.enum(['unblocked', 'card_removed', 'puk_rejected', 'card_error']),
    /** Which PUK the card holds now, as far as the companion knows. */
    pukOnCard: z.enum(['current', 'new', 'unknown']),
    /** Status word of the failing command, 4 hex digits, when outcome is not `unblocked`. */
    sw: z.string().regex(/^[0-9A-F]{4}$/).optional(),
  }),
  /**
   * Registration: outcome of VERIFY with the passcode the person typed on the
   * companion page. Response: `ok`, or `register.refused` when no registration
   * is waiting for it.
   */
  z.object({
    kind: z.literal('register.passcode_checked'),
    journeyId: JourneyIdSchema,
    result: z.discriminatedUnion('outcome', [
      z.object({ outcome: z.literal('verified'), cardId: CardIdSchema }),
      /** 63Cx: wrong passcode; `triesLeft` from the status word (SP 800-73-4 Part 2, 3.2.1). */
      z.object({ outcome: z.literal('wrong_passcode'), cardId: CardIdSchema, triesLeft: z.number().int().min(0).max(15) }),
      /** 6983: the card's PIN is blocked. */
      z.object({ outcome: z.literal('blocked'), cardId: CardIdSchema }),
      z.object({ outcome: z.literal('no_card') }),
      z.object({ outcome: z.literal('card_error'), sw: z.string().regex(/^[0-9A-F]{4}$/).optional() }),
    ]),
  }),
  /**
   * The person unpairs this companion (its menu or `--unpair`): the bot revokes this
   * device's credential (the same operation as `npm run admin -- revoke-device`),
   * answers `ok`, then closes the link with {@link CloseCodes.UNAUTHORISED}. The
   * companion then deletes its stored credential. Added in issue #10.
   */
  z.object({ kind: z.literal('device.unpair') }),
]);
export type Request = z.infer<typeof RequestSchema>;

export const ResponseSchema = z.discriminatedUnion('kind', [
  /**
   * The code is right (or the resume is in order). No secret in it: the PUK pair follows
   * separately as the `unlock.authorised` command, sent through the bot's outbox.
   */
  z.object({ kind: z.literal('unlock.accepted'), journeyId: JourneyIdSchema }),
  z.object({
    kind: z.literal('unlock.refused'),
    /** Why, in words for the person (no secret in it). */
    /** `code_needed` (issue #10): an `unlock.resume` from another link session than the one that presented the code, without the code. */
    reason: z.enum(['wrong_code', 'expired', 'used', 'too_many_tries', 'wrong_card', 'not_waiting', 'unavailable', 'code_needed']),
    message: z.string().max(500),
    /** Tries left on this code when `reason` is `wrong_code`. */
    triesLeft: z.number().int().min(0).optional(),
  }),
  z.object({ kind: z.literal('ok') }),
  /** The bot did not accept a registration report (no registration waiting, wrong run). */
  z.object({ kind: z.literal('register.refused'), message: z.string().max(500) }),
]);
export type Response = z.infer<typeof ResponseSchema>;

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

export const CompanionToBotSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'),
    protocol: z.literal(PROTOCOL_VERSION),
    /** Companion software version, for support. */
    version: z.string().max(32),
    workstation: z.string().max(64),
  }),
  z.object({ type: z.literal('reply'), id: MessageId, reply: ReplySchema }),
  z.object({ type: z.literal('request'), id: MessageId, request: RequestSchema }),
  /** Card inserted or removed; sent as it happens, no answer expected. */
  z.object({ type: z.literal('card.event'), status: CardStatusSchema }),
]);
export type CompanionToBot = z.infer<typeof CompanionToBotSchema>;

export const BotToCompanionSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    deviceId: z.string().uuid(),
    personName: z.string(),
    /**
     * Id of this link session (issue #10), new for every accepted connection. A PUK pair is
     * sent only to the session that presented the accepted code; the companion needs it only
     * to know its link changed. Optional for bots before issue #10.
     */
    session: z.string().uuid().optional(),
  }),
  z.object({ type: z.literal('command'), id: MessageId, command: CommandSchema }),
  z.object({ type: z.literal('response'), id: MessageId, response: ResponseSchema }),
  /** The bot could not parse or accept a message; `id` echoes it where known. */
  z.object({ type: z.literal('protocol.error'), id: MessageId.optional(), message: z.string().max(500) }),
]);
export type BotToCompanion = z.infer<typeof BotToCompanionSchema>;

/** WebSocket close codes used by the bot (RFC 6455 7.4.2 private range). */
export const CloseCodes = {
  /** Credential unknown or revoked: the companion must pair again, not reconnect. */
  UNAUTHORISED: 4401,
  /** Another connection for the same device replaced this one (the bot heard nothing from this one when it probed). */
  REPLACED: 4409,
  /**
   * Refused: this device already has a live link (it answered the bot's ping), and the first
   * link is kept (issue #10). The companion retries slowly; another process probably holds
   * its credential.
   */
  IN_USE: 4423,
  /** No valid `hello` arrived in time after the upgrade (issue #10). */
  HELLO_TIMEOUT: 4408,
  /** Protocol version not supported. */
  UNSUPPORTED: 4426,
} as const;

/**
 * Parse one text frame into a typed message.
 *
 * @param raw - the frame as received (string or Buffer), at most {@link MAX_FRAME_BYTES}
 * @param schema - {@link CompanionToBotSchema} or {@link BotToCompanionSchema}
 * @returns `{ ok: true, value }` or `{ ok: false, error }` where `error` names the
 *   first offending field; never throws and never echoes field values (they may be secret)
 */
export function parseFrame<T>(raw: string | Buffer, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; error: string; id?: string } {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  if (Buffer.byteLength(text, 'utf8') > MAX_FRAME_BYTES) return { ok: false, error: `frame larger than ${MAX_FRAME_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: 'frame is not valid JSON' };
  }
  const id = typeof json === 'object' && json !== null && typeof (json as { id?: unknown }).id === 'string' ? ((json as { id: string }).id.slice(0, 64)) : undefined;
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(message)';
  return { ok: false, error: `${where}: ${issue?.message ?? 'invalid'}`, ...(id !== undefined ? { id } : {}) };
}
