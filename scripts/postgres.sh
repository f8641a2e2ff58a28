#!/usr/bin/env bash
# Install, initialise, start, stop or report the project's own PostgreSQL: the
# storage FerretDB runs on (its multi-writer backend, `--handler=postgresql`).
# Idempotent; works as root with no init system; never touches Debian's own
# cluster (/var/lib/postgresql/*/main, port 5432).
#
#   scripts/postgres.sh install        apt-get install Debian's `postgresql` unless its binaries are there
#   scripts/postgres.sh start          install and initdb if needed, start unless ours already answers,
#                                      make sure the role and database exist, print the URL
#   scripts/postgres.sh stop           stop the PostgreSQL this script started (its data directory only)
#   scripts/postgres.sh status         exit 0 when ours accepts connections, 3 otherwise
#   scripts/postgres.sh url [DB]       print postgres://ROLE:PASSWORD@127.0.0.1:PORT/DB (DB: the project's)
#   scripts/postgres.sh create-db DB   create database DB owned by the project's role (if missing), print its URL
#   scripts/postgres.sh drop-db DB     drop database DB (if present)
#
# Layout (all under one directory of the project's own, owned by the `postgres` OS user):
#   $POSTGRES_STATE_DIR/data       the cluster (initdb; survives stop/start)
#   $POSTGRES_STATE_DIR/run        its Unix socket (no other socket directory)
#   $POSTGRES_STATE_DIR/postgres.log
#   $POSTGRES_STATE_DIR/role-password   the role's password (mode 600; a test server on loopback)
#
# Environment (all optional):
#   POSTGRES_STATE_DIR  (${XDG_RUNTIME_DIR:-/tmp}/smartcard-assist/postgres)
#   POSTGRES_PORT       loopback TCP port (55432)
#   POSTGRES_ROLE       role the project logs in as (smartcard_assist)
#   POSTGRES_DATABASE   its database (smartcard_assist)
#
# initdb and the server refuse to run as root: as root they run as the
# `postgres` OS user (created by Debian's package), which must be able to reach
# the state directory (every parent directory searchable).
set -euo pipefail

STATE_DIR="${POSTGRES_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/smartcard-assist/postgres}"
DATA_DIR="$STATE_DIR/data"
SOCKET_DIR="$STATE_DIR/run"
LOG_FILE="$STATE_DIR/postgres.log"
PASSWORD_FILE="$STATE_DIR/role-password"
PORT="${POSTGRES_PORT:-55432}"
ROLE="${POSTGRES_ROLE:-smartcard_assist}"
DATABASE="${POSTGRES_DATABASE:-smartcard_assist}"
START_TIMEOUT_SECONDS="${POSTGRES_START_TIMEOUT:-60}"
OS_USER=postgres

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Directory of the newest installed server binaries (Debian: /usr/lib/postgresql/<major>/bin).
pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] || return 1
  echo "$d"
}

# Run a command as the server's OS user (root: via runuser; anyone else: as themselves).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$OS_USER" -- "$@"
  else
    "$@"
  fi
}

cmd_install() {
  if pg_bindir >/dev/null; then
    return 0
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing Debian's postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends postgresql
  pg_bindir >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl found"
}

valid_name() { [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]]; }

# The role's password: made once, kept in the state directory.
role_password() {
  if [ ! -s "$PASSWORD_FILE" ]; then
    mkdir -p "$STATE_DIR"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PASSWORD_FILE")
  fi
  cat "$PASSWORD_FILE"
}

url_of() { echo "postgres://$ROLE:$(role_password)@127.0.0.1:$PORT/$1"; }

# Create the state directory for the server's OS user and initdb once.
cmd_init() {
  local bindir
  bindir="$(pg_bindir)" || die "PostgreSQL is not installed (run: $0 install)"
  mkdir -p "$STATE_DIR"
  if [ "$(id -u)" = 0 ]; then
    id "$OS_USER" >/dev/null 2>&1 || die "no '$OS_USER' OS user (Debian's postgresql package creates it)"
    chown "$OS_USER:" "$STATE_DIR"
    runuser -u "$OS_USER" -- test -w "$STATE_DIR" || die "the '$OS_USER' OS user cannot reach $STATE_DIR (a parent directory is not searchable); set POSTGRES_STATE_DIR"
  fi
  chmod 700 "$STATE_DIR"
  as_owner mkdir -p "$SOCKET_DIR"
  as_owner chmod 700 "$SOCKET_DIR"
  if [ -s "$DATA_DIR/PG_VERSION" ]; then return 0; fi
  log "initdb $DATA_DIR"
  as_owner rm -rf "$DATA_DIR"
  # Local (socket) connections: the OS user only (peer), the socket directory is private.
  # TCP: password (SCRAM) only. The server listens on 127.0.0.1 alone (see cmd_start).
  as_owner "$bindir/initdb" --pgdata="$DATA_DIR" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >>"$LOG_FILE.init" 2>&1 || { tail -n 20 "$LOG_FILE.init" >&2; die "initdb failed"; }
}

psql_admin() {
  local bindir
  bindir="$(pg_bindir)"
  as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres "$@"
}

# The postmaster's pid when our cluster's server is alive.
our_pid() {
  local pid
  [ -r "$DATA_DIR/postmaster.pid" ] || return 1
  pid="$(head -n 1 "$DATA_DIR/postmaster.pid" | tr -dc '0-9')"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  case "$(cat "/proc/$pid/comm" 2>/dev/null || true)" in postgres | postmaster) ;; *) return 1 ;; esac
  echo "$pid"
}

ready() {
  local bindir
  bindir="$(pg_bindir)" || return 1
  "$bindir/pg_isready" -q -h "$SOCKET_DIR" -p "$PORT" >/dev/null 2>&1
}

port_listening() {
  local hex
  hex="$(printf '%04X' "$PORT")"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }'
}

# Role (LOGIN, password from the state directory) and the project's database, if missing.
ensure_role_and_db() {
  local pw
  pw="$(role_password)"
  psql_admin -v role="$ROLE" -v pw="$pw" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw') \gexec
SQL
  create_db "$DATABASE"
}

create_db() {
  valid_name "$1" || die "database name '$1': use lower-case letters, digits and _ (at most 63)"
  psql_admin -v db="$1" -v role="$ROLE" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

cmd_start() {
  cmd_install
  cmd_init
  local bindir pid waited=0
  bindir="$(pg_bindir)"
  if pid="$(our_pid)"; then
    local n=0
    while ! ready && [ "$n" -lt $((START_TIMEOUT_SECONDS * 10)) ]; do sleep 0.1; n=$((n + 1)); done
    ready || die "postgres (pid $pid) runs but does not accept connections on $SOCKET_DIR; try: $0 stop && $0 start"
    log "already running (pid $pid) on 127.0.0.1:$PORT"
    ensure_role_and_db
    url_of "$DATABASE"
    return 0
  fi
  if port_listening; then
    die "port $PORT is taken by another process; set POSTGRES_PORT to a free port"
  fi
  log "starting PostgreSQL on 127.0.0.1:$PORT (data: $DATA_DIR, log: $LOG_FILE)"
  # pg_ctl start detaches the server (its own session); -w waits until it accepts connections.
  as_owner touch "$LOG_FILE"
  as_owner "$bindir/pg_ctl" start -w -t "$START_TIMEOUT_SECONDS" -D "$DATA_DIR" -l "$LOG_FILE" -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories='$SOCKET_DIR' -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    || { tail -n 20 "$LOG_FILE" >&2 || true; die "PostgreSQL did not start"; }
  while ! ready && [ "$waited" -lt $((START_TIMEOUT_SECONDS * 10)) ]; do sleep 0.1; waited=$((waited + 1)); done
  pid="$(our_pid)" || die "PostgreSQL started but left no postmaster.pid"
  ensure_role_and_db
  log "PostgreSQL running (pid $pid)"
  url_of "$DATABASE"
}

cmd_stop() {
  local bindir pid
  if ! pid="$(our_pid)"; then
    log "not running"
    return 0
  fi
  bindir="$(pg_bindir)"
  # Fast shutdown: ends client sessions, writes a checkpoint.
  as_owner "$bindir/pg_ctl" stop -w -t 30 -m fast -D "$DATA_DIR" -s || {
    log "PostgreSQL (pid $pid) did not stop within 30s; immediate shutdown"
    as_owner "$bindir/pg_ctl" stop -w -t 10 -m immediate -D "$DATA_DIR" -s || true
  }
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if ! pid="$(our_pid)"; then
    echo "postgres: not running"
    return 3
  fi
  if ready; then
    echo "postgres: running (pid $pid), accepting connections on 127.0.0.1:$PORT"
    return 0
  fi
  echo "postgres: running (pid $pid) but not accepting connections"
  return 3
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) url_of "${2:-$DATABASE}" ;;
  create-db)
    [ -n "${2:-}" ] || die "usage: $0 create-db NAME"
    our_pid >/dev/null && ready || die "not running (run: $0 start)"
    create_db "$2"
    url_of "$2"
    ;;
  drop-db)
    [ -n "${2:-}" ] || die "usage: $0 drop-db NAME"
    valid_name "$2" || die "database name '$2' is not valid"
    [ "$2" != "$DATABASE" ] || die "refusing to drop the project's main database"
    our_pid >/dev/null && ready || die "not running"
    psql_admin -v db="$2" <<'SQL'
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \gexec
SQL
    ;;
  *)
    echo "usage: $0 install|start|stop|status|url [DB]|create-db DB|drop-db DB" >&2
    exit 2
    ;;
esac
