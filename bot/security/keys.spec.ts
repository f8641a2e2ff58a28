import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { deriveKeys, generateMasterKey, KEY_DERIVATION, parseMasterKey } from './keys';
import { hkdfSync } from 'node:crypto';

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a throw');
}

describe('parseMasterKey', () => {
  const bytes = randomBytes(32);

  it.each([
    ['hex lower', bytes.toString('hex')],
    ['hex upper', bytes.toString('hex').toUpperCase()],
    ['base64 padded', bytes.toString('base64')],
    ['base64 unpadded', bytes.toString('base64').replace(/=+$/, '')],
    ['base64url', bytes.toString('base64url')],
    ['surrounded by whitespace', `  ${bytes.toString('base64')}\n`],
  ])('accepts %s and yields the same 32 bytes', (_name, text) => {
    const key = parseMasterKey(text);
    expect(key.symmetricKeySize).toBe(32);
    expect(key.export().equals(bytes)).toBe(true);
  });

  it.each([
    ['missing', undefined, /MY_KEY is not set/],
    ['empty', '', /MY_KEY is not set/],
    ['too short hex', 'ab'.repeat(31), /MY_KEY must be 32 bytes/],
    ['too long base64', randomBytes(33).toString('base64'), /MY_KEY must be 32 bytes/],
    ['not an encoding', 'this is not a key at all, it is a sentence!!', /MY_KEY must be 32 bytes/],
    ['placeholder zeros', '00'.repeat(32), /MY_KEY is one repeated byte/],
  ])('refuses %s with CONFIG.MASTER_KEY_INVALID naming the variable', (_name, text, message) => {
    const err = thrown(() => parseMasterKey(text, 'MY_KEY'));
    expect(err.code).toBe('CONFIG.MASTER_KEY_INVALID');
    expect(err.message).toMatch(message);
    expect(err.meta.variable).toBe('MY_KEY');
  });

  it('never repeats the offered value in the error', () => {
    const wrong = randomBytes(31).toString('hex');
    const err = thrown(() => parseMasterKey(wrong, 'MY_KEY'));
    expect(JSON.stringify(err.toJSON())).not.toContain(wrong);
    expect(err.message).not.toContain(wrong.slice(0, 16));
  });

  it('uses the default variable name when none is given', () => {
    expect(thrown(() => parseMasterKey(undefined)).message).toMatch(/^SMARTCARD_ASSIST_MASTER_KEY /);
  });

  it('generateMasterKey output parses back', () => {
    const text = generateMasterKey();
    expect(text).toHaveLength(44);
    expect(parseMasterKey(text).export().equals(Buffer.from(text, 'base64'))).toBe(true);
  });
});

describe('deriveKeys', () => {
  it('derives three distinct 32-byte keys matching HKDF-SHA-256 with the documented labels', () => {
    const master = parseMasterKey(randomBytes(32).toString('hex'));
    const keys = deriveKeys(master);
    const exported = [keys.sealKey, keys.codeHashKey, keys.credentialHashKey].map((k) => k.export());
    for (const k of exported) expect(k).toHaveLength(32);
    expect(new Set(exported.map((k) => k.toString('hex'))).size).toBe(3);
    expect(exported.some((k) => k.equals(master.export()))).toBe(false);
    const expectedSeal = Buffer.from(hkdfSync('sha256', master.export(), KEY_DERIVATION.salt, KEY_DERIVATION.info.sealKey, 32));
    expect(keys.sealKey.export().equals(expectedSeal)).toBe(true);
  });

  it('is deterministic for one master key and differs for another', () => {
    const text = randomBytes(32).toString('base64');
    const a = deriveKeys(parseMasterKey(text));
    const b = deriveKeys(parseMasterKey(text));
    const c = deriveKeys(parseMasterKey(randomBytes(32).toString('base64')));
    expect(a.codeHashKey.export().equals(b.codeHashKey.export())).toBe(true);
    expect(a.codeHashKey.export().equals(c.codeHashKey.export())).toBe(false);
  });

  it('keys do not show their bytes when inspected or serialised', () => {
    const master = parseMasterKey(randomBytes(32).toString('hex'));
    const keys = deriveKeys(master);
    const hex = keys.sealKey.export().toString('hex');
    const b64 = keys.sealKey.export().toString('base64');
    const text = inspect(keys, { depth: 5 }) + JSON.stringify(keys);
    expect(text).not.toContain(hex);
    expect(text).not.toContain(b64);
  });

  it('refuses a key that is not a 32-byte secret KeyObject', () => {
    expect(thrown(() => deriveKeys(Buffer.alloc(32) as never)).code).toBe('CRYPTO.KEY_INVALID');
  });
});
