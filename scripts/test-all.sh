#!/usr/bin/env bash
# Installs what the tests need and runs every test (README's second command).
#
#   bash scripts/test-all.sh
#
# Idempotent on a fresh Debian 12 machine of this kind: Debian packages (pcscd,
# vpcd, Chromium...), npm dependencies when missing or stale, pcscd with the
# virtual reader (scripts/pcscd.sh, when present), PostgreSQL and FerretDB on it
# (scripts/postgres.sh, scripts/ferretdb.sh, unless MONGODB_URL names a server), then typecheck, unit tests
# and integration tests (vitest JSON reports in artifacts/reports/). The last
# line is "N passed, N failed[, N skipped]"; the exit status is non-zero when
# anything failed or no test ran. Under CI=true a suite whose service is
# missing fails instead of skipping (test/support/services.ts).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ARTIFACTS="${ARTIFACTS_DIR:-$ROOT/artifacts}"
REPORTS="$ARTIFACTS/reports"
mkdir -p "$REPORTS" "$ARTIFACTS/logs"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'test-all: %s\n' "$*" >&2; exit 1; }

STARTED_PCSCD=0
STARTED_FERRETDB=0 # set by the FerretDB block (3b)
STARTED_POSTGRES=0 # set by the FerretDB block (3b)
cleanup() {
  if [ "$STARTED_PCSCD" = 1 ]; then
    bash scripts/pcscd.sh stop >/dev/null 2>&1 || true
  fi
  # FerretDB block (3b): stop FerretDB, then PostgreSQL, each only if this run started it.
  if [ "$STARTED_FERRETDB" = 1 ]; then
    bash scripts/ferretdb.sh stop >/dev/null 2>&1 || true
  fi
  if [ "$STARTED_POSTGRES" = 1 ]; then
    bash scripts/postgres.sh stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Debian packages --------------------------------------------------------
say "system packages"
bash scripts/setup-system.sh || die "scripts/setup-system.sh failed"

# --- 2. npm dependencies ---------------------------------------------------------
# Native modules (better-sqlite3, pcsclite) build with node-gyp, which must find
# Node's headers locally (no download here): point nodedir at the running Node.
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ] || [ ! -f "$nodedir/include/node/node.h" ]; then
  prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ -f "$prefix/include/node/node.h" ]; then
    export npm_config_nodedir="$prefix"
    echo "test-all: npm nodedir -> $prefix"
  elif [ -f /usr/include/node/node.h ]; then
    export npm_config_nodedir=/usr
    echo "test-all: npm nodedir -> /usr"
  else
    echo "test-all: WARNING no Node headers (include/node/node.h) found; native modules may fail to build" >&2
  fi
fi

say "npm dependencies"
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || die "npm ci failed"
else
  echo "node_modules is up to date with package-lock.json"
fi
# A native module built for another Node (or skipped by a script policy) is rebuilt here.
if ! node -e "require('better-sqlite3')(':memory:').close(); require('pcsclite')" >/dev/null 2>&1; then
  echo "test-all: rebuilding native modules"
  npm rebuild better-sqlite3 pcsclite || die "npm rebuild of native modules failed"
  node -e "require('better-sqlite3')(':memory:').close(); require('pcsclite')" || die "native modules still do not load"
fi

# --- 3. pcscd with the virtual reader ------------------------------------------
if [ -f scripts/pcscd.sh ]; then
  say "pcscd"
  if bash scripts/pcscd.sh status >/dev/null 2>&1; then
    echo "pcscd already running; it stays running afterwards"
  else
    bash scripts/pcscd.sh start || die "scripts/pcscd.sh start failed"
    STARTED_PCSCD=1
  fi
else
  echo "test-all: scripts/pcscd.sh not present; PC/SC suites will report pcscd missing"
fi

# --- 3b. FerretDB on PostgreSQL: the MongoDB-protocol server of the MongoDB suites ---
# (block kept by the MongoDB storage work; details in scripts/ferretdb.sh and scripts/postgres.sh)
# MONGODB_URL set: the suites use that server and nothing is started here.
# Otherwise the project's own PostgreSQL (Debian's package, its own cluster under
# ${XDG_RUNTIME_DIR:-/tmp}/smartcard-assist/postgres, 127.0.0.1:${POSTGRES_PORT:-55432}) is
# started first, then FerretDB v1.24.2 on it (built once with Go, cached in
# ~/.cache/smartcard-assist/bin; about 3 minutes on 2 cores the first time, instant after)
# on 127.0.0.1:${FERRETDB_PORT:-27117}. The outage and two-instance suites start private
# FerretDBs on the same PostgreSQL. A failure here does not stop the run: the MongoDB
# suites then fail under CI=true (and skip with a message elsewhere).
if [ -n "${MONGODB_URL:-}" ]; then
  say "MongoDB server: MONGODB_URL is set; the MongoDB suites use it"
else
  say "PostgreSQL + FerretDB"
  if bash scripts/postgres.sh status >/dev/null 2>&1; then
    echo "PostgreSQL already running; it stays running afterwards"
  elif bash scripts/postgres.sh start >/dev/null; then
    STARTED_POSTGRES=1
  else
    echo "test-all: WARNING scripts/postgres.sh start failed; the MongoDB suites will report it" >&2
  fi
  if bash scripts/ferretdb.sh status >/dev/null 2>&1; then
    echo "FerretDB already running; it stays running afterwards"
  elif bash scripts/ferretdb.sh start >/dev/null; then
    STARTED_FERRETDB=1
  else
    echo "test-all: WARNING scripts/ferretdb.sh start failed; the MongoDB storage suites will report it" >&2
  fi
fi

# --- 4. typecheck ---------------------------------------------------------------
say "typecheck (tsc)"
TSC_OK=1
npx tsc -p tsconfig.json || TSC_OK=0

say "import rules (dependency-cruiser)"
DEPS_OK=1
npx depcruise --config .dependency-cruiser.cjs bot cards companion storage protocol common || DEPS_OK=0

say "unused code and dependencies (knip)"
KNIP_OK=1
npx knip || KNIP_OK=0

say "build to JavaScript (npm run build)"
BUILD_OK=1
npm run -s build || BUILD_OK=0

# --- 5. tests -------------------------------------------------------------------
rm -f "$REPORTS/unit.json" "$REPORTS/integration.json"
say "unit tests"
npx vitest run --project unit --passWithNoTests --reporter=default --reporter=json \
  --outputFile.json="$REPORTS/unit.json"
UNIT_RC=$?
say "integration tests"
npx vitest run --project integration --passWithNoTests --reporter=default --reporter=json \
  --outputFile.json="$REPORTS/integration.json"
INTEGRATION_RC=$?

# --- 6. summary -----------------------------------------------------------------
# Counts come from the JSON reports. A test file that failed as a whole (import
# error, failing beforeAll, a service missing under CI) counts as one failure;
# a missing report counts as one failure.
SUMMARY="$(node - "$REPORTS/unit.json" "$REPORTS/integration.json" <<'EOF'
const fs = require('node:fs');
let passed = 0, failed = 0, skipped = 0;
const notes = [];
for (const file of process.argv.slice(2)) {
  let r;
  try { r = JSON.parse(fs.readFileSync(file, 'utf8')); }
  catch { failed += 1; notes.push(`no report: ${file}`); continue; }
  passed += r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  for (const t of r.testResults ?? []) {
    const failedInside = (t.assertionResults ?? []).some((a) => a.status === 'failed');
    if (t.status === 'failed' && !failedInside) {
      failed += 1;
      notes.push(`file failed: ${t.name}: ${(t.message ?? '').split('\n')[0].slice(0, 300)}`);
    }
  }
}
for (const n of notes) console.log(`# ${n}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
EOF
)"
NODE_RC=$?

RC=0
[ "$TSC_OK" = 1 ] || { echo "test-all: typecheck FAILED (see tsc output above)"; RC=1; }
[ "$DEPS_OK" = 1 ] || { echo "test-all: import rules FAILED (see dependency-cruiser output above)"; RC=1; }
[ "$KNIP_OK" = 1 ] || { echo "test-all: unused code FAILED (see knip output above)"; RC=1; }
[ "$BUILD_OK" = 1 ] || { echo "test-all: build FAILED (see esbuild output above)"; RC=1; }
[ "$UNIT_RC" = 0 ] || RC=1
[ "$INTEGRATION_RC" = 0 ] || RC=1
[ "$NODE_RC" = 0 ] || RC=1
LINE="$(printf '%s\n' "$SUMMARY" | tail -n 1)"
printf '%s\n' "$SUMMARY" | grep '^# ' || true
if printf '%s' "$LINE" | grep -Eq '^0 passed, 0 failed'; then
  echo "test-all: no test ran"
  RC=1
fi
if ! printf '%s' "$LINE" | grep -Eq '^[0-9]+ passed, 0 failed'; then RC=1; fi
echo
echo "$LINE"
exit "$RC"
