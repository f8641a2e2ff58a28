import type { JourneyKind } from '../../storage/storage.port';

/** Storage key of a person's journey of one kind: `<personId>:<kind>` (one record per person and kind). */
export function journeyKey(personId: string, kind: JourneyKind): string {
  return `${personId}:${kind}`;
}
