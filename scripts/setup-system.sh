#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need. Idempotent: does
# nothing when every package is already installed.
set -euo pipefail
# postgresql: the storage of the FerretDB test server (scripts/postgres.sh runs its own cluster).
PKGS=(pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc chromium postgresql)
# The companion's tray icon test (test/integration/companion-tray-xvfb.test.ts, issue #13): an X server, the
# trayer tray host, the AppIndicator library systray2's Linux tray program links, xdotool to click, imagemagick
# for screenshots, tesseract to read the menu back; libnotify-bin is notify-send for desktop notifications.
PKGS+=(xvfb trayer libayatana-appindicator3-1 xdotool imagemagick x11-utils tesseract-ocr tesseract-ocr-eng libnotify-bin)
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
