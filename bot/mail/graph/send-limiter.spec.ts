import { describe, expect, it } from 'vitest';
import { SendLimiter } from './send-limiter';

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('SendLimiter', () => {
  it('runs at most `limit` tasks at once and starts the others in arrival order', async () => {
    const limiter = new SendLimiter(2);
    const started: number[] = [];
    const release: (() => void)[] = [];
    let running = 0;
    let maxRunning = 0;
    const tasks = [0, 1, 2, 3, 4].map((i) =>
      limiter.run(async () => {
        started.push(i);
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((r) => release.push(r));
        running -= 1;
        return i;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    expect(limiter.queued).toBe(3);
    while (release.length) {
      release.shift()!();
      await tick();
    }
    await tick();
    while (release.length) {
      release.shift()!();
      await tick();
    }
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(maxRunning).toBe(2);
    expect(limiter.active).toBe(0);
  });

  it('frees the slot when a task throws', async () => {
    const limiter = new SendLimiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limiter.run(async () => 'next')).toBe('next');
    expect(limiter.active).toBe(0);
  });

  it('refuses a limit below 1 or not whole', () => {
    expect(() => new SendLimiter(0)).toThrow(RangeError);
    expect(() => new SendLimiter(1.5)).toThrow(RangeError);
  });
});
