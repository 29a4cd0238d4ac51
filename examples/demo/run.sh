#!/usr/bin/env bash
# make demo: gatehouse + a real Envoy edge + two example upstreams on the
# example catalog. Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ENVOY="$(bash envoy/install.sh)"
make -s build
go build -o bin/echo ./examples/echo

LOGS="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped (logs were in $LOGS)"
  exit 0
}
trap cleanup INT TERM EXIT

bin/echo -listen 127.0.0.1:8081 -name orders >"$LOGS/orders.log" 2>&1 & pids+=($!)
bin/echo -listen 127.0.0.1:8082 -name shop   >"$LOGS/shop.log" 2>&1 & pids+=($!)
bin/gatehouse serve --config examples/demo/gatehouse.yaml >"$LOGS/gatehouse.log" 2>&1 & pids+=($!)
for i in $(seq 1 50); do curl -sf 127.0.0.1:9090/readyz >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:9090/readyz >/dev/null || { echo "gatehouse did not become ready:"; cat "$LOGS/gatehouse.log"; exit 1; }
"$ENVOY" -c envoy/edge.yaml --disable-hot-restart --log-level warn >"$LOGS/envoy.log" 2>&1 & pids+=($!)
for i in $(seq 1 100); do curl -sf 127.0.0.1:9901/ready >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:9901/ready >/dev/null || { echo "envoy did not become ready:"; cat "$LOGS/envoy.log"; exit 1; }

cat <<MSG

gatehouse demo is up: catalog examples/catalog/, gatehouse admin :9090, Envoy edge :10000.

Try:
  curl -s localhost:10000/orders/42                       # -> orders (shared host, prefix /orders)
  curl -s localhost:10000/orders/v1/items                 # -> orders, via the orders-api route
  curl -s -H 'Host: shop.example.com' localhost:10000/    # -> shop (its own host)
  curl -si localhost:10000/nope | head -1                 # -> 404 from Envoy
  curl -s localhost:9090/debug/model                      # what gatehouse serves
  curl -s localhost:9090/debug/nodes                      # connected Envoys, ACKed versions, NACKs
  bin/gatehouse validate examples/catalog/catalog-info.yaml

Edit examples/catalog/systems/*.yaml and the routes change within a second.
Logs: $LOGS   Ctrl-C to stop.
MSG
wait
