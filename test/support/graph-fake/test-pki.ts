/**
 * Throw-away test PKI for the local Graph fake, made with Debian's `openssl` at test time.
 *
 * Makes, in a fresh temporary folder (mode 0700): a test CA, a TLS server certificate for 127.0.0.1 and
 * localhost signed by it, and a self-signed client certificate for the certificate credential (one PEM with the
 * private key and the certificate, as `@azure/identity`'s ClientCertificateCredential reads it). Private keys
 * live only in that folder and are deleted by `cleanup()`; none is committed.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** PEM of the test CA: give it to the client as NODE_EXTRA_CA_CERTS. */
  caCertPath: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** PEM with the client's private key and certificate (ClientCertificateCredential `certificatePath`). */
  clientPemPath: string;
  /** The client certificate alone (what an app registration holds). */
  clientCertPem: string;
  /** SHA-1 and SHA-256 thumbprints of the client certificate's DER, base64url (JWT `x5t`, `x5t#S256`). */
  clientThumbprints: { sha1: string; sha256: string };
  cleanup(): void;
}

/** True when the `openssl` command runs here. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Make the CA, the server certificate and the client certificate.
 *
 * @returns paths and PEMs; call `cleanup()` when done
 * @throws Error when `openssl` is missing or fails
 */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'graph-fake-pki-'));
  const subjectCa = '/CN=Smartcard Assist test CA (throw-away)';
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', subjectCa,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  writeFileSync(
    join(dir, 'server.ext'),
    ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost', ''].join('\n'),
  );
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'],
    dir,
  );
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.crt', '-days', '2', '-subj', '/CN=smartcard-assist-graph-test-app'],
    dir,
  );
  const clientKey = readFileSync(join(dir, 'client.key'), 'utf8');
  const clientCertPem = readFileSync(join(dir, 'client.crt'), 'utf8');
  const clientPemPath = join(dir, 'client.pem');
  writeFileSync(clientPemPath, clientKey + clientCertPem, { mode: 0o600 });
  const der = new X509Certificate(clientCertPem).raw;
  return {
    dir,
    caCertPath: join(dir, 'ca.pem'),
    serverCertPem: readFileSync(join(dir, 'server.pem'), 'utf8'),
    serverKeyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
    clientPemPath,
    clientCertPem,
    clientThumbprints: {
      sha1: createHash('sha1').update(der).digest('base64url'),
      sha256: createHash('sha256').update(der).digest('base64url'),
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
