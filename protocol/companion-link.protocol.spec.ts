import { describe, expect, it } from 'vitest';
import { CompanionToBotSchema, parseFrame } from './companion-link.protocol';

const CARD = '0123456789abcdef0123456789abcdef';
const present = { present: true, reader: 'Virtual PCD 00 00', cardId: CARD, pinRetries: 0 };
const frame = (status: unknown): string => JSON.stringify({ type: 'card.event', status });

describe('CardStatus certificates (issue #14, additive)', () => {
  it('accepts a status with the 9A and 9E notAfter dates and keeps them', () => {
    const certificates = [
      { slot: '9A', notAfter: '2027-12-06T05:00:00.000Z' },
      { slot: '9E', notAfter: '2025-01-31T23:59:59Z' },
    ];
    const parsed = parseFrame(frame({ ...present, certificates }), CompanionToBotSchema);
    expect(parsed).toEqual({ ok: true, value: { type: 'card.event', status: { ...present, certificates } } });
  });

  it('accepts a status without the field (a companion from before issue #14) and an empty list (read, none usable)', () => {
    expect(parseFrame(frame(present), CompanionToBotSchema)).toEqual({ ok: true, value: { type: 'card.event', status: present } });
    expect(parseFrame(frame({ ...present, certificates: [] }), CompanionToBotSchema)).toEqual({ ok: true, value: { type: 'card.event', status: { ...present, certificates: [] } } });
  });

  it.each([
    ['another slot', [{ slot: '9C', notAfter: '2027-01-01T00:00:00Z' }], /status\.certificates\.0\.slot/],
    ['a date that is not ISO 8601', [{ slot: '9A', notAfter: 'Dec  6 05:00:00 2027 GMT' }], /status\.certificates\.0\.notAfter/],
    ['the same slot twice', [{ slot: '9A', notAfter: '2027-01-01T00:00:00Z' }, { slot: '9A', notAfter: '2028-01-01T00:00:00Z' }], /slot appears twice/],
    ['more than two', ['9A', '9E', '9A'].map((slot) => ({ slot, notAfter: '2027-01-01T00:00:00Z' })), /status\.certificates/],
  ])('refuses %s, naming the field', (_name, certificates, message) => {
    const parsed = parseFrame(frame({ ...present, certificates }), CompanionToBotSchema);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.error).toMatch(message);
  });
});
