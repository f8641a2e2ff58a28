/**
 * Compose and read the small RFC 5322 / MIME messages the outbox writes:
 * `multipart/alternative` with a `text/plain` and a `text/html` part, both
 * UTF-8 and quoted-printable.
 *
 * NOTE: this is not a general MIME library. It writes exactly one shape and
 * reads back that shape (for tests and for tools that pick up the outbox).
 * Quoted-printable keeps ASCII text (and so a one-time code) readable in the
 * file, and never produces the `=_` that starts the boundary, so the boundary
 * cannot occur in a part (RFC 2045 6.7, RFC 2046 5.1.1).
 */

const CRLF = '\r\n';

/** The parts of a message to compose; header values must already be free of CR and LF. */
export interface MimeMessageInput {
  /** `From` mailbox, e.g. `{ name: 'Smartcard Assist', address: 'no-reply@example.nhs.uk' }`. */
  from: { name?: string; address: string };
  /** Recipient addr-spec. */
  to: string;
  subject: string;
  date: Date;
  /** Message-ID without angle brackets, `left@right` (RFC 5322 3.6.4). */
  messageId: string;
  text: string;
  html: string;
  /** Extra headers (`X-...`, `Auto-Submitted`), ASCII values only. */
  headers?: Record<string, string>;
}

/** A message read back by {@link parseMimeMessage}. */
export interface ParsedMimeMessage {
  /** Header values by lower-case name, unfolded and with RFC 2047 words decoded. */
  headers: Record<string, string>;
  /** Decoded text part, lines separated by `\n`. */
  text: string;
  /** Decoded HTML part, lines separated by `\n`. */
  html: string;
}

/**
 * RFC 5322 3.3 date-time in UTC, e.g. `Fri, 03 Jul 2026 08:45:00 +0000`.
 *
 * @param date - the instant
 */
export function formatRfc5322Date(date: Date): string {
  return date.toUTCString().replace(/ GMT$/, ' +0000');
}

const isPrintableAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);

/**
 * Encode a header value as RFC 2047 `B` encoded words when it is not printable ASCII;
 * each word is at most 75 characters, words are separated by folding white space.
 */
export function encodeHeaderText(value: string): string {
  if (isPrintableAscii(value)) return foldAscii(value);
  const words: string[] = [];
  let chunk = '';
  for (const ch of value) {
    if (Buffer.byteLength(chunk + ch, 'utf8') > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join(`${CRLF} `);
}

/** Fold a long ASCII header value at spaces so lines stay near 78 characters (RFC 5322 2.2.3). */
function foldAscii(value: string): string {
  if (value.length <= 70) return value;
  const out: string[] = [];
  let line = '';
  for (const word of value.split(' ')) {
    if (line && line.length + 1 + word.length > 70) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  out.push(line);
  return out.join(`${CRLF} `);
}

function formatMailbox(from: { name?: string; address: string }): string {
  if (!from.name) return from.address;
  const name = isPrintableAscii(from.name) ? `"${from.name.replace(/["\\]/g, '\\$&')}"` : encodeHeaderText(from.name);
  return `${name} <${from.address}>`;
}

/**
 * Quoted-printable encoding of UTF-8 text (RFC 2045 6.7): line breaks become CRLF, lines are at most
 * 76 characters with `=` soft breaks, trailing space and tab are encoded.
 */
export function encodeQuotedPrintable(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  return lines
    .map((line) => {
      const bytes = Buffer.from(line, 'utf8');
      const tokens: string[] = [];
      bytes.forEach((b, i) => {
        const last = i === bytes.length - 1;
        const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
        tokens.push(literal ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`);
      });
      const out: string[] = [];
      let current = '';
      for (const token of tokens) {
        if (current.length + token.length > 75) {
          out.push(`${current}=`);
          current = '';
        }
        current += token;
      }
      out.push(current);
      return out.join(CRLF);
    })
    .join(CRLF);
}

/** Decode quoted-printable (RFC 2045 6.7) into UTF-8 text with `\n` line breaks. */
export function decodeQuotedPrintable(encoded: string): string {
  const joined = encoded.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i]!;
    const hex = joined.slice(i + 1, i + 3);
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8').replace(/\r\n/g, '\n');
}

/**
 * Compose the message: RFC 5322 headers, MIME 1.0 `multipart/alternative` with text then HTML
 * (RFC 2046 5.1.4: the last part is the preferred one). Lines end with CRLF.
 *
 * @returns the whole message as a string of ASCII characters
 */
export function composeMimeMessage(input: MimeMessageInput): string {
  const boundary = `=_sca_${input.messageId.replace(/[^A-Za-z0-9]/g, '').slice(0, 48)}`;
  const headers: Array<[string, string]> = [
    ['From', formatMailbox(input.from)],
    ['To', input.to],
    ['Subject', encodeHeaderText(input.subject)],
    ['Date', formatRfc5322Date(input.date)],
    ['Message-ID', `<${input.messageId}>`],
    ['MIME-Version', '1.0'],
    ...Object.entries(input.headers ?? {}),
    ['Content-Type', `multipart/alternative; boundary="${boundary}"`],
  ];
  const part = (type: string, body: string) =>
    [`--${boundary}`, `Content-Type: ${type}; charset=utf-8`, 'Content-Transfer-Encoding: quoted-printable', '', encodeQuotedPrintable(body)].join(CRLF);
  return [
    ...headers.map(([name, value]) => `${name}: ${value}`),
    '',
    'This is a multi-part message in MIME format.',
    part('text/plain', input.text),
    part('text/html', input.html),
    `--${boundary}--`,
    '',
  ].join(CRLF);
}

function decodeHeaderText(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _charset: string, enc: string, data: string) =>
      enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64').toString('utf8') : decodeQuotedPrintable(data.replace(/_/g, ' ')),
    );
}

function parseHeaderBlock(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = decodeHeaderText(line.slice(colon + 1).trim());
  }
  return headers;
}

/**
 * Read a message written by {@link composeMimeMessage} (or any `multipart/alternative` message with
 * quoted-printable, base64, 7bit or 8bit text and HTML parts).
 *
 * @param raw - the whole message
 * @returns headers, the decoded text part and the decoded HTML part (empty string when a part is missing)
 * @throws Error when the message has no header/body separator or no multipart boundary
 */
export function parseMimeMessage(raw: string): ParsedMimeMessage {
  const split = raw.indexOf('\r\n\r\n');
  if (split < 0) throw new Error('not an RFC 5322 message: no blank line after the headers');
  const headers = parseHeaderBlock(raw.slice(0, split));
  const boundary = /boundary="?([^";]+)"?/i.exec(headers['content-type'] ?? '')?.[1];
  if (!boundary) throw new Error('not a multipart message: no boundary in Content-Type');
  const body = raw.slice(split + 4);
  const result: ParsedMimeMessage = { headers, text: '', html: '' };
  for (const chunk of body.split(`--${boundary}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const partSplit = chunk.indexOf('\r\n\r\n');
    if (partSplit < 0) continue;
    const partHeaders = parseHeaderBlock(chunk.slice(0, partSplit).replace(/^\r\n/, ''));
    const encoded = chunk.slice(partSplit + 4).replace(/\r\n$/, '');
    const cte = (partHeaders['content-transfer-encoding'] ?? '7bit').toLowerCase();
    const decoded =
      cte === 'quoted-printable'
        ? decodeQuotedPrintable(encoded)
        : cte === 'base64'
          ? Buffer.from(encoded, 'base64').toString('utf8').replace(/\r\n/g, '\n')
          : encoded.replace(/\r\n/g, '\n');
    const type = (partHeaders['content-type'] ?? '').toLowerCase();
    if (type.startsWith('text/plain')) result.text = decoded;
    else if (type.startsWith('text/html')) result.html = decoded;
  }
  return result;
}
