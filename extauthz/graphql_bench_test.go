package extauthz

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/model"
)

// A Check on a GraphQL route against a plain Check on the same catalog,
// cached (the decision cache hit: the body hashed into the key) and fresh
// (cache off: the token verified, by the fake verifier, so the parse,
// limits, validation and per-field evaluation are not diluted by signature
// verification; and -rs256, a real RS256 token and verifier, as a Check
// of a new token pays):
//
//	go test -run XXX -bench GraphQLVsPlain -benchmem ./extauthz/
const benchQuery = `query Platform($name: String!) {
  components { id name owner }
  component(name: $name) { id name owner cloudAccount { accountId } }
  team(name: "payments") { id name internalNotes }
  node(id: "42") { id ... on Team { name } }
}`

// benchLargeQuery is a ~10 KB document: 60 named fragments (on Component,
// Team and the Node interface, some spreading others), inline fragments,
// 20 aliased root fields and variables, within the default limits.
func benchLargeQuery() string {
	var q strings.Builder
	q.WriteString("query PlatformOverview($name: String!, $team: String!, $node: ID!) {\n")
	comp, team := 0, 0
	spreads := func(prefix string, next *int) string {
		out := ""
		for k := 0; k < 3; k++ {
			out += fmt.Sprintf(" ...%s%02d", prefix, *next)
			*next++
		}
		return out
	}
	for i := 0; i < 20; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&q, "  componentNumber%02d: component(name: $name) {%s }\n", i, spreads("ComponentFields", &comp))
		case 1:
			fmt.Fprintf(&q, "  everyComponent%02d: components {%s ... on Component { owner cloudAccount { accountId } } }\n", i, spreads("ComponentFields", &comp))
		case 2:
			fmt.Fprintf(&q, "  teamNumber%02d: team(name: $team) {%s }\n", i, spreads("TeamFields", &team))
		default:
			fmt.Fprintf(&q, "  nodeNumber%02d: node(id: $node) { ...NodeFields%02d ... on Team { id name } ... on Component { name owner cloudAccount { accountId } } }\n", i, i%15)
		}
	}
	q.WriteString("}\n")
	for i := 0; i < comp; i++ {
		fmt.Fprintf(&q, "\nfragment ComponentFields%02d on Component {\n  id\n  name\n  owner\n  cloudAccount { accountId }\n  ...NodeFields%02d\n}\n", i, i%15)
	}
	for i := 0; i < team; i++ {
		fmt.Fprintf(&q, "\nfragment TeamFields%02d on Team {\n  id\n  name\n  ...NodeFields%02d\n}\n", i, i)
	}
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&q, "\nfragment NodeFields%02d on Node {\n  id\n  ... on Team { id name }\n  ... on Component { id name owner }\n}\n", i)
	}
	return q.String()
}

func benchGraphQL(b *testing.B, graphql bool, cacheSize int, realToken bool) {
	benchGraphQLDoc(b, graphql, cacheSize, realToken, benchQuery, 250, 400, "")
}

// benchLargeOptions: the large document expands to ~1,000 field
// selections, past the default maxFields (500).
const benchLargeOptions = "    gatehouse.dev/graphql-options: |\n      maxFields: 2000\n"

func benchGraphQLDoc(b *testing.B, graphql bool, cacheSize int, realToken bool, query string, minBody, maxBody int, extra string) {
	srv, _, _, _ := gqlServer(b, extra)
	tok := "bob"
	if realToken {
		// An RS256 token verified as Check verifies any (signature, claims).
		k := newRSAKey(b, "rsa-1", 0)
		idp := newIdP(b, k)
		srv.SetVerifier(newTestVerifier(b, idp, nil))
		tok = k.sign(b, claimsFor(idp.URL, withClaim("email", "bob@example.com"), withClaim("email_verified", true), withoutClaim("groups")), "at+jwt")
	}
	srv.state.Load().cache = newDecisionCache(cacheSize) // 0: off
	audit := NewAudit(io.Discard, 8192)                  // as bench/checkload: the encoding is paid, nothing parses it
	b.Cleanup(audit.Close)
	srv.audit = audit
	var req *authv3.CheckRequest
	if graphql {
		body := `{"query":` + jsonString(query) + `,"variables":{"name":"orders","team":"payments","node":"42"}}`
		if len(body) < minBody || len(body) > maxBody {
			b.Fatalf("body %d bytes", len(body))
		}
		req = gqlCheckReq(tok, "POST", "/platform/graphql", body)
	} else {
		req = checkReq("", "GET", "/platform/components/7", map[string]string{"authorization": "Bearer " + tok, model.RouteHeader: "component:default/platform@*/platform"})
	}
	ctx := context.Background()
	if r, _ := srv.Check(ctx, req); r.GetOkResponse() == nil {
		b.Fatalf("denied: %v", r.GetDeniedResponse())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, _ := srv.Check(ctx, req); r.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

func jsonString(s string) string {
	return string(appendJSONString(nil, s))
}

func BenchmarkGraphQLVsPlain(b *testing.B) {
	b.Run("plain/cached", func(b *testing.B) { benchGraphQL(b, false, 1000, false) })
	b.Run("graphql/cached", func(b *testing.B) { benchGraphQL(b, true, 1000, false) })
	b.Run("plain/fresh", func(b *testing.B) { benchGraphQL(b, false, 0, false) })
	b.Run("graphql/fresh", func(b *testing.B) { benchGraphQL(b, true, 0, false) })
	b.Run("graphql/fresh-unseen-document", benchGraphQLUnseen)
	b.Run("plain/fresh-rs256", func(b *testing.B) { benchGraphQL(b, false, 0, true) })
	b.Run("graphql/fresh-rs256", func(b *testing.B) { benchGraphQL(b, true, 0, true) })
	large := benchLargeQuery()
	b.Run("graphql-10k/cached", func(b *testing.B) { benchGraphQLDoc(b, true, 1000, false, large, 8<<10, 12<<10, benchLargeOptions) })
	b.Run("graphql-10k/fresh", func(b *testing.B) { benchGraphQLDoc(b, true, 0, false, large, 8<<10, 12<<10, benchLargeOptions) })
	b.Run("graphql-10k/fresh-rs256", func(b *testing.B) { benchGraphQLDoc(b, true, 0, true, large, 8<<10, 12<<10, benchLargeOptions) })
}

// benchGraphQLUnseen: every Check a document never seen before (a comment
// makes each one new): the parse, limits and validation are paid each time.
func benchGraphQLUnseen(b *testing.B) {
	srv, _, _, _ := gqlServer(b, "")
	srv.state.Load().cache = newDecisionCache(0)
	audit := NewAudit(io.Discard, 8192)
	b.Cleanup(audit.Close)
	srv.audit = audit
	reqs := make([]*authv3.CheckRequest, 4096)
	for i := range reqs {
		body := `{"query":` + jsonString(benchQuery+" # "+strconv.Itoa(i)) + `,"variables":{"name":"orders"},"operationName":"Platform"}`
		reqs[i] = gqlCheckReq("bob", "POST", "/platform/graphql", body)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, _ := srv.Check(ctx, reqs[i%len(reqs)]); r.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}
