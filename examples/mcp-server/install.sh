#!/usr/bin/env bash
# Install the MCP server example's dependencies (requirements.txt) into a
# repo-local venv at .tools/mcp-venv (examples/python-venv.sh).
#
# Usage:  PY="$(examples/mcp-server/install.sh | tail -n1)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../python-venv.sh" "$HERE" mcp-venv mcp uvicorn jwt cryptography
