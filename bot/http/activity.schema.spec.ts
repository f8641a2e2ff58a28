import { describe, expect, it } from 'vitest';
import { ACTIVITY_LIMITS, checkActivity } from './activity.schema';

/** A Teams personal-chat message with realistic ids (shapes from real Teams traffic). */
const teamsMessage = (): Record<string, unknown> => ({
  type: 'message',
  id: '1712345678901',
  timestamp: '2026-12-03T21:00:00.000Z',
  channelId: 'msteams',
  serviceUrl: 'https://smba.trafficmanager.net/emea/3f2c0a4e-1111-4c2b-9d7e-0123456789ab/',
  from: { id: '29:1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', name: 'Alice Example', aadObjectId: '6d1f2b4e-8a7c-4d3e-9f10-0123456789ab' },
  recipient: { id: '28:0b5e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4', name: 'Smartcard Assist' },
  conversation: { id: `a:1${'Q'.repeat(130)}`, conversationType: 'personal', tenantId: '3f2c0a4e-1111-4c2b-9d7e-0123456789ab' },
  channelData: { tenant: { id: '3f2c0a4e-1111-4c2b-9d7e-0123456789ab' } },
  locale: 'en-GB',
  text: 'unlock',
});

const refusal = (body: unknown): { code: string; message: string; invoke: boolean } => {
  const v = checkActivity(body);
  if (v.ok) throw new Error('expected a refusal');
  return v;
};

describe('checkActivity (the activity envelope at the door)', () => {
  it('accepts Teams-shaped activities: message, conversationUpdate, card invoke, channel thread ids, nulls for absent fields', () => {
    expect(checkActivity(teamsMessage())).toEqual({ ok: true });
    expect(checkActivity({ ...teamsMessage(), type: 'conversationUpdate', text: undefined, membersAdded: [{ id: '28:0b5e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4' }], membersRemoved: null })).toEqual({ ok: true });
    expect(checkActivity({ ...teamsMessage(), type: 'invoke', name: 'adaptiveCard/action', value: { action: { type: 'Action.Execute', verb: 'unlock.start', data: {} } } })).toEqual({ ok: true });
    expect(checkActivity({ ...teamsMessage(), conversation: { id: '19:0123456789abcdef0123456789abcdef@thread.tacv2;messageid=1712345678901', conversationType: 'channel', isGroup: true } })).toEqual({ ok: true });
    expect(checkActivity({ ...teamsMessage(), replyToId: null, recipient: null, channelData: null })).toEqual({ ok: true });
    expect(checkActivity({ ...teamsMessage(), serviceUrl: 'http://localhost:56150/_connector' })).toEqual({ ok: true });
  });

  it('accepts each limited field at its limit and refuses it one character over, naming the field', () => {
    const m = teamsMessage();
    const from = m['from'] as Record<string, unknown>;
    const conversation = m['conversation'] as Record<string, unknown>;
    const cases: Array<{ field: string; max: number; set: (v: string) => Record<string, unknown> }> = [
      { field: 'conversation.id', max: ACTIVITY_LIMITS.conversationIdChars, set: (v) => ({ conversation: { ...conversation, id: v } }) },
      { field: 'from.id', max: ACTIVITY_LIMITS.accountIdChars, set: (v) => ({ from: { ...from, id: v } }) },
      { field: 'from.aadObjectId', max: ACTIVITY_LIMITS.objectIdChars, set: (v) => ({ from: { ...from, aadObjectId: v } }) },
      { field: 'from.name', max: ACTIVITY_LIMITS.nameChars, set: (v) => ({ from: { ...from, name: v } }) },
      { field: 'recipient.id', max: ACTIVITY_LIMITS.accountIdChars, set: (v) => ({ recipient: { id: v } }) },
      { field: 'id', max: ACTIVITY_LIMITS.activityIdChars, set: (v) => ({ id: v }) },
      { field: 'replyToId', max: ACTIVITY_LIMITS.activityIdChars, set: (v) => ({ replyToId: v }) },
      { field: 'conversation.tenantId', max: ACTIVITY_LIMITS.tenantIdChars, set: (v) => ({ conversation: { ...conversation, tenantId: v } }) },
      { field: 'channelData.tenant.id', max: ACTIVITY_LIMITS.tenantIdChars, set: (v) => ({ channelData: { tenant: { id: v } } }) },
      { field: 'serviceUrl', max: ACTIVITY_LIMITS.serviceUrlChars, set: (v) => ({ serviceUrl: `https://h.example/${v.slice('https://h.example/'.length)}` }) },
      { field: 'text', max: ACTIVITY_LIMITS.textChars, set: (v) => ({ text: v }) },
      { field: 'type', max: ACTIVITY_LIMITS.typeChars, set: (v) => ({ type: v }) },
    ];
    for (const c of cases) {
      expect(checkActivity({ ...m, ...c.set('k'.repeat(c.max)) }), `${c.field} at ${c.max}`).toEqual({ ok: true });
      const r = refusal({ ...m, ...c.set(`Secret${'k'.repeat(c.max)}`) });
      expect(r.code, c.field).toBe('BadRequest');
      expect(r.message, c.field).toBe(`The activity's ${c.field} is longer than ${c.max} characters.`);
    }
  });

  it('refuses ids holding control characters, naming the field (ids are printable; the store refuses them later otherwise)', () => {
    const m = teamsMessage();
    const from = m['from'] as Record<string, unknown>;
    const conversation = m['conversation'] as Record<string, unknown>;
    const cases: Array<{ field: string; set: (v: string) => Record<string, unknown> }> = [
      { field: 'from.id', set: (v) => ({ from: { ...from, id: v } }) },
      { field: 'from.aadObjectId', set: (v) => ({ from: { ...from, aadObjectId: v } }) },
      { field: 'recipient.id', set: (v) => ({ recipient: { id: v } }) },
      { field: 'conversation.id', set: (v) => ({ conversation: { ...conversation, id: v } }) },
      { field: 'conversation.tenantId', set: (v) => ({ conversation: { ...conversation, tenantId: v } }) },
      { field: 'channelData.tenant.id', set: (v) => ({ channelData: { tenant: { id: v } } }) },
      { field: 'id', set: (v) => ({ id: v }) },
      { field: 'replyToId', set: (v) => ({ replyToId: v }) },
      { field: 'membersAdded.0.id', set: (v) => ({ type: 'conversationUpdate', membersAdded: [{ id: v }] }) },
    ];
    for (const c of cases) {
      for (const bad of ['29:abc\u0007def', 'abc\u0000def', 'tab\there', 'del\u007f', 'c1\u0085']) {
        const r = refusal({ ...m, ...c.set(bad) });
        expect(r.code, `${c.field} ${JSON.stringify(bad)}`).toBe('BadRequest');
        expect(r.message, c.field).toMatch(new RegExp(`^The activity's ${c.field.replace(/\./g, '\\.')} must be printable \\(no control characters\\)[.;]`));
      }
    }
    // Printable ids of every shape Teams sends still pass, including non-ASCII letters.
    expect(checkActivity({ ...m, from: { ...from, id: '29:1AbC-dEf_gh+ij/Kl=', name: 'Zoë Ñúñez' } })).toEqual({ ok: true });
  });

  it('refuses an account id longer than the store keeps (200), so nothing reaches the store to fail there', () => {
    expect(ACTIVITY_LIMITS.accountIdChars).toBeLessThanOrEqual(200);
  });

  it('refuses from, recipient or conversation objects larger than 4096 bytes of JSON (they are stored whole)', () => {
    const m = teamsMessage();
    expect(refusal({ ...m, conversation: { ...(m['conversation'] as object), extra: 'x'.repeat(5000) } }).message).toBe("The activity's conversation is larger than 4096 bytes.");
    expect(refusal({ ...m, from: { ...(m['from'] as object), extra: ['x'.repeat(5000)] } }).message).toBe("The activity's from is larger than 4096 bytes.");
  });

  it('refuses missing or mistyped envelope fields, naming them', () => {
    const m = teamsMessage();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ from: undefined }, "The activity's from is missing."],
      [{ from: 'alice' }, "The activity's from must be an object."],
      [{ from: { name: 'x' } }, "The activity's from.id is missing."],
      [{ from: { id: '' } }, "The activity's from.id is empty."],
      [{ conversation: { id: 7 } }, "The activity's conversation.id must be text."],
      [{ serviceUrl: undefined }, "The activity's serviceUrl is missing."],
      [{ text: 12 }, "The activity's text must be text."],
      [{ recipient: [] }, "The activity's recipient must be an object."],
    ];
    for (const [fields, message] of cases) expect(refusal({ ...m, ...fields }).message).toBe(message);
  });

  it('refuses a serviceUrl that is not an absolute http(s) URL with a host and no credentials', () => {
    for (const url of ['ftp://h.example/', 'javascript:alert(1)', 'http://', 'https://exa mple.com/', 'http://[::1/', '127.0.0.1:3978', 'file:///etc/passwd', 'https://user:pw@h.example/', '/relative']) {
      expect(refusal({ ...teamsMessage(), serviceUrl: url }).message, url).toBe("The activity's serviceUrl is not an http(s) URL.");
    }
  });

  it('refuses membersAdded / membersRemoved that are not lists of members with string ids', () => {
    const m = { ...teamsMessage(), type: 'conversationUpdate' };
    const list = (f: string): string => `${f} must be a list of members, each an object with a string "id"`;
    expect(refusal({ ...m, membersAdded: 'x' }).message).toBe(`The activity's ${list('membersAdded')}.`);
    expect(refusal({ ...m, membersAdded: { id: 'a' } }).message).toBe(`The activity's ${list('membersAdded')}.`);
    expect(refusal({ ...m, membersAdded: [1] }).message).toBe(`The activity's membersAdded.0 must be an object; ${list('membersAdded')}.`);
    expect(refusal({ ...m, membersAdded: [{ id: 'a' }, {}] }).message).toBe(`The activity's membersAdded.1.id is missing; ${list('membersAdded')}.`);
    expect(refusal({ ...m, membersRemoved: [{ id: 5 }] }).message).toBe(`The activity's membersRemoved.0.id must be text; ${list('membersRemoved')}.`);
    expect(refusal({ ...m, membersRemoved: [{ id: 'k'.repeat(ACTIVITY_LIMITS.accountIdChars + 1) }] }).message).toBe(`The activity's membersRemoved.0.id is longer than ${ACTIVITY_LIMITS.accountIdChars} characters; ${list('membersRemoved')}.`);
  });

  it('answers invokes other than adaptiveCard/action with NotSupported naming the invoke (quoted only when it is a plain identifier)', () => {
    const inv = (name: unknown): Record<string, unknown> => ({ ...teamsMessage(), type: 'invoke', name, value: {} });
    for (const name of ['task/fetch', 'composeExtension/query', 'signin/verifyState', 'signin/tokenExchange', 'application/search']) {
      expect(refusal(inv(name))).toEqual({ ok: false, code: 'NotSupported', invoke: true, message: `The invoke "${name}" is not supported; Smartcard Assist answers only adaptiveCard/action invokes (card buttons).` });
    }
    expect(refusal(inv(undefined)).message).toBe('The invoke has no "name"; Smartcard Assist answers only adaptiveCard/action invokes (card buttons).');
    expect(refusal(inv('')).code).toBe('NotSupported');
    const odd = refusal(inv(`x\u202E${'Secret'.repeat(20)}`));
    expect(odd.message).toBe('This invoke name is not supported; Smartcard Assist answers only adaptiveCard/action invokes (card buttons).');
    expect(refusal(inv(42)).message).toBe("The activity's name must be text.");
  });

  it('refuses an adaptiveCard/action invoke without an object value.action', () => {
    for (const value of ['x', 42, ['a'], { action: 'no' }, { action: null }, undefined]) {
      expect(refusal({ ...teamsMessage(), type: 'invoke', name: 'adaptiveCard/action', value })).toEqual({ ok: false, code: 'BadRequest', invoke: true, message: 'The card action invoke needs "value.action" to be an object.' });
    }
  });

  it('refuses bodies that are not an object with a string type, and never quotes a value in any message', () => {
    for (const body of [null, [1, 2], 'x', 5, {}, { type: 5 }, { type: '' }]) {
      expect(refusal(body).message).toBe('The request body must be a Bot Framework activity: a JSON object with a string "type".');
    }
    const secret = 'Secret-73920184';
    const m = teamsMessage();
    for (const fields of [{ text: 7 }, { serviceUrl: secret }, { from: { id: secret.repeat(30) } }, { conversation: { id: secret.repeat(40) } }, { membersAdded: secret }]) {
      expect(refusal({ ...m, ...fields }).message).not.toContain('Secret');
    }
  });
});
