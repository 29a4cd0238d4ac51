package extauthz

import (
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

const gqlRoute = "api:default/platform-graph@*/platform/graphql"

// The principals of testcatalog.PlatformGraph.
var (
	gqlAlice = &Principal{Kind: "user", Ref: "user:default/alice", Groups: []string{"group:default/payments"}} // owner
	gqlBob   = &Principal{Kind: "user", Ref: "user:default/bob", Groups: []string{"group:default/storefront"}} // allowed by the route's rule
	gqlCarol = &Principal{Kind: "user", Ref: "user:default/carol", Groups: []string{"group:default/sre"}}      // allowed by the route's rule
	gqlShop  = &Principal{Kind: "component", Ref: "component:default/shop"}                                    // consumer
	gqlDave  = &Principal{Kind: "user", Ref: "user:default/dave", Groups: []string{"group:default/elsewhere"}} // nobody
)

// withScopes is p with a token's scopes (sorted, as Verify leaves them).
func withScopes(p *Principal, scopes ...string) *Principal {
	q := *p
	q.Scopes = append([]string(nil), scopes...)
	sort.Strings(q.Scopes)
	return &q
}

func gqlEngine(t testing.TB, extra string) (*Engine, *model.Model) {
	t.Helper()
	return gqlEngineSrc(t, gqlSource(extra))
}

// gqlSource is testcatalog.PlatformGraph with extra annotation lines on
// the API.
func gqlSource(extra string) string {
	src := testcatalog.PlatformGraph
	if extra != "" {
		src = strings.Replace(src, "    gatehouse.dev/graphql-access: |", extra+"    gatehouse.dev/graphql-access: |", 1)
	}
	return src
}

func gqlEngineSrc(t testing.TB, src string) (*Engine, *model.Model) {
	t.Helper()
	m := testcatalog.Must(t, src)
	return NewEngine(m), m
}

func gqlBody(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}

// gqlEval evaluates a POST of body (or a GET with a query string) on the
// GraphQL route for p.
func gqlEval(t testing.TB, e *Engine, p *Principal, method, rawPath, body string) Result {
	t.Helper()
	req, denied := e.request(gqlRoute, method, rawPath, "gw")
	if denied != nil {
		t.Fatalf("request: %+v", denied)
	}
	req.Body = []byte(body)
	return e.Evaluate(&req, &Subject{User: p}, true)
}

// The field policy with Apollo's semantics: a field's own rules, the rules
// of the type it returns (inner list all, outer any), an interface field
// restricted when an implementation restricts it, the annotation's
// Type.field; a field without rules open to whoever the route allows, a
// field with rules needing both.
func TestGraphQLFieldPolicy(t *testing.T) {
	e, _ := gqlEngine(t, "")
	cases := []struct {
		name   string
		p      *Principal
		query  string
		status int
		reason string
	}{
		{"open field, route rule", gqlBob, `{ component(name: "a") { name owner } }`, 200, "rule"},
		{"open field, owner", gqlAlice, `{ components { id name } }`, 200, "owner"},
		{"open field, consumer", gqlShop, `{ components { name } }`, 200, "consumer"},
		{"open field, nobody", gqlDave, `{ components { name } }`, 403, "no_matching_rule"},
		{"@policy owners: owner", gqlAlice, `{ component(name: "a") { deploySecrets } }`, 200, "owner"},
		{"@policy owners: not owner", gqlBob, `{ component(name: "a") { deploySecrets } }`, 403, "field_forbidden"},
		{"@policy owners: consumer", gqlShop, `{ component(name: "a") { deploySecrets } }`, 403, "field_forbidden"},
		{"@policy group on Query.audit: sre", gqlCarol, `{ audit }`, 200, "rule"},
		{"@policy group: the owner is not sre", gqlAlice, `{ audit }`, 403, "field_forbidden"},
		{"type @policy, outer any: owner", gqlAlice, `{ component(name: "a") { cloudAccount { accountId } } }`, 200, "owner"},
		{"type @policy, inner all: bob in storefront", gqlBob, `{ component(name: "a") { cloudAccount { accountId } } }`, 200, "rule"},
		{"type @policy, inner all: sre is not bob", gqlCarol, `{ component(name: "a") { cloudAccount { accountId } } }`, 403, "field_forbidden"},
		{"@authenticated", gqlBob, `{ viewer }`, 200, "rule"},
		{"@requiresScopes: no scopes", gqlAlice, `{ component(name: "a") { scoped } }`, 403, "field_forbidden"},
		{"@requiresScopes: the scope", withScopes(gqlAlice, "read:scoped"), `{ component(name: "a") { scoped } }`, 200, "owner"},
		{"@requiresScopes: another scope", withScopes(gqlAlice, "read:scope", "scoped"), `{ component(name: "a") { scoped } }`, 403, "field_forbidden"},
		{"@requiresScopes: the scope, and the route", withScopes(gqlDave, "read:scoped"), `{ component(name: "a") { scoped } }`, 403, "no_matching_rule"},
		{"@requiresScopes: the scope, route rule", withScopes(gqlBob, "openid", "read:scoped"), `{ component(name: "a") { scoped } }`, 200, "rule"},
		{"@requiresScopes inner all: both", withScopes(gqlBob, "deploy:read", "deploy:write"), `{ component(name: "a") { deployKey } }`, 200, "rule"},
		{"@requiresScopes inner all: one of two", withScopes(gqlBob, "deploy:read"), `{ component(name: "a") { deployKey } }`, 403, "field_forbidden"},
		{"@requiresScopes outer any: the other list", withScopes(gqlBob, "platform:admin"), `{ component(name: "a") { deployKey } }`, 200, "rule"},
		{"@requiresScopes: a session or a peer has none", gqlShop, `{ component(name: "a") { deployKey } }`, 403, "field_forbidden"},
		{"interface field restricted by an implementation", gqlBob, `{ node(id: "1") { internalNotes } }`, 403, "field_forbidden"},
		{"interface field: owner", gqlAlice, `{ node(id: "1") { internalNotes } }`, 200, "owner"},
		{"inline fragment on the open implementation", gqlBob, `{ node(id: "1") { ... on Team { internalNotes } } }`, 200, "rule"},
		{"inline fragment on the restricted implementation", gqlBob, `{ node(id: "1") { ... on Component { internalNotes } } }`, 403, "field_forbidden"},
		{"annotation: owners or consumers, consumer", gqlShop, `{ team(name: "a") { budget } }`, 200, "consumer"},
		{"annotation: not listed", gqlBob, `{ team(name: "a") { budget } }`, 403, "field_forbidden"},
		{"mutation by owner", gqlAlice, `mutation { deploy(name: "a") }`, 200, "owner"},
		{"mutation by route-allowed non-owner", gqlBob, `mutation { deploy(name: "a") }`, 403, "field_forbidden"},
		{"one forbidden field denies the request", gqlBob, `{ components { name } component(name: "a") { name deploySecrets } }`, 403, "field_forbidden"},
		{"__typename is open", gqlBob, `{ __typename }`, 200, "rule"},
		{"introspection by a non-owner", gqlBob, `{ __schema { types { name } } }`, 403, "field_forbidden"},
		{"introspection by the owner", gqlAlice, `{ __type(name: "Query") { name } }`, 200, "owner"},
	}
	for _, c := range cases {
		res := gqlEval(t, e, c.p, "POST", "/platform/graphql", gqlBody(c.query))
		if res.Status != c.status || res.Reason != c.reason {
			t.Errorf("%s: got %d %s (%s), want %d %s\n%+v", c.name, res.Status, res.Reason, res.Rule, c.status, c.reason, res.Steps)
		}
		if res.GraphQL == nil {
			t.Errorf("%s: no GraphQL info", c.name)
		}
	}
}

// The inspector: what it reads, what it refuses, and the operations it
// yields (one per distinct field, at the path of the caller's aliases).
func TestGraphQLInspector(t *testing.T) {
	e, _ := gqlEngine(t, "")
	ops := func(method, rawPath, body string) ([]Operation, *GraphQLInfo, *Result) {
		req, _ := e.request(gqlRoute, method, rawPath, "gw")
		req.Body = []byte(body)
		return inspectGraphQL(&req)
	}
	names := func(os []Operation) string {
		var out []string
		for _, o := range os {
			out = append(out, o.Method+" "+o.Name+"@"+o.At)
		}
		return strings.Join(out, ", ")
	}
	ok := []struct{ name, method, path, body, want string }{
		{"aliases", "POST", "/platform/graphql", gqlBody(`{ a: component(name: "x") { s: deploySecrets } b: component(name: "y") { name } }`),
			"query Query.component@a, query Component.deploySecrets@a.s, query Component.name@b.name"},
		{"named fragment on an interface", "POST", "/platform/graphql", gqlBody(`query Q { node(id: "1") { ...N } } fragment N on Node { id ... on Component { deploySecrets } }`),
			"query Query.node@node, query Node.id@node.id, query Component.deploySecrets@node.deploySecrets"},
		{"variables", "POST", "/platform/graphql", `{"query":"query Q($n: String!) { component(name: $n) { name } }","variables":{"n":"orders"},"operationName":"Q"}`,
			"query Query.component@component, query Component.name@component.name"},
		{"batch", "POST", "/platform/graphql", "[" + gqlBody(`{ components { name } }`) + "," + gqlBody(`mutation { deploy(name: "x") }`) + "]",
			"query Query.components@components, query Component.name@components.name, mutation Mutation.deploy@deploy"},
		{"GET", "GET", "/platform/graphql?query=" + url.QueryEscape(`{ viewer }`), "", "query Query.viewer@viewer"},
		{"application/graphql", "POST", "/platform/graphql", `query { audit }`, "query Query.audit@audit"},
		{"every operation of a document is authorized", "POST", "/platform/graphql",
			`{"query":"query A { viewer } mutation B { deploy(name: \"x\") }","operationName":"A"}`, "query Query.viewer@viewer, mutation Mutation.deploy@deploy"},
	}
	for _, c := range ok {
		got, info, deny := ops(c.method, c.path, c.body)
		if deny != nil {
			t.Errorf("%s: refused: %+v %+v", c.name, deny, deny.GraphQL)
			continue
		}
		if names(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, names(got), c.want)
		}
		if len(info.DocumentHash) != 32 {
			t.Errorf("%s: document hash %q", c.name, info.DocumentHash)
		}
	}
	var aliases strings.Builder
	aliases.WriteString("{ ")
	for i := 0; i < 40; i++ {
		aliases.WriteString("a" + strconv.Itoa(i) + ": components { name } ")
	}
	aliases.WriteString("}")
	// Fragments that each spread the next twice: 2^30 fields once expanded.
	var spreads strings.Builder
	spreads.WriteString(`{"query":"{ components { ...F0 } } `)
	for i := 0; i < 30; i++ {
		spreads.WriteString("fragment F" + strconv.Itoa(i) + " on Component { ...F" + strconv.Itoa(i+1) + " ...F" + strconv.Itoa(i+1) + " } ")
	}
	spreads.WriteString(`fragment F30 on Component { name }"}`)
	refused := []struct{ name, method, path, body, code string }{
		{"alias bomb", "POST", "/platform/graphql", gqlBody(aliases.String()), gqlLimitExceeded},
		{"depth bomb", "POST", "/platform/graphql", gqlBody(depthNest(20)), gqlLimitExceeded},
		{"fragment fan-out", "POST", "/platform/graphql", spreads.String(), gqlLimitExceeded},
		{"too many root fields", "POST", "/platform/graphql", gqlBody("{ " + strings.Repeat("viewer ", 25) + "}"), gqlLimitExceeded},
		{"unknown field (no suggestion in the answer)", "POST", "/platform/graphql", gqlBody(`{ component(name: "a") { deploySecret } }`), gqlValidationFailed},
		{"syntax", "POST", "/platform/graphql", gqlBody(`{ components { name }`), gqlParseFailed},
		{"empty body", "POST", "/platform/graphql", "", gqlBadRequest},
		{"truncated JSON", "POST", "/platform/graphql", `{"query":"{ viewer }"`, gqlParseFailed},
		{"JSON without query", "POST", "/platform/graphql", `{"variables":{}}`, gqlBadRequest},
		{"query not a string", "POST", "/platform/graphql", `{"query":7}`, gqlBadRequest},
		{"duplicate query key", "POST", "/platform/graphql", `{"query":"{ viewer }","query":"{ audit }"}`, gqlBadRequest},
		{"query key in another case", "POST", "/platform/graphql", `{"query":"{ viewer }","Query":"{ audit }"}`, gqlBadRequest},
		{"query key folded by Unicode (long s)", "POST", "/platform/graphql", `{"query":"{ viewer }","extenſions":{}}`, gqlBadRequest},
		{"extensions twice, one folded", "POST", "/platform/graphql", `{"query":"{ viewer }","extensions":{},"extenſions":{"persistedQuery":{"version":1,"sha256Hash":"x"}}}`, gqlBadRequest},
		{"extensions twice, one escaped", "POST", "/platform/graphql", `{"query":"{ viewer }","extensions":{},"exten\u017fions":{}}`, gqlBadRequest},
		{"query key escaped", "POST", "/platform/graphql", `{"query":"{ viewer }","\u0071uery":"{ audit }"}`, gqlBadRequest},
		{"trailing data", "POST", "/platform/graphql", `{"query":"{ viewer }"} {"query":"{ audit }"}`, gqlParseFailed},
		{"empty batch", "POST", "/platform/graphql", `[]`, gqlBadRequest},
		{"batch too large", "POST", "/platform/graphql", "[" + strings.TrimSuffix(strings.Repeat(gqlBody(`{ viewer }`)+",", 21), ",") + "]", gqlBadRequest},
		{"persisted query with a short hash", "POST", "/platform/graphql", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, gqlBadRequest},
		{"POST with a query in the URL", "POST", "/platform/graphql?query=" + url.QueryEscape("{ audit }"), gqlBody(`{ viewer }`), gqlBadRequest},
		{"GET without query", "GET", "/platform/graphql", "", gqlBadRequest},
		{"GET with two queries", "GET", "/platform/graphql?query=%7Bviewer%7D&query=%7Baudit%7D", "", gqlBadRequest},
		{"GET with a body", "GET", "/platform/graphql?query=" + url.QueryEscape(`{ viewer }`), gqlBody(`{ audit }`), gqlBadRequest},
		{"multipart upload", "POST", "/platform/graphql", "--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n" + gqlBody(`{ audit }`) + "\r\n--x--", gqlParseFailed},
		{"mutation over GET", "GET", "/platform/graphql?query=" + url.QueryEscape(`mutation { deploy(name: "x") }`), "", gqlBadRequest},
		{"PUT", "PUT", "/platform/graphql", gqlBody(`{ viewer }`), gqlBadRequest},
		{"operationName names nothing", "POST", "/platform/graphql", `{"query":"query A { viewer }","operationName":"B"}`, gqlBadRequest},
		{"two operations, no operationName", "POST", "/platform/graphql", `{"query":"query A { viewer } query B { audit }"}`, gqlBadRequest},
		{"form body", "POST", "/platform/graphql", "query=%7Bviewer%7D", gqlParseFailed},
	}
	for _, c := range refused {
		_, _, deny := ops(c.method, c.path, c.body)
		if deny == nil {
			t.Errorf("%s: not refused", c.name)
			continue
		}
		if deny.Status != 400 || deny.GraphQL == nil || len(deny.GraphQL.Errors) != 1 || deny.GraphQL.Errors[0].Extensions["code"] != c.code {
			t.Errorf("%s: got %d %s %+v, want 400 %s", c.name, deny.Status, deny.Reason, deny.GraphQL, c.code)
			continue
		}
		if m := deny.GraphQL.Errors[0].Message; strings.Contains(m, "deploySecrets") || strings.Contains(m, "Did you mean") {
			t.Errorf("%s: the answer names a field: %s", c.name, m)
		}
	}
}

// depthNest is a document n levels deep. The schema has no recursive
// object field, so the depth comes from introspection's ofType chain
// (limits are checked before anything is authorized).
func depthNest(n int) string {
	t := "name"
	for i := 0; i < n; i++ {
		t = "ofType { " + t + " }"
	}
	return `{ __type(name: "Query") { fields { type { ` + t + ` } } } }`
}
