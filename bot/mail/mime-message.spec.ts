import { describe, expect, it } from 'vitest';
import { composeMimeMessage, decodeQuotedPrintable, encodeHeaderText, encodeQuotedPrintable, formatRfc5322Date, parseMimeMessage } from './mime-message';

describe('quoted-printable (RFC 2045 6.7)', () => {
  it('round-trips UTF-8, equals signs, trailing spaces and long lines, with no line over 76 characters', () => {
    const text = `Résumé = ok \nline with trailing tab\t\n${'x'.repeat(200)}=${'é'.repeat(50)}\n\nend`;
    const encoded = encodeQuotedPrintable(text);
    for (const line of encoded.split('\r\n')) expect(line.length).toBeLessThanOrEqual(76);
    expect(encoded).not.toMatch(/[^\x20-\x7e\r\n]/);
    expect(encoded).toContain('=3D');
    expect(encoded.split('\r\n')[0]).toBe('R=C3=A9sum=C3=A9 =3D ok=20');
    expect(decodeQuotedPrintable(encoded)).toBe(text);
  });
});

describe('headers', () => {
  it('formats the date as RFC 5322 with a numeric zone', () => {
    expect(formatRfc5322Date(new Date('2026-07-03T08:45:09Z'))).toBe('Fri, 03 Jul 2026 08:45:09 +0000');
  });

  it('encodes a non-ASCII subject as RFC 2047 words of at most 75 characters', () => {
    const encoded = encodeHeaderText('Déverrouillage de votre carte à puce — code à usage unique, valable quinze minutes');
    for (const word of encoded.split('\r\n ')) expect(word.length).toBeLessThanOrEqual(75);
    expect(encoded).toMatch(/^=\?UTF-8\?B\?/);
  });
});

describe('compose and parse', () => {
  it('writes a multipart/alternative message that parses back to the same parts', () => {
    const raw = composeMimeMessage({
      from: { name: 'Smartcard Assist', address: 'no-reply@example.nhs.uk' },
      to: 'alex.wilber@nhs.net',
      subject: 'Café — your code',
      date: new Date('2026-07-03T08:45:00Z'),
      messageId: '7d0c4e8a-1b2f-4c3d-9e8f-0a1b2c3d4e5f@example.nhs.uk',
      text: 'Hello,\n\n12345678\n',
      html: '<p>Hello,</p>\n<p>12345678</p>\n',
      headers: { 'X-Smartcard-Assist-Kind': 'unlock_code' },
    });
    expect(raw).not.toMatch(/[^\r]\n/);
    const headerBlock = raw.slice(0, raw.indexOf('\r\n\r\n'));
    expect(headerBlock).toContain('From: "Smartcard Assist" <no-reply@example.nhs.uk>');
    expect(headerBlock).toContain('To: alex.wilber@nhs.net');
    expect(headerBlock).toContain('Date: Fri, 03 Jul 2026 08:45:00 +0000');
    expect(headerBlock).toContain('Message-ID: <7d0c4e8a-1b2f-4c3d-9e8f-0a1b2c3d4e5f@example.nhs.uk>');
    expect(headerBlock).toContain('MIME-Version: 1.0');
    expect(headerBlock).toMatch(/Content-Type: multipart\/alternative; boundary="=_sca_[A-Za-z0-9]+"/);
    const parsed = parseMimeMessage(raw);
    expect(parsed.headers['subject']).toBe('Café — your code');
    expect(parsed.headers['x-smartcard-assist-kind']).toBe('unlock_code');
    expect(parsed.text).toBe('Hello,\n\n12345678\n');
    expect(parsed.html).toBe('<p>Hello,</p>\n<p>12345678</p>\n');
    expect(raw.indexOf('Content-Type: text/plain')).toBeLessThan(raw.indexOf('Content-Type: text/html'));
  });

  it('refuses something that is not a multipart message', () => {
    expect(() => parseMimeMessage('no headers here')).toThrow(/no blank line/);
    expect(() => parseMimeMessage('Subject: x\r\n\r\nbody')).toThrow(/no boundary/);
  });
});
