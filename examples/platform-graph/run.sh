#!/usr/bin/env bash
# Run the platform-graph example (app.py) with uvicorn on 127.0.0.1:PORT in
# the foreground (exec: SIGTERM/SIGINT stop it). Installs the venv first if
# needed (install.sh).
#
# Usage:  JWKS_URL=http://127.0.0.1:9090/.well-known/jwks.json examples/platform-graph/run.sh PORT
#
# Environment: JWKS_URL, GATEHOUSE_ENTITY, GATEHOUSE_ISSUER, PLATFORM_GRAPH_DATA,
#   PLATFORM_GRAPH_ECHO (see app.py);
#   PLATFORM_GRAPH_PYTHON  python with the requirements installed (default: install.sh's venv)
set -euo pipefail
PORT="${1:?usage: run.sh PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PLATFORM_GRAPH_PYTHON:-$("$HERE/install.sh" | tail -n1)}"
[[ -x "$PY" ]] || { echo "run.sh: no python at '$PY'" >&2; exit 1; }
exec "$PY" -m uvicorn app:app --app-dir "$HERE" --host 127.0.0.1 --port "$PORT" \
  --timeout-graceful-shutdown 5 --no-server-header --log-level warning
