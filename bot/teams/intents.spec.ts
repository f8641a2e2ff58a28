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
    ['report', { kind: 'report', from: null, to: null }],
    ['<at>Smartcard Assist</at> Report', { kind: 'report', from: null, to: null }],
    ['usage report 2026-12-01 to 2026-12-06', { kind: 'report', from: '2026-12-01', to: '2026-12-06' }],
    ['report 2026-12-01', { kind: 'report', from: '2026-12-01', to: '2026-12-01' }],
    ['report on my card', { kind: 'unknown' }],
    ['open case for Sam.Jones@nhs.net: Locked card, called the desk', { kind: 'open_case_for', email: 'Sam.Jones@nhs.net', reason: 'Locked card, called the desk' }],
    ['Open a case for <a href="mailto:sam@nhs.net">sam@nhs.net</a> - unlock failed', { kind: 'open_case_for', email: 'sam@nhs.net', reason: 'unlock failed' }],
    ['open case for sam@nhs.net', { kind: 'open_case_for', email: 'sam@nhs.net', reason: '' }],
    ['open case for sam.jones: locked', { kind: 'open_case_for', email: 'sam.jones', reason: 'locked' }],
    ['open case', { kind: 'open_case_form' }],
    ['<at>Smartcard Assist</at> Open an RA case', { kind: 'open_case_form' }],
    ['open a case for someone', { kind: 'open_case_form' }],
    ['open case for', { kind: 'open_case_form' }],
    ['extra', { kind: 'unknown' }],
    ['what is the weather', { kind: 'unknown' }],
    ['', { kind: 'unknown' }],
  ])('%j -> %j', (text, expected) => {
    expect(parseIntent(text)).toEqual(expected);
  });
});
