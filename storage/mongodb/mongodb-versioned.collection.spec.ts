/**
 * The in-process name locks used by the versioned collections and the
 * MongoDB command bus (no server needed).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { NameLocks } from './mongodb-versioned.collection';

describe('NameLocks', () => {
  it('runs operations on one name one at a time, in call order', async () => {
    const locks = new NameLocks();
    const log: string[] = [];
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        locks.run(['k'], async () => {
          log.push(`start ${i}`);
          await sleep(5 - i);
          log.push(`end ${i}`);
        }),
      ),
    );
    expect(log).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it('runs operations on different names at once', async () => {
    const locks = new NameLocks();
    let running = 0;
    let max = 0;
    await Promise.all(
      ['a', 'b', 'c'].map((n) =>
        locks.run([n], async () => {
          running++;
          max = Math.max(max, running);
          await sleep(10);
          running--;
        }),
      ),
    );
    expect(max).toBe(3);
  });

  it('takes several names at once without deadlock, honouring call order on each shared name', async () => {
    const locks = new NameLocks();
    const order: number[] = [];
    const jobs = [
      locks.run(['x', 'y'], async () => {
        await sleep(5);
        order.push(1);
      }),
      locks.run(['y', 'x'], async () => {
        order.push(2);
      }),
      locks.run(['x'], async () => {
        order.push(3);
      }),
      locks.run(['z', 'y'], async () => {
        order.push(4);
      }),
    ];
    await Promise.all(jobs);
    // 2 waits for 1 (x, y); 3 (x) and 4 (y) wait for 2; 3 and 4 share no name, so either may go first.
    expect(order.slice(0, 2)).toEqual([1, 2]);
    expect(new Set(order.slice(2))).toEqual(new Set([3, 4]));
  });

  it('releases the names when the operation throws', async () => {
    const locks = new NameLocks();
    await expect(locks.run(['k'], async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(locks.run(['k'], async () => 'next')).resolves.toBe('next');
  });
});
