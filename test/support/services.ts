/**
 * Gate integration suites on the real services they need (Chromium, the Agents
 * Playground, pcscd...). Under `CI=true` a missing service FAILS the test file
 * (the brief: no suite is skipped in CI); elsewhere the suite is skipped with a
 * message saying what is missing and how to get it.
 *
 * Usage in a test file (top-level await is fine in vitest):
 *
 *   const gate = await requireServices([chromiumService(), playgroundService()]);
 *   describe.skipIf(gate.skip)('unlock in the Playground', () => { ... });
 */
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './artifacts';

/** Result of probing one service. */
export type ServiceStatus = { name: string; ok: true } | { name: string; ok: false; reason: string; hint: string };

/** A named probe. */
export interface ServiceCheck {
  name: string;
  /** Resolves to a status; must not throw (a throw counts as "missing"). */
  probe(): Promise<ServiceStatus> | ServiceStatus;
}

/** What a test file does with the probes' results. */
export interface ServiceGate {
  /** True when a service is missing outside CI: skip the suite. */
  skip: boolean;
  /** Every probe's status. */
  statuses: ServiceStatus[];
}

/** True when running under CI (`CI=true` or `CI=1`). */
export function isCI(): boolean {
  const v = (process.env['CI'] ?? '').toLowerCase();
  return v === 'true' || v === '1';
}

/**
 * Probe services and decide: run, skip (no CI) or fail (CI).
 *
 * @param checks - probes, e.g. `[chromiumService(), playgroundService()]`
 * @returns the gate; `skip` is true only outside CI
 * @throws Error under CI when any service is missing (message names each and how to install it)
 */
export async function requireServices(checks: ServiceCheck[]): Promise<ServiceGate> {
  const statuses: ServiceStatus[] = [];
  for (const c of checks) {
    try {
      statuses.push(await c.probe());
    } catch (err) {
      statuses.push({ name: c.name, ok: false, reason: err instanceof Error ? err.message : String(err), hint: 'see the probe' });
    }
  }
  const missing = statuses.filter((s): s is Extract<ServiceStatus, { ok: false }> => !s.ok);
  if (missing.length === 0) return { skip: false, statuses };
  const text = missing.map((m) => `${m.name}: ${m.reason} (${m.hint})`).join('; ');
  if (isCI()) throw new Error(`CI=true and a required service is missing: ${text}`);
  process.stderr.write(`SKIPPING suite, service missing: ${text}. Run \`bash scripts/test-all.sh\` to install and start everything.\n`);
  return { skip: true, statuses };
}

/** Debian's Chromium binary (installed by scripts/setup-system.sh); `CHROMIUM_PATH` overrides. */
export function chromiumExecutable(): string {
  return process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
}

/** Probe: an executable Chromium and the playwright-core package. */
export function chromiumService(): ServiceCheck {
  return {
    name: 'chromium',
    probe: async () => {
      const exe = chromiumExecutable();
      try {
        accessSync(exe, constants.X_OK);
      } catch {
        return { name: 'chromium', ok: false, reason: `${exe} is not an executable`, hint: 'bash scripts/setup-system.sh installs Debian chromium' };
      }
      try {
        await import('playwright-core');
      } catch {
        return { name: 'chromium', ok: false, reason: 'playwright-core cannot be imported', hint: 'npm ci' };
      }
      return { name: 'chromium', ok: true };
    },
  };
}

/** Path of the Agents Playground CLI inside node_modules. */
export function playgroundCli(): string {
  return path.join(REPO_ROOT, 'node_modules', '@microsoft', 'm365agentsplayground', 'cli.js');
}

/** Probe: the pinned Agents Playground package is installed. */
export function playgroundService(): ServiceCheck {
  return {
    name: 'agents-playground',
    probe: () =>
      existsSync(playgroundCli())
        ? { name: 'agents-playground', ok: true }
        : { name: 'agents-playground', ok: false, reason: `${playgroundCli()} is missing`, hint: 'npm ci installs @microsoft/m365agentsplayground' },
  };
}
