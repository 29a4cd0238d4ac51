#!/usr/bin/env bash
# Install a Python example's dependencies (its requirements.txt, pinned)
# into a repo-local venv at .tools/<venv>. Idempotent: a venv that already
# holds exactly these requirements is left alone. Each example's
# install.sh calls this with its own names.
#
# Usage:  examples/python-venv.sh <example dir> <venv name> <module>...
#         (the modules are imported to check the venv)
#
# The LAST line on stdout is the venv's python; progress goes to stderr.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default python3)
set -euo pipefail
exec 3>&1 1>&2
[[ $# -ge 3 ]] || { echo "usage: $0 <example dir> <venv name> <module>..." >&2; exit 2; }
HERE="$(cd "$1" && pwd)"
NAME="$(basename "$HERE")"
shift
VENV_NAME="$1"
shift
MODULES=("$@")
IMPORT="import $(IFS=,; echo "${MODULES[*]}")"

log() { echo "$NAME/install.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/$VENV_NAME"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"
mkdir -p "$TOOLS"

# Serialise concurrent callers.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/${VENV_NAME%-venv}-install.lock"
  flock 9
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] &&
   "$VENV/bin/python" -c "$IMPORT" 2>/dev/null; then
  echo "$VENV/bin/python" >&3
  exit 0
fi

log "installing $(grep -v '^#' "$REQ" | tr '\n' ' ')into $VENV"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (need Python >= 3.10 with venv)"
if [[ ! -x "$VENV/bin/python" ]]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" \
    || { rm -rf "$VENV"; die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"; }
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ" \
  || die "pip install -r $REQ failed"
"$VENV/bin/python" -c "$IMPORT" \
  || die "the venv cannot import ${MODULES[*]} after install"
echo "$want" >"$STAMP"
log "ok"
echo "$VENV/bin/python" >&3
