package extauthz

import (
	"context"
	"io"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/model"
)

// A Check on a GraphQL route against a plain Check on the same catalog,
// cached (the decision cache hit: the body hashed into the key) and fresh
// (cache off: the token verified, here by the fake verifier, so the
// parse, limits, validation and per-field evaluation are not diluted by
// signature verification):
//
//	go test -run XXX -bench GraphQLVsPlain -benchmem ./extauthz/
const benchQuery = `query Platform($name: String!) {
  components { id name owner }
  component(name: $name) { id name owner cloudAccount { accountId } }
  team(name: "payments") { id name internalNotes }
  node(id: "42") { id ... on Team { name } }
}`

func benchGraphQL(b *testing.B, graphql bool, cacheSize int) {
	srv, _, _, _ := gqlServer(b, "")
	srv.state.Load().cache = newDecisionCache(cacheSize) // 0: off
	audit := NewAudit(io.Discard, 8192)                  // as bench/checkload: the encoding is paid, nothing parses it
	b.Cleanup(audit.Close)
	srv.audit = audit
	var req *authv3.CheckRequest
	if graphql {
		body := `{"query":` + jsonString(benchQuery) + `,"variables":{"name":"orders"},"operationName":"Platform"}`
		if len(body) < 250 || len(body) > 400 {
			b.Fatalf("body %d bytes", len(body))
		}
		req = gqlCheckReq("bob", "POST", "/platform/graphql", body)
	} else {
		req = checkReq("", "GET", "/platform/components/7", map[string]string{"authorization": "Bearer bob", model.RouteHeader: "component:default/platform@*/platform"})
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
	b.Run("plain/cached", func(b *testing.B) { benchGraphQL(b, false, 1000) })
	b.Run("graphql/cached", func(b *testing.B) { benchGraphQL(b, true, 1000) })
	b.Run("plain/fresh", func(b *testing.B) { benchGraphQL(b, false, 0) })
	b.Run("graphql/fresh", func(b *testing.B) { benchGraphQL(b, true, 0) })
}
