package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// agentsCatalog: orders (the FastAPI example, owned by payments) provides
// orders-api under /orders/v1; copilot is an AI agent (Keycloak client
// copilot) that consumes orders-api, read-only; ledger is another
// service. %[1]s is orders' URL, %[2]s ledger's, %[3]s copilot's
// consumesApis.
const agentsCatalog = testcatalog.Teams + `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/upstream: %[1]s
    gatehouse.dev/public-paths: /orders/healthz
spec: {type: service, lifecycle: production, owner: payments, providesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: orders-api
  annotations: {gatehouse.dev/path-prefix: /orders/v1}
spec: {type: openapi, lifecycle: production, owner: payments, definition: "openapi: 3.0.0"}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger
  annotations: {gatehouse.dev/upstream: %[2]s}
spec: {type: service, lifecycle: production, owner: payments}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: copilot
  annotations: {gatehouse.dev/client-id: copilot}
spec: {type: ai-agent, lifecycle: production, owner: payments, consumesApis: %[3]s}
`

// TestAgentDelegation (issue 18): a real Keycloak issues alice's token
// (password grant) and the copilot agent's (client credentials); the
// agent exchanges them at gatehouse's token exchange, through a real
// Envoy edge, and calls the FastAPI orders example. What it may do is
// alice's rights ∩ the agent's, the assertion names both, and a catalog
// edit revoking the agent applies within 2 s.
func TestAgentDelegation(t *testing.T) {
	python := installFastAPI(t)
	kc := startIDP(t)
	ensureRealmClients(t, kc, "copilot", "stray-agent", "copilot-expiring")
	port := freePort(t)
	ordersURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	ledger := startUpstream(t, "ledger")
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	writeCatalog := func(consumes string) {
		if err := os.WriteFile(cat, []byte(fmt.Sprintf(agentsCatalog, ordersURL, ledger.url, consumes)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCatalog("[orders-api]")
	exchangePort := freePort(t)
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    clock_skew: 1s
    machine_token_claims: ["client_id={client}"]
token_exchange:
  listen: 127.0.0.1:%d
  issuer: http://gw.example.com/.gatehouse/token
  lifetime: 5m
`, kc.issuer, exchangePort))
	jwksURL := "http://" + g.adminAddr + "/.well-known/jwks.json"
	app := startProc(t, "fastapi-orders", "env", "JWKS_URL="+jwksURL, "GATEHOUSE_ENTITY=component:default/orders",
		"FASTAPI_PYTHON="+python, "bash", filepath.Join(repoRoot, "examples", "fastapi-orders", "run.sh"), fmt.Sprint(port))
	eventually(t, 30*time.Second, "fastapi-orders /orders/healthz", func() error {
		if app.Exited() {
			t.Fatalf("fastapi-orders exited: %v\n%s", app.Err(), app.Log())
		}
		return harness.HTTPOK(ordersURL + "/orders/healthz")
	})
	e := startEnvoy(t, g, "edge-agents", false)
	expectRoute(t, e.edgePort, "gw.example.com", "/orders/healthz", 200, "", 10*time.Second)

	// exchange posts to /.gatehouse/token through the edge.
	exchange := func(t *testing.T, subject, actor, resource string, extra ...string) (int, map[string]any) {
		t.Helper()
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {subject}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"actor_token": {actor}, "actor_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {resource}}
		for i := 0; i+1 < len(extra); i += 2 {
			form.Set(extra[i], extra[i+1])
		}
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/.gatehouse/token", e.edgePort), strings.NewReader(form.Encode()))
		req.Host = "gw.example.com"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("exchange answer %d is not JSON: %q", resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}
	delegated := func(t *testing.T, subject, actor string) string {
		t.Helper()
		code, out := exchange(t, subject, actor, "component:default/orders")
		if code != 200 {
			t.Fatalf("exchange: %d %v", code, out)
		}
		return out["access_token"].(string)
	}
	// call sends method path through the edge with the token and decodes
	// the FastAPI answer.
	call := func(t *testing.T, method, path, tok string) (int, map[string]any) {
		t.Helper()
		code, _, r, err := do(e.edgePort, method, "gw.example.com", path, map[string]string{"Authorization": "Bearer " + tok})
		if err != nil && code != 200 {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.Unmarshal([]byte(r.body), &out)
		return code, out
	}
	alice := kc.userToken(t, "alice", "gatehouse-cli")
	bob := kc.userToken(t, "bob", "gatehouse-cli")
	copilot := kc.clientToken(t, "copilot", "copilot-secret")

	t.Run("exchanged token: sub alice, act copilot, five minutes, one audience", func(t *testing.T) {
		start := time.Now()
		tok := delegated(t, alice, copilot)
		t.Logf("exchange through Envoy: %s", time.Since(start).Round(time.Millisecond))
		c, h := jwtClaims(t, tok), jwtHeader(t, tok)
		act, _ := c["act"].(map[string]any)
		if c["sub"] != "user:default/alice" || act["sub"] != "component:default/copilot" || c["aud"] != "urn:gatehouse:entity:component:default/orders" ||
			h["typ"] != "at+jwt" || c["exp"].(float64)-c["iat"].(float64) > 300 {
			t.Fatalf("header %v claims %v", h, c)
		}
		// The scope only narrows: alice's Keycloak token has email; admin
		// it has not.
		if code, out := exchange(t, alice, copilot, "component:default/orders", "scope", "email"); code != 200 || out["scope"] != "email" || jwtClaims(t, out["access_token"].(string))["scope"] != "email" {
			t.Fatalf("narrowed to email: %d %v", code, out)
		}
		if code, out := exchange(t, alice, copilot, "component:default/orders", "scope", "email admin"); code != 400 || out["error"] != "invalid_scope" {
			t.Fatalf("a scope alice lacks: %d %v", code, out)
		}
	})
	t.Run("a route both may use: 200, the assertion carries act", func(t *testing.T) {
		code, out := call(t, "GET", "/orders/v1/whoami", delegated(t, alice, copilot))
		hdrs, _ := out["headers"].(map[string]any)
		if code != 200 || out["caller"] != "user:default/alice" || out["actor"] != "component:default/copilot" || hdrs["x-gatehouse-actor"] != "component:default/copilot" {
			t.Fatalf("%d %v", code, out)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			rule, _ := r["matched_rule"].(string)
			return r["decision"] == "allow" && r["principal"] == "user:default/alice" && r["actor"] == "component:default/copilot" &&
				strings.Contains(rule, "actor consumer component:default/copilot") && strings.Contains(rule, "user owner group:default/payments")
		})
	})
	t.Run("a route alice may use but the agent may not: 403", func(t *testing.T) {
		if code, out := call(t, "GET", "/orders/42", delegated(t, alice, copilot)); code != 403 {
			t.Fatalf("%d %v", code, out)
		}
		if code, out := call(t, "POST", "/orders/v1/whoami", delegated(t, alice, copilot)); code != 403 {
			t.Fatalf("a write by a read-only agent: %d %v", code, out)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			return r["reason"] == "agent_limit" && r["actor"] == "component:default/copilot"
		})
	})
	t.Run("a route the agent may use but bob may not: 403", func(t *testing.T) {
		if code, out := call(t, "GET", "/orders/v1/whoami", delegated(t, bob, copilot)); code != 403 {
			t.Fatalf("%d %v", code, out)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			return r["decision"] == "deny" && r["principal"] == "user:default/bob" && r["actor"] == "component:default/copilot" && r["reason"] == "no_matching_rule"
		})
	})
	t.Run("the agent alone has only its own rights", func(t *testing.T) {
		code, out := call(t, "GET", "/orders/v1/whoami", copilot)
		if code != 200 || out["caller"] != "component:default/copilot" || out["actor"] != nil {
			t.Fatalf("%d %v", code, out)
		}
		if code, _ := call(t, "GET", "/orders/42", copilot); code != 403 {
			t.Fatalf("the agent on alice's route: %d", code)
		}
	})
	t.Run("forged or expired actor token: 401 at the exchange", func(t *testing.T) {
		forged := copilot[:strings.LastIndexByte(copilot, '.')+1] + strings.Repeat("A", 342)
		if code, out := exchange(t, alice, forged, "component:default/orders"); code != 401 || out["error"] != "invalid_client" {
			t.Fatalf("forged: %d %v", code, out)
		}
		expiring := kc.clientToken(t, "copilot-expiring", "expiring-secret")
		time.Sleep(3200 * time.Millisecond) // 2 s tokens, 1 s clock skew
		if code, out := exchange(t, alice, expiring, "component:default/orders"); code != 401 || out["error"] != "invalid_client" || !strings.Contains(fmt.Sprint(out["error_description"]), "expired") {
			t.Fatalf("expired: %d %v", code, out)
		}
	})
	t.Run("an agent not in the catalog is refused", func(t *testing.T) {
		stray := kc.clientToken(t, "stray-agent", "stray-secret")
		if code, out := exchange(t, alice, stray, "component:default/orders"); code != 401 || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", code, out)
		}
		if code, out := exchange(t, alice, copilot, "component:default/ledger"); code != 400 || out["error"] != "invalid_target" {
			t.Fatalf("an entity the agent may not call: %d %v", code, out)
		}
		tok := delegated(t, alice, copilot)
		if code, out := exchange(t, tok, copilot, "component:default/orders"); code != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("a delegated token exchanged again: %d %v", code, out)
		}
	})
	t.Run("the exchanged token on another audience: 401", func(t *testing.T) {
		tok := delegated(t, alice, copilot)
		if code, out := call(t, "GET", "/ledger/1", tok); code != 401 {
			t.Fatalf("%d %v", code, out)
		}
		// Nor is it an assertion: sent straight to the service, refused.
		code, _, r, _ := do(port, "GET", "gw.example.com", "/orders/v1/whoami", map[string]string{"x-gatehouse-assertion": tok})
		if code != 401 {
			t.Fatalf("the delegated token as an assertion: %d %s", code, r.body)
		}
	})
	t.Run("a catalog edit revoking the agent applies within 2 s", func(t *testing.T) {
		tok := delegated(t, alice, copilot)
		if code, _ := call(t, "GET", "/orders/v1/whoami", tok); code != 200 {
			t.Fatalf("before: %d", code)
		}
		writeCatalog("[]")
		took := eventually(t, 2*time.Second, "copilot's access revoked", func() error {
			if code, _ := call(t, "GET", "/orders/v1/whoami", tok); code != 403 {
				return fmt.Errorf("still %d", code)
			}
			return nil
		})
		t.Logf("revocation applied in %s", took.Round(time.Millisecond))
		if code, out := exchange(t, alice, copilot, "component:default/orders"); code != 400 || out["error"] != "invalid_target" {
			t.Fatalf("a new exchange after the revocation: %d %v", code, out)
		}
	})
}

// installFastAPI runs the FastAPI example's install script and returns its
// python.
func installFastAPI(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot, "examples", "fastapi-orders")
	inst := exec.Command("bash", filepath.Join(dir, "install.sh"))
	var instErr syncBuffer
	inst.Stderr = &instErr
	out, err := inst.Output()
	if err != nil {
		t.Fatalf("examples/fastapi-orders/install.sh failed: %v\n%s", err, tail(instErr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
