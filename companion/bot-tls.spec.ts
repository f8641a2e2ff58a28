import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { botUrlProblem, isLoopbackHost, readBotCaFile } from './bot-tls';

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.9.8.7', true],
    ['[::1]', true],
    ['::1', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['[::ffff:127.0.0.1]', true],
    ['128.0.0.1', false],
    ['10.0.0.5', false],
    ['0.0.0.0', false],
    ['[::]', false],
    ['[fe80::1]', false],
    ['localhost.example.org', false],
    ['127.0.0.1.nip.io', false],
    ['bot.trust.nhs.uk', false],
  ])('%s -> %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('botUrlProblem', () => {
  it.each(['https://bot.trust.nhs.uk', 'https://10.1.2.3:8443/prefix/', 'http://127.0.0.1:3978', 'http://localhost:3978', 'http://[::1]:3978'])('allows %s', (url) => {
    expect(botUrlProblem(new URL(url))).toBeNull();
  });

  it.each(['http://bot.trust.nhs.uk', 'http://10.1.2.3:3978', 'http://0.0.0.0:3978', 'http://[fe80::1]:3978'])('refuses %s (https needed off this computer)', (url) => {
    expect(botUrlProblem(new URL(url))).toMatch(/must use https:\/\/ for a bot on another computer/);
  });

  it.each(['ftp://bot.example', 'ws://127.0.0.1:3978', 'wss://bot.example'])('refuses the scheme of %s', (url) => {
    expect(botUrlProblem(new URL(url))).toBe('must use http or https');
  });
});

describe('readBotCaFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bot-ca-spec-'));

  it('says when the file cannot be read', () => {
    expect(() => readBotCaFile(join(dir, 'absent.pem'))).toThrow(/cannot read .*absent\.pem \(ENOENT\)/);
  });

  it('says when the file holds no certificate', () => {
    const file = join(dir, 'key.pem');
    writeFileSync(file, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    expect(() => readBotCaFile(file)).toThrow(/holds no PEM certificate/);
  });

  it('says when a certificate block is not a certificate', () => {
    const file = join(dir, 'junk.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    expect(() => readBotCaFile(file)).toThrow(/certificate 1 in .* cannot be read/);
  });
});
