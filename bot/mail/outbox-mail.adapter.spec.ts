import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../common/logger';
import { AppError } from '../../common/app-error';
import { OutboxMailAdapter, pruneOutbox, readOutbox } from './outbox-mail.adapter';
import { unlockCodeMail } from './mail.templates';
import type { MailMessage } from './mail.port';
import { parseMimeMessage } from './mime-message';

const CODE = '40718263';
const TO = 'alex.wilber@nhs.net';
const NOW = new Date('2026-07-03T08:45:09Z');

let root: string;
let dir: string;
let logLines: Array<Record<string, unknown>>;
let rawLog: string;

function adapter(options: { dir?: string; now?: Date; retention?: ConstructorParameters<typeof OutboxMailAdapter>[0]['retention'] } = {}) {
  const logger = createLogger({
    name: 'mail-test',
    level: 'debug',
    destination: {
      write(line: string) {
        rawLog += line;
        logLines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  const now = options.now ?? NOW;
  return new OutboxMailAdapter({ dir: options.dir ?? dir, logger, from: { name: 'Smartcard Assist', address: 'no-reply@example.nhs.uk' }, now: () => now, ...(options.retention ? { retention: options.retention } : {}) });
}

function codeMessage(id = randomUUID()): MailMessage {
  const body = unlockCodeMail({ displayName: 'Alex Wilber', code: CODE, expiresAt: new Date('2026-07-03T09:00:09Z'), minutes: 15, timeZone: 'Europe/London', raContact: 'ra.team@nhs.net' });
  return { id, to: TO, kind: 'unlock_code', ...body };
}

async function emlFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.eml'));
}

async function expectRefused(promise: Promise<unknown>, match: RegExp, retryable: boolean) {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  const appError = err as AppError;
  expect(appError.code).toBe('MAIL.SEND_FAILED');
  expect(appError.meta['retryable']).toBe(retryable);
  expect(appError.message).toMatch(match);
  expect(JSON.stringify(appError.toJSON())).not.toContain(TO);
  expect(JSON.stringify(appError.toJSON())).not.toContain(CODE);
  return appError;
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'outbox-spec-'));
  dir = join(root, 'data', 'outbox');
  logLines = [];
  rawLog = '';
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('OutboxMailAdapter', () => {
  it('writes one RFC 5322 file named <yyyymmddThhmmss>-<kind>-<id>.eml, readable only by its owner', async () => {
    const message = codeMessage();
    const result = await adapter().send(message);
    const expectedName = `20260703T084509-unlock_code-${message.id}.eml`;
    expect(result).toEqual({ status: 'sent', providerMessageId: expectedName });
    expect((await readdir(dir)).sort()).toEqual(['.ids', expectedName]);
    expect((await stat(join(dir, expectedName))).mode & 0o777).toBe(0o600);
    // The id marker (issue #15): only the file name, owner-only, in an owner-only folder.
    expect(await readFile(join(dir, '.ids', message.id), 'utf8')).toBe(expectedName);
    expect((await stat(join(dir, '.ids', message.id))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, '.ids'))).mode & 0o777).toBe(0o700);

    const raw = await readFile(join(dir, expectedName), 'utf8');
    const headerBlock = raw.slice(0, raw.indexOf('\r\n\r\n'));
    expect(headerBlock).toContain('From: "Smartcard Assist" <no-reply@example.nhs.uk>');
    expect(headerBlock).toContain(`To: ${TO}`);
    expect(headerBlock).toContain('Subject: Your smartcard unlock code');
    expect(headerBlock).toContain('Date: Fri, 03 Jul 2026 08:45:09 +0000');
    expect(headerBlock).toContain(`Message-ID: <${message.id}@example.nhs.uk>`);
    expect(headerBlock).toContain('MIME-Version: 1.0');
    expect(headerBlock).toMatch(/Content-Type: multipart\/alternative; boundary=/);

    const parsed = parseMimeMessage(raw);
    expect(parsed.text).toBe(message.text);
    expect(parsed.html).toBe(message.html);
    expect(raw).toContain(`\r\n${CODE}\r\n`);
  });

  it('logs one line "mail written to outbox" with the file and kind, and never the address or body', async () => {
    const message = codeMessage();
    await adapter().send(message);
    const written = logLines.filter((l) => l['msg'] === 'mail written to outbox');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ file: join(dir, `20260703T084509-unlock_code-${message.id}.eml`), kind: 'unlock_code' });
    expect(rawLog).not.toContain(CODE);
    expect(rawLog).not.toContain(TO);
    expect(rawLog).not.toContain('Alex Wilber');
  });

  it('is idempotent on id: a second send writes nothing new and returns sent', async () => {
    const message = codeMessage();
    const mail = adapter();
    const first = await mail.send(message);
    const before = await readFile(join(dir, first.providerMessageId!), 'utf8');
    const second = await adapter().send({ ...message, subject: 'A different subject' });
    expect(second).toEqual(first);
    expect(await emlFiles()).toEqual([first.providerMessageId]);
    expect(await readFile(join(dir, first.providerMessageId!), 'utf8')).toBe(before);
    expect(logLines.filter((l) => l['msg'] === 'mail written to outbox')).toHaveLength(1);
  });

  it('writes one file when the same id is sent many times at once', async () => {
    const message = codeMessage();
    const mail = adapter();
    const results = await Promise.all(Array.from({ length: 8 }, () => mail.send(message)));
    expect(new Set(results.map((r) => r.providerMessageId)).size).toBe(1);
    expect(await emlFiles()).toHaveLength(1);
  });

  it('writes separate files for separate ids, leaves no temporary files, and readOutbox reads them back', async () => {
    const mail = adapter();
    const a = codeMessage();
    const b = { ...codeMessage(), kind: 'unlock_notice' as const, subject: 'Your smartcard was unlocked', text: 'notice\n', html: '<p>notice</p>\n' };
    await mail.send(a);
    await mail.send(b);
    expect((await readdir(dir)).sort()).toEqual(['.ids', `20260703T084509-unlock_code-${a.id}.eml`, `20260703T084509-unlock_notice-${b.id}.eml`].sort());
    expect((await readdir(join(dir, '.ids'))).sort()).toEqual([a.id, b.id].sort());
    const entries = await readOutbox(dir);
    expect(entries.map((e) => [e.kind, e.id, e.headers['to']])).toEqual(
      expect.arrayContaining([['unlock_code', a.id, TO], ['unlock_notice', b.id, TO]]),
    );
    expect(entries.find((e) => e.id === a.id)!.text).toContain(CODE);
    expect(await readOutbox(join(root, 'missing'))).toEqual([]);
  });

  it('refuses an id that is not a UUID (no path tricks) and writes nothing', async () => {
    await expectRefused(adapter().send({ ...codeMessage(), id: '../../escape' }), /Mail message refused: id must be a UUID/, false);
    await expect(readdir(dir)).rejects.toThrow();
    await expect(readdir(root)).resolves.toEqual([]);
  });

  it('refuses header injection in the subject and a bad address, without echoing them', async () => {
    await expectRefused(adapter().send({ ...codeMessage(), subject: 'Hi\r\nBcc: eve@evil.example' }), /subject has a line break or control character/, false);
    await expectRefused(adapter().send({ ...codeMessage(), to: `${TO}\r\nBcc: eve@evil.example` }), /to is not a valid email address/, false);
    await expectRefused(adapter().send({ ...codeMessage(), kind: 'spam' as never }), /kind must be one of/, false);
  });

  it('fails with MAIL.SEND_FAILED, not retryable, when the outbox folder is a file', async () => {
    await writeFile(join(root, 'not-a-dir'), 'x');
    const err = await expectRefused(adapter({ dir: join(root, 'not-a-dir') }).send(codeMessage()), /Could not write the mail to the outbox/, false);
    expect(err.meta['reason']).toBe('io');
    expect(err.meta['kind']).toBe('unlock_code');
  });

  it('refuses an invalid sender address at construction', () => {
    const logger = createLogger({ name: 't', level: 'silent' });
    expect(() => new OutboxMailAdapter({ dir, logger, from: { address: 'not an address' } })).toThrow(/sender address/);
  });
});

describe('outbox markers and retention (issue #15)', () => {
  it('a marker whose message file is gone is rewritten with the message on the next send', async () => {
    const message = codeMessage();
    const first = await adapter().send(message);
    await rm(join(dir, first.providerMessageId!));
    const later = new Date('2026-07-03T09:00:00Z');
    const again = await adapter({ now: later }).send(message);
    expect(again.providerMessageId).toBe(`20260703T090000-unlock_code-${message.id}.eml`);
    expect(await emlFiles()).toEqual([again.providerMessageId]);
    expect(await readFile(join(dir, '.ids', message.id), 'utf8')).toBe(again.providerMessageId);
    expect((await readOutbox(dir)).map((e) => e.id)).toEqual([message.id]);
  });

  it('pruneOutbox removes messages older than maxAge, then the oldest beyond maxFiles, with their markers; other files stay', async () => {
    const times = ['2026-07-01T08:00:00Z', '2026-07-02T08:00:00Z', '2026-07-03T07:00:00Z', '2026-07-03T08:00:00Z', '2026-07-03T08:30:00Z'];
    const sent: string[] = [];
    for (const t of times) sent.push((await adapter({ now: new Date(t) }).send(codeMessage())).providerMessageId!);
    await writeFile(join(dir, 'README.txt'), 'not a message');
    const ids = sent.map((n) => n.slice(-40, -4));

    const byAge = await pruneOutbox(dir, { maxAgeMs: 24 * 3600_000, maxFiles: null, now: NOW });
    expect(byAge).toEqual({ removed: 2, kept: 3 });
    expect((await emlFiles()).sort()).toEqual(sent.slice(2).sort());
    expect((await readdir(join(dir, '.ids'))).sort()).toEqual(ids.slice(2).sort());

    const byCount = await pruneOutbox(dir, { maxAgeMs: null, maxFiles: 1, now: NOW });
    expect(byCount).toEqual({ removed: 2, kept: 1 });
    expect(await emlFiles()).toEqual([sent[4]]);
    expect(await readdir(join(dir, '.ids'))).toEqual([ids[4]]);
    expect(await readFile(join(dir, 'README.txt'), 'utf8')).toBe('not a message');

    expect(await pruneOutbox(dir, { maxAgeMs: null, maxFiles: null, now: NOW })).toEqual({ removed: 0, kept: 1 });
    expect(await pruneOutbox(join(root, 'missing'), { maxAgeMs: 1, maxFiles: 1, now: NOW })).toEqual({ removed: 0, kept: 0 });
  });

  it('removes markers whose message a relay took, once older than an hour; a fresh one stays', async () => {
    const mail = adapter();
    const [taken, fresh, stays] = [codeMessage(), codeMessage(), codeMessage()];
    const sent = await Promise.all([mail.send(taken), mail.send(fresh), mail.send(stays)]);
    await rm(join(dir, sent[0].providerMessageId!));
    await rm(join(dir, sent[1].providerMessageId!));
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(dir, '.ids', taken.id), twoHoursAgo, twoHoursAgo);
    await utimes(join(dir, '.ids', stays.id), twoHoursAgo, twoHoursAgo);
    expect(await pruneOutbox(dir, { maxAgeMs: null, maxFiles: null, now: NOW })).toEqual({ removed: 0, kept: 1, orphanMarkers: 1 });
    expect((await readdir(join(dir, '.ids'))).sort()).toEqual([fresh.id, stays.id].sort());
    expect(await emlFiles()).toEqual([sent[2].providerMessageId]);
  });

  it('a pruned message sent again is written again', async () => {
    const message = codeMessage();
    await adapter({ now: new Date('2026-06-01T00:00:00Z') }).send(message);
    await pruneOutbox(dir, { maxAgeMs: 3600_000, maxFiles: null, now: NOW });
    expect(await emlFiles()).toEqual([]);
    const again = await adapter().send(message);
    expect(await emlFiles()).toEqual([again.providerMessageId]);
  });

  it('the adapter prunes on its own timer when retention is configured, and logs the count, never an address', async () => {
    const old = await adapter({ now: new Date('2026-06-01T00:00:00Z') }).send(codeMessage());
    const fresh = await adapter().send(codeMessage());
    const mail = adapter({ retention: { maxAgeMs: 24 * 3600_000, maxFiles: null, intervalMs: 20 } });
    try {
      const pruned = () => logLines.some((l) => l['msg'] === 'outbox pruned');
      for (let i = 0; i < 250 && !pruned(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(await emlFiles()).toEqual([fresh.providerMessageId]);
      expect(logLines.find((l) => l['msg'] === 'outbox pruned')).toMatchObject({ removed: 1, kept: 1 });
      expect(rawLog).not.toContain(TO);
    } finally {
      mail.close();
    }
    expect(await adapter().prune()).toEqual({ removed: 0, kept: -1 });
  });
});

describe('OutboxMailAdapter.check (readiness)', () => {
  it('passes on a writable folder, creating it, and leaves no file behind', async () => {
    const fresh = join(root, 'not-yet');
    await adapter({ dir: fresh }).check();
    expect((await stat(fresh)).isDirectory()).toBe(true);
    expect(await readdir(fresh)).toEqual([]);
  });

  it('fails with MAIL.UNAVAILABLE naming the errno when the outbox path is a file', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    const err = await adapter({ dir: file }).check().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('MAIL.UNAVAILABLE');
    expect((err as AppError).meta['errno']).toMatch(/^(EEXIST|ENOTDIR)$/);
    expect((err as AppError).message).toMatch(/outbox folder is not writable/);
  });
});
