/**
 * Contract tests of the `sms.unlock_code` effect (issue #14): the effect runner unseals the code only to send it
 * through the notify port, and answers the unlock journey as for the mail effect: `code_mailed` once the carrier
 * accepted it (GOV.UK Notify: 201), `code_mail_failed` when it finally failed. Carried out against the local
 * Notify fake with the real client, and against the SMS outbox (the demo's default).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { EffectRunner } from '../../bot/journeys/effect-runner';
import type { Effect } from '../../bot/journeys/journey.effects';
import { harness, type Harness } from '../../bot/journeys/journey.spec-support';
import type { NotifyPort } from '../../bot/notify/notify.port';
import { OutboxSmsAdapter, readSmsOutbox } from '../../bot/notify/outbox-sms.adapter';
import { seal } from '../../bot/security/seal';
import { startNotifyContractFixture, type NotifyContractFixture } from '../support/notify-fake/notify-contract.fixture';

let f: NotifyContractFixture;
let h: Harness | null = null;

beforeAll(async () => {
  f = await startNotifyContractFixture();
});
afterAll(async () => {
  await f?.fake.stop();
});
beforeEach(() => {
  f.fake.reset();
  f.logs.length = 0;
});
afterEach(async () => {
  await h?.close();
  h = null;
});

/** An effect runner over the spec harness's store and keys, sending text messages with `sms` (or none). */
function runnerWith(sms: NotifyPort | undefined): { runner: EffectRunner; h: Harness } {
  h = harness();
  const offline = async (): Promise<never> => {
    throw new Error('not used by sms effects');
  };
  const runner = new EffectRunner({
    storage: h.storage,
    link: { isConnected: () => false, isReachable: () => false, sendCommand: offline },
    mail: { send: offline },
    ...(sms ? { sms } : {}),
    sealKey: h.keys.sealKey,
    codeHashKey: h.keys.codeHashKey,
    timeZone: 'Europe/London',
    raContact: 'the RA team',
    codeTtlMinutes: 15,
    commandTimeoutMs: 1000,
    now: () => h!.now.value,
    notifier: { refresh: offline },
  });
  return { runner, h };
}

function smsEffect(hh: Harness, code: string, to = '+447700900123'): Extract<Effect, { type: 'sms.unlock_code' }> {
  const runId = randomUUID();
  return { type: 'sms.unlock_code', id: randomUUID(), personId: 'person-1', to, codeSealed: seal(hh.keys.sealKey, code, `code:${runId}`), codeHash: 'hash-1', runId, expiresAt: '2026-11-30T09:15:00.000Z' };
}

describe('effect sms.unlock_code through the notify port', () => {
  it('GOV.UK Notify: sends the unsealed code with the template id and the effect id as reference; 201 answers code_mailed', async () => {
    const { runner, h: hh } = runnerWith(f.adapter());
    const effect = smsEffect(hh, '73920584');

    const follow = await runner.carryOut(effect);

    const [req] = f.fake.notificationRequests();
    expect(f.fake.notificationRequests()).toHaveLength(1);
    expect(req!.jwt?.claims['iss']).toBe(f.key.serviceId);
    expect(req!.body).toEqual({
      phone_number: '+447700900123',
      template_id: f.smsTemplateId,
      personalisation: { code: '73920584', minutes: '15', expires_at: '09:15 GMT' },
      reference: effect.id,
    });
    expect(f.fake.accepted[0]!.body).toContain('73920584');
    expect(follow).toEqual({ kind: 'unlock', event: { type: 'code_mailed', runId: effect.runId, codeHash: 'hash-1', at: hh.now.value.toISOString() } });
    for (const line of f.logs) {
      expect(line).not.toContain('73920584');
      expect(line).not.toContain('7700900123');
    }
  });

  it('GOV.UK Notify 400: the effect fails (no code_mailed) and its final failure answers code_mail_failed; no code in the error', async () => {
    const { runner, h: hh } = runnerWith(f.adapter());
    const effect = smsEffect(hh, '51840273', '+441134960000');

    const error = await runner.carryOut(effect).then(
      () => null,
      (err: unknown) => err as { code: string; message: string; meta: Record<string, unknown> },
    );

    expect(error).toMatchObject({ code: 'NOTIFY.SEND_FAILED', meta: { reason: 'rejected', status: 400, notifyError: 'ValidationError' } });
    expect(f.fake.accepted).toHaveLength(0);
    expect(JSON.stringify(error)).not.toContain('51840273');
    expect(error!.message).not.toContain('51840273');
    expect(runner.onFinalFailure(effect)).toEqual({ kind: 'unlock', event: { type: 'code_mail_failed', runId: effect.runId, codeHash: 'hash-1' } });
  });

  it('the SMS outbox (demo default): writes one 0600 file with the number, the code in the text and the reference; code_mailed', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sms-outbox-')), 'sms-outbox');
    const { runner, h: hh } = runnerWith(new OutboxSmsAdapter({ dir, logger: createLogger({ name: 'spec', level: 'silent' }) }));
    const effect = smsEffect(hh, '60418257');

    const follow = await runner.carryOut(effect);
    await runner.carryOut(effect);

    const files = await readSmsOutbox(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatchObject({ id: effect.id, channel: 'sms', kind: 'unlock_code', to: '+447700900123', reference: effect.id, personalisation: { code: '60418257', minutes: '15', expires_at: '09:15 GMT' } });
    expect(files[0]!.text).toContain('60418257');
    expect(statSync(files[0]!.file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(follow).toMatchObject({ kind: 'unlock', event: { type: 'code_mailed', runId: effect.runId } });
  });

  it('a process without an SMS carrier (the admin CLI) leaves the effect for the bot: EFFECT.NOT_HERE, nothing unsealed or sent', async () => {
    const { runner, h: hh } = runnerWith(undefined);
    await expect(runner.carryOut(smsEffect(hh, '12345678'))).rejects.toMatchObject({ code: 'EFFECT.NOT_HERE' });
    expect(f.fake.requests).toHaveLength(0);
  });
});
