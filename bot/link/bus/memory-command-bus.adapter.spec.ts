/**
 * The in-memory command bus against the command bus conformance suite, plus
 * what only it can show cheaply: retention gaps on resume.
 */
import { describe, expect, it } from 'vitest';
import { runCommandBusConformance } from './command-bus.conformance';
import type { BusMessage } from './command-bus.port';
import { MEMORY_BUS_DEFAULTS, MemoryBusHub, MemoryCommandBus } from './memory-command-bus.adapter';

runCommandBusConformance(
  'memory',
  async () => {
    const hub = new MemoryBusHub();
    return { a: new MemoryCommandBus('A', hub), b: new MemoryCommandBus('B', hub) };
  },
  { quietMs: 50 },
);

describe('memory command bus', () => {
  it('a resume after messages left retention reports the gap and delivers what is retained', async () => {
    const hub = new MemoryBusHub();
    const a = new MemoryCommandBus('A', hub);
    const first = await a.publish('B', { i: 0 });
    const total = MEMORY_BUS_DEFAULTS.retain + 5;
    for (let i = 1; i <= total; i++) await a.publish('B', { i });
    const got: BusMessage[] = [];
    const gaps: { missed: number }[] = [];
    await a.subscribe('B', (m) => void got.push(m), { after: first.id, onGap: (g) => gaps.push(g) });
    while (got.length < MEMORY_BUS_DEFAULTS.retain) await new Promise((r) => setTimeout(r, 5));
    expect(gaps).toEqual([{ to: 'B', fromSeq: first.seq, toSeq: first.seq + 6, missed: 5 }]);
    expect((got[0]!.payload as { i: number }).i).toBe(6);
    expect((got.at(-1)!.payload as { i: number }).i).toBe(total);
    await a.close();
  });

  it('buses on different hubs do not see each other', async () => {
    const a = new MemoryCommandBus('A');
    const b = new MemoryCommandBus('B');
    const got: BusMessage[] = [];
    await b.subscribe('B', (m) => void got.push(m));
    await a.publish('B', { x: 1 });
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([]);
  });
});
