#!/usr/bin/env bash
# Install a real OIDC provider (Keycloak, Quarkus distribution) for gatehouse's
# end-to-end tests.
#
# Keycloak comes from Maven Central as the artifact
# org.keycloak:keycloak-quarkus-dist:<version>:zip, fetched with Maven
# (maven-dependency-plugin) and unpacked into .tools/keycloak/keycloak-<version>.
# Install then runs the server once in dev mode so that the one-off Quarkus
# "augmentation" (~20 s) is paid here and not on every test start.
#
# Usage:  KC_HOME="$(examples/idp/install.sh)"
#
# The absolute path of the Keycloak home (containing bin/kc.sh) is the LAST
# (and only) line on stdout; progress and errors go to stderr. Idempotent:
# a completed install is detected and returned at once.
#
# Needs: java 17+ (java on PATH or JAVA_HOME), mvn, unzip, curl.
# Environment:
#   KEYCLOAK_VERSION  override the pinned version (default below)
#   KEYCLOAK_HOME     use this Keycloak home instead; nothing installed
set -euo pipefail

PINNED_VERSION="26.7.3"     # newest on Maven Central at pin time; runs on JDK 17
VERSION="${KEYCLOAK_VERSION:-$PINNED_VERSION}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

exec 3>&1 1>&2
log() { echo "idp/install.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -n "${KEYCLOAK_HOME:-}" ]]; then
  [[ -x "$KEYCLOAK_HOME/bin/kc.sh" ]] || die "KEYCLOAK_HOME=$KEYCLOAK_HOME has no bin/kc.sh"
  echo "$KEYCLOAK_HOME" >&3
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
BASE="$TOOLS/keycloak"
HOME_DIR="$BASE/keycloak-$VERSION"
MARKER="$HOME_DIR/.gatehouse-installed"

mkdir -p "$BASE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/keycloak-install.lock"
  flock 9
fi

if [[ -f "$MARKER" && -x "$HOME_DIR/bin/kc.sh" ]]; then
  echo "$HOME_DIR" >&3
  exit 0
fi

command -v java >/dev/null || [[ -n "${JAVA_HOME:-}" ]] || die "java (17+) not found"
command -v mvn >/dev/null || die "mvn not found"
command -v unzip >/dev/null || die "unzip not found"

# 1. Download from Maven Central with Maven (also caches it in ~/.m2).
zip="$BASE/keycloak-quarkus-dist-$VERSION.zip"
if [[ ! -f "$zip" ]]; then
  log "fetching org.keycloak:keycloak-quarkus-dist:$VERSION:zip from Maven Central"
  mvn -q -B "$DEP_PLUGIN:copy" \
    -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" \
    -DoutputDirectory="$BASE" -Dmdep.overWriteReleases=true >&2 \
    || die "mvn could not fetch keycloak-quarkus-dist $VERSION"
fi

# 2. Unpack into a scratch dir, then move into place.
rm -rf "$HOME_DIR" "$BASE/unpack.tmp"
mkdir -p "$BASE/unpack.tmp"
log "unpacking $zip"
unzip -q "$zip" -d "$BASE/unpack.tmp"
mv "$BASE/unpack.tmp/keycloak-$VERSION" "$HOME_DIR"
rm -rf "$BASE/unpack.tmp" "$zip"

# 3. Warm-up: one dev-mode start builds (augments) the server for the dev
#    profile and dev-mem database; later `kc.sh start-dev --db=dev-mem` starts
#    skip that step. Port 0 = any free port; we stop it once it listens.
log "warm-up start (Quarkus augmentation, ~45 s on 2 cores)"
wlog="$BASE/warmup.log"
"$HOME_DIR/bin/kc.sh" start-dev --db=dev-mem --http-host=127.0.0.1 --http-port=0 >"$wlog" 2>&1 &
kpid=$!
ok=""
for _ in $(seq 1 600); do
  if grep -q "Listening on:" "$wlog"; then ok=1; break; fi
  kill -0 "$kpid" 2>/dev/null || break
  sleep 0.5
done
kill -TERM "$kpid" 2>/dev/null || true
wait "$kpid" 2>/dev/null || true
[[ -n "$ok" ]] || { tail -40 "$wlog" >&2; die "warm-up start failed (log: $wlog)"; }
rm -rf "$HOME_DIR/data/transaction-logs"

touch "$MARKER"
log "installed Keycloak $VERSION at $HOME_DIR"
echo "$HOME_DIR" >&3
