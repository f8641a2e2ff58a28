/**
 * pcscd + vpcd for integration tests: make sure the service runs (through
 * `scripts/pcscd.sh start`, which installs it if missing), and gate a suite on
 * it. Under `CI=true` a missing service FAILS the file; elsewhere the suite is
 * skipped with a message saying what is missing.
 *
 * Usage in a test file:
 *
 *   const pcscd = ensurePcscd();
 *   const run = requireService('pcscd with vpcd', pcscd.ok, pcscd.ok ? undefined : pcscd.reason);
 *   describe.skipIf(!run)('PIV over PC/SC', () => { ... });
 *
 * or, with the shared gate of `services.ts`: `await requireServices([pcscdService()])`.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { CardReaderPort } from '../../companion/piv/card-connection';
import { waitForCardState } from '../../companion/piv/reader-events';
import { PcscReaderAdapter } from '../../companion/pcsc/pcsc-reader.adapter';
import type { VpcdClient } from '../../companion/virtual-card/vpcd-client';
import { REPO_ROOT } from './artifacts';
import { isCI, type ServiceCheck, type ServiceStatus } from './services';

/** vpcd's first reader: the card is a TCP client of 127.0.0.1:35963. */
export const VPCD_READER = { name: 'Virtual PCD 00 00', port: 35963 } as const;
/** vpcd's second reader, on port 35964. */
export const VPCD_READER_2 = { name: 'Virtual PCD 00 01', port: 35964 } as const;

/** Outcome of {@link ensurePcscd}. */
export type PcscdStatus = { ok: true } | { ok: false; reason: string };

/**
 * Start pcscd with vpcd if it is not running (idempotent: ~0.1 s when it runs; the
 * first call on a fresh machine may apt-install pcscd and vsmartcard-vpcd and take minutes).
 *
 * WARNING: synchronous (it blocks the event loop while the script runs): call it at
 * collection time or when no virtual card is being served from this process.
 *
 * @returns `{ ok: true }` once vpcd listens on 35963, else the script's complaint
 */
export function ensurePcscd(): PcscdStatus {
  try {
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'pcscd.sh'), 'start'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
    return { ok: true };
  } catch (error) {
    const e = error as { stderr?: Buffer; message: string };
    return { ok: false, reason: (e.stderr?.toString().trim() || e.message).slice(-2000) };
  }
}

/**
 * Decide whether a suite that needs a service runs.
 *
 * @param name - the service, for the message (e.g. `pcscd with vpcd`)
 * @param available - whether it is there
 * @param reason - why not, when known
 * @returns true to run; false to skip (outside CI only; a line on stderr says why)
 * @throws Error under `CI=true` when the service is not available (no suite is skipped in CI)
 */
export function requireService(name: string, available: boolean, reason?: string): boolean {
  if (available) return true;
  const text = `${name} is not available${reason ? `: ${reason}` : ''}`;
  if (isCI()) throw new Error(`CI=true and a required service is missing: ${text}`);
  process.stderr.write(`SKIPPING suite: ${text}. Start it with \`bash scripts/pcscd.sh start\`.\n`);
  return false;
}

/**
 * A {@link ServiceCheck} for `requireServices` of `services.ts`: pcscd started
 * through the script, and a PC/SC context that opens and closes through the adapter.
 */
export function pcscdService(): ServiceCheck {
  const name = 'pcscd with vpcd';
  return {
    name,
    probe: async (): Promise<ServiceStatus> => {
      const started = ensurePcscd();
      if (!started.ok) return { name, ok: false, reason: started.reason, hint: 'bash scripts/pcscd.sh start' };
      try {
        const adapter = await PcscReaderAdapter.open();
        await adapter.close();
      } catch (error) {
        return { name, ok: false, reason: (error as Error).message, hint: 'npm ci builds pcsclite against libpcsclite-dev' };
      }
      return { name, ok: true };
    },
  };
}

/**
 * Insert a virtual card into a vpcd reader and wait until pcscd reports it.
 *
 * Checks first that the reader is empty and then that vpcd really talks to this
 * client, so a reader held by another virtual card (another test run, a
 * companion demo) fails loudly instead of a test reading someone else's card.
 *
 * @param port - the reader port that must see the card (usually the PC/SC adapter)
 * @param client - the vpcd client of the card
 * @param reader - the vpcd reader name matching the client's port
 * @param timeoutMs - per step, in ms
 * @throws Error when the reader already has a card, vpcd does not serve the client, or pcscd does not report it
 */
export async function insertVirtualCard(port: CardReaderPort, client: VpcdClient, reader: string, timeoutMs = 5000): Promise<void> {
  try {
    await waitForCardState(port, reader, 'absent', 1500);
  } catch {
    throw new Error(`reader "${reader}" already holds a card: another virtual card uses vpcd port ${client.port} (another test run or the demo?)`);
  }
  await client.connect();
  const deadline = Date.now() + timeoutMs;
  while (client.framesReceived === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  if (client.framesReceived === 0) {
    await client.disconnect();
    throw new Error(`vpcd on port ${client.port} did not talk to the card within ${timeoutMs} ms: another client holds the port`);
  }
  await waitForCardState(port, reader, 'present', timeoutMs);
}
