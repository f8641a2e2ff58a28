/**
 * The real product, started as processes for end-to-end tests: the bot
 * (`bot/main.ts`, embedded store, outbox mail) on a loopback port with a fresh
 * data directory and master key, the admin command to seed people and list
 * cases, the companion (`companion/main.ts`, PC/SC reader) with its own data
 * directory and log file, and the project's virtual PIV card behind pcscd's
 * vpcd reader in this test process, with read-back helpers over PC/SC.
 *
 * The building blocks of the end-to-end fixture: test files bring their stack up through
 * `startE2eStack` of `e2e-fixture.ts` (which re-exports this module); the pieces below also work alone:
 *
 *   const bot = await startBotStack('e2e-unlock');
 *   await seedPerson(bot, person);
 *   const card = await VpcdCard.insert(pcsc, VPCD_READER, { cardId, pin, puk, blocked: true });
 *   const companion = startCompanion(bot, { name: 'companion-a', readerName: VPCD_READER.name, workstation: 'WS-A' });
 *   const code = await companion.pairingCode();
 *
 * Mail transport: the outbox by default. With `E2E_MAIL=graph` in the test's environment (or
 * `startBotStack(name, extraEnv, { mail: 'graph' })`) the bot sends through the Graph mail adapter
 * (`MAIL_TRANSPORT=graph`) over https to the local Graph + Entra fake (`test/support/graph-fake/`), and
 * `bot.outbox()` returns the mails Graph accepted (202), in the same entry shape; see {@link startBotStack}.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { MailKind } from '../../bot/mail/mail.port';
import { registrationCodeMail, registrationConfirmedMail, unlockCodeMail, unlockedNoticeMail } from '../../bot/mail/mail.templates';
import { composeMimeMessage, parseMimeMessage } from '../../bot/mail/mime-message';
import { readOutbox, type OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { checkPasscode } from '../../companion/passcode-policy';
import { INS, KEY_REF, PIN_PAD_BYTE } from '../../companion/piv/piv.constants';
import { InvalidPinError, InvalidPukError, PinBlockedError, PukBlockedError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import type { CardReaderPort } from '../../companion/piv/card-connection';
import { waitForCardState } from '../../companion/piv/reader-events';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import { artifactDir, artifactPath, REPO_ROOT } from './artifacts';
import { startGraphFakeHarness, type AcceptedMail, type GraphFakeHarness } from './graph-fake/graph-fake.harness';
import { insertVirtualCard } from './pcscd';
import { freePort, startProcess, waitForHttp, type ManagedProcess } from './processes';

/** Milliseconds the helpers wait for an observable state by default (2-core CI: generous). */
export const E2E_WAIT_MS = 45_000;

/** Milliseconds one end-to-end test may take (several waits in a row, on a busy 2-core machine). */
export const E2E_TEST_MS = 300_000;

// ---------------------------------------------------------------------------
// Test secrets
// ---------------------------------------------------------------------------

/**
 * A random 8-digit passcode that the companion's policy accepts (8 digits keep a chance match
 * against timestamps or hex in a log or database file below one in 10^8 per position).
 *
 * @param avoid - values it must differ from (and not contain or be contained in)
 * @returns 8 ASCII digits, first digit 2-9
 */
export function randomPasscode(avoid: readonly string[] = []): string {
  for (;;) {
    const candidate = `${randomInt(2, 10)}${String(randomInt(0, 10_000_000)).padStart(7, '0')}`;
    if (!checkPasscode(candidate, candidate).ok) continue;
    if (avoid.some((a) => a.includes(candidate) || candidate.includes(a))) continue;
    return candidate;
  }
}

/**
 * A random word of lower-case letters, to make test answers unique to one run.
 *
 * @param length - letters; default 6
 */
export function randomWord(length = 6): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let out = '';
  for (let i = 0; i < length; i++) out += letters[randomInt(letters.length)];
  return out;
}

/**
 * A random card identifier (CHUID GUID).
 *
 * @returns 32 lower-case hex digits
 */
export function randomCardId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Delete a test's temporary data directories (they hold the test's secrets in the store files),
 * unless `KEEP_E2E_DATA=1` asks to keep them for a look.
 *
 * @param dirs - directories; `undefined` entries are skipped
 */
export async function removeTestDirs(...dirs: Array<string | undefined>): Promise<void> {
  if (process.env['KEEP_E2E_DATA'] === '1') return;
  await Promise.all(dirs.map((d) => (d ? rm(d, { recursive: true, force: true }) : undefined)));
}

// ---------------------------------------------------------------------------
// The bot
// ---------------------------------------------------------------------------

/** A running bot process and where it keeps things. */
export interface BotStack {
  readonly name: string;
  /** e.g. `http://127.0.0.1:41234` */
  readonly url: string;
  /** The messaging endpoint for the Playground: `<url>/api/messages`. */
  readonly messagesUrl: string;
  readonly port: number;
  /** `SMARTCARD_DATA_DIR` (sqlite file, WAL, outbox). */
  readonly dataDir: string;
  /**
   * Where {@link BotStack.outbox} reads: `<dataDir>/outbox` with outbox mail; with Graph mail,
   * `<dataDir>/graph-accepted`, where this test process writes a copy (`.eml`) of each mail Graph accepted.
   */
  readonly outboxDir: string;
  /** How the bot sends mail: `outbox` (files) or `graph` (the Graph adapter against the local fake). */
  readonly mail: MailTransportChoice;
  /** The Graph + Entra fake the bot sends to (`mail === 'graph'` only): requests, tokens, scripted answers. */
  readonly graph: GraphFakeHarness | undefined;
  /** The environment the bot and the admin command run with (includes the master key). */
  readonly env: Readonly<Record<string, string>>;
  /** The bot process running now (the newest after a {@link BotStack.restart}). */
  readonly process: ManagedProcess;
  /** Every bot process started for this stack, oldest first (for the secret scan). */
  readonly processes: readonly ManagedProcess[];
  /** Every admin command run against this bot: the command and its output (for the secret scan). */
  readonly adminRuns: Array<{ args: string[]; stdout: string; stderr: string; code: number | null }>;
  /**
   * Messages in the outbox now, oldest first. With Graph mail: the mails Graph accepted (202), oldest first,
   * each also written as an `.eml` file under `outboxDir` (so `file` and the secret scan work as with the outbox);
   * `kind` comes from the subject, `text` from the HTML body (Graph carries only the HTML).
   */
  outbox(): Promise<OutboxEntry[]>;
  /**
   * Stop the bot (SIGTERM) and start it again on the same port, data directory and key,
   * as an operator restarting the service; its log goes to `artifacts/logs/<name>-<n>.log`.
   *
   * @throws Error when it does not answer `/healthz` again within 60 s
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** How an end-to-end bot sends mail. */
export type MailTransportChoice = 'outbox' | 'graph';

/**
 * The mail transport the environment asks for: `E2E_MAIL=graph` or `E2E_MAIL=outbox`; unset or empty = outbox.
 *
 * @throws Error naming `E2E_MAIL` when it holds another value
 */
export function mailTransportFromEnv(env: NodeJS.ProcessEnv = process.env): MailTransportChoice {
  const v = env['E2E_MAIL']?.trim() ?? '';
  if (v === '' || v === 'outbox') return 'outbox';
  if (v === 'graph') return 'graph';
  throw new Error(`E2E_MAIL must be "outbox" or "graph" (or unset); it is "${v}"`);
}

/**
 * Start the bot as a process (`node --import tsx bot/main.ts`) with a fresh data directory under
 * `artifacts/tmp/`, a random master key, `PAIRING_POLL_INTERVAL_SECONDS=1` and `LOG_LEVEL=debug`,
 * and wait for `GET /healthz`.
 *
 * With Graph mail (`options.mail`, else `E2E_MAIL`), the Graph + Entra fake is started first and its settings
 * (`MAIL_TRANSPORT=graph`, `GRAPH_*` with a client secret, `NODE_EXTRA_CA_CERTS` = the test CA) go into the bot's
 * environment (`extraEnv` still wins); `outbox()` then reads what Graph accepted, and `stop()` stops the fake too.
 *
 * @param name - log name: `artifacts/logs/<name>.log` holds its stdout/stderr (the pino log)
 * @param extraEnv - more variables (e.g. `COMPANION_COMMAND_TIMEOUT_MS`)
 * @param options.mail - `outbox` or `graph`; default from `E2E_MAIL` ({@link mailTransportFromEnv})
 * @returns the running stack; call `stop()` in `afterAll`
 * @throws Error when the bot does not answer `/healthz` within 60 s (message ends with its output), when
 *   `E2E_MAIL` is neither `outbox` nor `graph`, or (Graph mail) when `openssl` is missing for the fake's test PKI
 */
export async function startBotStack(name: string, extraEnv: Record<string, string> = {}, options: { mail?: MailTransportChoice } = {}): Promise<BotStack> {
  const mail = options.mail ?? mailTransportFromEnv();
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(artifactDir('tmp'), `${name}-bot-`));
  const graph = mail === 'graph' ? await startGraphFakeHarness() : undefined;
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    SMARTCARD_DATA_DIR: dataDir,
    SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64'),
    PAIRING_POLL_INTERVAL_SECONDS: '1',
    LOG_LEVEL: 'debug',
    ...(graph?.env ?? {}),
    ...extraEnv,
  };
  const url = `http://127.0.0.1:${port}`;
  const processes: ManagedProcess[] = [];
  const launch = async (): Promise<void> => {
    const logName = processes.length === 0 ? name : `${name}-${processes.length + 1}`;
    const proc = startProcess({ name: logName, command: process.execPath, args: ['--import', 'tsx', 'bot/main.ts'], env: { ...env, MicrosoftAppId: undefined, MicrosoftAppPassword: undefined } });
    processes.push(proc);
    try {
      await waitForHttp(`${url}/healthz`, { process: proc, status: 200, timeoutMs: 60_000 });
    } catch (err) {
      await proc.stop();
      throw err;
    }
  };
  try {
    await launch();
  } catch (err) {
    await graph?.stop();
    throw err;
  }
  const outboxDir = path.join(dataDir, graph ? 'graph-accepted' : 'outbox');
  const graphMirror = graph ? new GraphAcceptedMirror(graph, outboxDir) : undefined;
  const current = (): ManagedProcess => processes[processes.length - 1]!;
  return {
    name,
    url,
    messagesUrl: `${url}/api/messages`,
    port,
    dataDir,
    outboxDir,
    mail,
    graph,
    env,
    get process() {
      return current();
    },
    processes,
    adminRuns: [],
    outbox: async () => (graphMirror ? graphMirror.sync() : readOutbox(outboxDir)),
    restart: async () => {
      await current().stop();
      await launch();
    },
    stop: async () => {
      await current().stop();
      if (graphMirror) {
        graphMirror.close();
        await graph!.stop();
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Graph mail seen as an outbox
// ---------------------------------------------------------------------------

/** Subject -> kind, from the product's own templates (the subjects do not depend on the input). */
function subjectKinds(): ReadonlyMap<string, MailKind> {
  const at = new Date(0);
  const common = { displayName: 'x', timeZone: 'UTC', raContact: 'x' };
  return new Map<string, MailKind>([
    [unlockCodeMail({ ...common, code: '00000000', expiresAt: at, minutes: 15 }).subject, 'unlock_code'],
    [unlockedNoticeMail({ ...common, at }).subject, 'unlock_notice'],
    [registrationCodeMail({ ...common, code: '00000000', expiresAt: at, minutes: 15 }).subject, 'registration_code'],
    [registrationConfirmedMail({ ...common, at, email: 'x@example.org', mobile: null, workstation: null, selfUnlockReady: true }).subject, 'registration_notice'],
  ]);
}

const HTML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/**
 * The text a reader sees in an HTML mail body: one line per paragraph, list item or `<br>`, tags removed,
 * character references decoded, lines trimmed, runs of blank lines collapsed. (Graph carries only the HTML part;
 * the templates put every sentence of the text part into the HTML, the code in a paragraph of its own.)
 *
 * @param html - the HTML body as Graph received it
 * @returns plain text, lines separated by `\n`
 */
export function textOfHtml(html: string): string {
  const text = html
    .replace(/<head[\s\S]*?<\/head>/gi, '')
    .replace(/<!DOCTYPE[^>]*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/?(p|div|li|ul|ol|h[1-6]|tr|table|body|html)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, ref: string) => {
      if (ref[0] === '#') return String.fromCodePoint(ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10));
      return HTML_ENTITIES[ref.toLowerCase()] ?? m;
    });
  return `${text
    .split('\n')
    .map((l) => l.replace(/[ \t]+/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()}\n`;
}

/** `yyyymmddThhmmss` in UTC, as the outbox names files. */
function fileTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
}

/**
 * Writes each mail the Graph fake accepted (202) as an `.eml` file, named as the outbox names them
 * (`<yyyymmddThhmmss>-<kind>-<id>.eml`, id derived from the fake's request number), mode 0600, and serves them as
 * outbox entries. Kept in step every 200 ms and on each read, so a scan of the data directory sees them too.
 */
class GraphAcceptedMirror {
  private readonly entries: OutboxEntry[] = [];
  private readonly written = new Set<number>();
  private readonly kinds = subjectKinds();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly graph: GraphFakeHarness,
    private readonly dir: string,
  ) {
    this.timer = setInterval(() => {
      try {
        this.sync();
      } catch {
        // a read through outbox() reports the same failure
      }
    }, 200);
    this.timer.unref();
  }

  /** Write the mails accepted since the last call; returns every accepted mail, oldest first. */
  sync(): OutboxEntry[] {
    const accepted = this.graph.fake.requestsOf('sendMail').filter((r) => r.status === 202);
    const mails = this.graph.acceptedMails();
    accepted.forEach((request, i) => {
      if (this.written.has(request.seq)) return;
      this.entries.push(this.write(request.seq, request.pathname, mails[i]!));
      this.written.add(request.seq);
    });
    return [...this.entries];
  }

  close(): void {
    clearInterval(this.timer);
    this.sync();
  }

  private write(seq: number, pathname: string, mail: AcceptedMail): OutboxEntry {
    const kind = this.kinds.get(mail.subject);
    if (!kind) throw new Error(`Graph accepted a mail with a subject no template makes: "${mail.subject}"`);
    const id = `00000000-0000-4000-8000-${seq.toString(16).padStart(12, '0')}`;
    const name = `${fileTimestamp(mail.receivedAt)}-${kind}-${id}.eml`;
    const raw = composeMimeMessage({
      from: { name: 'Smartcard Assist', address: decodeURIComponent(mail.from) },
      to: mail.to,
      subject: mail.subject,
      date: new Date(mail.receivedAt),
      messageId: `${id}@graph-fake.invalid`,
      text: textOfHtml(mail.html),
      html: mail.html,
      headers: { 'X-Smartcard-Assist-Kind': kind, 'X-Graph-Request-Path': pathname, 'X-Graph-Save-To-Sent-Items': String(mail.saveToSentItems) },
    });
    if (!existsSync(this.dir)) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, name);
    writeFileSync(file, raw, { mode: 0o600 });
    return { ...parseMimeMessage(raw), file, name, kind, id };
  }
}

/**
 * Run `bot/admin.cli.ts` with the bot's environment (asynchronously: a virtual card served from
 * this process keeps answering vpcd meanwhile).
 *
 * @param bot - the stack whose data directory and key to use
 * @param args - e.g. `['list-cases']`
 * @param stdin - text for standard input (e.g. a person file for `add-person --file -`)
 * @returns exit code and output
 */
export function runAdmin(bot: BotStack, args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bot/admin.cli.ts', ...args], {
      cwd: REPO_ROOT,
      // The admin command sends no mail: it gets no Graph settings (no client secret in another process).
      env: withoutKeys({ ...process.env, ...bot.env }, Object.keys(bot.graph?.env ?? {})),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      bot.adminRuns.push({ args, stdout, stderr, code });
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin ?? '');
  });
}

function withoutKeys(env: Readonly<Record<string, string | undefined>>, keys: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  for (const k of keys) delete out[k];
  return out;
}

/** A person file for `admin add-person` (the admin command's schema). */
export interface SeedPerson {
  teamsUserId: string;
  displayName: string;
  email: string;
  cardId: string;
  puk: string;
  answers: Array<{ questionId: string; answer: string }>;
}

/**
 * Register a person through the admin command (`add-person --file -`, secrets on standard input).
 *
 * @returns the new person's id
 * @throws Error when the command fails or does not print `added: person <id>`
 */
export async function seedPerson(bot: BotStack, person: SeedPerson): Promise<string> {
  const r = await runAdmin(bot, ['add-person', '--file', '-'], JSON.stringify(person));
  const m = /^added: person (\S+)$/m.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`admin add-person failed (exit ${String(r.code)}): ${r.stdout}${r.stderr}`);
  return m[1]!;
}

/**
 * Wait for the outbox to hold a message matching `predicate`.
 *
 * @returns the first match
 * @throws Error on timeout, listing what the outbox holds
 */
export async function waitForMail(bot: BotStack, predicate: (m: OutboxEntry) => boolean, timeoutMs = E2E_WAIT_MS): Promise<OutboxEntry> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await bot.outbox();
    const found = all.find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching email in ${bot.outboxDir} within ${timeoutMs} ms; outbox: ${all.map((m) => `${m.name} to ${m.headers['to'] ?? '?'}`).join(', ') || '(empty)'}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The unlock code in an unlock-code email.
 *
 * @param mail - an outbox entry of kind `unlock_code`
 * @returns the 8 digits
 * @throws Error when the text part holds no 8-digit number
 */
export function unlockCodeFrom(mail: OutboxEntry): string {
  const m = /\b(\d{8})\b/.exec(mail.text);
  if (!m) throw new Error(`no 8-digit code in ${mail.name}`);
  return m[1]!;
}

// ---------------------------------------------------------------------------
// The companion
// ---------------------------------------------------------------------------

/** A running companion process. */
export interface CompanionProcess {
  readonly process: ManagedProcess;
  readonly dataDir: string;
  /** Its pino log (`COMPANION_LOG_FILE`). */
  readonly logFile: string;
  /** Wait for `PAIRING CODE: XXXX-XXXX` and return the code. */
  pairingCode(timeoutMs?: number): Promise<string>;
  /** Wait until it printed `PAIRED:` and `STATUS: connected to Smartcard Assist`. */
  waitConnected(timeoutMs?: number): Promise<void>;
  /** The newest `PASSCODE PAGE:` link printed (each link works once), waiting for one if none yet. */
  latestPageLink(timeoutMs?: number): Promise<string>;
  /** Wait for a stdout line matching `pattern` that comes after the first `after` lines. */
  waitForLineAfter(pattern: RegExp, after: number, timeoutMs?: number): Promise<string>;
  /** Number of output lines so far (a cursor for {@link waitForLineAfter}). */
  lineCount(): number;
  stop(): Promise<void>;
}

/** Options of {@link startCompanion}. */
export interface CompanionOptions {
  /** Log name (`artifacts/logs/<name>.log` = its stdout, the person's lines). */
  name: string;
  /** The reader to use, e.g. `Virtual PCD 00 00` (with {@link CompanionOptions.inProcessCard}: its name, optional). */
  readerName?: string;
  /** Workstation name shown in Teams. */
  workstation: string;
  /** Default `debug`; `trace` also logs APDU names (the secret scan's harder case). */
  logLevel?: 'debug' | 'trace';
  /** Reuse a data directory (a restart keeps its pairing); default a fresh one. */
  dataDir?: string;
  /**
   * Run the companion on its in-process reader (`COMPANION_READER=virtual`) holding this virtual card, instead of
   * PC/SC: no pcscd needed, but the card lives in the companion process (no read-back from the test).
   */
  inProcessCard?: { cardId: string; pin: string; puk: string; blocked: boolean };
  /** More companion settings, added last (e.g. `COMPANION_OPEN_PAGE`, `COMPANION_BROWSER_COMMAND`). */
  env?: Record<string, string>;
}

/**
 * Start `companion/main.ts` with the PC/SC reader adapter on one reader (or its in-process reader), a fresh data
 * directory and a log file at debug level, against the bot.
 *
 * @param bot - the bot to pair with
 * @param options - see {@link CompanionOptions}
 */
export function startCompanion(bot: BotStack, options: CompanionOptions): CompanionProcess {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(artifactDir('tmp'), `${options.name}-data-`));
  const reader: Record<string, string> = options.inProcessCard
    ? {
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: options.inProcessCard.cardId,
        COMPANION_VIRTUAL_CARD_PIN: options.inProcessCard.pin,
        COMPANION_VIRTUAL_CARD_PUK: options.inProcessCard.puk,
        COMPANION_VIRTUAL_CARD_BLOCKED: String(options.inProcessCard.blocked),
        COMPANION_READER_NAME: options.readerName ?? '',
      }
    : { COMPANION_READER: 'pcsc', COMPANION_READER_NAME: options.readerName ?? '' };
  const logFile = artifactPath('logs', `${options.name}.pino.log`);
  writeFileSync(logFile, '', { mode: 0o600 }); // pino appends: start each run with an empty log
  const proc = startProcess({
    name: options.name,
    command: process.execPath,
    args: ['--import', 'tsx', 'companion/main.ts'],
    env: {
      SMARTCARD_BOT_URL: bot.url,
      COMPANION_DATA_DIR: dataDir,
      ...reader,
      COMPANION_WORKSTATION: options.workstation,
      COMPANION_LOG_FILE: logFile,
      COMPANION_LOG_LEVEL: options.logLevel ?? 'debug',
      COMPANION_PAGE_PORT: '0',
      ...options.env,
    },
  });
  const waitForLineAfter = async (pattern: RegExp, after: number, timeoutMs = E2E_WAIT_MS): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = proc.lines().slice(after).find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (proc.hasExited()) throw new Error(`${options.name} exited (code ${String(proc.exitCode())}) before printing ${String(pattern)}:\n${proc.output().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${options.name}: no line matching ${String(pattern)} within ${timeoutMs} ms:\n${proc.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    process: proc,
    dataDir,
    logFile,
    async pairingCode(timeoutMs = E2E_WAIT_MS) {
      const m = await proc.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4})\b/, timeoutMs);
      return m[1]!;
    },
    async waitConnected(timeoutMs = E2E_WAIT_MS) {
      await proc.waitForLine(/^PAIRED: /, timeoutMs);
      await proc.waitForLine(/^STATUS: connected to Smartcard Assist/, timeoutMs);
    },
    async latestPageLink(timeoutMs = E2E_WAIT_MS) {
      await proc.waitForLine(/^PASSCODE PAGE: /, timeoutMs);
      const links = proc.lines().flatMap((l) => {
        const m = /^PASSCODE PAGE: (http:\/\/127\.0\.0\.1:\d+\/\?t=\S+)$/.exec(l);
        return m ? [m[1]!] : [];
      });
      const last = links.at(-1);
      if (!last) throw new Error(`${options.name}: a PASSCODE PAGE line without a loopback link`);
      return last;
    },
    waitForLineAfter,
    lineCount: () => proc.lines().length,
    stop: async () => {
      await proc.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// The virtual card behind vpcd
// ---------------------------------------------------------------------------

/** Reference data seen by the card in a secret-bearing command (for the secret scan; never printed). */
export interface SeenReferenceData {
  /** Every PUK value the card was given (RESET RETRY COUNTER, CHANGE REFERENCE DATA of the PUK, old and new). */
  puks: Set<string>;
  /** Every PIN value the card was given (VERIFY, RESET RETRY COUNTER new PIN). */
  pins: Set<string>;
  /** The PUK values set by CHANGE REFERENCE DATA of the PUK, in order (the bot's rotated PUKs). */
  newPuks: string[];
  /** RESET RETRY COUNTER commands received (each carries a PUK). */
  resets: number;
}

function unpad(block: Buffer): string {
  const end = block.indexOf(PIN_PAD_BYTE);
  return block.subarray(0, end === -1 ? block.length : end).toString('latin1');
}

/**
 * The project's virtual PIV card behind one vpcd reader, served from this test process, with
 * a tap on the reference data it is given and read-back helpers over PC/SC.
 */
export class VpcdCard {
  /** What the card was told (filled by a tap that runs before any test hook). */
  readonly seen: SeenReferenceData = { puks: new Set(), pins: new Set(), newPuks: [], resets: 0 };
  /** Test hook run before the card acts on a command (e.g. to pull the card). */
  onCommand: ((ins: number, apdu: Buffer) => void) | undefined;
  /** Test hook run after the card acted on a command. */
  afterCommand: ((ins: number, apdu: Buffer, response: Buffer) => void) | undefined;

  private constructor(
    readonly card: VirtualPivCard,
    readonly vpcd: VpcdClient,
    readonly port: CardReaderPort,
    readonly readerName: string,
  ) {
    card.onCommand = (ins, apdu) => {
      this.tap(ins, apdu);
      this.onCommand?.(ins, apdu);
    };
    card.afterCommand = (ins, apdu, response) => this.afterCommand?.(ins, apdu, response);
  }

  /**
   * Make a card and insert it into a vpcd reader (refuses a reader that already holds a card).
   *
   * @param port - PC/SC adapter of this test process
   * @param reader - `{ name, port }` of the vpcd reader (`VPCD_READER` or `VPCD_READER_2`)
   * @param options - card id, PIN, PUK, blocked
   */
  static async insert(port: CardReaderPort, reader: { name: string; port: number }, options: { cardId: string; pin: string; puk: string; blocked: boolean }): Promise<VpcdCard> {
    const card = new VirtualPivCard(options);
    const vpcd = new VpcdClient({ card, port: reader.port });
    const c = new VpcdCard(card, vpcd, port, reader.name);
    await insertVirtualCard(port, vpcd, reader.name, 10_000);
    return c;
  }

  private tap(ins: number, apdu: Buffer): void {
    const lc = apdu.length > 5 ? apdu[4]! : 0;
    const data = Buffer.from(apdu.subarray(5, 5 + lc));
    const p2 = apdu[3];
    if (ins === INS.VERIFY && data.length === 8) this.seen.pins.add(unpad(data));
    if (ins === INS.RESET_RETRY_COUNTER && data.length === 16) {
      this.seen.resets += 1;
      this.seen.puks.add(unpad(data.subarray(0, 8)));
      this.seen.pins.add(unpad(data.subarray(8, 16)));
    }
    if (ins === INS.CHANGE_REFERENCE_DATA && data.length === 16) {
      const set = p2 === KEY_REF.PUK ? this.seen.puks : this.seen.pins;
      set.add(unpad(data.subarray(0, 8)));
      set.add(unpad(data.subarray(8, 16)));
      if (p2 === KEY_REF.PUK) this.seen.newPuks.push(unpad(data.subarray(8, 16)));
    }
  }

  /** Pull the card out of the reader now (safe inside a card hook: the card loses power at once). */
  pull(): Promise<void> {
    return this.vpcd.disconnect();
  }

  /** Wait until pcscd reports the reader empty. */
  async waitAbsent(timeoutMs = 10_000): Promise<void> {
    await waitForCardState(this.port, this.readerName, 'absent', timeoutMs);
  }

  /** Put the card back and wait until pcscd reports it (refuses if another card took the reader). */
  async reinsert(): Promise<void> {
    await insertVirtualCard(this.port, this.vpcd, this.readerName, 10_000);
  }

  /** Run `fn` on a PIV session of this test process, closing with a card reset. */
  async session<T>(fn: (s: PivSession) => Promise<T>): Promise<T> {
    const conn = await this.port.connect(this.readerName);
    try {
      return await fn(await PivSession.open(conn));
    } finally {
      await conn.close('reset');
    }
  }

  /**
   * Does the card accept this passcode? (A wrong one costs a PIN try, as on a real card.)
   *
   * @returns true on 9000; false on 63Cx or 6983 (blocked)
   */
  verifies(pin: string): Promise<boolean> {
    return this.session((s) => s.verifyPin(pin)).then(
      () => true,
      (err: unknown) => {
        if (err instanceof InvalidPinError || err instanceof PinBlockedError) return false;
        throw err;
      },
    );
  }

  /**
   * Does the card hold this PUK? Tried as CHANGE REFERENCE DATA of the PUK to itself
   * (a wrong one costs a PUK try).
   */
  holdsPuk(puk: string): Promise<boolean> {
    return this.session((s) => s.changePuk(puk, puk)).then(
      () => true,
      (err: unknown) => {
        if (err instanceof InvalidPukError || err instanceof PukBlockedError) return false;
        throw err;
      },
    );
  }

  /** PIN tries left, read over PC/SC with an empty VERIFY (0 = blocked). */
  pinRetries(): Promise<number> {
    return this.session(async (s) => (await s.readPinStatus()).retries);
  }

  /** Take the card out (if in) and stop serving it. */
  async dispose(): Promise<void> {
    this.onCommand = undefined;
    this.afterCommand = undefined;
    await this.vpcd.disconnect().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// The questions card
// ---------------------------------------------------------------------------

/**
 * The labels of a card's `Input.Text` elements by input id (the questions card labels inputs
 * `a1`..`a3` with the question texts).
 *
 * @param card - Adaptive Card JSON
 * @returns e.g. `{ a1: 'What was ...?', a2: ..., a3: ... }`
 */
export function inputLabels(card: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (o['type'] === 'Input.Text' && typeof o['id'] === 'string' && typeof o['label'] === 'string') out[o['id']] = o['label'];
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(card);
  return out;
}

/**
 * What a person types into the questions card: for each input, the answer to the question it asks.
 *
 * @param card - the questions card JSON
 * @param answerFor - answer by question text (throw or return undefined for an unknown question)
 * @returns `{ a1, a2, a3 }`
 * @throws Error when the card does not ask exactly 3 questions, or one has no answer
 */
export function answerInputs(card: unknown, answerFor: (questionText: string) => string | undefined): Record<string, string> {
  const labels = inputLabels(card);
  const ids = Object.keys(labels).sort();
  if (ids.join(',') !== 'a1,a2,a3') throw new Error(`the questions card should have inputs a1, a2, a3; it has ${ids.join(', ') || 'none'}`);
  const out: Record<string, string> = {};
  for (const id of ids) {
    const answer = answerFor(labels[id]!);
    if (answer === undefined) throw new Error(`no answer registered for the question "${labels[id]}"`);
    out[id] = answer;
  }
  return out;
}
