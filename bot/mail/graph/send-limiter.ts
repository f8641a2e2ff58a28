/**
 * A counting semaphore: at most `limit` tasks run at once, the rest wait in arrival order (FIFO).
 *
 * Used to keep the sends of one sender mailbox within Exchange Online's limit of concurrent requests per app per
 * mailbox (Graph docs: throttling limits, Outlook service limits: 4 concurrent requests).
 */
export class SendLimiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  /**
   * @param limit - tasks allowed at once, an integer >= 1
   * @throws RangeError when `limit` is not an integer >= 1
   */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be an integer >= 1');
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Run `task` when a slot is free; the slot is freed when it settles, whether it resolves or throws.
   *
   * @returns what `task` returns
   */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
