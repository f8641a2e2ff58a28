/**
 * Pieces of the journey interleaving property test (issue #9, STYLE.md 19):
 *
 * - {@link SchedulerGate}: a storage wrapper (for `startBot`'s `overrides.wrapStorage`)
 *   that passes every storage call through a scheduler (fast-check's `fc.scheduler()`),
 *   so the scheduler, not the machine's timing, picks the order in which the turns'
 *   reads and writes happen;
 * - {@link ScheduledConnector}: the Bot Framework connector the bot sends to (Teams'
 *   `POST /v3/conversations/:id/activities`, `PUT .../activities/:id`), answering
 *   each call only when the scheduler lets it (a slow channel), and recording cards;
 * - {@link RaceCompanion}: a companion on the real link (paired device credential)
 *   with an in-process virtual PIV card: reads the card, takes the emailed code from
 *   the outbox, and unblocks the card with the PUK it is given (in the response to
 *   `unlock.submit_code`, or as an `unlock.authorised` command);
 * - {@link unlockInvariantViolations}: the invariants of issue #9 read from what was
 *   stored (audit log, RA cases, person, journey effects) and the outbox folder.
 *
 * Nothing here uses pcscd or the vpcd readers.
 */
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readOutbox } from '../../bot/mail/outbox-mail.adapter';
import { PivSession } from '../../companion/piv/piv.session';
import { PROTOCOL_VERSION } from '../../protocol/companion-link.protocol';
import { InProcessReaderAdapter } from '../../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../../companion/virtual-card/virtual-piv-card';
import type { AuditEntry, Person, RaCase, Storage } from '../../storage/storage.port';
import { LoopbackHttpServer } from './loopback-http';
import { RawCompanion, unlockCodeOf, type ConnectorCall, type Frame } from '../integration/adversarial-harness';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Scheduler gate and storage wrapper
// ---------------------------------------------------------------------------

/** The part of fast-check's `Scheduler` the gate uses (a scripted scheduler may stand in). */
export interface GateScheduler {
  schedule<T>(task: Promise<T>, label?: string): Promise<T>;
  count(): number;
  waitNext(count: number): Promise<void>;
}

/** Repositories of the storage port whose calls are scheduled. */
const REPOSITORIES = ['persons', 'cards', 'journeys', 'devices', 'pairings', 'cases', 'audit', 'conversations'] as const;

function shortArg(a: unknown): string {
  if (typeof a === 'string') return a.slice(0, 8);
  if (a && typeof a === 'object') {
    const o = a as Record<string, unknown>;
    const k = o['key'] ?? o['action'] ?? o['id'] ?? o['ref'] ?? o['cardId'] ?? o['personId'];
    if (typeof k === 'string') return k.length > 40 ? `${k.slice(0, 8)}..${k.slice(-8)}` : k;
  }
  return '';
}

/**
 * While a scheduler is installed, every storage call waits for the scheduler to
 * release it before it runs; without one, calls run at once (setup, final reads).
 */
export class SchedulerGate {
  scheduler: GateScheduler | null = null;

  /** Wait for the scheduler (if any) to release a step labelled `label`. */
  async delay(label: string): Promise<void> {
    const s = this.scheduler;
    if (s) await s.schedule(Promise.resolve(), label);
  }

  /** Run `fn` once the scheduler released it. */
  run<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const s = this.scheduler;
    if (!s) return fn();
    return s.schedule(Promise.resolve(), label).then(fn);
  }

  /**
   * Wrap a store (for `startBot(config, { wrapStorage })`): each repository method
   * call becomes a scheduled step labelled e.g. `journeys.save(<key>)`. `ping` and
   * `close` are not scheduled.
   */
  wrap = (raw: Storage): Storage => {
    const cache = new Map<string, unknown>();
    const gate = this;
    const wrapRepo = (name: string, repo: object): unknown =>
      new Proxy(repo, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function' || typeof prop !== 'string') return v;
          return (...args: unknown[]) => gate.run(`${name}.${prop}(${shortArg(args[0])})`, () => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args));
        },
      });
    return new Proxy(raw, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof prop === 'string' && (REPOSITORIES as readonly string[]).includes(prop) && v && typeof v === 'object') {
          if (!cache.has(prop)) cache.set(prop, wrapRepo(prop, v));
          return cache.get(prop);
        }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };

  /**
   * Release scheduled steps until `done()` is true. Before each release it lets
   * real I/O (HTTP, WebSocket, scrypt) run for `settleMs`, so every step that can
   * be pending at that point is, and the scheduler chooses among them.
   *
   * @throws Error after `timeoutMs` (names the steps still waiting)
   */
  async pump(done: () => boolean, options: { settleMs?: number; timeoutMs?: number } = {}): Promise<void> {
    const settle = options.settleMs ?? 2;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    while (!done()) {
      const s = this.scheduler;
      if (Date.now() > deadline) throw new Error(`scheduled run did not finish in ${options.timeoutMs ?? 30_000} ms (${s?.count() ?? 0} steps waiting)`);
      if (!s || s.count() === 0) {
        await sleep(1);
        continue;
      }
      await sleep(settle);
      if (s.count() > 0) await s.waitNext(1);
    }
  }

  /** Pump until nothing is scheduled and `idle()` holds for `quietMs` in a row. */
  async quiesce(idle: () => boolean, quietMs = 150, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let quietSince = Date.now();
    for (;;) {
      const s = this.scheduler;
      const busy = (s?.count() ?? 0) > 0 || !idle();
      if (busy) quietSince = Date.now();
      else if (Date.now() - quietSince >= quietMs) return;
      if (Date.now() > deadline) throw new Error('the bot did not come to rest');
      if (s && s.count() > 0) await s.waitNext(1);
      else await sleep(5);
    }
  }
}

/**
 * A scheduler that releases steps first in, first out, except those a `hold`
 * predicate keeps back for now (a scripted interleaving, for regression cases).
 * A step held longer than `maxHoldMs` is released anyway, so a script written
 * for one version of the code cannot stall another.
 */
export class ScriptedScheduler implements GateScheduler {
  private readonly pending: Array<{ label: string; since: number; release: () => void }> = [];
  readonly released: string[] = [];

  constructor(
    private readonly hold: (label: string, released: readonly string[]) => boolean,
    private readonly maxHoldMs = 1500,
  ) {}

  schedule<T>(task: Promise<T>, label = ''): Promise<T> {
    return new Promise<void>((resolve) => this.pending.push({ label, since: Date.now(), release: resolve })).then(() => task);
  }

  count(): number {
    return this.pending.length;
  }

  async waitNext(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      let idx = this.pending.findIndex((p) => !this.hold(p.label, this.released));
      if (idx < 0) idx = this.pending.findIndex((p) => Date.now() - p.since > this.maxHoldMs);
      if (idx < 0) {
        await sleep(2); // everything waiting is held: let the rest of the run move
        return;
      }
      const [p] = this.pending.splice(idx, 1);
      this.released.push(p!.label);
      p!.release();
      await new Promise((r) => setImmediate(r));
    }
  }
}

// ---------------------------------------------------------------------------
// Connector (the Teams side the bot sends to)
// ---------------------------------------------------------------------------

/** A Bot Framework connector on loopback whose answers wait for the scheduler (a slow channel). */
export class ScheduledConnector extends LoopbackHttpServer {
  private next = 1;
  readonly calls: ConnectorCall[] = [];
  /** Called for every activity the bot sends or updates, when it arrives (before the answer). */
  onActivity: (call: ConnectorCall) => void = () => undefined;
  /** Extra real delay before answering a `typing` activity, milliseconds. */
  typingDelayMs = 0;

  constructor(private readonly gate: SchedulerGate) {
    super();
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = /^\/v3\/conversations\/([^/]+)\/activities(?:\/([^/]+))?\/?$/.exec((req.url ?? '/').split('?')[0] ?? '/');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      // keep {}
    }
    const type = typeof body['type'] === 'string' ? body['type'] : 'message';
    if (m) {
      const call: ConnectorCall = { method: req.method ?? '', path: req.url ?? '', conversationId: decodeURIComponent(m[1]!), activityId: m[2] ? decodeURIComponent(m[2]) : null, body };
      this.calls.push(call);
      this.onActivity(call);
      await this.gate.delay(`teams <- ${req.method === 'PUT' ? 'update' : type}`);
      if (type === 'typing' && this.typingDelayMs > 0) await sleep(this.typingDelayMs);
    }
    const text = JSON.stringify({ id: req.method === 'PUT' && m?.[2] ? m[2] : `act-${this.next++}` });
    if (res.destroyed) return;
    res.writeHead(m ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

// ---------------------------------------------------------------------------
// Companion with an in-process virtual card
// ---------------------------------------------------------------------------

/** When the companion was handed a PUK, and for which run. */
export interface PukReceipt {
  at: number;
  journeyId: string;
}

/**
 * A companion on the real link with a virtual PIV card in an in-process reader.
 * It answers `card.read_status` from the card, `unlock.prompt` by submitting the
 * code from the newest unlock-code email to its person, and unblocks the card
 * with whatever PUK it is given: in the `unlock.submit_code` response (today's
 * protocol) or as an `unlock.authorised` command (PUK release as an effect).
 */
export class RaceCompanion {
  private link: RawCompanion | null = null;
  private readonly reader = new InProcessReaderAdapter();
  private readonly inFlight = new Set<Promise<unknown>>();
  readonly pukReceipts: PukReceipt[] = [];
  /** What happened on the link, in order (for the failure report). */
  readonly events: string[] = [];
  card: VirtualPivCard;

  constructor(
    private readonly options: { credential: string; cardId: string; puk: string; email: string; outboxDir: string },
  ) {
    this.card = new VirtualPivCard({ cardId: options.cardId, pin: '24681357', puk: options.puk, blocked: true });
    this.reader.insert(this.card);
  }

  /** Nothing in progress (no command or request of ours waiting). */
  idle(): boolean {
    return this.inFlight.size === 0;
  }

  /** Connect (again) to a bot at `url`; an open link is closed first. */
  async connect(url: string): Promise<void> {
    this.link?.close();
    const link = await RawCompanion.connect({ url }, `Bearer ${this.options.credential}`, { hello: false });
    link.autoReply = false;
    this.link = link;
    // Listen before the hello: a command may come in the same read as the welcome.
    link.ws.on('message', (data: Buffer) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString('utf8')) as Frame;
      } catch {
        return;
      }
      if (frame.type === 'command') this.track(this.onCommand(link, frame));
    });
    link.sendJson({ type: 'hello', protocol: PROTOCOL_VERSION, version: 'race-1', workstation: 'WS-RACE' });
    await link.waitFor((f) => f.type === 'welcome', 5000);
  }

  close(): void {
    this.link?.close();
    this.link = null;
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.events.push(`failed: ${err instanceof Error ? err.message : String(err)}`)).finally(() => this.inFlight.delete(q));
    this.inFlight.add(q);
  }

  private async onCommand(link: RawCompanion, frame: Frame): Promise<void> {
    const cmd = frame['command'] as Record<string, unknown> & { kind: string };
    this.events.push(`command ${cmd.kind}`);
    const reply = (r: unknown): void => {
      if (link.ws.readyState === link.ws.OPEN) link.sendJson({ type: 'reply', id: frame['id'], reply: r });
    };
    switch (cmd.kind) {
      case 'card.read_status': {
        const conn = await this.reader.connect(this.reader.readerName);
        try {
          const session = await PivSession.open(conn);
          const cardId = await session.readCardId();
          const pin = await session.readPinStatus();
          reply({ kind: 'card.status', status: { present: true, reader: this.reader.readerName, cardId, pinRetries: pin.retries } });
        } finally {
          await conn.close('reset');
        }
        return;
      }
      case 'unlock.prompt':
        reply({ kind: 'ack' });
        await this.submitCode(link, String(cmd['journeyId']), String(cmd['cardId']));
        return;
      case 'unlock.authorised':
        reply({ kind: 'ack' });
        await this.unblock(link, cmd, String(cmd['journeyId'] ?? ''), String(cmd['cardId'] ?? this.options.cardId));
        return;
      default:
        reply({ kind: 'ack' });
    }
  }

  private async submitCode(link: RawCompanion, journeyId: string, cardId: string): Promise<void> {
    const mails = (await readOutbox(this.options.outboxDir)).filter((m) => m.kind === 'unlock_code' && String(m.headers['to'] ?? '').includes(this.options.email));
    const mail = mails[mails.length - 1];
    if (!mail) throw new Error('unlock.prompt with no unlock-code email in the outbox');
    // A person takes a moment to type the code: one sent before the bot noted the email as
    // sent is refused as 'not_waiting', and typed again shortly.
    for (let attempt = 0; attempt < 20; attempt++) {
      await sleep(25);
      const r = await link.request({ kind: 'unlock.submit_code', journeyId, cardId, code: unlockCodeOf(mail) }, 10_000);
      this.events.push(`submit_code -> ${String(r['kind'])}${r['reason'] ? ` ${String(r['reason'])}` : ''}`);
      if (r['kind'] === 'unlock.authorised' && typeof r['puk'] === 'string') await this.unblock(link, r, journeyId, cardId);
      if (!(r['kind'] === 'unlock.refused' && r['reason'] === 'not_waiting')) return;
    }
  }

  private async unblock(link: RawCompanion, grant: Record<string, unknown>, journeyId: string, cardId: string): Promise<void> {
    const puk = String(grant['puk']);
    const newPuk = String(grant['newPuk']);
    const runId = typeof grant['journeyId'] === 'string' ? grant['journeyId'] : journeyId;
    this.pukReceipts.push({ at: Date.now(), journeyId: runId });
    const conn = await this.reader.connect(this.reader.readerName);
    let outcome: 'unblocked' | 'puk_rejected' = 'unblocked';
    let pukOnCard: 'new' | 'current' = 'new';
    try {
      const session = await PivSession.open(conn);
      const newPin = `${2 + (randomBytes(1)[0]! % 8)}${randomBytes(4).readUInt32BE(0) % 10_000_000}`.padEnd(8, '7').slice(0, 8);
      try {
        await session.resetRetryCounter(puk, newPin);
        await session.changePuk(puk, newPuk);
      } catch {
        outcome = 'puk_rejected';
        pukOnCard = 'current';
      }
    } finally {
      await conn.close('reset');
    }
    const r = await link.request({ kind: 'unlock.result', journeyId: runId, cardId, outcome, pukOnCard }, 10_000);
    this.events.push(`PUK received, card ${outcome}, unlock.result -> ${String(r['kind'])}`);
  }
}

// ---------------------------------------------------------------------------
// Invariants (issue #9) on what was stored
// ---------------------------------------------------------------------------

/** What was stored about one person after a run, plus what their companion was handed. */
export interface StoredOutcome {
  /** The person's audit entries, oldest first (`storage.audit.list`). */
  audit: AuditEntry[];
  /** The person's RA cases. */
  cases: RaCase[];
  person: Person | null;
  /** Unlock-code emails to the person in the outbox folder, with the file's modification time (ms). */
  codeMails: Array<{ name: string; at: number }>;
  /** PUKs the person's companion was handed (observed on the link, not stored). */
  pukReceipts: PukReceipt[];
  /** Whether the person's journeys still have effects to carry out (a lockout's case may be one). */
  effectsPending: boolean;
}

/** Audit actions that record one evaluated answer submission. */
export const EVALUATION_ACTIONS: ReadonlySet<string> = new Set(['unlock.answers_failed', 'unlock.answers_passed']);
/** Audit action recording a lockout (self-service locked, RA case opened). */
export const LOCK_ACTION = 'unlock.self_service_locked';

/** A reset ends a lockout period: a successful unlock, or an RA reset of self-service. */
export function isResetAction(action: string): boolean {
  return action === 'unlock.completed' || (/reset/.test(action) && /self.?service/.test(action));
}

/**
 * A PUK handed out or rotated: today `unlock.code_accepted`, `unlock.resumed` and
 * `card.puk_rotated`; with PUK custody (bot/puk) also `puk.released`. Entries saying a
 * PUK was kept back (`puk.withheld`, `puk.commit_skipped`, `puk.release_undelivered`) are not.
 */
export function isPukAction(action: string): boolean {
  if (action === 'unlock.code_accepted' || action === 'unlock.resumed') return true;
  return /puk/.test(action) && /released$|rotated$/.test(action);
}

/**
 * Check the invariants of issue #9 for one person:
 * 1. at most 3 answer submissions are evaluated between two resets;
 * 2. once locked (3rd failure, or a lock entry), no answers are evaluated, no code is
 *    sent and no PUK is released until a reset;
 * 3. each lockout opens exactly one RA case (one lock entry and one `answers_failed`
 *    case per lockout period; every lock entry names a stored case).
 *
 * @returns one line per broken rule (empty when all hold)
 */
export function unlockInvariantViolations(o: StoredOutcome, maxAttempts = 3): string[] {
  const out: string[] = [];
  interface Period { start: number; end: number; evals: number; fails: number; lockedAt: number | null; lockEntries: string[] }
  const periods: Period[] = [];
  let p: Period = { start: 0, end: Infinity, evals: 0, fails: 0, lockedAt: null, lockEntries: [] };
  periods.push(p);
  for (const [i, e] of o.audit.entries()) {
    const at = Date.parse(e.at);
    const where = `audit #${i} ${e.action} ${JSON.stringify(e.details)}`;
    if (isResetAction(e.action)) {
      if (p.lockedAt !== null && e.action === 'unlock.completed') out.push(`unlock completed while self-service was locked: ${where}`);
      p.end = at;
      p = { start: at, end: Infinity, evals: 0, fails: 0, lockedAt: null, lockEntries: [] };
      periods.push(p);
      continue;
    }
    if (EVALUATION_ACTIONS.has(e.action)) {
      if (p.lockedAt !== null) out.push(`answers evaluated after the lockout: ${where}`);
      p.evals++;
      if (p.evals > maxAttempts) out.push(`answer submission #${p.evals} evaluated between two resets (at most ${maxAttempts}): ${where}`);
      if (e.action === 'unlock.answers_failed') {
        p.fails++;
        if (p.fails >= maxAttempts && p.lockedAt === null) p.lockedAt = at;
      }
      continue;
    }
    if (e.action === LOCK_ACTION) {
      p.lockEntries.push(String(e.details['caseRef'] ?? ''));
      if (p.lockEntries.length > 1) out.push(`a second lockout without a reset (lockout #${p.lockEntries.length}): ${where}`);
      if (p.lockedAt === null) p.lockedAt = at;
      continue;
    }
    if (e.action === 'unlock.code_resent' && p.lockedAt !== null) out.push(`a code was sent after the lockout: ${where}`);
    if (isPukAction(e.action) && p.lockedAt !== null) out.push(`PUK released after the lockout: ${where}`);
  }
  const periodAt = (t: number): Period | undefined => periods.find((x) => t >= x.start && t < x.end);
  for (const m of o.codeMails) {
    const q = periodAt(m.at);
    if (q?.lockedAt != null && m.at > q.lockedAt) out.push(`unlock code emailed after the lockout: ${m.name}`);
  }
  for (const r of o.pukReceipts) {
    const q = periodAt(r.at);
    if (q?.lockedAt != null && r.at > q.lockedAt) out.push(`companion was handed a PUK after the lockout (run ${r.journeyId})`);
  }
  const lockouts = periods.filter((x) => x.lockedAt !== null);
  const answerCases = o.cases.filter((c) => c.reason === 'answers_failed');
  if (answerCases.length > lockouts.length) out.push(`${answerCases.length} RA cases for ${lockouts.length} lockout(s): ${answerCases.map((c) => c.ref).join(', ')}`);
  if (!o.effectsPending) {
    if (answerCases.length < lockouts.length) out.push(`${lockouts.length} lockout(s) but ${answerCases.length} RA case(s)`);
    for (const q of lockouts) if (q.lockEntries.length === 0) out.push('3 failed attempts but no lockout recorded');
    const last = periods[periods.length - 1]!;
    if (last.lockedAt !== null && !o.person?.selfServiceLock) out.push('locked out, but the stored person has no self-service lock');
  }
  const refs = new Set(o.cases.map((c) => c.ref));
  for (const q of periods) for (const ref of q.lockEntries) if (ref && !refs.has(ref) && !o.effectsPending) out.push(`lockout names case ${ref}, which is not stored`);
  return out;
}

/**
 * Read a person's {@link StoredOutcome} from the store and the outbox folder.
 *
 * @param storage - the store, not scheduled (read after the run)
 */
export async function readStoredOutcome(storage: Storage, outboxDir: string, person: { personId: string; email: string }, pukReceipts: PukReceipt[]): Promise<StoredOutcome> {
  const audit = await storage.audit.list({ personId: person.personId, limit: 10_000 });
  const cases = await storage.cases.listByPerson(person.personId);
  const stored = await storage.persons.get(person.personId);
  const mails = (await readOutbox(outboxDir)).filter((m) => m.kind === 'unlock_code' && String(m.headers['to'] ?? '').includes(person.email));
  const codeMails = await Promise.all(mails.map(async (m) => ({ name: m.name, at: (await stat(m.file)).mtimeMs })));
  const pending = await storage.journeys.listWithPendingEffects(1000);
  return { audit, cases, person: stored, codeMails, pukReceipts, effectsPending: pending.some((j) => j.personId === person.personId) };
}
