/**
 * The activity envelope the bot accepts at `POST /api/messages`, checked before
 * the Bot Framework adapter, any handler or any store write sees it.
 *
 * Only the fields the bot reads or stores (the conversation reference keeps
 * `id`, `from`, `recipient`, `conversation`, `channelId`, `locale`, `serviceUrl`)
 * are checked; other fields pass through unchanged. Every limit sits well above
 * what Microsoft Teams sends (see `ACTIVITY_LIMITS`), so a refusal means a broken
 * or hostile client, never a real Teams turn. Messages name the field and the
 * rule, never the value sent (it may hold a secret).
 */
import { z } from 'zod';

/**
 * Longest accepted values, in UTF-16 code units (JavaScript string length) unless noted.
 *
 * Sources (shapes Teams sends, Microsoft Learn, Teams platform docs "Conversation basics",
 * "Send proactive messages", "Format your bot messages"):
 * - conversation ids: personal chat `a:1` + ~130 base64 characters; group and channel
 *   `19:<32 hex>@thread.tacv2` (+ `;messageid=<13 digits>` in a thread), meeting chats
 *   `19:meeting_<~60>@thread.v2`: all under 200. Limit 512.
 * - account ids: users `29:1` + ~80 base64 characters, bots `28:<app id GUID>` (39): limit 200
 *   (the store keeps ids of at most 200 characters, `storage/storage.schemas.ts`).
 * - every id is printable: no control characters (U+0000-U+001F, U+007F-U+009F); Teams never
 *   sends one, and the store refuses them.
 * - Entra ID object ids and tenant ids are GUIDs (36): limit 128.
 * - display names: Entra ID `displayName` is at most 256 characters: limit 512.
 * - activity ids: Teams message ids are 13-digit epoch milliseconds, invoke ids `f:` + ~20-40
 *   characters: limit 256 (`id`, `replyToId`).
 * - service URLs: `https://smba.trafficmanager.net/<region>/` (+ tenant id GUID): under 100. Limit 512.
 * - text: a Teams message is at most 100 KB encoded as UTF-16 (about 51,200 code units; bot
 *   message size limit, "Format your bot messages"); the compose box allows less. Limit 65,536.
 * - `from`, `recipient`, `conversation` as a whole (they are stored in the conversation
 *   reference): at most 4,096 bytes of JSON each; Teams sends a few hundred.
 * - activity types are short names (`message`, `conversationUpdate`, `invoke`): limit 64.
 */
export const ACTIVITY_LIMITS = {
  typeChars: 64,
  activityIdChars: 256,
  conversationIdChars: 512,
  accountIdChars: 200,
  objectIdChars: 128,
  tenantIdChars: 128,
  nameChars: 512,
  serviceUrlChars: 512,
  channelIdChars: 64,
  localeChars: 64,
  textChars: 65_536,
  accountJsonBytes: 4096,
} as const;

/** The one invoke name the bot answers: `Action.Execute` on its cards (Universal Actions). */
export const SUPPORTED_INVOKE = 'adaptiveCard/action' as const;

/** What the door decided about a posted activity. */
export type DoorVerdict =
  | { ok: true }
  | {
      ok: false;
      /** `BadRequest`: the envelope is malformed; `NotSupported`: a well-formed invoke the bot does not serve. */
      code: 'BadRequest' | 'NotSupported';
      /** Plain words naming the field and the rule, never the value. */
      message: string;
      /** True when the activity is an invoke (the answer is then an invoke error body). */
      invoke: boolean;
    };

const missingOr = (what: string) => (iss: { input: unknown }) => (iss.input === undefined ? 'is missing' : `must be ${what}`);

/** A required string of 1..max characters. */
const requiredText = (max: number) =>
  z
    .string({ error: missingOr('text') })
    .min(1, { error: 'is empty' })
    .max(max, { error: `is longer than ${max} characters` });

/** An optional string of at most max characters (null is taken as absent, as botbuilder does). */
const optionalText = (max: number) => z.string({ error: 'must be text' }).max(max, { error: `is longer than ${max} characters` }).nullish();

// eslint-disable-next-line no-control-regex -- the rule is about control characters
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
const PRINTABLE = { error: 'must be printable (no control characters)' } as const;

/** A required id: 1..max printable characters. */
const requiredId = (max: number) => requiredText(max).refine((s) => !CONTROL_CHARACTER.test(s), PRINTABLE);

/** An optional id: at most max printable characters. */
const optionalId = (max: number) =>
  z
    .string({ error: 'must be text' })
    .max(max, { error: `is longer than ${max} characters` })
    .refine((s) => !CONTROL_CHARACTER.test(s), PRINTABLE)
    .nullish();

/** An object that is at most `ACTIVITY_LIMITS.accountJsonBytes` of JSON (everything in it is stored). */
const boundedObject = <S extends z.ZodRawShape>(shape: S) =>
  z
    .looseObject(shape, { error: missingOr('an object') })
    .refine((o) => Buffer.byteLength(JSON.stringify(o)) <= ACTIVITY_LIMITS.accountJsonBytes, { error: `is larger than ${ACTIVITY_LIMITS.accountJsonBytes} bytes` });

/** A Teams channel account (`from`, `recipient`, a member of `membersAdded`). */
const account = boundedObject({
  id: requiredId(ACTIVITY_LIMITS.accountIdChars),
  name: optionalText(ACTIVITY_LIMITS.nameChars),
  aadObjectId: optionalId(ACTIVITY_LIMITS.objectIdChars),
});

/** `serviceUrl`: an absolute http(s) URL with a host and no credentials (Teams: `https://smba.trafficmanager.net/...`). */
const serviceUrl = requiredText(ACTIVITY_LIMITS.serviceUrlChars).refine(
  (s) => {
    if (!URL.canParse(s)) return false;
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.hostname !== '' && u.username === '' && u.password === '';
  },
  { error: 'is not an http(s) URL' },
);

/** `membersAdded` / `membersRemoved` of a `conversationUpdate` (botbuilder reads `m.id` of each). */
const members = z.array(account, { error: 'must be a list of members' }).nullish();

/**
 * The checked envelope (Bot Framework Activity schema, the fields this bot reads or stores).
 * Unknown fields pass through.
 */
export const ActivityEnvelopeSchema = z.looseObject({
  type: requiredText(ACTIVITY_LIMITS.typeChars),
  id: optionalId(ACTIVITY_LIMITS.activityIdChars),
  replyToId: optionalId(ACTIVITY_LIMITS.activityIdChars),
  channelId: optionalText(ACTIVITY_LIMITS.channelIdChars),
  locale: optionalText(ACTIVITY_LIMITS.localeChars),
  serviceUrl,
  from: account,
  recipient: account.nullish(),
  conversation: boundedObject({
    id: requiredId(ACTIVITY_LIMITS.conversationIdChars),
    tenantId: optionalId(ACTIVITY_LIMITS.tenantIdChars),
    name: optionalText(ACTIVITY_LIMITS.nameChars),
  }),
  channelData: z
    .looseObject(
      {
        tenant: z.looseObject({ id: optionalId(ACTIVITY_LIMITS.tenantIdChars) }, { error: 'must be an object' }).nullish(),
      },
      { error: 'must be an object' },
    )
    .nullish(),
  text: optionalText(ACTIVITY_LIMITS.textChars),
  name: z.string({ error: 'must be text' }).nullish(),
  membersAdded: members,
  membersRemoved: members,
});

/** The `value` an `adaptiveCard/action` invoke must carry: `{ action: { ... } }` (Universal Actions). */
const CardInvokeValueSchema = z.looseObject({ action: z.looseObject({}) });

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An invoke name safe to quote back: a protocol identifier such as `task/fetch`, not free text. */
const QUOTABLE_NAME = /^[A-Za-z][A-Za-z0-9/._-]{0,63}$/;

/** Field path as people read it: `membersAdded.0.id`. */
function fieldOf(path: ReadonlyArray<PropertyKey>): string {
  return path.map(String).join('.');
}

/**
 * Decide whether an activity may go on to the adapter.
 *
 * Order: a JSON object with a string `type`; then the envelope (first problem found, by field);
 * then, for invokes, the name (only `adaptiveCard/action` is served) and its `value.action`.
 *
 * @param body - the parsed JSON request body (anything)
 * @returns `{ ok: true }`, or the code, a message naming the field (never its value) and whether
 *   the activity is an invoke
 */
export function checkActivity(body: unknown): DoorVerdict {
  if (!isPlainObject(body) || typeof body['type'] !== 'string' || body['type'] === '') {
    return { ok: false, code: 'BadRequest', invoke: false, message: 'The request body must be a Bot Framework activity: a JSON object with a string "type".' };
  }
  const invoke = body['type'] === 'invoke';
  const parsed = ActivityEnvelopeSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = fieldOf(issue.path);
    const list = /^members(Added|Removed)$/.exec(String(issue.path[0] ?? ''))?.[0];
    // A member list is one field to the person reading the answer: say what a member must be.
    const rule = list ? `${list} must be a list of members, each an object with a string "id"` : null;
    const message = rule && issue.path.length === 1 ? `The activity's ${rule}.` : `The activity's ${field || 'body'} ${issue.message}${rule ? `; ${rule}` : ''}.`;
    return { ok: false, code: 'BadRequest', invoke, message };
  }
  if (!invoke) return { ok: true };
  const name = parsed.data.name;
  if (name === undefined || name === null || name === '') {
    return { ok: false, code: 'NotSupported', invoke, message: `The invoke has no "name"; Smartcard Assist answers only ${SUPPORTED_INVOKE} invokes (card buttons).` };
  }
  if (name !== SUPPORTED_INVOKE) {
    const quoted = QUOTABLE_NAME.test(name) ? `The invoke "${name}" is not supported` : 'This invoke name is not supported';
    return { ok: false, code: 'NotSupported', invoke, message: `${quoted}; Smartcard Assist answers only ${SUPPORTED_INVOKE} invokes (card buttons).` };
  }
  if (!CardInvokeValueSchema.safeParse(body['value']).success) {
    return { ok: false, code: 'BadRequest', invoke, message: 'The card action invoke needs "value.action" to be an object.' };
  }
  return { ok: true };
}
