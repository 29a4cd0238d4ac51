#!/usr/bin/env bash
# Run the MCP server (server.py) with uvicorn on 127.0.0.1:PORT in the
# foreground. The process you started IS uvicorn (exec): SIGTERM/SIGINT stop
# it cleanly. Installs the venv first if needed (install.sh).
#
# Usage:  JWKS_URL=http://127.0.0.1:9090/.well-known/jwks.json examples/mcp-server/run.sh PORT
#
# Environment: JWKS_URL, GATEHOUSE_ENTITY, GATEHOUSE_ISSUER, MCP_PATH (see server.py);
#   MCP_PYTHON  python with the requirements installed (default: install.sh's venv)
set -euo pipefail
PORT="${1:?usage: run.sh PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${MCP_PYTHON:-$("$HERE/install.sh" | tail -n1)}"
[[ -x "$PY" ]] || { echo "run.sh: no python at '$PY'" >&2; exit 1; }
exec "$PY" -m uvicorn server:app --app-dir "$HERE" --host 127.0.0.1 --port "$PORT" \
  --timeout-graceful-shutdown 5 --no-server-header
