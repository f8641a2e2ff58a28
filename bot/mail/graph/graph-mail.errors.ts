/**
 * Errors of the Microsoft Graph mail adapter.
 *
 * Messages and metadata hold the HTTP status, Graph's error code, Graph's `request-id` and counts: never the
 * recipient address, the subject or body (an unlock code is in the body), Graph's own error message (it may
 * quote the address), a token or a secret.
 */
import { AppError } from '../../../common/app-error';
import { MailSendFailedError, type MailKind } from '../mail.port';

/** Codes of the Graph adapter's start-up errors. */
export const GRAPH_MAIL_ERROR = {
  /** A setting is missing or wrong (names the variable). */
  CONFIG_INVALID: 'CONFIG.INVALID',
  /** Entra ID or Graph could not be reached or answered unexpectedly at start-up. */
  START_FAILED: 'MAIL.GRAPH_START_FAILED',
} as const;

/** HTTP statuses after which sending the same message later may work (RFC 9110 15.5.9, 15.6; RFC 6585 4). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** What was known about a failed send. */
export interface GraphSendFailure {
  retryable: boolean;
  kind: MailKind;
  messageId: string;
  /** HTTP status of the last answer; null when none came (network, timeout, token). */
  status: number | null;
  /** Graph's `request-id` of the last answer; null when none came. */
  requestId: string | null;
  /** Graph's error code (e.g. `ErrorAccessDenied`), or an Entra `AADSTSnnnn`, or a network error code. */
  graphCode?: string;
  /** HTTP attempts made for this send. */
  attempts?: number;
  /** The server's last `Retry-After`, in seconds, when it asked for a wait longer than allowed. */
  retryAfterSeconds?: number;
  cause?: unknown;
}

/**
 * A message was not sent through Graph: a `MAIL.SEND_FAILED` with `reason: 'provider'`, whose `meta` also holds
 * `status`, `requestId` and, when known, `graphCode`, `attempts` and `retryAfterSeconds`.
 */
export class GraphMailSendFailedError extends MailSendFailedError {
  readonly status: number | null;
  readonly requestId: string | null;

  constructor(message: string, failure: GraphSendFailure) {
    super(message, {
      retryable: failure.retryable,
      reason: 'provider',
      kind: failure.kind,
      messageId: failure.messageId,
      ...(failure.cause !== undefined ? { cause: failure.cause } : {}),
    });
    this.status = failure.status;
    this.requestId = failure.requestId;
    // MailSendFailedError takes a fixed set of meta keys; add Graph's facts to the same frozen record.
    Object.defineProperty(this, 'meta', {
      value: Object.freeze({
        ...this.meta,
        status: failure.status,
        requestId: failure.requestId,
        ...(failure.graphCode !== undefined ? { graphCode: failure.graphCode } : {}),
        ...(failure.attempts !== undefined ? { attempts: failure.attempts } : {}),
        ...(failure.retryAfterSeconds !== undefined ? { retryAfterSeconds: failure.retryAfterSeconds } : {}),
      }),
      enumerable: true,
      writable: false,
      configurable: false,
    });
  }
}

/** The adapter could not start: `setting` names the environment variable to fix, when one is to blame. */
export class GraphMailStartupError extends AppError {
  readonly setting: string | null;

  constructor(message: string, options: { setting?: string; aadsts?: string; cause?: unknown }) {
    super(options.setting ? GRAPH_MAIL_ERROR.CONFIG_INVALID : GRAPH_MAIL_ERROR.START_FAILED, message, {
      cause: options.cause,
      meta: { setting: options.setting ?? null, ...(options.aadsts ? { aadsts: options.aadsts } : {}) },
    });
    this.setting = options.setting ?? null;
  }
}

/** A Graph error code is an identifier; anything else (or nothing) is reported as `unknown`. */
export function safeGraphCode(code: unknown): string {
  return typeof code === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,63}$/.test(code) ? code : 'unknown';
}

/**
 * Read Graph's error code and request id from an error answer.
 *
 * @param bodyText - the answer's body; Graph's shape is `{ error: { code, message, innerError: { 'request-id', date } } }`
 *   (Graph API: Microsoft Graph error responses and resource types)
 * @param headerRequestId - the answer's `request-id` header, preferred when present
 * @returns the code (`unknown` when absent) and the request id (null when absent); never Graph's message
 */
export function readGraphError(bodyText: string, headerRequestId: string | null): { graphCode: string; requestId: string | null } {
  let code: unknown;
  let innerRequestId: unknown;
  try {
    const body = JSON.parse(bodyText) as { error?: { code?: unknown; innerError?: Record<string, unknown> } };
    code = body?.error?.code;
    innerRequestId = body?.error?.innerError?.['request-id'];
  } catch {
    code = undefined;
  }
  const requestId = safeRequestId(headerRequestId) ?? safeRequestId(innerRequestId);
  return { graphCode: safeGraphCode(code), requestId };
}

/** Graph request ids are GUIDs; anything else is dropped. */
export function safeRequestId(value: unknown): string | null {
  return typeof value === 'string' && /^[0-9a-f-]{8,64}$/i.test(value) ? value.toLowerCase() : null;
}

/** The `AADSTSnnnn` code in an Entra ID error's text, if any. */
export function aadstsCode(err: unknown): string | undefined {
  const text = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  const m = /AADSTS(\d{4,8})/.exec(text) ?? /Error\(s\):\s*(\d{4,8})/.exec(text);
  return m ? `AADSTS${m[1]}` : undefined;
}
