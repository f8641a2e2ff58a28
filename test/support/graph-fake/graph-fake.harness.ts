/**
 * The Graph fake set up for an end-to-end run of the bot: start it, give the bot process `env` (with the test CA
 * in NODE_EXTRA_CA_CERTS and MAIL_TRANSPORT=graph), and read the mails Graph accepted.
 *
 * Example: `const graph = await startGraphFakeHarness(); spawn('npx', ['tsx', 'bot/main.ts'], { env: { ...process.env, ...graph.env } })`,
 * then `graph.acceptedMails()` in place of reading the outbox; `await graph.stop()` at the end.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { GraphFake, type ScriptedResponse } from './graph-fake.server';
import { createTestPki, type TestPki } from './test-pki';

/** A mail that reached the fake's sendMail and was answered 202. */
export interface AcceptedMail {
  to: string;
  subject: string;
  html: string;
  /** The sender mailbox from the URL path. */
  from: string;
  saveToSentItems: unknown;
  /** When the fake received it, ms since the epoch. */
  receivedAt: number;
}

export interface GraphFakeHarness {
  fake: GraphFake;
  pki: TestPki;
  /** Environment for the bot process: MAIL_TRANSPORT, GRAPH_* (client secret) and NODE_EXTRA_CA_CERTS. */
  env: Record<string, string>;
  /** The client secret in `env`, for secret-hygiene checks. */
  clientSecret: string;
  /** Mails Graph accepted (202), oldest first. */
  acceptedMails(): AcceptedMail[];
  /** Script the next sendMail answers (e.g. to make a send fail). */
  queueSendMail(...responses: ScriptedResponse[]): void;
  stop(): Promise<void>;
}

/**
 * Start the fake with one sender mailbox allowed by an application access policy.
 *
 * @param options.sender - the sender mailbox; default `smartcard-assist@trust.example.org`
 * @throws Error when `openssl` is missing
 */
export async function startGraphFakeHarness(options: { sender?: string } = {}): Promise<GraphFakeHarness> {
  const pki = createTestPki();
  const sender = options.sender ?? 'smartcard-assist@trust.example.org';
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = `Zx8Q~${randomBytes(24).toString('base64url')}`;
  const fake = new GraphFake(
    { tenantId, clientId, clientSecret, roles: ['Mail.Send'], mailboxes: [{ upn: sender, id: randomUUID() }], accessPolicyMailboxes: [sender] },
    { certPem: pki.serverCertPem, keyPem: pki.serverKeyPem },
  );
  await fake.start();
  return {
    fake,
    pki,
    clientSecret,
    env: {
      MAIL_TRANSPORT: 'graph',
      NODE_EXTRA_CA_CERTS: pki.caCertPath,
      GRAPH_CREDENTIAL: 'client-secret',
      GRAPH_TENANT_ID: tenantId,
      GRAPH_CLIENT_ID: clientId,
      GRAPH_CLIENT_SECRET: clientSecret,
      GRAPH_SENDER: sender,
      GRAPH_BASE_URL: fake.origin,
      GRAPH_AUTHORITY_HOST: fake.origin,
    },
    acceptedMails: () =>
      fake
        .requestsOf('sendMail')
        .filter((r) => r.status === 202)
        .map((r) => {
          const body = r.body as { message: { subject: string; body: { content: string }; toRecipients: { emailAddress: { address: string } }[] }; saveToSentItems?: unknown };
          return {
            to: body.message.toRecipients[0]!.emailAddress.address,
            subject: body.message.subject,
            html: body.message.body.content,
            from: r.pathname.split('/')[3]!,
            saveToSentItems: body.saveToSentItems,
            receivedAt: r.receivedAt,
          };
        }),
    queueSendMail: (...responses) => fake.queueSendMail(...responses),
    stop: async () => {
      await fake.stop();
      pki.cleanup();
    },
  };
}
