#!/usr/bin/env bash
# Start, stop or report pcscd with the vpcd virtual reader, for tests and the
# demo. Idempotent; works as root with no init system.
#
#   scripts/pcscd.sh start    install pcscd + vpcd if missing, start pcscd in the
#                             background unless one already runs, wait until vpcd
#                             listens on port ${VPCD_PORT:-35963} (and the next one). NOTE: Debian's
#                             vpcd binds ALL interfaces (its reader.conf names only a port,
#                             DEVICENAME /dev/null:0x8C7B; a host there makes vpcd connect out
#                             instead). Test machines only; keep those ports closed to the network.
#   scripts/pcscd.sh stop     stop the pcscd this script started (never another one)
#   scripts/pcscd.sh status   exit 0 when pcscd runs and vpcd listens, 3 otherwise
#
# pcscd runs as `pcscd --foreground`, never with -a: APDU logging would write
# PINs and PUKs to the log. Its pid and log are kept under
# ${XDG_RUNTIME_DIR:-/tmp}/smartcard-assist/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${XDG_RUNTIME_DIR:-/tmp}/smartcard-assist"
PID_FILE="$STATE_DIR/pcscd.pid"
LOG_FILE="$STATE_DIR/pcscd.log"
SYSTEM_PID_FILE=/run/pcscd/pcscd.pid
VPCD_PORT="${VPCD_PORT:-35963}"
VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
START_TIMEOUT_SECONDS="${PCSCD_START_TIMEOUT:-20}"

log() { echo "pcscd.sh: $*" >&2; }

# Echo the pid in file $1 when that process is alive and is pcscd.
alive_pcscd_from() {
  local file="$1" pid
  [ -r "$file" ] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [ -n "$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "pcscd" ] || return 1
  # A killed pcscd can linger as a zombie until it is reaped: count it as gone.
  [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)" != "Z" ] || return 1
  echo "$pid"
}

our_pid() { alive_pcscd_from "$PID_FILE"; }
system_pid() { alive_pcscd_from "$SYSTEM_PID_FILE"; }

# True when something listens on TCP $VPCD_PORT (read from /proc; connecting
# would look like a card insertion to vpcd).
vpcd_listening() {
  local hex
  hex="$(printf '%04X' "$VPCD_PORT")"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }'
}

wait_ready() {
  local pid="$1" waited=0
  while [ "$waited" -lt $((START_TIMEOUT_SECONDS * 10)) ]; do
    if vpcd_listening && [ -S /run/pcscd/pcscd.comm ]; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      log "pcscd (pid $pid) exited during start-up; last log lines:"
      tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "vpcd is not listening on port $VPCD_PORT after ${START_TIMEOUT_SECONDS}s (is $VPCD_DRIVER configured in /etc/reader.conf.d/?)"
  tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
  return 1
}

ensure_packages() {
  if ! command -v pcscd >/dev/null 2>&1 || [ ! -e "$VPCD_DRIVER" ] || [ ! -e /etc/reader.conf.d/vpcd ]; then
    log "pcscd or vpcd missing: running scripts/setup-system.sh"
    bash "$HERE/setup-system.sh"
  fi
  command -v pcscd >/dev/null 2>&1 || { log "pcscd is still not installed"; exit 1; }
}

cmd_start() {
  ensure_packages
  mkdir -p "$STATE_DIR"
  local pid
  if pid="$(our_pid)"; then
    if wait_ready "$pid"; then
      log "already running (pid $pid), vpcd on port $VPCD_PORT"
      return 0
    fi
    if our_pid >/dev/null; then
      log "pcscd (pid $pid) runs but vpcd does not listen on port $VPCD_PORT; try: $0 stop && $0 start"
      exit 1
    fi
  fi
  if pid="$(system_pid)"; then
    if wait_ready "$pid"; then
      log "pcscd already running (pid $pid, not started by this script); using it"
      return 0
    fi
    if system_pid >/dev/null; then
      log "pcscd (pid $pid, not started by this script) runs but vpcd does not listen on port $VPCD_PORT; stop it first"
      exit 1
    fi
  fi
  rm -f "$PID_FILE"
  # No pcscd alive: a pid file or socket left by a crashed one would make the new one refuse to start.
  rm -f "$SYSTEM_PID_FILE" /run/pcscd/pcscd.comm
  log "starting pcscd --foreground (log: $LOG_FILE)"
  # setsid: own session, so the caller's terminal or process group going away does not stop it.
  # In a non-interactive shell the background child is not a group leader, so setsid execs
  # pcscd in place and $! is pcscd's pid.
  setsid pcscd --foreground >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if ! wait_ready "$pid"; then
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    exit 1
  fi
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != "pcscd" ]; then
    log "started process $pid is not pcscd; refusing to record it"
    rm -f "$PID_FILE"
    exit 1
  fi
  log "pcscd running (pid $pid), vpcd listening on port $VPCD_PORT"
}

cmd_stop() {
  local pid waited=0
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    if pid="$(system_pid)"; then
      log "pcscd (pid $pid) was not started by this script; leaving it running"
    else
      log "not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 50 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pcscd (pid $pid) did not stop on TERM within 5s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
    rm -f "$SYSTEM_PID_FILE" /run/pcscd/pcscd.comm
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid owner="started by this script"
  if ! pid="$(our_pid)"; then
    if ! pid="$(system_pid)"; then
      echo "pcscd: not running"
      return 3
    fi
    owner="not started by this script"
  fi
  if vpcd_listening; then
    echo "pcscd: running (pid $pid, $owner), vpcd listening on port $VPCD_PORT"
    return 0
  fi
  echo "pcscd: running (pid $pid, $owner), but vpcd is not listening on port $VPCD_PORT"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
