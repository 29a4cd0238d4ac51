#!/usr/bin/env bash
# Install the platform-graph (Strawberry on FastAPI) example's dependencies (requirements.txt) into a
# repo-local venv at .tools/platform-graph-venv (examples/python-venv.sh).
#
# Usage:  PY="$(examples/platform-graph/install.sh | tail -n1)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../python-venv.sh" "$HERE" platform-graph-venv strawberry fastapi uvicorn jwt cryptography
