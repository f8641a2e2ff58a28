/**
 * Routes bot commands to the part of the companion that handles them, one
 * handler per command kind, typed with `Extract` so an unknown kind cannot be
 * routed by accident (STYLE.md 7).
 */
import type { CardStatus, Command, CommandKind, PageShown, Reply } from '../protocol/companion-link.protocol';

type Handler<K extends CommandKind> = (command: Extract<Command, { kind: K }>) => Promise<Reply>;
type Handlers = { [K in CommandKind]: Handler<K> };

/** What the router needs. */
export interface CommandRouterDeps {
  card: { readStatus(): Promise<CardStatus> };
  unlock: {
    prompt(command: Extract<Command, { kind: 'unlock.prompt' }>): void;
    closed(command: Extract<Command, { kind: 'unlock.closed' }>): void;
    authorised(command: Extract<Command, { kind: 'unlock.authorised' }>): void;
  };
  register: {
    prompt(command: Extract<Command, { kind: 'register.prompt_passcode' }>): void;
    closed(command: Extract<Command, { kind: 'register.closed' }>): void;
  };
  /**
   * Run `show` (hands `unlock.prompt` to its controller) and say how the passcode page came to the
   * person (issue #13): `opened`, `notified`, `none`, or null when unknown (no prompt raised, no answer
   * in time). Absent: the ack carries no `page`.
   */
  pageShown?: (show: () => void) => Promise<PageShown | null>;
}

/**
 * Build the command handler the link client calls.
 *
 * @param deps - card service, unlock and register controllers
 * @returns `(command) => reply`: `card.read_status` -> `card.status`; `unlock.prompt`, `unlock.closed`,
 *   `unlock.authorised`, `register.prompt_passcode`, `register.closed` -> `ack`. The `unlock.prompt` ack carries
 *   `page` (how the page came to the person) when `deps.pageShown` knows it.
 *   A card error is thrown and the link client turns it into an `error` reply with its code.
 */
export function createCommandRouter(deps: CommandRouterDeps): (command: Command) => Promise<Reply> {
  const handlers: Handlers = {
    'card.read_status': async () => ({ kind: 'card.status', status: await deps.card.readStatus() }),
    'unlock.prompt': async (command) => {
      if (!deps.pageShown) {
        deps.unlock.prompt(command);
        return { kind: 'ack' };
      }
      const page = await deps.pageShown(() => deps.unlock.prompt(command));
      return page ? { kind: 'ack', page } : { kind: 'ack' };
    },
    'unlock.closed': async (command) => {
      deps.unlock.closed(command);
      return { kind: 'ack' };
    },
    // The PUK pair after an accepted code: acknowledged at once; the unblock runs on and
    // its outcome goes to the bot as `unlock.result`.
    'unlock.authorised': async (command) => {
      deps.unlock.authorised(command);
      return { kind: 'ack' };
    },
    'register.prompt_passcode': async (command) => {
      deps.register.prompt(command);
      return { kind: 'ack' };
    },
    'register.closed': async (command) => {
      deps.register.closed(command);
      return { kind: 'ack' };
    },
  };
  return (command) => (handlers[command.kind] as Handler<typeof command.kind>)(command as never);
}
