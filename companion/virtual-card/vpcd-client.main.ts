/**
 * Put a virtual PIV card into pcscd's vpcd reader until Ctrl-C (manual use:
 * `npm run virtual-card -- --pin 123456 --puk 12345678`). Start pcscd first:
 * `scripts/pcscd.sh start`.
 *
 *   --port N          vpcd port (35963 = "Virtual PCD 00 00", 35964 = "Virtual PCD 00 01")
 *   --card-id HEX     16-byte card identifier (CHUID GUID), 32 hex digits; default random
 *   --pin DIGITS      initial PIN, 6-8 digits (required)
 *   --puk CHARS       initial PUK, 6-8 characters (required)
 *   --blocked         start with the PIN blocked (retry counter 0)
 *   --pin-retries N   PIN retry maximum (default 3);  --puk-retries N  PUK retry maximum (default 3)
 *   --cert-9a FILE    X.509 certificate (PEM or DER) for the PIV Authentication object (5FC105);
 *   --cert-9e FILE    and for the Card Authentication object (5FC101). Without them the card has none (6A82).
 *                     Make test ones with `npx tsx scripts/test-certs.ts --out DIR [--expired DAYS]`.
 *   --verbose         debug-level log lines (connection events, never command data)
 *
 * The PIN and PUK are test values for a virtual card; they are never printed.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createLogger } from '../../common/logger';
import { readCertificateFiles } from './certificate-files';
import { VPCD_DEFAULT_PORT, VpcdClient } from './vpcd-client';
import { VirtualPivCard } from './virtual-piv-card';

const USAGE =
  'usage: vpcd-client.main.ts --pin DIGITS --puk CHARS [--port N] [--card-id HEX32] [--blocked] [--pin-retries N] [--puk-retries N] [--cert-9a FILE] [--cert-9e FILE] [--verbose]';

function fail(message: string): never {
  process.stderr.write(`virtual-card: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value)) fail(`--${name} must be a whole number`);
  return Number(value);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        'card-id': { type: 'string' },
        pin: { type: 'string' },
        puk: { type: 'string' },
        blocked: { type: 'boolean', default: false },
        'pin-retries': { type: 'string' },
        'puk-retries': { type: 'string' },
        'cert-9a': { type: 'string' },
        'cert-9e': { type: 'string' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.pin === undefined) fail('--pin is required');
  if (values.puk === undefined) fail('--puk is required');
  const cardId = values['card-id'] ?? randomBytes(16).toString('hex');

  let card: VirtualPivCard;
  let client: VpcdClient;
  try {
    card = new VirtualPivCard({
      cardId,
      pin: values.pin,
      puk: values.puk,
      blocked: values.blocked,
      pinRetries: intOption(values['pin-retries'], 'pin-retries'),
      pukRetries: intOption(values['puk-retries'], 'puk-retries'),
      certificates: readCertificateFiles({
        ...(values['cert-9a'] !== undefined ? { '9A': values['cert-9a'] } : {}),
        ...(values['cert-9e'] !== undefined ? { '9E': values['cert-9e'] } : {}),
      }),
    });
    client = new VpcdClient({
      card,
      port: intOption(values.port, 'port') ?? VPCD_DEFAULT_PORT,
      reconnectDelayMs: 1000,
      logger: createLogger({ name: 'virtual-card', level: values.verbose ? 'debug' : 'info' }),
    });
  } catch (error) {
    fail((error as Error).message);
  }

  try {
    await client.connect();
  } catch (error) {
    process.stderr.write(`virtual-card: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `virtual PIV card ${card.cardId} inserted into vpcd at ${client.host}:${client.port}` +
      ` (PIN ${card.pinBlocked ? 'blocked' : `retries ${card.pinRetries}`}, PUK retries ${card.pukRetries}); Ctrl-C removes it\n`,
  );

  const stop = (): void => {
    void client.disconnect().then(() => {
      process.stdout.write(`virtual PIV card removed (PIN retries ${card.pinRetries}, PUK retries ${card.pukRetries})\n`);
      process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

void main();
