#!/usr/bin/env bash
# make demo: gatehouse + a real Envoy edge + two example upstreams on the
# example catalog built into gatehouse (or on CATALOG=path, which you can
# edit live). Ctrl-C stops everything. Exits non-zero when something fails
# to start or a process of the demo dies.
#
# Ports (environment, defaults in brackets), every one on 127.0.0.1:
#   DEMO_EDGE_PORT        [10000]  Envoy's edge listener: send requests here
#   DEMO_ADMIN_PORT       [9090]   gatehouse admin (/debug/*, explain --remote,
#                                  the dev token issuer); export
#                                  GATEHOUSE_ADMIN_LISTEN=127.0.0.1:PORT for
#                                  `gatehouse token` when you move it
#   DEMO_XDS_PORT         [18000]  gatehouse xDS
#   DEMO_AUTHZ_PORT       [18001]  gatehouse ext_authz
#   DEMO_SIGNIN_PORT      [18002]  gatehouse browser sign-in (Envoy routes
#                                  /.gatehouse/ to it; the user picker itself
#                                  is on the admin port)
#   DEMO_ENVOY_ADMIN_PORT [9901]   Envoy admin (/config_dump, /ready)
#   DEMO_ORDERS_PORT      [8081]   the orders upstream (FastAPI)
#   DEMO_SHOP_PORT        [8082]   the shop upstream (echo)
#   DEMO_PLATFORM_PORT    [8083]   the platform GraphQL upstream (Strawberry)
#   DEMO_MCP_PORT         [8084]   the platform-tools MCP server (Python mcp SDK)
# The example catalog names the upstreams 127.0.0.1:8081, :8082, :8083 and :8084; with
# other upstream ports the demo serves a copy of the catalog with the ports
# replaced, kept in step with the files you edit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

EDGE_PORT="${DEMO_EDGE_PORT:-10000}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9090}"
XDS_PORT="${DEMO_XDS_PORT:-18000}"
AUTHZ_PORT="${DEMO_AUTHZ_PORT:-18001}"
SIGNIN_PORT="${DEMO_SIGNIN_PORT:-18002}"
ENVOY_ADMIN_PORT="${DEMO_ENVOY_ADMIN_PORT:-9901}"
ORDERS_PORT="${DEMO_ORDERS_PORT:-8081}"
SHOP_PORT="${DEMO_SHOP_PORT:-8082}"
PLATFORM_PORT="${DEMO_PLATFORM_PORT:-8083}"
MCP_PORT="${DEMO_MCP_PORT:-8084}"

say() { echo "demo: $*"; }
fail() { echo "demo: error: $*" >&2; exit 1; }

# Every port free before anything starts: a busy port is the usual reason a
# demo fails (9090 is Prometheus's default, 8081 a common dev server's).
declare -A used=()
for var in EDGE_PORT ADMIN_PORT XDS_PORT AUTHZ_PORT SIGNIN_PORT ENVOY_ADMIN_PORT ORDERS_PORT SHOP_PORT PLATFORM_PORT MCP_PORT; do
  p="${!var}"
  [[ "$p" =~ ^[0-9]+$ ]] && (( p > 0 && p < 65536 )) || fail "DEMO_$var=$p is not a port"
  [[ -z "${used[$p]:-}" ]] || fail "DEMO_$var and DEMO_${used[$p]} are both $p"
  used[$p]="$var"
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    fail "127.0.0.1:$p (DEMO_$var) is in use by another program; stop it or pick another port, e.g. DEMO_$var=$((p + 1)) make demo"
  fi
done

ENVOY="$(bash envoy/install.sh)"
FASTAPI_PY="$(bash examples/fastapi-orders/install.sh | tail -n1)"
PLATFORM_PY="$(bash examples/platform-graph/install.sh | tail -n1)"
MCP_PY="$(bash examples/mcp-server/install.sh | tail -n1)"
if [[ ! -x bin/gatehouse || ! -x bin/echo ]]; then
  say "building gatehouse and the echo upstream with Go; the first build downloads modules and compiles for a few minutes (later ones take seconds)..."
else
  say "building gatehouse..."
fi
start=$SECONDS
make -s build
go build -o bin/ ./examples/echo ./examples/agent   # bin/echo, bin/agent (the MCP agent)
say "built in $((SECONDS - start))s"

STATE="$ROOT/.tools/demo"   # kept across runs: the dev issuer's key
mkdir -p "$STATE"
LOGS="$(mktemp -d)"
pids=()
names=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  [[ -n "${1:-}" ]] && status=0   # Ctrl-C or kill: a normal stop
  echo
  echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped (logs were in $LOGS)"
  exit "$status"
}
trap 'cleanup signal' INT TERM
trap cleanup EXIT
start_bg() { # NAME LOG CMD...: start CMD in the background, remember it
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
}
died() { # NAME LOG: say that NAME exited and show the end of its log
  echo "demo: error: $1 exited; the end of its log ($2):" >&2
  tail -n 30 "$2" >&2
  exit 1
}
wait_for() { # NAME LOG URL TRIES [PID]: poll URL every 0.1s while NAME (PID, default the last started) runs
  local name=$1 log=$2 url=$3 tries=$4 pid=${5:-${pids[-1]}} i
  for ((i = 0; i < tries; i++)); do
    curl -sf "$url" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || died "$name" "$log"
    sleep 0.1
  done
  echo "demo: error: $name did not become ready ($url); the end of its log ($log):" >&2
  tail -n 30 "$log" >&2
  exit 1
}

# The catalog: the one built into gatehouse, or CATALOG; with upstream ports
# other than the catalog's, a copy with the ports replaced, refreshed every
# 0.3 s from the files you edit.
catalog_args=()
catalog_note="built into gatehouse (a copy of examples/catalog)"
if [[ -n "${CATALOG:-}" ]]; then
  [[ -e "$CATALOG" ]] || fail "CATALOG=$CATALOG does not exist"
  catalog_args=(--catalog "$CATALOG")
  catalog_note="$CATALOG (followed: edits apply within a second)"
fi
if [[ "$ORDERS_PORT" != 8081 || "$SHOP_PORT" != 8082 || "$PLATFORM_PORT" != 8083 || "$MCP_PORT" != 8084 ]]; then
  src="${CATALOG:-examples/catalog/catalog-info.yaml}"
  if [[ -d "$src" ]]; then srcdir="$src" root=""; else srcdir="$(dirname "$src")" root="/$(basename "$src")"; fi
  derived="$LOGS/catalog"
  sync_catalog() {
    local f rel tmp="$LOGS/.catalog.tmp"
    while IFS= read -r -d '' f; do
      rel="${f#"$srcdir"/}"
      mkdir -p "$derived/$(dirname "$rel")"
      sed -e "s#127\.0\.0\.1:8081\b#127.0.0.1:$ORDERS_PORT#g" -e "s#127\.0\.0\.1:8082\b#127.0.0.1:$SHOP_PORT#g" \
        -e "s#127\.0\.0\.1:8083\b#127.0.0.1:$PLATFORM_PORT#g" -e "s#127\.0\.0\.1:8084\b#127.0.0.1:$MCP_PORT#g" "$f" >"$tmp"
      cmp -s "$tmp" "$derived/$rel" || mv "$tmp" "$derived/$rel"
    done < <(find "$srcdir" -name '*.yaml' -print0)
  }
  sync_catalog
  start_bg catalog-sync /dev/null bash -c "$(declare -f sync_catalog); srcdir='$srcdir' derived='$derived' LOGS='$LOGS' ORDERS_PORT=$ORDERS_PORT SHOP_PORT=$SHOP_PORT PLATFORM_PORT=$PLATFORM_PORT MCP_PORT=$MCP_PORT; while sleep 0.3; do sync_catalog; done"
  catalog_args=(--catalog "$derived$root")
  catalog_note="${CATALOG:-examples/catalog/catalog-info.yaml}, served as $derived$root with the upstream ports $ORDERS_PORT, $SHOP_PORT, $PLATFORM_PORT and $MCP_PORT"
fi

# tools is the MCP server (examples/mcp-server, the official mcp SDK): it
# trusts only gatehouse's assertion; tool rules are the catalog's. It
# starts first and is waited for last: its imports take a second or two.
start_bg tools "$LOGS/tools.log" env MCP_PYTHON="$MCP_PY" JWKS_URL="http://127.0.0.1:$ADMIN_PORT/.well-known/jwks.json" \
  GATEHOUSE_ENTITY=component:default/tools bash examples/mcp-server/run.sh "$MCP_PORT"
tools_pid=${pids[-1]}
# orders is the FastAPI reference service: it trusts only a verified x-gatehouse-assertion.
start_bg orders "$LOGS/orders.log" env FASTAPI_PYTHON="$FASTAPI_PY" JWKS_URL="http://127.0.0.1:$ADMIN_PORT/.well-known/jwks.json" \
  bash examples/fastapi-orders/run.sh "$ORDERS_PORT"
wait_for orders "$LOGS/orders.log" "127.0.0.1:$ORDERS_PORT/orders/healthz" 150
# platform is the Strawberry GraphQL service, in filter mode (docs/graphql.md);
# it echoes the query it ran in extensions.executed.
start_bg platform "$LOGS/platform.log" env PLATFORM_GRAPH_PYTHON="$PLATFORM_PY" PLATFORM_GRAPH_ECHO=1 \
  JWKS_URL="http://127.0.0.1:$ADMIN_PORT/.well-known/jwks.json" GATEHOUSE_ENTITY=component:default/platform \
  bash examples/platform-graph/run.sh "$PLATFORM_PORT"
wait_for platform "$LOGS/platform.log" "127.0.0.1:$PLATFORM_PORT/platform/healthz" 150
wait_for tools "$LOGS/tools.log" "127.0.0.1:$MCP_PORT/healthz" 150 "$tools_pid"
start_bg shop "$LOGS/shop.log" bin/echo -listen "127.0.0.1:$SHOP_PORT" -name shop
wait_for shop "$LOGS/shop.log" "127.0.0.1:$SHOP_PORT/" 50
export GATEHOUSE_EDGE_ADDRESS=127.0.0.1 GATEHOUSE_EDGE_PORT="$EDGE_PORT" \
  GATEHOUSE_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" GATEHOUSE_XDS_LISTEN="127.0.0.1:$XDS_PORT" \
  GATEHOUSE_AUTHZ_LISTEN="127.0.0.1:$AUTHZ_PORT" GATEHOUSE_DEV_KEY_FILE="$STATE/dev-issuer.pem"
# Browser sign-in through the development issuer's user picker (--dev only):
# the session key is kept with the dev issuer's, so sessions survive restarts.
export GATEHOUSE_SIGNIN_LISTEN="127.0.0.1:$SIGNIN_PORT" GATEHOUSE_SIGNIN_ISSUER=dev \
  GATEHOUSE_SIGNIN_KEY_FILE="$STATE/session.key" GATEHOUSE_SIGNIN_GENERATE_KEY=true GATEHOUSE_SIGNIN_PUBLIC_PORT="$EDGE_PORT"
# The token exchange (RFC 8693) for AI agents acting for a person, at
# /.gatehouse/token on the edge, served beside the sign-in (docs/agents.md).
export GATEHOUSE_TOKEN_EXCHANGE_LISTEN="127.0.0.1:$SIGNIN_PORT" \
  GATEHOUSE_TOKEN_EXCHANGE_ISSUER="http://localhost:$EDGE_PORT/.gatehouse/token"
start_bg gatehouse "$LOGS/gatehouse.log" bin/gatehouse serve --dev "${catalog_args[@]}"
wait_for gatehouse "$LOGS/gatehouse.log" "127.0.0.1:$ADMIN_PORT/readyz" 100
bin/gatehouse bootstrap --role edge --node-id edge-1 --xds-address "127.0.0.1:$XDS_PORT" --admin-port "$ENVOY_ADMIN_PORT" >"$LOGS/edge.yaml"
start_bg envoy "$LOGS/envoy.log" "$ENVOY" -c "$LOGS/edge.yaml" --disable-hot-restart --log-level warn
wait_for envoy "$LOGS/envoy.log" "127.0.0.1:$ENVOY_ADMIN_PORT/ready" 150

ALICE="$(bin/gatehouse token --user user:default/alice)"
BOB="$(bin/gatehouse token --user user:default/bob)"
E="localhost:$EDGE_PORT"
export_line=""
[[ "$ADMIN_PORT" == 9090 ]] || export_line="
  export GATEHOUSE_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT   # where gatehouse token finds the demo"
cat <<MSG

gatehouse demo is up: catalog $catalog_note;
gatehouse admin 127.0.0.1:$ADMIN_PORT, Envoy edge $E, Envoy admin 127.0.0.1:$ENVOY_ADMIN_PORT.
Tokens come from gatehouse's development issuer (serve --dev), whose key is kept
in .tools/demo/dev-issuer.pem, so they stay valid when you restart the demo;
alice is in group payments (owns orders), bob in storefront (owns shop).
In a browser: open http://$E/orders/1, pick alice on the development
issuer's page (no password: --dev only), and see the page as alice; bob gets
the 403 page. Sign out: http://$E/.gatehouse/logout

In another terminal:
$export_line
  ALICE=\$(bin/gatehouse token --user user:default/alice)
  BOB=\$(bin/gatehouse token --user user:default/bob)
  SHOP=\$(bin/gatehouse token --client-id shop)   # the shop Component's own client

Try:
  curl -s -H "Authorization: Bearer \$ALICE" $E/orders/42          # 200: alice's team owns orders (FastAPI shows the caller it verified)
  curl -si $E/orders/42 | head -1                                # 401: no token
  curl -si -H "Authorization: Bearer \$BOB" $E/orders/42 | head -1  # 403: bob is not in payments
  curl -s -H "Authorization: Bearer \$BOB" -H 'Host: shop.example.com' $E/   # 200: bob's team owns shop
  curl -s -H "Authorization: Bearer \$SHOP" $E/orders/v1/whoami    # 200: shop consumes orders-api
  curl -s $E/orders/healthz                                      # 200: a public path
  curl -s -H "Authorization: Bearer \$BOB" -H 'Content-Type: application/json' -d '{"query":"{ components { name cloudAccountId } }"}' $E/platform/graphql   # 200: GraphQL filter mode: bob gets the names, cloudAccountId null and an error each
  curl -s -H "Authorization: Bearer \$ALICE" -H 'Content-Type: application/json' -d '{"query":"{ components { name cloudAccountId } }"}' $E/platform/graphql # 200: alice's team owns platform: every field
  curl -si -H 'X-Gatehouse-User: user:default/alice' 127.0.0.1:$ORDERS_PORT/orders/42 | head -1   # 401: orders itself trusts no bare header
  bin/gatehouse explain --remote http://127.0.0.1:$ADMIN_PORT --principal user:default/bob --url http://localhost/orders/42
  bin/agent --url http://$E/tools/mcp --token "\$(bin/gatehouse token --user user:default/alice --audience api:default/platform-tools)" --list   # MCP: alice's tools (README step 7: bob's, a refused tool, an agent acting for alice)
  curl -s 127.0.0.1:$ADMIN_PORT/debug/nodes                                 # connected Envoys, ACKed versions, NACKs

(tokens for this session: ALICE=$ALICE
                          BOB=$BOB)

To edit the catalog live: make demo CATALOG=examples/catalog/catalog-info.yaml, then edit
examples/catalog/*.yaml (add bob to payments in org.yaml): the decision changes within a second.
Logs: $LOGS (audit trail: gatehouse stdout in gatehouse.log)
Processes: $(for i in "${!pids[@]}"; do printf '%s %s  ' "${names[$i]}" "${pids[$i]}"; done)
Ctrl-C to stop.
MSG

# Until Ctrl-C, or until a process of the demo exits: then say which, and fail.
while :; do
  wait -n "${pids[@]}" || true
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      log="$LOGS/${names[$i]}.log"
      [[ -f "$log" ]] || log=/dev/null
      died "${names[$i]}" "$log"
    fi
  done
done
