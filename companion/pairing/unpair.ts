/**
 * Unpair this computer: ask the bot to revoke this companion's device credential
 * (the `device.unpair` request; the bot runs the same revocation as
 * `npm run admin -- revoke-device`), then delete the stored credential.
 *
 * Two ways in: {@link unpairOverLink} for a companion that already holds its link
 * (its menu, issue #13), and {@link unpairFromCommandLine} for `companion --unpair`,
 * which opens a link of its own with the stored credential. The bot keeps a
 * device's first live link, so the command line needs the companion itself to be
 * stopped first; it says so when the bot refuses the second link.
 */
import type { Logger } from '../../common/logger';
import { CloseCodes, type Request } from '../../protocol/companion-link.protocol';
import { linkUrlFor } from '../config';
import { LinkClient, type RequestResult } from '../link/link.client';
import type { CredentialStore } from './credential.store';

/** What an unpair did. */
export type UnpairOutcome =
  /** The bot revoked the credential and it was deleted here. */
  | { kind: 'unpaired' }
  /** No credential was stored: nothing to do. */
  | { kind: 'not_paired' }
  /** The bot no longer accepted the credential (revoked earlier): it was deleted here. */
  | { kind: 'already_revoked' }
  /** Another connection with this credential holds the link (the companion is running): nothing changed. */
  | { kind: 'in_use' }
  /** The bot could not be reached or did not confirm: nothing changed (the credential is kept). */
  | { kind: 'unreachable' };

/**
 * Unpair over a link that is up: send `device.unpair`, and on `ok` delete the stored credential.
 *
 * @param deps.request - the link's request function (`LinkClient.request`)
 * @param deps.credentials - the credential file
 * @param deps.logger - non-secret facts only
 * @returns `unpaired`, or `unreachable` when the bot did not answer `ok` (the credential is kept)
 */
export async function unpairOverLink(deps: { request: (request: Request, timeoutMs?: number) => Promise<RequestResult>; credentials: CredentialStore; logger: Logger }): Promise<Extract<UnpairOutcome, { kind: 'unpaired' | 'unreachable' }>> {
  const result = await deps.request({ kind: 'device.unpair' });
  if (!result.ok || result.response.kind !== 'ok') {
    deps.logger.warn({ outcome: result.ok ? result.response.kind : result.reason }, 'unpair not confirmed by the bot; the credential is kept');
    return { kind: 'unreachable' };
  }
  await deps.credentials.delete();
  deps.logger.info('unpaired: the bot revoked this device and its credential was deleted');
  return { kind: 'unpaired' };
}

/**
 * `companion --unpair`: open a link with the stored credential, unpair over it, close it.
 *
 * @param options.botUrl - the bot base URL (the stored credential must belong to it)
 * @param options.workstation - sent in `hello`
 * @param options.version - companion version, sent in `hello`
 * @param options.ca - CA certificates (PEM) for a `wss://` bot with a private CA (config `botCa`); absent = Node's list
 * @param options.timeoutMs - how long to try to reach the bot, ms (default 15 000)
 * @returns what happened ({@link UnpairOutcome}); never throws for an outcome
 * @throws CredentialStoreError when the credential file exists but cannot be read or deleted
 */
export async function unpairFromCommandLine(options: { botUrl: URL; workstation: string; version: string; credentials: CredentialStore; logger: Logger; ca?: readonly string[] | null; timeoutMs?: number }): Promise<UnpairOutcome> {
  const { credentials, logger } = options;
  const stored = await credentials.read(options.botUrl);
  if (!stored) return { kind: 'not_paired' };
  let refused: 'unauthorised' | 'in_use' | null = null;
  let wake: () => void = () => undefined;
  const refusal = new Promise<void>((resolve) => (wake = resolve));
  const link = new LinkClient({
    url: linkUrlFor(options.botUrl),
    credential: stored.credential,
    workstation: options.workstation,
    version: options.version,
    logger,
    ...(options.ca ? { ca: options.ca } : {}),
    // This process unpairs only: it carries out no command (the bot keeps it for the companion).
    onCommand: async () => ({ kind: 'error', code: 'COMPANION.UNPAIRING', message: 'this companion is being unpaired' }),
    onUnauthorised: () => {
      refused ??= 'unauthorised';
      wake();
    },
    onClose: (code) => {
      if (code === CloseCodes.IN_USE && refused === null) {
        refused = 'in_use';
        wake();
      }
    },
  });
  link.start();
  try {
    const ready = await Promise.race([link.waitUntilReady(options.timeoutMs ?? 15_000), refusal.then(() => false)]);
    if (!ready) {
      if (refused === 'unauthorised') {
        await credentials.delete();
        return { kind: 'already_revoked' };
      }
      return refused === 'in_use' ? { kind: 'in_use' } : { kind: 'unreachable' };
    }
    return await unpairOverLink({ request: (r, t) => link.request(r, t), credentials, logger });
  } finally {
    await link.stop();
  }
}
