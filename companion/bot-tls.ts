/**
 * How the companion reaches the bot safely (issue #11, "The companion link in production").
 *
 * - The bot URL must be `https://` (the link then uses `wss://`). Plain `http://` / `ws://` is allowed only when
 *   the bot is on this computer: 127.0.0.0/8, ::1 or `localhost` (development, the demo, the tests). The
 *   companion sends its device credential on every link, so it never crosses a network in clear.
 * - The bot's server certificate is checked with Node's default verification (chain to a trusted CA, name
 *   matches the URL's host, within its dates). A Trust whose bot (or reverse proxy) has a certificate from a
 *   private CA names that CA's certificate(s) in `SMARTCARD_BOT_CA_FILE`; they are trusted in addition to
 *   Node's built-in CA list, for the bot only. There is no setting to turn verification off.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';

/**
 * True when `hostname` (as `URL.hostname` gives it) names this computer: `localhost`, an IPv4 address in
 * 127.0.0.0/8 or the IPv6 loopback `::1` (RFC 5735 3; RFC 4291 2.5.3).
 *
 * @param hostname - e.g. `127.0.0.1`, `[::1]`, `localhost`, `bot.trust.nhs.uk`
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Why a bot URL may not be used, or null when it may.
 *
 * @param url - the configured bot base URL
 * @returns a sentence for the configuration error, or null
 */
export function botUrlProblem(url: URL): string | null {
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return null;
  if (url.protocol === 'http:') {
    return `must use https:// for a bot on another computer (http:// only for 127.0.0.1, ::1 or localhost): the companion's credential must not cross the network in clear`;
  }
  return 'must use http or https';
}

/**
 * Read the extra CA certificate(s) for the bot's server certificate.
 *
 * @param file - path of a PEM file with one or more `CERTIFICATE` blocks
 * @returns the CA list to verify the bot with: Node's built-in CAs followed by the file's certificates
 * @throws Error whose message says what is wrong with the file (unreadable, no certificate, not a CA
 *   certificate, expired); the caller names the setting
 */
export function readBotCaFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((pem, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      throw new Error(`certificate ${i + 1} in ${file} cannot be read`);
    }
    if (!cert.ca) throw new Error(`certificate ${i + 1} in ${file} (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate: name the CA that issued the bot's certificate`);
    if (Date.parse(cert.validTo) < Date.now()) throw new Error(`certificate ${i + 1} in ${file} expired on ${cert.validTo}`);
  });
  return [...rootCertificates, ...blocks];
}

/**
 * A `fetch` for the bot's pairing endpoints that verifies the server with `ca` (Node's global `fetch` cannot
 * take a CA list). Supports what the pairing client uses: method, headers, a string body, `signal`, and
 * `redirect: 'error'` (a 3xx answer is an error, as with `fetch`). `http:` URLs (loopback) go to global fetch.
 *
 * @param ca - CA certificates (PEM), e.g. from {@link readBotCaFile}
 * @returns a function with `fetch`'s signature
 */
export function botFetch(ca: readonly string[]): typeof fetch {
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== 'https:') return fetch(input, init);
    const headers = new Headers(init.headers);
    if (init.body != null && typeof init.body !== 'string') throw new TypeError('botFetch sends string bodies only');
    const body = typeof init.body === 'string' ? init.body : undefined;
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: init.method ?? 'GET',
          headers: { ...Object.fromEntries(headers), ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
          ca: [...ca],
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400 && (init.redirect ?? 'follow') !== 'manual') {
            res.resume();
            reject(new TypeError(`the bot answered with a redirect (${status}); redirects are not followed`));
            return;
          }
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const out = new Headers();
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(', ') : v);
            resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: out }));
          });
          res.on('error', reject);
        },
      );
      // Errors keep their TLS code (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE) as `cause`, as fetch reports them.
      req.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
      req.end(body);
    });
  };
}
