/**
 * One fixture for the end-to-end files: one call brings up what a file needs (the bot process or
 * instances on the embedded store or MongoDB, outbox or Graph mail, PC/SC through pcscd's vpcd
 * readers), each "seat" (a person at a workstation: their card, their companion process, their
 * Teams client as the Agents Playground through its API or in Chromium), helpers for what the files
 * do again and again (pair, open the passcode page, read the card back, click a card action), and
 * one teardown that stops everything it started, in order.
 *
 * The building blocks stay in `e2e-stack.ts` (bot, admin command, companion, virtual card) and are
 * re-exported here, so a test file imports from one place.
 *
 * Usage:
 *
 *   const gate = await e2eGate({ chromium: true });
 *   describe.skipIf(gate.skip)('...', () => {
 *     let e2e: E2eStack;
 *     let seat: E2eSeat;
 *     beforeAll(async () => {
 *       e2e = await startE2eStack({ name: 'e2e-pulled', botEnv: { LOG_LEVEL: 'trace' } });
 *       await seedPerson(e2e.bot, person);
 *       seat = await e2e.addSeat({ card: { cardId, pin, puk, blocked: true }, workstation: 'WS-1', teams: { user: { id: 'user-id-0', name: 'Alex Wilber' } } });
 *       await seat.pair();
 *       await seat.openPage();
 *     });
 *     afterAll(() => e2e?.stop());
 *   });
 *
 * Names: the bot logs as `<name>-bot` (several instances: `<name>-bot<suffix>`), a seat's companion as
 * `<name>-companion<suffix>`, its Playground as `<name>-playground<suffix>`, its Chromium screenshots as
 * `<name><suffix>-*.png`: the secret scans and screenshots of the files rely on these names.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import type { Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
import { QUESTION_BANK } from '../../bot/journeys/registration/question-bank';
import type { OutboxEntry } from '../../bot/mail/outbox-mail.adapter';
import { PageBrowser, pageState } from '../../companion/passcode-page/page-browser.fake';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { openPlayground, type PlaygroundPage } from './browser';
import { E2E_WAIT_MS, mailTransportFromEnv, removeTestDirs, startBotStack, startCompanion, VpcdCard, type BotStack, type CompanionProcess, type MailTransportChoice } from './e2e-stack';
import { privateFerretdbGate, startPrivateFerretdb, type PrivateFerretdb } from './ferretdb';
import { hasOpenssl } from './graph-fake/test-pki';
import { pcscdService, VPCD_READER, VPCD_READER_2 } from './pcscd';
import { cardText, messageText, startPlayground, type InvokeResult, type PlaygroundHandle } from './playground';
import { chromiumService, playgroundService, requireServices, type ServiceCheck } from './services';

export * from './e2e-stack';
export { VPCD_READER, VPCD_READER_2 } from './pcscd';

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** Where the bot keeps its records. */
export type E2eStore = 'embedded' | 'mongodb';

/**
 * Which MongoDB server: `private` = this test's own FerretDB (it can be stopped and started, and its files
 * scanned); `external-or-private` = the server `MONGODB_URL` names when set, else a private FerretDB.
 */
export type E2eMongoServer = 'private' | 'external-or-private';

/** What the services gate of a file checks. */
export interface E2eNeeds {
  /** Chromium (and playwright-core) for a Playground page; default false. */
  chromium?: boolean;
  /** Default `embedded`; `mongodb` adds the FerretDB gate (skipped when an external server is allowed and named). */
  store?: E2eStore;
  mongoServer?: E2eMongoServer;
  /** Default from `E2E_MAIL`; `graph` adds the openssl check (the Graph fake's test PKI). */
  mail?: MailTransportChoice;
  /** pcscd with vpcd (cards behind PC/SC); default true. False for a file whose cards are all in-process. */
  pcsc?: boolean;
}

/** Options of {@link startE2eStack}. */
export interface E2eStackOptions {
  /** Name prefix of every log, profile and screenshot (see the module comment), e.g. `e2e-pulled`. */
  name: string;
  /** Default `embedded`. */
  store?: E2eStore;
  /** With `store: 'mongodb'`: which server; default `private`. */
  mongoServer?: E2eMongoServer;
  /** With `store: 'mongodb'`: the database name; default `t_<hex>` (fresh). */
  database?: string;
  /** Default from `E2E_MAIL` ({@link mailTransportFromEnv}). */
  mail?: MailTransportChoice;
  /** Open a PC/SC context (cards behind vpcd); default true. False: every seat must use `reader: 'in-process'`. */
  pcsc?: boolean;
  /** More environment for every bot instance (e.g. `LOG_LEVEL`). */
  botEnv?: Record<string, string>;
  /**
   * The bot instances, started one after the other (each creates the indexes at start-up) over the same store
   * and master key; default one, `[{}]`. `suffix` names the log `<name>-bot<suffix>`; `env` is added for that one.
   */
  bots?: ReadonlyArray<{ suffix?: string; env?: Record<string, string> }>;
}

/** A vpcd reader of pcscd. */
export type VpcdReader = typeof VPCD_READER | typeof VPCD_READER_2;

/** Options of {@link E2eStack.addSeat}. */
export interface E2eSeatOptions {
  /** Added to the seat's names (`<name>-companion<suffix>`...); default none. */
  suffix?: string;
  /** The person's card (PIN, PUK, blocked or not). */
  card: { cardId: string; pin: string; puk: string; blocked: boolean };
  /**
   * Where the card goes: a vpcd reader (default {@link VPCD_READER}), `free` = whichever vpcd reader is free
   * (waits up to 10 minutes while other runs hold both), or `in-process` = inside the companion (no pcscd, no
   * read-back: {@link E2eSeat.card} throws).
   */
  reader?: VpcdReader | 'free' | 'in-process';
  /** The companion's workstation name (shown in Teams). */
  workstation: string;
  /** Default `debug`. */
  companionLogLevel?: 'debug' | 'trace';
  /** More companion settings (e.g. `COMPANION_OPEN_PAGE=browser` with a `COMPANION_BROWSER_COMMAND`); also on a restart. */
  companionEnv?: Record<string, string>;
  /** Index of the bot instance the companion talks to; default 0. */
  companionBot?: number;
  /** The person's Teams client; none when absent. */
  teams?: {
    /** Who types in this Playground (`aadObjectId`: sent as `activity.from.aadObjectId`; default derived from the id). */
    user: { id: string; name: string; aadObjectId?: string };
    /** Index of the bot instance the Playground talks to; default 0. */
    bot?: number;
    /**
     * `api` (default): the Playground's own HTTP/WebSocket interface, the bot installed in the personal chat;
     * `chromium`: its web UI in Chromium (opening it installs the bot; waits for the welcome).
     */
    client?: 'api' | 'chromium';
  };
}

// ---------------------------------------------------------------------------
// The gate
// ---------------------------------------------------------------------------

/** The Graph fake's test PKI is made with the openssl command. */
export const opensslService: ServiceCheck = {
  name: 'openssl (test PKI of the Graph fake)',
  probe: () => (hasOpenssl() ? { name: 'openssl', ok: true } : { name: 'openssl', ok: false, reason: 'the openssl command is not on PATH', hint: 'apt-get install openssl' }),
};

/**
 * Probe the services an end-to-end file needs: the Agents Playground always, pcscd unless `needs.pcsc` is false,
 * Chromium, FerretDB and openssl as `needs` says.
 *
 * @returns `{ skip }`: true only outside CI when something is missing (a line on stderr says what)
 * @throws Error under `CI=true` when something is missing
 */
export async function e2eGate(needs: E2eNeeds = {}): Promise<{ skip: boolean }> {
  const checks = [...(needs.chromium ? [chromiumService()] : []), playgroundService(), ...(needs.pcsc === false ? [] : [pcscdService()]), ...((needs.mail ?? mailTransportFromEnv()) === 'graph' ? [opensslService] : [])];
  const gate = await requireServices(checks);
  if (needs.store !== 'mongodb' || (needs.mongoServer === 'external-or-private' && externalMongoUrl())) return gate;
  const ferret = await privateFerretdbGate();
  return { skip: gate.skip || ferret.skip };
}

/** `MONGODB_URL` when set (a real MongoDB for the suites), else undefined. */
export function externalMongoUrl(): string | undefined {
  return process.env['MONGODB_URL'] || undefined;
}

// ---------------------------------------------------------------------------
// Helpers the files share
// ---------------------------------------------------------------------------

/**
 * A PC/SC read-back from this test, tried again when another process (the companion) reset the shared card
 * meanwhile: PC/SC then fails the next transmit with SCARD_W_RESET_CARD (0x80100068) and sends nothing to the
 * card, so trying again changes nothing on it.
 *
 * @param read - e.g. `() => card.verifies(pin)`
 * @returns what `read` returns
 * @throws the last error after 5 tries, or at once an error that is not a card reset
 */
export async function onCard<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (attempt >= 5 || !(err instanceof Error && /Card was reset|0x80100068/.test(err.message))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Insert a card into whichever vpcd reader is free, waiting (up to 10 minutes) while other runs on this
 * machine hold both. Under CI the suite runs alone and the first reader is free.
 *
 * @throws Error when no reader is free within 10 minutes, or the insert fails for another reason
 */
export async function insertOnFreeReader(pcsc: PcscReaderAdapter, options: { cardId: string; pin: string; puk: string; blocked: boolean }): Promise<VpcdCard> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    for (const reader of [VPCD_READER, VPCD_READER_2]) {
      try {
        return await VpcdCard.insert(pcsc, reader, options);
      } catch (err) {
        if (!(err instanceof Error && /already holds a card|did not talk to the card/.test(err.message)) || Date.now() > deadline) throw err;
      }
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/**
 * The card an invoke (a card action) was answered with.
 *
 * @throws Error on an HTTP error answer, or an answer that is not a card
 */
export function invokeCard(r: InvokeResult): unknown {
  if (!r.ok) throw new Error(`card action failed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  if (!r.card) throw new Error(`card action answered ${String(r.type)}, not a card`);
  return r.card;
}

/** The text of the card an invoke was answered with (see {@link invokeCard}). */
export function invokeCardText(r: InvokeResult): string {
  return cardText(invokeCard(r));
}

/**
 * The text of a question of the bank.
 *
 * @param id - e.g. `q01`
 * @throws Error for an id the bank does not hold
 */
export function questionText(id: string): string {
  const q = QUESTION_BANK.find((x) => x.id === id);
  if (!q) throw new Error(`no question ${id} in the bank`);
  return q.text;
}

/**
 * What a person types for each question a questions card asks, for {@link answerInputs}.
 *
 * @param registered - the person's questions and answers
 * @param typed - how the person types an answer (e.g. another case); default as registered
 * @returns answer by question text; undefined for a question the person did not register
 */
export function answersByQuestion(registered: ReadonlyArray<{ questionId: string; answer: string }>, typed: (answer: string) => string = (a) => a): (questionText: string) => string | undefined {
  return (text) => {
    const q = QUESTION_BANK.find((x) => x.text === text);
    const a = q && registered.find((r) => r.questionId === q.id);
    return a ? typed(a.answer) : undefined;
  };
}

/**
 * Choose a question in a registration picker. The Playground renders a compact `Input.ChoiceSet` as a Fluent UI
 * combobox (not a `<select>`), which `PlaygroundPage.chooseOption` does not handle: open it and click the option,
 * as a person does.
 *
 * @param card - the questions card
 * @param label - the picker's label, e.g. `Question 1`
 * @param option - the question text to choose
 */
export async function chooseInCombobox(ui: PlaygroundPage, card: Locator, label: string, option: string): Promise<void> {
  const box = card.getByRole('combobox', { name: label });
  await box.click();
  await ui.page.getByRole('option', { name: option, exact: true }).click();
  await expect.poll(() => box.inputValue()).toBe(option);
}

// ---------------------------------------------------------------------------
// The person's effort (issue #14)
// ---------------------------------------------------------------------------

/** What a person does: a message typed in Teams, a click, a field typed, a page / email / SMS opened. */
export type EffortKind = 'message' | 'click' | 'field' | 'open';

/** One counted interaction, or (`kind: 'auto'`) something that happened for the person and is not counted. */
export interface EffortStep {
  kind: EffortKind | 'auto';
  what: string;
}

/**
 * The person's interactions in one journey, in order, as the test performs them (issue #14, "The person's
 * effort is measured"): each call is made where the test does the thing on the person's behalf.
 */
export class EffortLog {
  readonly steps: EffortStep[] = [];

  constructor(readonly title: string) {}

  /** Record a person's interaction (counted). */
  did(kind: EffortKind, what: string): void {
    this.steps.push({ kind, what });
  }

  /** Record what the product did for the person (shown, not counted), e.g. the companion opening its page. */
  auto(what: string): void {
    this.steps.push({ kind: 'auto', what });
  }

  /** Counted interactions. */
  get count(): number {
    return this.steps.filter((s) => s.kind !== 'auto').length;
  }

  /** Numbered list: counted steps numbered, `auto` ones marked `-`. */
  text(): string {
    let n = 0;
    const lines = this.steps.map((s) => (s.kind === 'auto' ? `     -  (by itself) ${s.what}` : `  ${String(++n).padStart(3)}. [${s.kind}] ${s.what}`));
    return `${this.title}: ${this.count} interactions\n${lines.join('\n')}`;
  }
}

// ---------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------

/** A person at a workstation: their card, companion and Teams client. */
export interface E2eSeat {
  /** The card behind vpcd, read back over PC/SC. @throws Error for an in-process card */
  readonly card: VpcdCard;
  /** The companion running now (the newest after {@link E2eSeat.restartCompanion}). */
  readonly companion: CompanionProcess;
  /** Every companion process started for this seat, oldest first (for the secret scan). */
  readonly companions: readonly CompanionProcess[];
  /** The Playground (Teams side). @throws Error when the seat has no Teams client */
  readonly pg: PlaygroundHandle;
  /** The Playground's web UI in Chromium. @throws Error unless `teams.client` is `chromium` */
  readonly ui: PlaygroundPage;
  /** The companion's passcode page as a browser without JavaScript sees it. @throws Error before {@link E2eSeat.openPage} */
  readonly page: PageBrowser;
  /**
   * Pair the companion: its pairing code typed as `pair CODE` in the Teams chat (in Chromium or through the
   * Playground's API), the answer must say "This computer is paired", then the companion's "connected" lines.
   *
   * @returns the text of the bot's answer
   */
  pair(): Promise<string>;
  /** Open the companion's newest passcode page link as {@link E2eSeat.page} (expects HTTP 200). */
  openPage(): Promise<PageBrowser>;
  /** The page's `data-state` now (read through {@link E2eSeat.page}). */
  pageState(): Promise<string | null>;
  /** Open the companion's newest passcode page link in another tab of the Chromium Teams client (closed at teardown). */
  openPageTab(): Promise<Page>;
  /**
   * Start the companion again on the same data directory (it keeps its pairing), after the test stopped it.
   *
   * @param suffix - added to the companion's log name, e.g. `-2`
   */
  restartCompanion(suffix: string): CompanionProcess;
  /** Close the tabs, the Chromium page and the Playground (the companion and card stay); idempotent. */
  closeTeams(): Promise<void>;
}

/** What {@link startE2eStack} started. */
export interface E2eStack {
  readonly name: string;
  /** The first bot instance. */
  readonly bot: BotStack;
  /** Every bot instance, in the order of `options.bots`. */
  readonly bots: readonly BotStack[];
  /** This test process's PC/SC context (the read-backs, more cards). @throws Error when started with `pcsc: false` */
  readonly pcsc: PcscReaderAdapter;
  /** This test's own FerretDB (`store: 'mongodb'` on a private server), else undefined. */
  readonly ferret: PrivateFerretdb | undefined;
  /** With `store: 'mongodb'`: the server URL and database the bots use, and a client of this test. */
  readonly mongo: { url: string; database: string; client: MongoClient } | undefined;
  /** Every seat added, in order. */
  readonly seats: readonly E2eSeat[];
  /**
   * Add a person at a workstation: insert their card, start their companion, open their Teams client.
   *
   * @throws Error when the reader holds another card, a process does not start, or the Playground does not open
   */
  addSeat(options: E2eSeatOptions): Promise<E2eSeat>;
  /** The mail of every bot instance (each writes its own outbox), oldest first by file name. */
  outbox(): Promise<OutboxEntry[]>;
  /**
   * Wait until some bot instance's outbox holds a message matching `predicate`.
   *
   * @throws Error on timeout, listing what the outboxes hold
   */
  waitForMail(predicate: (m: OutboxEntry) => boolean, timeoutMs?: number): Promise<OutboxEntry>;
  /**
   * Stop everything started, in order (Teams, companions, bots, cards, PC/SC, MongoDB) and delete the data
   * directories; idempotent.
   *
   * @param hooks.beforeStore - runs once every process is stopped, while the MongoDB server and the test's client
   *   still work (e.g. to save the command bus for a look, or drop the database); its failure is reported after the rest stopped
   */
  stop(hooks?: { beforeStore?: () => Promise<void> }): Promise<void>;
}

/**
 * Bring up the bot side of an end-to-end file: a private FerretDB and a database when the store is MongoDB, the
 * bot instance(s), and this test's PC/SC context. Add people with {@link E2eStack.addSeat}.
 *
 * @param options - see {@link E2eStackOptions}
 * @returns the stack; call `stop()` in `afterAll` (also after a failed start: it stops what did start)
 * @throws Error when a part does not start (what did start is stopped first)
 */
export async function startE2eStack(options: E2eStackOptions): Promise<E2eStack> {
  const bots: BotStack[] = [];
  const seats: SeatImpl[] = [];
  let ferret: PrivateFerretdb | undefined;
  let mongo: E2eStack['mongo'];
  let pcsc: PcscReaderAdapter | undefined;

  const stop = async (hooks: { beforeStore?: () => Promise<void> } = {}): Promise<void> => {
    for (const s of [...seats].reverse()) await s.closeTeams();
    for (const s of seats) for (const c of s.companions) await c.stop();
    for (const b of bots) await b.stop();
    for (const s of seats) await s.dispose();
    await pcsc?.close();
    const hookFailure = await hooks.beforeStore?.().then(
      () => undefined,
      (err: unknown) => err,
    );
    await mongo?.client.close();
    await ferret?.dispose(); // stops it and drops its PostgreSQL database
    await removeTestDirs(...bots.map((b) => b.dataDir), ...seats.flatMap((s) => s.companions.map((c) => c.dataDir)), ferret ? path.dirname(ferret.dataDir) : undefined);
    if (hookFailure !== undefined) throw hookFailure;
  };

  try {
    const storeEnv: Record<string, string> = {};
    if (options.store === 'mongodb') {
      const external = options.mongoServer === 'external-or-private' ? externalMongoUrl() : undefined;
      if (!external) ferret = await startPrivateFerretdb();
      const url = external ?? ferret!.url;
      const database = options.database ?? `t_${randomBytes(6).toString('hex')}`;
      // Connects on first use (a file that never reads the database opens no connection).
      const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
      mongo = { url, database, client };
      storeEnv['STORAGE'] = 'mongodb';
      storeEnv['MONGODB_URL'] = url;
      storeEnv['MONGODB_DATABASE'] = database;
    }
    if (options.pcsc !== false) pcsc = await PcscReaderAdapter.open();
    const instances = options.bots ?? [{}];
    // Several instances share the master key (one store); a single bot gets a fresh one from startBotStack.
    const key: Record<string, string> = instances.length > 1 ? { SMARTCARD_MASTER_KEY: randomBytes(32).toString('base64') } : {};
    for (const instance of instances) {
      bots.push(await startBotStack(`${options.name}-bot${instance.suffix ?? ''}`, { ...storeEnv, ...key, ...options.botEnv, ...instance.env }, options.mail ? { mail: options.mail } : {}));
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  const outbox = async (): Promise<OutboxEntry[]> => {
    const all: OutboxEntry[] = [];
    for (const b of bots) all.push(...(await b.outbox()));
    return bots.length > 1 ? all.sort((x, y) => x.name.localeCompare(y.name)) : all;
  };

  return {
    name: options.name,
    bot: bots[0]!,
    bots,
    get pcsc(): PcscReaderAdapter {
      if (!pcsc) throw new Error('this stack was started with pcsc: false');
      return pcsc;
    },
    ferret,
    mongo,
    seats,
    async addSeat(seatOptions) {
      const seat = new SeatImpl(options.name, bots, pcsc, seatOptions);
      seats.push(seat);
      await seat.start();
      return seat;
    },
    outbox,
    async waitForMail(predicate, timeoutMs = E2E_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const all = await outbox();
        const found = all.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching email in ${bots.map((b) => b.outboxDir).join(' or ')} within ${timeoutMs} ms; outbox: ${all.map((m) => `${m.name} to ${m.headers['to'] ?? '?'}`).join(', ') || '(empty)'}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
}

/** One seat; started by {@link E2eStack.addSeat}. */
class SeatImpl implements E2eSeat {
  private vpcdCard: VpcdCard | undefined;
  private readonly started: CompanionProcess[] = [];
  private playground: PlaygroundHandle | undefined;
  private browserPage: PlaygroundPage | undefined;
  private pageBrowser: PageBrowser | undefined;
  private readonly tabs: Page[] = [];
  private readonly names: { companion: string; playground: string; ui: string };

  constructor(
    prefix: string,
    private readonly bots: readonly BotStack[],
    private readonly pcsc: PcscReaderAdapter | undefined,
    private readonly options: E2eSeatOptions,
  ) {
    const suffix = options.suffix ?? '';
    this.names = { companion: `${prefix}-companion${suffix}`, playground: `${prefix}-playground${suffix}`, ui: `${prefix}${suffix}` };
  }

  async start(): Promise<void> {
    const o = this.options;
    const reader = o.reader ?? VPCD_READER;
    if (reader !== 'in-process' && !this.pcsc) throw new Error('a card behind vpcd needs the stack\'s PC/SC context (started with pcsc: false)');
    if (reader === 'free') this.vpcdCard = await insertOnFreeReader(this.pcsc!, o.card);
    else if (reader !== 'in-process') this.vpcdCard = await VpcdCard.insert(this.pcsc!, reader, o.card);
    this.started.push(
      startCompanion(this.bot(o.companionBot), {
        name: this.names.companion,
        workstation: o.workstation,
        ...(this.vpcdCard ? { readerName: this.vpcdCard.readerName } : { inProcessCard: o.card }),
        ...(o.companionLogLevel ? { logLevel: o.companionLogLevel } : {}),
      ...(o.companionEnv ? { env: o.companionEnv } : {}),
      }),
    );
    if (!o.teams) return;
    this.playground = await startPlayground({ botUrl: this.bot(o.teams.bot).messagesUrl, name: this.names.playground, currentUser: o.teams.user });
    if (o.teams.client === 'chromium') {
      this.browserPage = await openPlayground(this.playground.url, { name: this.names.ui, timeoutMs: E2E_WAIT_MS, waitForText: 'I am Smartcard Assist' });
    } else {
      await this.playground.install();
    }
  }

  private bot(index = 0): BotStack {
    const b = this.bots[index];
    if (!b) throw new Error(`no bot instance ${index} (the stack has ${this.bots.length})`);
    return b;
  }

  get card(): VpcdCard {
    if (!this.vpcdCard) throw new Error('this seat\'s card is in the companion\'s in-process reader: no PC/SC read-back');
    return this.vpcdCard;
  }

  get companion(): CompanionProcess {
    return this.started[this.started.length - 1]!;
  }

  get companions(): readonly CompanionProcess[] {
    return this.started;
  }

  get pg(): PlaygroundHandle {
    if (!this.playground) throw new Error('this seat has no Teams client (options.teams)');
    return this.playground;
  }

  get ui(): PlaygroundPage {
    if (!this.browserPage) throw new Error("this seat's Teams client is not Chromium (options.teams.client)");
    return this.browserPage;
  }

  get page(): PageBrowser {
    if (!this.pageBrowser) throw new Error('the passcode page is not open yet (openPage)');
    return this.pageBrowser;
  }

  async pair(): Promise<string> {
    const code = await this.companion.pairingCode();
    let text: string;
    if (this.browserPage) {
      await this.browserPage.sendChat(`pair ${code}`);
      const paired = await this.browserPage.waitForCardWithText(/This computer is paired|Pairing did not work/, E2E_WAIT_MS);
      text = (await paired.textContent()) ?? '';
    } else {
      await this.pg.sendMessage(`pair ${code}`);
      text = messageText(await this.pg.waitForBotText(/This computer is paired|Pairing did not work/, { timeoutMs: E2E_WAIT_MS }));
    }
    expect(text).toContain('This computer is paired');
    await this.companion.waitConnected();
    return text;
  }

  async openPage(): Promise<PageBrowser> {
    this.pageBrowser = new PageBrowser(await this.companion.latestPageLink());
    expect((await this.pageBrowser.open()).status).toBe(200);
    return this.pageBrowser;
  }

  async pageState(): Promise<string | null> {
    return pageState((await this.page.get()).body);
  }

  async openPageTab(): Promise<Page> {
    const tab = await this.ui.context.newPage();
    this.tabs.push(tab);
    await tab.goto(await this.companion.latestPageLink());
    // The link's answer moves on to the session's own page, `/p/<scope>/` (issue #10 finding 6).
    await tab.waitForURL((u) => /^\/p\/[A-Za-z0-9_-]{22}\/$/.test(u.pathname) && u.search === '');
    return tab;
  }

  restartCompanion(suffix: string): CompanionProcess {
    const o = this.options;
    const previous = this.companion;
    const next = startCompanion(this.bot(o.companionBot), {
      name: `${this.names.companion}${suffix}`,
      workstation: o.workstation,
      dataDir: previous.dataDir,
      ...(this.vpcdCard ? { readerName: this.vpcdCard.readerName } : { inProcessCard: o.card }),
      ...(o.companionLogLevel ? { logLevel: o.companionLogLevel } : {}),
      ...(o.companionEnv ? { env: o.companionEnv } : {}),
    });
    this.started.push(next);
    return next;
  }

  async closeTeams(): Promise<void> {
    for (const tab of this.tabs.splice(0)) await tab.close().catch(() => undefined);
    await this.browserPage?.close();
    await this.playground?.stop();
  }

  async dispose(): Promise<void> {
    await this.vpcdCard?.dispose();
  }
}

/**
 * A recording desktop for a companion: the "browser" it opens its page with is a script that appends the
 * link to `file` (the test loads it in the person's Chromium, as the desktop's browser would show it), and
 * `notify-send`, first on PATH, appends what it was asked to show to `notices`.
 *
 * @param dir - a directory the test owns (removed by the test)
 * @param name - a name unique in `dir` (one per companion)
 * @returns the companion's environment, and the two files to read
 */
export function recordingDesktop(dir: string, name: string): { env: Record<string, string>; file: string; notices: string } {
  const file = path.join(dir, `${name}.links`);
  const script = path.join(dir, `${name}-browser.sh`);
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${file}'\n`);
  chmodSync(script, 0o700);
  const bin = mkdtempSync(path.join(dir, `${name}-bin-`));
  const notices = path.join(dir, `${name}.notices`);
  writeFileSync(path.join(bin, 'notify-send'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${notices}'\n`);
  chmodSync(path.join(bin, 'notify-send'), 0o700);
  return {
    env: { COMPANION_OPEN_PAGE: 'browser', COMPANION_BROWSER_COMMAND: script, COMPANION_TRAY: 'off', COMPANION_NOTIFICATIONS: 'on', PATH: `${bin}:${process.env['PATH'] ?? ''}` },
    file,
    notices,
  };
}
