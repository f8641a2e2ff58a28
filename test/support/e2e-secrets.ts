/**
 * Secret hygiene for end-to-end tests: search raw bytes (files, process
 * output) for every secret a test used (passcodes, PUKs, unlock codes,
 * security answers) and report where each was found, by label only: a failing
 * assertion never prints the secret itself.
 *
 * Each secret is searched as UTF-8 and as UTF-16LE bytes, digits also as the hex and
 * base64 of their ASCII bytes (as an APDU or buffer dump would show them); answers also in
 * their normalised form (Unicode NFKC, lower case, trimmed, inner spaces
 * collapsed, issue #2) and plain lower case. An outbox message is searched raw
 * and decoded (quoted-printable can split a value over a soft line break).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { parseMimeMessage } from '../../bot/mail/mime-message';
import type { BotStack, CompanionProcess } from './e2e-stack';

/** One secret the test used. */
export interface TestSecret {
  /** What it is, for reports, e.g. `person A new passcode`. Never the value. */
  label: string;
  value: string;
  /** `answer` adds the normalised and lower-case forms to the search; `digits` and `token` are searched as they are. */
  kind: 'digits' | 'token' | 'answer';
}

/** A place a secret was found. */
export interface SecretFinding {
  /** File path or a source label such as `bot stdout`. */
  where: string;
  secret: string;
  /** Which form matched, e.g. `utf8`, `utf8/utf16le`, `normalised`, `ascii-hex`, `base64`. */
  form: string;
}

/** A source to search: a file or in-memory text. */
export type ScanSource = { where: string; bytes: Buffer };

/**
 * The normalised form of an answer, as issue #2 defines it (computed here independently of the product).
 *
 * @param answer - as typed
 * @returns NFKC, lower case, trimmed, inner white space collapsed to one space
 */
export function normalisedAnswer(answer: string): string {
  return answer.normalize('NFKC').toLowerCase().normalize('NFKC').trim().replace(/\s+/gu, ' ');
}

function forms(secret: TestSecret): Array<{ form: string; bytes: Buffer }> {
  const texts: Array<{ form: string; text: string }> = [{ form: 'utf8', text: secret.value }];
  if (secret.kind === 'answer') {
    texts.push({ form: 'normalised', text: normalisedAnswer(secret.value) }, { form: 'lowercase', text: secret.value.toLowerCase() });
  }
  const out: Array<{ form: string; bytes: Buffer }> = [];
  const seen = new Set<string>();
  const add = (form: string, bytes: Buffer): void => {
    const key = bytes.toString('hex');
    if (bytes.length === 0 || seen.has(key)) return;
    seen.add(key);
    out.push({ form, bytes });
  };
  for (const t of texts) {
    add(t.form, Buffer.from(t.text, 'utf8'));
    add(`${t.form}/utf16le`, Buffer.from(t.text, 'utf16le'));
  }
  if (secret.kind === 'digits') {
    // As a log of APDU bytes would show it: the ASCII digits in hex (a PIV PIN/PUK block is these, padded with FF).
    const hex = Buffer.from(secret.value, 'latin1').toString('hex');
    add('ascii-hex', Buffer.from(hex, 'latin1'));
    add('ascii-HEX', Buffer.from(hex.toUpperCase(), 'latin1'));
    const spaced = hex.replace(/(..)(?!$)/g, '$1 ');
    add('ascii-hex spaced', Buffer.from(spaced, 'latin1'));
    add('ascii-HEX spaced', Buffer.from(spaced.toUpperCase(), 'latin1'));
    add('base64', Buffer.from(Buffer.from(secret.value, 'latin1').toString('base64').replace(/=+$/, ''), 'latin1'));
  }
  return out;
}

/**
 * Search sources for secrets.
 *
 * @param sources - bytes with a name each
 * @param secrets - what to look for
 * @param allow - return true to accept a hit (e.g. the code inside its own email)
 * @returns every (source, secret) hit not allowed, one entry per secret per source
 */
export function findSecrets(sources: ScanSource[], secrets: TestSecret[], allow: (where: string, secret: TestSecret) => boolean = () => false): SecretFinding[] {
  const findings: SecretFinding[] = [];
  for (const src of sources) {
    for (const s of secrets) {
      const hit = forms(s).find((f) => src.bytes.includes(f.bytes));
      if (hit && !allow(src.where, s)) findings.push({ where: src.where, secret: s.label, form: hit.form });
    }
  }
  return findings;
}

/**
 * Every regular file under a directory, recursively (absent directory: none).
 *
 * @returns absolute paths, sorted
 */
export async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/**
 * Read files as scan sources; an `.eml` file also yields its decoded text and HTML parts
 * (`<file>#decoded`). A file that vanished meanwhile (a WAL checkpointed away) is skipped.
 *
 * @param files - absolute paths
 */
export async function fileSources(files: string[]): Promise<ScanSource[]> {
  const out: ScanSource[] = [];
  for (const f of files) {
    let bytes: Buffer;
    try {
      if (!(await stat(f)).isFile()) continue;
      bytes = await readFile(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    out.push({ where: f, bytes });
    if (f.endsWith('.eml')) {
      const parsed = parseMimeMessage(bytes.toString('utf8'));
      out.push({ where: `${f}#decoded`, bytes: Buffer.from(`${parsed.text}\n${parsed.html}`, 'utf8') });
    }
  }
  return out;
}

/**
 * Render findings for an assertion message (labels and places only).
 *
 * @returns one line per finding
 */
export function describeFindings(findings: SecretFinding[]): string {
  return findings.map((f) => `${f.secret} (${f.form}) in ${f.where}`).join('\n');
}

/** What {@link scanProduct} looks at. */
export interface ProductScanTarget {
  /** The bot's data directory (store files, WAL, outbox), its process log and output, the admin runs. */
  bot: BotStack;
  companions: CompanionProcess[];
}

/**
 * Everything the product wrote: every file under the bot's and companions' data directories
 * (outbox messages also decoded), the bot's output (its pino log), each companion's log file
 * and stdout, and the admin command's output.
 *
 * @returns sources to pass to {@link findSecrets}
 */
export async function productSources(target: ProductScanTarget): Promise<ScanSource[]> {
  const { bot, companions } = target;
  const files = [...(await listFiles(bot.dataDir)), ...bot.processes.map((p) => p.logFile)];
  for (const c of companions) files.push(...(await listFiles(c.dataDir)), c.logFile, c.process.logFile);
  return [
    ...(await fileSources(files)),
    ...bot.processes.map((p) => ({ where: `${p.name} output`, bytes: Buffer.from(p.output()) })),
    ...companions.map((c) => ({ where: `${c.process.name} stdout`, bytes: Buffer.from(c.process.output()) })),
    ...bot.adminRuns.map((r, i) => ({ where: `admin run ${i + 1} (${r.args[0] ?? ''})`, bytes: Buffer.from(r.stdout + r.stderr) })),
  ];
}

/**
 * An `allow` for {@link findSecrets}: an unlock code may appear in its own code email (raw or decoded), nowhere else.
 *
 * @param codeMails - code email file -> the code it carries
 */
export function codeInOwnEmail(codeMails: ReadonlyMap<string, string>): (where: string, secret: TestSecret) => boolean {
  return (where, secret) => codeMails.get(where.replace(/#decoded$/, '')) === secret.value;
}

/**
 * Assert that each value is found in some source whose name matches `where`: a positive control
 * showing the scan reads what the product really wrote (e.g. the email next to the answers in the store).
 *
 * @param sources - from {@link productSources}
 * @param where - matched against `ScanSource.where`
 * @param values - plain, non-secret values the product stores or logs there
 */
export function expectFoundIn(sources: ScanSource[], where: RegExp, values: string[]): void {
  const picked = sources.filter((s) => where.test(s.where));
  expect(picked.length, `no source matches ${String(where)}`).toBeGreaterThan(0);
  for (const v of values) expect(picked.some((s) => s.bytes.includes(Buffer.from(v, 'utf8'))), `"${v}" not found in ${String(where)}`).toBe(true);
}

/**
 * The companions' own secrets: each device credential's secret part (`credential.json`, written
 * after pairing; the device id before the dot is not secret) and each passcode page token
 * (from the `PASSCODE PAGE:` lines), with where each may appear: the credential in its own
 * file only, a token in that companion's stdout only.
 *
 * @param companions - running or stopped companions (after pairing)
 * @returns secrets (labels name the companion) and an `allow` for {@link findSecrets}
 */
export async function companionSecrets(companions: CompanionProcess[]): Promise<{ secrets: TestSecret[]; allow: (where: string, secret: TestSecret) => boolean }> {
  const secrets: TestSecret[] = [];
  const allowed = new Map<string, Set<string>>();
  const permit = (label: string, ...places: string[]): void => {
    allowed.set(label, new Set(places));
  };
  for (const c of companions) {
    const name = c.process.name;
    const file = path.join(c.dataDir, 'credential.json');
    try {
      const stored = JSON.parse(await readFile(file, 'utf8')) as { credential?: string };
      const secret = stored.credential?.split('.').slice(1).join('.') ?? '';
      if (secret.length >= 20) {
        secrets.push({ label: `${name} device credential`, value: secret, kind: 'token' });
        permit(`${name} device credential`, file);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const tokens = c.process.lines().flatMap((l) => {
      const m = /^PASSCODE PAGE: http:\/\/127\.0\.0\.1:\d+\/\?t=(\S+)$/.exec(l);
      return m ? [m[1]!] : [];
    });
    tokens.forEach((t, i) => {
      secrets.push({ label: `${name} page token ${i + 1}`, value: t, kind: 'token' });
      permit(`${name} page token ${i + 1}`, `${name} stdout`, c.process.logFile);
    });
  }
  return { secrets, allow: (where, s) => allowed.get(s.label)?.has(where) ?? false };
}

/**
 * Combine `allow` functions: a hit is accepted when any accepts it.
 *
 * @param allows - see {@link findSecrets}
 */
export function anyAllow(...allows: Array<(where: string, secret: TestSecret) => boolean>): (where: string, secret: TestSecret) => boolean {
  return (where, secret) => allows.some((a) => a(where, secret));
}
