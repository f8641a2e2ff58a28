/**
 * Breaker, session 4: a code-only unlock (issue #14) through the real bot process, with the code by SMS through
 * the real Notify adapter against the local Notify fake, the directory from the local Graph fake, the card named
 * by `admin import-puks`, and a raw companion on the real link. Afterwards the bot's whole log (LOG_LEVEL=debug)
 * and its data directory are searched for the one-time code, the PUK and the new PUK (and the Notify key's secret,
 * the Graph client secret, the master key), and the log also for the person's mobile number (any form) and email. No pcscd, no Chromium.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestDirs, runAdmin, startBotStack, type BotStack } from '../support/e2e-stack';
import { GraphFake } from '../support/graph-fake/graph-fake.server';
import { createTestPki, type TestPki } from '../support/graph-fake/test-pki';
import { startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';
import { opensslAvailable } from '../support/test-certs';
import { pairDevice, randomDigits8, RawCompanion, RecordingConnector, scanForSecrets, TeamsClient, teamsUser } from './adversarial-harness';

const ci = process.env['CI'] === 'true';
const haveOpenssl = opensslAvailable();
if (!haveOpenssl && ci) throw new Error('openssl is needed for the Graph fake test PKI (CI=true: not skipped)');

describe.skipIf(!haveOpenssl)('breaker s4: code-only by SMS through the bot process leaves no code, PUK, number or address in its log', { timeout: 120_000 }, () => {
  let bot: BotStack;
  let conn: RecordingConnector;
  let notify: NotifyContractFixture;
  let graph: GraphFake;
  let pki: TestPki;
  let graphSecret = '';
  let companion: RawCompanion | undefined;
  const user = teamsUser('Sam Breaker');
  const last = String(randomInt(100, 1000));
  const mobile = `+44 7700 900${last}`;
  const email = `sam.breaker.${randomBytes(3).toString('hex')}@nhs.net`;
  const cardId = randomBytes(16).toString('hex');
  const puk = randomDigits8();

  beforeAll(async () => {
    notify = await startNotifyContractFixture();
    pki = createTestPki();
    const tenantId = randomUUID();
    const clientId = randomUUID();
    const clientSecret = `Zx8Q~${randomBytes(24).toString('base64url')}`;
    graphSecret = clientSecret;
    graph = new GraphFake(
      { tenantId, clientId, clientSecret, roles: ['User.Read.All'], mailboxes: [], users: [{ id: user.id, userPrincipalName: `sam@trust.example.org`, displayName: user.name, mail: email, mobilePhone: mobile }] },
      { certPem: pki.serverCertPem, keyPem: pki.serverKeyPem },
    );
    await graph.start();
    conn = new RecordingConnector();
    await conn.start();
    bot = await startBotStack(
      'breaker-s4-code-only-secrets',
      {
        UNLOCK_POLICY: 'code-only',
        UNLOCK_CODE_CHANNELS: 'sms',
        DIRECTORY: 'graph',
        GRAPH_CREDENTIAL: 'client-secret',
        GRAPH_TENANT_ID: tenantId,
        GRAPH_CLIENT_ID: clientId,
        GRAPH_CLIENT_SECRET: clientSecret,
        GRAPH_BASE_URL: graph.origin,
        GRAPH_AUTHORITY_HOST: graph.origin,
        NODE_EXTRA_CA_CERTS: pki.caCertPath,
        COMPANION_COMMAND_TIMEOUT_MS: '3000',
        ...notify.env(),
      },
      { mail: 'outbox' },
    );
    const imported = await runAdmin(bot, ['import-puks', '--file', '-'], `card_id,puk,holder_email\n${cardId},${puk},${email}\n`);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    companion?.close();
    await bot?.stop();
    await conn?.stop();
    await graph?.stop();
    await notify?.fake.stop();
    pki?.cleanup();
    await removeTestDirs(bot?.dataDir);
  });

  it('unlock by SMS code, then search the log and the data directory', async () => {
    const teams = new TeamsClient(bot, conn.url);
    const d = await pairDevice(bot, teams, user, 'WS-BREAKER');
    companion = await RawCompanion.connect(bot, `Bearer ${d.credential}`);
    companion.cardStatus = { present: true, reader: 'Breaker Reader 0', cardId, pinRetries: 0 };
    const said = await teams.message(user, 'unlock');
    expect(said.status).toBeLessThan(300);

    await expect.poll(() => notify.fake.accepted.filter((n) => n.type === 'sms').length, { timeout: 20_000 }).toBe(1);
    const sms = notify.fake.accepted.find((n) => n.type === 'sms')!;
    expect(sms.to.replace(/\D/g, '')).toMatch(new RegExp(`7700900${last}$`));
    const code = String(sms.personalisation['code']);
    expect(code).toMatch(/^\d{8}$/);

    await companion.waitFor((f) => f.type === 'command' && (f['command'] as { kind: string }).kind === 'unlock.prompt', 15_000);
    const prompt = companion.commands('unlock.prompt')[0]!;
    const journeyId = String(prompt['journeyId']);
    // One wrong code first (counted, answered), then the right one.
    const wrong = code === '22222222' ? '33333333' : '22222222';
    expect(await companion.request({ kind: 'unlock.submit_code', journeyId, cardId, code: wrong })).toMatchObject({ kind: 'unlock.refused', reason: 'wrong_code' });
    expect(await companion.request({ kind: 'unlock.submit_code', journeyId, cardId, code })).toMatchObject({ kind: 'unlock.accepted' });
    const release = await companion.release(journeyId);
    const newPuk = String(release['newPuk'] ?? '');
    expect(String(release['puk'])).toBe(puk);
    expect(await companion.request({ kind: 'unlock.result', journeyId, cardId, outcome: 'unblocked', pukOnCard: 'new' })).toMatchObject({ kind: 'ok' });
    await expect.poll(() => conn.textsIn(user.conversationId).some((t) => /unlocked/i.test(t)), { timeout: 15_000 }).toBe(true);

    const log = bot.processes.map((p, i) => ({ where: `bot log ${i + 1}`, text: p.output() }));
    expect(log[0]!.text.length).toBeGreaterThan(1000);
    // The SMS path logged (so its lines were searched), and the scan finds what is there (the device id is logged).
    expect(log[0]!.text).toContain('accepted by GOV.UK Notify');
    expect(await scanForSecrets([], log, [{ label: 'device id', value: d.deviceId }])).toEqual(['device id in bot log 1']);
    const secrets = [
      { label: 'one-time code', value: code },
      { label: 'wrong code typed', value: wrong },
      { label: 'PUK', value: puk },
      ...(newPuk.length >= 6 ? [{ label: 'new PUK', value: newPuk }] : []),
      { label: 'Notify API key secret', value: notify.key.secret },
      { label: 'Graph client secret', value: graphSecret },
      { label: 'master key', value: bot.env['SMARTCARD_MASTER_KEY']! },
    ];
    const contacts = [
      { label: 'mobile (E.164)', value: `+447700900${last}` },
      { label: 'mobile (digits)', value: `447700900${last}` },
      { label: 'mobile (national)', value: `07700900${last}` },
      { label: 'mobile (as in the profile)', value: mobile },
      { label: 'email', value: email },
    ];
    const inLog = await scanForSecrets([], log, [...secrets, ...contacts]);
    const inData = await scanForSecrets([bot.dataDir], [], secrets);
    expect([...inLog, ...inData]).toEqual([]);
  });
});
