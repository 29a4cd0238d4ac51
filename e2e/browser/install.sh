#!/usr/bin/env bash
# Install a real headless browser for gatehouse's sign-in e2e test:
# Debian's own chromium and chromium-driver packages (never a downloaded
# browser build). Prints the browser's path as the last line on stdout.
#
# Environment:
#   CHROMIUM_BIN  use this browser instead (must be executable); nothing installed
set -euo pipefail
exec 3>&1 1>&2

log() { echo "e2e/browser/install.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -n "${CHROMIUM_BIN:-}" ]]; then
  [[ -x "$CHROMIUM_BIN" ]] || die "CHROMIUM_BIN=$CHROMIUM_BIN is not an executable file"
  echo "$CHROMIUM_BIN" >&3
  exit 0
fi

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo /usr/bin/chromium >&3
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: install Debian's chromium and chromium-driver packages, or set CHROMIUM_BIN"
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: install chromium and chromium-driver yourself, or set CHROMIUM_BIN"
  SUDO=sudo
fi
log "installing Debian's chromium and chromium-driver"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
[[ -x /usr/bin/chromium ]] || die "chromium was installed but /usr/bin/chromium is missing"
/usr/bin/chromium --headless --no-sandbox --version >&2 || log "note: chromium --version failed (it still may run under chromedp)"
echo /usr/bin/chromium >&3
