/**
 * Card certificates over real PC/SC (issue #14): pcscd with the vpcd reader, the project's virtual PIV
 * card carrying X.509 certificates made at set-up with Debian's `openssl` (test/support/test-certs.ts),
 * the PC/SC adapter, PivSession and the companion's card service. Every assertion is on what came back
 * over PC/SC: the certificate bytes, their notAfter as the companion reports them, the status words.
 * OpenSC's `pkcs15-tool` (an independent PIV host) reads the same certificate as a cross-check.
 *
 * Needs pcscd + vpcd and openssl. Under CI=true a missing one fails the file; without CI it is skipped.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CardService } from '../../companion/card/card.service';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import { transceive } from '../../companion/piv/apdu';
import type { CardConnection } from '../../companion/piv/card-connection';
import { PivSession } from '../../companion/piv/piv.session';
import { waitForCardState } from '../../companion/piv/reader-events';
import { decodeTlvs } from '../../companion/piv/tlv';
import { VirtualPivCard, type VirtualPivCardOptions } from '../../companion/virtual-card/virtual-piv-card';
import { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import { ensurePcscd, insertVirtualCard, requireService, VPCD_READER } from '../support/pcscd';
import { isCI } from '../support/services';
import { derBySlot, opensslAvailable, TestCertificateAuthority, type TestCardCertificates } from '../support/test-certs';

const execFileAsync = promisify(execFile);

const pcscd = ensurePcscd();
const opensslHere = opensslAvailable();
if (!opensslHere && isCI()) throw new Error('openssl is missing: the card certificates are made with it at set-up (CI=true: failing, not skipping)');
if (!opensslHere) console.warn('card-certificates.test.ts: skipped, openssl is not installed');
const run = opensslHere && requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);

const VALID_CARD = 'c0ffee00000040008000aaaaaaaaaa01';
const EXPIRED_CARD = 'c0ffee00000040008000eeeeeeeeee02';
const BARE_CARD = 'c0ffee00000040008000000000000003';
const PIN = '362514';
const PUK = '80517264';
const EVENT_TIMEOUT_MS = 5000;
const SELECT_PIV = '00A404000BA00000030800001000010000';
const logger = createLogger({ name: 'card-certificates-test', level: 'silent' });

const hex = (bytes: Buffer): string => bytes.toString('hex').toUpperCase();

describe.skipIf(!run)('card certificates over pcscd + vpcd (issue #14)', () => {
  let adapter: PcscReaderAdapter;
  let ca: TestCertificateAuthority;
  let valid: TestCardCertificates;
  let expired: TestCardCertificates;
  let client: VpcdClient | undefined;
  const open: CardConnection[] = [];

  /** Pull the card in the reader (if any) and insert a new virtual card built with `options`. */
  async function useCard(options: Partial<VirtualPivCardOptions> & { cardId: string }): Promise<VirtualPivCard> {
    if (client?.connected) {
      await client.disconnect();
      await waitForCardState(adapter, VPCD_READER.name, 'absent', EVENT_TIMEOUT_MS);
    }
    const card = new VirtualPivCard({ pin: PIN, puk: PUK, ...options });
    client = new VpcdClient({ card, port: VPCD_READER.port });
    await insertVirtualCard(adapter, client, VPCD_READER.name, EVENT_TIMEOUT_MS);
    return card;
  }

  async function connect(): Promise<CardConnection> {
    const conn = await adapter.connect(VPCD_READER.name);
    open.push(conn);
    return conn;
  }

  /** The card service the companion runs, over PC/SC, limited to the vpcd reader. */
  const companionStatus = () => new CardService({ reader: adapter, readerName: VPCD_READER.name, logger }).readStatus();

  beforeAll(async () => {
    ca = TestCertificateAuthority.create();
    valid = ca.validCardCertificates('Vera Valid');
    expired = ca.expiredCardCertificates('Eric Expired', 20);
    adapter = await PcscReaderAdapter.open();
  });

  afterEach(async () => {
    while (open.length > 0) await open.pop()!.close('reset');
  });

  afterAll(async () => {
    while (open.length > 0) await open.pop()!.close('reset');
    await client?.disconnect();
    await adapter?.close();
    ca?.cleanup();
  });

  it('a valid card: the companion reports its 9A and 9E certificates with notAfter in the future, read over PC/SC', async () => {
    await useCard({ cardId: VALID_CARD, certificates: derBySlot(valid) });
    const status = await companionStatus();
    expect(status).toEqual({
      present: true,
      reader: VPCD_READER.name,
      cardId: VALID_CARD,
      pinRetries: 3,
      certificates: [
        { slot: '9A', notAfter: valid['9A'].notAfter.toISOString() },
        { slot: '9E', notAfter: valid['9E'].notAfter.toISOString() },
      ],
    });
    for (const c of status.present ? (status.certificates ?? []) : []) expect(Date.parse(c.notAfter)).toBeGreaterThan(Date.now());
  });

  it('an expired card: the companion reports notAfter in the past for both certificates; PivSession reads the same', async () => {
    await useCard({ cardId: EXPIRED_CARD, certificates: derBySlot(expired) });
    const status = await companionStatus();
    expect(status).toMatchObject({ present: true, cardId: EXPIRED_CARD });
    const reported = status.present ? (status.certificates ?? []) : [];
    expect(reported.map((c) => c.slot)).toEqual(['9A', '9E']);
    for (const c of reported) {
      expect(c.notAfter).toBe(expired[c.slot].notAfter.toISOString());
      expect(Date.parse(c.notAfter)).toBeLessThan(Date.now());
    }
    const readings = await (await PivSession.open(await connect())).readCertificates();
    const cn = (subject: string): string | undefined => subject.split('\n').find((line) => line.startsWith('CN='));
    expect(readings.map((r) => (r.status === 'present' ? [r.slot, r.certificate.notAfter, cn(r.certificate.subject)] : [r.slot, r.status]))).toEqual([
      ['9A', expired['9A'].notAfter.toISOString(), 'CN=Eric Expired'],
      ['9E', expired['9E'].notAfter.toISOString(), 'CN=Eric Expired card auth'],
    ]);
  });

  it('GET DATA 00 CB 3F FF 5C 03 5FC105 over PC/SC returns 53 { 70 DER, 71 00, FE 00 } (SP 800-73-4 Part 1, Appendix A)', async () => {
    await useCard({ cardId: VALID_CARD, certificates: derBySlot(valid) });
    const conn = await connect();
    await transceive(conn, { ins: 0xa4, p1: 0x04, p2: 0x00, data: Buffer.from('A0000003080000100001 00'.replace(/\s/g, ''), 'hex'), le: 256 });
    for (const [tag, slot] of [[[0x5f, 0xc1, 0x05], '9A'], [[0x5f, 0xc1, 0x01], '9E']] as const) {
      const data = await transceive(conn, { ins: 0xcb, p1: 0x3f, p2: 0xff, data: Buffer.from([0x5c, 0x03, ...tag]), le: 256 });
      const [object] = decodeTlvs(data);
      expect(object?.tag).toBe(0x53);
      const fields = decodeTlvs(object!.value);
      expect(fields.map((f) => f.tag)).toEqual([0x70, 0x71, 0xfe]);
      expect(fields[0]!.value.equals(valid[slot].der)).toBe(true);
      expect(new X509Certificate(fields[0]!.value).validTo).toBe(new X509Certificate(valid[slot].pem).validTo);
      expect(hex(fields[1]!.value)).toBe('00');
      expect(fields[2]!.value.length).toBe(0);
    }
  });

  it('a card without certificate objects reports none (certificates: []), not an error; malformed bytes are reported as no usable certificate', async () => {
    await useCard({ cardId: BARE_CARD });
    expect(await companionStatus()).toEqual({ present: true, reader: VPCD_READER.name, cardId: BARE_CARD, pinRetries: 3, certificates: [] });
    await useCard({ cardId: BARE_CARD, certificates: { '9A': Buffer.from('30820100deadbeef', 'hex'), '9E': expired['9E'].der } });
    expect(await companionStatus()).toEqual({
      present: true,
      reader: VPCD_READER.name,
      cardId: BARE_CARD,
      pinRetries: 3,
      certificates: [{ slot: '9E', notAfter: expired['9E'].notAfter.toISOString() }],
    });
  });

  it('status words like a real card over PC/SC: 6985 before SELECT, 6A82 for another AID with P2=0C (PIN stays verified), chained VERIFY (CLA 10)', async () => {
    await useCard({ cardId: VALID_CARD, certificates: derBySlot(valid) });
    const conn = await connect();
    const send = async (h: string): Promise<string> => hex(await conn.transmit(Buffer.from(h.replace(/\s/g, ''), 'hex')));
    // A fresh connection after a reset: nothing selected.
    expect(await send('00CB3FFF055C035FC10500')).toBe('6985');
    expect(await send('00200080')).toBe('6985');
    expect((await send(SELECT_PIV)).slice(-4)).toMatch(/^(9000|61..)$/);
    const block = hex(Buffer.concat([Buffer.from(PIN), Buffer.alloc(8 - PIN.length, 0xff)]));
    expect(await send(`1020008004${block.slice(0, 8)}`)).toBe('9000');
    expect(await send(`0020008004${block.slice(8)}`)).toBe('9000');
    expect(await send('00200080')).toBe('9000');
    expect(await send('00A4040C07A0000000031010')).toBe('6A82');
    expect(await send('00200080')).toBe('9000');
    expect(await send('10A404000BA000000308000010000100')).toBe('6884');
  });

  it('OpenSC pkcs15-tool (an independent PIV host) reads the same PIV Authentication certificate (when installed)', async (ctx) => {
    await useCard({ cardId: VALID_CARD, certificates: derBySlot(valid) });
    let out: string;
    try {
      // Async: the virtual card answers from this process's event loop.
      ({ stdout: out } = await execFileAsync('pkcs15-tool', ['--reader', VPCD_READER.name, '--read-certificate', '01'], { encoding: 'utf8', timeout: 60_000 }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !isCI()) {
        ctx.skip();
        return;
      }
      throw error;
    }
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0];
    expect(pem, out).toBeDefined();
    expect(new X509Certificate(pem!).raw.equals(valid['9A'].der)).toBe(true);
  });
});
