import { describe, expect, it } from 'vitest';
import { loadRaDeskConfig, roleOf } from './ra-roles';

const A = '2f1c7d1e-0a5b-4c9e-9f0e-6a1b2c3d4e5f';
const B = '3a2b1c0d-1111-4222-8333-944455566677';

describe('RA desk settings and roles', () => {
  it('reads comma-separated Entra object ids (trimmed, lower-cased, de-duplicated) and the channel', () => {
    const c = loadRaDeskConfig({ RA_MEMBER_IDS: ` ${A.toUpperCase()}, ${A} `, HELPDESK_MEMBER_IDS: B, RA_CHANNEL_ID: '19:abc@thread.tacv2' });
    expect(c).toEqual({ raMemberIds: [A], helpdeskMemberIds: [B], channel: { conversationId: '19:abc@thread.tacv2', serviceUrl: 'https://smba.trafficmanager.net/teams/' } });
    expect(loadRaDeskConfig({})).toEqual({ raMemberIds: [], helpdeskMemberIds: [], channel: null });
  });

  it('refuses a bad setting, naming it', () => {
    expect(() => loadRaDeskConfig({ RA_MEMBER_IDS: `${A},alex@nhs.net` })).toThrow(/RA_MEMBER_IDS: "alex@nhs.net" is not an Entra object id/);
    expect(() => loadRaDeskConfig({ HELPDESK_MEMBER_IDS: 'x' })).toThrow(/HELPDESK_MEMBER_IDS/);
    expect(() => loadRaDeskConfig({ RA_CHANNEL_ID: '19:a b' })).toThrow(/RA_CHANNEL_ID/);
    expect(() => loadRaDeskConfig({ RA_CHANNEL_ID: '19:a', RA_CHANNEL_SERVICE_URL: 'http://example.org/' })).toThrow(/RA_CHANNEL_SERVICE_URL: must use https/);
    expect(loadRaDeskConfig({ RA_CHANNEL_ID: '19:a', RA_CHANNEL_SERVICE_URL: 'http://127.0.0.1:9/' }).channel?.serviceUrl).toBe('http://127.0.0.1:9/');
  });

  it('decides the role on the Entra object id only', () => {
    const c = loadRaDeskConfig({ RA_MEMBER_IDS: A, HELPDESK_MEMBER_IDS: `${A},${B}` });
    expect(roleOf(c, { aadObjectId: A.toUpperCase() })).toBe('ra');
    expect(roleOf(c, { aadObjectId: B })).toBe('helpdesk');
    expect(roleOf(c, { aadObjectId: '00000000-0000-4000-8000-000000000000' })).toBe('none');
    expect(roleOf(c, { aadObjectId: null })).toBe('none');
  });
});
