package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// identityCatalog: orders (owned by payments) provides orders-api under
// /orders/v1 and serves a public health path; two Components with their
// own OAuth clients consume orders-api: checkout (client credentials only)
// and reports (a confidential client that also allows the password grant).
// carol is a catalog user in payments whom Keycloak does not know.
const identityCatalog = testcatalog.Teams + `apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: carol}
spec: {profile: {email: carol@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/upstream: %s
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
  name: checkout
  annotations: {gatehouse.dev/client-id: checkout}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: reports
  annotations: {gatehouse.dev/client-id: reports}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [orders-api]}
`

// TestIdentityMapping: real Keycloak tokens through a real Envoy edge can
// never reach further than the mapping rules of docs/policy.md allow
// (issue 12): an unverified email maps to nobody, a person's token at a
// component's client is never the component, and credentials never reach
// an upstream.
func TestIdentityMapping(t *testing.T) {
	kc := startIDP(t)
	var g *gatehouse
	orders := startVerifyingUpstream(t, "orders", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf(identityCatalog, orders.url)), 0o644); err != nil {
		t.Fatal(err)
	}
	g = startGatehouseEnv(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    machine_token_claims: ["client_id={client}"]
`, kc.issuer), []string{"GATEHOUSE_AUTHZ_COOKIE_NAME=gh_token"})
	e := startEnvoy(t, g, "edge-identity", false)
	get := func(t *testing.T, path string, headers ...string) (int, seen) {
		t.Helper()
		h := map[string]string{}
		for i := 0; i+1 < len(headers); i += 2 {
			h[headers[i]] = headers[i+1]
		}
		code, s, _, err := do(e.edgePort, "GET", "gw.example.com", path, h)
		if err != nil {
			t.Fatal(err)
		}
		return code, s
	}
	bearer := func(tok string) string { return "Bearer " + tok }
	expectRoute(t, e.edgePort, "gw.example.com", "/orders/healthz", 200, "orders", 5*time.Second)

	t.Run("a user who sets another user's email at the IdP becomes nobody", func(t *testing.T) {
		before := kc.userToken(t, "mallory", "gatehouse-cli")
		if code, _ := get(t, "/orders/7", "Authorization", bearer(before)); code != 403 {
			t.Fatalf("mallory before the edit: %d, want 403", code)
		}
		kc.setOwnEmail(t, "mallory", "carol@example.com")
		after := kc.userToken(t, "mallory", "gatehouse-cli")
		if c := jwtClaims(t, after); c["email"] != "carol@example.com" || c["email_verified"] != false {
			t.Fatalf("Keycloak did not issue the unverified email: %v", c)
		}
		if code, _ := get(t, "/orders/7", "Authorization", bearer(after)); code != 403 {
			t.Fatalf("mallory with carol's unverified email: %d, want 403", code)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			return r["reason"] == "unknown_principal" && r["principal"] == jwtClaims(t, after)["sub"]
		})
	})
	t.Run("a person's token at a component's client is not the component", func(t *testing.T) {
		service := kc.clientToken(t, "reports", "reports-secret")
		code, s := get(t, "/orders/v1/items", "Authorization", bearer(service))
		if code != 200 || s.Headers["x-gatehouse-user"] != "component:default/reports" {
			t.Fatalf("reports' own client-credentials token: %d %v", code, s.Headers)
		}
		for _, user := range []string{"bob", "nomail"} {
			// The password grant at reports' client, without the email
			// scope (bob) or for a user without an email (nomail).
			tok := kc.token(t, url.Values{"grant_type": {"password"}, "client_id": {"reports"}, "client_secret": {"reports-secret"},
				"username": {user}, "password": {user + "-password"}})
			if c := jwtClaims(t, tok); c["azp"] != "reports" || c["email"] != nil {
				t.Fatalf("%s's token: %v", user, c)
			}
			if code, _ := get(t, "/orders/v1/items", "Authorization", bearer(tok)); code != 403 {
				t.Errorf("%s through reports' client: %d, want 403", user, code)
			}
		}
		checkout := kc.clientToken(t, "checkout", "checkout-secret")
		if code, s := get(t, "/orders/v1/items", "Authorization", bearer(checkout)); code != 200 || s.Headers["x-gatehouse-user"] != "component:default/checkout" {
			t.Fatalf("checkout's client-credentials token: %d %v", code, s.Headers)
		}
	})
	t.Run("a token in the credential cookie never reaches the upstream", func(t *testing.T) {
		alice := kc.userToken(t, "alice", "gatehouse-cli")
		code, s := get(t, "/orders/7", "Cookie", "theme=dark; gh_token="+alice+"; lang=en")
		if code != 200 || s.Headers["x-gatehouse-user"] != "user:default/alice" {
			t.Fatalf("alice by cookie: %d %v", code, s.Headers)
		}
		if c := s.Headers["cookie"]; strings.Contains(c, "gh_token") || strings.Contains(c, alice) || !strings.Contains(c, "theme=dark") || !strings.Contains(c, "lang=en") {
			t.Fatalf("the upstream saw Cookie %q, want the other cookies only", c)
		}
		code, s = get(t, "/orders/7", "Cookie", "gh_token="+alice)
		if _, ok := s.Headers["cookie"]; code != 200 || ok {
			t.Fatalf("cookie with the token alone: %d, upstream saw Cookie %q", code, s.Headers["cookie"])
		}
		code, s = get(t, "/orders/healthz", "Cookie", "gh_token="+alice+"; theme=dark", "Authorization", bearer(alice))
		if code != 200 || strings.Contains(s.Headers["cookie"], "gh_token") || s.Headers["authorization"] != "" {
			t.Fatalf("public path: %d, upstream saw Cookie %q, Authorization %q", code, s.Headers["cookie"], s.Headers["authorization"])
		}
	})
	t.Run("the edge removes the x-gatehouse- prefix and override headers", func(t *testing.T) {
		alice := kc.userToken(t, "alice", "gatehouse-cli")
		spoof := []string{"X-Gatehouse-Email", "root@example.com", "X-Gatehouse-Anything", "x", "X-HTTP-Method-Override", "DELETE",
			"X-Original-URL", "/admin", "X-Rewrite-URL", "/admin", "Forwarded", "for=1.2.3.4;host=evil", "X-Forwarded-Host", "evil.example.com", "X-Real-IP", "1.2.3.4"}
		for _, path := range []string{"/orders/7", "/orders/healthz"} {
			code, s := get(t, path, append([]string{"Authorization", bearer(alice)}, spoof...)...)
			if code != 200 {
				t.Fatalf("%s: %d", path, code)
			}
			for i := 0; i < len(spoof); i += 2 {
				if v, ok := s.Headers[strings.ToLower(spoof[i])]; ok {
					t.Errorf("%s: the upstream saw %s: %q", path, spoof[i], v)
				}
			}
		}
	})
}

// setOwnEmail changes a user's email as the user would in Keycloak's
// account console (the Account REST API with the user's own token).
func (k *keycloak) setOwnEmail(t *testing.T, user, email string) {
	t.Helper()
	tok := k.token(t, url.Values{"grant_type": {"password"}, "client_id": {"account-self"}, "username": {user}, "password": {user + "-password"}})
	req, _ := http.NewRequest("GET", k.issuer+"/account/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var profile map[string]any
	err = json.NewDecoder(resp.Body).Decode(&profile)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Keycloak account API: %d %v", resp.StatusCode, err)
	}
	profile["email"] = email
	delete(profile, "userProfileMetadata")
	body, _ := json.Marshal(profile)
	req, _ = http.NewRequest("POST", k.issuer+"/account/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("Keycloak refused %s's own email change: %d", user, resp.StatusCode)
	}
}

// expectAudit waits for an audit record that match accepts.
func expectAudit(t *testing.T, g *gatehouse, match func(map[string]any) bool) {
	t.Helper()
	eventually(t, 2*time.Second, "audit record", func() error {
		b, err := os.ReadFile(g.auditPath)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && match(r) {
				return nil
			}
		}
		return fmt.Errorf("no matching record in %d bytes", len(b))
	})
}
