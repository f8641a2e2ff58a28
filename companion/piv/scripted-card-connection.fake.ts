/**
 * A {@link CardConnection} that plays a script of exchanges, for unit specs of
 * the card layer. It is the driver boundary (STYLE.md 17): each step names the
 * exact command bytes expected and the raw response bytes to give back, so a
 * spec fails when the session sends anything else.
 */
import type { CardConnection } from './card-connection';

/** One scripted exchange: the command expected (hex, spaces ignored) and what the card answers. */
export type ScriptStep =
  | { expect: string; respond: string }
  | { expect: string; fail: Error };

const clean = (hex: string): string => hex.replace(/\s+/g, '').toLowerCase();

/** A scripted card connection; `sent` records every command in order. */
export class ScriptedCardConnection implements CardConnection {
  readonly reader = 'Scripted Reader 00';
  readonly atr = Buffer.from('3b8080018000', 'hex');
  /** Every command APDU received, as lower-case hex. */
  readonly sent: string[] = [];
  closedWith: 'reset' | 'leave' | undefined;
  private readonly steps: ScriptStep[];

  /** @param steps - the exchanges in the order they must happen */
  constructor(steps: ScriptStep[]) {
    this.steps = [...steps];
  }

  /** Steps not yet played. */
  get remaining(): number {
    return this.steps.length;
  }

  async transmit(apdu: Buffer): Promise<Buffer> {
    const got = apdu.toString('hex');
    this.sent.push(got);
    const step = this.steps.shift();
    if (step === undefined) throw new Error(`unscripted command ${got}`);
    if (clean(step.expect) !== got) throw new Error(`expected command ${clean(step.expect)}, got ${got}`);
    if ('fail' in step) throw step.fail;
    return Buffer.from(clean(step.respond), 'hex');
  }

  async close(disposition: 'reset' | 'leave' = 'reset'): Promise<void> {
    this.closedWith = disposition;
  }
}
