import { describe, expect, it } from 'vitest';
import * as AC from 'adaptivecards';
import {
  CARD_ACTION_SCHEMAS,
  CARD_VERBS,
  isCardVerb,
  maskEmail,
  parseCardAction,
  REGISTER_ANSWER_INPUT_IDS,
  REGISTER_QUESTION_INPUT_IDS,
  registerCardCheckCard,
  registerCodeCard,
  registerConfirmEmailCard,
  registerContactCard,
  registerDoneCard,
  registerEndedCard,
  registerProblemCard,
  registerQuestionsCard,
  type AdaptiveCard,
  type CardCheckState,
  type CardVerb,
} from './index';

const RUN_ID = '9b1d4f6e-2c3a-4e5b-8f70-1a2b3c4d5e6f';
const STEP = 'contact-1';
const ids = { runId: RUN_ID, step: STEP };

/** A small bank in the shape of the real one (ids q01..q20). */
const BANK = [
  { id: 'q01', text: 'What was the name of the street you lived on at age eight?' },
  { id: 'q02', text: 'What was the first concert you went to?' },
  { id: 'q05', text: 'What was the name of your first teacher?' },
  { id: 'q09', text: 'What was the make of your first bicycle?' },
  { id: 'q14', text: 'Which town did your grandparents live in?' },
];

const CHECK_STATES: CardCheckState[] = ['waiting', 'wrong_passcode', 'no_card', 'no_companion', 'companion_offline', 'card_error'];

/** Build every registration card, with `s` in every caller-supplied string. */
function allCards(s: string): Array<[string, AdaptiveCard]> {
  return [
    ['contact (directory)', registerContactCard({ ...ids, email: s, mobile: s, prefilled: 'directory', errors: { email: s, mobile: s } })],
    ['contact (empty)', registerContactCard({ ...ids, email: '', mobile: '', prefilled: 'none' })],
    ['contact (registered, domains)', registerContactCard({ ...ids, email: s, mobile: '', prefilled: 'registered', approvedDomains: [s, 'gov.uk'] })],
    ...CHECK_STATES.map((state): [string, AdaptiveCard] => [`cardCheck ${state}`, registerCardCheckCard({ ...ids, state, triesLeft: 2, workstation: s })]),
    ['cardCheck wrong_passcode 0', registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: 0 })],
    ['cardCheck wrong_passcode no count', registerCardCheckCard({ ...ids, state: 'wrong_passcode' })],
    ['questions', registerQuestionsCard({ ...ids, bank: [...BANK, { id: 'q20', text: s }], chosen: { q1: 'q05', q3: 'q14' }, error: s })],
    ['confirmEmail canChange', registerConfirmEmailCard({ ...ids, email: s, canChange: true, error: s, typedEmail: s })],
    ['confirmEmail fixed', registerConfirmEmailCard({ ...ids, email: s, canChange: false })],
    ['code canResend', registerCodeCard({ ...ids, maskedEmail: s, expiresAtText: s, minutes: 15, error: s, canResend: true })],
    ['code no resend', registerCodeCard({ ...ids, maskedEmail: s, expiresAtText: s, minutes: 15, canResend: false })],
    ['done ready', registerDoneCard({ email: s, mobile: s, questionsCount: 4, cardRegistered: true, selfUnlockReady: true, raContact: s })],
    ['done not ready', registerDoneCard({ email: s, mobile: null, questionsCount: 4, cardRegistered: true, selfUnlockReady: false, raContact: s })],
    ['ended', registerEndedCard({ title: s, message: s })],
    ['problem retry', registerProblemCard({ ...ids, title: s, message: s, canRetry: true })],
    ['problem unlock', registerProblemCard({ title: s, message: s, canRetry: false, offerUnlock: true })],
    ['problem bare', registerProblemCard({ title: s, message: s, canRetry: false })],
  ];
}

function parseWithSdk(json: AdaptiveCard) {
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  card.parse(json, context);
  const parseEvents: string[] = [];
  for (let i = 0; i < context.eventCount; i++) parseEvents.push(context.getEventAt(i).message);
  const validation = card.validateProperties();
  return { card, parseEvents, validationEvents: validation.validationEvents.map((e) => e.message) };
}

type Json = Record<string, unknown>;

function* walk(node: unknown): Generator<Json> {
  if (Array.isArray(node)) for (const n of node) yield* walk(n);
  else if (typeof node === 'object' && node !== null) {
    yield node as Json;
    for (const v of Object.values(node)) yield* walk(v);
  }
}

const actionsOf = (json: unknown) => [...walk(json)].filter((o) => typeof o['type'] === 'string' && (o['type'] as string).startsWith('Action.'));
const inputsOf = (json: unknown) => [...walk(json)].filter((o) => typeof o['type'] === 'string' && (o['type'] as string).startsWith('Input.'));
const runsOf = (json: unknown) => [...walk(json)].filter((o) => o['type'] === 'TextRun').map((o) => o['text'] as string);
/** The text of each RichTextBlock, runs joined. */
const linesOf = (json: unknown) =>
  [...walk(json)].filter((o) => o['type'] === 'RichTextBlock').map((b) => (b['inlines'] as Json[]).map((r) => r['text']).join(''));
const blocksOf = (json: unknown) => [...walk(json)].filter((o) => o['type'] === 'TextBlock').map((o) => o['text'] as string);

/** What a person would type or pick in each input, as Teams would send it (untrimmed). */
function typedValue(input: Json, index: number): string {
  if (input['type'] === 'Input.ChoiceSet') {
    const choices = input['choices'] as Array<{ value: string }>;
    return (input['value'] as string | undefined) ?? choices[index % choices.length]!.value;
  }
  if (typeof input['value'] === 'string') return input['value'];
  const id = input['id'] as string;
  if (id === 'email') return ' alex.wilber@nhs.net ';
  if (id === 'mobile') return '07700 900123';
  if (id === 'code') return ' 4071-8263 ';
  return `  sample answer for ${id}  `;
}

/** A click as Teams delivers it: the button's data with the card's non-empty inputs merged in (when associatedInputs is auto). */
function simulateInvoke(card: AdaptiveCard, action: Json, override: Record<string, string> = {}): { action: { type: unknown; verb: unknown; data: Json } } {
  const merged: Json = { ...(action['data'] as Json) };
  if (action['associatedInputs'] !== 'none') {
    inputsOf(card).forEach((input, i) => {
      const id = input['id'] as string;
      const value = override[id] ?? typedValue(input, i);
      if (value.length > 0) merged[id] = value;
    });
  }
  return { action: { type: action['type'], verb: action['verb'], data: merged } };
}

const buttons = (json: AdaptiveCard) => actionsOf(json).map((a) => [a['title'], a['verb'], a['associatedInputs']]);

describe('registration card builders', () => {
  const cases = allCards('Alex Wilber');

  it.each(cases)('%s parses with adaptivecards 3.0.6 with no parse or validation failures', (_name, json) => {
    const { parseEvents, validationEvents } = parseWithSdk(json);
    expect(parseEvents).toEqual([]);
    expect(validationEvents).toEqual([]);
  });

  it.each(cases)('%s declares schema 1.5 and keeps its actions and inputs through an SDK round trip', (_name, json) => {
    expect(json.version).toBe('1.5');
    const back = parseWithSdk(json).card.toJSON() as Json;
    expect(back['version']).toBe('1.5');
    expect(actionsOf(back).map((a) => a['verb'])).toEqual(actionsOf(json).map((a) => a['verb']));
    expect(inputsOf(back).map((i) => [i['type'], i['id']])).toEqual(inputsOf(json).map((i) => [i['type'], i['id']]));
  });

  it.each(cases.filter(([name]) => !name.startsWith('done')))('%s: every action is Action.Execute and a click parses with its verb schema', (_name, json) => {
    expect(actionsOf(json).length).toBeGreaterThan(0);
    for (const action of actionsOf(json)) {
      expect(action['type']).toBe('Action.Execute');
      expect(isCardVerb(action['verb'])).toBe(true);
      const verb = action['verb'] as CardVerb;
      const click = simulateInvoke(json, action);
      const direct = CARD_ACTION_SCHEMAS[verb].safeParse(click.action.data);
      expect(direct.success, direct.success ? '' : direct.error.message).toBe(true);
      const parsed = parseCardAction(click);
      expect(parsed.ok, parsed.ok ? '' : parsed.message).toBe(true);
      if (parsed.ok) expect(parsed.action.verb).toBe(verb);
      if (verb.startsWith('register.') && verb !== 'register.start') expect(action['data']).toEqual({ runId: RUN_ID, step: STEP });
    }
  });

  it.each(cases)('%s: input ids are unique and no input is a password field', (_name, json) => {
    const inputIds = inputsOf(json).map((i) => i['id']);
    expect(new Set(inputIds).size).toBe(inputIds.length);
    for (const i of inputsOf(json)) expect(i['style']).not.toBe('Password');
  });

  it.each(cases)('%s: no card asks for the passcode', (_name, json) => {
    for (const i of inputsOf(json)) expect(String(i['label'])).not.toMatch(/passcode|PIN/i);
  });
});

describe('values from people are shown literally', () => {
  const EVIL = '<b>Eve</b> [x](http://evil) **bold** {{DATE(2017-02-14T06:08:39Z, SHORT)}}';
  const SHOWN = EVIL.replace('{{', '{\u200b{');
  const literalPlaces = (o: Json): string[] => {
    if (o['type'] === 'TextRun') return [o['text'] as string];
    if (o['type'] === 'Input.Text') return [o['label'] as string, (o['value'] as string | undefined) ?? ''];
    if (o['type'] === 'Input.ChoiceSet') return (o['choices'] as Json[]).map((c) => c['title'] as string);
    return [];
  };
  const markdownPlaces = (o: Json): string[] => {
    if (o['type'] === 'TextBlock') return [o['text'] as string];
    if (o['type'] === 'FactSet') return (o['facts'] as Json[]).flatMap((f) => [f['title'] as string, f['value'] as string]);
    if (typeof o['type'] === 'string' && (o['type'] as string).startsWith('Action.')) return [o['title'] as string];
    return [];
  };

  it.each(allCards(EVIL).filter(([, json]) => JSON.stringify(json).includes('Eve')))(
    '%s shows the value only where the host renders it literally, and the SDK keeps it there',
    (_name, json) => {
      const { card } = parseWithSdk(json);
      for (const tree of [json, card.toJSON()]) {
        const objects = [...walk(tree)];
        const literals = objects.flatMap(literalPlaces);
        expect(literals.some((t) => t === EVIL || t === SHOWN || t.includes(SHOWN))).toBe(true);
        for (const text of objects.flatMap(markdownPlaces)) {
          expect(text).not.toContain('Eve');
          expect(text).not.toContain('](');
        }
        for (const runText of objects.filter((o) => o['type'] === 'TextRun').map((o) => o['text'] as string)) expect(runText).not.toContain('{{');
      }
    },
  );

  it('every card that takes a person value shows it', () => {
    const missing = allCards(EVIL)
      .filter(([name]) => !name.startsWith('cardCheck wrong_passcode') && !['contact (empty)', 'cardCheck no_card', 'cardCheck no_companion', 'cardCheck card_error'].includes(name))
      .filter(([, json]) => !JSON.stringify(json).includes('Eve'))
      .map(([name]) => name);
    expect(missing).toEqual([]);
  });
});

describe('registerContactCard', () => {
  const card = (over: Partial<Parameters<typeof registerContactCard>[0]> = {}) =>
    registerContactCard({ ...ids, email: 'alex.wilber@nhs.net', mobile: '07700 900123', prefilled: 'directory', ...over });

  it('has the email and mobile inputs, labelled and pre-filled with the given values', () => {
    expect(inputsOf(card()).map((i) => [i['id'], i['label'], i['style'], i['isRequired'], i['value'], i['maxLength']])).toEqual([
      ['email', 'Work email address', 'Email', true, 'alex.wilber@nhs.net', 254],
      ['mobile', 'Mobile number (UK)', 'Tel', false, '07700 900123', 32],
    ]);
  });

  it('leaves empty values out, so the host shows the placeholder', () => {
    expect(inputsOf(card({ email: '', mobile: '' })).map((i) => i['value'])).toEqual([undefined, undefined]);
  });

  it('keeps what was typed and shows each refusal right under its field', () => {
    const json = card({ email: 'alex@gmail.com', mobile: '12345', errors: { email: 'Use your work address.', mobile: 'This is not a UK mobile number.' } });
    const body = json.body.map((e) => (e.type === 'Input.Text' ? `input:${e.id}=${e.value}` : e.type === 'RichTextBlock' ? e.inlines.map((r) => r.text).join('') : e.type));
    const at = (s: string) => body.indexOf(s);
    expect(at('input:email=alex@gmail.com')).toBeGreaterThan(-1);
    expect(at('Use your work address.')).toBe(at('input:email=alex@gmail.com') + 1);
    expect(at('input:mobile=12345')).toBe(at('Use your work address.') + 1);
    expect(at('This is not a UK mobile number.')).toBe(at('input:mobile=12345') + 1);
  });

  it.each([
    ['directory', 'from your directory profile'],
    ['registered', 'you registered before'],
    ['none', 'Enter your work email address'],
  ] as const)('says where the values came from (%s)', (prefilled, text) => {
    expect(blocksOf(card({ prefilled })).some((t) => t.includes(text))).toBe(true);
  });

  it('explains what the details are for and names the approved domains when given', () => {
    const json = card({ approvedDomains: ['nhs.net', 'gov.uk', 'mod.uk'] });
    expect(blocksOf(json).some((t) => t.includes('registration code is emailed to this address'))).toBe(true);
    expect(linesOf(json)).toContain('Use your work email address: it must end in nhs.net, gov.uk, mod.uk (sub-domains are fine).');
  });

  it('"Continue" sends the inputs and "Cancel" does not; an emptied mobile arrives as an empty string', () => {
    const json = card();
    expect(buttons(json)).toEqual([
      ['Continue', 'register.contact', 'auto'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
    const parsed = parseCardAction(simulateInvoke(json, actionsOf(json)[0]!, { email: '  alex.wilber@nhs.net ', mobile: '' }));
    expect(parsed).toEqual({ ok: true, action: { verb: 'register.contact', data: { ...ids, email: 'alex.wilber@nhs.net', mobile: '' } } });
  });
});

describe('registerCardCheckCard', () => {
  const text = (json: AdaptiveCard) => [...blocksOf(json), ...linesOf(json)];

  it('always says where to type the passcode and never to type it in Teams', () => {
    for (const state of CHECK_STATES) {
      const t = text(registerCardCheckCard({ ...ids, state }));
      expect(t).toContain('Prove you hold a working card: open the Smartcard Assist companion on this computer and type your current passcode there.');
      expect(t).toContain('Never type your passcode in Teams.');
    }
  });

  it('wrong passcode: says how many tries are left and warns that the card locks at 0', () => {
    const t = text(registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: 2 }));
    expect(t).toContain('The passcode was not right. Your card has 2 tries left.');
    expect(t.some((s) => s.includes('When no tries are left, the card locks'))).toBe(true);
    expect(text(registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: 1 }))).toContain('The passcode was not right. Your card has 1 try left.');
    expect(text(registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: 0 }))).toContain('The passcode was not right, and your card is now locked.');
  });

  it('refuses a tries count that is not a whole number >= 0', () => {
    expect(() => registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: -1 })).toThrow(RangeError);
    expect(() => registerCardCheckCard({ ...ids, state: 'wrong_passcode', triesLeft: 1.5 })).toThrow(/whole number/);
  });

  it('no companion: explains how to pair', () => {
    const t = text(registerCardCheckCard({ ...ids, state: 'no_companion' }));
    expect(t.some((s) => s.includes('Send "pair K7QF-M2XD" here, with your own code'))).toBe(true);
    expect(t.some((s) => s.includes('not paired'))).toBe(true);
  });

  it('names the workstation when waiting or offline', () => {
    expect(linesOf(registerCardCheckCard({ ...ids, state: 'waiting', workstation: 'WS-0042' }))).toContain(
      'The Smartcard Assist companion on WS-0042 is waiting for your passcode.',
    );
    expect(linesOf(registerCardCheckCard({ ...ids, state: 'companion_offline', workstation: 'WS-0042' }))).toContain(
      'Your Smartcard Assist companion on WS-0042 is not connected.',
    );
  });

  it.each(CHECK_STATES)('%s: offers "Check again" and "Cancel"', (state) => {
    expect(buttons(registerCardCheckCard({ ...ids, state }))).toEqual([
      ['Check again', 'register.check_card', 'none'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
  });
});

describe('registerQuestionsCard', () => {
  const card = (over: Partial<Parameters<typeof registerQuestionsCard>[0]> = {}) => registerQuestionsCard({ ...ids, bank: BANK, ...over });

  it('has four required compact pickers q1..q4 whose choices are the bank, each followed by a plain answer input', () => {
    const inputs = inputsOf(card());
    expect(inputs.map((i) => [i['type'], i['id'], i['label'], i['isRequired']])).toEqual(
      REGISTER_QUESTION_INPUT_IDS.flatMap((q, n) => [
        ['Input.ChoiceSet', q, `Question ${n + 1}`, true],
        ['Input.Text', REGISTER_ANSWER_INPUT_IDS[n], `Answer ${n + 1}`, true],
      ]),
    );
    for (const picker of inputs.filter((i) => i['type'] === 'Input.ChoiceSet')) {
      expect(picker['style']).toBe('compact');
      expect(picker['choices']).toEqual(BANK.map((q) => ({ title: q.text, value: q.id })));
    }
    for (const answer of inputs.filter((i) => i['type'] === 'Input.Text')) {
      expect(answer['style']).toBeUndefined();
      expect(answer['maxLength']).toBe(200);
    }
  });

  it('says the answers are stored only as a one-way hash and never shown again', () => {
    expect(blocksOf(card()).some((t) => t.includes('stored only as a one-way hash') && t.includes('never shown again'))).toBe(true);
  });

  it('keeps the chosen questions when shown again, and drops an id not in the bank', () => {
    const pickers = inputsOf(card({ chosen: { q1: 'q09', q2: 'q01', q4: 'q77' } })).filter((i) => i['type'] === 'Input.ChoiceSet');
    expect(pickers.map((p) => p['value'])).toEqual(['q09', 'q01', undefined, undefined]);
  });

  it('never puts answers back on the card, even when a caller passes them', () => {
    const answersLike = { a1: 'Sekrit-Rex', a2: 'Sekrit-Leeds', a3: 'Sekrit-Dune', a4: 'Sekrit-Raleigh' };
    const sneaky = { ...ids, bank: BANK, chosen: { q1: 'q01', q2: 'q02', q3: 'q05', q4: 'q09', ...answersLike }, values: answersLike, ...answersLike };
    const json = registerQuestionsCard(sneaky as unknown as Parameters<typeof registerQuestionsCard>[0]);
    expect(JSON.stringify(json)).not.toContain('Sekrit');
    for (const answer of inputsOf(json).filter((i) => i['type'] === 'Input.Text')) expect(answer).not.toHaveProperty('value');
    const back = JSON.stringify(parseWithSdk(json).card.toJSON());
    expect(back).not.toContain('Sekrit');
  });

  it('shows the refusal reason', () => {
    expect(linesOf(card({ error: 'Choose 4 different questions.' }))).toContain('Choose 4 different questions.');
  });

  it('"Save my answers" sends the choices and answers, which parse trimmed', () => {
    const json = card({ chosen: { q1: 'q01', q2: 'q02', q3: 'q05', q4: 'q14' } });
    expect(buttons(json)).toEqual([
      ['Save my answers', 'register.questions', 'auto'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
    const parsed = parseCardAction(simulateInvoke(json, actionsOf(json)[0]!, { a1: ' Elm Road ', a2: 'Blur', a3: 'Mrs Khan', a4: ' Raleigh' }));
    expect(parsed).toEqual({
      ok: true,
      action: { verb: 'register.questions', data: { ...ids, q1: 'q01', q2: 'q02', q3: 'q05', q4: 'q14', a1: 'Elm Road', a2: 'Blur', a3: 'Mrs Khan', a4: 'Raleigh' } },
    });
  });

  it('refuses a bank that is too small, has a repeated id, or an id not like q07', () => {
    expect(() => card({ bank: BANK.slice(0, 3) })).toThrow(/at least 4 questions in the bank, got 3/);
    expect(() => card({ bank: [...BANK, { id: 'q01', text: 'Again?' }] })).toThrow(/q01 appears twice/);
    expect(() => card({ bank: [...BANK, { id: 'x1', text: 'Odd?' }] })).toThrow(/not like q07/);
  });
});

describe('registerConfirmEmailCard', () => {
  it('first registration: names the address and offers an optional different one', () => {
    const json = registerConfirmEmailCard({ ...ids, email: 'alex.wilber@nhs.net', canChange: true });
    expect(linesOf(json)).toContain('We will email a registration code to alex.wilber@nhs.net.');
    expect(inputsOf(json).map((i) => [i['id'], i['label'], i['isRequired'], i['value']])).toEqual([
      ['email', 'Send it to a different work address (optional)', false, undefined],
    ]);
    expect(buttons(json)).toEqual([
      ['Email me the code', 'register.send_code', 'auto'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
    const keep = parseCardAction(simulateInvoke(json, actionsOf(json)[0]!, { email: '' }));
    expect(keep).toEqual({ ok: true, action: { verb: 'register.send_code', data: ids } });
    const other = parseCardAction(simulateInvoke(json, actionsOf(json)[0]!, { email: ' a.wilber@nhs.net ' }));
    expect(other).toEqual({ ok: true, action: { verb: 'register.send_code', data: { ...ids, email: 'a.wilber@nhs.net' } } });
  });

  it('keeps a refused different address and shows why', () => {
    const json = registerConfirmEmailCard({ ...ids, email: 'alex.wilber@nhs.net', canChange: true, typedEmail: 'alex@gmail.com', error: 'Use a work address.' });
    expect(inputsOf(json)[0]?.['value']).toBe('alex@gmail.com');
    expect(linesOf(json)).toContain('Use a work address.');
  });

  it('re-registration: no input, and says the code goes to the address already registered', () => {
    const json = registerConfirmEmailCard({ ...ids, email: 'alex.wilber@nhs.net', canChange: false });
    expect(inputsOf(json)).toEqual([]);
    expect(blocksOf(json).some((t) => t.includes('the code goes to the address you registered before'))).toBe(true);
    expect(buttons(json)).toEqual([
      ['Email me the code', 'register.send_code', 'none'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
  });
});

describe('registerCodeCard', () => {
  const card = (canResend: boolean) =>
    registerCodeCard({ ...ids, maskedEmail: maskEmail('alex.wilber@nhs.net'), expiresAtText: '09:45', minutes: 15, canResend, error: 'That code is not right.' });

  it('names the masked address and expiry, shows the refusal and has the required code input', () => {
    const json = card(true);
    expect(linesOf(json)).toContain('We have emailed a registration code to a\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022@nhs.net. It works for 15 minutes (until 09:45).');
    expect(linesOf(json)).toContain('That code is not right.');
    expect(inputsOf(json).map((i) => [i['id'], i['label'], i['isRequired'], i['maxLength']])).toEqual([['code', 'Registration code', true, 20]]);
  });

  it('offers "Send a new code" only when a new code can be sent', () => {
    expect(buttons(card(true))).toEqual([
      ['Confirm', 'register.code', 'auto'],
      ['Send a new code', 'register.resend_code', 'none'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
    expect(buttons(card(false))).toEqual([
      ['Confirm', 'register.code', 'auto'],
      ['Cancel', 'register.cancel', 'none'],
    ]);
  });

  it('a typed code arrives trimmed', () => {
    const json = card(false);
    expect(parseCardAction(simulateInvoke(json, actionsOf(json)[0]!, { code: ' 4071 8263 ' }))).toEqual({
      ok: true,
      action: { verb: 'register.code', data: { ...ids, code: '4071 8263' } },
    });
  });
});

describe('registerDoneCard', () => {
  const card = (over: Partial<Parameters<typeof registerDoneCard>[0]> = {}) =>
    registerDoneCard({
      email: 'alex.wilber@nhs.net',
      mobile: '+447700900123',
      questionsCount: 4,
      cardRegistered: true,
      selfUnlockReady: true,
      raContact: 'the RA team on 0113 000 0000',
      ...over,
    });

  it('lists what was registered, without answers, and has no buttons', () => {
    const json = card();
    expect(linesOf(json)).toEqual(expect.arrayContaining(['Email: alex.wilber@nhs.net', 'Mobile: +447700900123']));
    expect(blocksOf(json).some((t) => t.startsWith('Security questions: 4.'))).toBe(true);
    expect(blocksOf(json).some((t) => t.startsWith('Smartcard:'))).toBe(true);
    expect(actionsOf(json)).toEqual([]);
    expect(JSON.stringify(json)).not.toContain('not yet enrolled');
  });

  it('says when no mobile was given', () => {
    expect(linesOf(card({ mobile: null }))).toContain('Mobile: none given');
  });

  it('never shows answers, even when a caller passes them', () => {
    const json = registerDoneCard({ email: 'a@nhs.net', mobile: null, questionsCount: 4, cardRegistered: true, selfUnlockReady: true, raContact: 'RA', answers: ['Sekrit-Rex'] } as never);
    expect(JSON.stringify(json)).not.toContain('Sekrit');
  });

  it('when the card has no enrolled PUK, says to contact RA until it is', () => {
    expect(linesOf(card({ selfUnlockReady: false }))).toContain(
      'Your card is not yet enrolled for self-unlock: until it is, contact the RA team on 0113 000 0000 to unlock it. We have let them know.',
    );
  });
});

describe('registerEndedCard and registerProblemCard', () => {
  it('ended card offers "Start again"', () => {
    const json = registerEndedCard({ title: 'Registration cancelled', message: 'Nothing was changed.' });
    expect(buttons(json)).toEqual([['Start again', 'register.start', 'none']]);
    expect(linesOf(json)).toEqual(['Registration cancelled', 'Nothing was changed.']);
  });

  it('problem card offers the buttons asked for', () => {
    const b = (over: Partial<Parameters<typeof registerProblemCard>[0]>) => buttons(registerProblemCard({ title: 'T', message: 'M', canRetry: false, ...over })).map((x) => x[1]);
    expect(b({ ...ids, canRetry: true })).toEqual(['register.check_card', 'register.cancel']);
    expect(b({ ...ids, offerUnlock: true })).toEqual(['unlock.start', 'register.cancel']);
    expect(b({ offerUnlock: true })).toEqual(['unlock.start']);
    expect(b({})).toEqual(['help.show']);
  });

  it('problem card refuses "Try again" without a run', () => {
    expect(() => registerProblemCard({ title: 'T', message: 'M', canRetry: true })).toThrow(/needs runId and step/);
  });
});

describe('parseCardAction: registration verbs', () => {
  const click = (verb: string, data: unknown) => parseCardAction({ action: { type: 'Action.Execute', verb, data } });
  const refusal = (verb: string, data: unknown) => {
    const r = click(verb, data);
    expect(r.ok).toBe(false);
    return r.ok ? '' : r.message;
  };

  it('knows every registration verb', () => {
    for (const verb of ['register.contact', 'register.check_card', 'register.questions', 'register.send_code', 'register.code', 'register.resend_code', 'register.cancel']) {
      expect(isCardVerb(verb)).toBe(true);
    }
    expect(Object.values(CARD_VERBS)).toContain('register.resend_code');
  });

  it.each(['register.check_card', 'register.resend_code', 'register.cancel'])('%s needs only runId and step', (verb) => {
    expect(click(verb, { ...ids, extra: 'dropped' })).toEqual({ ok: true, action: { verb, data: ids } });
    expect(refusal(verb, { step: STEP })).toBe(`Card action "${verb}" refused: runId is missing.`);
  });

  it('register.contact: email required (1..254), mobile optional (0..32), messages name the field and not the value', () => {
    expect(refusal('register.contact', { ...ids, mobile: '07700 900123' })).toBe('Card action "register.contact" refused: email is missing.');
    expect(refusal('register.contact', { ...ids, email: '   ', mobile: '' })).toBe('Card action "register.contact" refused: email is empty.');
    const m = refusal('register.contact', { ...ids, email: `${'s'.repeat(250)}@nhs.net`, mobile: '0'.repeat(33) });
    expect(m).toBe('Card action "register.contact" refused: email is longer than 254 characters; mobile is longer than 32 characters.');
    expect(m).not.toContain('sss');
    expect(refusal('register.contact', { ...ids, email: 'a@nhs.net', mobile: 7700 })).toBe('Card action "register.contact" refused: mobile must be text.');
  });

  it('register.questions: question ids must look like q07 and answers 1..200, without echoing anything', () => {
    const good = { ...ids, q1: 'q01', q2: 'q02', q3: 'q05', q4: 'q14', a1: 'a', a2: 'b', a3: 'c', a4: 'x'.repeat(200) };
    expect(click('register.questions', good).ok).toBe(true);
    const m = refusal('register.questions', { ...good, q2: 'What-Sekrit', q4: undefined, a1: '  ', a3: 'Sekrit-' + 'y'.repeat(200) });
    expect(m).toBe('Card action "register.questions" refused: q2 must be a question id such as q07; q4 is missing; a1 is empty; a3 is longer than 200 characters.');
    expect(m).not.toContain('Sekrit');
    expect(refusal('register.questions', { ...good, a4: undefined })).toBe('Card action "register.questions" refused: a4 is missing.');
  });

  it('register.send_code: email optional, empty kept as empty (meaning "keep"), bounded to 254', () => {
    expect(click('register.send_code', ids)).toEqual({ ok: true, action: { verb: 'register.send_code', data: ids } });
    expect(click('register.send_code', { ...ids, email: '  ' })).toEqual({ ok: true, action: { verb: 'register.send_code', data: { ...ids, email: '' } } });
    expect(refusal('register.send_code', { ...ids, email: 'e'.repeat(255) })).toBe('Card action "register.send_code" refused: email is longer than 254 characters.');
  });

  it('register.code: 1..20 characters, never echoed', () => {
    expect(refusal('register.code', { ...ids, code: ' ' })).toBe('Card action "register.code" refused: code is empty.');
    const m = refusal('register.code', { ...ids, code: '12345678901234567890123' });
    expect(m).toBe('Card action "register.code" refused: code is longer than 20 characters.');
    expect(m).not.toContain('1234');
    expect(refusal('register.code', ids)).toBe('Card action "register.code" refused: code is missing.');
  });

  it('an unknown registration verb is refused and the known ones are listed', () => {
    const m = refusal('register.skip_checks', ids);
    expect(m).toContain('Unknown card action "register.skip_checks"');
    expect(m).toContain('register.questions');
  });
});
