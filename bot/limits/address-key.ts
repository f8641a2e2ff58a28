/**
 * What a per-address limit counts for one client address.
 */
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The part of a client's network address that a per-address limit counts.
 *
 * - IPv4: the address (`203.0.113.7`); IPv4-mapped IPv6 (`::ffff:203.0.113.7`) is unwrapped to it.
 * - IPv6: the /64 prefix (`2001:db8:0:1::/64`): one host or site is normally given a whole /64
 *   (RFC 7421), so counting single IPv6 addresses would let one client count as 2^64.
 *
 * @param remote - the socket's remote address (`req.socket.remoteAddress`), possibly undefined
 * @returns the key part, or `unknown` when there is no valid address
 */
export function addressKey(remote: string | undefined): string {
  if (!remote) return 'unknown';
  const bare = remote.replace(/%.*$/, ''); // zone id (fe80::1%eth0)
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return 'unknown';
  const groups = ipv6Groups(bare);
  if (groups === null) return 'unknown';
  // ::ffff:a.b.c.d (IPv4-mapped): the IPv4 address.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The 8 16-bit groups of a valid IPv6 address (with `::` and a dotted IPv4 tail expanded). */
function ipv6Groups(address: string): number[] | null {
  const parts = (text: string): number[] => {
    if (text === '') return [];
    const out: number[] = [];
    for (const p of text.split(':')) {
      if (isIPv4(p)) {
        const [a, b, c, d] = p.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(p, 16));
    }
    return out;
  };
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const head = parts(halves[0]!);
  const tail = halves.length === 2 ? parts(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<number>(Math.max(0, fill)).fill(0), ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}
