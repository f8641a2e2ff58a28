/**
 * The Teams app package (manifest/, `npm run package`): the manifest against
 * Microsoft's Teams manifest JSON schema from `@microsoft/app-manifest`, offline
 * with ajv; the icons against Teams' icon rules; the zip that `npm run package`
 * writes (read back with fflate); and refusals of bad settings and of a broken
 * manifest or icon in a temporary copy of manifest/.
 *
 * Needs no service: it runs the real commands (`npm run package`,
 * `npx tsx manifest/app-icons.main.ts`) as child processes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { strFromU8, unzipSync } from 'fflate';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIntent } from '../../bot/teams/intents';
import { AppError } from '../../common/app-error';
import { APP_ICON, appIconProblems, decodeIcon, drawColorIcon, drawOutlineIcon } from '../../manifest/app-icons';
import { APP_PACKAGE_FILES, buildAppPackage, fillManifest, MANIFEST_DIR } from '../../manifest/app-package';
import { APP_PACKAGE_SETTINGS, loadAppPackageConfig, type AppPackageConfig } from '../../manifest/app-package.config';
import { checkTeamsManifest, TEAMS_MANIFEST_VERSION, teamsManifestSchemaPath } from '../../manifest/teams-manifest.schema';

const REPO_ROOT = path.resolve(MANIFEST_DIR, '..');
const EXAMPLE_ENV_FILE = 'manifest/app-package.env.example';
const GUIDE = path.join(REPO_ROOT, 'docs', 'teams-app.md');

/** Every command line this file runs, as run (for the guide check at the end). */
const commandsRun: string[] = [];

function run(command: string, args: string[], env: Record<string, string | undefined> = {}): { status: number | null; stdout: string; stderr: string } {
  const line = [...Object.keys(env).map((k) => `${k}=${env[k] ?? ''}`), command, ...args].join(' ');
  commandsRun.push(line);
  // Settings come only from the env file and `env`: none leak in from the machine running the test.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in APP_PACKAGE_SETTINGS)));
  const result = spawnSync(command, args, { cwd: REPO_ROOT, env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function npmRunPackage(args: string[], env: Record<string, string | undefined> = {}) {
  return run('npm', ['run', 'package', '--', ...args], env);
}

type Json = Record<string, unknown>;
const clone = <T>(v: T): T => structuredClone(v);
interface Bot {
  botId: string;
  scopes: string[];
  supportsFiles?: boolean;
  isNotificationOnly?: boolean;
  commandLists: { scopes: string[]; commands: { title: string; description: string }[] }[];
}

let template: Json;
let exampleEnv: Record<string, string | undefined>;
let exampleConfig: AppPackageConfig;
let tmp: string;

beforeAll(async () => {
  template = JSON.parse(await readFile(path.join(MANIFEST_DIR, 'manifest.json'), 'utf8')) as Json;
  exampleEnv = parseEnv(await readFile(path.join(REPO_ROOT, EXAMPLE_ENV_FILE), 'utf8'));
  exampleConfig = loadAppPackageConfig(exampleEnv);
  tmp = await mkdtemp(path.join(tmpdir(), 'app-package-'));
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('manifest.json against the Teams manifest JSON schema (offline, @microsoft/app-manifest 1.1.2, ajv)', () => {
  it(`names schema version ${TEAMS_MANIFEST_VERSION}, whose schema file is in the installed package`, () => {
    expect(template.manifestVersion).toBe(TEAMS_MANIFEST_VERSION);
    expect(template.$schema).toBe(`https://developer.microsoft.com/json-schemas/teams/v${TEAMS_MANIFEST_VERSION}/MicrosoftTeams.schema.json`);
    expect(existsSync(teamsManifestSchemaPath())).toBe(true);
  });

  it('the template filled from the example settings follows the schema', () => {
    const check = checkTeamsManifest(fillManifest(template, exampleConfig));
    expect(check).toEqual({ ok: true });
  });

  it('the unfilled template is refused: its ids are placeholders, not GUIDs', () => {
    const check = checkTeamsManifest(template);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.problems.map((p) => p.path)).toEqual(expect.arrayContaining(['/id', '/bots/0/botId']));
  });

  const breakages: [string, (m: Json & { bots: Bot[]; name: { short: string } }) => void, string][] = [
    ['no botId', (m) => delete (m.bots[0] as Partial<Bot>).botId, '/bots/0'],
    ['a botId that is not a GUID', (m) => (m.bots[0]!.botId = 'smartcard-assist'), '/bots/0/botId'],
    ['another manifestVersion than its schema', (m) => (m.manifestVersion = '1.28'), '/manifestVersion'],
    ['an unknown bot scope', (m) => (m.bots[0]!.scopes = ['personal', 'everyone']), '/bots/0/scopes/1'],
    ['a short name over 30 characters', (m) => (m.name.short = 'Smartcard Assist for every NHS Trust'), '/name/short'],
    ['an accent colour that is not #RRGGBB', (m) => (m.accentColor = 'NHS blue'), '/accentColor'],
    ['a property the schema does not know', (m) => (m.passcodePolicy = '6-8 digits'), ''],
    ['a privacy URL that is not http(s)', (m) => ((m.developer as Json).privacyUrl = 'ftp://example.nhs.uk/privacy'), '/developer/privacyUrl'],
  ];
  it.each(breakages)('ajv refuses a copy with %s', (_what, breakIt, where) => {
    const broken = clone(fillManifest(template, exampleConfig)) as Json & { bots: Bot[]; name: { short: string } };
    breakIt(broken);
    const check = checkTeamsManifest(broken);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.problems.map((p) => p.path)).toContain(where);
  });

  it('a placeholder with no value stops the fill, naming it and where it is', () => {
    const t = clone(template);
    (t.developer as Json).mpnId = '${{partnerId}}';
    expect(() => fillManifest(t, exampleConfig)).toThrow(/partnerId \(at \/developer\/mpnId\)/);
  });
});

describe('the bot in the manifest', () => {
  const bot = (): Bot => (template.bots as Bot[])[0]!;
  const personal = (): { title: string; description: string }[] => bot().commandLists.find((l) => l.scopes.includes('personal'))!.commands;

  it('is a conversational bot in personal and team scopes that takes no files, and the app needs no webApplicationInfo', () => {
    expect(bot().scopes).toEqual(['personal', 'team']);
    expect(bot().supportsFiles).toBe(false);
    expect(bot().isNotificationOnly).toBe(false);
    expect(template.defaultInstallScope).toBe('personal');
    // Graph is called with the bot's own application credentials, not a user's SSO token.
    expect(template).not.toHaveProperty('webApplicationInfo');
    expect(template.validDomains).toEqual(['${{botDomain}}']);
  });

  it('offers unlock, register, pair, help and talk to RA in a personal chat, within Teams\' length limits', () => {
    expect(personal().map((c) => c.title)).toEqual(['unlock', 'register', 'pair', 'help', 'talk to RA']);
    for (const list of bot().commandLists) {
      for (const c of list.commands) {
        expect(c.title.length).toBeLessThanOrEqual(32);
        expect(c.description.length).toBeGreaterThan(0);
        expect(c.description.length).toBeLessThanOrEqual(128);
      }
    }
  });

  it('says "passcode", never "PIN", in anything a person reads', () => {
    expect(JSON.stringify(template)).not.toMatch(/\bPINs?\b/i);
    expect(JSON.stringify(template)).toMatch(/passcode/);
  });

  it.each([
    ['unlock', 'unlock'],
    ['register', 'register'],
    ['pair', 'pair_help'],
    ['help', 'help'],
  ])('the command "%s", sent as typed text, is understood by the bot as %s (bot/teams/intents.ts)', (title, kind) => {
    expect(personal().some((c) => c.title === title)).toBe(true);
    expect(parseIntent(title).kind).toBe(kind);
  });

  it.todo('the command "talk to RA" is understood by the bot: bot/teams/intents.ts has no intent for a hand-off on request yet');
});

describe('the icons (Teams: colour 192x192; outline 32x32, white on transparent)', () => {
  it('colour icon is a 192x192 PNG, every pixel opaque', async () => {
    const color = decodeIcon(await readFile(path.join(MANIFEST_DIR, APP_ICON.color.file)));
    expect([color.width, color.height]).toEqual([192, 192]);
    for (let i = 3; i < color.data.length; i += 4) if (color.data[i] !== 255) expect.fail(`pixel ${(i - 3) / 4} has alpha ${color.data[i]}`);
  });

  it('outline icon is a 32x32 PNG: every visible pixel pure white, corners transparent, some pixels opaque', async () => {
    const outline = decodeIcon(await readFile(path.join(MANIFEST_DIR, APP_ICON.outline.file)));
    expect([outline.width, outline.height]).toEqual([32, 32]);
    let opaque = 0;
    let transparent = 0;
    for (let i = 0; i < outline.data.length; i += 4) {
      const a = outline.data[i + 3]!;
      if (a > 0) expect([outline.data[i], outline.data[i + 1], outline.data[i + 2]]).toEqual([255, 255, 255]);
      if (a === 255) opaque++;
      if (a === 0) transparent++;
    }
    expect(opaque).toBeGreaterThan(50);
    expect(transparent).toBeGreaterThan(300);
    for (const p of [0, 31, 32 * 31, 32 * 32 - 1]) expect(outline.data[p * 4 + 3]).toBe(0);
  });

  it('the committed icons are what `npx tsx manifest/app-icons.main.ts` draws, pixel for pixel', async () => {
    const outDir = path.join(tmp, 'icons');
    const r = run('npx', ['tsx', 'manifest/app-icons.main.ts', '--out-dir', outDir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const file of [APP_ICON.color.file, APP_ICON.outline.file]) {
      const drawn = decodeIcon(await readFile(path.join(outDir, file)));
      const committed = decodeIcon(await readFile(path.join(MANIFEST_DIR, file)));
      expect([drawn.width, drawn.height]).toEqual([committed.width, committed.height]);
      expect(drawn.data.equals(committed.data)).toBe(true);
    }
  });

  it('the icon check refuses a grey pixel, an opaque background and a wrong size', () => {
    const good = { color: drawColorIcon(), outline: drawOutlineIcon() };
    expect(appIconProblems(good)).toEqual([]);
    const edit = (png: Buffer, change: (img: PNG) => void): Buffer => {
      const img = PNG.sync.read(png);
      change(img);
      return PNG.sync.write(img);
    };
    const grey = edit(good.outline, (img) => img.data.set([128, 128, 128, 255], (16 * 32 + 16) * 4));
    expect(appIconProblems({ ...good, outline: grey }).join('\n')).toMatch(/1 visible pixels that are not pure white/);
    const filled = edit(good.outline, (img) => img.data.set([255, 255, 255, 255], 0));
    expect(appIconProblems({ ...good, outline: filled }).join('\n')).toMatch(/not transparent/);
    const small = PNG.sync.write(new PNG({ width: 96, height: 96 }));
    expect(appIconProblems({ ...good, color: small }).join('\n')).toMatch(/color\.png is 96x96; Teams needs 192x192/);
  });
});

describe('npm run package', () => {
  let zipPath: string;
  let entries: Record<string, Uint8Array>;

  beforeAll(async () => {
    zipPath = path.join(tmp, 'dist', 'appPackage.zip');
    const r = npmRunPackage(['--env-file', EXAMPLE_ENV_FILE, '--out', zipPath]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Set the Azure Bot's messaging endpoint to https://smartcard-assist.example.nhs.uk/api/messages`);
    entries = unzipSync(new Uint8Array(await readFile(zipPath)));
  });

  it('writes appPackage.zip with exactly manifest.json, color.png and outline.png at its root', () => {
    expect(Object.keys(entries).sort()).toEqual([...APP_PACKAGE_FILES].sort());
    expect(Object.keys(entries).sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
  });

  it('the manifest inside is the template filled from the settings, and follows the schema', () => {
    const inside = JSON.parse(strFromU8(entries['manifest.json']!)) as Json & { bots: Bot[]; developer: Json };
    expect(inside).toEqual(fillManifest(template, exampleConfig));
    expect(inside.id).toBe(exampleEnv.MicrosoftAppId);
    expect(inside.bots[0]!.botId).toBe(exampleEnv.MicrosoftAppId);
    expect(inside.version).toBe(exampleEnv.TEAMS_APP_VERSION);
    expect(inside.developer).toEqual({
      name: exampleEnv.TEAMS_APP_DEVELOPER_NAME,
      websiteUrl: exampleEnv.TEAMS_APP_WEBSITE_URL,
      privacyUrl: exampleEnv.TEAMS_APP_PRIVACY_URL,
      termsOfUseUrl: exampleEnv.TEAMS_APP_TERMS_URL,
    });
    expect(inside.validDomains).toEqual(['smartcard-assist.example.nhs.uk']);
    expect(strFromU8(entries['manifest.json']!)).not.toContain('${{');
    expect(checkTeamsManifest(inside)).toEqual({ ok: true });
  });

  it('the icons inside are the committed icons, byte for byte', async () => {
    for (const file of [APP_ICON.color.file, APP_ICON.outline.file]) {
      expect(Buffer.from(entries[file]!).equals(await readFile(path.join(MANIFEST_DIR, file)))).toBe(true);
    }
  });

  it('a setting in the environment wins over the env file', async () => {
    const out = path.join(tmp, 'override.zip');
    const r = npmRunPackage(['--env-file', EXAMPLE_ENV_FILE, '--out', out], { TEAMS_APP_VERSION: '1.0.1' });
    expect(r.status).toBe(0);
    const m = JSON.parse(strFromU8(unzipSync(new Uint8Array(await readFile(out)))['manifest.json']!)) as Json & { bots: Bot[] };
    expect(m.version).toBe('1.0.1');
    expect(m.id).toBe(exampleEnv.MicrosoftAppId);
  });

  it('TEAMS_APP_ID gives the Teams app its own id; the bot keeps MicrosoftAppId', async () => {
    const teamsAppId = '5f0e9d8c-7b6a-4f3e-9d2c-1b0a9f8e7d6c';
    const { zip } = await buildAppPackage(loadAppPackageConfig({ ...exampleEnv, TEAMS_APP_ID: teamsAppId }));
    const m = JSON.parse(strFromU8(unzipSync(zip)['manifest.json']!)) as Json & { bots: Bot[] };
    expect(m.id).toBe(teamsAppId);
    expect(m.bots[0]!.botId).toBe(exampleEnv.MicrosoftAppId);
  });

  it('the same settings make the same zip, byte for byte', async () => {
    const a = await buildAppPackage(exampleConfig);
    const b = await buildAppPackage(exampleConfig);
    expect(Buffer.from(a.zip).equals(Buffer.from(b.zip))).toBe(true);
    expect(Buffer.from(a.zip).equals(await readFile(zipPath))).toBe(true);
  });
});

describe('bad settings are refused, naming the setting', () => {
  const cases: [string, Record<string, string | undefined>, string][] = [
    ['MicrosoftAppId missing', { MicrosoftAppId: undefined }, 'MicrosoftAppId: must be set'],
    ['MicrosoftAppId not a GUID', { MicrosoftAppId: 'smartcard-assist-bot' }, 'MicrosoftAppId: must be a GUID'],
    ['TEAMS_APP_ID not a GUID', { TEAMS_APP_ID: '1234' }, 'TEAMS_APP_ID: must be a GUID'],
    ['BOT_PUBLIC_URL missing', { BOT_PUBLIC_URL: '' }, 'BOT_PUBLIC_URL: must be set'],
    ['BOT_PUBLIC_URL over http', { BOT_PUBLIC_URL: 'http://smartcard-assist.example.nhs.uk' }, 'BOT_PUBLIC_URL: must start with https://'],
    ['BOT_PUBLIC_URL on loopback', { BOT_PUBLIC_URL: 'https://127.0.0.1:3978' }, 'BOT_PUBLIC_URL: must name a public DNS host'],
    ['BOT_PUBLIC_URL with a query', { BOT_PUBLIC_URL: 'https://bot.example.nhs.uk/?x=1' }, 'BOT_PUBLIC_URL: must not have a ?query'],
    ['BOT_PUBLIC_URL not a URL', { BOT_PUBLIC_URL: 'smartcard-assist.example.nhs.uk' }, 'BOT_PUBLIC_URL: must be an absolute https:// URL'],
    ['TEAMS_APP_VERSION with two numbers', { TEAMS_APP_VERSION: '1.0' }, 'TEAMS_APP_VERSION: must be MAJOR.MINOR.PATCH'],
    ['TEAMS_APP_VERSION with a pre-release tag', { TEAMS_APP_VERSION: '1.0.0-beta' }, 'TEAMS_APP_VERSION: must be MAJOR.MINOR.PATCH'],
    ['TEAMS_APP_DEVELOPER_NAME over 32 characters', { TEAMS_APP_DEVELOPER_NAME: 'Example NHS Foundation Trust Digital' }, 'TEAMS_APP_DEVELOPER_NAME: must be at most 32'],
    ['TEAMS_APP_WEBSITE_URL over ftp', { TEAMS_APP_WEBSITE_URL: 'ftp://example.nhs.uk/' }, 'TEAMS_APP_WEBSITE_URL: must start with https://'],
    ['TEAMS_APP_PRIVACY_URL missing', { TEAMS_APP_PRIVACY_URL: undefined }, 'TEAMS_APP_PRIVACY_URL: must be set'],
    ['TEAMS_APP_TERMS_URL with a password', { TEAMS_APP_TERMS_URL: 'https://admin:secret@example.nhs.uk/terms' }, 'TEAMS_APP_TERMS_URL: must not carry a user name or password'],
  ];

  it.each(cases)('%s', (_what, change, expected) => {
    const env = { ...exampleEnv, ...change };
    let error: unknown;
    try {
      loadAppPackageConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('CONFIG.INVALID');
    expect((error as AppError).message).toContain(expected);
    // Only the bad setting is named; and a refused value that may be a secret is not echoed.
    const named = Object.keys(APP_PACKAGE_SETTINGS).filter((k) => new RegExp(`^\\s+${k}:`, 'm').test((error as AppError).message));
    expect(named).toEqual([expected.split(':')[0]]);
    expect((error as AppError).message).not.toContain('secret');
  });

  it('through npm run package: exit code 2, the setting named on stderr, and no zip written', () => {
    const out = path.join(tmp, 'refused', 'appPackage.zip');
    const r = npmRunPackage(['--env-file', EXAMPLE_ENV_FILE, '--out', out], { BOT_PUBLIC_URL: 'http://smartcard-assist.example.nhs.uk' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('BOT_PUBLIC_URL: must start with https://');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(path.dirname(out))).toBe(false);
  });

  it('through npm run package with no settings at all: every required setting is named', () => {
    const r = npmRunPackage(['--out', path.join(tmp, 'none.zip')]);
    expect(r.status).toBe(2);
    const required = Object.keys(APP_PACKAGE_SETTINGS).filter((k) => k !== 'TEAMS_APP_ID');
    for (const k of required) expect(r.stderr).toContain(`${k}: must be set`);
    expect(r.stderr).not.toMatch(/^\s+TEAMS_APP_ID:/m);
  });
});

describe('a broken manifest or icon in a copy of manifest/ stops the build', () => {
  async function copyOfManifestDir(name: string): Promise<string> {
    const dir = path.join(tmp, name);
    await cp(MANIFEST_DIR, dir, { recursive: true });
    return dir;
  }

  it('a manifest that breaks the schema: MANIFEST.SCHEMA_INVALID naming the field', async () => {
    const dir = await copyOfManifestDir('broken-manifest');
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Json & { bots: Bot[] };
    m.bots[0]!.scopes = ['personal', 'everyone'];
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(m));
    await expect(buildAppPackage(exampleConfig, dir)).rejects.toMatchObject({ code: 'MANIFEST.SCHEMA_INVALID', message: expect.stringContaining('/bots/0/scopes/1') });
  });

  it('an outline icon with colour: MANIFEST.ICON_INVALID', async () => {
    const dir = await copyOfManifestDir('broken-icon');
    await writeFile(path.join(dir, APP_ICON.outline.file), await readFile(path.join(MANIFEST_DIR, APP_ICON.color.file)));
    await expect(buildAppPackage(exampleConfig, dir)).rejects.toMatchObject({ code: 'MANIFEST.ICON_INVALID', message: expect.stringContaining('outline.png is 192x192') });
  });
});

describe('docs/teams-app.md', () => {
  /** A command with its file arguments and env values taken out, so a test's temp paths compare equal to the guide's. */
  const shape = (line: string): string =>
    line
      .replace(/\s--(out|out-dir|env-file)\s+\S+/g, ' --$1 FILE')
      .replace(/^((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)/, (vars) => vars.replace(/=\S*/g, '=VALUE'))
      .replace(/\s+/g, ' ')
      .trim();

  it('every command in the guide is one this test file ran (file paths and values aside)', async () => {
    const guide = await readFile(GUIDE, 'utf8');
    const blocks = [...guide.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const commands = blocks.flatMap((b) => b.split('\n')).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    expect(commands.length).toBeGreaterThan(0);
    const ran = new Set(commandsRun.map(shape));
    const optional = (c: string): string[] => [shape(c), shape(c).replace(/ --(out|out-dir|env-file) FILE/g, '')];
    const notRun = commands.filter((c) => !optional(c).some((s) => ran.has(s) || [...ran].some((r) => r.replace(/ --(out|out-dir|env-file) FILE/g, '') === s)));
    expect(notRun).toEqual([]);
  });
});
