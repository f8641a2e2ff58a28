/**
 * Errors of the directory lookup.
 *
 * Messages and metadata hold the HTTP status, Graph's error code, Graph's `request-id` and the reason: never the
 * person's object id, email address or mobile number, Graph's own error message (it may quote the id), a token
 * or a secret.
 */
import { AppError } from '../../common/app-error';

/** Codes of the directory lookup's errors. */
export const DIRECTORY_ERROR = {
  /** The lookup did not give an answer; the caller carries on without prefilled details. */
  LOOKUP_FAILED: 'DIRECTORY.LOOKUP_FAILED',
} as const;

/** Why a lookup failed. */
export const DIRECTORY_FAILURE = {
  /** The object id is not a GUID; the directory was not asked. */
  INVALID_ID: 'invalid_id',
  /** No access token (Entra ID refused or could not be reached). */
  TOKEN: 'token',
  /** The lookup (token and request) took longer than its time limit. */
  TIMEOUT: 'timeout',
  /** No HTTP answer: connection or TLS failure. */
  NETWORK: 'network',
  /** An HTTP answer other than 200 or 404. */
  HTTP: 'http',
  /** A 200 answer whose body is not a user with `mail` / `mobilePhone`. */
  BAD_ANSWER: 'bad_answer',
} as const;

export type DirectoryFailureReason = (typeof DIRECTORY_FAILURE)[keyof typeof DIRECTORY_FAILURE];

/** What was known about a failed lookup. */
export interface DirectoryFailure {
  reason: DirectoryFailureReason;
  /** HTTP status of the answer; null when none came. */
  status: number | null;
  /** Graph's `request-id` of the answer; null when none came. */
  requestId: string | null;
  /** Graph's error code (e.g. `Authorization_RequestDenied`), an Entra `AADSTSnnnn`, or a network error code. */
  graphCode?: string;
  cause?: unknown;
}

/** A `DIRECTORY.LOOKUP_FAILED`, with `meta` `{ reason, status, requestId }` and, when known, `graphCode`. */
export class DirectoryLookupFailedError extends AppError {
  readonly reason: DirectoryFailureReason;
  readonly status: number | null;
  readonly requestId: string | null;

  constructor(message: string, failure: DirectoryFailure) {
    super(DIRECTORY_ERROR.LOOKUP_FAILED, message, {
      ...(failure.cause !== undefined ? { cause: failure.cause } : {}),
      meta: {
        reason: failure.reason,
        status: failure.status,
        requestId: failure.requestId,
        ...(failure.graphCode !== undefined ? { graphCode: failure.graphCode } : {}),
      },
    });
    this.reason = failure.reason;
    this.status = failure.status;
    this.requestId = failure.requestId;
  }
}
