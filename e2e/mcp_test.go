package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// mcpCatalog: tools (owned by payments) serves the MCP API platform-tools
// at /tools/mcp (the Python MCP server); storefront may use the route by
// an access rule; copilot (an AI agent, client id copilot, limited to
// read-only tools) consumes the API. Tool rules: deploy for the owners,
// read_secret_ref for storefront and secretRule; list_components and
// whoami are open to the route; list_components, whoami and read_* are
// read-only.
func mcpCatalog(toolsURL, secretRule string) string {
	return testcatalog.Teams + fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: tools
  annotations:
    gatehouse.dev/upstream: %s
    gatehouse.dev/path-prefix: /tools
    gatehouse.dev/public-paths: /tools/healthz
    gatehouse.dev/access: |
      - allow: [group:default/storefront]
spec: {type: service, lifecycle: production, owner: payments, providesApis: [platform-tools]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: copilot
  annotations: {gatehouse.dev/client-id: copilot}
spec: {type: ai-agent, lifecycle: production, owner: group:default/storefront, consumesApis: [platform-tools]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: platform-tools
  annotations:
    gatehouse.dev/path-prefix: /tools/mcp
    gatehouse.dev/mcp-read-only-tools: "[list_components, whoami, read_*]"
    gatehouse.dev/mcp-tools: |
      deploy: [owners]
      read_secret_ref: [group:default/storefront%s]
spec: {type: mcp, lifecycle: production, owner: payments, definition: "MCP server: list_components, deploy, read_secret_ref, whoami"}
`, toolsURL, secretRule)
}

// agentLine is one line of examples/agent's output.
type agentLine struct {
	Action string   `json:"action"`
	Tool   string   `json:"tool"`
	Tools  []string `json:"tools"`
	Text   string   `json:"text"`
	Error  string   `json:"error"`
}

// TestMCPGateway: the Python MCP server (the official mcp SDK) behind a
// real Envoy and gatehouse, a real Keycloak, and the agent built with the
// official Go MCP SDK (examples/agent) calling tools.
func TestMCPGateway(t *testing.T) {
	dir := filepath.Join(repoRoot, "examples", "mcp-server")
	inst := exec.Command("bash", filepath.Join(dir, "install.sh"))
	var instErr syncBuffer
	inst.Stderr = &instErr
	out, err := inst.Output()
	if err != nil {
		t.Fatalf("examples/mcp-server/install.sh failed: %v\n%s", err, tail(instErr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	python := lines[len(lines)-1]
	agentBin := filepath.Join(t.TempDir(), "agent")
	build := exec.Command("go", "build", "-o", agentBin, "./examples/agent")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/agent: %v\n%s", err, out)
	}

	kc := startIDP(t)
	ensureRealmClients(t, kc, "mcp-cli", "copilot")
	port := freePort(t)
	toolsURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(mcpCatalog(toolsURL, ", component:default/copilot")), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	freePortEdge := ports[2]
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse, api:default/platform-tools]
    algorithms: [RS256]
    clock_skew: 1s
    machine_token_claims: ["client_id={client}"]
signin:
  public_port: %d
token_exchange:
  listen: 127.0.0.1:%d
  issuer: http://gw.example.com/.gatehouse/token
  lifetime: 5m
`, kc.issuer, freePortEdge, freePort(t)), ports...)
	jwksURL := "http://" + g.adminAddr + "/.well-known/jwks.json"
	app := startProc(t, "mcp-server", "env", "JWKS_URL="+jwksURL, "GATEHOUSE_ENTITY=component:default/tools",
		"MCP_PYTHON="+python, "bash", filepath.Join(dir, "run.sh"), fmt.Sprint(port))
	eventually(t, 30*time.Second, "mcp-server /healthz", func() error {
		if app.Exited() {
			t.Fatalf("mcp-server exited: %v\n%s", app.Err(), app.Log())
		}
		return harness.HTTPOK(toolsURL + "/healthz")
	})
	e := startEnvoy(t, g, "edge-mcp", false)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/tools/mcp", e.edgePort)
	tokenURL := kc.issuer + "/protocol/openid-connect/token"

	// Envoy has the MCP route once an anonymous POST is refused by gatehouse.
	post := func(t *testing.T, token, body string, headers map[string]string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	eventually(t, 10*time.Second, "MCP route through Envoy", func() error {
		if code, _, body := post(t, "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil); code != 401 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	agent := func(t *testing.T, args ...string) []agentLine {
		t.Helper()
		cmd := exec.Command(agentBin, append([]string{"--url", endpoint}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("agent %v: %v\n%s", args, err, stderr.String())
		}
		var res []agentLine
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var a agentLine
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatalf("agent output %q: %v", l, err)
			}
			res = append(res, a)
		}
		return res
	}
	copilotArgs := []string{"--token-url", tokenURL, "--client-id", "copilot", "--client-secret", "copilot-secret"}

	t.Run("agent with its own token: allowed tools answer, a forbidden one is a JSON-RPC error the SDK surfaces", func(t *testing.T) {
		res := agent(t, append(copilotArgs, "--call", "list_components", "--call", `read_secret_ref={"name":"db"}`,
			"--call", `deploy={"component":"orders"}`, "--call", "whoami", "--list")...)
		if len(res) != 5 {
			t.Fatalf("agent: %+v", res)
		}
		// tools/list: only what the agent may call (deploy is not read-only).
		if l := res[0]; l.Action != "list" || strings.Join(l.Tools, ",") != "list_components,read_secret_ref,whoami" {
			t.Errorf("tools/list for copilot: %+v", l)
		}
		res = res[1:]
		if res[0].Error != "" || !strings.Contains(res[0].Text, "orders") {
			t.Errorf("list_components: %+v", res[0])
		}
		if res[1].Error != "" || res[1].Text != "vault://platform/db" { // read-only, and the rule names copilot
			t.Errorf("read_secret_ref: %+v", res[1])
		}
		if !strings.Contains(res[2].Error, "you may not call tool deploy") || !strings.Contains(res[2].Error, "-32001") && !strings.Contains(res[2].Error, "gatehouse") {
			t.Errorf("deploy: want gatehouse's JSON-RPC error, got %+v", res[2])
		}
		var who map[string]any
		if err := json.Unmarshal([]byte(res[3].Text), &who); err != nil || who["sub"] != "component:default/copilot" || who["authorization_seen"] != false {
			t.Errorf("whoami (the server's verified view): %q", res[3].Text)
		}
	})
	t.Run("a person: the owner may deploy but not read secrets, bob the other way round", func(t *testing.T) {
		alice := kc.userToken(t, "alice", "mcp-cli")
		res := agent(t, "--token", alice, "--list", "--call", `deploy={"component":"orders","version":"1.2"}`, "--call", `read_secret_ref={"name":"db"}`)
		if strings.Join(res[0].Tools, ",") != "list_components,deploy,whoami" {
			t.Errorf("tools/list for alice: %+v", res[0])
		}
		res = res[1:]
		if res[0].Error != "" || res[0].Text != "deployed orders@1.2 for user:default/alice" || !strings.Contains(res[1].Error, "you may not call tool read_secret_ref") {
			t.Errorf("alice: %+v", res)
		}
		bob := kc.userToken(t, "bob", "mcp-cli")
		res = agent(t, "--token", bob, "--call", `read_secret_ref={"name":"db"}`, "--call", `deploy={"component":"orders"}`)
		if res[0].Error != "" || res[0].Text != "vault://platform/db" || !strings.Contains(res[1].Error, "you may not call tool deploy") {
			t.Errorf("bob: %+v", res)
		}
	})
	t.Run("the agent for alice (exchanged token): only what both may", func(t *testing.T) {
		alice := kc.userToken(t, "alice", "gatehouse-cli")
		res := agent(t, append(copilotArgs, "--exchange-url", fmt.Sprintf("http://127.0.0.1:%d/.gatehouse/token", e.edgePort),
			"--subject-token", alice, "--resource", "api:default/platform-tools",
			"--list", "--call", "whoami", "--call", `deploy={"component":"orders"}`, "--call", `read_secret_ref={"name":"db"}`)...)
		if strings.Join(res[0].Tools, ",") != "list_components,whoami" { // the intersection
			t.Errorf("tools/list for copilot acting for alice: %+v", res[0])
		}
		res = res[1:]
		var who map[string]any
		if err := json.Unmarshal([]byte(res[0].Text), &who); err != nil || who["sub"] != "user:default/alice" || !strings.Contains(fmt.Sprint(who["act"]), "component:default/copilot") {
			t.Errorf("whoami (both may): %+v", res[0])
		}
		if !strings.Contains(res[1].Error, "you may not call tool deploy") { // alice may, the agent may not
			t.Errorf("deploy: %+v", res[1])
		}
		if !strings.Contains(res[2].Error, "you may not call tool read_secret_ref") { // the agent may, alice may not
			t.Errorf("read_secret_ref: %+v", res[2])
		}
		// The audit is written asynchronously: wait for this call's line,
		// not an earlier subtest's call of the same tool.
		rec := lastAudit(t, g.auditPath, "read_secret_ref", `"principal":"user:default/alice"`)
		if rec["principal"] != "user:default/alice" || !strings.Contains(fmt.Sprint(rec), "component:default/copilot") {
			t.Errorf("audit: %v", rec)
		}
	})
	t.Run("401 names the resource metadata, which names Keycloak", func(t *testing.T) {
		code, h, _ := post(t, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, nil)
		challenge := h.Get("Www-Authenticate")
		meta := fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-protected-resource/tools/mcp", e.edgePort)
		if code != 401 || !strings.Contains(challenge, `resource_metadata="`+meta+`"`) {
			t.Fatalf("401: %d %q", code, challenge)
		}
		resp, err := client.Get(meta)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 ||
			doc.Resource != endpoint || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != kc.issuer {
			t.Fatalf("metadata: %d %+v %v", resp.StatusCode, doc, err)
		}
	})
	t.Run("a token for another audience: 401", func(t *testing.T) {
		other := kc.userToken(t, "alice", "gatehouse-cli") // aud gatehouse, not the MCP API
		code, h, _ := post(t, other, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components"}}`, nil)
		if code != 401 || !strings.Contains(h.Get("Www-Authenticate"), "resource_metadata=") {
			t.Fatalf("another audience: %d %q", code, h.Get("Www-Authenticate"))
		}
	})
	t.Run("Mcp-Method or Mcp-Name disagreeing with the body: refused", func(t *testing.T) {
		alice := kc.userToken(t, "alice", "mcp-cli")
		for _, hdr := range []map[string]string{{"Mcp-Method": "tools/list"}, {"Mcp-Method": "tools/call", "Mcp-Name": "list_components"}} {
			code, _, body := post(t, alice, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"deploy","arguments":{"component":"x"}}}`, hdr)
			if code != 400 || !strings.Contains(body, `"code":-32020`) || !strings.Contains(body, `"id":4`) {
				t.Errorf("%v: %d %s", hdr, code, body)
			}
		}
	})
	t.Run("a catalog edit revoking a tool applies within 2 s", func(t *testing.T) {
		copilot := kc.clientToken(t, "copilot", "copilot-secret")
		call := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"read_secret_ref","arguments":{"name":"db"}}}`
		if code, _, body := post(t, copilot, call, nil); code != 200 || !strings.Contains(body, "vault://platform/db") {
			t.Fatalf("before: %d %s", code, body)
		}
		if err := os.WriteFile(cat, []byte(mcpCatalog(toolsURL, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "read_secret_ref refused to copilot", func() error {
			code, _, body := post(t, copilot, call, nil)
			if code != 200 || !strings.Contains(body, "you may not call tool read_secret_ref") {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		t.Logf("revoked after %s", took.Round(time.Millisecond))
	})
}

// ensureRealmClients creates, through Keycloak's admin API, the clients of
// examples/idp/realm-gatehouse.json named here that the running Keycloak
// lacks: the import file lives in a Keycloak home that every checkout on
// a machine shares, so another branch's realm may have been imported.
func ensureRealmClients(t *testing.T, kc *keycloak, ids ...string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples", "idp", "realm-gatehouse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var realm struct {
		Clients []map[string]any `json:"clients"`
	}
	if err := json.Unmarshal(raw, &realm); err != nil {
		t.Fatal(err)
	}
	admin := masterToken(t, kc)
	base := strings.Replace(kc.issuer, "/realms/gatehouse", "/admin/realms/gatehouse", 1)
	for _, id := range ids {
		req, _ := http.NewRequest("GET", base+"/clients?clientId="+id, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var found []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&found)
		resp.Body.Close()
		if len(found) > 0 {
			ensureMappers(t, kc, admin, base, found[0], realm.Clients, id)
			continue
		}
		for _, c := range realm.Clients {
			if c["clientId"] != id {
				continue
			}
			b, _ := json.Marshal(c)
			req, _ := http.NewRequest("POST", base+"/clients", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("creating Keycloak client %s: %d %s", id, resp.StatusCode, body)
			}
			t.Logf("Keycloak client %s created through the admin API (the imported realm lacked it)", id)
		}
	}
}

// lastAudit is the last audit record whose line contains needle.
func lastAudit(t *testing.T, path string, needles ...string) map[string]any {
	t.Helper()
	var rec map[string]any
	eventually(t, 3*time.Second, "audit record with "+strings.Join(needles, " and "), func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lines:
		for i := len(lines) - 1; i >= 0; i-- {
			for _, n := range needles {
				if !strings.Contains(lines[i], n) {
					continue lines
				}
			}
			return json.Unmarshal([]byte(lines[i]), &rec)
		}
		return fmt.Errorf("none yet")
	})
	return rec
}

// ensureMappers adds the protocol mappers the realm file gives client id
// that the running Keycloak's client lacks.
func ensureMappers(t *testing.T, kc *keycloak, admin, base string, have map[string]any, clients []map[string]any, id string) {
	t.Helper()
	names := map[string]bool{}
	if ms, ok := have["protocolMappers"].([]any); ok {
		for _, m := range ms {
			names[fmt.Sprint(m.(map[string]any)["name"])] = true
		}
	}
	for _, c := range clients {
		if c["clientId"] != id {
			continue
		}
		ms, _ := c["protocolMappers"].([]any)
		for _, m := range ms {
			mm := m.(map[string]any)
			if names[fmt.Sprint(mm["name"])] {
				continue
			}
			b, _ := json.Marshal(mm)
			req, _ := http.NewRequest("POST", base+"/clients/"+fmt.Sprint(have["id"])+"/protocol-mappers/models", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("adding mapper %v to Keycloak client %s: %d", mm["name"], id, resp.StatusCode)
			}
			t.Logf("Keycloak client %s: mapper %v added through the admin API", id, mm["name"])
		}
	}
}

// TestMCPBackstage: Backstage's own MCP server (@backstage/plugin-mcp-actions-backend
// in examples/backstage) behind Envoy and gatehouse as a catalog MCP API:
// the agent, acting for alice through the token exchange, lists the tools
// (only the read-only ones: copilot's limits) and calls the catalog's
// query-catalog-entities; Backstage accepts gatehouse's assertion as the
// bearer token (externalAccess jwks), never the client's token.
func TestMCPBackstage(t *testing.T) {
	t.Parallel() // Backstage's start dominates; other tests run meanwhile
	agentBin := filepath.Join(t.TempDir(), "agent")
	build := exec.Command("go", "build", "-o", agentBin, "./examples/agent")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/agent: %v\n%s", err, out)
	}
	kc := startIDP(t)
	ensureRealmClients(t, kc, "copilot")
	bsPort := freePort(t)
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: backstage
  annotations:
    gatehouse.dev/upstream: http://127.0.0.1:%d
    gatehouse.dev/path-prefix: /api/mcp-actions
    gatehouse.dev/assertion-header: authorization
spec: {type: website, lifecycle: production, owner: payments, providesApis: [backstage-mcp]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: backstage-mcp
  annotations:
    gatehouse.dev/path-prefix: /api/mcp-actions/v1
    gatehouse.dev/mcp-read-only-tools: "[catalog.query-catalog-entities, catalog.get-catalog-*]"
    gatehouse.dev/mcp-tools: |
      catalog.register-entity: [owners]
      "catalog.unregister-*": [owners]
spec: {type: mcp, lifecycle: production, owner: payments, definition: "Backstage MCP actions"}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: copilot
  annotations: {gatehouse.dev/client-id: copilot}
spec: {type: ai-agent, lifecycle: production, owner: group:default/payments, consumesApis: [backstage-mcp]}
`, bsPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    clock_skew: 1s
    machine_token_claims: ["client_id={client}"]
signin:
  public_port: %d
token_exchange:
  listen: 127.0.0.1:%d
  issuer: http://gw.example.com/.gatehouse/token
  lifetime: 5m
`, kc.issuer, ports[2], freePort(t)), ports...)
	bsCat := filepath.Join(t.TempDir(), "backstage-catalog.yaml")
	if err := os.WriteFile(bsCat, []byte("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: inventory-service}\nspec: {type: service, lifecycle: production, owner: guest}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _, err := harness.StartReady(context.Background(), harness.Spec{Name: "backstage",
		Args: []string{"bash", filepath.Join(repoRoot, "examples", "backstage", "run.sh"), fmt.Sprint(bsPort), bsCat},
		Env:  []string{"BACKSTAGE_STATIC_TOKEN=" + backstageToken, "GATEHOUSE_JWKS_URL=http://" + g.adminAddr + "/.well-known/jwks.json", "NODE_ENV=production"}}, 180*time.Second)
	if p == nil {
		t.Fatal(err)
	}
	cleanup(t, p, 40)
	if err != nil {
		t.Fatalf("the real Backstage (examples/backstage) %v:\n%s", err, p.Tail(40))
	}
	e := startEnvoy(t, g, "edge-mcp-backstage", false)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/api/mcp-actions/v1", e.edgePort)
	eventually(t, 10*time.Second, "MCP route through Envoy", func() error {
		resp, err := client.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			return fmt.Errorf("%d", resp.StatusCode)
		}
		return nil
	})
	alice := kc.userToken(t, "alice", "gatehouse-cli")
	var res []agentLine
	eventually(t, 60*time.Second, "query-catalog-entities through Backstage's MCP server", func() error {
		cmd := exec.Command(agentBin, "--url", endpoint, "--token-url", kc.issuer+"/protocol/openid-connect/token", "--client-id", "copilot", "--client-secret", "copilot-secret",
			"--exchange-url", fmt.Sprintf("http://127.0.0.1:%d/.gatehouse/token", e.edgePort), "--subject-token", alice, "--resource", "api:default/backstage-mcp",
			"--list", "--call", `catalog.query-catalog-entities={"query":{"kind":"Component"},"fields":["metadata.name"]}`, "--call", `catalog.register-entity={"locationUrl":"https://example.com/x.yaml"}`)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("agent: %v %s", err, stderr.String())
		}
		res = nil
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var a agentLine
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				return err
			}
			res = append(res, a)
		}
		if len(res) != 3 || !strings.Contains(res[1].Text, "inventory-service") {
			return fmt.Errorf("%+v", res)
		}
		return nil
	})
	for _, tool := range res[0].Tools {
		if tool != "catalog.query-catalog-entities" && !strings.HasPrefix(tool, "catalog.get-catalog-") {
			t.Errorf("tools/list shows %s, which copilot (read-only tools) may not call: %v", tool, res[0].Tools)
		}
	}
	if len(res[0].Tools) == 0 {
		t.Error("tools/list is empty: Backstage's read-only catalog tools should be listed")
	}
	if !strings.Contains(res[2].Error, "you may not call tool catalog.register-entity") {
		t.Errorf("register-entity: %+v", res[2])
	}
	t.Logf("tools/list for copilot acting for alice: %v", res[0].Tools)
}
