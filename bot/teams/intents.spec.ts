import { describe, expect, it } from 'vitest';
import { parseIntent } from './intents';

describe('parseIntent', () => {
  it.each([
    ['unlock', { kind: 'unlock' }],
    ['Unlock my card please', { kind: 'unlock' }],
    ['my card is locked', { kind: 'unlock' }],
    ['My smartcard is blocked', { kind: 'unlock' }],
    ['<at>Smartcard Assist</at> unlock', { kind: 'unlock' }],
    ['pair K7QF-M2XD', { kind: 'pair', code: 'k7qf-m2xd' }],
    ['pair code k7qf m2xd', { kind: 'pair', code: 'k7qf m2xd' }],
    ['pair', { kind: 'pair_help' }],
    ['help', { kind: 'help' }],
    ['cancel', { kind: 'cancel' }],
    ['register', { kind: 'register' }],
    ['hello', { kind: 'greeting' }],
    ['talk to RA', { kind: 'talk_to_ra' }],
    ['Can I speak to the Registration Authority?', { kind: 'talk_to_ra' }],
    ['<at>Smartcard Assist</at> talk to someone', { kind: 'talk_to_ra' }],
    ['RA', { kind: 'talk_to_ra' }],
    ['i need RA', { kind: 'talk_to_ra' }],
    ['my card is locked, talk to RA', { kind: 'talk_to_ra' }],
    ['extra', { kind: 'unknown' }],
    ['what is the weather', { kind: 'unknown' }],
    ['', { kind: 'unknown' }],
  ])('%j -> %j', (text, expected) => {
    expect(parseIntent(text)).toEqual(expected);
  });
});
