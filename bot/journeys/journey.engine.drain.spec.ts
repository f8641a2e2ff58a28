/**
 * Engine drains that overlap in one process (breaker finding F-C): every effect
 * is carried out once however many turns ask for a drain at the same time.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { openSqliteStorage } from '../../storage/sqlite/sqlite-storage.adapter';
import { makeJourney } from '../../storage/storage.fixtures';
import type { Storage, StoredEffect } from '../../storage/storage.port';
import type { EffectRunner } from './effect-runner';
import { JourneyEngine, type JourneyDefinitions } from './journey.engine';
import type { Effect } from './journey.effects';

const root = mkdtempSync(join(tmpdir(), 'engine-drain-spec-'));
let n = 0;
let storage: Storage | null = null;
afterEach(async () => {
  await storage?.close();
  storage = null;
});

const files = new WeakMap<Storage, string>();
const file = (s: Storage): string => files.get(s)!;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function auditEffect(id: string, personId: string): StoredEffect {
  const payload: Effect = { type: 'audit', id, personId, actor: 'system', action: `spec.${id}`, details: {} };
  return { id, type: 'audit', payload, attempts: 0 };
}

/** An engine whose runner records each carried-out effect id and takes `ms` per effect. */
function slowEngine(ms: number, logs: string[] = []): { engine: JourneyEngine; calls: string[]; store: Storage } {
  const path = join(root, `d${++n}.sqlite`);
  const store = openSqliteStorage({ file: path });
  files.set(store, path);
  storage = store;
  const calls: string[] = [];
  const runner: Pick<EffectRunner, 'carryOut' | 'onFinalFailure'> = {
    carryOut: async (effect) => {
      calls.push(effect.id);
      await sleep(ms);
      return null;
    },
    onFinalFailure: () => null,
  };
  const engine = new JourneyEngine({
    storage: store,
    runner: runner as EffectRunner,
    logger: createLogger({ name: 'spec', level: 'warn', destination: { write: (line: string) => void logs.push(line) } }),
    now: () => new Date(),
    definitions: {} as JourneyDefinitions,
  });
  return { engine, calls, store };
}

describe('journey engine drain', () => {
  it('three drains overlapping a running one carry out each effect once (one shared follow-up pass)', async () => {
    const { engine, calls, store } = slowEngine(200);
    const j = makeJourney();
    await store.journeys.insert({ ...j, pendingEffects: [auditEffect('first', j.personId)] });
    const d1 = engine.drain(j.personId, 'unlock');
    await sleep(50);
    // Another step stores a second effect while the first drain is busy; two more turns drain after it.
    const cur = (await store.journeys.get(j.key))!;
    expect(await store.journeys.save({ ...cur, pendingEffects: [...cur.pendingEffects, auditEffect('second', j.personId)], version: cur.version + 1 }, cur.version)).toBe('saved');
    await Promise.all([d1, engine.drain(j.personId, 'unlock'), engine.drain(j.personId, 'unlock')]);
    expect(calls).toEqual(['first', 'second']);
    expect((await store.journeys.get(j.key))!.pendingEffects).toEqual([]);
  });

  it('a drain asked for while one runs still carries out the effect stored after that one began', async () => {
    const { engine, calls, store } = slowEngine(100);
    const j = makeJourney();
    await store.journeys.insert({ ...j, pendingEffects: [auditEffect('a', j.personId)] });
    const d1 = engine.drain(j.personId, 'unlock');
    await sleep(20);
    const cur = (await store.journeys.get(j.key))!;
    await store.journeys.save({ ...cur, pendingEffects: [...cur.pendingEffects, auditEffect('b', j.personId)], version: cur.version + 1 }, cur.version);
    // Resolves only once 'b' (stored after d1 read the record) was carried out.
    await engine.drain(j.personId, 'unlock');
    expect(calls).toContain('b');
    await d1;
    expect((await store.journeys.get(j.key))!.pendingEffects).toEqual([]);
  });

  it('an effect carried out whose removal failed is not carried out again by this process (its result is reused)', async () => {
    const { engine, calls, store } = slowEngine(0);
    const j = makeJourney();
    await store.journeys.insert({ ...j, pendingEffects: [auditEffect('once', j.personId)] });
    const realRemove = store.journeys.removeEffects.bind(store.journeys);
    let failRemoval = true;
    store.journeys.removeEffects = async (key, ids) => {
      if (failRemoval) {
        failRemoval = false;
        throw new Error('disk full');
      }
      return realRemove(key, ids);
    };
    // The store failed after the effect was carried out (the drain may report it or count it).
    await engine.drain(j.personId, 'unlock').catch(() => undefined);
    expect(failRemoval).toBe(false);
    await engine.drain(j.personId, 'unlock');
    expect(calls).toEqual(['once']);
    expect((await store.journeys.get(j.key))!.pendingEffects).toEqual([]);
  });

  it('the sweep skips a journey whose stored record cannot be read (counters), logs it once naming key and field, and carries on with the others', async () => {
    const logs: string[] = [];
    const { engine, calls, store } = slowEngine(0, logs);
    const bad = makeJourney({ updatedAt: '2026-01-01T00:00:00.000Z' });
    const good = makeJourney({ updatedAt: '2026-01-02T00:00:00.000Z' });
    await store.journeys.insert({ ...bad, pendingEffects: [auditEffect('bad-effect', bad.personId)] });
    await store.journeys.insert({ ...good, pendingEffects: [auditEffect('good-effect', good.personId)] });
    const raw = new Database(file(store));
    raw.pragma('ignore_check_constraints = ON');
    raw.prepare('UPDATE journeys SET counters = ? WHERE key = ?').run(JSON.stringify({ answerAttempts: 'x' }), bad.key);
    raw.close();
    await engine.sweep();
    await engine.sweep();
    expect(calls).toEqual(['good-effect']);
    expect((await store.journeys.get(good.key))!.pendingEffects).toEqual([]);
    const lines = logs.map((l) => JSON.parse(l) as { msg: string; key?: string; field?: string }).filter((l) => l.key === bad.key);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.field).toMatch(/counters/);
  });

  it('the sweep skips a journey whose pending effect has no payload, logs it once naming key and field, and carries on with the others', async () => {
    const logs: string[] = [];
    const { engine, calls, store } = slowEngine(0, logs);
    const bad = makeJourney({ updatedAt: '2026-01-01T00:00:00.000Z' });
    const good = makeJourney({ updatedAt: '2026-01-02T00:00:00.000Z' });
    await store.journeys.insert({ ...bad, pendingEffects: [{ id: 'e-null', type: 'audit', payload: null, attempts: 0 }] });
    await store.journeys.insert({ ...good, pendingEffects: [auditEffect('good-effect', good.personId)] });
    await engine.sweep();
    await engine.sweep();
    expect(calls).toEqual(['good-effect']);
    expect((await store.journeys.get(bad.key))!.pendingEffects.map((e) => e.id)).toEqual(['e-null']);
    const lines = logs.map((l) => JSON.parse(l) as { msg: string; key?: string; field?: string }).filter((l) => l.key === bad.key);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.field).toBe('pendingEffects.0.payload');
  });
});
