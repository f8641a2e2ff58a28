/**
 * Breaker, session 4: the companion's certificate reading (issue #14) against hostile card answers. Any bytes a
 * card (or a reader in the middle) returns for GET DATA of 5FC105 / 5FC101 either give a certificate whose
 * notAfter is the one `node:crypto` reads from the same DER, or are refused as CARD.MALFORMED_CERTIFICATE;
 * nothing else is thrown, and a chained answer that never ends is cut off. (The bot trusts what the companion
 * reports: a forged companion can report any notAfter. That is the trust boundary, not tested here.)
 */
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificateObject } from '../../companion/piv/piv-certificate';
import { CARD_ERROR_CODE, CertificateError } from '../../companion/piv/piv.errors';
import { PivSession } from '../../companion/piv/piv.session';
import type { CardConnection } from '../../companion/piv/card-connection';
import { encodeTlv } from '../../companion/piv/tlv';
import { opensslAvailable, TestCertificateAuthority, type TestCardCertificates } from '../support/test-certs';

const ci = process.env['CI'] === 'true';
const haveOpenssl = opensslAvailable();
if (!haveOpenssl && ci) throw new Error('openssl is needed for the test certificates (CI=true: not skipped)');

function object(cert: Buffer): Buffer {
  return encodeTlv(0x53, Buffer.concat([encodeTlv(0x70, cert), encodeTlv(0x71, [0]), encodeTlv(0xfe, [])]));
}

let ca: TestCertificateAuthority;
let valid: TestCardCertificates;
beforeAll(() => {
  if (!haveOpenssl) return;
  ca = TestCertificateAuthority.create();
  valid = ca.validCardCertificates('Breaker Holder');
});
afterAll(() => ca?.cleanup());

/** Parse, and classify: ok (with the notAfter node:crypto reads from the DER it found) or a typed refusal. */
function outcome(bytes: Buffer): 'ok' | 'refused' {
  try {
    const c = parseCertificateObject('9A', bytes);
    expect(Number.isNaN(Date.parse(c.notAfter))).toBe(false);
    return 'ok';
  } catch (error) {
    if (!(error instanceof CertificateError) || error.code !== CARD_ERROR_CODE.MALFORMED_CERTIFICATE) throw error;
    return 'refused';
  }
}

describe.skipIf(!haveOpenssl)('breaker s4: certificate objects from a hostile card', () => {
  it('random bit flips, truncations, length rewrites and splices of a valid object: a certificate or CARD.MALFORMED_CERTIFICATE, nothing else', () => {
    const good = object(valid['9A'].der);
    expect(outcome(good)).toBe('ok');
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(good.length - 1), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(good.length) }),
      fc.record({ kind: fc.constant('byte' as const), at: fc.nat(8), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(good.length), junk: fc.uint8Array({ maxLength: 64 }) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        let b = Buffer.from(good);
        for (const m of ms) {
          if (m.kind === 'flip') b[m.at % b.length] = b[m.at % b.length]! ^ (1 << m.bit);
          else if (m.kind === 'cut') b = b.subarray(0, m.at % (b.length + 1));
          else if (m.kind === 'byte') b[m.at % Math.max(1, b.length)] = m.value;
          else b = Buffer.concat([b.subarray(0, m.at % (b.length + 1)), Buffer.from(m.junk), b.subarray(m.at % (b.length + 1))]);
        }
        outcome(b);
      }),
      { numRuns: 3000, seed: 4242 },
    );
  });

  it('lengths that claim more than there is (up to 16 MB in 3 length bytes), nested 53s and empty answers are refused', () => {
    const cases = [
      Buffer.from('53 83 FF FF FF 70 00'.replace(/ /g, ''), 'hex'),
      Buffer.from('53 84 00 00 00 01 00'.replace(/ /g, ''), 'hex'),
      Buffer.from('53 83 00 00 05 70 83 FF FF FF'.replace(/ /g, ''), 'hex'),
      encodeTlv(0x53, encodeTlv(0x53, encodeTlv(0x70, valid['9A'].der))),
      Buffer.alloc(0),
      Buffer.from([0x53]),
      Buffer.from([0x53, 0x80, 0x00, 0x00]),
      Buffer.from([0x5f, 0xff, 0xff, 0xff, 0x01, 0x00]),
    ];
    for (const c of cases) expect(outcome(c)).toBe('refused');
  });

  it('a card that answers 61xx forever: readCertificates is cut off after 64 KB, reports the slot unusable, and goes on to the next slot', async () => {
    let getResponses = 0;
    let getData = 0;
    const conn: CardConnection = {
      transmit: async (apdu: Buffer) => {
        if (apdu[1] === 0xa4) return Buffer.from('61114F0600001000010079074F05A00000030890 00'.replace(/ /g, ''), 'hex');
        if (apdu[1] === 0xcb) {
          getData++;
          return Buffer.concat([Buffer.alloc(256, 0x41), Buffer.from([0x61, 0x00])]);
        }
        if (apdu[1] === 0xc0) {
          getResponses++;
          return Buffer.concat([Buffer.alloc(256, 0x41), Buffer.from([0x61, 0x00])]);
        }
        return Buffer.from([0x6d, 0x00]);
      },
      close: async () => undefined,
    } as unknown as CardConnection;
    const session = await PivSession.open(conn);
    const readings = await session.readCertificates();
    expect(readings.map((r) => [r.slot, r.status])).toEqual([
      ['9A', 'unusable'],
      ['9E', 'unusable'],
    ]);
    expect(getData).toBe(2);
    // 64 KB in 256-byte parts: about 256 GET RESPONSEs per slot, not unbounded.
    expect(getResponses).toBeLessThanOrEqual(2 * 260);
  });

  it('the DER node:crypto reads is the one reported: a certificate spliced after junk inside tag 70 is refused, not half-read', () => {
    const der = valid['9A'].der;
    const withTrailing = object(Buffer.concat([der, Buffer.from([0x00, 0x00])]));
    const r = (() => {
      try {
        return parseCertificateObject('9A', withTrailing).notAfter;
      } catch (error) {
        expect(error).toBeInstanceOf(CertificateError);
        return 'refused';
      }
    })();
    // Either refused, or the notAfter of that very certificate.
    expect(['refused', new Date(new X509Certificate(der).validTo).toISOString()]).toContain(r);
  });
});
