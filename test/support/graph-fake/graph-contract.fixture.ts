/**
 * Shared set-up of the Graph mail contract tests: a throw-away PKI, the local Graph/Entra fake over https, the
 * adapter driver process, a directory (tenant, app registration, mailboxes, access policy), and a record of every
 * secret the tests used, for the log check.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { MailMessage } from '../../../bot/mail/mail.port';
import { unlockCodeMail } from '../../../bot/mail/mail.templates';
import { GraphAdapterDriver } from './graph-adapter.client';
import { GraphFake } from './graph-fake.server';
import { createTestPki, hasOpenssl, type TestPki } from './test-pki';

export interface GraphContractFixture {
  pki: TestPki;
  fake: GraphFake;
  driver: GraphAdapterDriver;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** The mailbox the application access policy allows. */
  sender: string;
  /** A mailbox that exists but the access policy leaves out. */
  outsidePolicySender: string;
  /** Every secret value a test used (client secrets, one-time codes); tokens are in `fake.issuedTokens`. */
  secrets: Set<string>;
  /** Environment for an adapter using the client secret against the fake, with overrides (undefined removes). */
  env(overrides?: Record<string, string | undefined>): Record<string, string>;
  /** An unlock-code message rendered from the real template; its code is added to `secrets`. */
  unlockMessage(overrides?: { displayName?: string; to?: string }): { message: MailMessage; code: string };
}

/**
 * Whether the contract tests can run here (they need `openssl`). Under CI=true a missing `openssl` is a failure,
 * not a skip.
 *
 * @throws Error under CI=true when `openssl` is missing
 */
export function graphContractCanRun(): boolean {
  const ok = hasOpenssl();
  if (!ok && process.env.CI === 'true') throw new Error('openssl is missing: the Graph contract tests need it (apt-get install openssl)');
  if (!ok) console.warn('Skipping the Graph contract tests: openssl is not installed (apt-get install openssl).');
  return ok;
}

export async function startGraphContractFixture(): Promise<GraphContractFixture> {
  const pki = createTestPki();
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `Zx8Q~${randomBytes(24).toString('base64url')}`;
  const sender = 'smartcard-assist@trust.example.org';
  const outsidePolicySender = 'finance-team@trust.example.org';
  const fake = new GraphFake(
    {
      tenantId,
      clientId,
      clientSecret,
      clientCertPem: pki.clientCertPem,
      roles: ['Mail.Send'],
      mailboxes: [
        { upn: sender, id: randomUUID() },
        { upn: outsidePolicySender, id: randomUUID() },
      ],
      accessPolicyMailboxes: [sender],
    },
    { certPem: pki.serverCertPem, keyPem: pki.serverKeyPem },
  );
  await fake.start();
  const driver = await GraphAdapterDriver.start(pki.caCertPath);
  const secrets = new Set<string>([clientSecret]);
  return {
    pki,
    fake,
    driver,
    tenantId,
    clientId,
    clientSecret,
    sender,
    outsidePolicySender,
    secrets,
    env(overrides = {}) {
      const base: Record<string, string | undefined> = {
        GRAPH_CREDENTIAL: 'client-secret',
        GRAPH_TENANT_ID: tenantId,
        GRAPH_CLIENT_ID: clientId,
        GRAPH_CLIENT_SECRET: clientSecret,
        GRAPH_SENDER: sender,
        GRAPH_BASE_URL: fake.origin,
        GRAPH_AUTHORITY_HOST: fake.origin,
        GRAPH_MAX_RETRY_WAIT_SECONDS: '5',
        GRAPH_REQUEST_TIMEOUT_SECONDS: '10',
        ...overrides,
      };
      return Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined));
    },
    unlockMessage(overrides = {}) {
      const code = String(randomInt(10_000_000, 100_000_000));
      secrets.add(code);
      const rendered = unlockCodeMail({
        displayName: overrides.displayName ?? 'Alex Wilber',
        code,
        expiresAt: new Date(Date.now() + 15 * 60_000),
        minutes: 15,
        timeZone: 'Europe/London',
        raContact: 'ra.team@trust.example.org or 0113 000 0000',
      });
      return {
        code,
        message: { id: randomUUID(), to: overrides.to ?? 'alex.wilber@trust.example.org', kind: 'unlock_code', ...rendered },
      };
    },
  };
}

/** Stop the driver and the fake and delete the PKI (private keys included). */
export async function stopGraphContractFixture(f: GraphContractFixture | undefined): Promise<void> {
  if (!f) return;
  await f.driver.stop();
  await f.fake.stop();
  f.pki.cleanup();
}

/**
 * Every log line the driver wrote, and every secret that must not be in them.
 *
 * @returns the secrets found in the output (empty when clean)
 */
export function secretsInOutput(f: GraphContractFixture): string[] {
  const output = f.driver.stdout + f.driver.stderr;
  const secrets = [...f.secrets, ...f.fake.issuedTokens];
  return secrets.filter((s) => output.includes(s));
}
