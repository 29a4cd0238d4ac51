#!/usr/bin/env bash
# Build the OPA-Envoy plugin (github.com/open-policy-agent/opa-envoy-plugin,
# the version pinned as a tool in bench/opa/go.mod) through the Go module
# proxy into .tools/opa-envoy-plugin, the baseline of bench/checkload.
# bench/opa is its own module so OPA's dependencies stay out of gatehouse's.
# A cold build (module download + compile) takes about 3 minutes on 2 cores;
# later runs reuse the binary while bench/opa/go.mod and go.sum are unchanged.
#
# Usage: OPA="$(bench/opa/install.sh)"   (the binary's path is the last line on stdout)
set -euo pipefail
exec 3>&1 1>&2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/opa-envoy-plugin"
STAMP="$BIN.stamp"
mkdir -p "$ROOT/.tools"
want="$(cat "$ROOT/bench/opa/go.mod" "$ROOT/bench/opa/go.sum" | sha256sum | cut -d' ' -f1)"
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$BIN" >&3
  exit 0
fi
echo "bench/opa/install.sh: building the OPA-Envoy plugin (a few minutes the first time)"
cd "$ROOT/bench/opa"
CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin
mv "$BIN.tmp" "$BIN"
echo "$want" > "$STAMP"
echo "$BIN" >&3
