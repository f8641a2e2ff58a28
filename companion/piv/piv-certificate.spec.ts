import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCertificateAuthority, type TestCardCertificates } from '../../test/support/test-certs';
import { parseCertificateObject } from './piv-certificate';
import { ApduError, CARD_ERROR_CODE, CardError, CertificateError } from './piv.errors';
import { PivSession } from './piv.session';
import { ScriptedCardConnection } from './scripted-card-connection.fake';
import { encodeTlv } from './tlv';

const SELECT = '00 A4 04 00 0B A0000003080000100001 00 00';
const SELECT_OK = '61 11 4F 06 000010000100 79 07 4F 05 A000000308 90 00';
const GET_9A = '00 CB 3F FF 05 5C 03 5FC105 00';
const GET_9E = '00 CB 3F FF 05 5C 03 5FC101 00';

/** `53 { 70 cert, 71 info, FE 00 }` as the card returns it. */
function object(cert: Buffer, info: number[] | null = [0x00], extra: Buffer = Buffer.alloc(0)): Buffer {
  const parts = [encodeTlv(0x70, cert)];
  if (info !== null) parts.push(encodeTlv(0x71, info));
  parts.push(extra, encodeTlv(0xfe, []));
  return encodeTlv(0x53, Buffer.concat(parts));
}

function thrown(fn: () => unknown): CertificateError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CertificateError);
    return error as CertificateError;
  }
  throw new Error('expected a CertificateError');
}

let ca: TestCertificateAuthority;
let valid: TestCardCertificates;
let expired: TestCardCertificates;

beforeAll(() => {
  ca = TestCertificateAuthority.create();
  valid = ca.validCardCertificates('Spec Holder');
  expired = ca.expiredCardCertificates('Spec Expired', 2);
});
afterAll(() => ca?.cleanup());

describe('parseCertificateObject (SP 800-73-4 Part 1, Appendix A)', () => {
  it('reads notBefore / notAfter (ISO 8601 UTC), subject and fingerprint of a DER certificate', () => {
    const cert = parseCertificateObject('9A', object(valid['9A'].der));
    expect(cert).toMatchObject({
      slot: '9A',
      notBefore: valid['9A'].notBefore.toISOString(),
      notAfter: valid['9A'].notAfter.toISOString(),
    });
    expect(cert.subject).toContain('CN=Spec Holder');
    expect(cert.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const old = parseCertificateObject('9E', object(expired['9E'].der));
    expect(old.notAfter).toBe(expired['9E'].notAfter.toISOString());
    expect(Date.parse(old.notAfter)).toBeLessThan(Date.now());
  });

  it('gunzips a certificate whose CertInfo has bit 0 set, and tolerates a missing CertInfo and an MSCUID', () => {
    const zipped = parseCertificateObject('9A', object(gzipSync(valid['9A'].der), [0x01]));
    expect(zipped.notAfter).toBe(valid['9A'].notAfter.toISOString());
    expect(parseCertificateObject('9A', object(valid['9A'].der, null)).notAfter).toBe(valid['9A'].notAfter.toISOString());
    expect(parseCertificateObject('9A', object(valid['9A'].der, [0x00], encodeTlv(0x72, [1, 2, 3]))).slot).toBe('9A');
  });

  it.each([
    ['bytes that are not BER-TLV', () => Buffer.from('53820500', 'hex'), /not BER-TLV/],
    ['no tag 53', () => encodeTlv(0x70, valid['9A'].der), /tag 53/],
    ['no tag 70', () => encodeTlv(0x53, Buffer.concat([encodeTlv(0x71, [0]), encodeTlv(0xfe, [])])), /tag 70/],
    ['an empty tag 70', () => object(Buffer.alloc(0)), /tag 70/],
    ['a 2-byte CertInfo', () => object(valid['9A'].der, [0, 0]), /CertInfo/],
    ['gzip flagged but not gzip', () => object(valid['9A'].der, [0x01]), /gunzip/],
    ['text instead of DER', () => object(Buffer.from('-----BEGIN CERTIFICATE----- nope')), /DER X\.509/],
    ['a truncated certificate', () => object(valid['9A'].der.subarray(0, 200)), /DER X\.509/],
  ])('refuses %s with CARD.MALFORMED_CERTIFICATE naming the slot', (_name, bytes, message) => {
    const error = thrown(() => parseCertificateObject('9E', bytes()));
    expect(error.code).toBe(CARD_ERROR_CODE.MALFORMED_CERTIFICATE);
    expect(error.slot).toBe('9E');
    expect(error.message).toMatch(message);
    expect(error.message).toContain('slot 9E');
  });

  it('refuses a gzip bomb larger than 16 KB', () => {
    const bomb = gzipSync(Buffer.alloc(200_000, 0x30));
    expect(thrown(() => parseCertificateObject('9A', object(bomb, [0x01]))).message).toMatch(/16 KB/);
  });
});

describe('PivSession certificate reading (scripted card)', () => {
  async function openWith(steps: Array<{ expect: string; respond: string } | { expect: string; fail: Error }>): Promise<{ session: PivSession; conn: ScriptedCardConnection }> {
    const conn = new ScriptedCardConnection([{ expect: SELECT, respond: SELECT_OK }, ...steps]);
    return { session: await PivSession.open(conn), conn };
  }

  it('sends GET DATA 5C 03 5FC105 then 5FC101 and follows 61xx for a certificate longer than 256 bytes', async () => {
    // The card hands out 256 bytes at a time: 61xx (00 = 256 or more left), GET RESPONSE with Le = xx.
    const whole = object(valid['9A'].der);
    expect(whole.length).toBeGreaterThan(256);
    const steps: Array<{ expect: string; respond: string }> = [];
    const hex2 = (n: number): string => (n & 0xff).toString(16).padStart(2, '0');
    let command = GET_9A;
    for (let at = 0; at < whole.length; at += 256) {
      const chunk = whole.subarray(at, at + 256).toString('hex');
      const left = whole.length - at - 256;
      steps.push({ expect: command, respond: left > 0 ? `${chunk}61${hex2(Math.min(left, 256))}` : `${chunk}9000` });
      command = `00 C0 00 00 ${hex2(Math.min(left, 256))}`;
    }
    expect(steps.length).toBeGreaterThan(2);
    const { session, conn } = await openWith([...steps, { expect: GET_9E, respond: '6A82' }]);
    const readings = await session.readCertificates();
    expect(readings).toEqual([
      { slot: '9A', status: 'present', certificate: expect.objectContaining({ notAfter: valid['9A'].notAfter.toISOString() }) },
      { slot: '9E', status: 'absent' },
    ]);
    expect(conn.remaining).toBe(0);
  });

  it('6A82 for both objects: both absent, no error; readCertificate gives null', async () => {
    const { session } = await openWith([
      { expect: GET_9A, respond: '6A82' },
      { expect: GET_9E, respond: '6A82' },
      { expect: GET_9E, respond: '6A82' },
    ]);
    expect(await session.readCertificates()).toEqual([{ slot: '9A', status: 'absent' }, { slot: '9E', status: 'absent' }]);
    expect(await session.readCertificate('9E')).toBeNull();
  });

  it('malformed bytes and another SW (6982) are unusable with typed errors; readCertificate throws them', async () => {
    const { session } = await openWith([
      { expect: GET_9A, respond: `${object(Buffer.from('garbage')).toString('hex')}9000` },
      { expect: GET_9E, respond: '6982' },
      { expect: GET_9A, respond: `${object(Buffer.from('garbage')).toString('hex')}9000` },
    ]);
    const [a, e] = await session.readCertificates();
    expect(a).toMatchObject({ slot: '9A', status: 'unusable' });
    expect((a as { error: CardError }).error).toBeInstanceOf(CertificateError);
    expect(e).toMatchObject({ slot: '9E', status: 'unusable' });
    expect((e as { error: CardError }).error).toBeInstanceOf(ApduError);
    expect(e?.status === 'unusable' && e.error instanceof ApduError ? e.error.swHex : null).toBe('6982');
    await expect(session.readCertificate('9A')).rejects.toMatchObject({ code: CARD_ERROR_CODE.MALFORMED_CERTIFICATE });
  });

  it('a card pulled during GET DATA is not "no certificate": CARD.REMOVED is thrown', async () => {
    const removed = new CardError(CARD_ERROR_CODE.REMOVED, 'card removed');
    const { session } = await openWith([{ expect: GET_9A, fail: removed }]);
    await expect(session.readCertificates()).rejects.toBe(removed);
  });
});
