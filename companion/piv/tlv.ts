/**
 * Minimal BER-TLV (ISO/IEC 7816-4 5.2 / SP 800-73-4 Part 1 Appendix A) for PIV
 * data objects: multi-byte tags, definite lengths up to 3 bytes.
 */

/** One decoded TLV; `tag` is the tag bytes read big-endian (e.g. `0x5FC102`). */
export interface Tlv {
  tag: number;
  value: Buffer;
}

/** A TLV could not be decoded. */
export class TlvError extends Error {
  override readonly name = 'TlvError';
}

/**
 * Decode a run of BER-TLV objects laid end to end.
 *
 * @param bytes - encoded TLVs
 * @returns the objects in order (values are views into `bytes`)
 * @throws TlvError on a truncated tag, length or value, or an indefinite/over-long length
 */
export function decodeTlvs(bytes: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let i = 0;
  while (i < bytes.length) {
    // Tag: first byte, then more bytes while (first & 0x1F) == 0x1F and each next has bit 8 set.
    const first = bytes[i++]!;
    let tag = first;
    if ((first & 0x1f) === 0x1f) {
      let next: number;
      let count = 0;
      do {
        if (i >= bytes.length) throw new TlvError('truncated tag');
        next = bytes[i++]!;
        tag = tag * 256 + next;
        if (++count > 2) throw new TlvError('tag longer than 3 bytes');
      } while ((next & 0x80) !== 0);
    }
    if (i >= bytes.length) throw new TlvError(`truncated length of tag ${tag.toString(16)}`);
    let length = bytes[i++]!;
    if (length === 0x80) throw new TlvError('indefinite length not allowed');
    if (length > 0x80) {
      const n = length & 0x7f;
      if (n > 3) throw new TlvError(`length of ${n} bytes not supported`);
      if (i + n > bytes.length) throw new TlvError('truncated length');
      length = 0;
      for (let k = 0; k < n; k++) length = length * 256 + bytes[i++]!;
    }
    if (i + length > bytes.length) throw new TlvError(`value of tag ${tag.toString(16)} truncated: needs ${length} bytes, ${bytes.length - i} left`);
    out.push({ tag, value: bytes.subarray(i, i + length) });
    i += length;
  }
  return out;
}

/**
 * Find the first object with a tag in a run of TLVs.
 *
 * @param bytes - encoded TLVs
 * @param tag - tag bytes read big-endian
 * @returns its value, or `undefined`
 * @throws TlvError when the run cannot be decoded
 */
export function findTlv(bytes: Buffer, tag: number): Buffer | undefined {
  return decodeTlvs(bytes).find((t) => t.tag === tag)?.value;
}

function tagBytes(tag: number): Buffer {
  if (tag <= 0xff) return Buffer.from([tag]);
  if (tag <= 0xffff) return Buffer.from([tag >> 8, tag & 0xff]);
  return Buffer.from([(tag >> 16) & 0xff, (tag >> 8) & 0xff, tag & 0xff]);
}

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length <= 0xff) return Buffer.from([0x81, length]);
  if (length <= 0xffff) return Buffer.from([0x82, length >> 8, length & 0xff]);
  throw new RangeError(`TLV value of ${length} bytes is too long`);
}

/**
 * Encode one BER-TLV object.
 *
 * @param tag - tag bytes read big-endian (1-3 bytes)
 * @param value - value bytes, at most 65535
 */
export function encodeTlv(tag: number, value: Buffer | Uint8Array | readonly number[]): Buffer {
  const v = Buffer.from(value as Uint8Array);
  return Buffer.concat([tagBytes(tag), lengthBytes(v.length), v]);
}
