/**
 * A local stand-in for GOV.UK Notify's v2 API, over http on 127.0.0.1, for contract tests of the real
 * `notifications-node-client` (issue #14). It checks what the real service checks, as its public API
 * documentation describes it:
 *
 * - Authentication: `Authorization: Bearer <JWT>`, HS256 (RFC 7518 3.2) signed with the API key's secret part,
 *   `iss` = the service id, `iat` within 30 seconds of the server's clock. Missing header: 401 `AuthError`;
 *   unknown issuer, bad signature, another algorithm or a stale `iat`: 403 `AuthError`. Verified with `jose`.
 * - `POST /v2/notifications/sms` `{ phone_number, template_id, personalisation?, reference?, sms_sender_id? }` and
 *   `POST /v2/notifications/email` `{ email_address, template_id, personalisation?, reference?, email_reply_to_id? }`:
 *   400 `ValidationError` for a missing or malformed field (a phone number that is not a UK mobile), 400
 *   `BadRequestError` for an unknown template, a template of the other type, or a missing placeholder; else
 *   201 Created with `{ id, reference, content: { body, from_number } | { body, subject, from_email,
 *   one_click_unsubscribe_url }, uri, template: { id, version, uri } }`.
 * - `GET /v2/template/{id}`: 200 with the template, 404 `NoResultFound`.
 * - Every error body is `{ status_code, errors: [{ error, message }] }`.
 *
 * Tests script the next answers to notification POSTs (429 `RateLimitError` with Retry-After, 500 `Exception`, a
 * dropped connection, a 200 that is not 201) with {@link NotifyFake.script}; scripted answers are given after the
 * token is checked, as Notify's rate limiter runs after authentication. Every request is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';

/** A Notify template held by the fake. Placeholders are written `((name))`. */
export interface FakeTemplate {
  id: string;
  type: 'sms' | 'email';
  name: string;
  body: string;
  /** Email only. */
  subject?: string;
  version?: number;
}

/** One request as it arrived, and what the fake answered. Header names are lower-case. */
export interface NotifyRecordedRequest {
  seq: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  bodyText: string;
  /** Parsed JSON body, or undefined. */
  body: unknown;
  /** The token's header and claims when it verified, else null. */
  jwt: { header: Record<string, unknown>; claims: Record<string, unknown> } | null;
  /** Arrival, ms since the epoch (server clock). */
  receivedAt: number;
  status?: number;
  responseBody?: unknown;
}

/** A notification the fake accepted (answered 201). */
export interface AcceptedNotification {
  id: string;
  type: 'sms' | 'email';
  to: string;
  templateId: string;
  personalisation: Record<string, unknown>;
  reference: string | null;
  /** The template body with the placeholders filled, as the recipient would read it. */
  body: string;
}

/** A scripted answer to one notification POST. */
export type ScriptedAnswer =
  | { status: number; error?: string; message?: string; headers?: Record<string, string>; body?: unknown }
  | { drop: true };

/** Error answers as Notify words them (API documentation, "Error codes"). */
export const NOTIFY_ERRORS = {
  rateLimit: { status: 429, error: 'RateLimitError', message: 'Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds' },
  dailyLimit: { status: 429, error: 'TooManyRequestsError', message: 'Exceeded send limits (sms: 250000) for today' },
  server: { status: 500, error: 'Exception', message: 'Internal server error' },
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]{2,}$/;

/** A UK mobile as Notify accepts it (07xxx xxxxxx, +447..., 00447...), normalised to `07...`; else null. */
function ukMobile(raw: string): string | null {
  const digits = raw.replace(/[\s()-]/g, '');
  const local = digits.replace(/^\+44/, '0').replace(/^0044/, '0').replace(/^44(?=7)/, '0');
  return /^07\d{9}$/.test(local) ? local : null;
}

/** Server clock: not `Date.now`, so a test can move the client's clock alone (vi fake Date). */
const serverNow = (): number => performance.timeOrigin + performance.now();

/** A GOV.UK Notify API key for the fake: `{name}-{service id}-{secret}`. */
export function createNotifyTestKey(name = 'smartcard_assist_contract'): { apiKey: string; serviceId: string; secret: string } {
  const serviceId = randomUUID();
  const secret = randomUUID();
  return { apiKey: `${name}-${serviceId}-${secret}`, serviceId, secret };
}

class Refusal {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly message: string,
  ) {}
}

export class NotifyFake {
  private server: Server | null = null;
  /** `http://127.0.0.1:<port>` once started. */
  origin = '';
  readonly requests: NotifyRecordedRequest[] = [];
  readonly accepted: AcceptedNotification[] = [];
  private readonly scripted: ScriptedAnswer[] = [];
  private readonly templates = new Map<string, FakeTemplate>();

  /**
   * @param options.serviceId - the service whose key signs tokens (`iss`)
   * @param options.secret - the key's secret part (HS256 key, as UTF-8 bytes)
   * @param options.templates - the service's templates
   */
  constructor(private readonly options: { serviceId: string; secret: string; templates: FakeTemplate[] }) {
    for (const t of options.templates) this.templates.set(t.id, t);
  }

  /** Listen on a free loopback port. */
  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.origin;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Queue answers for the next notification POSTs (after authentication), in order. */
  script(...answers: ScriptedAnswer[]): void {
    this.scripted.push(...answers);
  }

  /** Forget requests, accepted notifications and scripted answers. */
  reset(): void {
    this.requests.length = 0;
    this.accepted.length = 0;
    this.scripted.length = 0;
  }

  /** Notification POSTs as they arrived. */
  notificationRequests(): NotifyRecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/v2/notifications/'));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const bodyText = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const path = (req.url ?? '/').split('?')[0]!;
    const rec: NotifyRecordedRequest = { seq: this.requests.length + 1, method: req.method ?? '', path, headers, bodyText, body: undefined, jwt: null, receivedAt: serverNow() };
    this.requests.push(rec);
    const answer = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      rec.status = status;
      rec.responseBody = body;
      res.writeHead(status, { 'content-type': 'application/json', ...extra });
      res.end(JSON.stringify(body));
    };
    const refuse = (r: Refusal, extra: Record<string, string> = {}) => answer(r.status, { status_code: r.status, errors: [{ error: r.error, message: r.message }] }, extra);
    try {
      rec.jwt = await this.authenticate(headers['authorization']);
      const sms = path === '/v2/notifications/sms';
      const email = path === '/v2/notifications/email';
      if (req.method === 'POST' && (sms || email)) {
        const next = this.scripted.shift();
        if (next && 'drop' in next) {
          rec.status = 0;
          req.socket.destroy();
          return;
        }
        if (next) {
          const body = next.body ?? { status_code: next.status, errors: [{ error: next.error ?? 'Exception', message: next.message ?? 'Internal server error' }] };
          answer(next.status, body, next.headers);
          return;
        }
        try {
          rec.body = JSON.parse(bodyText) as unknown;
        } catch {
          throw new Refusal(400, 'BadRequestError', 'Invalid JSON supplied in POST data');
        }
        answer(201, this.accept(sms ? 'sms' : 'email', rec.body));
        return;
      }
      const template = /^\/v2\/template\/([^/]+)$/.exec(path);
      if (req.method === 'GET' && template) {
        const t = this.templates.get(template[1]!);
        if (!t) throw new Refusal(404, 'NoResultFound', 'No result found');
        answer(200, this.templateData(t));
        return;
      }
      throw new Refusal(404, 'NoResultFound', 'The requested URL was not found on the server.');
    } catch (err) {
      if (err instanceof Refusal) refuse(err);
      else refuse(new Refusal(500, 'Exception', 'Internal server error'));
    }
  }

  /** Check the Bearer token as Notify does; returns its header and claims. */
  private async authenticate(authorization: string | undefined): Promise<NonNullable<NotifyRecordedRequest['jwt']>> {
    if (!authorization) throw new Refusal(401, 'AuthError', 'Unauthorized: authentication token must be provided');
    const m = /^Bearer (\S+)$/.exec(authorization);
    if (!m) throw new Refusal(401, 'AuthError', 'Unauthorized: authentication bearer scheme must be used');
    const token = m[1]!;
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as Record<string, unknown>;
      claims = decodeJwt(token) as Record<string, unknown>;
    } catch {
      throw new Refusal(403, 'AuthError', 'Invalid token: signature, api token is not valid');
    }
    if (typeof claims['iss'] !== 'string') throw new Refusal(403, 'AuthError', 'Invalid token: iss field not provided');
    if (claims['iss'] !== this.options.serviceId) throw new Refusal(403, 'AuthError', 'Invalid token: service not found');
    try {
      await jwtVerify(token, new TextEncoder().encode(this.options.secret), { algorithms: ['HS256'], issuer: this.options.serviceId, clockTolerance: 60 });
    } catch {
      throw new Refusal(403, 'AuthError', 'Invalid token: API key not found');
    }
    const iat = claims['iat'];
    if (typeof iat !== 'number' || Math.abs(serverNow() / 1000 - iat) > 30) throw new Refusal(403, 'AuthError', 'Error: Your system clock must be accurate to within 30 seconds');
    return { header, claims };
  }

  private templateData(t: FakeTemplate): Record<string, unknown> {
    return {
      id: t.id,
      name: t.name,
      type: t.type,
      created_at: '2026-11-02T09:00:00.000000Z',
      updated_at: null,
      created_by: 'someone@trust.example.org',
      version: t.version ?? 1,
      body: t.body,
      subject: t.type === 'email' ? (t.subject ?? null) : null,
      letter_contact_block: null,
      postage: null,
    };
  }

  /** Validate a notification body as Notify does and record it; returns the 201 body. */
  private accept(type: 'sms' | 'email', body: unknown): Record<string, unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Refusal(400, 'ValidationError', 'Request body is not an object');
    const b = body as Record<string, unknown>;
    const allowed = type === 'sms' ? ['phone_number', 'template_id', 'personalisation', 'reference', 'sms_sender_id'] : ['email_address', 'template_id', 'personalisation', 'reference', 'email_reply_to_id', 'one_click_unsubscribe_url'];
    const extra = Object.keys(b).find((k) => !allowed.includes(k));
    if (extra) throw new Refusal(400, 'ValidationError', `Additional properties are not allowed (${extra} was unexpected)`);
    const toField = type === 'sms' ? 'phone_number' : 'email_address';
    for (const f of [toField, 'template_id']) if (b[f] === undefined) throw new Refusal(400, 'ValidationError', `${f} is a required property`);
    if (typeof b['template_id'] !== 'string' || !UUID.test(b['template_id'])) throw new Refusal(400, 'ValidationError', 'template_id is not a valid UUID');
    const rawTo = b[toField];
    if (typeof rawTo !== 'string') throw new Refusal(400, 'ValidationError', `${toField} ${JSON.stringify(rawTo)} is not of type string`);
    let to: string;
    if (type === 'sms') {
      const mobile = ukMobile(rawTo);
      if (!mobile) throw new Refusal(400, 'ValidationError', 'phone_number Not a UK mobile number');
      to = mobile;
    } else {
      if (!EMAIL.test(rawTo)) throw new Refusal(400, 'ValidationError', 'email_address Not a valid email address');
      to = rawTo;
    }
    const personalisation = b['personalisation'] ?? {};
    if (typeof personalisation !== 'object' || personalisation === null || Array.isArray(personalisation)) throw new Refusal(400, 'ValidationError', 'personalisation is not of type object');
    const reference = b['reference'] ?? null;
    if (reference !== null && (typeof reference !== 'string' || reference.length > 1000)) throw new Refusal(400, 'ValidationError', 'reference is not a string of at most 1000 characters');
    const template = this.templates.get(b['template_id']);
    if (!template) throw new Refusal(400, 'BadRequestError', 'Template not found');
    if (template.type !== type) throw new Refusal(400, 'BadRequestError', `${template.type} template is not suitable for ${type} notification`);
    const p = personalisation as Record<string, unknown>;
    const fill = (text: string) => text.replace(/\(\(([^()]+)\)\)/g, (_m, name: string) => String(p[name]));
    const missing = [...new Set([...template.body.matchAll(/\(\(([^()]+)\)\)/g), ...(template.subject ?? '').matchAll(/\(\(([^()]+)\)\)/g)].map((x) => x[1]!))].filter((n) => p[n] === undefined);
    if (missing.length) throw new Refusal(400, 'BadRequestError', `Missing personalisation: ${missing.join(', ')}`);
    const id = randomUUID();
    const filled = fill(template.body);
    this.accepted.push({ id, type, to, templateId: template.id, personalisation: p, reference, body: filled });
    const templateRef = { id: template.id, version: template.version ?? 1, uri: `${this.origin}/services/${this.options.serviceId}/templates/${template.id}` };
    const content =
      type === 'sms'
        ? { body: filled, from_number: 'GOVUK' }
        : { body: filled, subject: fill(template.subject ?? ''), from_email: 'smartcard.assist@notifications.service.gov.uk', one_click_unsubscribe_url: null };
    return { id, reference, content, uri: `${this.origin}/v2/notifications/${id}`, template: templateRef, scheduled_for: null };
  }
}
