import { describe, expect, it } from 'vitest';
import { escapeHtml, formatLocalDateTime, unlockCodeMail, unlockedNoticeMail } from './mail.templates';

const RA = 'the RA team on 0113 000 0000 or ra.team@nhs.net';
const codeMail = (over: Partial<Parameters<typeof unlockCodeMail>[0]> = {}) =>
  unlockCodeMail({
    displayName: 'Alex Wilber',
    code: '40718263',
    expiresAt: new Date('2026-01-15T09:45:00Z'),
    minutes: 15,
    timeZone: 'Europe/London',
    raContact: RA,
    ...over,
  });

describe('unlockCodeMail', () => {
  it('puts the code in the text and, on its own line, in the HTML, but not in the subject', () => {
    const mail = codeMail();
    expect(mail.text.split('\n')).toContain('40718263');
    expect(mail.html.split('\n')).toContain('40718263');
    expect(mail.subject).toBe('Your smartcard unlock code');
    expect(mail.subject).not.toContain('40718263');
  });

  it('shows the code in large type in the HTML', () => {
    const html = codeMail().html;
    const before = html.slice(0, html.indexOf('40718263'));
    expect(before.slice(before.lastIndexOf('<p'))).toMatch(/font-size:32px/);
  });

  it('escapes a display name holding HTML, in the HTML part only', () => {
    const mail = codeMail({ displayName: '<b onmouseover="x()">Eve</b> & \'co\'' });
    expect(mail.html).toContain('Hello &lt;b onmouseover=&quot;x()&quot;&gt;Eve&lt;/b&gt; &amp; &#39;co&#39;,');
    expect(mail.html).not.toContain('<b onmouseover');
    expect(mail.text).toContain('Hello <b onmouseover="x()">Eve</b> & \'co\',');
  });

  it('escapes the RA contact too', () => {
    const mail = codeMail({ raContact: '<a href="http://evil">RA</a>' });
    expect(mail.html).toContain('&lt;a href=&quot;http://evil&quot;&gt;RA&lt;/a&gt;');
    expect(mail.html).not.toContain('href="http://evil"');
  });

  it('gives the expiry in Europe/London time: GMT in winter', () => {
    const mail = codeMail({ expiresAt: new Date('2026-01-15T09:45:00Z') });
    expect(mail.text).toContain('The code works once, for 15 minutes: until 09:45 GMT on Thursday 15 January 2026.');
    expect(mail.html).toContain('until <strong>09:45 GMT</strong> on Thursday 15 January 2026.');
  });

  it('gives the expiry in Europe/London time: BST in summer, one hour ahead of UTC', () => {
    const mail = codeMail({ expiresAt: new Date('2026-07-03T08:45:00Z'), minutes: 10 });
    expect(mail.text).toContain('for 10 minutes: until 09:45 BST on Friday 3 July 2026.');
  });

  it('says what to do if the person did not ask, and that it may land in junk mail', () => {
    const mail = codeMail();
    expect(mail.text).toContain(`Did not ask for this? Do not use the code, and contact your RA team straight away: ${RA}.`);
    expect(mail.text).toMatch(/junk mail folder/);
    expect(mail.html).toMatch(/junk mail folder/);
  });

  it('refuses an unknown time zone', () => {
    expect(() => codeMail({ timeZone: 'Mars/Olympus_Mons' })).toThrow(RangeError);
  });
});

describe('unlockedNoticeMail', () => {
  const notice = (over: Partial<Parameters<typeof unlockedNoticeMail>[0]> = {}) =>
    unlockedNoticeMail({ displayName: 'Alex Wilber', at: new Date('2026-07-03T08:41:00Z'), workstation: 'WS-0042', timeZone: 'Europe/London', raContact: RA, ...over });

  it('says when and where the card was unlocked, in local time', () => {
    const mail = notice();
    expect(mail.subject).toBe('Your smartcard was unlocked');
    expect(mail.text).toContain('Your smartcard was unlocked and given a new passcode at 09:41 BST on Friday 3 July 2026, on the computer WS-0042, using Smartcard Assist.');
    expect(mail.text).toContain(`If this was not you, contact your RA team straight away: ${RA}.`);
  });

  it('leaves the computer out when it is not known', () => {
    expect(notice({ workstation: null }).text).toContain('at 09:41 BST on Friday 3 July 2026, using Smartcard Assist.');
  });

  it('escapes the display name and workstation in the HTML', () => {
    const mail = notice({ displayName: '<i>Eve</i>', workstation: '<img src=x onerror=alert(1)>' });
    expect(mail.html).toContain('Hello &lt;i&gt;Eve&lt;/i&gt;,');
    expect(mail.html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(mail.html).not.toMatch(/<img|<i>/);
  });
});

describe('helpers', () => {
  it('escapeHtml replaces the five special characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('formatLocalDateTime uses the given zone, not the machine zone', () => {
    expect(formatLocalDateTime(new Date('2026-03-29T00:59:00Z'), 'Europe/London').text).toBe('00:59 GMT on Sunday 29 March 2026');
    expect(formatLocalDateTime(new Date('2026-03-29T01:00:00Z'), 'Europe/London').text).toBe('02:00 BST on Sunday 29 March 2026');
  });
});
