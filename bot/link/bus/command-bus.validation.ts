/**
 * Checks and errors shared by the command bus adapters.
 */
import { AppError } from '../../../common/app-error';
import { COMMAND_BUS_ERROR, COMMAND_BUS_LIMITS, parseBusMessageId } from './command-bus.port';

type BusErrorCode = (typeof COMMAND_BUS_ERROR)[keyof typeof COMMAND_BUS_ERROR];

/** Error raised by a command bus; `code` is one of {@link COMMAND_BUS_ERROR}. Messages never hold a payload. */
export class BusError extends AppError {
  constructor(code: BusErrorCode, message: string, options?: { cause?: unknown; meta?: Record<string, string | number | boolean | null> }) {
    super(code, message, options);
  }
}

/**
 * Check an instance id.
 *
 * @param id - value offered as an instance id
 * @param what - `to` or `instanceId`, for the message
 * @returns the id
 * @throws BusError `BUS.INVALID_MESSAGE` naming the rule broken
 */
export function checkInstanceId(id: unknown, what: string): string {
  if (typeof id !== 'string' || id.length === 0) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, `${what} must be a non-empty string`);
  if (id.length > COMMAND_BUS_LIMITS.instanceIdLength) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, `${what} must be at most ${COMMAND_BUS_LIMITS.instanceIdLength} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(id)) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, `${what} must not contain control characters`);
  return id;
}

/**
 * Check an `after` message id against the subscribing instance.
 *
 * @returns the sequence number to resume after
 * @throws BusError `BUS.INVALID_MESSAGE` when malformed or addressed to another instance
 */
export function checkAfter(after: string, instanceId: string): number {
  const parsed = parseBusMessageId(after);
  if (!parsed) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, 'after must be a message id of the form <instanceId>:<seq>');
  if (parsed.to !== instanceId) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, 'after must be the id of a message to the subscribing instance');
  return parsed.seq;
}

/**
 * Serialise a payload as JSON text within the size limit.
 *
 * @returns the JSON text
 * @throws BusError `BUS.INVALID_MESSAGE` when it is not JSON-serialisable or too large (the message holds no payload)
 */
export function encodePayload(payload: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch {
    throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, 'payload must be JSON-serialisable (no cycles, no BigInt)');
  }
  if (json === undefined) throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, 'payload must be a JSON value (not undefined or a function)');
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > COMMAND_BUS_LIMITS.payloadBytes) {
    throw new BusError(COMMAND_BUS_ERROR.INVALID_MESSAGE, `payload is ${bytes} bytes as JSON; the limit is ${COMMAND_BUS_LIMITS.payloadBytes}`, { meta: { bytes } });
  }
  return json;
}
