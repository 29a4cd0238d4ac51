package extauthz

import (
	"context"
	"io"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/model"
)

// A tools/call Check on an MCP route against a plain Check on the same
// catalog and token (bob: the route by an access rule, an unruled tool),
// cached (the decision cache keyed on the tool, each request a new id) and
// fresh (cache off, the fake verifier: the body read and the tool rules
// are what differs):
//
//	go test -run XXX -bench MCPVsPlain -benchmem ./extauthz/
func benchMCP(b *testing.B, mcp bool, cacheSize int) {
	srv, _, _ := mcpServer(b)
	srv.state.Load().cache = newDecisionCache(cacheSize) // 0: off
	audit := NewAudit(io.Discard, 8192)
	b.Cleanup(audit.Close)
	srv.audit = audit
	var reqs [64]*authv3.CheckRequest
	for i := range reqs {
		if mcp {
			reqs[i] = mcpReq("bob", "", callTool(1000+i, "list_components"), map[string]string{"mcp-method": "tools/call", "mcp-name": "list_components"})
		} else {
			reqs[i] = checkReq("", "GET", "/tools/components/7", map[string]string{"authorization": "Bearer bob", model.RouteHeader: "component:default/tools@*/tools"})
		}
	}
	ctx := context.Background()
	if r, _ := srv.Check(ctx, reqs[0]); r.GetOkResponse() == nil {
		b.Fatalf("denied: %v", r.GetDeniedResponse())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, _ := srv.Check(ctx, reqs[i%len(reqs)]); r.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

func BenchmarkMCPVsPlain(b *testing.B) {
	b.Run("plain/cached", func(b *testing.B) { benchMCP(b, false, 1000) })
	b.Run("tools-call/cached", func(b *testing.B) { benchMCP(b, true, 1000) })
	b.Run("plain/fresh", func(b *testing.B) { benchMCP(b, false, 0) })
	b.Run("tools-call/fresh", func(b *testing.B) { benchMCP(b, true, 0) })
}
