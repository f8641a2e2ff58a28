import { createSecretKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveKeys } from '../security/keys';
import { cardClaim, holderTag, HOLDER_TAG_PREFIX, isUnconfirmedOwner, mayReceivePuk, pukAad, UNASSIGNED_CARD_OWNER } from './puk.rules';

const keys = deriveKeys(createSecretKey(Buffer.alloc(32, 7)));
const SEALED = 'v1.sealed-value';
const ALICE = 'person-alice';
const BOB = 'person-bob';
const aliceTag = holderTag(keys.codeHashKey, 'alice@nhs.net');

describe('who may ever receive a card PUK', () => {
  it('the person the card is bound to, while a PUK is enrolled', () => {
    expect(mayReceivePuk({ personId: ALICE, puk: SEALED }, ALICE)).toEqual({ ok: true });
  });

  it('nobody while no PUK is enrolled, not even the bound person', () => {
    expect(mayReceivePuk({ personId: ALICE, puk: null }, ALICE)).toEqual({ ok: false, reason: 'no_puk' });
  });

  it('not the holder the card-management system named until registration binds the card', () => {
    expect(mayReceivePuk({ personId: aliceTag, puk: SEALED }, ALICE)).toEqual({ ok: false, reason: 'not_bound' });
    expect(cardClaim({ personId: aliceTag }, ALICE, aliceTag)).toBe('bindable');
  });

  it('nobody for a card imported with no holder: registering it does not bind it', () => {
    expect(mayReceivePuk({ personId: UNASSIGNED_CARD_OWNER, puk: SEALED }, ALICE)).toEqual({ ok: false, reason: 'not_bound' });
    expect(cardClaim({ personId: UNASSIGNED_CARD_OWNER }, ALICE, aliceTag)).toBe('unconfirmed');
  });

  it("never someone else's card, nor a card whose named holder is someone else", () => {
    expect(mayReceivePuk({ personId: BOB, puk: SEALED }, ALICE)).toEqual({ ok: false, reason: 'not_bound' });
    expect(cardClaim({ personId: BOB }, ALICE, aliceTag)).toBe('taken');
    const bobTag = holderTag(keys.codeHashKey, 'bob@nhs.net');
    expect(cardClaim({ personId: bobTag }, ALICE, aliceTag)).toBe('unconfirmed');
  });

  it('no card record: nothing to receive; registration creates it bound', () => {
    expect(mayReceivePuk(null, ALICE)).toEqual({ ok: false, reason: 'no_card' });
    expect(cardClaim(null, ALICE, aliceTag)).toBe('new');
    expect(cardClaim({ personId: ALICE }, ALICE, aliceTag)).toBe('bound');
  });

  it('holder tags match the email however it is cased or padded, and do not hold the address', () => {
    expect(holderTag(keys.codeHashKey, '  Alice@NHS.net ')).toBe(aliceTag);
    expect(holderTag(keys.codeHashKey, 'alice2@nhs.net')).not.toBe(aliceTag);
    expect(aliceTag.startsWith(HOLDER_TAG_PREFIX)).toBe(true);
    expect(aliceTag).toMatch(/^holder:[0-9a-f]{64}$/);
    expect(aliceTag).not.toContain('alice');
    expect(isUnconfirmedOwner(aliceTag)).toBe(true);
    expect(isUnconfirmedOwner(UNASSIGNED_CARD_OWNER)).toBe(true);
    expect(isUnconfirmedOwner(ALICE)).toBe(false);
  });

  it('seals PUKs for one card: the AAD names the card', () => {
    expect(pukAad('00112233445566778899aabbccddeeff')).toBe('puk:00112233445566778899aabbccddeeff');
  });
});
