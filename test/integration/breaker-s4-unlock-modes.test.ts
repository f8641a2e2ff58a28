/**
 * Breaker, session 4: races and limits on the code-only unlock (issue #14) and the RA-assisted unlock
 * (issue #12) that hold: one code per channel choice, 3 codes an hour across channel switches, one
 * enrolment for concurrent starts, one run for concurrent assisted starts, the card binding kept.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { journeyKey } from '../../bot/journeys/journey.key';
import { DEFAULT_UNLOCK_RULES } from '../../bot/journeys/unlock/unlock.journey';
import { decodeUnlock } from '../../bot/journeys/unlock/unlock.state';
import { sealPuk } from '../../bot/puk/puk.custody';
import { AAD, CARD, CODE_ONLY, closeWorld, codeSends, phaseOf, RA_ID, world } from './breaker-s4-world';

afterEach(closeWorld);

describe('breaker s4: code-only races and limits', () => {
  it('chooseChannel raced with email and sms on the same step: one code, one channel', async () => {
    const w = await world({ rules: CODE_ONLY, contact: { email: 'alex.wilber@nhs.net', mobile: '07700 900123' } });
    const rec = await w.service.startCodeOnly({ teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD });
    const s = decodeUnlock(rec).state;
    expect(s.phase).toBe('choosing_channel');
    const person = (await w.h.storage.persons.get(w.personId))!;
    await Promise.all([w.service.chooseChannel(person, rec.runId, String(s.step), 'email'), w.service.chooseChannel(person, rec.runId, String(s.step), 'sms'), w.service.chooseChannel(person, rec.runId, String(s.step), 'email')]);
    expect(codeSends(w)).toHaveLength(1);
    expect((await phaseOf(w)).phase).toBe('code_sent');
  });

  it('switching channels across runs does not get past 3 codes an hour', async () => {
    const w = await world({ rules: CODE_ONLY, contact: { email: 'alex.wilber@nhs.net', mobile: '07700 900123' } });
    const identity = { teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD };
    let rec = await w.service.startCodeOnly(identity);
    for (const channel of ['sms', 'email', 'sms', 'email', 'sms'] as const) {
      const s = decodeUnlock(rec).state;
      if (s.phase === 'choosing_channel') {
        const person = (await w.h.storage.persons.get(w.personId))!;
        await w.service.chooseChannel(person, rec.runId, String(s.step), channel);
      }
      w.h.now.value = new Date(w.h.now.value.getTime() + 60_000);
      const person = (await w.h.storage.persons.get(w.personId))!;
      rec = await w.service.start(person);
    }
    expect(codeSends(w)).toHaveLength(3);
    // A fourth run may still offer the choice; picking either sends nothing.
    const s = decodeUnlock(rec).state;
    if (s.phase === 'choosing_channel') rec = await w.service.chooseChannel((await w.h.storage.persons.get(w.personId))!, rec.runId, String(s.step), 'sms');
    expect(decodeUnlock(rec).state).toMatchObject({ phase: 'card_problem', problem: 'too_many_codes' });
    expect(codeSends(w)).toHaveLength(3);
  });

  it('two "unlock" messages at once from someone not enrolled: enrolled once, card bound once, at most one live code', async () => {
    const w = await world({ rules: CODE_ONLY, contact: { email: 'alex.wilber@nhs.net', mobile: null } });
    const identity = { teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD };
    await Promise.all([w.service.startCodeOnly(identity), w.service.startCodeOnly(identity), w.service.startCodeOnly(identity)]);
    await w.service.drain(w.personId);
    const person = await w.h.storage.persons.get(w.personId);
    expect(person).toMatchObject({ cardId: CARD, answers: [] });
    expect((await w.h.storage.cards.get(CARD))?.personId).toBe(w.personId);
    const rec = (await w.h.storage.journeys.get(journeyKey(w.personId, 'unlock')))!;
    // Nothing left undone (no effect stuck retrying), and the run standing has its code out.
    expect(rec.pendingEffects.map((e) => e.type)).toEqual([]);
    expect(decodeUnlock(rec).state.phase).toBe('code_sent');
    const audit = await w.h.storage.audit.list({ personId: w.personId, limit: 100 });
    expect(audit.filter((e) => e.action === 'effect.abandoned')).toEqual([]);
    expect(codeSends(w).length).toBeLessThanOrEqual(3);
  });

  it('racing the companion with the code: 10 wrong codes at once count 5 tries, then the right code is refused; the right code twice at once authorises once', async () => {
    const w = await world({ rules: { ...CODE_ONLY, codeChannels: ['sms'] }, contact: { email: 'alex.wilber@nhs.net', mobile: '07700 900123' } });
    const rec = await w.service.startCodeOnly({ teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD });
    expect(decodeUnlock(rec).state.phase).toBe('code_sent');
    const code = w.sms[0]!.personalisation.code;
    const wrong = code === '00000000' ? '11111111' : '00000000';
    const submit = (c: string, session: string) => w.service.onCompanionRequest(w.device, { kind: 'unlock.submit_code', journeyId: rec.runId, cardId: CARD, code: c }, { linkSession: session });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => submit(wrong, `s${i}`)));
    expect(answers.filter((a) => a.kind === 'unlock.accepted')).toEqual([]);
    const s = await phaseOf(w);
    expect(s).toMatchObject({ phase: 'code_sent', code: { wrongTries: 5 } });
    expect(await submit(code, 's-right')).toMatchObject({ kind: 'unlock.refused', reason: 'too_many_tries' });

    // A second person-run (next hour, so the cap does not bite): the right code twice at once.
    w.h.now.value = new Date(w.h.now.value.getTime() + 61 * 60_000);
    const person = (await w.h.storage.persons.get(w.personId))!;
    const rec2 = await w.service.start(person);
    expect(decodeUnlock(rec2).state.phase).toBe('code_sent');
    const code2 = w.sms.at(-1)!.personalisation.code;
    const submit2 = (session: string) => w.service.onCompanionRequest(w.device, { kind: 'unlock.submit_code', journeyId: rec2.runId, cardId: CARD, code: code2 }, { linkSession: session });
    const both = await Promise.all([submit2('a'), submit2('b'), submit2('c')]);
    expect(both.filter((a) => a.kind === 'unlock.accepted')).toHaveLength(1);
    expect(both.filter((a) => a.kind === 'unlock.refused').map((a) => (a as { reason: string }).reason)).toEqual(['used', 'used']);
  });

  it('a code typed after 15 minutes is refused as expired', async () => {
    const w = await world({ rules: { ...CODE_ONLY, codeChannels: ['sms'] }, contact: { email: 'alex.wilber@nhs.net', mobile: '07700 900123' } });
    const rec = await w.service.startCodeOnly({ teamsUserId: AAD, displayName: 'Alex Wilber', aadObjectId: AAD });
    const code = w.sms[0]!.personalisation.code;
    w.h.now.value = new Date(w.h.now.value.getTime() + 15 * 60_000);
    expect(await w.service.onCompanionRequest(w.device, { kind: 'unlock.submit_code', journeyId: rec.runId, cardId: CARD, code }, { linkSession: 'x' })).toMatchObject({ kind: 'unlock.refused', reason: 'expired' });
  });
});

describe('breaker s4: RA-assisted unlock races and binding', () => {
  it('two assisted starts for the same case at once: one run, one code', async () => {
    const w = await world({ rules: DEFAULT_UNLOCK_RULES, person: {}, contact: null });
    const input = { personId: w.personId, caseRef: 'RA-7K2Q9D', actor: `ra:${RA_ID}` };
    const rs = await Promise.all([w.service.startAssistedUnlock(input), w.service.startAssistedUnlock(input), w.service.startAssistedUnlock(input)]);
    expect(new Set(rs.map((r) => (r.kind === 'refused' ? r.reason : r.runId))).size).toBe(1);
    expect(codeSends(w)).toHaveLength(1);
  });

  it('an assisted unlock does not skip the card binding: a card bound to someone else is not unlocked', async () => {
    const w = await world({ rules: DEFAULT_UNLOCK_RULES, person: {}, contact: null });
    const other = 'f'.repeat(32);
    await w.h.storage.cards.insert({ cardId: other, personId: randomUUID(), puk: sealPuk(w.h.keys.sealKey, '87654321', other), pendingPuk: null, updatedAt: w.h.now.value.toISOString(), version: 1 });
    w.h.link.reply = async (command) => (command.kind === 'card.read_status' ? { kind: 'card.status', status: { present: true, reader: 'Virtual PCD', cardId: other, pinRetries: 0 } } : { kind: 'ack' });
    const r = await w.service.startAssistedUnlock({ personId: w.personId, caseRef: 'RA-7K2Q9D', actor: `ra:${RA_ID}` });
    expect(r).toMatchObject({ phase: 'card_problem' });
    expect(await phaseOf(w)).toMatchObject({ problem: 'wrong_card' });
    expect(codeSends(w)).toEqual([]);
  });

  it('a paused run survives a bot restart: the assisted unlock on the restarted bot resumes the same run with the same code', async () => {
    const w = await world({ rules: DEFAULT_UNLOCK_RULES, person: {}, contact: null });
    const first = await w.service.startAssistedUnlock({ personId: w.personId, caseRef: 'RA-7K2Q9D', actor: `ra:${RA_ID}` });
    if (first.kind === 'refused') throw new Error('refused');
    expect((await w.service.pauseForRa(w.personId, 'RA-AAAAAA')).paused).not.toBeNull();
    const codes = codeSends(w).length;
    // The bot restarts: a new engine, runner and service over the same store.
    const again = await world({ rules: DEFAULT_UNLOCK_RULES, contact: null, restartOf: w });
    const resumed = await again.service.startAssistedUnlock({ personId: w.personId, caseRef: 'RA-AAAAAA', actor: `ra:${RA_ID}` });
    expect(resumed).toEqual({ kind: 'resumed', runId: first.runId, phase: 'code_sent' });
    // The same code (no new one sent), and the companion was asked for it again.
    expect(codeSends(again).length).toBe(codes);
    expect(w.h.commands.filter((c) => c.command.kind === 'unlock.prompt').length).toBeGreaterThanOrEqual(2);
    const code = /\b(\d{8})\b/.exec(w.h.mail.find((m) => m.kind === 'unlock_code')!.text)![1]!;
    expect(await again.service.onCompanionRequest(w.device, { kind: 'unlock.submit_code', journeyId: first.runId, cardId: CARD, code }, { linkSession: 'l1' })).toMatchObject({ kind: 'unlock.accepted' });
  });
});
