/**
 * GOV.UK Notify adapter: sends text messages (and templated emails) through Notify's v2 API with the
 * `notifications-node-client` package, unchanged: it signs each request with an HS256 JWT (`iss` = the service
 * id, key = the API key's secret part) and POSTs `/v2/notifications/sms` or `/v2/notifications/email` with
 * `{ phone_number | email_address, template_id, personalisation, reference }`.
 *
 * A message counts as sent only when Notify answers 201 Created. 429 `RateLimitError`, 5xx and no answer are
 * retried up to `maxRetries` times, waiting `Retry-After` when given (up to `maxRetryWaitSeconds`; a longer wait
 * ends the send as retryable) or an exponential back-off with jitter; 400 and 403 are never retried
 * (`notify.errors.ts`). Every attempt has a time limit (`requestTimeoutSeconds`, through the axios instance the
 * client takes with `setClient`).
 *
 * Idempotent on the message id within this process: sends with the same id are serialised and a second send of
 * an accepted id returns the first result without calling Notify. Notify itself has no idempotency key; across a
 * crash between Notify's 201 and the journey recording it, the person may get the same code twice.
 *
 * Logs carry the message id, kind, channel, reference, Notify's notification id, status and attempt counts: never
 * the number, the address, the personalisation, the API key or the token.
 */
import axios from 'axios';
import { NotifyClient } from 'notifications-node-client';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { NotifyConfig } from './notify.config';
import { classifyNotifyFailure, type NotifyFailure } from './notify.errors';
import { NotifySendFailedError, validateNotifyMessage, type NotifyMessage, type NotifyPort, type NotifySendResult } from './notify.port';

/** Accepted ids remembered in one process (oldest forgotten first). */
const SENT_MEMORY = 10_000;

export interface GovukNotifyAdapterOptions {
  config: Extract<NotifyConfig, { transport: 'notify' }>;
  logger: Logger;
  /** First back-off step, ms (doubled per retry, with jitter); default 1000. */
  backoffBaseMs?: number;
  /** Waits between attempts; default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Sends through GOV.UK Notify; see the module comment. */
export class GovukNotifyAdapter implements NotifyPort {
  private readonly client: NotifyClient;
  private readonly config: GovukNotifyAdapterOptions['config'];
  private readonly logger: Logger;
  private readonly backoffBaseMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly inFlight = new Map<string, Promise<NotifySendResult>>();
  private readonly sent = new Map<string, NotifySendResult>();

  /** @param options - see {@link GovukNotifyAdapterOptions} */
  constructor(options: GovukNotifyAdapterOptions) {
    this.config = options.config;
    this.logger = options.logger;
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.client = new NotifyClient(this.config.baseUrl, this.config.apiKey.key.reveal());
    // The client's own transport, with a time limit per attempt and no redirects (Notify never redirects an API call).
    this.client.setClient(axios.create({ timeout: this.config.requestTimeoutSeconds * 1000, maxRedirects: 0 }));
  }

  /**
   * Start-up check: read each configured template (`GET /v2/template/{id}`, sends nothing), so a key Notify refuses
   * or a template id it does not know stops start-up naming the setting, instead of showing when a person asks
   * for a code. Notify being unreachable or failing (no answer, 429, 5xx) only logs a warning: sends retry later.
   *
   * @returns the templates checked (`channel`, `id`, `version`), or null when Notify could not be asked
   * @throws AppError `CONFIG.INVALID` with `meta.setting`: `NOTIFY_API_KEY` (403, the key was refused),
   *   `NOTIFY_SMS_TEMPLATE_ID` / `NOTIFY_EMAIL_TEMPLATE_ID` (400/404, or a template of the other type)
   */
  async verify(): Promise<Array<{ channel: 'sms' | 'email'; id: string; version: number | null }> | null> {
    const wanted: Array<{ channel: 'sms' | 'email'; id: string; setting: string }> = [{ channel: 'sms', id: this.config.templates.sms.unlock_code, setting: 'NOTIFY_SMS_TEMPLATE_ID' }];
    if (this.config.templates.email.unlock_code) wanted.push({ channel: 'email', id: this.config.templates.email.unlock_code, setting: 'NOTIFY_EMAIL_TEMPLATE_ID' });
    const checked: Array<{ channel: 'sms' | 'email'; id: string; version: number | null }> = [];
    for (const t of wanted) {
      let data: { type?: unknown; version?: unknown };
      try {
        data = (await this.client.getTemplateById(t.id)).data as { type?: unknown; version?: unknown };
      } catch (err) {
        const f = classifyNotifyFailure(err, [], this.now());
        const refuse = (setting: string, why: string): never => {
          throw new AppError('CONFIG.INVALID', `${setting}: ${why}`, { meta: { setting, status: f.status ?? null, notifyError: f.notifyError ?? null } });
        };
        if (f.reason === 'auth') refuse('NOTIFY_API_KEY', `GOV.UK Notify refused the API key (${f.status} ${f.notifyError ?? ''}${f.message ? `: ${f.message}` : ''}); check the key and the service it belongs to, and the server clock`);
        if (f.status === 400 || f.status === 404) refuse(t.setting, `GOV.UK Notify has no template with this id in the key's service (${f.status} ${f.notifyError ?? ''})`);
        this.logger.warn({ status: f.status ?? null, notifyError: f.notifyError ?? null, reason: f.reason }, 'GOV.UK Notify could not be reached at start-up; the templates were not checked');
        return null;
      }
      if (data.type !== t.channel) {
        throw new AppError('CONFIG.INVALID', `${t.setting}: the template is a${data.type === 'email' ? 'n' : ''} ${String(data.type)} template, not ${t.channel === 'sms' ? 'a text message' : 'an email'} template`, { meta: { setting: t.setting } });
      }
      checked.push({ channel: t.channel, id: t.id, version: typeof data.version === 'number' ? data.version : null });
    }
    this.logger.info({ baseUrl: this.config.baseUrl, serviceId: this.config.apiKey.serviceId, keyName: this.config.apiKey.name, templates: checked }, 'GOV.UK Notify ready');
    return checked;
  }

  /**
   * Send one message through Notify, once per id in this process.
   *
   * @param message - validated with `validateNotifyMessage`
   * @returns `{ status: 'sent', notificationId: <Notify's id>, reference }` after a 201
   * @throws NotifySendFailedError: `invalid_message` (no template for the channel, or a refused message);
   *   `rejected` (400) and `auth` (403), never retried; `rate_limited`, `provider`, `network` when retries ran
   *   out or `Retry-After` asked for more than `maxRetryWaitSeconds` (`retryable: true`)
   */
  async send(message: NotifyMessage): Promise<NotifySendResult> {
    validateNotifyMessage(message);
    const id = message.id.toLowerCase();
    const done = this.sent.get(id);
    if (done) return done;
    const previous = this.inFlight.get(id);
    if (previous) return previous.catch(() => this.send(message));
    const attempt = this.deliver(message).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, attempt);
    const result = await attempt;
    this.sent.set(id, result);
    if (this.sent.size > SENT_MEMORY) this.sent.delete(this.sent.keys().next().value!);
    return result;
  }

  private templateFor(message: NotifyMessage): string {
    const id = message.channel === 'sms' ? this.config.templates.sms[message.kind] : this.config.templates.email[message.kind];
    if (!id) {
      throw new NotifySendFailedError(`No GOV.UK Notify ${message.channel} template is configured for ${message.kind} (NOTIFY_${message.channel.toUpperCase()}_TEMPLATE_ID).`, {
        retryable: false,
        reason: 'invalid_message',
        channel: message.channel,
        kind: message.kind,
        messageId: message.id,
      });
    }
    return id;
  }

  private async deliver(message: NotifyMessage): Promise<NotifySendResult> {
    const templateId = this.templateFor(message);
    const { personalisation, reference } = message;
    const options = { personalisation: { ...personalisation }, reference };
    const secrets = [message.to, message.to.replace(/^\+44/, '0'), ...Object.values(personalisation)];
    const facts = { messageId: message.id, kind: message.kind, channel: message.channel, reference };
    const started = this.now();
    for (let attempt = 1; ; attempt++) {
      let failure: NotifyFailure;
      try {
        const response =
          message.channel === 'sms'
            ? await this.client.sendSms(templateId, message.to, options)
            : await this.client.sendEmail(templateId, message.to, options);
        const notificationId = typeof response.data?.id === 'string' ? response.data.id : '';
        if (response.status === 201 && notificationId) {
          this.logger.info({ ...facts, notificationId, status: 201, attempts: attempt, ms: this.now() - started }, `${message.channel === 'sms' ? 'text message' : 'email'} accepted by GOV.UK Notify`);
          return { status: 'sent', notificationId, reference };
        }
        // Only 201 Created means Notify took the message: anything else is not a send.
        failure = { status: response.status, retryable: false, reason: 'provider' };
      } catch (err) {
        failure = classifyNotifyFailure(err, secrets, this.now());
      }
      const maxWaitMs = this.config.maxRetryWaitSeconds * 1000;
      const waitMs = failure.retryAfterMs ?? Math.round(this.backoffBaseMs * 2 ** (attempt - 1) * (0.5 + Math.random() * 0.5));
      const outOfTries = attempt > this.config.maxRetries;
      if (!failure.retryable || outOfTries || waitMs > maxWaitMs) {
        const why = !failure.retryable ? 'not retried' : outOfTries ? `after ${attempt} attempts` : `Retry-After asked for ${Math.ceil(waitMs / 1000)} s, more than NOTIFY_MAX_RETRY_WAIT_SECONDS`;
        const error = this.failed(message, failure, attempt, why);
        this.logger.warn({ ...facts, status: failure.status ?? null, notifyError: failure.notifyError ?? null, attempts: attempt, retryable: error.retryable, reason: failure.reason }, 'GOV.UK Notify send failed');
        throw error;
      }
      this.logger.warn({ ...facts, status: failure.status ?? null, notifyError: failure.notifyError ?? null, attempt, waitMs }, 'GOV.UK Notify send failed; retrying');
      await this.sleep(waitMs);
    }
  }

  private failed(message: NotifyMessage, f: NotifyFailure, attempts: number, why: string): NotifySendFailedError {
    const what = f.status !== undefined ? `answered ${f.status}${f.notifyError ? ` ${f.notifyError}` : ''}${f.message ? `: ${f.message}` : ''}` : `did not answer${f.notifyError ? ` (${f.notifyError})` : ''}`;
    return new NotifySendFailedError(`GOV.UK Notify ${what} (${why}).`, {
      retryable: f.retryable,
      reason: f.reason,
      channel: message.channel,
      kind: message.kind,
      messageId: message.id,
      attempts,
      ...(f.status !== undefined ? { status: f.status } : {}),
      ...(f.notifyError ? { notifyError: f.notifyError } : {}),
    });
  }
}
