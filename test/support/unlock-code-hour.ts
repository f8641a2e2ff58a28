/**
 * The hourly cap on unlock codes (UNLOCK_CODES_PER_HOUR, at most 3 codes to one person in any
 * 60 minutes, across runs; issue #14) for end-to-end tests that walk ONE person through more unlocks
 * than that within a few minutes. A bot process has no clock a test can move, so the test lets the
 * hour pass in its own bot's store instead: the times the person's codes were sent are moved back
 * past the window, as if they had been sent over an hour ago. Nothing else changes: the current
 * run, its code (issue time, expiry, wrong tries), the attempt count and every other record stay as
 * they are, and the cap itself is not touched (a fourth code within the hour is still refused;
 * `bot/journeys/unlock/unlock.code-rate.spec.ts` and the breaker tests check that).
 */
import path from 'node:path';
import { CODE_RATE_WINDOW_MS } from '../../bot/journeys/unlock/unlock.journey';
import { openStorage, type StorageConfig } from '../../storage/storage.factory';

/** The bot's store as its environment names it (`STORAGE=mongodb` + `MONGODB_URL`, else `<dataDir>/smartcard-assist.sqlite`). */
function storeOf(bot: { dataDir: string; env: Readonly<Record<string, string>> }): StorageConfig {
  if (bot.env['STORAGE'] === 'mongodb') {
    const url = bot.env['MONGODB_URL'];
    if (!url) throw new Error('STORAGE=mongodb without MONGODB_URL in the bot environment');
    return { kind: 'mongodb', url, ...(bot.env['MONGODB_DATABASE'] ? { database: bot.env['MONGODB_DATABASE'] } : {}) };
  }
  return { kind: 'sqlite', file: path.join(bot.dataDir, 'smartcard-assist.sqlite'), busyTimeoutMs: 20_000 };
}

/**
 * Let the code hour pass for one person: every code time on their unlock journey (`state.codeTimes`,
 * ISO 8601) moves back by the cap's window and a minute, in one compare-and-set write (retried while the
 * bot writes the record at the same moment), through a second connection to the bot's own store.
 *
 * @param bot - the test's bot (`dataDir` and `env` of `test/support/e2e-stack.ts` BotStack)
 * @param personId - the person's id (what `seedPerson` returned)
 * @returns how many code times were moved (0 when the person has no unlock journey or no code yet)
 * @throws Error when the record keeps changing for 20 tries, or the store cannot be opened
 */
export async function letCodeHourPass(bot: { dataDir: string; env: Readonly<Record<string, string>> }, personId: string): Promise<number> {
  const storage = await openStorage(storeOf(bot));
  try {
    const key = `${personId}:unlock`;
    for (let i = 0; i < 20; i++) {
      const j = await storage.journeys.get(key);
      if (!j) return 0;
      const state = (j.state ?? {}) as Record<string, unknown>;
      const times = Array.isArray(state['codeTimes']) ? (state['codeTimes'] as string[]) : [];
      if (times.length === 0) return 0;
      const moved = times.map((t) => new Date(Date.parse(t) - CODE_RATE_WINDOW_MS - 60_000).toISOString());
      if ((await storage.journeys.save({ ...j, state: { ...state, codeTimes: moved } }, j.version)) === 'saved') return moved.length;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`could not move the code times of ${key}: the record kept changing`);
  } finally {
    await storage.close();
  }
}
