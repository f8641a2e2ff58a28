/**
 * Adversarial: the companion's passcode page on 127.0.0.1, as a hostile web
 * page, a local snoop and a clumsy person use it. The real bot process and the
 * real companion process (`companion/main.ts`, `COMPANION_READER=virtual`: the
 * project's virtual PIV card in-process, blocked). Requests are raw HTTP, so
 * Host, Origin, Sec-Fetch-Site, cookies and bodies are whatever the test says.
 *
 * What counts: the page's status and `data-state`, whether the unlock code ever
 * reached the bot (its audit trail), and finally the card's state as the bot
 * reads it through the link.
 *
 * The page's session (issue #10 finding 6): its cookie is scoped to the
 * session's random path `/p/<scope>/`, and every form carries the session's
 * form token; new links come from the running companion's `--page-link`
 * socket (`requestPageLink`), and opening one ends the session before it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PageBrowser, pageState, pageText } from '../../companion/passcode-page/page-browser.fake';
import { pageLinkSocketPath, requestPageLink } from '../../companion/passcode-page/page-link.control';
import { deriveKeys, parseMasterKey } from '../../bot/security/keys';
import { unseal } from '../../bot/security/seal';
import type { Sealed } from '../../storage/storage.port';
import { checkPasscode } from '../../companion/passcode-policy';
import { artifactDir, artifactPath } from '../support/artifacts';
import { removeTestDirs, startBotStack, type BotStack } from '../support/e2e-stack';
import { startProcess, type ManagedProcess } from '../support/processes';
import {
  activityText,
  answersFor,
  cardText,
  eventually,
  executeActions,
  httpRequest,
  invokeCard,
  RecordingConnector,
  scanForSecrets,
  seedPerson,
  sleep,
  TeamsClient,
  unlockCodeOf,
  type HttpResult,
  type SeededPerson,
  readStore,
} from './adversarial-harness';

function policyPasscode(): string {
  for (;;) {
    const p = `${randomInt(2, 10)}${String(randomInt(0, 10_000_000)).padStart(7, '0')}`;
    if (checkPasscode(p, p).ok) return p;
  }
}

describe('adversarial: the companion passcode page (127.0.0.1)', () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let teams: TeamsClient;
  let person: SeededPerson;
  let companion: ManagedProcess;
  let companionData: string;
  let companionLog: string;
  let link: string;
  let base: string;
  let port: string;
  let browser: PageBrowser;
  let unlockCode = '';
  const cardId = randomBytes(16).toString('hex');
  const oldPin = policyPasscode();
  const newPasscode = policyPasscode();
  const secrets: Array<{ label: string; value: string }> = [];

  const sql = <T>(query: string, ...params: unknown[]): T[] => readStore<T>(bot.dataDir, query, ...params);
  const count = (action: string): number => sql<{ n: number }>(`SELECT count(*) AS n FROM audit WHERE person_id = ? AND action = ?`, person.personId, action)[0]!.n;
  const cookie = (): string => browser.held.cookie!;
  const formToken = (): string => browser.held.formToken!;
  /** POST to the page's own path (`/p/<scope>/<action>`) with its cookie; the form token only when the body carries it. */
  const post = (action: string, body: string, headers: Record<string, string>): Promise<HttpResult> =>
    httpRequest(`${base}${browser.path}${action.replace(/^\//, '')}`, { method: 'POST', headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded', cookie: cookie(), ...headers }, body });
  /** A new link from the running companion, as `companion --page-link` asks for it. */
  const newLink = async (): Promise<string> => {
    const answer = await requestPageLink(pageLinkSocketPath(companionData));
    if (!answer.ok) throw new Error(answer.message);
    secrets.push({ label: `page token ${secrets.length}`, value: new URL(answer.link).searchParams.get('t')! });
    return answer.link;
  };
  const stateNow = async (): Promise<string | null> => pageState((await browser.get()).body);

  beforeAll(async () => {
    bot = await startBotStack('adv-page', { COMPANION_COMMAND_TIMEOUT_MS: '5000' });
    conn = new RecordingConnector();
    await conn.start();
    teams = new TeamsClient(bot, conn.url);
    person = await seedPerson(bot, 'Paige Pagetest', cardId);
    secrets.push({ label: 'old passcode', value: oldPin }, { label: 'new passcode', value: newPasscode }, { label: 'PUK', value: person.puk }, ...Object.entries(person.answers).map(([q, v]) => ({ label: `answer ${q}`, value: v })));
    companionData = mkdtempSync(path.join(artifactDir('tmp'), 'adv-page-companion-'));
    companionLog = artifactPath('logs', 'adv-page-companion.pino.log');
    writeFileSync(companionLog, '', { mode: 0o600 });
    companion = startProcess({
      name: 'adv-page-companion',
      command: process.execPath,
      args: ['--import', 'tsx', 'companion/main.ts'],
      env: {
        SMARTCARD_BOT_URL: bot.url,
        COMPANION_DATA_DIR: companionData,
        COMPANION_READER: 'virtual',
        COMPANION_VIRTUAL_CARD_ID: cardId,
        COMPANION_VIRTUAL_CARD_PIN: oldPin,
        COMPANION_VIRTUAL_CARD_PUK: person.puk,
        COMPANION_VIRTUAL_CARD_BLOCKED: 'true',
        COMPANION_LOG_FILE: companionLog,
        COMPANION_LOG_LEVEL: 'trace',
        COMPANION_WORKSTATION: 'WS-PAIGE',
      },
    });
    link = (await companion.waitForLine(/^PASSCODE PAGE: (\S+)$/))[1]!;
    secrets.push({ label: 'first page token', value: new URL(link).searchParams.get('t')! });
    const code = (await companion.waitForLine(/^PAIRING CODE: ([A-Z0-9]{4}-[A-Z0-9]{4})/))[1]!;
    await teams.message(person.user, `pair ${code}`);
    await companion.waitForLine(/^STATUS: connected/, 30_000);
    const credential = JSON.parse(readFileSync(path.join(companionData, 'credential.json'), 'utf8')) as { credential: string };
    secrets.push({ label: 'device credential secret', value: credential.credential.split('.')[1]! });
    port = new URL(link).port;
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await companion?.stop();
    await bot?.stop();
    await conn?.stop();
    await removeTestDirs(bot?.dataDir, companionData);
  });

  it('refuses a wrong Host (DNS rebinding) with 421 before anything else, even with a valid token', async () => {
    for (const host of [`evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`, `127.0.0.1`, `127.0.0.1:${port}.`, `[::1]:${port}`, `127.0.0.1.nip.io:${port}`]) {
      const r = await httpRequest(link, { headers: { host } });
      expect(r.status, host).toBe(421);
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    // The token was not spent by those requests: the real link still opens the page, with a strict cookie
    // scoped to the session's own random path (cookies are not scoped by port).
    const opened = await httpRequest(link, { headers: { host: `127.0.0.1:${port}` } });
    expect(opened.status).toBe(200);
    const setCookie = String(([] as string[]).concat(opened.headers['set-cookie'] ?? [])[0] ?? '');
    const scoped = /^sa_companion_session=([A-Za-z0-9_-]{43}); Path=(\/p\/[A-Za-z0-9_-]{22}\/); HttpOnly; SameSite=Strict$/.exec(setCookie);
    expect(scoped, setCookie).not.toBeNull();
    expect(opened.text).toContain(`content="0;url=${scoped![2]}"`);
    const first = { cookie: `sa_companion_session=${scoped![1]}`, path: scoped![2]! };
    expect(pageState((await httpRequest(`${base}${first.path}`, { headers: { cookie: first.cookie } })).text)).toBe('idle');
    // The cookie alone, outside its path, gets nothing.
    expect((await httpRequest(`${base}/`, { headers: { cookie: first.cookie } })).status).toBe(401);

    // A new link from the running companion (--page-link) opens a new session and ends that one.
    browser = new PageBrowser(await newLink());
    expect(pageState((await browser.open()).body)).toBe('idle');
    expect(browser.path).not.toBe(first.path);
    const ended = await httpRequest(`${base}${first.path}`, { headers: { cookie: first.cookie } });
    expect(ended.status).toBe(401);
    expect(pageText(ended.text)).toContain('--page-link');
    secrets.push({ label: 'first session cookie', value: scoped![1]! });
  });

  it('a used link does not work again, and an unknown token or a forged cookie gets nothing', async () => {
    const reused = await httpRequest(link, { headers: { host: `127.0.0.1:${port}` } });
    expect(reused.status).toBe(403);
    expect(reused.headers['set-cookie']).toBeUndefined();
    expect((await httpRequest(`${base}/?t=${'A'.repeat(43)}`)).status).toBe(403);
    expect((await httpRequest(`${base}/?t=${'A'.repeat(5000)}`)).status).toBe(403);
    expect((await httpRequest(`${base}/?t=`)).status).toBe(403);
    expect((await httpRequest(`${base}${browser.path}`, { headers: { cookie: `sa_companion_session=${randomBytes(32).toString('base64url')}` } })).status).toBe(401);
    expect((await httpRequest(`${base}${browser.path}`)).status).toBe(401);
    expect((await httpRequest(`${base}/`, { headers: { cookie: cookie() } })).status).toBe(401);
    expect((await httpRequest(`${base}/../../etc/passwd`, { headers: { cookie: cookie() } })).status).toBe(401);
    expect((await httpRequest(`${base}${browser.path}nope`, { headers: { cookie: cookie() } })).status).toBe(404);
    // The page's own session still works.
    expect(await stateNow()).toBe('idle');
  });

  it('shows the unlock form once the bot asks for the code', async () => {
    const card = invokeCard(await teams.invoke(person.user, 'unlock.start', {}));
    const ans = executeActions(card).find((a) => a.verb === 'unlock.answers');
    expect(ans, cardText(card)).toBeDefined();
    const before = new Set((await bot.outbox()).map((m) => m.name));
    await teams.invoke(person.user, 'unlock.answers', { ...ans!.data, ...(await answersFor(card, person)) });
    const mail = await eventually(() => bot.outbox(), (m) => m.kind === 'unlock_code' && !before.has(m.name));
    unlockCode = unlockCodeOf(mail);
    secrets.push({ label: 'unlock code', value: unlockCode });
    await companion.waitForLine(/^UNLOCK: /);
    await expect.poll(stateNow, { timeout: 10_000 }).toBe('awaiting_unlock');
  });

  it('refuses cross-origin, origin-less, token-less and odd POSTs (CSRF), and none of them reaches the bot', async () => {
    const fields = { code: unlockCode, passcode: newPasscode, confirmation: newPasscode };
    const body = new URLSearchParams({ form_token: formToken(), ...fields }).toString();
    secrets.push({ label: 'page form token', value: formToken() }, { label: 'page session cookie', value: cookie().split('=')[1]! });
    const attempts: Array<{ name: string; headers: Record<string, string>; body?: string; status: number }> = [
      { name: 'no Origin', headers: {}, status: 403 },
      { name: 'foreign Origin', headers: { origin: 'http://evil.example' }, status: 403 },
      { name: 'Origin null (sandboxed frame, file://)', headers: { origin: 'null' }, status: 403 },
      { name: 'another local port', headers: { origin: `http://127.0.0.1:${Number(port) + 1}` }, status: 403 },
      { name: 'https origin', headers: { origin: `https://127.0.0.1:${port}` }, status: 403 },
      { name: 'same Origin but Sec-Fetch-Site cross-site', headers: { origin: base, 'sec-fetch-site': 'cross-site' }, status: 403 },
      { name: 'same Origin but Sec-Fetch-Site same-site', headers: { origin: base, 'sec-fetch-site': 'same-site' }, status: 403 },
      { name: 'text/plain form (no preflight)', headers: { origin: base, 'content-type': 'text/plain' }, status: 415 },
      { name: 'multipart form', headers: { origin: base, 'content-type': 'multipart/form-data; boundary=x' }, status: 415 },
      { name: 'JSON', headers: { origin: base, 'content-type': 'application/json' }, body: JSON.stringify({ code: unlockCode }), status: 415 },
      { name: 'huge form', headers: { origin: base }, body: `code=${'9'.repeat(10_000)}`, status: 413 },
      { name: 'no form token (cookie and path only)', headers: { origin: base }, body: new URLSearchParams(fields).toString(), status: 403 },
      { name: 'a made-up form token', headers: { origin: base }, body: new URLSearchParams({ form_token: randomBytes(32).toString('base64url'), ...fields }).toString(), status: 403 },
    ];
    for (const a of attempts) {
      const r = await post('/unlock', a.body ?? body, a.headers);
      expect(r.status, a.name).toBe(a.status);
      expect(r.text).not.toContain(unlockCode);
    }
    // No cookie at all (a cross-site form whose SameSite=Strict cookie was withheld).
    const noCookie = await httpRequest(`${base}${browser.path}unlock`, { method: 'POST', headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(noCookie.status).toBe(401);
    // The cookie, the token and a forged Origin, but not the page's path (a cookie that reached another port).
    const noPath = await httpRequest(`${base}/unlock`, { method: 'POST', headers: { origin: base, cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' }, body });
    expect(noPath.status).toBe(401);
    // GET on a form endpoint does nothing.
    expect((await httpRequest(`${base}${browser.path}unlock?${body}`, { headers: { cookie: cookie() } })).status).toBe(405);
    await sleep(300);
    expect(await stateNow()).toBe('awaiting_unlock');
    expect(count('unlock.code_wrong') + count('unlock.code_accepted')).toBe(0);
  });

  it('refuses new passcodes outside the policy and mismatched confirmations on the page, without sending the code', async () => {
    const cases: Array<{ passcode: string; confirmation?: string; says: RegExp }> = [
      { passcode: '123456', says: /run of digits/ },
      { passcode: '654321', says: /run of digits/ },
      { passcode: '01234567', says: /run of digits/ },
      { passcode: '87654321', says: /run of digits/ },
      { passcode: '111111', says: /same digit repeated/ },
      { passcode: '00000000', says: /same digit repeated/ },
      { passcode: '12345', says: /6 to 8 digits/ },
      { passcode: '402', says: /6 to 8 digits/ },
      { passcode: '123456789', says: /6 to 8 digits/ },
      { passcode: '4028173950', says: /6 to 8 digits/ },
      { passcode: '48a215', says: /digits only/ },
      { passcode: ' 480215', says: /digits only/ },
      { passcode: '480215 ', says: /digits only/ },
      { passcode: '４８０２１５', says: /digits only/ },
      { passcode: '٤٨٠٢١٥', says: /digits only/ },
      { passcode: '', says: /Enter a new passcode/ },
      { passcode: newPasscode, confirmation: `${newPasscode.slice(0, -1)}${(Number(newPasscode.at(-1)) + 1) % 10}`, says: /do not match/ },
      { passcode: newPasscode, confirmation: '', says: /do not match/ },
      // Issue #10 finding 7: the emailed unlock code itself is not a new passcode.
      { passcode: unlockCode, says: /cannot be the unlock code you were sent/ },
    ];
    for (const c of cases) {
      const r = await browser.post('/unlock', { code: unlockCode, passcode: c.passcode, confirmation: c.confirmation ?? c.passcode });
      expect(pageState(r.body), JSON.stringify(c.passcode)).toBe('awaiting_unlock');
      expect(pageText(r.body), JSON.stringify(c.passcode)).toMatch(c.says);
      // Only the passcode was refused: the typed code is back in its field; the passcodes never are.
      expect(r.body, JSON.stringify(c.passcode)).toMatch(new RegExp(`<input id="code" [^>]*value="${unlockCode}"`));
      expect(r.body).not.toMatch(/<input id="(passcode|confirmation)" [^>]*value=/);
    }
    // Codes that are not 8 digits are refused on the page too.
    for (const code of ['1234567', '123456789', 'abcdefgh', `${unlockCode}\u0000`, '１２３４５６７８']) {
      const r = await browser.post('/unlock', { code, passcode: newPasscode, confirmation: newPasscode });
      expect(pageState(r.body), JSON.stringify(code)).toBe('awaiting_unlock');
      expect(pageText(r.body)).toContain('The unlock code is the 8 digits in your email');
    }
    expect(count('unlock.code_wrong') + count('unlock.code_accepted'), 'a refused form sent the code to the bot').toBe(0);
    // 6, 7 and 8 digits are all allowed lengths (checked against the policy without sending).
    for (const p of ['402917', '4029173', '40291738']) expect(checkPasscode(p, p)).toEqual({ ok: true });
  });

  it('a wrong code is counted by the bot and the page says how many tries are left', async () => {
    const wrong = String((Number(unlockCode) + 1) % 100_000_000).padStart(8, '0');
    const r = await browser.post('/unlock', { code: wrong, passcode: newPasscode, confirmation: newPasscode });
    expect(pageState(r.body)).toBe('awaiting_unlock');
    expect(pageText(r.body)).toContain('That unlock code is not right. You can try 4 more times.');
    await expect.poll(() => count('unlock.code_wrong'), { timeout: 5000 }).toBe(1);
  });

  it('a double-submitted form with the right code unlocks once; the bot then reads the card as not locked', async () => {
    const form = { code: unlockCode, passcode: newPasscode, confirmation: newPasscode };
    const [a, b] = await Promise.all([browser.post('/unlock', form), browser.post('/unlock', form)]);
    const states = [pageState(a.body), pageState(b.body)];
    expect(states, pageText(a.body)).toContain('done');
    await expect.poll(() => count('unlock.completed'), { timeout: 10_000 }).toBe(1);
    expect(count('unlock.code_accepted')).toBe(1);
    expect(count('card.puk_rotated')).toBe(1);
    // The rotated PUK (read from the store with the bot's key) joins the secrets to search for.
    const stored = sql<{ puk: string }>(`SELECT puk FROM cards WHERE card_id = ?`, cardId)[0]!.puk;
    const rotated = unseal(deriveKeys(parseMasterKey(bot.env['SMARTCARD_MASTER_KEY'])).sealKey, stored as Sealed, `puk:${cardId}`);
    expect(rotated).toMatch(/^\d{8}$/);
    expect(rotated).not.toBe(person.puk);
    secrets.push({ label: 'rotated PUK', value: rotated });
    // Read back through the link: the card is no longer blocked.
    const again = invokeCard(await teams.invoke(person.user, 'unlock.start', {}));
    expect(cardText(again)).toMatch(/not locked/i);
  });

  it('no passcode, PUK, code, answer, token or credential shows in the logs, stdout or data directories', async () => {
    await sleep(500);
    const found = await scanForSecrets(
      [bot.dataDir, companionData],
      [
        { where: 'bot stdout', text: bot.process.output() },
        { where: 'companion stdout', text: companion.output().replace(/^PASSCODE PAGE: .*$/gm, '') },
        { where: 'companion log', text: readFileSync(companionLog, 'utf8') },
        ...conn.calls.map((c, i) => ({ where: `teams activity ${i}`, text: activityText(c.body) })),
      ],
      secrets,
      // The code in its own email, and the device credential in the companion's credential file (0600), belong there.
      (where, label) => (label === 'unlock code' && /unlock_code-.*\.eml$/.test(where)) || (label === 'device credential secret' && where.endsWith('credential.json')),
    );
    expect(readFileSync(companionLog, 'utf8')).toContain('unblock finished'); // the log is real
    expect(found).toEqual([]);
  });
});
