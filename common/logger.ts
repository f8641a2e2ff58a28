/**
 * Logger factory (pino) shared by the bot and the companion.
 *
 * Loggers are created once in a composition root and passed in (STYLE.md 14).
 * Known secret-bearing keys are redacted wherever they appear (two levels deep)
 * as a second line of defence; the first is never handing a secret to a log call.
 */
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';
import { currentLogContext } from './log-context';

export type { Logger };

/**
 * Keys whose values are never written to a log, at any of the listed depths.
 * NOTE: `code` is not among them: it names error codes (`LINK.TIMEOUT`), which
 * support needs. One-time codes are never put in a log object at all.
 */
export const REDACTED_KEYS = [
  'passcode', 'newPasscode', 'pin', 'newPin', 'puk', 'newPuk', 'oneTimeCode', 'unlockCode', 'registrationCode', 'answer', 'answers',
  'token', 'credential', 'authorization', 'Authorization', 'deviceCode', 'secret', 'password', 'clientSecret', 'cookie',
] as const;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of REDACTED_KEYS) paths.push(k, `*.${k}`, `*.*.${k}`);
  paths.push('req.headers.authorization', 'req.headers.cookie');
  return paths;
}

/**
 * Create a logger.
 *
 * @param options.name - component name, written as `name` on every line
 * @param options.level - pino level; `trace` is where raw APDU hex may appear (redacted for PIN/PUK commands)
 * @param options.destination - where lines go; defaults to stdout
 * @returns a pino logger; inside a turn (`withLogContext`, common/log-context.ts) every line, of it and of its children, also
 *   carries `requestId`
 */
export function createLogger(options: { name: string; level?: LevelWithSilent; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: { paths: redactPaths(), censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
      // The running turn's request id on every line (common/log-context.ts); {} outside a turn.
      // A fresh object each time: pino merges the line's own fields into what the mixin returns.
      mixin: () => {
        const context = currentLogContext();
        return context ? { requestId: context.requestId } : {};
      },
    },
    options.destination,
  );
}
