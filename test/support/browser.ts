/**
 * The Agents Playground's web UI in Debian's Chromium, driven by playwright-core
 * (never a downloaded browser): a fresh profile per page, every request to a
 * host other than loopback aborted, and helpers that act like a person: type a
 * message, find a card, fill an input by its label, click a button by its title.
 * Selectors and pitfalls: `.notes/playground.md`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { artifactDir, artifactPath } from './artifacts';
import { chromiumExecutable } from './services';

/** Chromium flags that keep it quiet and offline (no GPU, no QUIC, no background traffic). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--mute-audio',
] as const;

/** Selectors of the Playground UI (0.2.28). */
export const PlaygroundSelectors = {
  /** The message box (Lexical editor). */
  messageBox: '[data-lexical-editor="true"][role="textbox"]',
  /** A bot message bubble (text or cards); user messages are not in these. */
  botMessage: '.fai-OutputCard',
  /** A rendered Adaptive Card (the Log Panel never renders cards, so this is chat-only). */
  card: '.ac-adaptiveCard',
} as const;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Options of {@link openPlayground}. */
export interface OpenPlaygroundOptions {
  /** Prefix of screenshot names and the profile directory; default `playground`. */
  name?: string;
  /** Default milliseconds for waits; default 15 000. */
  timeoutMs?: number;
  /** Default 1400 x 900. */
  viewport?: { width: number; height: number };
  /** Wait for this bot text after the page opens (opening installs the bot, so a welcome is typical). */
  waitForText?: string | RegExp;
}

/** An open Playground page and person-like helpers. */
export interface PlaygroundPage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Origins whose requests were aborted (anything not loopback). */
  readonly blocked: Set<string>;
  /** Type `text` into the message box and press Enter. */
  sendChat(text: string): Promise<void>;
  /**
   * Wait for a bot message bubble containing `text`.
   *
   * @returns locator of the newest such bubble
   */
  waitForBotText(text: string | RegExp, timeoutMs?: number): Promise<Locator>;
  /**
   * Wait for a rendered Adaptive Card containing `text`.
   *
   * @returns locator of the newest such card
   */
  waitForCardWithText(text: string | RegExp, timeoutMs?: number): Promise<Locator>;
  /**
   * Fill an input by its label (Input.Text, Input.Number, Input.Date...). Scope: `card`, or the newest card
   * that has an input with that label.
   */
  fillInput(label: string | RegExp, value: string, card?: Locator): Promise<void>;
  /** Choose an option of an `Input.ChoiceSet` by the option's visible title (compact = select, expanded = radio). */
  chooseOption(label: string | RegExp, option: string, card?: Locator): Promise<void>;
  /**
   * Click a card button by its title. Scope: `card`, or the newest card with that button.
   * For `Action.Execute`, wait afterwards for the replacing card with {@link waitForCardWithText}.
   */
  clickAction(title: string | RegExp, card?: Locator): Promise<void>;
  /** Open a chat in the left pane: `Personal Chat`, `Group Chat`, `My Team - General`... (its accessible name). */
  openConversation(name: string): Promise<void>;
  /**
   * Save a full-page PNG to `artifacts/screenshots/<prefix>-<name>.png`.
   *
   * @returns absolute file path
   */
  screenshot(name: string): Promise<string>;
  /** Close the browser and delete the profile. */
  close(): Promise<void>;
}

function textMatches(text: string | RegExp): { hasText: string | RegExp } {
  return { hasText: text };
}

/**
 * Open the Playground UI in a headless Debian Chromium.
 *
 * Opening the page makes the Playground install the bot in the personal chat
 * (`installationUpdate` + `conversationUpdate`), so the bot's welcome arrives;
 * the UI shows only messages sent after it connected (no history).
 *
 * @param url - Playground base URL (loopback), e.g. `handle.url`
 * @param options - see {@link OpenPlaygroundOptions}
 * @returns the page helpers; call `close()` in `afterAll`
 * @throws Error when Chromium does not start or the message box does not appear
 */
export async function openPlayground(url: string, options: OpenPlaygroundOptions = {}): Promise<PlaygroundPage> {
  if (!LOOPBACK.has(new URL(url).hostname)) throw new Error(`openPlayground: loopback URLs only, got ${url}`);
  const name = options.name ?? 'playground';
  const timeoutMs = options.timeoutMs ?? 15_000;
  const profile = mkdtempSync(path.join(artifactDir('tmp'), 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumExecutable(),
    headless: true,
    args: [...CHROMIUM_ARGS],
    viewport: options.viewport ?? { width: 1400, height: 900 },
    locale: 'en-GB',
    timezoneId: 'Europe/London',
  });
  const blocked = new Set<string>();
  try {
    await context.route('**/*', async (route) => {
      const u = new URL(route.request().url());
      if (u.protocol === 'data:' || u.protocol === 'blob:' || LOOPBACK.has(u.hostname)) return route.continue();
      blocked.add(u.origin);
      return route.abort('blockedbyclient');
    });
    context.setDefaultTimeout(timeoutMs);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const box = page.locator(PlaygroundSelectors.messageBox);
    await box.waitFor({ state: 'visible', timeout: Math.max(timeoutMs, 30_000) });

    const cards = (): Locator => page.locator(PlaygroundSelectors.card);
    const cardWithInput = (label: string | RegExp): Locator => cards().filter({ has: page.getByLabel(label) }).last();
    const cardWithButton = (title: string | RegExp): Locator => cards().filter({ has: page.getByRole('button', { name: title, exact: typeof title === 'string' }) }).last();

    const handle: PlaygroundPage = {
      page,
      context,
      blocked,
      async sendChat(text) {
        await box.click();
        await box.pressSequentially(text);
        await page.keyboard.press('Enter');
      },
      async waitForBotText(text, t = timeoutMs) {
        const loc = page.locator(PlaygroundSelectors.botMessage, textMatches(text)).last();
        await loc.waitFor({ state: 'visible', timeout: t });
        return loc;
      },
      async waitForCardWithText(text, t = timeoutMs) {
        const loc = cards().filter(textMatches(text)).last();
        await loc.waitFor({ state: 'visible', timeout: t });
        return loc;
      },
      async fillInput(label, value, card) {
        const scope = card ?? cardWithInput(label);
        await scope.getByLabel(label).fill(value);
      },
      async chooseOption(label, option, card) {
        const scope = card ?? cardWithInput(label);
        const input = scope.getByLabel(label);
        const tag = await input.evaluate((e) => e.tagName.toLowerCase());
        if (tag === 'select') await input.selectOption({ label: option });
        else await scope.getByRole('radio', { name: option, exact: true }).check();
      },
      async clickAction(title, card) {
        const scope = card ?? cardWithButton(title);
        await scope.getByRole('button', { name: title, exact: typeof title === 'string' }).click();
      },
      async openConversation(conversationName) {
        await page.getByRole('treeitem', { name: conversationName, exact: true }).click();
      },
      async screenshot(shotName) {
        const file = artifactPath('screenshots', `${name}-${shotName}.png`);
        await page.screenshot({ path: file, fullPage: true });
        return file;
      },
      async close() {
        await context.close().catch(() => undefined);
        rmSync(profile, { recursive: true, force: true });
      },
    };
    if (options.waitForText !== undefined) await handle.waitForBotText(options.waitForText, Math.max(timeoutMs, 30_000));
    return handle;
  } catch (err) {
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}
