/**
 * Schema of the embedded store, as an ordered list of migrations.
 *
 * Each migration runs once, inside one write transaction together with its row
 * in `schema_version`; a store written by a newer release (a version above the
 * last one here) is refused rather than guessed at. Never edit a released
 * migration: add a new one.
 *
 * Layout: one table per repository, scalar fields as columns (so unique
 * constraints and lookups are enforced by SQLite), nested objects as JSON text
 * columns. Secrets exist only as sealed values (`cards.puk`, `cards.pending_puk`)
 * or hashes (`*_hash` columns, `persons.answers`).
 */

export interface Migration {
  /** 1, 2, 3... in order. */
  version: number;
  name: string;
  /** SQL run with `Database.exec` (several statements). */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE persons (
  id                TEXT PRIMARY KEY NOT NULL,
  teams_user_id     TEXT NOT NULL UNIQUE,
  display_name      TEXT NOT NULL,
  email             TEXT NOT NULL,
  mobile            TEXT,
  answers           TEXT NOT NULL CHECK (json_valid(answers)),
  card_id           TEXT UNIQUE,
  self_service_lock TEXT CHECK (self_service_lock IS NULL OR json_valid(self_service_lock)),
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  version           INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

CREATE TABLE cards (
  card_id     TEXT PRIMARY KEY NOT NULL,
  person_id   TEXT NOT NULL,
  puk         TEXT CHECK (puk IS NULL OR puk LIKE 'v1.%'),
  pending_puk TEXT CHECK (pending_puk IS NULL OR pending_puk LIKE 'v1.%'),
  updated_at  TEXT NOT NULL,
  version     INTEGER NOT NULL CHECK (version >= 1)
) STRICT;
CREATE INDEX cards_by_person ON cards (person_id);

CREATE TABLE journeys (
  key             TEXT PRIMARY KEY NOT NULL,
  person_id       TEXT NOT NULL,
  kind            TEXT NOT NULL,
  run_id          TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (json_valid(state)),
  counters        TEXT NOT NULL CHECK (json_valid(counters)),
  pending_effects TEXT NOT NULL CHECK (json_valid(pending_effects)),
  pending_count   INTEGER NOT NULL,
  ui              TEXT NOT NULL CHECK (json_valid(ui)),
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  version         INTEGER NOT NULL CHECK (version >= 1)
) STRICT;
CREATE INDEX journeys_pending ON journeys (updated_at, key) WHERE pending_count > 0;

CREATE TABLE devices (
  id                 TEXT PRIMARY KEY NOT NULL,
  person_id          TEXT NOT NULL,
  workstation        TEXT NOT NULL,
  credential_hash    TEXT NOT NULL,
  created_at         TEXT NOT NULL,
  last_seen_at       TEXT,
  revoked_at         TEXT,
  connected_instance TEXT,
  version            INTEGER NOT NULL CHECK (version >= 1)
) STRICT;
CREATE INDEX devices_by_person ON devices (person_id, created_at);

CREATE TABLE pairings (
  id               TEXT PRIMARY KEY NOT NULL,
  device_code_hash TEXT NOT NULL UNIQUE,
  user_code_hash   TEXT NOT NULL UNIQUE,
  workstation      TEXT NOT NULL,
  status           TEXT NOT NULL,
  person_id        TEXT,
  device_id        TEXT,
  created_at       TEXT NOT NULL,
  expires_at       TEXT NOT NULL,
  last_polled_at   TEXT,
  version          INTEGER NOT NULL CHECK (version >= 1)
) STRICT;
CREATE INDEX pairings_by_expiry ON pairings (expires_at);

CREATE TABLE cases (
  ref        TEXT PRIMARY KEY NOT NULL,
  person_id  TEXT NOT NULL,
  reason     TEXT NOT NULL,
  status     TEXT NOT NULL,
  context    TEXT NOT NULL CHECK (json_valid(context)),
  source_id  TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version    INTEGER NOT NULL CHECK (version >= 1)
) STRICT;
CREATE INDEX cases_by_person ON cases (person_id, created_at);
CREATE INDEX cases_open ON cases (created_at, ref) WHERE status = 'open';

-- Append-only: seq gives a stable order for entries with the same time.
CREATE TABLE audit (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  id        TEXT NOT NULL UNIQUE,
  at        TEXT NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  person_id TEXT,
  details   TEXT NOT NULL CHECK (json_valid(details))
) STRICT;
CREATE INDEX audit_by_time ON audit (at, seq);
CREATE INDEX audit_by_person ON audit (person_id, at, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

CREATE TABLE conversations (
  person_id  TEXT PRIMARY KEY NOT NULL,
  reference  TEXT NOT NULL CHECK (json_valid(reference)),
  updated_at TEXT NOT NULL
) STRICT;
`,
  },
  {
    version: 2,
    name: 'rate-limit hits',
    // One row per recorded hit of a rate limit (storage.port.ts RateHitLog): n numbers a key's hits,
    // at is the caller's clock, until the end of the hit's window (deleted after it: until index).
    sql: `
CREATE TABLE rate_hits (
  key   TEXT NOT NULL,
  n     INTEGER NOT NULL CHECK (n >= 0),
  at    TEXT NOT NULL,
  until TEXT NOT NULL,
  PRIMARY KEY (key, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX rate_hits_by_expiry ON rate_hits (until);
`,
  },
];

/** The schema version this release writes. */
export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
