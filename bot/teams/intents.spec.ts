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
    ['what is the weather', { kind: 'unknown' }],
    ['', { kind: 'unknown' }],
  ])('%j -> %j', (text, expected) => {
    expect(parseIntent(text)).toEqual(expected);
  });
});
