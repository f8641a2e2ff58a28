import { describe, expect, it } from 'vitest';
import { clockTime } from './clock-time';

describe('clockTime: the one way a time is written for a person (24-hour HH:mm and the zone)', () => {
  it('winter in Europe/London is GMT, summer is BST (the zone a person compares with their clock)', () => {
    expect(clockTime(new Date('2026-01-15T19:10:00Z'), 'Europe/London')).toBe('19:10 GMT');
    expect(clockTime(new Date('2026-07-03T18:10:00Z'), 'Europe/London')).toBe('19:10 BST');
  });

  it('changes zone at the clock change (last Sunday of March, 01:00 UTC)', () => {
    expect(clockTime(new Date('2026-03-29T00:59:00Z'), 'Europe/London')).toBe('00:59 GMT');
    expect(clockTime(new Date('2026-03-29T01:00:00Z'), 'Europe/London')).toBe('02:00 BST');
    expect(clockTime(new Date('2026-10-25T00:59:00Z'), 'Europe/London')).toBe('01:59 BST');
    expect(clockTime(new Date('2026-10-25T01:00:00Z'), 'Europe/London')).toBe('01:00 GMT');
  });

  it('uses the given zone, not the machine zone; other zones get an offset name', () => {
    expect(clockTime(new Date('2026-01-15T19:10:00Z'), 'UTC')).toBe('19:10 UTC');
    expect(clockTime(new Date('2026-01-15T19:10:00Z'), 'Europe/Paris')).toBe('20:10 CET');
    expect(clockTime(new Date('2026-01-15T19:10:00Z'), 'America/New_York')).toBe('14:10 GMT-5');
  });

  it('takes an ISO string as well as a Date; midnight is 00:00 (never 24:00), no AM/PM', () => {
    expect(clockTime('2026-01-15T00:05:00Z', 'Europe/London')).toBe('00:05 GMT');
    expect(clockTime('2026-01-15T12:00:00.000Z', 'Europe/London')).toBe('12:00 GMT');
    expect(clockTime('2026-01-15T23:59:00Z', 'Europe/London')).not.toMatch(/AM|PM/i);
  });

  it('without a zone, uses this computer\'s zone (the companion on the person\'s workstation)', () => {
    const at = new Date('2026-01-15T19:10:00Z');
    expect(clockTime(at)).toBe(clockTime(at, Intl.DateTimeFormat().resolvedOptions().timeZone));
    expect(clockTime(at)).toMatch(/^\d\d:\d\d \S+$/);
  });

  it('refuses an invalid date or an unknown zone (RangeError)', () => {
    expect(() => clockTime(new Date('nonsense'), 'Europe/London')).toThrow(RangeError);
    expect(() => clockTime('2026-13-45', 'Europe/London')).toThrow(RangeError);
    expect(() => clockTime(new Date(), 'Mars/Olympus_Mons')).toThrow(RangeError);
  });
});
