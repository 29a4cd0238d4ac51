package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// graphqlCatalog: testcatalog.Teams; payments (alice) owns the platform component and its
// GraphQL API platform-graph at /platform/graphql; storefront (bob) may
// call the component by an explicit rule; Component.deploySecrets is for
// owners (@policy) when restricted is true. The body limit is 4 KiB.
func graphqlCatalog(upstream string, restricted bool) string {
	policy := ""
	if restricted {
		policy = ` @policy(policies: [["owners"]])`
	}
	return testcatalog.Teams + fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: platform
  annotations:
    gatehouse.dev/upstream: %s
    gatehouse.dev/access: |
      - allow: [group:default/storefront]
spec: {type: service, lifecycle: production, owner: payments, providesApis: [platform-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: platform-graph
  annotations:
    gatehouse.dev/path-prefix: /platform/graphql
    gatehouse.dev/graphql-options: |
      bodyLimit: 4096
spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    type Query {
      component(name: String!): Component
    }
    type Component {
      name: String!
      deploySecrets: [String!]!%s
    }
`, upstream, policy)
}

// TestGraphQLReject: GraphQL field rules through a real Envoy with real
// Keycloak tokens (issue 16, reject mode): the owner reads a restricted
// field, a caller the route allows is refused it with a GraphQL-shaped
// answer, a body over the API's limit is refused by Envoy (413) before any
// Check, and an edit of the SDL applies within 2 s.
func TestGraphQLReject(t *testing.T) {
	kc := startIDP(t)
	var g *gatehouse
	up := startVerifyingUpstream(t, "platform", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, true)), 0o644); err != nil {
		t.Fatal(err)
	}
	g = startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
`, kc.issuer))
	e := startEnvoy(t, g, "edge-graphql", false)
	alice := kc.userToken(t, "alice", "gatehouse-cli")
	bob := kc.userToken(t, "bob", "gatehouse-cli")
	post := func(tok, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/platform/graphql", e.edgePort), bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gw.example.com"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	secrets := `{"query":"query Secrets { c: component(name: \"orders\") { name deploySecrets } }"}`
	open := `{"query":"{ component(name: \"orders\") { name } }"}`
	eventually(t, 10*time.Second, "the GraphQL route through Envoy", func() error {
		if code, body := post(alice, open); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	t.Run("the owner reads the restricted field; the upstream verified her assertion", func(t *testing.T) {
		code, body := post(alice, secrets)
		var s seen
		if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Assertion == nil || !s.Assertion.Valid || s.Headers["x-gatehouse-user"] != "user:default/alice" {
			t.Fatalf("alice: %d %s", code, body)
		}
	})
	t.Run("a caller the route allows is refused the field, GraphQL-shaped", func(t *testing.T) {
		code, body := post(bob, secrets)
		var ans struct {
			Errors []struct {
				Message    string            `json:"message"`
				Path       []string          `json:"path"`
				Extensions map[string]string `json:"extensions"`
			} `json:"errors"`
		}
		if code != 403 || json.Unmarshal([]byte(body), &ans) != nil || len(ans.Errors) != 1 ||
			ans.Errors[0].Extensions["code"] != "UNAUTHORIZED_FIELD_OR_TYPE" || strings.Join(ans.Errors[0].Path, ".") != "c.deploySecrets" {
			t.Fatalf("bob: %d %s", code, body)
		}
		if code, body := post(bob, open); code != 200 {
			t.Fatalf("bob on an open field: %d %s", code, body)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			gq, _ := r["graphql"].(map[string]any)
			return r["principal"] == "user:default/bob" && r["reason"] == "field_forbidden" && gq != nil &&
				gq["operation_name"] == "Secrets" && strings.Contains(fmt.Sprint(gq["denied_fields"]), "Component.deploySecrets")
		})
	})
	t.Run("a depth bomb is 400 with a GraphQL code; introspection is the owners'", func(t *testing.T) {
		deep := "name"
		for i := 0; i < 20; i++ {
			deep = "ofType { " + deep + " }"
		}
		bomb, _ := json.Marshal(map[string]string{"query": `{ __type(name: "Query") { fields { type { ` + deep + ` } } } }`})
		if code, body := post(alice, string(bomb)); code != 400 || !strings.Contains(body, "GRAPHQL_LIMIT_EXCEEDED") {
			t.Fatalf("depth bomb: %d %s", code, body)
		}
		intro := `{"query":"{ __schema { queryType { name } } }"}`
		if code, body := post(bob, intro); code != 403 || !strings.Contains(body, "UNAUTHORIZED_FIELD_OR_TYPE") {
			t.Fatalf("introspection by bob: %d %s", code, body)
		}
		if code, body := post(alice, intro); code != 200 {
			t.Fatalf("introspection by the owner: %d %s", code, body)
		}
	})
	t.Run("a body over the API's limit: 413 from Envoy, no Check", func(t *testing.T) {
		lines := func() int {
			b, _ := os.ReadFile(g.auditPath)
			return strings.Count(string(b), "\n")
		}
		time.Sleep(100 * time.Millisecond) // the audit writer batches
		before := lines()
		pad := strings.Repeat(" ", 5000)
		code, body := post(alice, `{"query":"{ component(name: \"orders\") { name } }"`+pad+`}`)
		if code != 413 {
			t.Fatalf("over the limit: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
		if after := lines(); after != before {
			t.Fatalf("a body over the limit reached Check (%d audit records, then %d)", before, after)
		}
	})
	t.Run("an SDL edit applies within 2 s", func(t *testing.T) {
		if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, false)), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "bob reads deploySecrets once the rule is gone", func() error {
			if code, body := post(bob, secrets); code != 200 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		t.Logf("the SDL edit applied in %s", took)
	})
}
