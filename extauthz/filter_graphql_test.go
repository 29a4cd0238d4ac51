package extauthz

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

// filterCatalog is PlatformGraph in filter mode, with Query.team for the
// owners only (a removed field with an argument).
func filterEngine(t testing.TB) *Engine {
	t.Helper()
	src := strings.Replace(testcatalog.PlatformGraph, "    gatehouse.dev/graphql-access: |\n      Team.budget: [owners, consumers]\n",
		"    gatehouse.dev/graphql-options: |\n      mode: filter\n    gatehouse.dev/graphql-access: |\n      Team.budget: [owners, consumers]\n      Query.team: [owners]\n", 1)
	if src == testcatalog.PlatformGraph {
		t.Fatal("the catalog did not change")
	}
	return NewEngine(testcatalog.Must(t, src))
}

// gqlFilterRun decides a request as the ext_proc server does and runs the
// GraphQL filter on it.
func gqlFilterRun(t testing.TB, e *Engine, p *Principal, method, rawPath, body string) (FilterOutput, Result) {
	t.Helper()
	req, denied := e.request(gqlRoute, method, rawPath, "gw")
	if denied != nil {
		t.Fatalf("request: %+v", denied)
	}
	req.Body, req.proc = []byte(body), &procCall{}
	sub := &Subject{User: p}
	res := e.Evaluate(&req, sub, false)
	if !res.Allow {
		return FilterOutput{}, res
	}
	return graphqlFilter{}.FilterRequest(FilterInput{Request: &req, Subject: sub, Result: &res}), res
}

// sentDoc is the document and variables of the (single) operation the
// upstream gets.
func sentDoc(t *testing.T, body []byte) (string, map[string]any) {
	t.Helper()
	var m struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("upstream body %s: %v", body, err)
	}
	return m.Query, m.Variables
}

func errPaths(errs []GraphQLError) string {
	var out []string
	for _, e := range errs {
		if e.Extensions["code"] != gqlUnauthorized {
			return "bad code " + e.Extensions["code"]
		}
		out = append(out, strings.Join(e.Path, "."))
	}
	return strings.Join(out, " ")
}

// fieldsOf is every field name (Type.field) of a document valid against
// the schema, or the validation error.
func fieldsOf(t testing.TB, schema *ast.Schema, query string) (map[string]bool, string) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil, err.Error()
	}
	if errs := validator.Validate(schema, doc); len(errs) > 0 {
		return nil, errs.Error()
	}
	out := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				out[gqlFieldName(s)] = true
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			}
		}
	}
	for _, o := range doc.Operations {
		walk(o.SelectionSet)
	}
	for _, f := range doc.Fragments {
		walk(f.SelectionSet)
	}
	return out, ""
}

// Filter mode: the upstream gets the operation without the forbidden
// fields (still valid: no empty selection, no unused fragment or
// variable), and the answer null at each, one error each at the caller's
// own path.
func TestGraphQLFilterRewrite(t *testing.T) {
	e := filterEngine(t)
	schema := e.routes[gqlRoute].gql.schema
	cases := []struct {
		name      string
		p         *Principal
		body      string
		sent      []string // fields the upstream is asked (exactly, besides __typename)
		vars      string   // variables the upstream gets (sorted keys)
		errs      string
		upstream  string // the upstream's answer
		answer    string // what the client gets
		immediate string // gatehouse answers itself
	}{
		{name: "the owner: nothing removed", p: gqlAlice, body: gqlBody(`{ component(name: "a") { name deploySecrets } }`)},
		{
			name: "a field under an alias", p: gqlBob,
			body: gqlBody(`{ c: component(name: "a") { name internalNotes } }`),
			sent: []string{"Query.component", "Component.name"}, errs: "c.internalNotes",
			upstream: `{"data":{"c":{"name":"a"}}}`,
			answer:   `{"data":{"c":{"internalNotes":null,"name":"a"}},"errors":[{"message":"Unauthorized field or type","path":["c","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "a non-null field: null propagates to its parent", p: gqlBob,
			body: gqlBody(`{ c: component(name: "a") { name deploySecrets } components { name } }`),
			sent: []string{"Query.component", "Component.name", "Query.components"}, errs: "c.deploySecrets",
			upstream: `{"data":{"c":{"name":"a"},"components":[{"name":"x"}]}}`,
			answer:   `{"data":{"c":null,"components":[{"name":"x"}]},"errors":[{"message":"Unauthorized field or type","path":["c","deploySecrets"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "in a list, in a fragment: every element; the emptied fragment and its spread go", p: gqlBob,
			body: gqlBody(`query Q { all: components { name ...S } } fragment S on Component { internalNotes }`),
			sent: []string{"Query.components", "Component.name"}, errs: "all.internalNotes",
			upstream: `{"data":{"all":[{"name":"x"},{"name":"y"}]}}`,
			answer:   `{"data":{"all":[{"internalNotes":null,"name":"x"},{"internalNotes":null,"name":"y"}]},"errors":[{"message":"Unauthorized field or type","path":["all","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "a field left with nothing keeps a hidden __typename", p: gqlBob,
			body: gqlBody(`{ component(name: "a") { internalNotes } }`),
			sent: []string{"Query.component"}, errs: "component.internalNotes",
			upstream: `{"data":{"component":{"_gatehouse_typename":"Component"}}}`,
			answer:   `{"data":{"component":{"internalNotes":null}},"errors":[{"message":"Unauthorized field or type","path":["component","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "a variable used only by a removed field is dropped, with its value", p: gqlBob,
			body: `{"query":"query Q($n: String!, $t: String!) { component(name: $n) { name } team(name: $t) { name } }","variables":{"n":"a","t":"b"}}`,
			sent: []string{"Query.component", "Component.name"}, vars: "n", errs: "team",
			upstream: `{"data":{"component":{"name":"a"}}}`,
			answer:   `{"data":{"component":{"name":"a"},"team":null},"errors":[{"message":"Unauthorized field or type","path":["team"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "under a type condition: null on objects of that type only", p: gqlBob,
			body: gqlBody(`{ node(id: "1") { id ... on Component { internalNotes name } ... on Team { name } } }`),
			sent: []string{"Query.node", "Node.id", "Component.name", "Team.name"}, errs: "node.internalNotes",
			upstream: `{"data":{"node":{"_gatehouse_typename":"Team","id":"1","name":"t"}}}`,
			answer:   `{"data":{"node":{"id":"1","name":"t"}},"errors":[{"message":"Unauthorized field or type","path":["node","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "the same, on a Component", p: gqlBob,
			body: gqlBody(`{ node(id: "1") { id ... on Component { internalNotes name } ... on Team { name } } }`),
			sent: []string{"Query.node", "Node.id", "Component.name", "Team.name"}, errs: "node.internalNotes",
			upstream: `{"data":{"node":{"_gatehouse_typename":"Component","id":"1","name":"c"}},"errors":[{"message":"upstream's own"}]}`,
			answer:   `{"data":{"node":{"id":"1","internalNotes":null,"name":"c"}},"errors":[{"message":"upstream's own"},{"message":"Unauthorized field or type","path":["node","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "every root field forbidden: answered without the upstream", p: gqlBob,
			body:      gqlBody(`{ a: audit t: team(name: "x") { name } }`),
			immediate: `{"data":null,"errors":[{"message":"Unauthorized field or type","path":["a"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}},{"message":"Unauthorized field or type","path":["t"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "a nullable root field alone: data with its null", p: gqlBob,
			body:      gqlBody(`{ team(name: "x") { name } }`),
			immediate: `{"data":{"team":null},"errors":[{"message":"Unauthorized field or type","path":["team"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`,
		},
		{
			name: "an operation not selected keeps its own fields, an emptied one goes", p: gqlBob,
			body: `{"query":"query A { components { name } } query B { audit }","operationName":"A"}`,
			sent: []string{"Query.components", "Component.name"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, res := gqlFilterRun(t, e, tc.p, "POST", "/platform/graphql", tc.body)
			if !res.Allow {
				t.Fatalf("refused: %+v", res)
			}
			if tc.immediate != "" {
				if out.Immediate == nil || out.Immediate.Status != 200 || string(out.Immediate.Body) != tc.immediate {
					t.Fatalf("immediate: %+v\n got %s\nwant %s", out, bodyOf(out.Immediate), tc.immediate)
				}
				return
			}
			if tc.sent == nil {
				if out.Body != nil || out.Response != nil || out.Immediate != nil {
					t.Fatalf("want nothing changed, got %+v", out)
				}
				return
			}
			if out.Body == nil {
				t.Fatalf("nothing rewritten: %+v", out)
			}
			q, vars := sentDoc(t, out.Body)
			got, verr := fieldsOf(t, schema, q)
			if verr != "" {
				t.Fatalf("the upstream's document is not valid: %s\n%s", verr, q)
			}
			delete(got, "")
			if len(got) != len(tc.sent) {
				t.Fatalf("sent %v, want %v\n%s", got, tc.sent, q)
			}
			for _, f := range tc.sent {
				if !got[f] {
					t.Fatalf("sent %v, want %v\n%s", got, tc.sent, q)
				}
			}
			var vk []string
			for k := range vars {
				vk = append(vk, k)
			}
			if strings.Join(vk, ",") != tc.vars {
				t.Fatalf("variables %v, want %s", vars, tc.vars)
			}
			rf, _ := out.Response.(*gqlResponseFilter)
			if rf == nil || errPaths(rf.items[0].errs) != tc.errs {
				t.Fatalf("errors %+v, want %s", rf, tc.errs)
			}
			if tc.upstream != "" {
				if a := out.Response.FilterResponse(200, nil, []byte(tc.upstream)); string(a) != tc.answer {
					t.Fatalf("answer\n got %s\nwant %s", a, tc.answer)
				}
			}
		})
	}
}

func bodyOf(a *FilterAnswer) string {
	if a == nil {
		return "<nil>"
	}
	return string(a.Body)
}

// A batch: each operation filtered on its own, in order; one answered by
// gatehouse is replaced in the upstream's answer; all of them answered:
// no upstream call.
func TestGraphQLFilterBatch(t *testing.T) {
	e := filterEngine(t)
	body := `[{"query":"{ components { name } }"},{"query":"{ c: component(name: \"a\") { name internalNotes } }"},{"query":"{ audit }"}]`
	out, res := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", body)
	if !res.Allow || out.Body == nil {
		t.Fatalf("%+v %+v", res, out)
	}
	var sent []map[string]any
	if err := json.Unmarshal(out.Body, &sent); err != nil || len(sent) != 3 {
		t.Fatalf("%s %v", out.Body, err)
	}
	if strings.Contains(string(out.Body), "internalNotes") || strings.Contains(string(out.Body), "audit") || sent[0]["query"] != "{ components { name } }" {
		t.Fatalf("upstream body: %s", out.Body)
	}
	answer := out.Response.FilterResponse(200, nil, []byte(`[{"data":{"components":[]}},{"data":{"c":{"name":"a"}}},{"data":{}}]`))
	want := `[{"data":{"components":[]}},{"data":{"c":{"internalNotes":null,"name":"a"}},"errors":[{"message":"Unauthorized field or type","path":["c","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]},{"data":null,"errors":[{"message":"Unauthorized field or type","path":["audit"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}]`
	if string(answer) != want {
		t.Fatalf("answer\n got %s\nwant %s", answer, want)
	}
	if a := out.Response.FilterResponse(200, nil, []byte(`[{"data":{}}]`)); a != nil {
		t.Fatalf("an answer of another length is left alone: %s", a)
	}
	out, _ = gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", `[{"query":"{ audit }"},{"query":"{ team(name: \"x\") { name } }"}]`)
	if out.Immediate == nil || !strings.HasPrefix(string(out.Immediate.Body), `[{"data":null,`) {
		t.Fatalf("all answered by gatehouse: %+v", out)
	}
}

// Persisted queries in filter mode: a rewritten document goes as text
// without extensions.persistedQuery (its hash is the original's), also
// when the client sent only the hash; an unchanged one goes as sent.
func TestGraphQLFilterPersisted(t *testing.T) {
	e := filterEngine(t)
	q := `{ c: component(name: "a") { name internalNotes } }`
	for _, body := range []string{apqBody(q, ""), hashOnly(q)} {
		out, res := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", body)
		if !res.Allow || out.Body == nil {
			t.Fatalf("%s: %+v %+v", body, res, out)
		}
		sent, _ := sentDoc(t, out.Body)
		if strings.Contains(string(out.Body), "persistedQuery") || strings.Contains(sent, "internalNotes") || !strings.Contains(sent, "name") {
			t.Fatalf("%s -> %s", body, out.Body)
		}
	}
	if out, _ := gqlFilterRun(t, e, gqlAlice, "POST", "/platform/graphql", hashOnly(q)); out.Body != nil || out.Response != nil {
		t.Fatalf("the owner's hash-only request is left as sent: %+v", out)
	}
}

// Hostile and odd inputs: nothing is guessed, nothing forbidden passes.
func TestGraphQLFilterHostile(t *testing.T) {
	e := filterEngine(t)
	t.Run("the reserved alias", func(t *testing.T) {
		out, _ := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", gqlBody(`{ component(name: "a") { _gatehouse_typename: name internalNotes } }`))
		if out.Immediate == nil || out.Immediate.Status != 400 {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("a bare document (application/graphql)", func(t *testing.T) {
		out, _ := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", `{ component(name: "a") { name internalNotes } }`)
		if out.Body == nil || strings.Contains(string(out.Body), "internalNotes") || !strings.Contains(string(out.Body), "name") {
			t.Fatalf("%s", out.Body)
		}
	})
	t.Run("an answer that is not JSON is left alone", func(t *testing.T) {
		out, _ := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", gqlBody(`{ component(name: "a") { name internalNotes } }`))
		for _, b := range []string{"", "<html>", "null", "[1]", `{"data":[1]}`, `{"data":{"component":"x"}}`} {
			_ = out.Response.FilterResponse(502, nil, []byte(b)) // never panics
		}
		if a := out.Response.FilterResponse(502, nil, []byte("<html>")); a != nil {
			t.Fatalf("%s", a)
		}
	})
	t.Run("a field whose every principal is refused: the peer's rules count too", func(t *testing.T) {
		req, _ := e.request(gqlRoute, "POST", "/platform/graphql", "gw")
		req.Body, req.proc = []byte(gqlBody(`{ component(name: "a") { name deploySecrets } }`)), &procCall{}
		sub := &Subject{Peer: gqlShop, User: gqlAlice}
		res := e.Evaluate(&req, sub, false)
		out := graphqlFilter{}.FilterRequest(FilterInput{Request: &req, Subject: sub, Result: &res})
		if !res.Allow || out.Body == nil || strings.Contains(string(out.Body), "deploySecrets") {
			t.Fatalf("%+v %s", res, out.Body)
		}
	})
	t.Run("without ext_proc, filter mode refuses as reject mode", func(t *testing.T) {
		req, _ := e.request(gqlRoute, "POST", "/platform/graphql", "gw")
		req.Body = []byte(gqlBody(`{ component(name: "a") { name deploySecrets } }`))
		if res := e.Evaluate(&req, &Subject{User: gqlBob}, false); res.Allow || res.Status != 403 || res.Reason != "field_forbidden" {
			t.Fatalf("%+v", res)
		}
	})
}

// getRun runs the filter on a GET of rawQuery (after "?") for p.
func getRun(t testing.TB, e *Engine, p *Principal, rawQuery string) (FilterOutput, Result) {
	t.Helper()
	return gqlFilterRun(t, e, p, "GET", "/platform/graphql?"+rawQuery, "")
}

// sentURL is what a rewritten GET's query string holds.
func sentURL(t testing.TB, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("the rewritten query string %q does not parse: %v", q, err)
	}
	for k, vs := range v {
		if len(vs) != 1 {
			t.Fatalf("%s given %d times in %q", k, len(vs), q)
		}
	}
	return v
}

// Filter mode for a GET: the document is rewritten in the URL's query
// string (the path is not touched), the answer patched as for a POST.
func TestGraphQLFilterGET(t *testing.T) {
	e := filterEngine(t)
	esc := url.QueryEscape
	t.Run("a forbidden field: removed from query; other parameters byte for byte; the answer patched", func(t *testing.T) {
		raw := "x=%7e1+2&query=" + esc(`{ c: component(name: "a") { name internalNotes } }`) + "&y=&z"
		out, res := getRun(t, e, gqlBob, raw)
		if !res.Allow || out.URLQuery == "" || out.Body != nil || out.Immediate != nil {
			t.Fatalf("%+v %+v", res, out)
		}
		if !strings.HasPrefix(out.URLQuery, "x=%7e1+2&query=") || !strings.HasSuffix(out.URLQuery, "&y=&z") {
			t.Fatalf("the other parameters changed: %s", out.URLQuery)
		}
		q := sentURL(t, out.URLQuery).Get("query")
		if strings.Contains(q, "internalNotes") || !strings.Contains(q, "name") {
			t.Fatalf("sent %q", q)
		}
		got := out.Response.FilterResponse(200, nil, []byte(`{"data":{"c":{"name":"a"}}}`))
		want := `{"data":{"c":{"internalNotes":null,"name":"a"}},"errors":[{"message":"Unauthorized field or type","path":["c","internalNotes"],"extensions":{"code":"UNAUTHORIZED_FIELD_OR_TYPE"}}]}`
		if string(got) != want {
			t.Fatalf("answer %s\nwant   %s", got, want)
		}
	})
	t.Run("the owner: the URL as sent", func(t *testing.T) {
		out, _ := getRun(t, e, gqlAlice, "query="+esc(`{ component(name: "a") { name deploySecrets } }`))
		if out.URLQuery != "" || out.Response != nil || out.Immediate != nil {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("variables of removed fields leave variables; operationName stays", func(t *testing.T) {
		raw := "operationName=Q&query=" + esc(`query Q($n: String!, $t: String!) { component(name: $n) { name } team(name: $t) { name } }`) +
			"&variables=" + esc(`{"n":"a","t":"b"}`)
		out, _ := getRun(t, e, gqlBob, raw)
		v := sentURL(t, out.URLQuery)
		if v.Get("operationName") != "Q" || v.Get("variables") != `{"n":"a"}` || strings.Contains(v.Get("query"), "team") || strings.Contains(v.Get("query"), "$t") {
			t.Fatalf("%v", v)
		}
	})
	t.Run("the operation not run loses its field; the one run is as it was", func(t *testing.T) {
		raw := "operationName=A&query=" + esc(`query A { components { name } } query B { audit }`)
		out, _ := getRun(t, e, gqlBob, raw)
		v := sentURL(t, out.URLQuery)
		if q := v.Get("query"); strings.Contains(q, "audit") || !strings.Contains(q, "components") || v.Get("operationName") != "A" {
			t.Fatalf("%v", v)
		}
		if got := out.Response.FilterResponse(200, nil, []byte(`{"data":{"components":[]}}`)); got != nil && strings.Contains(string(got), "errors") {
			t.Fatalf("an error for a field the operation run does not ask: %s", got)
		}
	})
	t.Run("every field forbidden: gatehouse answers, nothing goes upstream", func(t *testing.T) {
		out, _ := getRun(t, e, gqlBob, "query="+esc(`{ audit }`))
		if out.Immediate == nil || out.Immediate.Status != 200 || out.URLQuery != "" || !strings.Contains(bodyOf(out.Immediate), `"path":["audit"]`) {
			t.Fatalf("%+v %s", out, bodyOf(out.Immediate))
		}
	})
	t.Run("APQ: text and hash, or the hash alone: the text goes, persistedQuery does not, other extensions stay", func(t *testing.T) {
		q := `{ c: component(name: "a") { name internalNotes } }`
		pq := `"persistedQuery":{"version":1,"sha256Hash":"` + persistedHash(q) + `"}`
		for _, raw := range []string{
			"query=" + esc(q) + "&extensions=" + esc(`{`+pq+`}`),
			"extensions=" + esc(`{`+pq+`}`), // the hash alone: the store knows it from the request above
			"extensions=" + esc(`{"tracing":true,`+pq+`}`),
		} {
			out, res := getRun(t, e, gqlBob, raw)
			if !res.Allow || out.URLQuery == "" {
				t.Fatalf("%s: %+v %+v", raw, res, out)
			}
			v := sentURL(t, out.URLQuery)
			if strings.Contains(out.URLQuery, "persistedQuery") || strings.Contains(v.Get("query"), "internalNotes") || !strings.Contains(v.Get("query"), "name") {
				t.Fatalf("%s -> %v", raw, v)
			}
			if strings.Contains(raw, "tracing") != (v.Get("extensions") == `{"tracing":true}`) {
				t.Fatalf("%s: extensions %q", raw, v.Get("extensions"))
			}
		}
	})
	t.Run("a mutation over GET: still refused", func(t *testing.T) {
		_, res := getRun(t, e, gqlBob, "query="+esc(`mutation { __typename }`))
		if res.Allow || res.Status != 400 {
			t.Fatalf("%+v", res)
		}
	})
}

// Hostile GETs in filter mode: nothing ambiguous is rewritten, nothing
// forbidden passes.
func TestGraphQLFilterGETHostile(t *testing.T) {
	e := filterEngine(t)
	esc := url.QueryEscape
	bad := esc(`{ c: component(name: "a") { name internalNotes } }`)
	for _, raw := range []string{
		"query=" + bad + "&query=" + esc(`{ components { name } }`),
		"query=" + esc(`{ components { name } }`) + "&qu%65ry=" + bad,
		"query=" + bad + "&operationName=A&operationName=B",
		"query=" + bad + ";x=1",
	} {
		out, res := getRun(t, e, gqlBob, raw)
		if res.Allow && (out.Immediate == nil || out.Immediate.Status < 400) {
			t.Errorf("%s: %+v %+v", raw, res, out)
		}
	}
	t.Run("variables given twice", func(t *testing.T) {
		out, res := getRun(t, e, gqlBob, "query="+bad+"&variables=%7B%7D&variables=%7B%7D")
		if !res.Allow || out.Immediate == nil || out.Immediate.Status != 400 || out.URLQuery != "" {
			t.Fatalf("%+v %+v", res, out)
		}
	})
	t.Run("an encoded ? or # in the document or another parameter stays encoded", func(t *testing.T) {
		raw := "a=%3F%23&query=" + esc(`{ c: component(name: "?x#y&query={ audit }") { name internalNotes } }`)
		out, _ := getRun(t, e, gqlBob, raw)
		if out.URLQuery == "" || strings.ContainsAny(out.URLQuery, "?# ") || !strings.HasPrefix(out.URLQuery, "a=%3F%23&") {
			t.Fatalf("%q", out.URLQuery)
		}
		v := sentURL(t, out.URLQuery)
		if !strings.Contains(v.Get("query"), `"?x#y&query={ audit }"`) || strings.Contains(v.Get("query"), "internalNotes") {
			t.Fatalf("%v", v)
		}
	})
	t.Run("a fragment after the query string is not part of it", func(t *testing.T) {
		out, _ := gqlFilterRun(t, e, gqlBob, "GET", "/platform/graphql?query="+bad+"#internalNotes", "")
		if strings.Contains(out.URLQuery, "internalNotes") || strings.Contains(out.URLQuery, "#") {
			t.Fatalf("%q", out.URLQuery)
		}
	})
	t.Run("a huge document: rewritten within the limit, or refused, never passed", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{ ")
		for i := 0; i < 1500; i++ {
			fmt.Fprintf(&b, "c%d: component(name: \"a\") { name internalNotes } ", i)
		}
		b.WriteString("}")
		out, res := getRun(t, e, gqlBob, "query="+esc(b.String()))
		switch {
		case !res.Allow:
			t.Logf("Check refused it: %s", res.Reason)
		case out.Immediate != nil && out.Immediate.Status == 400 && strings.Contains(bodyOf(out.Immediate), "POST"):
		default:
			t.Fatalf("%+v %d %.200s", res, len(out.URLQuery), out.URLQuery)
		}
		if _, why := rewriteURLQuery("query=x", &rewritten{query: strings.Repeat("a", maxRewrittenURL)}); !strings.Contains(why, "POST") {
			t.Fatalf("a rewritten URL over the limit: %q", why)
		}
		out, _ = getRun(t, e, gqlBob, "query="+esc(`{ c: component(name: "`+strings.Repeat("a", 20<<10)+`") { name internalNotes } }`))
		if out.URLQuery == "" || strings.Contains(out.URLQuery, "internalNotes") {
			t.Fatalf("a 20 KiB document: %+v", out.Immediate)
		}
	})
	t.Run("the path is kept byte for byte, only the query string changes", func(t *testing.T) {
		for _, tc := range [][3]string{
			{"/platform/graphql?query=x", "q=1", "/platform/graphql?q=1"},
			{"/platform/%67raphql?query=x#f", "q=1", "/platform/%67raphql?q=1"},
			{"/platform/graphql", "q=1", "/platform/graphql?q=1"},
			{"/a?b?c", "q=1", "/a?q=1"},
		} {
			if got := withQuery(tc[0], tc[1]); got != tc[2] {
				t.Errorf("withQuery(%q) = %q, want %q", tc[0], got, tc[2])
			}
		}
	})
}

// FuzzGraphQLFilterGET: whatever the query string, the filter never
// panics, and a rewritten URL's document is valid and holds no field the
// caller may not read, with each parameter once.
func FuzzGraphQLFilterGET(f *testing.F) {
	for _, s := range []string{
		"query=" + url.QueryEscape(`{ c: component(name: "a") { name deploySecrets internalNotes } }`),
		"operationName=Q&query=" + url.QueryEscape(`query Q($n: String!) { all: components { ...F } team(name: $n) { budget } } fragment F on Component { name internalNotes }`) + "&variables=%7B%22n%22%3A%22a%22%7D",
		"x=1&query=" + url.QueryEscape(`{ node(id: "1") { ... on Component { internalNotes } } audit }`) + "&y=%3F%23",
		"query=%7B+components+%7B+name+internalNotes+%7D+%7D&query=%7B+audit+%7D",
		"extensions=%7B%22persistedQuery%22%3A%7B%7D%7D&query=%7Baudit%7D",
	} {
		f.Add(s)
	}
	e := filterEngine(f)
	schema := e.routes[gqlRoute].gql.schema
	bob := map[string]bool{}
	for _, fd := range e.routes[gqlRoute].gql.GraphQLPolicy.Fields {
		if _, ok := fieldRuleFails(e.routes[gqlRoute], gqlBob, fd.Name); !ok {
			bob[fd.Name] = true
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsAny(raw, "#?") {
			return // not one query string
		}
		req, denied := e.request(gqlRoute, "GET", "/platform/graphql?"+raw, "gw")
		if denied != nil {
			return
		}
		req.proc = &procCall{}
		sub := &Subject{User: gqlBob}
		res := e.Evaluate(&req, sub, false)
		if !res.Allow {
			return
		}
		out := graphqlFilter{}.FilterRequest(FilterInput{Request: &req, Subject: sub, Result: &res})
		if out.URLQuery == "" {
			if out.Immediate == nil && out.Response == nil {
				// Left as sent: it must ask nothing forbidden.
				v, _ := url.ParseQuery(raw)
				if got, verr := fieldsOf(t, schema, v.Get("query")); verr == "" {
					for name := range got {
						if bob[name] {
							t.Fatalf("forbidden %s passed unchanged in %q", name, raw)
						}
					}
				}
			}
			return
		}
		v := sentURL(t, out.URLQuery)
		got, verr := fieldsOf(t, schema, v.Get("query"))
		if verr != "" {
			t.Fatalf("the upstream's document is not valid: %s\nfrom %q\nsent %q", verr, raw, out.URLQuery)
		}
		for name := range got {
			if bob[name] {
				t.Fatalf("forbidden %s survived\nfrom %q\nsent %q", name, raw, out.URLQuery)
			}
		}
		if strings.Contains(out.URLQuery, "persistedQuery") {
			t.Fatalf("a hash of another document went upstream: %q", out.URLQuery)
		}
		_ = out.Response.FilterResponse(200, nil, []byte(`{"data":{"components":[{"name":"x"}],"c":{"name":1}}}`))
	})
}

// The walk's names agree with the inspector's: a field the inspector
// decides under one name is removed under the same.
func TestGraphQLFilterNamesAgreeWithInspector(t *testing.T) {
	e := filterEngine(t)
	schema := e.routes[gqlRoute].gql.schema
	for _, q := range []string{
		`{ node(id: "1") { id internalNotes ... on Component { deploySecrets cloudAccount { accountId } } ... on Team { budget } } __typename }`,
		`query { components { ...F } } fragment F on Component { name owner scoped }`,
		`{ __schema { queryType { name } } __type(name: "Query") { name } }`,
	} {
		req, _ := e.request(gqlRoute, "POST", "/platform/graphql", "gw")
		req.Body = []byte(gqlBody(q))
		ops, _, deny := inspectGraphQL(&req)
		if deny != nil {
			t.Fatal(deny)
		}
		got, verr := fieldsOf(t, schema, q)
		if verr != "" {
			t.Fatal(verr)
		}
		delete(got, "")
		for _, op := range ops {
			if !got[op.Name] {
				t.Errorf("%s: the inspector names %s, the filter does not", q, op.Name)
			}
			delete(got, op.Name)
		}
		if len(got) > 0 {
			t.Errorf("%s: the filter names %v, the inspector does not", q, got)
		}
	}
}

// FuzzGraphQLFilter: whatever the document, the filter never panics, and
// what the upstream gets is valid against the schema and holds no field
// the caller may not read.
func FuzzGraphQLFilter(f *testing.F) {
	for _, s := range []string{
		`{ c: component(name: "a") { name deploySecrets internalNotes } }`,
		`query Q($n: String!) { all: components { ...F } team(name: $n) { budget } } fragment F on Component { name ... on Node { internalNotes } cloudAccount { accountId } }`,
		`{ node(id: "1") { ... on Component { internalNotes } ... on Team { internalNotes budget } } audit }`,
		`query A { components { id } } query B { audit }`,
		`fragment A on Component { ...B } fragment B on Component { deploySecrets } { components { ...A name } }`,
		`{ __schema { types { name } } viewer }`,
	} {
		f.Add(s, "")
	}
	e := filterEngine(f)
	schema := e.routes[gqlRoute].gql.schema
	forbiddenFor := func(p *Principal) map[string]bool {
		out := map[string]bool{}
		for _, fd := range e.routes[gqlRoute].gql.GraphQLPolicy.Fields {
			if _, ok := fieldRuleFails(e.routes[gqlRoute], p, fd.Name); !ok {
				out[fd.Name] = true
			}
		}
		return out
	}
	bob := forbiddenFor(gqlBob)
	f.Fuzz(func(t *testing.T, query, opName string) {
		b, _ := json.Marshal(map[string]string{"query": query, "operationName": opName})
		out, res := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", string(b))
		if !res.Allow || out.Body == nil {
			return
		}
		q, _ := sentDoc(t, out.Body)
		got, verr := fieldsOf(t, schema, q)
		if verr != "" {
			t.Fatalf("the upstream's document is not valid: %s\nfrom %s\nsent %s", verr, query, q)
		}
		for name := range got {
			if bob[name] {
				t.Fatalf("forbidden %s survived\nfrom %s\nsent %s", name, query, q)
			}
		}
		_ = out.Response.FilterResponse(200, nil, []byte(`{"data":{"components":[{"name":"x"}],"c":{"name":1},"node":null}}`))
	})
}

// explain decides a filter-mode route as the ext_proc server does: the
// request is allowed, and the fields it would remove are listed.
func TestGraphQLFilterExplain(t *testing.T) {
	src := strings.Replace(testcatalog.PlatformGraph, "    gatehouse.dev/graphql-access: |\n", "    gatehouse.dev/graphql-options: |\n      mode: filter\n    gatehouse.dev/graphql-access: |\n", 1)
	m := testcatalog.Must(t, src)
	res, err := Explain(context.Background(), NewEngine(m), m, nil, ExplainRequest{
		Principal: "user:default/bob", Method: "POST", URL: "http://gw/platform/graphql",
		Body: gqlBody(`{ c: component(name: "a") { name internalNotes } }`),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Decision.GraphQL
	if !res.Decision.Allow || g == nil || g.Mode != model.GraphQLFilter || len(g.Denied) != 1 || g.Denied[0].Field != "Component.internalNotes" {
		t.Fatalf("%+v %+v", res.Decision, g)
	}
}

// BenchmarkGraphQLFilter: the filter's part of a filter-mode request
// (the ~300 B query of bench/graphqlfilter with one field removed): the
// request rewritten, then the answer patched.
func BenchmarkGraphQLFilter(b *testing.B) {
	e := filterEngine(b)
	body := `{"query":"query Q($n: String!) { c: component(name: $n) { ...F lifecycle: name internalNotes } all: components { name owner } } fragment F on Component { name owner }","variables":{"n":"orders"}}`
	answer := []byte(`{"data":{"c":{"name":"orders","owner":"group:default/payments","lifecycle":"orders"},"all":[{"name":"orders","owner":"group:default/payments"},{"name":"shop","owner":"group:default/storefront"}]}}`)
	req, _ := e.request(gqlRoute, "POST", "/platform/graphql", "gw")
	req.Body, req.proc = []byte(body), &procCall{}
	sub := &Subject{User: gqlBob}
	res := e.Evaluate(&req, sub, false)
	if !res.Allow {
		b.Fatal(res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := graphqlFilter{}.FilterRequest(FilterInput{Request: &req, Subject: sub, Result: &res})
		if out.Body == nil || out.Response.FilterResponse(200, nil, answer) == nil {
			b.Fatal("not filtered")
		}
	}
}

// FuzzGraphQLFilterBody: any body the inspector accepts (single, batch,
// bare document, with variables) is filtered without a panic; what the
// upstream gets parses, and no forbidden field survives in any of its
// operations.
func FuzzGraphQLFilterBody(f *testing.F) {
	for _, s := range []string{
		`{"query":"query Q($n: String!, $t: String!) { component(name: $n) { name internalNotes } team(name: $t) { name } }","variables":{"n":"a","t":"b"}}`,
		`[{"query":"{ audit }"},{"query":"{ c: component(name: \"a\") { ...F } } fragment F on Component { deploySecrets name }"}]`,
		`{ node(id: "1") { ... on Component { internalNotes } } }`,
		`{"query":"{ components { name } }","operationName":null,"variables":null,"extensions":{}}`,
	} {
		f.Add(s)
	}
	e := filterEngine(f)
	schema := e.routes[gqlRoute].gql.schema
	bob := map[string]bool{}
	for _, fd := range e.routes[gqlRoute].gql.GraphQLPolicy.Fields {
		if _, ok := fieldRuleFails(e.routes[gqlRoute], gqlBob, fd.Name); !ok {
			bob[fd.Name] = true
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		out, res := gqlFilterRun(t, e, gqlBob, "POST", "/platform/graphql", body)
		if !res.Allow || out.Body == nil {
			return
		}
		var queries []string
		var items []map[string]any
		switch {
		case json.Unmarshal(out.Body, &items) == nil:
			for _, it := range items {
				q, _ := it["query"].(string)
				queries = append(queries, q)
			}
		default:
			var one map[string]any
			if json.Unmarshal(out.Body, &one) == nil {
				q, _ := one["query"].(string)
				queries = append(queries, q)
			} else {
				queries = append(queries, string(out.Body)) // a bare document
			}
		}
		for _, q := range queries {
			got, verr := fieldsOf(t, schema, q)
			if verr != "" {
				t.Fatalf("the upstream's document is not valid: %s\nfrom %s\nsent %s", verr, body, out.Body)
			}
			for name := range got {
				if bob[name] {
					t.Fatalf("forbidden %s survived\nfrom %s\nsent %s", name, body, out.Body)
				}
			}
		}
	})
}

// FuzzGraphQLFilterAnswer: whatever the upstream answers, patching it
// never panics, and gatehouse's own __typename (asked under data) never
// reaches the client in the data of an answer it patched.
func FuzzGraphQLFilterAnswer(f *testing.F) {
	for _, s := range []string{
		`{"data":{"c":{"_gatehouse_typename":"Component","name":"a"},"all":[{"name":"x"},null,3]}}`,
		`{"data":null,"errors":[{"message":"x"}]}`,
		`{"data":{"c":[{"name":{"a":[]}}]},"errors":"not a list"}`,
		`[{"data":{}}]`, `null`, `{"data":{"c":null}}`,
	} {
		f.Add(s)
	}
	e := filterEngine(f)
	out, _ := gqlFilterRun(f, e, gqlBob, "POST", "/platform/graphql",
		gqlBody(`{ c: component(name: "a") { name deploySecrets ...F } all: components { name internalNotes } node(id: "1") { ... on Component { internalNotes } } } fragment F on Component { internalNotes }`))
	if out.Response == nil {
		f.Fatal("nothing to patch")
	}
	f.Fuzz(func(t *testing.T, answer string) {
		b := out.Response.FilterResponse(200, nil, []byte(answer))
		var patched struct {
			Data json.RawMessage `json:"data"`
		}
		if b != nil && json.Unmarshal(b, &patched) == nil && strings.Contains(string(patched.Data), `"_gatehouse_typename":`) {
			t.Fatalf("the hidden __typename reached the client: %s -> %s", answer, b)
		}
	})
}
