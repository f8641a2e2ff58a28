import { describe, expect, it } from 'vitest';
import { maskMobile } from './mask-mobile';

describe('maskMobile (issue #14)', () => {
  it.each(['+447700900123', '+44 7700 900123', '07700 900123', '0044 7700 900123', '+44 (0)7700-900.123'])('shows only 07 and the last 3 digits of %s', (n) => {
    expect(maskMobile(n)).toBe('07\u2022\u2022\u2022 \u2022\u2022\u2022123');
  });

  it.each(['', '+33612345678', '02079460000', '0770090012', 'not a number'])('masks %o fully (not a UK mobile)', (n) => {
    expect(maskMobile(n)).toBe('\u2022\u2022\u2022\u2022\u2022');
  });
});
