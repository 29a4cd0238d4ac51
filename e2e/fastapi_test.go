package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// TestFastAPIOrdersBehindEnvoy: the Python reference service
// (examples/fastapi-orders) behind Envoy + gatehouse + a real Keycloak. The
// service verifies x-gatehouse-assertion itself against gatehouse's JWKS and
// trusts nothing else.
func TestFastAPIOrdersBehindEnvoy(t *testing.T) {
	dir := filepath.Join(repoRoot, "examples", "fastapi-orders")
	inst := exec.Command("bash", filepath.Join(dir, "install.sh"))
	var instErr syncBuffer
	inst.Stderr = &instErr
	start := time.Now()
	out, err := inst.Output()
	if err != nil {
		t.Fatalf("examples/fastapi-orders/install.sh failed: %v\n%s", err, tail(instErr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	python := lines[len(lines)-1]
	t.Logf("fastapi venv ready in %s: %s", time.Since(start).Round(time.Millisecond), python)

	kc := startIDP(t)
	port := freePort(t)
	ordersURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(authzCatalog(ordersURL, "[storefront]")), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    clock_skew: 1s
`, kc.issuer))
	jwksURL := "http://" + g.adminAddr + "/.well-known/jwks.json"
	app := startProc(t, "fastapi-orders", "env", "JWKS_URL="+jwksURL, "GATEHOUSE_ENTITY=component:default/orders",
		"FASTAPI_PYTHON="+python, "bash", filepath.Join(dir, "run.sh"), fmt.Sprint(port))
	eventually(t, 30*time.Second, "fastapi-orders /orders/healthz", func() error {
		if app.Exited() {
			t.Fatalf("fastapi-orders exited: %v\n%s", app.Err(), app.Log())
		}
		return harness.HTTPOK(ordersURL + "/orders/healthz")
	})
	e := startEnvoy(t, g, "edge-fastapi", false)

	// get sends a request to port (the edge or the service itself) and
	// decodes the JSON body.
	get := func(t *testing.T, port int, path string, headers map[string]string) (int, map[string]any) {
		t.Helper()
		code, _, r, err := do(port, "GET", "gw.example.com", path, headers)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.body), &body); err != nil {
			t.Fatalf("GET %s: %d, body not JSON: %q", path, code, r.body)
		}
		return code, body
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	// Envoy has the route once the public path answers through it.
	eventually(t, 5*time.Second, "public path through Envoy", func() error {
		code, _, r, err := do(e.edgePort, "GET", "gw.example.com", "/orders/healthz", nil)
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(r.body, `"status":"ok"`) {
			return fmt.Errorf("%d %q", code, r.body)
		}
		return nil
	})
	alice := kc.userToken(t, "alice", "gatehouse-cli")
	bob := kc.userToken(t, "bob", "gatehouse-cli")

	t.Run("alice through Envoy: the service verified her assertion", func(t *testing.T) {
		code, body := get(t, e.edgePort, "/orders/7", map[string]string{
			"Authorization": "Bearer " + alice, "X-Gatehouse-User": "user:default/root"})
		if code != 200 {
			t.Fatalf("alice on orders: %d %v", code, body)
		}
		groups := fmt.Sprint(body["groups"])
		if body["order"] != "7" || body["caller"] != "user:default/alice" || body["kind"] != "user" ||
			!strings.Contains(groups, "group:default/payments") || body["user_header_matches"] != true {
			t.Fatalf("the service reported %v", body)
		}
		code, body = get(t, e.edgePort, "/orders/v1/whoami", bearer(alice))
		if code != 200 || body["caller"] != "user:default/alice" || body["aud"] != "component:default/orders" {
			t.Fatalf("whoami: %d %v", code, body)
		}
	})
	t.Run("direct call with a forged x-gatehouse-user and no assertion: 401", func(t *testing.T) {
		code, body := get(t, port, "/orders/7", map[string]string{"X-Gatehouse-User": "user:default/alice",
			"X-Gatehouse-Groups": "group:default/payments", "X-Gatehouse-Entity": "component:default/orders"})
		if code != 401 || body["error"] != "unauthorized" {
			t.Fatalf("forged headers: %d %v, want 401", code, body)
		}
	})
	t.Run("direct call with an ES256 assertion signed by a foreign key: 401", func(t *testing.T) {
		var set jose.JSONWebKeySet
		getJSON(t, jwksURL, &set)
		if len(set.Keys) == 0 {
			t.Fatal("gatehouse's JWKS is empty")
		}
		now := time.Now().Unix()
		claims := map[string]any{"iss": "gatehouse", "sub": "user:default/alice", "aud": "component:default/orders",
			"iat": now, "nbf": now, "exp": now + 30, "gh_kind": "user", "gh_groups": []string{"group:default/payments"}}
		// One forgery claims a kid gatehouse publishes (so only the
		// signature check stops it), one a kid of its own.
		for _, kid := range []string{set.Keys[0].KeyID, "forged-kid"} {
			tok := forgeES256(t, kid, claims)
			code, body := get(t, port, "/orders/7", map[string]string{"X-Gatehouse-Assertion": tok, "X-Gatehouse-User": "user:default/alice"})
			if code != 401 || body["error"] != "unauthorized" {
				t.Fatalf("forged assertion (kid %s): %d %v, want 401", kid, code, body)
			}
			t.Logf("kid %s: 401 %v", kid, body["detail"])
		}
	})
	t.Run("public path through Envoy without a token", func(t *testing.T) {
		if code, body := get(t, e.edgePort, "/orders/healthz", nil); code != 200 || body["status"] != "ok" {
			t.Fatalf("public path: %d %v", code, body)
		}
	})
	t.Run("bob is denied by Envoy", func(t *testing.T) {
		code, body := get(t, e.edgePort, "/orders/7", bearer(bob))
		if code != 403 || body["error"] != "forbidden" || body["decision_id"] == nil {
			t.Fatalf("bob (storefront) on orders: %d %v, want gatehouse's 403", code, body)
		}
	})
}

// forgeES256 signs claims with a P-256 key the test just generated: a
// well-formed assertion that gatehouse never issued.
func forgeES256(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
