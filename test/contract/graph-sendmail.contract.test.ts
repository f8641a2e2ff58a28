/**
 * Contract tests: the Graph mail adapter, unchanged (its production middleware chain, real `@azure/identity`
 * client-secret credential, https), against a local fake that speaks Microsoft Graph's sendMail contract and
 * Entra ID's token endpoint (STYLE.md 17). The fake records what arrived; the tests assert on that.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { escapeHtml } from '../../bot/mail/mail.templates';
import { failed } from '../support/graph-fake/graph-adapter.client';
import { graphError } from '../support/graph-fake/graph-fake.server';
import {
  graphContractCanRun,
  secretsInOutput,
  startGraphContractFixture,
  stopGraphContractFixture,
  type GraphContractFixture,
} from '../support/graph-fake/graph-contract.fixture';

const canRun = graphContractCanRun();

describe.skipIf(!canRun)('Graph sendMail contract (local fake Graph over https)', () => {
  let f: GraphContractFixture;

  beforeAll(async () => {
    f = await startGraphContractFixture();
  });

  afterAll(async () => {
    await stopGraphContractFixture(f);
  });

  beforeEach(() => {
    f.fake.reset();
  });

  it('POSTs the JSON message to /v1.0/users/{sender}/sendMail with a Bearer token from the token endpoint, and resolves on 202', async () => {
    const handle = await f.driver.create(f.env());
    const { message } = f.unlockMessage();

    const result = await f.driver.send(handle, message);

    expect(result).toEqual({ ok: true, value: { status: 'sent' } });
    // The credential discovered the tenant's endpoints, then ran the client-credentials grant with the secret.
    const [metadata, token] = [f.fake.requestsOf('metadata'), f.fake.requestsOf('token')];
    expect(metadata).toHaveLength(1);
    expect(metadata[0]!.pathname).toBe(`/${f.tenantId}/v2.0/.well-known/openid-configuration`);
    expect(token).toHaveLength(1);
    expect(token[0]!.method).toBe('POST');
    expect(token[0]!.pathname).toBe(`/${f.tenantId}/oauth2/v2.0/token`);
    expect(token[0]!.body).toMatchObject({
      grant_type: 'client_credentials',
      client_id: f.clientId,
      client_secret: f.clientSecret,
      scope: `${f.fake.origin}/.default`,
    });
    expect(token[0]!.status).toBe(200);

    const sends = f.fake.requestsOf('sendMail');
    expect(sends).toHaveLength(1);
    const req = sends[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe(`/v1.0/users/${f.sender}/sendMail`);
    expect(req.headers.authorization).toBe(`Bearer ${f.fake.issuedTokens.at(-1)}`);
    expect(req.headers['content-type']).toMatch(/^application\/json\b/);
    expect(req.headers['client-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.body).toEqual({
      message: {
        subject: message.subject,
        body: { contentType: 'HTML', content: message.html },
        toRecipients: [{ emailAddress: { address: message.to } }],
      },
      saveToSentItems: false,
    });
    expect(req.status).toBe(202);
    const logged = await f.driver.waitForLog((l) => l.msg === 'mail sent through Microsoft Graph' && l.messageId === message.id);
    expect(logged).toMatchObject({ status: 202, requestId: req.responseHeaders!['request-id'], attempts: 1, kind: 'unlock_code' });
  });

  it('sends saveToSentItems: true when GRAPH_SAVE_TO_SENT_ITEMS=true, and reuses the cached token', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_SAVE_TO_SENT_ITEMS: 'true' }));
    const results = [await f.driver.send(handle, f.unlockMessage().message), await f.driver.send(handle, f.unlockMessage().message)];

    expect(results.every((r) => r.ok)).toBe(true);
    const sends = f.fake.requestsOf('sendMail');
    expect(sends.map((r) => (r.body as { saveToSentItems: unknown }).saveToSentItems)).toEqual([true, true]);
    expect(f.fake.requestsOf('token')).toHaveLength(1);
    expect(new Set(sends.map((r) => r.headers.authorization)).size).toBe(1);
  });

  it('sends a message id once: a repeat of a sent id sends nothing', async () => {
    const handle = await f.driver.create(f.env());
    const { message } = f.unlockMessage();

    const first = await f.driver.send(handle, message);
    const second = await f.driver.send(handle, message);

    expect([first.ok, second.ok]).toEqual([true, true]);
    expect(f.fake.requestsOf('sendMail')).toHaveLength(1);
  });

  it('escapes an HTML display name: the received body holds it as text, not markup', async () => {
    const handle = await f.driver.create(f.env());
    const displayName = `<img src=x onerror="alert('x')"> O'Neil & <b>Co</b>`;
    const { message } = f.unlockMessage({ displayName });

    expect((await f.driver.send(handle, message)).ok).toBe(true);

    const content = (f.fake.requestsOf('sendMail')[0]!.body as { message: { body: { content: string } } }).message.body.content;
    expect(content).toContain(`Hello ${escapeHtml(displayName)},`);
    expect(content).toContain('&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt; O&#39;Neil &amp; &lt;b&gt;Co&lt;/b&gt;');
    expect(content).not.toContain('<img');
    expect(content).not.toContain('<b>Co');
  });

  it('carries every line of the plain-text part in the HTML body it sends', async () => {
    const handle = await f.driver.create(f.env());
    const { message, code } = f.unlockMessage();
    expect((await f.driver.send(handle, message)).ok).toBe(true);

    const html = (f.fake.requestsOf('sendMail')[0]!.body as { message: { body: { content: string } } }).message.body.content;
    const visible = html
      .replace(/<title>[\s\S]*?<\/title>/, '')
      .replace(/<br\s*\/?>/g, '\n')
      .replace(/<[^>]+>/g, ' ')
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
      .replace(/\s+/g, ' ');
    const lines = message.text.split('\n').map((l) => l.trim()).filter(Boolean);
    expect(lines).toContain(code);
    for (const line of lines) expect(visible).toContain(line.replace(/\s+/g, ' '));
  });

  it('400 with a Graph error body: MAIL.SEND_FAILED, not retryable, status and request-id from Graph, no retry, nothing personal in the message', async () => {
    const handle = await f.driver.create(f.env());
    const { message, code } = f.unlockMessage();
    f.fake.queueSendMail(graphError(400, 'ErrorInvalidRecipients', `The recipient ${message.to} is not valid.`));

    const error = failed(await f.driver.send(handle, message));

    const sends = f.fake.requestsOf('sendMail');
    expect(sends).toHaveLength(1);
    expect(sends[0]!.status).toBe(400);
    expect(error.code).toBe('MAIL.SEND_FAILED');
    expect(error.meta).toMatchObject({
      retryable: false,
      reason: 'provider',
      status: 400,
      requestId: sends[0]!.responseHeaders!['request-id'],
      graphCode: 'ErrorInvalidRecipients',
      attempts: 1,
      kind: 'unlock_code',
      messageId: message.id,
    });
    const text = JSON.stringify(error);
    expect(text).not.toContain(message.to);
    expect(text).not.toContain(code);
    expect(text).not.toContain(message.subject);
  });

  it('403 ErrorAccessDenied when the application access policy leaves the sender mailbox out: not retryable, no retry', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_SENDER: f.outsidePolicySender }));

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    const sends = f.fake.requestsOf('sendMail');
    expect(sends).toHaveLength(1);
    expect(sends[0]!.url).toBe(`/v1.0/users/${f.outsidePolicySender}/sendMail`);
    expect(sends[0]!.status).toBe(403);
    expect(error.code).toBe('MAIL.SEND_FAILED');
    expect(error.meta).toMatchObject({ retryable: false, status: 403, graphCode: 'ErrorAccessDenied', requestId: sends[0]!.responseHeaders!['request-id'] });
    expect(error.message).toContain('GRAPH_SENDER');
    expect(error.message).toContain('Mail.Send');
  });

  it.each([
    [400, 'ErrorInvalidRequest', false],
    [401, 'InvalidAuthenticationToken', false],
    [403, 'ErrorAccessDenied', false],
    [404, 'ErrorInvalidUser', false],
    [500, 'InternalServerError', true],
    [504, 'GatewayTimeout', true],
  ])('HTTP %i %s is not retried by the adapter (retryable later: %s)', async (status, code, retryable) => {
    const handle = await f.driver.create(f.env(), { backoffBaseMs: 10 });
    f.fake.queueSendMail(graphError(status, code, 'scripted'), { status: 202 });

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(f.fake.requestsOf('sendMail').map((r) => r.status)).toEqual([status]);
    expect(error.meta).toMatchObject({ retryable, status, graphCode: code, attempts: 1 });
  });

  it('429 with Retry-After in seconds, then 202: retried once, after at least the wait (times recorded by the fake)', async () => {
    const handle = await f.driver.create(f.env());
    f.fake.queueSendMail(graphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': '2' }));

    const result = await f.driver.send(handle, f.unlockMessage().message);

    expect(result.ok).toBe(true);
    const [first, second] = f.fake.requestsOf('sendMail');
    expect([first!.status, second!.status]).toEqual([429, 202]);
    expect(second!.receivedAt - first!.respondedAt!).toBeGreaterThanOrEqual(2000);
    expect(second!.headers['retry-attempt']).toBe('1');
    expect(first!.headers['retry-attempt']).toBeUndefined();
    // The same request again: same body, same token, same client-request-id.
    expect(second!.bodyText).toBe(first!.bodyText);
    expect(second!.headers.authorization).toBe(first!.headers.authorization);
    expect(second!.headers['client-request-id']).toBe(first!.headers['client-request-id']);
    const warned = await f.driver.waitForLog((l) => l.msg === 'Graph send throttled or unavailable; retrying');
    expect(warned).toMatchObject({ status: 429, waitMs: 2000, retry: 1, retryAfter: true, requestId: first!.responseHeaders!['request-id'] });
  });

  it('429 with Retry-After as an HTTP date, then 202: the retry arrives no earlier than that date', async () => {
    const handle = await f.driver.create(f.env());
    const at = Math.ceil((Date.now() + 2500) / 1000) * 1000;
    f.fake.queueSendMail(graphError(429, 'TooManyRequests', 'Too many requests.', { 'retry-after': new Date(at).toUTCString() }));

    const result = await f.driver.send(handle, f.unlockMessage().message);

    expect(result.ok).toBe(true);
    const [first, second] = f.fake.requestsOf('sendMail');
    expect([first!.status, second!.status]).toEqual([429, 202]);
    expect(first!.respondedAt!).toBeLessThan(at);
    expect(second!.receivedAt).toBeGreaterThanOrEqual(at);
  });

  it('503 with Retry-After, then 202: retried once after the wait', async () => {
    const handle = await f.driver.create(f.env());
    f.fake.queueSendMail(graphError(503, 'ServiceUnavailable', 'Service unavailable.', { 'retry-after': '1' }));

    const result = await f.driver.send(handle, f.unlockMessage().message);

    expect(result.ok).toBe(true);
    const [first, second, ...rest] = f.fake.requestsOf('sendMail');
    expect(rest).toHaveLength(0);
    expect([first!.status, second!.status]).toEqual([503, 202]);
    expect(second!.receivedAt - first!.respondedAt!).toBeGreaterThanOrEqual(1000);
  });

  it('repeated 503 gives up after the ceiling (3 retries), with back-off, retryable, status and request-id of the last answer', async () => {
    const handle = await f.driver.create(f.env(), { backoffBaseMs: 50 });
    const unavailable = graphError(503, 'ServiceUnavailable', 'Service unavailable.');
    f.fake.queueSendMail(unavailable, unavailable, unavailable, unavailable, { status: 202 });

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    const sends = f.fake.requestsOf('sendMail');
    expect(sends.map((r) => r.status)).toEqual([503, 503, 503, 503]);
    expect(sends.map((r) => r.headers['retry-attempt'])).toEqual([undefined, '1', '2', '3']);
    // Exponential back-off without Retry-After: at least 50, 100, 200 ms between an answer and the next try.
    const gaps = sends.slice(1).map((r, i) => r.receivedAt - sends[i]!.respondedAt!);
    expect(gaps[0]).toBeGreaterThanOrEqual(50);
    expect(gaps[1]).toBeGreaterThanOrEqual(100);
    expect(gaps[2]).toBeGreaterThanOrEqual(200);
    expect(error.code).toBe('MAIL.SEND_FAILED');
    expect(error.meta).toMatchObject({ retryable: true, status: 503, attempts: 4, requestId: sends[3]!.responseHeaders!['request-id'] });
  });

  it('a Retry-After beyond the ceiling ends the send at once, retryable, with the asked wait', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_MAX_RETRY_WAIT_SECONDS: '5' }));
    f.fake.queueSendMail(graphError(429, 'ApplicationThrottled', 'Throttled.', { 'retry-after': '120' }), { status: 202 });

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(f.fake.requestsOf('sendMail').map((r) => r.status)).toEqual([429]);
    expect(error.meta).toMatchObject({ retryable: true, status: 429, retryAfterSeconds: 120, attempts: 1 });
  });

  it('an attempt that gets no answer within GRAPH_REQUEST_TIMEOUT_SECONDS ends the send, retryable, without a second POST', async () => {
    const handle = await f.driver.create(f.env({ GRAPH_REQUEST_TIMEOUT_SECONDS: '1' }));
    f.fake.queueSendMail({ status: 202, holdMs: 1500 }, { status: 202 });

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(error.code).toBe('MAIL.SEND_FAILED');
    expect(error.meta).toMatchObject({ retryable: true, status: null, requestId: null, graphCode: 'ETIMEDOUT', attempts: 1 });
    expect(error.message).toContain('may or may not have been sent');
    await new Promise((r) => setTimeout(r, 700));
    expect(f.fake.requestsOf('sendMail')).toHaveLength(1);
  });

  it('a success status other than 202 does not count as sent', async () => {
    const handle = await f.driver.create(f.env());
    f.fake.queueSendMail({ status: 200, rawBody: '{}', headers: { 'content-type': 'application/json' } });

    const error = failed(await f.driver.send(handle, f.unlockMessage().message));

    expect(error.meta).toMatchObject({ status: 200, retryable: false });
  });

  it.each([4, 2])('keeps at most GRAPH_MAX_CONCURRENCY=%i sends in flight for the mailbox (observed by the fake)', async (limit) => {
    const handle = await f.driver.create(f.env({ GRAPH_MAX_CONCURRENCY: String(limit) }));
    f.fake.sendMailHoldMs = 200;
    const messages = Array.from({ length: 10 }, () => f.unlockMessage().message);

    const results = await f.driver.sendAll(handle, messages);

    expect(results.filter((r) => r.ok)).toHaveLength(10);
    const sends = f.fake.requestsOf('sendMail');
    expect(sends).toHaveLength(10);
    expect(new Set(sends.map((r) => (r.body as { message: { subject: string; body: { content: string } } }).message.body.content)).size).toBe(10);
    expect(f.fake.maxInFlight).toBe(limit);
  });

  it('writes no secret in any log line: client secret, access tokens, one-time codes', async () => {
    expect(f.fake.issuedTokens.length).toBeGreaterThan(0);
    const lines = f.driver.logLines();
    expect(lines.some((l) => l.msg === 'mail sent through Microsoft Graph')).toBe(true);
    expect(lines.some((l) => l.msg === 'mail not sent through Microsoft Graph')).toBe(true);
    expect(secretsInOutput(f)).toEqual([]);
    expect(f.driver.stdout + f.driver.stderr).not.toMatch(/Bearer\s+\S/);
  });
});
