/**
 * Companion link overhead: `card.read_status` sent by the bot over the
 * WebSocket link to a real companion runtime, against the same card read done
 * directly with a PIV session. Both use one in-process virtual card, so the
 * difference is what the link adds (JSON framing and validation both ways,
 * WebSocket on loopback, the companion's command router and card service).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../common/logger';
import type { BotApp } from '../bot/main';
import type { Person } from '../storage/storage.port';
import { CardService } from '../companion/card/card.service';
import { CompanionRuntime } from '../companion/companion.runtime';
import { CredentialStore } from '../companion/pairing/credential.store';
import { PivSession } from '../companion/piv/piv.session';
import { InProcessReaderAdapter } from '../companion/virtual-card/in-process-reader.adapter';
import { VirtualPivCard } from '../companion/virtual-card/virtual-piv-card';
import { LatencyRecorder, round, type LatencySummary } from './latency.stats';

export interface LinkBenchResult {
  direct: LatencySummary;
  link: LatencySummary;
  /** link p50 - direct p50, ms. */
  overheadP50Ms: number;
  /** link p99 - direct p99, ms. */
  overheadP99Ms: number;
  /** Replies that were not the expected card status (should be 0). */
  errors: number;
}

/** What both paths must read from the card. */
interface Expected {
  cardId: string;
  pinRetries: number;
}

/**
 * Pair a companion for `person` through the bot's pairing service (RFC 8628 flow:
 * start, approve as the person would in Teams, poll for the credential) and store the credential.
 */
export async function pairCompanion(app: BotApp, person: Person, credentials: CredentialStore, botUrl: URL): Promise<string> {
  const started = await app.pairing.start({ workstation: 'BENCH-WS' });
  const approved = await app.pairing.approve(person, started.userCode);
  if (!approved.ok) throw new Error(`pairing refused: ${approved.message}`);
  const polled = await app.pairing.poll(started.deviceCode);
  if (polled.status !== 'approved') throw new Error(`pairing poll answered ${polled.status}`);
  await credentials.write({ deviceId: polled.deviceId, credential: polled.credential, personName: polled.personName, botUrl: botUrl.href, pairedAt: new Date().toISOString() });
  return polled.deviceId;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Measure both paths in alternating blocks (so drift hits both alike).
 *
 * @param app - the running bot
 * @param person - a registered person to pair the companion with; the virtual card carries their card id
 * @param options.blocks - alternating blocks per path; options.perBlock - calls per block; options.warmup - unrecorded calls per path
 */
export async function benchLink(app: BotApp, person: Person, logger: Logger, options: { blocks: number; perBlock: number; warmup: number }): Promise<LinkBenchResult> {
  const cardId = person.cardId ?? '00112233445566778899aabbccddeeff';
  const reader = new InProcessReaderAdapter();
  reader.insert(new VirtualPivCard({ cardId, pin: '204817', puk: '73920184', blocked: true }));
  const expected: Expected = { cardId, pinRetries: 0 };
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-companion-'));
  const botUrl = new URL(app.url);
  const credentials = new CredentialStore(join(dataDir, 'companion'), logger);
  const deviceId = await pairCompanion(app, person, credentials, botUrl);
  const runtime = new CompanionRuntime({
    botUrl,
    workstation: 'BENCH-WS',
    pagePort: 0,
    credentials,
    card: new CardService({ reader, readerName: null, logger, insertSettleMs: 5 }),
    logger,
    print: () => undefined,
  });
  let errors = 0;
  try {
    await runtime.start();
    await until(() => runtime.linkState === 'ready' && app.link.isConnected(deviceId), 10_000, 'the companion link');

    const direct = async (): Promise<void> => {
      const conn = await reader.connect(reader.readerName);
      try {
        const session = await PivSession.open(conn);
        const id = await session.readCardId();
        const pin = await session.readPinStatus();
        if (id !== expected.cardId || pin.retries !== expected.pinRetries) errors += 1;
      } finally {
        await conn.close('reset');
      }
    };
    const overLink = async (): Promise<void> => {
      const reply = await app.link.sendCommand(deviceId, { kind: 'card.read_status' }, 10_000);
      if (reply.kind !== 'card.status' || !reply.status.present || reply.status.cardId !== expected.cardId || reply.status.pinRetries !== expected.pinRetries) errors += 1;
    };

    for (let i = 0; i < options.warmup; i++) {
      await direct();
      await overLink();
    }
    errors = 0;
    const directLatency = new LatencyRecorder();
    const linkLatency = new LatencyRecorder();
    for (let b = 0; b < options.blocks; b++) {
      for (let i = 0; i < options.perBlock; i++) await directLatency.time(direct);
      for (let i = 0; i < options.perBlock; i++) await linkLatency.time(overLink);
    }
    const d = directLatency.summary();
    const l = linkLatency.summary();
    return { direct: d, link: l, overheadP50Ms: round(l.p50Ms - d.p50Ms), overheadP99Ms: round(l.p99Ms - d.p99Ms), errors };
  } finally {
    await runtime.stop();
    await reader.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
