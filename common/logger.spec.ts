import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED_KEYS } from './logger';
import { requestIdFor, withLogContext } from './log-context';

/** A logger writing into an array of parsed JSON lines. */
function capture(): { lines: Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ name: 'spec', level: 'debug', destination }) };
}

describe('logger: request id per turn', () => {
  it('puts the turn\'s requestId on every line of the turn, from the root logger, a child and work the turn awaits', async () => {
    const { lines, logger } = capture();
    const child = logger.child({ component: 'graph-mail' });
    logger.info('before any turn');
    await withLogContext({ requestId: 'act-1' }, async () => {
      logger.info('turn starts');
      await new Promise((r) => setTimeout(r, 5));
      child.warn({ effect: 'mail.unlock_code' }, 'effect failed');
      await Promise.resolve().then(() => logger.debug('after a microtask'));
    });
    await withLogContext({ requestId: 'act-2' }, async () => logger.info('another turn'));
    logger.info('after the turns');
    expect(lines.map((l) => [l['msg'], l['requestId']])).toEqual([
      ['before any turn', undefined],
      ['turn starts', 'act-1'],
      ['effect failed', 'act-1'],
      ['after a microtask', 'act-1'],
      ['another turn', 'act-2'],
      ['after the turns', undefined],
    ]);
    expect(lines[2]!['component']).toBe('graph-mail');
  });

  it('keeps two turns running at once apart', async () => {
    const { lines, logger } = capture();
    const turn = (id: string, delays: number[]): Promise<void> =>
      withLogContext({ requestId: id }, async () => {
        for (const d of delays) {
          await new Promise((r) => setTimeout(r, d));
          logger.info({ turn: id }, 'step');
        }
      });
    await Promise.all([turn('a', [1, 8, 1]), turn('b', [4, 1, 6])]);
    expect(lines).toHaveLength(6);
    for (const l of lines) expect(l['requestId']).toBe(l['turn']);
  });

  it('still redacts every secret-bearing key inside a turn (top level, one and two levels down)', () => {
    const { lines, logger } = capture();
    const secret = 'S3cret-73119';
    withLogContext({ requestId: 'act-redact' }, () => {
      for (const key of REDACTED_KEYS) {
        logger.info({ [key]: secret, nested: { [key]: secret, deeper: { [key]: secret } } }, `key ${key}`);
      }
    });
    expect(lines).toHaveLength(REDACTED_KEYS.length);
    for (const l of lines) {
      expect(JSON.stringify(l)).not.toContain(secret);
      expect(l['requestId']).toBe('act-redact');
    }
    expect((lines[0]!['nested'] as Record<string, unknown>)[REDACTED_KEYS[0]]).toBe('[redacted]');
  });
});

describe('requestIdFor', () => {
  it.each([
    ['a Teams activity id', { id: '1:1a2B3c_dE-fG' }, '1:1a2B3c_dE-fG'],
    ['a UUID', { id: 'f47ac10b-58cc-4372-a567-0e02b2c3d479' }, 'f47ac10b-58cc-4372-a567-0e02b2c3d479'],
  ])('uses %s as it is', (_label, activity, expected) => {
    expect(requestIdFor(activity)).toBe(expected);
  });

  it.each([
    ['no id', {}],
    ['a number', { id: 42 }],
    ['an empty id', { id: '' }],
    ['a line break', { id: 'abc\n{"level":60}' }],
    ['a space', { id: 'a b' }],
    ['129 characters', { id: 'x'.repeat(129) }],
    ['not an object', null],
  ])('replaces %s with a random UUID', (_label, activity) => {
    const id = requestIdFor(activity);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(requestIdFor(activity)).not.toBe(id);
  });
});

describe('runTurn', () => {
  it('writes a start and an end line under the activity id, around the turn\'s own lines', async () => {
    const { lines, logger } = capture();
    const { runTurn } = await import('./log-context');
    const out = await runTurn(logger, { id: 'act-9', type: 'invoke', name: 'adaptiveCard/action' }, async () => {
      logger.info('inside');
      return 42;
    });
    expect(out).toBe(42);
    expect(lines.map((l) => [l['msg'], l['requestId'], l['activityType']])).toEqual([
      ['turn started', 'act-9', 'invoke'],
      ['inside', 'act-9', undefined],
      ['turn done', 'act-9', 'invoke'],
    ]);
    expect(lines[2]!['activityName']).toBe('adaptiveCard/action');
    expect(typeof lines[2]!['ms']).toBe('number');
  });

  it('writes turn failed and rethrows', async () => {
    const { lines, logger } = capture();
    const { runTurn } = await import('./log-context');
    await expect(runTurn(logger, { id: 'act-10', type: 'message' }, async () => Promise.reject(new TypeError('x')))).rejects.toThrow(TypeError);
    expect(lines.map((l) => [l['msg'], l['requestId'], l['error']])).toEqual([
      ['turn started', 'act-10', undefined],
      ['turn failed', 'act-10', 'TypeError'],
    ]);
  });
});
