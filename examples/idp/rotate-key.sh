#!/usr/bin/env bash
# Rotate the RS256 signing key of the running test Keycloak (realm "gatehouse").
#
# Usage:  examples/idp/rotate-key.sh PORT [--retire-old]
#
# Adds a new `rsa-generated` key provider with a priority above every existing
# RS256 provider, so new tokens are signed with the new key. By default the old
# key stays ACTIVE and stays in the JWKS (tokens signed before the rotation
# still verify). With --retire-old the old RS256 providers are deleted: their
# kids disappear from the JWKS and old tokens no longer verify.
#
# Prints the new kid as the LAST (only) line on stdout; progress to stderr.
# Needs curl and jq. Uses the bootstrap admin that run.sh creates (admin/admin,
# overridable with KC_ADMIN_USER / KC_ADMIN_PASSWORD).
set -euo pipefail
PORT="${1:?usage: rotate-key.sh PORT [--retire-old]}"
RETIRE="${2:-}"
BASE="http://127.0.0.1:$PORT"
REALM=gatehouse
log() { echo "rotate-key.sh: $*" >&2; }

tok=$(curl -sf "$BASE/realms/master/protocol/openid-connect/token" \
  -d grant_type=password -d client_id=admin-cli \
  -d "username=${KC_ADMIN_USER:-admin}" -d "password=${KC_ADMIN_PASSWORD:-admin}" | jq -r .access_token)
auth=(-H "Authorization: Bearer $tok")
api="$BASE/admin/realms/$REALM"

realm_id=$(curl -sf "${auth[@]}" "$api" | jq -r .id)
keys=$(curl -sf "${auth[@]}" "$api/keys")
old_kid=$(jq -r '.active.RS256' <<<"$keys")
# RS256 providers (component ids) and their highest priority.
old_providers=$(jq -r '[.keys[] | select(.algorithm=="RS256") | .providerId] | unique | .[]' <<<"$keys")
max_prio=$(jq '[.keys[] | select(.algorithm=="RS256") | .providerPriority] | max // 100' <<<"$keys")
prio=$((max_prio + 10))
name="rsa-rotated-$(date +%s%N)"

log "current RS256 kid $old_kid (priority $max_prio); adding $name with priority $prio"
curl -sf "${auth[@]}" -H 'Content-Type: application/json' -X POST "$api/components" -d "$(jq -n \
  --arg name "$name" --arg parent "$realm_id" --arg prio "$prio" '{
    name: $name, providerId: "rsa-generated", providerType: "org.keycloak.keys.KeyProvider",
    parentId: $parent,
    config: {priority: [$prio], algorithm: ["RS256"], keySize: ["2048"], active: ["true"], enabled: ["true"]}}')"

if [[ "$RETIRE" == "--retire-old" ]]; then
  for p in $old_providers; do
    log "deleting old key provider $p"
    curl -sf "${auth[@]}" -X DELETE "$api/components/$p"
  done
fi

new_kid=$(curl -sf "${auth[@]}" "$api/keys" | jq -r '.active.RS256')
[[ "$new_kid" != "$old_kid" && -n "$new_kid" && "$new_kid" != null ]] || { log "error: active kid did not change"; exit 1; }
log "new RS256 kid $new_kid"
echo "$new_kid"
