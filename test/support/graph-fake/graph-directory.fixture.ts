/**
 * Shared set-up of the Graph directory contract tests: a throw-away PKI, the local Graph/Entra fake over https with
 * users in its directory, the adapter driver process (the Graph directory adapter runs there unchanged, trusting
 * the test CA through NODE_EXTRA_CA_CERTS), and the values that must not reach a log line.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { GraphAdapterDriver } from './graph-adapter.client';
import { GraphFake, type GraphFakeUser } from './graph-fake.server';
import { createTestPki, type TestPki } from './test-pki';

export interface GraphDirectoryFixture {
  pki: TestPki;
  fake: GraphFake;
  driver: GraphAdapterDriver;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** A user with a work email and a mobile number. */
  alex: GraphFakeUser;
  /** A user whose profile has neither. */
  blank: GraphFakeUser;
  /** Environment for a directory adapter using the client secret against the fake, with overrides (undefined removes). */
  env(overrides?: Record<string, string | undefined>): Record<string, string>;
  /** Person data and secrets that must appear in no log line: ids, addresses, numbers, the client secret. */
  private(): string[];
}

/**
 * Start the fake (app holding User.Read.All and Mail.Send) and the driver.
 *
 * @throws Error when `openssl` is missing
 */
export async function startGraphDirectoryFixture(): Promise<GraphDirectoryFixture> {
  const pki = createTestPki();
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `Zx8Q~${randomBytes(24).toString('base64url')}`;
  const alex: GraphFakeUser = {
    id: randomUUID(),
    userPrincipalName: 'alex.wilber@trust.example.org',
    displayName: 'Alex Wilber',
    mail: 'Alex.Wilber@nhs.net',
    mobilePhone: '+44 7700 900123',
    businessPhones: ['+44 113 496 0000'],
  };
  const blank: GraphFakeUser = { id: randomUUID(), userPrincipalName: 'no.contact@trust.example.org', displayName: 'No Contact', mail: null, mobilePhone: null };
  const fake = new GraphFake(
    { tenantId, clientId, clientSecret, roles: ['Mail.Send', 'User.Read.All'], mailboxes: [], users: [alex, blank] },
    { certPem: pki.serverCertPem, keyPem: pki.serverKeyPem },
  );
  await fake.start();
  const driver = await GraphAdapterDriver.start(pki.caCertPath);
  return {
    pki,
    fake,
    driver,
    tenantId,
    clientId,
    clientSecret,
    alex,
    blank,
    env(overrides = {}) {
      const base: Record<string, string | undefined> = {
        DIRECTORY: 'graph',
        GRAPH_CREDENTIAL: 'client-secret',
        GRAPH_TENANT_ID: tenantId,
        GRAPH_CLIENT_ID: clientId,
        GRAPH_CLIENT_SECRET: clientSecret,
        GRAPH_BASE_URL: fake.origin,
        GRAPH_AUTHORITY_HOST: fake.origin,
        ...overrides,
      };
      return Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined));
    },
    private() {
      return [clientSecret, ...fake.issuedTokens, ...[alex, blank].flatMap((u) => [u.id, u.userPrincipalName, u.mail, u.mobilePhone].filter((v): v is string => v !== null))];
    },
  };
}

/** Stop the driver and the fake and delete the PKI (private keys included). */
export async function stopGraphDirectoryFixture(f: GraphDirectoryFixture | undefined): Promise<void> {
  if (!f) return;
  await f.driver.stop();
  await f.fake.stop();
  f.pki.cleanup();
}
