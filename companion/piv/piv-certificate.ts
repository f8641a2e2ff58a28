/**
 * Certificate objects of a PIV card (NIST SP 800-73-4 Part 1, Appendix A, Tables 10 and 15): decode the
 * GET DATA answer `53 { 70 certificate, 71 CertInfo, [72 MSCUID], FE error detection code }` and read the
 * certificate's validity with `node:crypto`'s X509Certificate. Pure: bytes in, facts or a typed error out.
 */
import { X509Certificate } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { CERT_INFO_GZIP, TAG, type CertificateSlot } from './piv.constants';
import { CertificateError } from './piv.errors';
import { decodeTlvs, TlvError, type Tlv } from './tlv';

/** What the companion knows about one certificate on the card. */
export interface CardCertificate {
  /** Key reference of the slot: `9A` PIV Authentication, `9E` Card Authentication. */
  slot: CertificateSlot;
  /** Start of validity, ISO 8601 UTC (`2026-01-01T00:00:00.000Z`). */
  notBefore: string;
  /** End of validity, ISO 8601 UTC; after it the certificate has expired (RFC 5280, 4.1.2.5). */
  notAfter: string;
  /** Subject distinguished name as `node:crypto` prints it (one `key=value` a line). */
  subject: string;
  /** SHA-256 of the DER certificate, upper-case hex pairs separated by colons. */
  fingerprint256: string;
}

/** Largest certificate accepted after gunzip, in bytes (a PIV certificate is 1-3 KB). */
export const MAX_CERTIFICATE_BYTES = 16_384;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
/** `node:crypto` validity form, e.g. `Dec  6 05:00:00 2027 GMT` (OpenSSL's ASN1_TIME_print). */
const OPENSSL_TIME = /^([A-Z][a-z]{2}) +([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([0-9]{4}) GMT$/;

/**
 * Turn a validity time as `node:crypto` prints it into ISO 8601 UTC.
 *
 * @param text - e.g. `Dec  6 05:00:00 2027 GMT`
 * @returns e.g. `2027-12-06T05:00:00.000Z`, or undefined when the text has another form
 */
function isoFromOpensslTime(text: string): string | undefined {
  const m = OPENSSL_TIME.exec(text);
  if (m === null) return undefined;
  const month = MONTHS.indexOf(m[1] as (typeof MONTHS)[number]);
  if (month === -1) return undefined;
  const ms = Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  const date = new Date(ms);
  // Date.UTC rolls 31 Feb over into March: refuse a date that does not exist.
  if (Number.isNaN(ms) || date.getUTCDate() !== Number(m[2]) || date.getUTCMonth() !== month) return undefined;
  return date.toISOString();
}

/**
 * Decode a certificate object as GET DATA returns it and read the certificate's validity.
 *
 * @param slot - the slot the object was read from, for the result and the error
 * @param response - GET DATA response data: `53 L { 70 L DER, 71 01 CertInfo, [72 L MSCUID], FE 00 }`;
 *   CertInfo bit 0 set means the certificate is gzip-compressed (SP 800-73-4 Part 1, 5.6); a missing
 *   CertInfo is read as 00 (uncompressed)
 * @returns the certificate's slot, validity (ISO 8601 UTC), subject and SHA-256 fingerprint
 * @throws CertificateError (`CARD.MALFORMED_CERTIFICATE`) when the layout is not BER-TLV, tag 53 or 70
 *   is missing or empty, CertInfo is not 1 byte, gunzip fails or yields more than
 *   {@link MAX_CERTIFICATE_BYTES}, the bytes are not a DER X.509 certificate, or its dates cannot be read
 */
export function parseCertificateObject(slot: CertificateSlot, response: Buffer): CardCertificate {
  let fields: Tlv[];
  try {
    const outer = decodeTlvs(response);
    const wrapper = outer.find((t) => t.tag === TAG.DATA);
    if (wrapper === undefined) throw new CertificateError(slot, 'no data object (tag 53) in the GET DATA answer');
    fields = decodeTlvs(wrapper.value);
  } catch (error) {
    if (error instanceof TlvError) throw new CertificateError(slot, `object is not BER-TLV (${error.message})`, { cause: error });
    throw error;
  }
  const body = fields.find((t) => t.tag === TAG.CERTIFICATE)?.value;
  if (body === undefined || body.length === 0) throw new CertificateError(slot, 'no certificate (tag 70) in the object');
  const info = fields.find((t) => t.tag === TAG.CERT_INFO)?.value;
  if (info !== undefined && info.length !== 1) throw new CertificateError(slot, `CertInfo (tag 71) is ${info.length} bytes, not 1`);
  let der = body;
  if (info !== undefined && (info[0]! & CERT_INFO_GZIP) !== 0) {
    try {
      der = gunzipSync(body, { maxOutputLength: MAX_CERTIFICATE_BYTES });
    } catch (error) {
      throw new CertificateError(slot, 'CertInfo says gzip but the certificate does not gunzip (or is larger than 16 KB)', { cause: error });
    }
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch (error) {
    throw new CertificateError(slot, 'tag 70 does not hold a DER X.509 certificate', { cause: error });
  }
  const notBefore = isoFromOpensslTime(certificate.validFrom);
  const notAfter = isoFromOpensslTime(certificate.validTo);
  if (notBefore === undefined || notAfter === undefined) throw new CertificateError(slot, 'the validity dates cannot be read');
  return { slot, notBefore, notAfter, subject: certificate.subject, fingerprint256: certificate.fingerprint256 };
}
