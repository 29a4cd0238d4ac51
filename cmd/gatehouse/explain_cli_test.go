package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/admin"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// explain takes --catalog as serve does, explains a request without
// credentials, and exits 1 on DENY with --json as without it.
func TestExplainCatalogAnonymousAndJSONExit(t *testing.T) {
	cat := repoFile(t, "examples/catalog/catalog-info.yaml")
	out, err := runCommand(t, explainCmd(), "--catalog", cat, "--url", "http://gw.example.com/orders/7")
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (401, no_token)") || !strings.Contains(out, "principal: none (a request without credentials)") {
		t.Errorf("anonymous: %v\n%s", err, out)
	}
	out, err = runCommand(t, explainCmd(), "--catalog", cat, "--json", "--principal", "user:default/bob", "--url", "http://gw.example.com/orders/7")
	var res struct {
		Decision struct{ Allow bool } `json:"decision"`
	}
	if ec, ok := err.(exitCode); !ok || ec != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Decision.Allow {
		t.Errorf("--json DENY: exit %v\n%s", err, out)
	}
	if _, err := runCommand(t, explainCmd(), "--catalog", cat, "--json", "--principal", "user:default/alice", "--url", "http://gw.example.com/orders/7"); err != nil {
		t.Errorf("--json ALLOW: %v", err)
	}
}

// --remote errors name the remote and the problem, with the HTTP status at
// the end, not a status line first; a wrong URL gets a fix.
func TestExplainRemoteErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/explain" {
			http.NotFound(w, r)
			return
		}
		http.Error(w, `url "x": give an absolute URL such as http://orders.example.com/orders/7`, http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := runCommand(t, explainCmd(), "--remote", srv.URL, "--url", "x")
	if want := "--remote " + srv.URL + `: url "x": give an absolute URL such as http://orders.example.com/orders/7 (HTTP 400)`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, err = runCommand(t, explainCmd(), "--remote", srv.URL+"/admin", "--url", "http://gw/x")
	if err == nil || !strings.Contains(err.Error(), "no such endpoint") || !strings.Contains(err.Error(), "fix: give gatehouse's admin URL") {
		t.Errorf("wrong URL: %v", err)
	}
}

// explain --decision shows a past decision by the decision_id of a 403 body,
// from the running gatehouse's ring of recent decisions.
func TestExplainDecision(t *testing.T) {
	audit := extauthz.NewAudit(io.Discard, 8)
	audit.Record(extauthz.AuditRecord{DecisionID: "req-7", Decision: "deny", Status: 403, Reason: "no_matching_rule",
		Principal: "user:default/bob", Kind: "user", Method: "POST", Host: "gw.example.com", Path: "/orders/7", RouteID: "component:default/orders@*/orders"})
	audit.Close()
	srv := httptest.NewServer(admin.New(admin.Sources{Model: func() any { return nil }, Nodes: func() any { return nil }, Problems: func() any { return nil },
		Decision: func(id string) (any, bool) { return audit.Decision(id) }}))
	defer srv.Close()
	out, err := runCommand(t, explainCmd(), "--remote", srv.URL, "--decision", "req-7")
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (403, no_matching_rule) decision req-7") ||
		!strings.Contains(out, "principal: user:default/bob") ||
		!strings.Contains(out, "gatehouse explain --remote "+srv.URL+" --method POST --url http://gw.example.com/orders/7 --principal user:default/bob") {
		t.Errorf("%v\n%s", err, out)
	}
	if _, err := runCommand(t, explainCmd(), "--remote", srv.URL, "--decision", "req-8"); err == nil || !strings.Contains(err.Error(), "not among this replica's recent decisions (older, or made by another replica) (HTTP 404)") {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := runCommand(t, explainCmd(), "--decision", "req-7"); err == nil || !strings.Contains(err.Error(), "--decision needs --remote") {
		t.Errorf("without --remote: %v", err)
	}
}

// A refused principal is told what in the catalog would allow it: shop (a
// client of orders-api in the example catalog) may call the API's paths,
// not the rest of orders; a user is pointed at the owners.
func TestExplainSaysWhatIsMissing(t *testing.T) {
	cat := repoFile(t, "examples/catalog/catalog-info.yaml")
	out, err := runCommand(t, explainCmd(), "--catalog", cat, "--principal", "component:default/shop", "--url", "http://gw/orders/v1/whoami")
	if err != nil || !strings.Contains(out, "ALLOW (200, consumer)") || strings.Contains(out, "missing:") {
		t.Errorf("shop on orders-api: %v\n%s", err, out)
	}
	out, _ = runCommand(t, explainCmd(), "--catalog", cat, "--principal", "component:default/shop", "--url", "http://gw/orders/42")
	if !strings.Contains(out, "missing:   component:default/shop is allowed by none of the rules") ||
		!strings.Contains(out, "component:default/orders in component:default/shop's spec.dependsOn") {
		t.Errorf("shop on orders:\n%s", out)
	}
	out, _ = runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/bob", "--url", "http://gw/orders/42")
	if !strings.Contains(out, "membership of an owner: group:default/payments") || strings.Contains(out, "dependsOn") {
		t.Errorf("bob on orders:\n%s", out)
	}
}

// --actor: an AI agent calling for a person; both verdicts are printed and
// the first refusal decides.
func TestExplainActor(t *testing.T) {
	cat := repoFile(t, "extauthz/testdata/agents-catalog.yaml")
	args := []string{"--catalog", cat, "--principal", "user:default/alice", "--actor", "component:default/copilot"}
	out, err := runCommand(t, explainCmd(), append(args, "--url", "http://gw/orders/v1/items")...)
	if err != nil || !strings.HasPrefix(out, "ALLOW (200, consumer)") || !strings.Contains(out, "actor:     component:default/copilot allowed (consumer)") ||
		!strings.Contains(out, "user:      user:default/alice allowed (owner)") || !strings.Contains(out, "agent limits: methods GET HEAD") {
		t.Errorf("both allowed: %v\n%s", err, out)
	}
	out, err = runCommand(t, explainCmd(), append(args, "--method", "POST", "--url", "http://gw/orders/v1/items")...)
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (403, agent_limit)") || !strings.Contains(out, "actor:     component:default/copilot denied (agent_limit)") ||
		!strings.Contains(out, "user:      user:default/alice allowed (owner)") {
		t.Errorf("agent limits: %v\n%s", err, out)
	}
	out, _ = runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/bob", "--actor", "component:default/copilot", "--url", "http://gw/orders/v1/items")
	if !strings.HasPrefix(out, "DENY (403, no_matching_rule)") || !strings.Contains(out, "user:      user:default/bob denied (no_matching_rule)") {
		t.Errorf("bob with copilot:\n%s", out)
	}
	if _, err := runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/alice", "--actor", "component:default/shop", "--url", "http://gw/orders/v1/items"); err == nil || !strings.Contains(err.Error(), "not an AI agent") {
		t.Errorf("a non-agent actor: %v", err)
	}
}

// explain --mcp-tool decides a tools/call of the tool on an MCP API's
// route, for a person, and for an agent acting for one (both must may).
func TestExplainMCPTool(t *testing.T) {
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(testcatalog.PlatformMCP), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/bob", "--url", "http://gw/tools/mcp", "--mcp-tool", "deploy")
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (403, tool_forbidden)") || !strings.Contains(out, "mcp:       tools/call deploy") ||
		!strings.Contains(out, "gatehouse.dev/mcp-tools deploy of api:default/platform-tools does not allow user:default/bob") {
		t.Errorf("bob deploy: %v\n%s", err, out)
	}
	if out, err := runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/alice", "--url", "http://gw/tools/mcp", "--mcp-tool", "deploy"); err != nil || !strings.HasPrefix(out, "ALLOW (200, owner)") {
		t.Errorf("alice deploy: %v\n%s", err, out)
	}
	out, err = runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/alice", "--actor", "component:default/copilot", "--url", "http://gw/tools/mcp", "--mcp-tool", "deploy")
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (403, agent_limit)") {
		t.Errorf("copilot for alice, deploy: %v\n%s", err, out)
	}
	if out, err := runCommand(t, explainCmd(), "--catalog", cat, "--principal", "user:default/alice", "--actor", "component:default/copilot", "--url", "http://gw/tools/mcp", "--mcp-tool", "list_components"); err != nil || !strings.HasPrefix(out, "ALLOW") {
		t.Errorf("copilot for alice, list_components: %v\n%s", err, out)
	}
}
