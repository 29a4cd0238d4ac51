#!/usr/bin/env bash
# Install the minimal Backstage backend used by gatehouse's end-to-end tests:
# `npm ci` from the committed package-lock.json into examples/backstage/node_modules
# (git-ignored). better-sqlite3's native module is built from source by its
# install script if no prebuilt binary can be fetched (needs gcc/g++/make/python3;
# node-gyp uses the headers under `npm config get nodedir` or downloads them).
#
# Usage:  BACKSTAGE_DIR="$(examples/backstage/install.sh)"
#
# The absolute path of this directory (containing index.js, app-config.yaml and
# node_modules/) is the LAST (and only) line on stdout; progress goes to stderr.
# Idempotent: a stamp keyed on package-lock.json + node version skips `npm ci`.
#
# Needs: node 20/22/24 and npm on PATH.
set -euo pipefail

exec 3>&1 1>&2
log() { echo "backstage/install.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
command -v node >/dev/null || die "node not on PATH"
command -v npm  >/dev/null || die "npm not on PATH"

want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -p 'process.versions.modules')"
stamp="node_modules/.gatehouse-install-stamp"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && node -e "require('better-sqlite3')(':memory:').close()" 2>/dev/null; then
  log "already installed ($HERE/node_modules)"
  echo "$HERE" >&3
  exit 0
fi

log "npm ci (cold: ~2-3 min, ~850 packages; compiles better-sqlite3 if needed)"
start=$SECONDS
# allowScripts in package.json lets better-sqlite3 (native build) and protobufjs run
# their install scripts; --foreground-scripts streams the build log to stderr.
npm ci --no-audit --no-fund --foreground-scripts --loglevel=warn
node -e "require('better-sqlite3')(':memory:').close()" \
  || die "better-sqlite3 native module does not load"
echo "$want" > "$stamp"
log "installed in $((SECONDS - start))s ($(du -sh node_modules | cut -f1))"
echo "$HERE" >&3
