/**
 * Certificates for the virtual card from files (manual use and the demo): PEM or DER, one certificate a
 * file, checked with `node:crypto`'s X509Certificate before the card stores them, so a typo fails at
 * start-up naming the file rather than later as a card with no usable certificate.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CertificateSlot } from '../piv/piv.constants';

/**
 * Read one certificate a slot.
 *
 * @param files - path by slot, e.g. `{ '9A': 'certs/9a.pem', '9E': 'certs/9e.pem' }`; a slot left out stays empty
 * @returns the DER bytes by slot, as `VirtualPivCard`'s `certificates` option takes them
 * @throws Error naming the slot and the file when a file cannot be read or holds no X.509 certificate (PEM or DER)
 */
export function readCertificateFiles(files: Partial<Record<CertificateSlot, string>>): Partial<Record<CertificateSlot, Buffer>> {
  const out: Partial<Record<CertificateSlot, Buffer>> = {};
  for (const [slot, file] of Object.entries(files) as Array<[CertificateSlot, string | undefined]>) {
    if (file === undefined) continue;
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      throw new Error(`certificate for slot ${slot}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    try {
      out[slot] = new X509Certificate(bytes).raw;
    } catch (error) {
      throw new Error(`certificate for slot ${slot}: ${file} holds no X.509 certificate (PEM or DER expected)`, { cause: error });
    }
  }
  return out;
}

/** File names {@link readCertificateDirectory} looks for, by slot. */
const DIRECTORY_FILES = { '9A': '9a.pem', '9E': '9e.pem' } as const satisfies Record<CertificateSlot, string>;

/**
 * Read `9a.pem` and `9e.pem` from a folder (as `scripts/test-certs.ts --out DIR` writes them); either may be missing.
 *
 * @param dir - the folder
 * @returns the DER bytes by slot
 * @throws Error when the folder holds neither file, or a file holds no X.509 certificate (see {@link readCertificateFiles})
 */
export function readCertificateDirectory(dir: string): Partial<Record<CertificateSlot, Buffer>> {
  const files: Partial<Record<CertificateSlot, string>> = {};
  for (const [slot, name] of Object.entries(DIRECTORY_FILES) as Array<[CertificateSlot, string]>) {
    if (existsSync(join(dir, name))) files[slot] = join(dir, name);
  }
  if (Object.keys(files).length === 0) throw new Error(`${dir} holds neither 9a.pem nor 9e.pem`);
  return readCertificateFiles(files);
}
