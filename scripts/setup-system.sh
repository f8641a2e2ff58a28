#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need. Idempotent: does
# nothing when every package is already installed.
set -euo pipefail
# postgresql: the storage of the FerretDB test server (scripts/postgres.sh runs its own cluster).
PKGS=(pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc chromium postgresql)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all Debian packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
