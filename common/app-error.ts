/**
 * The one error base for the service (STYLE.md 10).
 *
 * `code` is a namespaced string (`MAIL.SEND_FAILED`, `CARD.PIN_BLOCKED`) that
 * survives a process boundary where `instanceof` does not. `meta` holds only
 * non-sensitive facts (ids, counts, status words): never a passcode, PUK,
 * one-time code, security answer or token. Expected outcomes (a wrong answer,
 * an expired code) are returned values, not thrown.
 */
export class AppError extends Error {
  /** Namespaced code, `AREA.REASON`. */
  readonly code: string;
  /** Non-sensitive metadata for logs and support. */
  readonly meta: Readonly<Record<string, string | number | boolean | null>>;

  constructor(code: string, message: string, options?: { cause?: unknown; meta?: Record<string, string | number | boolean | null> }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.meta = Object.freeze({ ...(options?.meta ?? {}) });
  }

  /** Plain object for logs and the wire: name, code, message, meta and the cause's code/message. */
  toJSON(): Record<string, unknown> {
    const cause = this.cause instanceof AppError ? this.cause.toJSON() : this.cause instanceof Error ? { name: this.cause.name, message: this.cause.message } : undefined;
    return { name: this.name, code: this.code, message: this.message, meta: this.meta, ...(cause ? { cause } : {}) };
  }
}

/** Refused input (activity, card submission, companion message, config value): says what is wrong. */
export class ValidationError extends AppError {
  constructor(what: string, message: string, meta?: Record<string, string | number | boolean | null>) {
    super(`INPUT.${what}`, message, meta ? { meta } : undefined);
  }
}
