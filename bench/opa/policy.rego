# The OPA-Envoy baseline of bench/checkload: gatehouse's decision for a
# route, written in Rego over a data document that checkload generates from
# the same compiled catalog (data.gatehouse: issuers, routes, users,
# clients). Per request: verify the JWT (signature against the issuer's
# JWKS, iss, aud, exp/nbf, allowed alg), map sub to the catalog user and
# its groups, then the route's policy in gatehouse's order: public, owners,
# consuming components, access rules (allow + methods + path globs).
# Allowed requests get the identity headers gatehouse sets (except the
# signed assertion: OPA signs nothing here).
package gatehouse.authz

# The plugin gives the CheckRequest as protojson (camelCase field names).
http_req := input.attributes.request.http

route := data.gatehouse.routes[input.attributes.contextExtensions.route_id]

path := split(http_req.path, "?")[0]

token := t if {
	auth := http_req.headers.authorization
	lower(substring(auth, 0, 7)) == "bearer "
	t := trim_space(substring(auth, 7, -1))
}

issuer := data.gatehouse.issuers[payload.iss] if {
	[_, payload, _] := io.jwt.decode(token)
}

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(token, {"cert": issuer.jwks, "iss": issuer.iss, "aud": issuer.aud, "alg": issuer.alg})
	valid
}

user := data.gatehouse.users[claims.sub]

default groups := {}

groups := user.groups

# A token without an email whose client id belongs to a Component is that
# Component (a machine token).
component := data.gatehouse.clients[claims.azp] if {
	not user
	not claims.email
}

principal := user.ref

principal := component

principal := claims.sub if {
	not user
	not component
}

allowed if route.public

allowed if {
	some o in route.owners
	o == principal
}

allowed if {
	some o in route.owners
	groups[o]
}

allowed if route.consumers[component]

allowed if {
	some rule in route.rules
	member(rule)
	method_ok(rule)
	path_ok(rule)
}

member(rule) if rule.allow[principal]

member(rule) if {
	some g
	groups[g]
	rule.allow[g]
}

method_ok(rule) if not rule.methods

method_ok(rule) if rule.methods[http_req.method]

path_ok(rule) if count(rule.paths) == 0

path_ok(rule) if {
	some p in rule.paths
	glob.match(p, ["/"], path)
}

default identity_headers := {}

identity_headers := {
	"x-gatehouse-user": principal,
	"x-gatehouse-groups": concat(",", sort([g | groups[g]])),
	"x-gatehouse-entity": route.entity,
	"x-gatehouse-decision-id": object.get(http_req.headers, "x-request-id", ""),
} if claims

result := {"allowed": true, "headers": identity_headers, "request_headers_to_remove": ["authorization"]} if {
	allowed
} else := {
	"allowed": false, "http_status": 403,
	"headers": {"content-type": "application/json"},
	"body": "{\"error\":\"forbidden\"}\n",
} if {
	claims
} else := {
	"allowed": false, "http_status": 401,
	"headers": {"content-type": "application/json", "www-authenticate": "Bearer realm=\"gatehouse\", error=\"invalid_token\""},
	"body": "{\"error\":\"unauthenticated\"}\n",
}
