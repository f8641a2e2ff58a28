import { describe, expect, it } from 'vitest';
import { escapeHtml, formatLocalDateTime, registrationCodeMail, registrationConfirmedMail, unlockCodeMail, unlockedNoticeMail } from './mail.templates';

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
    expect(mail.text).toContain(`Did not ask for this? Do not use the code, and contact ${RA} straight away.`);
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
    expect(mail.text).toContain(`If this was not you, contact ${RA} straight away.`);
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

describe('registrationCodeMail', () => {
  const mail = (over: Partial<Parameters<typeof registrationCodeMail>[0]> = {}) =>
    registrationCodeMail({
      displayName: 'Alex Wilber',
      code: '58203917',
      expiresAt: new Date('2026-01-15T09:45:00Z'),
      minutes: 15,
      timeZone: 'Europe/London',
      raContact: RA,
      ...over,
    });

  it('puts the code on its own line in both parts, in large type in the HTML, and not in the subject', () => {
    const m = mail();
    expect(m.subject).toBe('Your Smartcard Assist registration code');
    expect(m.subject).not.toContain('58203917');
    expect(m.text.split('\n')).toContain('58203917');
    expect(m.html.split('\n')).toContain('58203917');
    const before = m.html.slice(0, m.html.indexOf('58203917'));
    expect(before.slice(before.lastIndexOf('<p'))).toMatch(/font-size:32px/);
  });

  it('says what the code is for, when it expires in local time, and where to enter it', () => {
    const m = mail({ expiresAt: new Date('2026-07-03T08:45:00Z') });
    expect(m.text).toContain('You asked to register for self-service smartcard unlock. Your registration code is:');
    expect(m.text).toContain('The code works once, for 15 minutes: until 09:45 BST on Friday 3 July 2026.');
    expect(m.html).toContain('until <strong>09:45 BST</strong> on Friday 3 July 2026.');
    expect(m.text).toContain('Enter the code in your Smartcard Assist chat in Microsoft Teams.');
  });

  it('says what to do if the person did not ask, and mentions junk mail', () => {
    const m = mail();
    expect(m.text).toContain(`Did not ask for this? Do not use the code, and contact ${RA} straight away.`);
    expect(m.text).toMatch(/junk mail folder/);
    expect(m.html).toMatch(/junk mail folder/);
  });

  it('escapes the display name and RA contact in the HTML only', () => {
    const m = mail({ displayName: '<b onmouseover="x()">Eve</b>', raContact: '<a href="http://evil">RA</a>' });
    expect(m.html).toContain('Hello &lt;b onmouseover=&quot;x()&quot;&gt;Eve&lt;/b&gt;,');
    expect(m.html).toContain('&lt;a href=&quot;http://evil&quot;&gt;RA&lt;/a&gt;');
    expect(m.html).not.toMatch(/<b onmouseover|<a href/);
    expect(m.text).toContain('Hello <b onmouseover="x()">Eve</b>,');
  });

  it('refuses an unknown time zone', () => {
    expect(() => mail({ timeZone: 'Mars/Olympus_Mons' })).toThrow(RangeError);
  });
});

describe('registrationConfirmedMail', () => {
  const confirmed = (over: Partial<Parameters<typeof registrationConfirmedMail>[0]> = {}) =>
    registrationConfirmedMail({
      displayName: 'Alex Wilber',
      at: new Date('2026-07-03T08:41:00Z'),
      email: 'alex.wilber@nhs.net',
      mobile: '+447700900123',
      workstation: 'WS-0042',
      selfUnlockReady: true,
      timeZone: 'Europe/London',
      raContact: RA,
      ...over,
    });

  it('says when, where and what was registered', () => {
    const m = confirmed();
    expect(m.subject).toBe('You are registered for self-service smartcard unlock');
    expect(m.text).toContain('You registered for self-service smartcard unlock at 09:41 BST on Friday 3 July 2026, on the computer WS-0042, using Smartcard Assist.');
    expect(m.text.split('\n')).toEqual(
      expect.arrayContaining(['- Email: alex.wilber@nhs.net', '- Mobile: +447700900123', '- Smartcard: the card you checked with your passcode']),
    );
    expect(m.text).toMatch(/^- Security questions: 4\. /m);
    expect(m.html).toContain('<li>Email: <strong>alex.wilber@nhs.net</strong></li>');
    expect(m.text).toContain(`If this was not you, contact ${RA} straight away.`);
    expect(m.text).toMatch(/junk mail folder/);
  });

  it('leaves out an unknown computer and says when no mobile was given', () => {
    const m = confirmed({ workstation: null, mobile: null });
    expect(m.text).toContain('at 09:41 BST on Friday 3 July 2026, using Smartcard Assist.');
    expect(m.text).toContain('- Mobile: none given');
  });

  it('without an enrolled PUK, says to contact RA to unlock until the card is enrolled', () => {
    const ready = confirmed();
    const notReady = confirmed({ selfUnlockReady: false });
    expect(notReady.text).toContain(`Your card is not yet enrolled for self-unlock. Until it is, if your card locks, contact your RA team to unlock it: ${RA}. We have let them know.`);
    expect(ready.text).not.toContain('not yet enrolled');
    expect(ready.text).toContain('you can unlock it yourself');
    expect(notReady.text).not.toContain('you can unlock it yourself');
  });

  it('never carries answers, even when a caller passes them', () => {
    const answersLike = { a1: 'Sekrit-Rex', a2: 'Sekrit-Leeds', a3: 'Sekrit-Dune', a4: 'Sekrit-Raleigh' };
    const input = {
      displayName: 'Alex',
      at: new Date('2026-07-03T08:41:00Z'),
      email: 'a@nhs.net',
      mobile: null,
      workstation: null,
      selfUnlockReady: true,
      timeZone: 'Europe/London',
      raContact: RA,
      ...answersLike,
      answers: Object.values(answersLike),
    };
    const m = registrationConfirmedMail(input);
    expect(`${m.subject}\n${m.text}\n${m.html}`).not.toContain('Sekrit');
  });

  it('escapes every value from people in the HTML', () => {
    const m = confirmed({
      displayName: '<i>Eve</i>',
      email: '"><script>alert(1)</script>@nhs.net',
      mobile: '<img src=x onerror=alert(2)>',
      workstation: '<svg onload=alert(3)>',
      raContact: "<a href='http://evil'>RA</a>",
      selfUnlockReady: false,
    });
    expect(m.html).toContain('Hello &lt;i&gt;Eve&lt;/i&gt;,');
    expect(m.html).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@nhs.net');
    expect(m.html).toContain('&lt;img src=x onerror=alert(2)&gt;');
    expect(m.html).toContain('&lt;svg onload=alert(3)&gt;');
    expect(m.html).toContain('&lt;a href=&#39;http://evil&#39;&gt;RA&lt;/a&gt;');
    expect(m.html).not.toMatch(/<i>|<script|<img|<svg|<a href/);
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
