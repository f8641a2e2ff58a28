/**
 * Revoking a companion's device credential: the one operation behind
 * `npm run admin -- revoke-device` and the companion's own "unpair"
 * (`device.unpair` request), so both store, audit and close the same way.
 *
 * The store is the truth: once `revokedAt` is set, the link refuses the device on
 * its next message, at its next connect, and closes its open link (at once on the
 * instance that revoked it through {@link RevocationDeps.onRevoked}; on others
 * through the command bus or their periodic revocation check; see
 * `companion-link.server.ts`). The PUK custody re-checks it before any release.
 */
import type { Device, Storage } from '../../storage/storage.port';
import { AppError } from '../../common/app-error';

/** Compare-and-set attempts on a device record before giving up (`DEVICE.BUSY`). */
export const REVOKE_WRITE_ATTEMPTS = 5;

/** Which devices to revoke. */
export type RevocationTarget = { kind: 'device'; deviceId: string } | { kind: 'person'; personId: string };

/** Why: `admin` (the admin command, or RA later), `unpaired` (the person, from the companion). */
export type RevocationReason = 'admin' | 'unpaired';

export type RevocationOutcome =
  /** `revoked`: newly revoked now, as stored before the write (with the instance that held its link); `alreadyRevoked`: nothing to do. */
  | { kind: 'done'; revoked: Device[]; alreadyRevoked: Device[] }
  /** No device with that id (or the person has none). */
  | { kind: 'not_found' };

export interface RevocationDeps {
  storage: Pick<Storage, 'devices' | 'audit'>;
  now: () => Date;
  /**
   * Close the revoked device's open link (the bot: `CompanionLinkServer.closeRevoked`). Not given
   * in the admin command (another process: the bot's revocation check closes it) nor by the link
   * itself for `device.unpair` (it answers first, then closes).
   */
  onRevoked?: (device: Device) => Promise<void>;
}

/**
 * Revoke a device, or every device of a person: set `revokedAt` (compare-and-set), append one
 * `device.revoked` audit entry per device (id `device.revoked:<deviceId>`, so a repeat stores
 * nothing new), then close each open link through `deps.onRevoked`.
 *
 * @param deps - store, clock, and how to close an open link
 * @param target - `{ kind: 'device', deviceId }` or `{ kind: 'person', personId }`
 * @param actor - who did it, for the audit entry: `admin`, `device:<id>`
 * @param reason - `admin` or `unpaired`
 * @returns `done` with the devices revoked now and those already revoked, or `not_found`
 * @throws AppError `DEVICE.BUSY` when a device record kept changing ({@link REVOKE_WRITE_ATTEMPTS} lost
 *   compare-and-sets), or a storage error (nothing is half-done for that device: retry)
 */
export async function revokeDevices(deps: RevocationDeps, target: RevocationTarget, actor: string, reason: RevocationReason): Promise<RevocationOutcome> {
  const { storage } = deps;
  const devices = target.kind === 'device' ? [await storage.devices.get(target.deviceId)].filter((d): d is Device => d !== null) : await storage.devices.listByPerson(target.personId);
  if (devices.length === 0) return { kind: 'not_found' };
  const revoked: Device[] = [];
  const alreadyRevoked: Device[] = [];
  for (const listed of devices) {
    const before = await revokeOne(deps, listed.id);
    if (before === 'already') {
      alreadyRevoked.push(listed);
      continue;
    }
    if (before === null) continue; // deleted meanwhile
    const at = deps.now().toISOString();
    await storage.audit.append({
      id: `device.revoked:${before.id}`,
      at,
      actor,
      action: 'device.revoked',
      personId: before.personId,
      details: { deviceId: before.id, workstation: before.workstation, reason },
    });
    revoked.push(before);
  }
  for (const d of revoked) await deps.onRevoked?.(d);
  return { kind: 'done', revoked, alreadyRevoked };
}

/** Set `revokedAt` on one device; returns it as it was before, `already`, or null when it is gone. */
async function revokeOne(deps: RevocationDeps, deviceId: string): Promise<Device | 'already' | null> {
  for (let i = 0; i < REVOKE_WRITE_ATTEMPTS; i++) {
    const d = await deps.storage.devices.get(deviceId);
    if (!d) return null;
    if (d.revokedAt !== null) return 'already';
    if ((await deps.storage.devices.save({ ...d, revokedAt: deps.now().toISOString() }, d.version)) === 'saved') return d;
  }
  throw new AppError('DEVICE.BUSY', 'the device record kept changing; run the revocation again', { meta: { deviceId } });
}
