import * as AC from 'adaptivecards';
import { describe, expect, it } from 'vitest';
import type { AdaptiveCard } from './adaptive-card.types';
import { parseCardAction } from './card-actions';
import { helpdeskCaseCard, helpdeskFormCard, helpdeskRefusedCard } from './helpdesk.card';

type Json = Record<string, unknown>;

function* walk(node: unknown): Generator<Json> {
  if (Array.isArray(node)) for (const n of node) yield* walk(n);
  else if (typeof node === 'object' && node !== null) {
    yield node as Json;
    for (const v of Object.values(node)) yield* walk(v);
  }
}

const texts = (card: unknown): string =>
  [...walk(card)]
    .flatMap((o) => [o['text'], o['label'], o['title'], o['value']])
    .filter((t): t is string => typeof t === 'string')
    .join('\n');

function sdkEvents(json: AdaptiveCard): string[] {
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  card.parse(json, context);
  const out: string[] = [];
  for (let i = 0; i < context.eventCount; i++) out.push(context.getEventAt(i).message);
  return [...out, ...card.validateProperties().validationEvents.map((e) => e.message)];
}

describe('helpdesk cards', () => {
  it.each([
    ['form', helpdeskFormCard({ email: '', reason: '', error: null })],
    ['form with error', helpdeskFormCard({ email: 'x@nhs.net', reason: 'r', error: 'No one is registered' })],
    ['case', helpdeskCaseCard({ caseRef: 'RA-7K2Q9D', person: { displayName: 'Sam Jones', email: 'sam@nhs.net' }, created: true, personTold: false })],
    ['refused', helpdeskRefusedCard()],
  ])('%s parses with adaptivecards 3.0.6 with no events', (_n, card) => {
    expect(sdkEvents(card)).toEqual([]);
  });

  it('the form asks for an email and a reason and its click (inputs merged) parses as helpdesk.open_case', () => {
    const card = helpdeskFormCard({ email: '', reason: '', error: null });
    const inputs = [...walk(card)].filter((o) => o['type'] === 'Input.Text');
    expect(inputs.map((i) => [i['id'], i['isRequired'], i['maxLength']])).toEqual([
      ['email', true, 254],
      ['reason', true, 500],
    ]);
    const action = card.actions![0]!;
    expect([action.verb, action.associatedInputs]).toEqual(['helpdesk.open_case', 'auto']);
    const parsed = parseCardAction({ action: { type: 'Action.Execute', verb: action.verb, data: { ...action.data, email: ' sam@nhs.net ', reason: ' Locked out ' } } });
    expect(parsed).toEqual({ ok: true, action: { verb: 'helpdesk.open_case', data: { email: 'sam@nhs.net', reason: 'Locked out' } } });
    // An empty input is left out of data by hosts: the desk answers it, the parser lets it through as ''.
    expect(parseCardAction({ action: { type: 'Action.Execute', verb: 'helpdesk.open_case', data: {} } })).toEqual({ ok: true, action: { verb: 'helpdesk.open_case', data: { email: '', reason: '' } } });
  });

  it('a forged click with a reason over 500 characters or a non-text email is refused naming the field', () => {
    const long = parseCardAction({ action: { type: 'Action.Execute', verb: 'helpdesk.open_case', data: { email: 'a@nhs.net', reason: 'x'.repeat(501) } } });
    expect(long).toEqual({ ok: false, reason: 'invalid_data', message: 'Card action "helpdesk.open_case" refused: reason is longer than 500 characters.' });
    const notText = parseCardAction({ action: { type: 'Action.Execute', verb: 'helpdesk.open_case', data: { email: ['a@nhs.net'], reason: 'r' } } });
    expect(notText.ok ? '' : notText.message).toBe('Card action "helpdesk.open_case" refused: email must be text.');
  });

  it('the form after a refusal keeps what was typed and says what was wrong, literally', () => {
    const card = helpdeskFormCard({ email: 'nobody@nhs.net', reason: 'Locked {{DATE(2026-01-01T00:00:00Z)}}', error: 'No one is registered with Smartcard Assist as nobody@nhs.net.' });
    const email = [...walk(card)].find((o) => o['id'] === 'email');
    const reason = [...walk(card)].find((o) => o['id'] === 'reason');
    expect(email?.['value']).toBe('nobody@nhs.net');
    expect(reason?.['value']).toBe('Locked {{DATE(2026-01-01T00:00:00Z)}}');
    const error = [...walk(card)].find((o) => o['type'] === 'TextRun' && String(o['text']).startsWith('No one is registered'));
    expect(error?.['color']).toBe('Attention');
  });

  it('the case card shows the reference and whether the person was told', () => {
    const person = { displayName: 'Sam Jones', email: 'sam@nhs.net' };
    const told = texts(helpdeskCaseCard({ caseRef: 'RA-7K2Q9D', person, created: true, personTold: true }));
    expect(told).toContain('RA-7K2Q9D');
    expect(told).toContain('RA case opened');
    expect(told).toContain('the person has been told in their Teams chat');
    expect(texts(helpdeskCaseCard({ caseRef: 'RA-7K2Q9D', person, created: true, personTold: false }))).toContain('give them the reference');
    const existing = texts(helpdeskCaseCard({ caseRef: 'RA-7K2Q9D', person, created: false, personTold: false }));
    expect(existing).toContain('This person already has an RA case');
    expect(existing).toContain('Nothing new was opened');
    expect(helpdeskCaseCard({ caseRef: 'RA-7K2Q9D', person, created: true, personTold: true }).actions?.map((a) => a.verb)).toEqual(['helpdesk.form']);
    expect(helpdeskRefusedCard().actions).toBeUndefined();
  });
});
