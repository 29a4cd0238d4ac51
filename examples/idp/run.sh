#!/usr/bin/env bash
# Run the test OIDC provider (Keycloak, dev mode, in-memory DB) on
# 127.0.0.1:PORT in the foreground, with realm "gatehouse" imported from
# realm-gatehouse.json next to this script.
#
# Usage:  examples/idp/run.sh PORT
#
# stdout carries exactly one line, "READY <issuer-url>", once the realm's
# discovery document is served; the issuer is http://127.0.0.1:PORT/realms/gatehouse.
# Keycloak's own log goes to stderr. SIGTERM/SIGINT stop the server cleanly
# (~1-3 s); the process you started IS Keycloak's launcher (kc.sh), which
# forwards the signal to the JVM. State is in memory: every start is fresh.
#
# Environment:
#   KEYCLOAK_HOME        Keycloak home (default: from install.sh, installing if needed)
#   KC_ADMIN_USER/_PASSWORD  master-realm bootstrap admin (default admin/admin),
#                        used by rotate-key.sh
#   IDP_READY_TIMEOUT    seconds to wait for readiness before giving up (default 180)
set -euo pipefail
PORT="${1:?usage: run.sh PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KC_HOME="${KEYCLOAK_HOME:-$("$HERE/install.sh" | tail -n1)}"
[[ -x "$KC_HOME/bin/kc.sh" ]] || { echo "run.sh: no kc.sh in $KC_HOME" >&2; exit 1; }

ISSUER="http://127.0.0.1:$PORT/realms/gatehouse"

# --import-realm reads $KC_HOME/data/import; write it atomically (concurrent
# runs share the same Keycloak home and the same file content).
mkdir -p "$KC_HOME/data/import"
tmp="$(mktemp "$KC_HOME/data/import/.realm.XXXXXX")"
cp "$HERE/realm-gatehouse.json" "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$KC_HOME/data/import/realm-gatehouse.json"

# Readiness watcher: polls discovery, prints READY on the original stdout,
# exits when the server process ($$ after exec) goes away.
exec 3>&1
self=$$
(
  deadline=$((SECONDS + ${IDP_READY_TIMEOUT:-180}))
  while kill -0 "$self" 2>/dev/null; do
    if curl -sf -o /dev/null "$ISSUER/.well-known/openid-configuration"; then
      echo "READY $ISSUER" >&3
      exit 0
    fi
    if (( SECONDS > deadline )); then
      echo "run.sh: not ready after ${IDP_READY_TIMEOUT:-180}s, stopping" >&2
      kill -TERM "$self" 2>/dev/null
      exit 1
    fi
    sleep 0.25
  done
) &
exec 3>&-

export KC_BOOTSTRAP_ADMIN_USERNAME="${KC_ADMIN_USER:-admin}"
export KC_BOOTSTRAP_ADMIN_PASSWORD="${KC_ADMIN_PASSWORD:-admin}"
exec "$KC_HOME/bin/kc.sh" start-dev \
  --db=dev-mem \
  --http-host=127.0.0.1 --http-port="$PORT" \
  --hostname="http://127.0.0.1:$PORT" \
  --import-realm 1>&2
