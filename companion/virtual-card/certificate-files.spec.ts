import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TestCertificateAuthority } from '../../test/support/test-certs';
import { readCertificateDirectory, readCertificateFiles } from './certificate-files';

const dir = mkdtempSync(join(tmpdir(), 'cert-files-'));
const ca = TestCertificateAuthority.create();
const certs = ca.validCardCertificates('File Holder');
afterAll(() => {
  ca.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('readCertificateFiles', () => {
  it('reads a PEM for 9A and a DER for 9E and returns the DER bytes by slot', () => {
    writeFileSync(join(dir, '9a.pem'), certs['9A'].pem);
    writeFileSync(join(dir, '9e.der'), certs['9E'].der);
    const out = readCertificateFiles({ '9A': join(dir, '9a.pem'), '9E': join(dir, '9e.der') });
    expect(out['9A']?.equals(certs['9A'].der)).toBe(true);
    expect(out['9E']?.equals(certs['9E'].der)).toBe(true);
    expect(readCertificateFiles({})).toEqual({});
  });

  it('refuses a missing file and one without a certificate, naming the slot and the file', () => {
    expect(() => readCertificateFiles({ '9A': join(dir, 'nope.pem') })).toThrow(/slot 9A: cannot read .*nope\.pem \(ENOENT\)/);
    writeFileSync(join(dir, 'junk.pem'), 'hello\n');
    expect(() => readCertificateFiles({ '9E': join(dir, 'junk.pem') })).toThrow(/slot 9E: .*junk\.pem holds no X\.509 certificate/);
  });
});

describe('readCertificateDirectory', () => {
  it('reads 9a.pem and 9e.pem from a folder, either alone; a folder with neither is refused', () => {
    const both = mkdtempSync(join(dir, 'both-'));
    writeFileSync(join(both, '9a.pem'), certs['9A'].pem);
    writeFileSync(join(both, '9e.pem'), certs['9E'].pem);
    const read = readCertificateDirectory(both);
    expect(read['9A']?.equals(certs['9A'].der)).toBe(true);
    expect(read['9E']?.equals(certs['9E'].der)).toBe(true);
    const only = mkdtempSync(join(dir, 'only-'));
    writeFileSync(join(only, '9e.pem'), certs['9E'].pem);
    expect(Object.keys(readCertificateDirectory(only))).toEqual(['9E']);
    expect(() => readCertificateDirectory(mkdtempSync(join(dir, 'none-')))).toThrow(/neither 9a\.pem nor 9e\.pem/);
  });
});
