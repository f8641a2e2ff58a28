/**
 * The one interface the PIV layer talks to (STYLE.md 1: protocol code knows no
 * driver). Adapters: `companion/pcsc/` (the only importer of `pcsclite`) and
 * `companion/virtual-card/` (in-process virtual PIV card).
 */

/** An open connection to the card in one reader. */
export interface CardConnection {
  /** Reader name, e.g. `Virtual PCD 00 00`. */
  readonly reader: string;
  /** Answer-to-reset of the card, raw bytes. */
  readonly atr: Buffer;
  /**
   * Send one command APDU and return the full response (data + SW1 SW2).
   *
   * @param apdu - command APDU bytes (ISO/IEC 7816-4 5.1), at most 261 bytes (short Lc/Le)
   * @returns response bytes; callers must check it holds at least SW1 SW2
   * @throws CardError `CARD.REMOVED` when the card was pulled (PC/SC 0x80100069 / 0x80100016),
   *   `CARD.READER_UNAVAILABLE` when the reader or pcscd went away, `CARD.TRANSMIT_FAILED` otherwise
   */
  transmit(apdu: Buffer): Promise<Buffer>;
  /**
   * Close the connection.
   * @param disposition - `reset` resets the card (clears PIN-verified state; use after a session
   *   and between tests), `leave` leaves it as it is
   */
  close(disposition?: 'reset' | 'leave'): Promise<void>;
}

/** What a reader monitor reports. */
export type ReaderEvent =
  | { type: 'reader.added'; reader: string }
  | { type: 'reader.removed'; reader: string }
  | { type: 'card.inserted'; reader: string; atr: Buffer }
  | { type: 'card.removed'; reader: string };

/** Watches readers and opens connections: one per adapter (PC/SC, virtual). */
export interface CardReaderPort {
  /** Readers seen now, by name. */
  readers(): string[];
  /** Subscribe to reader and card events; returns an unsubscribe function. */
  onEvent(listener: (event: ReaderEvent) => void): () => void;
  /**
   * Open a shared connection to the card in `reader` (SCARD_SHARE_SHARED for PC/SC).
   * @throws CardError `CARD.NOT_PRESENT` when no card is inserted, `CARD.READER_UNAVAILABLE` when the reader is gone
   */
  connect(reader: string): Promise<CardConnection>;
  /** Stop watching and release everything (contexts, readers) so the process can exit. */
  close(): Promise<void>;
}
