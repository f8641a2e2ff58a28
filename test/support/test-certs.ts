/**
 * Throw-away X.509 certificates for the virtual PIV card, made with Debian's `openssl` at test set-up:
 * a test CA, and card certificates for the PIV Authentication (9A) and Card Authentication (9E) slots
 * with chosen validity dates, so a test can put valid or expired certificates on a card
 * (issue #14 "Expired certificates").
 *
 * Keys are EC P-256 (SP 800-78-4 algorithm 11). Private keys live only in a fresh temporary folder
 * (mode 0700) removed by `cleanup()`; none is committed and none is needed afterwards (the virtual
 * card only stores the certificates).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A slot of the card this helper makes certificates for (key reference, SP 800-73-4 Part 2, Table 4b). */
export type TestCertificateSlot = '9A' | '9E';

/** One certificate made by {@link TestCertificateAuthority.issue}. */
export interface TestCertificate {
  /** DER bytes: what goes into the card's tag 70. */
  der: Buffer;
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** Subject common name. */
  commonName: string;
}

/** Certificates for both slots of one card. */
export type TestCardCertificates = Record<TestCertificateSlot, TestCertificate>;

const DAY_MS = 24 * 60 * 60 * 1000;

/** `openssl ca` time form: `YYYYMMDDHHMMSSZ` (seconds, UTC). */
function opensslTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

const CA_CONFIG = `# openssl ca configuration of a throw-away test CA (test/support/test-certs.ts)
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = .
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = supplied
organizationName = optional

[ test_ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

# PIV Authentication certificate (9A): client authentication and smart card logon.
[ piv_auth_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,1.3.6.1.4.1.311.20.2.2
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# Card Authentication certificate (9E): id-PIV-cardAuth (SP 800-73-4 / FIPS 201 PKI profile).
[ card_auth_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = 2.16.840.1.101.3.6.8
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** True when the `openssl` command runs here. */
export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A throw-away CA in a temporary folder that issues card certificates with any validity dates. */
export class TestCertificateAuthority {
  private issued = 0;

  private constructor(
    /** Folder holding the CA's key, database and issued certificates (mode 0700). */
    readonly dir: string,
    /** The CA certificate. */
    readonly certificate: TestCertificate,
  ) {}

  /**
   * Make a CA (EC P-256, self-signed, valid from 10 years before `now` to 10 years after).
   *
   * @param now - the test's clock; default the real one
   * @throws Error when `openssl` is missing (ENOENT) or fails (its stderr in the message)
   */
  static create(now: Date = new Date()): TestCertificateAuthority {
    const dir = mkdtempSync(join(tmpdir(), 'card-certs-'));
    try {
      mkdirSync(join(dir, 'issued'));
      writeFileSync(join(dir, 'index.txt'), '');
      writeFileSync(join(dir, 'serial'), '1000\n');
      writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.csr',
        '-subj', '/O=Smartcard Assist tests/CN=Smartcard Assist test card CA (throw-away)'], dir);
      const notBefore = new Date(now.getTime() - 3650 * DAY_MS);
      const notAfter = new Date(now.getTime() + 3650 * DAY_MS);
      openssl(['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'ca.key', '-in', 'ca.csr', '-out', 'ca.pem', '-notext',
        '-extensions', 'test_ca_ext', '-startdate', opensslTime(notBefore), '-enddate', opensslTime(notAfter)], dir);
      return new TestCertificateAuthority(dir, readCertificate(join(dir, 'ca.pem'), 'Smartcard Assist test card CA (throw-away)'));
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * Issue one card certificate (a fresh EC P-256 key, signed by this CA; the key is deleted at once).
   *
   * @param options.slot - `9A` (PIV Authentication extensions) or `9E` (Card Authentication)
   * @param options.commonName - subject CN, printable, at most 64 characters
   * @param options.notBefore - start of validity (whole seconds are kept)
   * @param options.notAfter - end of validity; in the past for an expired certificate
   * @returns the certificate (DER and PEM) with its dates as read back from it
   * @throws RangeError when notAfter is not after notBefore or the CN is unusable; Error when openssl fails
   */
  issue(options: { slot: TestCertificateSlot; commonName: string; notBefore: Date; notAfter: Date }): TestCertificate {
    if (!(options.notAfter.getTime() > options.notBefore.getTime())) throw new RangeError('notAfter must be after notBefore');
    if (!/^[A-Za-z0-9 .'-]{1,64}$/.test(options.commonName)) throw new RangeError('commonName must be 1-64 letters, digits, space . \' -');
    const n = ++this.issued;
    const base = `card-${n}`;
    try {
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`,
        '-subj', `/O=Smartcard Assist tests/CN=${options.commonName}`], this.dir);
      openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${base}.csr`, '-out', `${base}.pem`, '-notext',
        '-extensions', options.slot === '9A' ? 'piv_auth_ext' : 'card_auth_ext',
        '-startdate', opensslTime(options.notBefore), '-enddate', opensslTime(options.notAfter)], this.dir);
    } finally {
      rmSync(join(this.dir, `${base}.key`), { force: true });
    }
    return readCertificate(join(this.dir, `${base}.pem`), options.commonName);
  }

  /**
   * Certificates for both slots of a card, valid now: from 30 days before `now` to 365 days after.
   *
   * @param holder - the card holder's name, for the subject CN
   * @param now - the test's clock; default the real one
   */
  validCardCertificates(holder: string, now: Date = new Date()): TestCardCertificates {
    return this.cardCertificates(holder, new Date(now.getTime() - 30 * DAY_MS), new Date(now.getTime() + 365 * DAY_MS));
  }

  /**
   * Certificates for both slots of a card that expired `daysAgo` days before `now` (issued 3 years before that).
   *
   * @param holder - the card holder's name, for the subject CN
   * @param daysAgo - how long ago they expired, in days (default 30; at least 1)
   * @param now - the test's clock; default the real one
   */
  expiredCardCertificates(holder: string, daysAgo = 30, now: Date = new Date()): TestCardCertificates {
    if (!(daysAgo >= 1)) throw new RangeError('daysAgo must be at least 1');
    const notAfter = new Date(now.getTime() - daysAgo * DAY_MS);
    return this.cardCertificates(holder, new Date(notAfter.getTime() - 3 * 365 * DAY_MS), notAfter);
  }

  /**
   * Certificates for both slots with the same validity.
   *
   * @param holder - the card holder's name
   * @param notBefore - start of validity
   * @param notAfter - end of validity
   */
  cardCertificates(holder: string, notBefore: Date, notAfter: Date): TestCardCertificates {
    return {
      '9A': this.issue({ slot: '9A', commonName: holder, notBefore, notAfter }),
      '9E': this.issue({ slot: '9E', commonName: `${holder} card auth`.slice(0, 64), notBefore, notAfter }),
    };
  }

  /** Delete the folder with the CA key and everything issued. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The DER of each slot, as `VirtualPivCard`'s `certificates` option takes it.
 *
 * @param certificates - from {@link TestCertificateAuthority.validCardCertificates} and the like
 * @returns `{ '9A': DER, '9E': DER }`
 */
export function derBySlot(certificates: TestCardCertificates): Record<TestCertificateSlot, Buffer> {
  return { '9A': certificates['9A'].der, '9E': certificates['9E'].der };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed: the test certificates are made with it (apt-get install openssl)', { cause: error });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message}`, { cause: error });
  }
}

function readCertificate(file: string, commonName: string): TestCertificate {
  const pem = readFileSync(file, 'utf8');
  const x509 = new X509Certificate(pem);
  return { der: x509.raw, pem, notBefore: new Date(x509.validFrom), notAfter: new Date(x509.validTo), commonName };
}
