# The OPA-Envoy baseline of `checkload -graphql`: gatehouse's decision for a
# GraphQL API's route, in Rego. First everything policy.rego decides (the
# JWT verified, the caller mapped to the catalog, the route's owners,
# consumers and rules), then the body: graphql.parse_and_verify parses the
# query and validates it against the API's schema (OPA caches the parsed
# schema), every field of the document is collected with walk, and each
# field with a rule needs one of its lists (Apollo's [[…]]: inner all,
# outer any) to hold for the caller. OPA's query AST carries no types, so
# rules are keyed by field name (data.gatehouse.graphql_api.rules): for the
# benchmark's schema, where each restricted name is one field, the same
# decision as gatehouse's Type.field rules.
package gatehouse.graphql

import data.gatehouse.authz

parsed := graphql.parse_and_verify(input.parsed_body.query, data.gatehouse.graphql_api.schema)

valid if parsed[0]

fields contains node.Name if {
	walk(parsed[1], [_, node])
	is_object(node)
	node.Alias
	node.Name
}

holds("owners") if {
	some o in authz.route.owners
	o == authz.principal
}

holds("owners") if {
	some o in authz.route.owners
	authz.groups[o]
}

holds(name) if name == authz.principal

holds(name) if authz.groups[name]

any_list_holds(lists) if {
	some inner in lists
	every name in inner {
		holds(name)
	}
}

denied contains f if {
	some f in fields
	lists := data.gatehouse.graphql_api.rules[f]
	not any_list_holds(lists)
}

result := authz.result if {
	not authz.allowed
} else := {
	"allowed": false, "http_status": 400,
	"headers": {"content-type": "application/json"},
	"body": "{\"errors\":[{\"message\":\"the document is not valid against the schema\",\"extensions\":{\"code\":\"GRAPHQL_VALIDATION_FAILED\"}}]}\n",
} if {
	not valid
} else := {
	"allowed": false, "http_status": 403,
	"headers": {"content-type": "application/json"},
	"body": "{\"errors\":[{\"message\":\"Unauthorized field or type\",\"extensions\":{\"code\":\"UNAUTHORIZED_FIELD_OR_TYPE\"}}]}\n",
} if {
	count(denied) > 0
} else := authz.result
