#!/usr/bin/env bash
# Installs and starts the demo (README's first command):
#
#   bash scripts/demo.sh
#
# Starts, on this machine only (loopback):
#   - the bot (embedded store and outbox mail under data/) on port ${PORT:-3978},
#   - a seeded demo person (Alex Wilber, the Playground's current user) with a
#     locked virtual smartcard,
#   - the companion with that virtual card in an in-process reader,
#   - the Microsoft 365 Agents Playground (a Teams stand-in) on ${PLAYGROUND_PORT:-56150},
# then prints what to do next. Ctrl-C stops everything it started.
# Logs: data/logs/. Start afresh: stop the demo and delete data/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

mkdir -p "${SMARTCARD_DATA_DIR:-data}"
DATA_DIR="$(cd "${SMARTCARD_DATA_DIR:-data}" && pwd)"
BOT_PORT="${PORT:-3978}"
PLAYGROUND_PORT="${PLAYGROUND_PORT:-56150}"
LOG_DIR="$DATA_DIR/logs"
BOT_URL="http://127.0.0.1:$BOT_PORT"

say() { printf '%s\n' "demo: $*"; }
die() { printf '%s\n' "demo: $*" >&2; exit 1; }

# --- install (same rules as scripts/test-all.sh) ---------------------------------
bash scripts/setup-system.sh
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ] || [ ! -f "$nodedir/include/node/node.h" ]; then
  prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ -f "$prefix/include/node/node.h" ]; then export npm_config_nodedir="$prefix"; elif [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
fi
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
if ! node -e "require('better-sqlite3')(':memory:').close()" >/dev/null 2>&1; then
  npm rebuild better-sqlite3 pcsclite
fi

# --- ports must be free (the Playground would silently move to a random port) --
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$BOT_PORT" && die "port $BOT_PORT is in use (another demo or bot running?). Stop it or set PORT=..."
port_busy "$PLAYGROUND_PORT" && die "port $PLAYGROUND_PORT is in use. Stop it or set PLAYGROUND_PORT=..."

# --- data directory and master key ----------------------------------------------
mkdir -p "$LOG_DIR"
chmod 700 "$DATA_DIR"
MASTER_KEY_FILE="$DATA_DIR/master.key"
if [ ! -s "$MASTER_KEY_FILE" ]; then
  (umask 077 && node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('base64') + '\n')" >"$MASTER_KEY_FILE")
  say "generated a master key in $MASTER_KEY_FILE (keep it with the data: it decrypts the stored PUKs)"
fi
chmod 600 "$MASTER_KEY_FILE"

export SMARTCARD_DATA_DIR="$DATA_DIR"
export SMARTCARD_MASTER_KEY_FILE="$MASTER_KEY_FILE"
export MAIL_TRANSPORT=outbox

# --- processes: each in its own session so Ctrl-C here stops them all -------------
PIDS=()
NAMES=()
cleanup() {
  trap - INT TERM EXIT
  if [ "${#PIDS[@]}" -gt 0 ]; then
    say "stopping ${NAMES[*]}"
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      alive=0
      for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOGFILE COMMAND... : run in a new session (setsid execs in place, so $! is its pid and group)
start() {
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  PIDS+=("$!")
  NAMES+=("$name")
}

# wait_line FILE REGEX SECONDS PID : wait until FILE has a line matching REGEX
wait_line() {
  local file="$1" re="$2" secs="$3" pid="$4" i=0
  while [ "$i" -lt $((secs * 10)) ]; do
    grep -Eq "$re" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$file" >&2; return 1; }
    sleep 0.1
    i=$((i + 1))
  done
  tail -n 30 "$file" >&2
  return 1
}

# --- seed the demo person ---------------------------------------------------------
if [ -f bot/admin.cli.ts ]; then
  say "seeding the demo person"
  npx tsx bot/admin.cli.ts seed-demo --teams-user-id user-id-0 | tee "$LOG_DIR/seed-demo.txt"
else
  say "TODO(bot/admin.cli.ts seed-demo): no admin command yet; the demo person is not seeded"
fi
DEMO_CARD_ENV="$DATA_DIR/demo-card.env"

# --- bot -------------------------------------------------------------------------------
[ -f bot/main.ts ] || die "TODO(bot/main.ts): the bot's entry point is not there yet"
say "starting the bot on $BOT_URL"
start bot "$LOG_DIR/bot.log" env PORT="$BOT_PORT" HOST=127.0.0.1 npx tsx bot/main.ts
BOT_PID="${PIDS[-1]}"
for _ in $(seq 1 300); do
  curl -fsS "$BOT_URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$BOT_PID" 2>/dev/null || { tail -n 30 "$LOG_DIR/bot.log" >&2; die "the bot stopped during start-up (log: $LOG_DIR/bot.log)"; }
  sleep 0.1
done
curl -fsS "$BOT_URL/healthz" >/dev/null 2>&1 || die "the bot does not answer $BOT_URL/healthz (log: $LOG_DIR/bot.log)"

# --- companion with the in-process virtual card -------------------------------------------
PAIRING_LINE=""
PAGE_LINE=""
if [ -f companion/main.ts ] && [ -f "$DEMO_CARD_ENV" ]; then
  # The demo card carries valid X.509 certificates (issue #14), made fresh with openssl on each run (no key kept).
  DEMO_CARD_CERTS=""
  if command -v openssl >/dev/null 2>&1 && npx tsx scripts/test-certs.ts --out "$DATA_DIR/demo-card-certs" --holder "Demo Holder" >"$LOG_DIR/demo-card-certs.txt" 2>&1; then
    DEMO_CARD_CERTS="$DATA_DIR/demo-card-certs"
  else
    say "the demo card has no certificates (openssl missing or failed; see $LOG_DIR/demo-card-certs.txt)"
  fi
  say "starting the companion with the demo's virtual card"
  # The card settings (identifier, passcode, PUK) come from the file seed-demo wrote, never the command line.
  # The card settings (identifier, passcode, PUK) come from the file seed-demo wrote, exported
  # in a subshell: never on a command line, where every user of the machine could read them.
  (
    set -a
    # shellcheck disable=SC1090
    . "$DEMO_CARD_ENV"
    set +a
    export SMARTCARD_BOT_URL="$BOT_URL" COMPANION_READER=virtual COMPANION_DATA_DIR="$DATA_DIR/companion" \
      COMPANION_LOG_FILE="$LOG_DIR/companion.log" COMPANION_WORKSTATION="demo-workstation" COMPANION_VIRTUAL_CARD_CERTS="$DEMO_CARD_CERTS"
    exec setsid npx tsx companion/main.ts >"$LOG_DIR/companion.out" 2>&1 </dev/null
  ) &
  PIDS+=("$!")
  NAMES+=(companion)
  COMPANION_PID="${PIDS[-1]}"
  wait_line "$LOG_DIR/companion.out" '^PASSCODE PAGE: ' 60 "$COMPANION_PID" || die "the companion did not start (see $LOG_DIR/companion.out, $LOG_DIR/companion.log)"
  # A fresh companion shows a pairing code; one paired on an earlier run connects with its stored credential.
  wait_line "$LOG_DIR/companion.out" '^(PAIRING CODE: |PAIRED: |STATUS: connected)' 60 "$COMPANION_PID" || die "the companion neither connected nor showed a pairing code (see $LOG_DIR/companion.out)"
  PAGE_LINE="$(grep -E '^PASSCODE PAGE: ' "$LOG_DIR/companion.out" | tail -n 1)"
  PAIRING_LINE="$(grep -E '^(PAIRING CODE: |PAIRED: |STATUS: connected)' "$LOG_DIR/companion.out" | tail -n 1)"
  case "$PAIRING_LINE" in
    "PAIRING CODE: "*) ;;
    *) PAIRING_LINE="already paired ($PAIRING_LINE); delete $DATA_DIR/companion/ to pair again" ;;
  esac
else
  say "TODO(companion/main.ts + data/demo-card.env): companion not started"
fi

# --- Agents Playground -----------------------------------------------------------------------
say "starting the Microsoft 365 Agents Playground on port $PLAYGROUND_PORT"
start playground "$LOG_DIR/playground.out" env TEAMSAPPTESTER_BROWSER=none APPLICATION_INSIGHTS_NO_STATSBEAT=true \
  M365_AGENTS_PLAYGROUND_CONFIG_PATH="$ROOT/.m365agentsplayground.yml" \
  M365_AGENTS_PLAYGROUND_LOGFILE="$LOG_DIR/playground.internal.log" \
  node --require "$ROOT/scripts/loopback-only.cjs" "$ROOT/node_modules/@microsoft/m365agentsplayground/cli.js" \
  -e "$BOT_URL/api/messages" -c msteams -p "$PLAYGROUND_PORT" --disable-telemetry
PG_PID="${PIDS[-1]}"
wait_line "$LOG_DIR/playground.out" '^Listening on [0-9]+' 60 "$PG_PID" || die "the Playground did not start (see $LOG_DIR/playground.out)"
grep -Eq "^Listening on $PLAYGROUND_PORT\$" "$LOG_DIR/playground.out" || die "the Playground took another port: $(grep -E '^Listening on' "$LOG_DIR/playground.out")"

# --- what to do next ---------------------------------------------------------------------------
if [ "${UNLOCK_POLICY:-questions}" = "code-only" ]; then
  STEP3='Say "my card is locked" (UNLOCK_POLICY=code-only: no questions; pick email or text if offered)'
else
  STEP3='Say "my card is locked" and answer the security questions
    (the demo answers are listed above, from seed-demo).'
fi
cat <<EOF

==============================================================================
 Smartcard Assist demo is running (Ctrl-C stops it)

 1. Open the Teams stand-in:   http://localhost:$PLAYGROUND_PORT
    You are Alex Wilber; the personal chat with Smartcard Assist opens.
 2. Pair this computer:        ${PAIRING_LINE:-(companion not started)}
 3. $STEP3
 4. The unlock code is "emailed" to the outbox: $DATA_DIR/outbox/
    (a code sent as a text message lands in $DATA_DIR/sms-outbox/)
 5. Type the code and a new passcode on the companion's page:
    ${PAGE_LINE:-(companion not started)}
    (the companion prints the link again before each prompt, below; for a new one at any time:
     COMPANION_DATA_DIR=$DATA_DIR/companion npm run companion -- --page-link)

 Logs: $LOG_DIR/   (bot.log, companion.out, companion.log, playground.out)
==============================================================================
EOF

# --- stay up while everything runs ------------------------------------------------------------
# New companion lines for the person (a fresh pairing code, PAIRED, STATUS, UNLOCK) are shown as they come.
shown=0
[ -f "$LOG_DIR/companion.out" ] && shown="$(grep -cE '^[A-Z ]+: ' "$LOG_DIR/companion.out" || true)"
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      die "${NAMES[$i]} stopped; see $LOG_DIR/. Stopping the rest."
    fi
  done
  if [ -f "$LOG_DIR/companion.out" ]; then
    total="$(grep -cE '^[A-Z ]+: ' "$LOG_DIR/companion.out" || true)"
    if [ "$total" -gt "$shown" ]; then
      grep -E '^[A-Z ]+: ' "$LOG_DIR/companion.out" | tail -n "$((total - shown))" | sed 's/^/companion: /'
      shown="$total"
    fi
  fi
  sleep 1
done
