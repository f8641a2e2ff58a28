import { describe, expect, it } from 'vitest';
import * as AC from 'adaptivecards';
import {
  ANSWER_INPUT_IDS,
  CARD_ACTION_SCHEMAS,
  CARD_VERBS,
  helpCard,
  isCardVerb,
  maskEmail,
  pairHelpCard,
  pairingResultCard,
  parseCardAction,
  registerComingSoonCard,
  unlockCheckingCard,
  unlockCodeSentCard,
  unlockDoneCard,
  unlockEndedCard,
  unlockLockedOutCard,
  unlockProblemCard,
  unlockQuestionsCard,
  unlockWorkingCard,
  welcomeCard,
  type AdaptiveCard,
  type CardVerb,
} from './index';

const RUN_ID = '3f2b8c1e-7d4a-4b6e-9a51-0c8d2e4f6a71';
const STEP = 'questions-1';
const QUESTIONS = [
  { id: 'q01', text: 'What was the name of your first pet?' },
  { id: 'q07', text: 'In which town was your first school?' },
  { id: 'q12', text: 'What is your favourite book?' },
];

/** Build every card, with `s` in every caller-supplied string. */
function allCards(s: string): Array<[string, AdaptiveCard]> {
  return [
    ['welcome', welcomeCard({ displayName: s })],
    ['help', helpCard()],
    ['registerComingSoon', registerComingSoonCard()],
    ['pairHelp (not connected)', pairHelpCard({ companionConnected: false })],
    ['pairHelp (connected)', pairHelpCard({ companionConnected: true, workstation: s })],
    ['pairingResult ok', pairingResultCard({ ok: true, workstation: s })],
    ['pairingResult failed', pairingResultCard({ ok: false, message: s })],
    ['unlockChecking', unlockCheckingCard({ runId: RUN_ID, step: STEP, message: s })],
    ['unlockProblem retry', unlockProblemCard({ runId: RUN_ID, step: STEP, title: s, message: s, canRetry: true })],
    ['unlockProblem no retry', unlockProblemCard({ runId: RUN_ID, step: STEP, title: s, message: s, canRetry: false })],
    [
      'unlockQuestions',
      unlockQuestionsCard({ runId: RUN_ID, step: STEP, questions: QUESTIONS, attemptsLeft: 2, error: s, values: { a1: s, a2: s } }),
    ],
    ['unlockCodeSent', unlockCodeSentCard({ runId: RUN_ID, step: STEP, maskedEmail: s, expiresAtText: s, minutes: 15 })],
    ['unlockWorking', unlockWorkingCard({ runId: RUN_ID, step: STEP, message: s })],
    ['unlockDone text', unlockDoneCard({ at: s, workstation: s })],
    ['unlockProblem information', unlockProblemCard({ runId: RUN_ID, step: STEP, title: s, message: s, canRetry: true, tone: 'information' })],
    ['unlockLockedOut', unlockLockedOutCard({ caseRef: s })],
    ['unlockEnded', unlockEndedCard({ title: s, message: s })],
  ];
}

/** Parse with the Adaptive Cards SDK; return the SDK's card, parse events and validation events. */
function parseWithSdk(json: AdaptiveCard) {
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext();
  card.parse(json, context);
  const parseEvents: string[] = [];
  for (let i = 0; i < context.eventCount; i++) parseEvents.push(context.getEventAt(i).message);
  const validation = card.validateProperties();
  return { card, parseEvents, validationEvents: validation.validationEvents.map((e) => e.message), allIds: validation.allIds };
}

type Json = Record<string, unknown>;

/** Every object in the JSON tree, depth first. */
function* walk(node: unknown): Generator<Json> {
  if (Array.isArray(node)) for (const n of node) yield* walk(n);
  else if (typeof node === 'object' && node !== null) {
    yield node as Json;
    for (const v of Object.values(node)) yield* walk(v);
  }
}

function actionsOf(json: unknown): Json[] {
  return [...walk(json)].filter((o) => typeof o['type'] === 'string' && (o['type'] as string).startsWith('Action.'));
}

function inputsOf(json: unknown): Json[] {
  return [...walk(json)].filter((o) => typeof o['type'] === 'string' && (o['type'] as string).startsWith('Input.'));
}

/** What Teams sends for a click: the button's data with the card's inputs merged in (when associatedInputs is auto). */
function simulateInvoke(card: AdaptiveCard, action: Json): unknown {
  const merged: Json = { ...(action['data'] as Json) };
  if (action['associatedInputs'] !== 'none') {
    for (const input of inputsOf(card)) merged[input['id'] as string] = `  sample answer for ${String(input['id'])}  `;
  }
  return { action: { type: action['type'], verb: action['verb'], data: merged } };
}

describe('card builders', () => {
  const cases = allCards('Alex Wilber');

  it.each(cases)('%s parses with adaptivecards 3.0.6 with no parse or validation failures', (_name, json) => {
    const { parseEvents, validationEvents } = parseWithSdk(json);
    expect(parseEvents).toEqual([]);
    expect(validationEvents).toEqual([]);
  });

  it.each(cases)('%s declares schema 1.5 and survives an SDK round trip unchanged in shape', (_name, json) => {
    expect(json.version).toBe('1.5');
    expect(json.type).toBe('AdaptiveCard');
    const { card } = parseWithSdk(json);
    const back = card.toJSON() as Json;
    expect(back['version']).toBe('1.5');
    expect(actionsOf(back).length).toBe(actionsOf(json).length);
    expect(inputsOf(back).map((i) => i['id'])).toEqual(inputsOf(json).map((i) => i['id']));
  });

  it.each(cases)('%s: every action is Action.Execute and a click parses with its verb schema', (_name, json) => {
    for (const action of actionsOf(json)) {
      expect(action['type']).toBe('Action.Execute');
      expect(isCardVerb(action['verb'])).toBe(true);
      const verb = action['verb'] as CardVerb;
      expect(CARD_ACTION_SCHEMAS[verb].safeParse((simulateInvoke(json, action) as { action: { data: unknown } }).action.data).success).toBe(true);
      const parsed = parseCardAction(simulateInvoke(json, action));
      expect(parsed.ok, parsed.ok ? '' : parsed.message).toBe(true);
      if (parsed.ok) expect(parsed.action.verb).toBe(verb);
    }
  });

  it.each(cases)('%s: input ids are unique', (_name, json) => {
    const ids = inputsOf(json).map((i) => i['id']);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('welcome card offers the four starting points', () => {
    const json = welcomeCard({ displayName: 'Alex Wilber' });
    expect(actionsOf(json).map((a) => [a['title'], a['verb']])).toEqual([
      ['Unlock my smartcard', 'unlock.start'],
      ['Register for self-service', 'register.start'],
      ['Pair this computer', 'pair.help'],
      ['Help', 'help.show'],
    ]);
  });

  it('help card lists every typed command', () => {
    const facts = [...walk(helpCard())].filter((o) => typeof o['title'] === 'string' && typeof o['value'] === 'string').map((f) => f['title']);
    expect(facts).toEqual(['unlock', 'register', 'pair CODE', 'help', 'cancel']);
    expect(JSON.stringify(helpCard())).toContain('my card is locked');
  });
});

describe('values from people are shown literally', () => {
  const EVIL = '<b>Eve</b> [x](http://evil) **bold** <script>alert(1)</script>';
  /** Where the host renders text literally: TextRun (no markdown, innerText) and input labels/values. */
  const literalPlaces = (o: Json): string[] => {
    if (o['type'] === 'TextRun') return [o['text'] as string];
    if (o['type'] === 'Input.Text') return [o['label'] as string, (o['value'] as string | undefined) ?? ''];
    return [];
  };
  /** Where the host applies markdown: TextBlock text, FactSet titles/values, button titles. */
  const markdownPlaces = (o: Json): string[] => {
    if (o['type'] === 'TextBlock') return [o['text'] as string];
    if (o['type'] === 'FactSet') return (o['facts'] as Json[]).flatMap((f) => [f['title'] as string, f['value'] as string]);
    if (typeof o['type'] === 'string' && (o['type'] as string).startsWith('Action.')) return [o['title'] as string];
    return [];
  };

  it.each(allCards(EVIL).filter(([, json]) => JSON.stringify(json).includes('Eve')))(
    '%s shows the value only in literal TextRuns, and the SDK keeps it there',
    (_name, json) => {
      const { card } = parseWithSdk(json);
      for (const tree of [json, card.toJSON()]) {
        const objects = [...walk(tree)];
        expect(objects.flatMap(literalPlaces)).toContain(EVIL);
        for (const text of objects.flatMap(markdownPlaces)) {
          expect(text).not.toContain('Eve');
          expect(text).not.toContain('](');
          expect(text).not.toContain('<b>');
        }
      }
    },
  );

  it('welcome card greets a display name with HTML and a markdown link exactly as typed', () => {
    const runs = [...walk(welcomeCard({ displayName: '<b>Alex</b> [x](http://evil)' }))].filter((o) => o['type'] === 'TextRun').map((o) => o['text']);
    expect(runs).toContain('<b>Alex</b> [x](http://evil)');
  });

  it('date functions in a value from a person are not expanded by the host', () => {
    const json = welcomeCard({ displayName: 'Eve {{DATE(2017-02-14T06:08:39Z, SHORT)}}' });
    const runs = [...walk(json)].filter((o) => o['type'] === 'TextRun').map((o) => o['text'] as string);
    const greeting = runs.find((t) => t.startsWith('Eve'));
    expect(greeting).toBeDefined();
    expect(greeting).not.toContain('{{');
    expect(greeting!.replace(/\u200b/g, '')).toBe('Eve {{DATE(2017-02-14T06:08:39Z, SHORT)}}');
  });
});

describe('unlock cards', () => {
  it('questions card: three required labelled inputs a1..a3, attempts left, error, check sends inputs and cancel does not', () => {
    const json = unlockQuestionsCard({ runId: RUN_ID, step: STEP, questions: QUESTIONS, attemptsLeft: 2, error: 'One or more answers did not match.' });
    const inputs = inputsOf(json);
    expect(inputs.map((i) => [i['id'], i['label'], i['isRequired'], typeof i['errorMessage']])).toEqual(
      QUESTIONS.map((q, n) => [ANSWER_INPUT_IDS[n], q.text, true, 'string']),
    );
    const text = JSON.stringify(json);
    expect(text).toContain('2 attempts left');
    expect(text).toContain('One or more answers did not match.');
    const [check, cancel] = actionsOf(json);
    expect([check?.['verb'], check?.['title'], check?.['associatedInputs']]).toEqual(['unlock.answers', 'Check my answers', 'auto']);
    expect([cancel?.['verb'], cancel?.['associatedInputs']]).toEqual(['unlock.cancel', 'none']);
    expect(check?.['data']).toEqual({ runId: RUN_ID, step: STEP });
  });

  it('questions card says "1 attempt left" in the singular and pre-fills given values', () => {
    const json = unlockQuestionsCard({ runId: RUN_ID, step: STEP, questions: QUESTIONS, attemptsLeft: 1, values: { a2: 'Leeds' } });
    expect(JSON.stringify(json)).toContain('1 attempt left');
    expect(inputsOf(json).map((i) => i['value'])).toEqual([undefined, 'Leeds', undefined]);
  });

  it('questions card refuses anything but exactly 3 questions', () => {
    expect(() => unlockQuestionsCard({ runId: RUN_ID, step: STEP, questions: QUESTIONS.slice(0, 2), attemptsLeft: 3 })).toThrow(/exactly 3 questions, got 2/);
  });

  it('problem card offers "Try again" only when a retry can help', () => {
    const verbs = (canRetry: boolean) =>
      actionsOf(unlockProblemCard({ runId: RUN_ID, step: STEP, title: 'No card', message: 'Insert your card.', canRetry })).map((a) => [a['title'], a['verb']]);
    expect(verbs(true)).toEqual([['Try again', 'unlock.check_card'], ['Cancel', 'unlock.cancel']]);
    expect(verbs(false)).toEqual([['Cancel', 'unlock.cancel']]);
  });

  it('code-sent card names the masked address, the minutes and the expiry, and warns about the passcode', () => {
    const json = unlockCodeSentCard({ runId: RUN_ID, step: STEP, maskedEmail: maskEmail('alex.wilber@nhs.net'), expiresAtText: '09:45', minutes: 15 });
    const runs = [...walk(json)].filter((o) => o['type'] === 'RichTextBlock').map((b) => (b['inlines'] as Json[]).map((r) => r['text']).join(''));
    expect(runs).toContain('We have emailed an unlock code to a\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022@nhs.net. It works for 15 minutes (until 09:45).');
    expect(JSON.stringify(json)).toContain('Never type your passcode in Teams.');
    expect(actionsOf(json).map((a) => a['verb'])).toEqual(['unlock.resend_code', 'unlock.cancel']);
  });

  it('done card shows the time as given (e.g. "19:10 GMT"), never a host time function (the host formats those its own way)', () => {
    const json = unlockDoneCard({ at: '19:10 GMT', workstation: 'WS-0042' });
    const runs = [...walk(json)].filter((o) => o['type'] === 'RichTextBlock').map((b) => (b['inlines'] as Json[]).map((r) => r['text']).join(''));
    expect(runs).toContain('Your new passcode was set at 19:10 GMT.');
    expect(JSON.stringify(json)).not.toMatch(/\{\{(TIME|DATE)\(/);
  });

  it('a problem card is an error (Attention title) by default; "information" tone has no attention or warning colour anywhere', () => {
    const colours = (card: AdaptiveCard) => [...walk(card)].flatMap((o) => (typeof o['color'] === 'string' ? [o['color']] : []));
    const problem = unlockProblemCard({ runId: RUN_ID, step: STEP, title: 'This is not your registered card', message: 'Put your own card in.', canRetry: true });
    expect(colours(problem)).toEqual(['Attention']);
    const info = unlockProblemCard({ runId: RUN_ID, step: STEP, title: 'Your card is not locked', message: 'Nothing to unlock.', canRetry: true, tone: 'information' });
    expect(colours(info)).toEqual(['Accent']);
    expect(JSON.stringify(info)).not.toMatch(/"(Attention|Warning)"/);
    // The same buttons whatever the tone; "Try again" is not a call to action coloured as positive here.
    expect(actionsOf(info).map((a) => [a['title'], a['verb'], a['style'] ?? 'default'])).toEqual([
      ['Check again', 'unlock.check_card', 'default'],
      ['Cancel', 'unlock.cancel', 'default'],
    ]);
  });

  it('locked-out card shows the case reference', () => {
    const runs = [...walk(unlockLockedOutCard({ caseRef: 'RA-7K2Q9D' }))].filter((o) => o['type'] === 'TextRun').map((o) => o['text']);
    expect(runs).toContain('RA-7K2Q9D');
  });
});

describe('maskEmail', () => {
  it.each([
    ['alex.wilber@nhs.net', 'a\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022@nhs.net'],
    ['jo@gov.uk', 'j\u2022\u2022\u2022@gov.uk'],
    ['a.very.long.local.part@mod.uk', 'a\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022@mod.uk'],
    ['not-an-address', '\u2022\u2022\u2022\u2022\u2022'],
    ['@nhs.net', '\u2022\u2022\u2022\u2022\u2022'],
  ])('%s -> %s', (email, masked) => {
    expect(maskEmail(email)).toBe(masked);
  });
});

describe('parseCardAction', () => {
  const answers = (data: Record<string, unknown>) => ({ action: { type: 'Action.Execute', verb: 'unlock.answers', data } });

  it('parses a click into the verb and its data, trimming answers', () => {
    const result = parseCardAction(answers({ runId: RUN_ID, step: STEP, a1: '  Rex ', a2: 'Leeds', a3: 'Dune  ' }));
    expect(result).toEqual({ ok: true, action: { verb: 'unlock.answers', data: { runId: RUN_ID, step: STEP, a1: 'Rex', a2: 'Leeds', a3: 'Dune' } } });
  });

  it('parses verbs without data', () => {
    expect(parseCardAction({ action: { type: 'Action.Execute', verb: CARD_VERBS.HELP_SHOW } })).toEqual({ ok: true, action: { verb: 'help.show', data: {} } });
  });

  it('refuses an unknown verb with a message naming it and the known verbs', () => {
    const result = parseCardAction({ action: { type: 'Action.Execute', verb: 'unlock.reset_everything', data: {} } });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toBe('unknown_verb');
      expect(result.message).toContain('Unknown card action "unlock.reset_everything"');
      expect(result.message).toContain('unlock.start');
    }
  });

  it('refuses a missing runId with a message naming the field', () => {
    const result = parseCardAction({ action: { type: 'Action.Execute', verb: 'unlock.check_card', data: { step: STEP } } });
    expect(result).toEqual({ ok: false, reason: 'invalid_data', message: 'Card action "unlock.check_card" refused: runId is missing.' });
  });

  it('refuses a runId that is not a UUID', () => {
    const result = parseCardAction({ action: { verb: 'unlock.cancel', data: { runId: '../../etc', step: STEP } } });
    expect(result.ok === false && result.message).toBe('Card action "unlock.cancel" refused: runId must be a UUID.');
  });

  it('refuses empty and over-long answers without repeating any answer', () => {
    const long = 'x'.repeat(201);
    const result = parseCardAction(answers({ runId: RUN_ID, step: STEP, a1: 'SecretRex', a2: '   ', a3: long }));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).toBe('Card action "unlock.answers" refused: a2 is empty; a3 is longer than 200 characters.');
      expect(result.message).not.toContain('SecretRex');
    }
    expect(parseCardAction(answers({ runId: RUN_ID, step: STEP, a1: 'a', a2: 'b', a3: 'x'.repeat(200) })).ok).toBe(true);
  });

  it.each([
    [undefined, 'not_an_action'],
    [{ action: 'unlock.start' }, 'not_an_action'],
    [{ action: { type: 'Action.Submit', verb: 'unlock.start' } }, 'not_an_action'],
    [{ action: { type: 'Action.Execute' } }, 'not_an_action'],
    [{ action: { type: 'Action.Execute', verb: 'unlock.cancel', data: 'x' } }, 'invalid_data'],
  ])('refuses %j as %s', (value, reason) => {
    const result = parseCardAction(value);
    expect(result.ok === false && result.reason).toBe(reason);
  });
});
