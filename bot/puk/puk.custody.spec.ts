/**
 * PUK custody without a server: an in-memory card/device/audit store with the
 * port's compare-and-set semantics, whose every call yields to the event loop
 * (so concurrent releases interleave between read and write), and a recording
 * companion link. Outcomes are read back from the stored card record (unsealed
 * here), the commands the link carried and the audit entries.
 */
import { createSecretKey, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import type { Command, Reply } from '../../protocol/companion-link.protocol';
import type { AuditEntry, CardRecord, Device, SaveResult } from '../../storage/storage.port';
import { deriveKeys } from '../security/keys';
import { unseal } from '../security/seal';
import { PukCustody, sealPuk, type PukCustodyDeps, type UnblockingRun } from './puk.custody';
import type { PukCommitEffect, PukReleaseEffect } from './puk.effects';
import { holderTag, pukAad, UNASSIGNED_CARD_OWNER } from './puk.rules';

const keys = deriveKeys(createSecretKey(Buffer.alloc(32, 9)));
const CARD_ID = '00112233445566778899aabbccddeeff';
const PERSON = 'person-alice';
const OTHER = 'person-bob';
const DEVICE = randomUUID();
const RUN = randomUUID();
const PUK = '73920184';
const ROTATED = ['51846203', '60417329', '28364951'];

const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

class World {
  cards = new Map<string, CardRecord>();
  devices = new Map<string, Device>();
  audit: AuditEntry[] = [];
  sent: { deviceId: string; command: Command; linkSession?: string }[] = [];
  run: UnblockingRun | null = { runId: RUN, cardId: CARD_ID, deviceId: DEVICE, linkSession: null };
  linkAnswer: () => Promise<Reply> = async () => ({ kind: 'ack' });
  saves = 0;
  private fresh = [...ROTATED];

  constructor(owner = PERSON, puk: string | null = PUK) {
    this.cards.set(CARD_ID, { cardId: CARD_ID, personId: owner, puk: puk ? sealPuk(keys.sealKey, puk, CARD_ID) : null, pendingPuk: null, updatedAt: new Date(0).toISOString(), version: 1 });
    this.devices.set(DEVICE, { id: DEVICE, personId: PERSON, workstation: 'WS-1', credentialHash: 'h', createdAt: new Date(0).toISOString(), lastSeenAt: null, revokedAt: null, connectedInstance: null, version: 1 });
  }

  deps(): PukCustodyDeps {
    return {
      storage: {
        cards: {
          get: async (id) => {
            await yieldNow();
            const c = this.cards.get(id);
            return c ? structuredClone(c) : null;
          },
          insert: async () => {
            throw new Error('not used');
          },
          save: async (card, expected): Promise<SaveResult> => {
            await yieldNow();
            const cur = this.cards.get(card.cardId);
            if (!cur || cur.version !== expected) return 'conflict';
            this.saves++;
            this.cards.set(card.cardId, { ...structuredClone(card), version: expected + 1 });
            return 'saved';
          },
        },
        devices: {
          get: async (id) => structuredClone(this.devices.get(id) ?? null),
          insert: async () => {
            throw new Error('not used');
          },
          save: async () => 'conflict',
          listByPerson: async () => [],
        },
        audit: {
          append: async (e) => {
            await yieldNow();
            if (!this.audit.some((a) => a.id === e.id)) this.audit.push(structuredClone(e));
          },
          list: async () => this.audit,
        },
      },
      link: {
        sendCommand: async (deviceId, command, _timeoutMs, options) => {
          await yieldNow();
          this.sent.push({ deviceId, command, ...(options?.linkSession !== undefined ? { linkSession: options.linkSession } : {}) });
          return this.linkAnswer();
        },
      },
      sealKey: keys.sealKey,
      unblockingRun: async () => this.run,
      commandTimeoutMs: 1000,
      now: () => new Date('2026-12-03T10:00:00Z'),
      newPuk: () => this.fresh.shift() ?? '99999999',
    };
  }

  card(): CardRecord {
    return this.cards.get(CARD_ID)!;
  }

  open(sealed: string | null): string | null {
    return sealed ? unseal(keys.sealKey, sealed, pukAad(CARD_ID)) : null;
  }

  actions(): string[] {
    return this.audit.map((a) => a.action);
  }
}

const release = (over: Partial<PukReleaseEffect> = {}): PukReleaseEffect => ({ type: 'puk.release', id: randomUUID(), personId: PERSON, deviceId: DEVICE, cardId: CARD_ID, runId: RUN, ...over });
const commit = (over: Partial<PukCommitEffect> = {}): PukCommitEffect => ({ type: 'puk.commit', id: randomUUID(), personId: PERSON, deviceId: DEVICE, cardId: CARD_ID, runId: RUN, ...over });

/** Every PUK this spec uses must be absent from `text`. */
function expectNoPuk(text: string): void {
  for (const p of [PUK, ...ROTATED]) expect(text).not.toContain(p);
}

describe('PUK release', () => {
  it('stores one sealed pending PUK and sends current and new to the one companion, for that run', async () => {
    const w = new World();
    const out = await new PukCustody(w.deps()).release(release());
    expect(out).toEqual({ kind: 'sent', pukUncertain: false, pendingIssued: true });
    expect(w.sent).toEqual([{ deviceId: DEVICE, command: { kind: 'unlock.authorised', journeyId: RUN, cardId: CARD_ID, puk: PUK, newPuk: ROTATED[0] } }]);
    // Stored: the current PUK unchanged, the new one pending, both sealed for this card.
    expect(w.open(w.card().puk)).toBe(PUK);
    expect(w.open(w.card().pendingPuk)).toBe(ROTATED[0]);
    expect(w.card().pendingPuk).not.toContain(ROTATED[0]!);
    expect(w.actions()).toEqual(['puk.released']);
    expect(w.audit[0]).toMatchObject({ actor: `device:${DEVICE}`, personId: PERSON, details: { cardId: CARD_ID, runId: RUN, pukUncertain: false, pendingIssued: true } });
    expectNoPuk(JSON.stringify(w.audit));
  });

  it('two releases racing store exactly one pending PUK and both send the same pair', async () => {
    const w = new World();
    const custody = new PukCustody(w.deps());
    const outs = await Promise.all([custody.release(release()), custody.release(release()), custody.release(release())]);
    expect(outs.every((o) => o.kind === 'sent')).toBe(true);
    expect(outs.filter((o) => o.kind === 'sent' && o.pendingIssued)).toHaveLength(1);
    expect(w.saves).toBe(1);
    expect(w.open(w.card().pendingPuk)).toBe(ROTATED[0]);
    const pairs = new Set(w.sent.map((s) => (s.command.kind === 'unlock.authorised' ? `${s.command.puk}/${s.command.newPuk}` : '')));
    expect([...pairs]).toEqual([`${PUK}/${ROTATED[0]}`]);
    expect(w.sent).toHaveLength(3);
  });

  it('a pending PUK from an earlier attempt is sent again, marked uncertain (the card may hold it)', async () => {
    const w = new World();
    const custody = new PukCustody(w.deps());
    await custody.release(release());
    const again = await custody.release(release());
    expect(again).toEqual({ kind: 'sent', pukUncertain: true, pendingIssued: false });
    expect(w.sent[1]!.command).toEqual({ kind: 'unlock.authorised', journeyId: RUN, cardId: CARD_ID, puk: PUK, newPuk: ROTATED[0], pukUncertain: true });
  });

  it('carrying out the same effect twice audits it once', async () => {
    const w = new World();
    const custody = new PukCustody(w.deps());
    const e = release();
    await custody.release(e);
    await custody.release(e);
    expect(w.actions()).toEqual(['puk.released']);
  });

  it.each([
    ['the run moved on (code expired, cancelled, a new run started)', (w: World): void => void (w.run = null), 'stale_run'],
    ['another run is unblocking', (w: World): void => void (w.run = { runId: randomUUID(), cardId: CARD_ID, deviceId: DEVICE, linkSession: null }), 'stale_run'],
    ['the run is unblocking with another device', (w: World): void => void (w.run = { runId: RUN, cardId: CARD_ID, deviceId: randomUUID(), linkSession: null }), 'stale_run'],
    ['the card is now bound to someone else', (w: World): void => void (w.card().personId = OTHER), 'not_bound'],
    ['the card went back to its named holder (unbound)', (w: World): void => void (w.card().personId = holderTag(keys.codeHashKey, 'alice@nhs.net')), 'not_bound'],
    ['the PUK was removed', (w: World): void => void (w.card().puk = null), 'no_puk'],
    ['the device was revoked', (w: World): void => void (w.devices.get(DEVICE)!.revokedAt = new Date().toISOString()), 'device_not_paired'],
    ['the device is paired to someone else', (w: World): void => void (w.devices.get(DEVICE)!.personId = OTHER), 'device_not_paired'],
  ] as const)('sends nothing when %s, and audits why', async (_label, change, reason) => {
    const w = new World();
    change(w);
    const before = structuredClone(w.card());
    const out = await new PukCustody(w.deps()).release(release());
    expect(out).toEqual({ kind: 'withheld', reason });
    expect(w.sent).toEqual([]);
    expect(w.card()).toEqual(before); // no pending PUK issued
    expect(w.actions()).toEqual(['puk.withheld']);
    expect(w.audit[0]!.details).toMatchObject({ reason, cardId: CARD_ID, runId: RUN });
  });

  it('a device revoked while the pending PUK is being stored gets nothing: checked again right before the send (breaker F1)', async () => {
    const w = new World();
    const device = w.devices.get(DEVICE)!;
    let reads = 0;
    // The first read (the release check) sees it paired; it is revoked before the next.
    w.devices.get = ((id: string) => (id === DEVICE && ++reads > 1 ? { ...device, revokedAt: new Date().toISOString() } : device)) as typeof w.devices.get;
    const out = await new PukCustody(w.deps()).release(release());
    expect(out).toEqual({ kind: 'withheld', reason: 'device_not_paired' });
    expect(w.sent).toEqual([]);
    expect(w.actions()).toEqual(['puk.withheld']);
  });

  it('a send cut because the device was revoked during it is audited as possibly exposed, not as undelivered', async () => {
    const w = new World();
    w.linkAnswer = async () => {
      w.devices.get(DEVICE)!.revokedAt = new Date().toISOString();
      throw new AppError('LINK.OFFLINE', 'the link closed');
    };
    expect(await new PukCustody(w.deps()).release(release())).toEqual({ kind: 'undelivered', errorCode: 'LINK.OFFLINE' });
    expect(w.actions()).toEqual(['puk.release_maybe_exposed']);
    expect(w.audit[0]!.details).toMatchObject({ revokedDuringSend: true });
    expectNoPuk(JSON.stringify(w.audit));
  });

  it('sends only on the link session that presented the code (issue #10); a release for an older session of the run is withheld', async () => {
    const w = new World();
    const first = randomUUID();
    w.run = { runId: RUN, cardId: CARD_ID, deviceId: DEVICE, linkSession: first };
    const custody = new PukCustody(w.deps());
    expect(await custody.release(release({ linkSession: first }))).toMatchObject({ kind: 'sent' });
    expect(w.sent.map((x) => x.linkSession)).toEqual([first]);
    // The code was presented again on a new link: the run now belongs to that session.
    w.run = { ...w.run, linkSession: randomUUID() };
    expect(await custody.release(release({ linkSession: first }))).toEqual({ kind: 'withheld', reason: 'stale_run' });
    expect(w.sent).toHaveLength(1);
  });

  it('a card imported with no holder is never released', async () => {
    const w = new World(UNASSIGNED_CARD_OWNER);
    expect(await new PukCustody(w.deps()).release(release())).toEqual({ kind: 'withheld', reason: 'not_bound' });
    expect(w.sent).toEqual([]);
  });

  it('a companion that cannot be reached or refuses is audited as undelivered, not thrown (its resume asks again)', async () => {
    const w = new World();
    w.linkAnswer = async () => {
      throw new AppError('LINK.NOT_CONNECTED', 'the companion is not connected');
    };
    const custody = new PukCustody(w.deps());
    expect(await custody.release(release())).toEqual({ kind: 'undelivered', errorCode: 'LINK.NOT_CONNECTED' });
    w.linkAnswer = async () => ({ kind: 'error', code: 'COMPANION.TIMEOUT', message: 'too slow' });
    expect(await custody.release(release())).toEqual({ kind: 'undelivered', errorCode: 'COMPANION.TIMEOUT' });
    expect(w.actions()).toEqual(['puk.release_undelivered', 'puk.release_undelivered']);
    expectNoPuk(JSON.stringify(w.audit));
  });
});

describe('PUK rotation commit', () => {
  it('moves the pending PUK to current once; a repeat finds nothing pending', async () => {
    const w = new World();
    const custody = new PukCustody(w.deps());
    await custody.release(release());
    const results = await Promise.all([custody.commit(commit()), custody.commit(commit())]);
    expect(results.map((r) => r.kind).sort()).toEqual(['committed', 'nothing_pending']);
    expect(w.open(w.card().puk)).toBe(ROTATED[0]);
    expect(w.card().pendingPuk).toBeNull();
    expect(w.actions().filter((a) => a === 'card.puk_rotated')).toHaveLength(1);
    // The next release starts from the rotated PUK with a fresh pending one.
    await custody.release(release());
    expect(w.sent[1]!.command).toEqual({ kind: 'unlock.authorised', journeyId: RUN, cardId: CARD_ID, puk: ROTATED[0], newPuk: ROTATED[1] });
    expectNoPuk(JSON.stringify(w.audit));
  });

  it('does not commit onto a card no longer bound to the person', async () => {
    const w = new World();
    const custody = new PukCustody(w.deps());
    await custody.release(release());
    w.card().personId = OTHER;
    expect(await custody.commit(commit())).toEqual({ kind: 'skipped', reason: 'not_bound' });
    expect(w.open(w.card().puk)).toBe(PUK);
    expect(w.open(w.card().pendingPuk)).toBe(ROTATED[0]);
  });
});

describe('nothing secret leaves the custody', () => {
  it('errors thrown (card record always changing, a PUK that does not open) name no PUK', async () => {
    const busy = new World();
    await new PukCustody(busy.deps()).release(release());
    const deps = busy.deps();
    const custody = new PukCustody({ ...deps, storage: { ...deps.storage, cards: { ...deps.storage.cards, save: async () => 'conflict' } } });
    const err = await custody.commit(commit()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CARD.BUSY');
    expectNoPuk(JSON.stringify(err) + String(err) + (err as Error).stack);

    const fresh = new World();
    const freshDeps = fresh.deps();
    const busyRelease = new PukCustody({ ...freshDeps, storage: { ...freshDeps.storage, cards: { ...freshDeps.storage.cards, save: async () => 'conflict' } } });
    const err2 = await busyRelease.release(release()).catch((e: unknown) => e);
    expect((err2 as AppError).code).toBe('CARD.BUSY');
    expectNoPuk(JSON.stringify(err2) + String(err2));
    expect(fresh.sent).toEqual([]);

    const otherKey = deriveKeys(createSecretKey(Buffer.alloc(32, 3))).sealKey;
    const w = new World();
    const err3 = await new PukCustody({ ...w.deps(), sealKey: otherKey }).release(release()).catch((e: unknown) => e);
    expect((err3 as AppError).code).toBe('CRYPTO.UNSEAL_FAILED');
    expectNoPuk(JSON.stringify(err3) + String(err3));
    expect(w.sent).toEqual([]);
    for (const world of [busy, fresh, w]) expectNoPuk(JSON.stringify(world.audit));
  });
});
