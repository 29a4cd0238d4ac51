#!/usr/bin/env bash
# Install the FastAPI example's dependencies (requirements.txt) into a
# repo-local venv at .tools/fastapi-venv (examples/python-venv.sh).
#
# Usage:  PY="$(examples/fastapi-orders/install.sh | tail -n1)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../python-venv.sh" "$HERE" fastapi-venv fastapi uvicorn jwt cryptography
