package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
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

	jose "github.com/go-jose/go-jose/v4"
)

// authzCatalog: orders (owned by payments) provides orders-api under
// /orders/v1, has a public health path and a rule for storefront readers;
// checkout (a Component with its own OAuth client) consumes orders-api.
func authzCatalog(ordersURL string, bobGroups string) string {
	return fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: storefront}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: %s}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/upstream: %s
    gatehouse.dev/public-paths: /orders/healthz
    gatehouse.dev/access: |
      - allow: [group:default/storefront]
        methods: [GET]
        paths: ["/orders/catalog/**"]
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
`, bobGroups, ordersURL)
}

// TestAuthz: Envoy + gatehouse ext_authz + a real Keycloak, one scenario per
// subtest.
func TestAuthz(t *testing.T) {
	kc := startIDP(t)
	var g *gatehouse
	orders := startVerifyingUpstream(t, "orders", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(authzCatalog(orders.url, "[storefront]")), 0o644); err != nil {
		t.Fatal(err)
	}
	g = startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    clock_skew: 1s
    machine_token_claims: ["client_id={client}"]
`, kc.issuer))
	e := startEnvoy(t, g, "edge-authz", false)

	alice := kc.userToken(t, "alice", "gatehouse-cli")
	bob := kc.userToken(t, "bob", "gatehouse-cli")
	checkout := kc.clientToken(t, "checkout", "checkout-secret")
	get := func(t *testing.T, path, token string, extra ...string) (int, seen, *response) {
		t.Helper()
		h := map[string]string{}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		code, s, r, err := do(e.edgePort, "GET", "gw.example.com", path, h)
		if err != nil {
			t.Fatal(err)
		}
		return code, s, r
	}
	// Envoy has the route once the public path answers.
	expectRoute(t, e.edgePort, "gw.example.com", "/orders/healthz", 200, "orders", 5*time.Second)

	t.Run("owner allowed, upstream gets a verified identity", func(t *testing.T) {
		code, s, _ := get(t, "/orders/7", alice)
		if code != 200 {
			t.Fatalf("alice (payments) on orders: %d", code)
		}
		if s.Headers["x-gatehouse-user"] != "user:default/alice" || !strings.Contains(s.Headers["x-gatehouse-groups"], "group:default/payments") ||
			s.Headers["x-gatehouse-entity"] != "component:default/orders" {
			t.Fatalf("identity headers: %v", s.Headers)
		}
		if _, leaked := s.Headers["authorization"]; leaked {
			t.Error("the caller's bearer token reached the upstream")
		}
		a := s.Assertion
		if a == nil || !a.Valid {
			t.Fatalf("upstream could not verify x-gatehouse-assertion against gatehouse's JWKS: %+v", a)
		}
		if a.Claims["sub"] != "user:default/alice" || a.Claims["aud"] != "component:default/orders" {
			t.Fatalf("assertion claims: %v", a.Claims)
		}
	})
	t.Run("non-member 403 with a small JSON body", func(t *testing.T) {
		code, _, r := get(t, "/orders/7", bob)
		if code != 403 {
			t.Fatalf("bob (storefront) on orders: %d", code)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body["error"] != "forbidden" || body["decision_id"] == "" || len(body) != 2 {
			t.Fatalf("403 body %q", r.body)
		}
	})
	t.Run("explicit rule allows bob's GET on the catalog paths only", func(t *testing.T) {
		if code, _, _ := get(t, "/orders/catalog/items", bob); code != 200 {
			t.Fatalf("bob GET /orders/catalog/items: %d", code)
		}
	})
	t.Run("public path without a token", func(t *testing.T) {
		code, s, _ := get(t, "/orders/healthz", "", "X-Gatehouse-User", "user:default/root")
		if code != 200 {
			t.Fatalf("public path: %d", code)
		}
		if v, ok := s.Headers["x-gatehouse-user"]; ok {
			t.Fatalf("a spoofed x-gatehouse-user reached the upstream on a public path: %q", v)
		}
	})
	t.Run("no token 401", func(t *testing.T) {
		code, _, r := get(t, "/orders/7", "")
		if code != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="gatehouse"` { // RFC 6750 §3.1: no error code without credentials
			t.Fatalf("no token: %d, WWW-Authenticate %q", code, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("bad tokens 401", func(t *testing.T) {
		parts := strings.Split(alice, ".")
		flipped := parts[2][:10] + string("AB"[len(parts[2])%2]) + parts[2][11:]
		if flipped == parts[2] {
			flipped = parts[2][:10] + "C" + parts[2][11:]
		}
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		cases := map[string]string{
			"bad signature":                        parts[0] + "." + parts[1] + "." + flipped,
			"alg none":                             noneHeader + "." + parts[1] + ".",
			"HS256 signed with the RSA public key": hs256WithPublicKey(t, kc, parts[1]),
			"wrong audience":                       kc.userToken(t, "alice", "admin-cli"),
			"wrong issuer":                         masterToken(t, kc),
			"garbage":                              "not-a-jwt",
		}
		for name, tok := range cases {
			if code, _, _ := get(t, "/orders/7", tok); code != 401 {
				t.Errorf("%s: %d, want 401", name, code)
			}
		}
	})
	t.Run("expired token 401", func(t *testing.T) {
		short := kc.userToken(t, "alice", "short-lived")
		if code, _, _ := get(t, "/orders/7", short); code != 200 {
			t.Fatalf("fresh short-lived token: %d", code)
		}
		claims := jwtClaims(t, short)
		wait := time.Until(time.Unix(int64(claims["exp"].(float64)), 0)) + 1500*time.Millisecond // + clock_skew
		time.Sleep(wait)
		if code, _, _ := get(t, "/orders/7", short); code != 401 {
			t.Fatalf("expired token: %d, want 401 (also from the decision cache)", code)
		}
	})
	t.Run("spoofed identity header does not reach the upstream", func(t *testing.T) {
		code, s, _ := get(t, "/orders/7", alice, "X-Gatehouse-User", "user:default/root", "X-Gatehouse-Groups", "group:default/admins")
		if code != 200 || s.Headers["x-gatehouse-user"] != "user:default/alice" || strings.Contains(s.Headers["x-gatehouse-groups"], "admins") {
			t.Fatalf("spoofed headers: %d %v", code, s.Headers)
		}
	})
	t.Run("a client cannot pick the route Check decides for", func(t *testing.T) {
		// Envoy sets x-gatehouse-route from the route it chose, over
		// whatever the client sent: naming the public health route does not
		// open /orders/7.
		public := "component:default/orders@*/orders#public:/orders/healthz"
		if code, _, _ := get(t, "/orders/7", "", "X-Gatehouse-Route", public); code != 401 {
			t.Fatalf("no token, route header naming a public route: %d, want 401", code)
		}
		if code, _, _ := get(t, "/orders/7", bob, "X-Gatehouse-Route", public); code != 403 {
			t.Fatalf("bob, route header naming a public route: %d, want 403", code)
		}
		// The header is Envoy's and Check's: upstreams never see it.
		for _, p := range []struct{ path, token string }{{"/orders/7", alice}, {"/orders/healthz", ""}} {
			code, s, _ := get(t, p.path, p.token, "X-Gatehouse-Route", public)
			if v, ok := s.Headers["x-gatehouse-route"]; code != 200 || ok {
				t.Fatalf("%s: %d, upstream saw x-gatehouse-route %q", p.path, code, v)
			}
		}
	})
	t.Run("client-credentials token of a consumer reaches exactly the API's paths", func(t *testing.T) {
		code, s, _ := get(t, "/orders/v1/items", checkout)
		if code != 200 || s.Headers["x-gatehouse-user"] != "component:default/checkout" {
			t.Fatalf("checkout on orders-api: %d %v", code, s.Headers)
		}
		if code, _, _ := get(t, "/orders/7", checkout); code != 403 {
			t.Fatalf("checkout outside orders-api: %d, want 403", code)
		}
	})
	t.Run("adding a user to the owner group grants access within 2s", func(t *testing.T) {
		if code, _, _ := get(t, "/orders/7", bob); code != 403 {
			t.Fatalf("before: %d", code)
		}
		if err := os.WriteFile(cat, []byte(authzCatalog(orders.url, "[storefront, payments]")), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "bob allowed after joining payments", func() error {
			if code, _, _ := get(t, "/orders/7", bob); code != 200 {
				return fmt.Errorf("%d", code)
			}
			return nil
		})
		t.Logf("membership change effective after %s", took)
	})
	t.Run("audit trail", func(t *testing.T) {
		b, err := os.ReadFile(g.auditPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), alice) || strings.Contains(string(b), strings.Split(alice, ".")[2]) {
			t.Fatal("the audit trail contains a token")
		}
		var allow map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && r["principal"] == "user:default/alice" && r["decision"] == "allow" {
				allow = r
			}
		}
		if allow == nil || allow["route_id"] != "component:default/orders@*/orders" || allow["owner"] != "group:default/payments" || allow["reason"] != "owner" {
			t.Fatalf("no complete allow record for alice: %v", allow)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + g.adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`gatehouse_authz_decisions_total{reason="owner",result="allow"}`,
			`gatehouse_authz_decisions_total{reason="no_matching_rule",result="deny"}`,
			`gatehouse_authz_cache_lookups_total{result="hit"}`,
			`gatehouse_authz_check_seconds_count`,
			`gatehouse_xds_streams{protocol="sotw",role="edge"} 1`,
			`gatehouse_xds_ack_seconds_count{type="Cluster"}`,
			`gatehouse_catalog_entities{source="files"} 7`,
			`gatehouse_audit_records_written_total`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("keys rotated at the IdP are picked up without restart", func(t *testing.T) {
		u, _ := url.Parse(kc.issuer)
		out, err := exec.Command("bash", filepath.Join(repoRoot, "examples", "idp", "rotate-key.sh"), u.Port(), "--retire-old").Output()
		if err != nil {
			t.Fatalf("rotate-key.sh: %v", err)
		}
		newKid := strings.TrimSpace(string(out))
		fresh := kc.userToken(t, "alice", "gatehouse-cli")
		if kid := jwtHeader(t, fresh)["kid"]; kid != newKid {
			t.Fatalf("Keycloak signed with %v, not the new key %s", kid, newKid)
		}
		if code, _, _ := get(t, "/orders/7", fresh); code != 200 {
			t.Fatalf("token signed with the rotated key: %d", code)
		}
	})
	t.Run("ext_authz down: Envoy denies", func(t *testing.T) {
		g.stop(t)
		code, _, _ := get(t, "/orders/7", alice)
		if code == 200 || code < 500 {
			t.Fatalf("with gatehouse down: %d, want 5xx (fail closed)", code)
		}
	})
}

// hs256WithPublicKey forges the classic confusion attack: an HS256 token
// whose HMAC key is the issuer's RSA public key.
func hs256WithPublicKey(t *testing.T, kc *keycloak, payload string) string {
	t.Helper()
	resp, err := http.Get(kc.issuer + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	var der []byte
	for _, k := range set.Keys {
		if k.Use == "sig" && k.Algorithm == "RS256" {
			der, err = x509.MarshalPKIXPublicKey(k.Key)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if der == nil {
		t.Fatal("no RS256 key in Keycloak's JWKS")
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// masterToken is a valid token from an issuer gatehouse does not trust
// (Keycloak's master realm).
func masterToken(t *testing.T, kc *keycloak) string {
	t.Helper()
	master := &keycloak{issuer: strings.Replace(kc.issuer, "/realms/gatehouse", "/realms/master", 1)}
	return master.token(t, map[string][]string{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}})
}

func jwtClaims(t *testing.T, tok string) map[string]any { return jwtPart(t, tok, 1) }
func jwtHeader(t *testing.T, tok string) map[string]any { return jwtPart(t, tok, 0) }

func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
