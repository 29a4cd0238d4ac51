#!/usr/bin/env bash
# Run the minimal Backstage backend (catalog, auth + guest provider, proxy) on
# 127.0.0.1:PORT in the foreground, serving the entities of CATALOG_FILE.
#
# Usage:  examples/backstage/run.sh PORT CATALOG_FILE
#
# stdout carries exactly one line, "READY <baseUrl>" (baseUrl = http://127.0.0.1:PORT),
# once GET /api/catalog/entities/by-query?limit=1 answers 200 with the static token.
# (The catalog may still be empty then: the file location is ingested a few
# seconds later; poll for the entities you need.) Backstage's log goes to stderr.
# SIGTERM/SIGINT stop the backend (this process IS node after exec).
# State is in memory (SQLite :memory:): every start is fresh.
#
# Environment:
#   BACKSTAGE_STATIC_TOKEN  static API token, subject "gatehouse"
#                           (default: gatehouse-static-token; >= 8 non-space chars)
#   GATEHOUSE_EDGE_URL      target of /api/proxy/gatehouse (default http://127.0.0.1:9)
#   GATEHOUSE_JWKS_URL      gatehouse's JWKS, for its assertion as a bearer token (app-config.yaml)
#   BACKSTAGE_OMIT_ENT_CLAIM true (Backstage default: user tokens carry no `ent` claim)
#                           or false (tokens carry ent = ownership refs)
#   BACKSTAGE_DIR           install dir (default: from install.sh, installing if needed)
#   BACKSTAGE_READY_TIMEOUT seconds to wait for readiness before giving up (default 120)
set -euo pipefail
PORT="${1:?usage: run.sh PORT CATALOG_FILE}"
CATALOG="${2:?usage: run.sh PORT CATALOG_FILE}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${BACKSTAGE_DIR:-$("$HERE/install.sh" | tail -n1)}"
[[ -f "$CATALOG" ]] || { echo "run.sh: no catalog file $CATALOG" >&2; exit 1; }

export BACKSTAGE_PORT="$PORT"
export BACKSTAGE_CATALOG_FILE="$(cd "$(dirname "$CATALOG")" && pwd)/$(basename "$CATALOG")"
export BACKSTAGE_STATIC_TOKEN="${BACKSTAGE_STATIC_TOKEN:-gatehouse-static-token}"
export GATEHOUSE_EDGE_URL="${GATEHOUSE_EDGE_URL:-http://127.0.0.1:9}"
export BACKSTAGE_OMIT_ENT_CLAIM="${BACKSTAGE_OMIT_ENT_CLAIM:-true}"
BASE="http://127.0.0.1:$PORT"

exec 3>&1
self=$$
(
  deadline=$((SECONDS + ${BACKSTAGE_READY_TIMEOUT:-120}))
  while kill -0 "$self" 2>/dev/null; do
    if curl -sf -o /dev/null -H "Authorization: Bearer $BACKSTAGE_STATIC_TOKEN" \
         "$BASE/api/catalog/entities/by-query?limit=1"; then
      echo "READY $BASE" >&3
      exit 0
    fi
    if (( SECONDS > deadline )); then
      echo "run.sh: not ready after ${BACKSTAGE_READY_TIMEOUT:-120}s, stopping" >&2
      kill -TERM "$self" 2>/dev/null
      exit 1
    fi
    sleep 0.25
  done
) &
exec 3>&-

cd "$DIR"
exec node index.js --config "$DIR/app-config.yaml" 1>&2
