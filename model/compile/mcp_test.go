package compile_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

// An MCP API's route reads the body as MCP (never sends browsers to sign
// in) and has a metadata route beside it; an MCP API without a prefix of
// its own makes its provider's whole route an MCP route (its tool rules
// are never skipped).
func TestMCPRoutes(t *testing.T) {
	m := testcatalog.Must(t, testcatalog.PlatformMCP)
	routes := map[string]model.Route{}
	for _, r := range m.VirtualHosts[0].Routes {
		routes[r.ID] = r
	}
	r := routes[testcatalog.PlatformMCPRoute]
	if r.Auth.Inspector != model.InspectorMCP || r.Auth.BodyBytes != model.DefaultMCPBodyBytes || r.Auth.Redirects() {
		t.Fatalf("MCP route auth %+v", r.Auth)
	}
	meta := routes[testcatalog.PlatformMCPRoute+"#oauth-protected-resource"]
	if meta.Path != "/.well-known/oauth-protected-resource/tools/mcp" || meta.Auth.Inspector != model.InspectorResourceMetadata {
		t.Fatalf("metadata route %+v", meta)
	}
	if a := routes["component:default/tools@*/tools"].Auth; a.Inspector != "" {
		t.Fatalf("the provider's other paths are plain HTTP: %+v", a)
	}

	unscoped := strings.Replace(testcatalog.PlatformMCP, "    gatehouse.dev/path-prefix: /tools/mcp\n", "", 1)
	m = testcatalog.Must(t, unscoped)
	var got []string
	for _, r := range m.VirtualHosts[0].Routes {
		got = append(got, r.ID+" "+r.Auth.Inspector)
	}
	if strings.Join(got, "|") != "component:default/tools@*/tools#oauth-protected-resource oauth-resource-metadata|component:default/tools@*/tools mcp" {
		t.Fatalf("unscoped MCP API routes: %v", got)
	}
	for _, p := range m.Policies {
		if p.MCP == nil || p.MCP.API != "api:default/platform-tools" || len(p.MCP.Tools) != 3 || p.MCP.Prefix != "/tools" {
			t.Fatalf("policy %s: %+v", p.RouteID, p.MCP)
		}
	}
}
