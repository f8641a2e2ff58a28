import { describe, expect, it } from 'vitest';
import { loadRaDeskConfig, roleOf, teamForEmail, teamNamed } from './ra-roles';

const A = '2f1c7d1e-0a5b-4c9e-9f0e-6a1b2c3d4e5f';
const B = '3a2b1c0d-1111-4222-8333-944455566677';

describe('RA desk settings and roles', () => {
  it('reads comma-separated Entra object ids (trimmed, lower-cased, de-duplicated) and the channel', () => {
    const c = loadRaDeskConfig({ RA_MEMBER_IDS: ` ${A.toUpperCase()}, ${A} `, HELPDESK_MEMBER_IDS: B, RA_CHANNEL_ID: '19:abc@thread.tacv2' });
    const channel = { conversationId: '19:abc@thread.tacv2', serviceUrl: 'https://smba.trafficmanager.net/teams/' };
    expect(c).toEqual({ raMemberIds: [A], helpdeskMemberIds: [B], channel, teams: [{ name: 'RA desk', memberIds: [A], channel, emailDomains: [] }] });
    expect(loadRaDeskConfig({})).toEqual({ raMemberIds: [], helpdeskMemberIds: [], channel: null, teams: [{ name: 'RA desk', memberIds: [], channel: null, emailDomains: [] }] });
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

  it('RA_TEAMS: several teams, each with members, a channel and email domains; the first is the default', () => {
    const C = '4b3c2d1e-2222-4333-8444-a55566677788';
    const c = loadRaDeskConfig({
      HELPDESK_MEMBER_IDS: B,
      RA_TEAMS: JSON.stringify([
        { name: 'North RA', memberIds: [A], channelId: '19:north@thread.tacv2', emailDomains: ['@North.nhs.net'] },
        { name: 'South RA', memberIds: [C.toUpperCase(), A], channelId: '19:south@thread.tacv2', serviceUrl: 'http://127.0.0.1:9/', emailDomains: ['south.nhs.net'] },
      ]),
    });
    expect(c.teams.map((t) => [t.name, t.memberIds, t.channel?.conversationId, t.channel?.serviceUrl, t.emailDomains])).toEqual([
      ['North RA', [A], '19:north@thread.tacv2', 'https://smba.trafficmanager.net/teams/', ['north.nhs.net']],
      ['South RA', [C, A], '19:south@thread.tacv2', 'http://127.0.0.1:9/', ['south.nhs.net']],
    ]);
    expect(c.raMemberIds).toEqual([A, C]);
    expect(c.channel?.conversationId).toBe('19:north@thread.tacv2');
    expect(teamForEmail(c, 'sam@south.nhs.net').name).toBe('South RA');
    expect(teamForEmail(c, 'sam@ward.south.nhs.net').name).toBe('South RA');
    expect(teamForEmail(c, 'sam@notsouth.nhs.net').name).toBe('North RA');
    expect(teamForEmail(c, 'sam@gov.uk').name).toBe('North RA');
    expect(teamForEmail(c, null).name).toBe('North RA');
    expect(teamNamed(c, 'South RA').name).toBe('South RA');
    expect(teamNamed(c, 'Gone RA').name).toBe('North RA');
  });

  it('RA_TEAMS: a bad list is refused naming the team and field', () => {
    const team = { name: 'North RA', memberIds: [A], channelId: '19:n@thread.tacv2' };
    expect(() => loadRaDeskConfig({ RA_TEAMS: 'north' })).toThrow(/RA_TEAMS: must be a JSON array/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: '[]' })).toThrow(/1 to 20 teams/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([team, { ...team, name: 'South', memberIds: [] }]) })).toThrow(/RA_TEAMS\[1\]\.memberIds: lists no member/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([{ ...team, memberIds: ['bob'] }]) })).toThrow(/RA_TEAMS\[0\]\.memberIds: "bob" is not an Entra object id/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([{ ...team, emailDomains: ['not a domain'] }]) })).toThrow(/RA_TEAMS\[0\]\.emailDomains: "not a domain"/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([team, { ...team, channelId: '19:s@thread.tacv2' }]) })).toThrow(/names must differ/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([team, { ...team, name: 'South' }]) })).toThrow(/own channel/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([{ ...team, colour: 'red' }]) })).toThrow(/RA_TEAMS\[0\]/);
    expect(() => loadRaDeskConfig({ RA_TEAMS: JSON.stringify([team]), RA_MEMBER_IDS: A })).toThrow(/not both/);
  });
});
