#!/usr/bin/env bash
# make demo: gatehouse + a real Envoy edge + two example upstreams on the
# example catalog built into gatehouse (or on CATALOG=path, which you can
# edit live). Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ENVOY="$(bash envoy/install.sh)"
FASTAPI_PY="$(bash examples/fastapi-orders/install.sh | tail -n1)"
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

# orders is the FastAPI reference service: it trusts only a verified x-gatehouse-assertion.
FASTAPI_PYTHON="$FASTAPI_PY" JWKS_URL=http://127.0.0.1:9090/.well-known/jwks.json \
  bash examples/fastapi-orders/run.sh 8081 >"$LOGS/orders.log" 2>&1 & pids+=($!)
for i in $(seq 1 100); do curl -sf 127.0.0.1:8081/orders/healthz >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:8081/orders/healthz >/dev/null || { echo "the orders service did not start:"; cat "$LOGS/orders.log"; exit 1; }
bin/echo -listen 127.0.0.1:8082 -name shop   >"$LOGS/shop.log" 2>&1 & pids+=($!)
GATEHOUSE_EDGE_ADDRESS=127.0.0.1 bin/gatehouse serve --dev ${CATALOG:+--catalog "$CATALOG"} >"$LOGS/gatehouse.log" 2>&1 & pids+=($!)
for i in $(seq 1 50); do curl -sf 127.0.0.1:9090/readyz >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:9090/readyz >/dev/null || { echo "gatehouse did not become ready:"; cat "$LOGS/gatehouse.log"; exit 1; }
"$ENVOY" -c envoy/edge.yaml --disable-hot-restart --log-level warn >"$LOGS/envoy.log" 2>&1 & pids+=($!)
for i in $(seq 1 100); do curl -sf 127.0.0.1:9901/ready >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:9901/ready >/dev/null || { echo "envoy did not become ready:"; cat "$LOGS/envoy.log"; exit 1; }

ALICE="$(bin/gatehouse token --user user:default/alice)"
BOB="$(bin/gatehouse token --user user:default/bob)"
cat <<MSG

gatehouse demo is up: catalog ${CATALOG:-built into gatehouse (a copy of examples/catalog)}, gatehouse admin :9090, Envoy edge :10000.
Tokens come from gatehouse's development issuer (serve --dev); alice is in
group payments (owns orders), bob in storefront (owns shop).

  ALICE=\$(bin/gatehouse token --user user:default/alice)
  BOB=\$(bin/gatehouse token --user user:default/bob)

Try:
  curl -s -H "Authorization: Bearer \$ALICE" localhost:10000/orders/42          # 200: alice's team owns orders (FastAPI shows the caller it verified)
  curl -si localhost:10000/orders/42 | head -1                                # 401: no token
  curl -si -H "Authorization: Bearer \$BOB" localhost:10000/orders/42 | head -1  # 403: bob is not in payments
  curl -s -H "Authorization: Bearer \$BOB" -H 'Host: shop.example.com' localhost:10000/   # 200: bob's team owns shop
  curl -s localhost:10000/orders/healthz                                      # 200: a public path
  curl -si -H 'X-Gatehouse-User: user:default/alice' localhost:8081/orders/42 | head -1   # 401: orders itself trusts no bare header
  bin/gatehouse explain --remote http://127.0.0.1:9090 --principal user:default/bob --url http://localhost/orders/42
  curl -s localhost:9090/debug/nodes                                          # connected Envoys, ACKed versions, NACKs

(tokens for this session: ALICE=$ALICE
                          BOB=$BOB)

To edit the catalog live: make demo CATALOG=examples/catalog/catalog-info.yaml, then edit
examples/catalog/*.yaml (add bob to payments in org.yaml): the decision changes within a second.
Logs: $LOGS (audit trail: gatehouse stdout in gatehouse.log)   Ctrl-C to stop.
MSG
wait
