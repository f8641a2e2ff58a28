/**
 * Make throw-away certificates for a virtual PIV card (issue #14), with Debian's `openssl`: a test CA and
 * a PIV Authentication (9A) and a Card Authentication (9E) certificate, valid now or expired, written as
 * PEM files (certificates only; no private key is kept).
 *
 *   npx tsx scripts/test-certs.ts --out DIR [--holder NAME] [--expired DAYS]
 *
 *   --out DIR        folder to write 9a.pem, 9e.pem and ca.pem into (created, mode 0700)
 *   --holder NAME    subject common name (default "Demo Holder")
 *   --expired DAYS   certificates that expired DAYS days ago; without it they are valid for a year
 *
 * Put them on a card: `npm run virtual-card -- --pin ... --puk ... --cert-9a DIR/9a.pem --cert-9e DIR/9e.pem`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestCertificateAuthority } from '../test/support/test-certs';

const USAGE = 'usage: scripts/test-certs.ts --out DIR [--holder NAME] [--expired DAYS]';

function fail(message: string): never {
  process.stderr.write(`test-certs: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({ options: { out: { type: 'string' }, holder: { type: 'string' }, expired: { type: 'string' }, help: { type: 'boolean', default: false } }, strict: true }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.out === undefined) fail('--out is required');
  if (values.expired !== undefined && !/^[0-9]{1,5}$/.test(values.expired)) fail('--expired must be a whole number of days');
  const holder = values.holder ?? 'Demo Holder';
  const ca = TestCertificateAuthority.create();
  try {
    const certs = values.expired !== undefined ? ca.expiredCardCertificates(holder, Math.max(1, Number(values.expired))) : ca.validCardCertificates(holder);
    mkdirSync(values.out, { recursive: true, mode: 0o700 });
    writeFileSync(join(values.out, '9a.pem'), certs['9A'].pem);
    writeFileSync(join(values.out, '9e.pem'), certs['9E'].pem);
    writeFileSync(join(values.out, 'ca.pem'), ca.certificate.pem);
    for (const slot of ['9A', '9E'] as const) {
      process.stdout.write(`${slot}: ${join(values.out, `${slot.toLowerCase()}.pem`)} notAfter ${certs[slot].notAfter.toISOString()}\n`);
    }
  } catch (error) {
    fail((error as Error).message);
  } finally {
    ca.cleanup();
  }
}

main();
