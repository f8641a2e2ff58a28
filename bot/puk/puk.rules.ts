/**
 * Who may ever receive a card's PUK (DESIGN.md "Trust boundaries": the PUK is sent
 * to the paired companion only at the unblock step, after every check).
 *
 * A card record names its owner in `personId`:
 * - a person's id: the card is bound to that person; only they may have its PUK
 *   used for a self-unlock, and only while the card record holds a PUK;
 * - {@link UNASSIGNED_CARD_OWNER}: the PUK was imported with no holder named;
 *   registering the card does not bind it (RA confirms the holder);
 * - a holder tag ({@link holderTag}): the card-management system named the
 *   holder by email; the registrant whose registration code went to that address
 *   binds the card when they register.
 *
 * Pure functions: no I/O, so the rules are read and tested in one place.
 */
import type { KeyObject } from 'node:crypto';
import type { CardRecord } from '../../storage/storage.port';
import { keyedHash } from '../security/codes';

/**
 * `personId` of a card record whose PUK was enrolled (imported) with no holder
 * named: registering such a card does not bind it; RA confirms the holder.
 */
export const UNASSIGNED_CARD_OWNER = 'unassigned';

/** Prefix of a card record's `personId` while it waits for the holder the card-management system named. */
export const HOLDER_TAG_PREFIX = 'holder:';

/**
 * The owner tag of an enrolled card waiting for its holder: a keyed hash of the
 * holder's email as the card-management system gave it, so the address itself is
 * not stored on the card record.
 *
 * @param key - the service's code-hash key (`DerivedKeys.codeHashKey`)
 * @param email - the holder's email; trimmed and lower-cased before hashing
 * @returns `holder:<64 hex digits>` (HMAC-SHA-256, purpose `card-holder`)
 */
export function holderTag(key: KeyObject, email: string): string {
  return `${HOLDER_TAG_PREFIX}${keyedHash(key, 'card-holder', email.trim().toLowerCase())}`;
}

/**
 * True when a card record's owner is a placeholder (imported with no holder, or
 * waiting for the holder the card-management system named), not a person.
 *
 * @param owner - a card record's `personId`
 */
export function isUnconfirmedOwner(owner: string): boolean {
  return owner === UNASSIGNED_CARD_OWNER || owner.startsWith(HOLDER_TAG_PREFIX);
}

/** How a registrant stands to a card: see {@link cardClaim}. */
export type CardClaim = 'bound' | 'bindable' | 'unconfirmed' | 'taken' | 'new';

/**
 * Whether a registrant may have the card's PUK used for self-unlock: only when
 * the card is already theirs, or the card-management system named them as its
 * holder (matched on the email their registration code was sent to). A card
 * whose holder is unknown, or someone else, is registered but not bound; RA
 * confirms. This is what stops a companion that merely claims a card id from
 * ever being given that card's PUK.
 *
 * @param card - the card record, or null when none is stored
 * @param personId - the registrant
 * @param tagForEmail - {@link holderTag} of the email the registration code was sent to
 * @returns `bound` (theirs), `bindable` (named holder: bind now), `unconfirmed` (placeholder
 *   owner, not them: register without binding), `taken` (another person's), `new` (no record)
 */
export function cardClaim(card: Pick<CardRecord, 'personId'> | null, personId: string, tagForEmail: string): CardClaim {
  if (!card) return 'new';
  if (card.personId === personId) return 'bound';
  if (card.personId === tagForEmail) return 'bindable';
  if (isUnconfirmedOwner(card.personId)) return 'unconfirmed';
  return 'taken';
}

/** Why a person may not receive a card's PUK now. */
export type PukRefusal = 'no_card' | 'not_bound' | 'no_puk';

/**
 * May `personId` receive this card's PUK (for a self-unlock)? Only when the card is
 * bound to them and a PUK is enrolled. A holder tag naming them is not enough: the
 * card must be bound first (at registration, {@link cardClaim} `bindable`).
 *
 * @param card - the card record as stored now, or null
 * @param personId - who would receive it
 * @returns `{ ok: true }` or `{ ok: false, reason }`
 */
export function mayReceivePuk(card: Pick<CardRecord, 'personId' | 'puk'> | null, personId: string): { ok: true } | { ok: false; reason: PukRefusal } {
  if (!card) return { ok: false, reason: 'no_card' };
  if (card.personId !== personId) return { ok: false, reason: 'not_bound' };
  if (!card.puk) return { ok: false, reason: 'no_puk' };
  return { ok: true };
}

/**
 * The AES-GCM additional authenticated data a card's PUK is sealed with, so a sealed
 * PUK copied onto another card's record does not open.
 *
 * @param cardId - CHUID GUID, 32 hex digits
 * @returns `puk:<cardId>`
 */
export function pukAad(cardId: string): string {
  return `puk:${cardId}`;
}
