package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// graphqlCatalog: testcatalog.Teams; payments (alice) owns the platform component and its
// GraphQL API platform-graph at /platform/graphql; storefront (bob) may
// call the component by an explicit rule; the component checkout (client
// checkout) consumes the API and may only read (Mutation.* is the
// owners'); Component.deploySecrets is for owners (@policy) when
// restricted is true; Component.internalNotes (of the interface Node) is
// for owners; Component.deployKey needs the token scope platform:deploy
// (an optional client scope of gatehouse-cli, keycloak.optionalScope);
// access is added to the graphql-access annotation. The body limit is 4 KiB.
func graphqlCatalog(upstream string, restricted bool, access string) string {
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
kind: Component
metadata:
  name: checkout
  annotations: {gatehouse.dev/client-id: checkout}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [platform-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: platform-graph
  annotations:
    gatehouse.dev/path-prefix: /platform/graphql
    gatehouse.dev/graphql-options: |
      bodyLimit: 4096
    gatehouse.dev/graphql-access: |
      Mutation.*: [owners]
%sspec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    interface Node {
      id: ID!
      internalNotes: String
    }
    type Query {
      component(name: String!): Component
      node(id: ID!): Node
      viewer: String
    }
    type Mutation {
      deploy(name: String!): Boolean
    }
    type Component implements Node {
      id: ID!
      name: String!
      internalNotes: String @policy(policies: [["owners"]])
      deploySecrets: [String!]!%s
      deployKey: String @requiresScopes(scopes: [["platform:deploy"]])
    }
    type Team implements Node {
      id: ID!
      internalNotes: String
    }
`, upstream, access, policy)
}

// TestGraphQLReject: GraphQL field rules through a real Envoy with real
// Keycloak tokens (issue 16, reject mode), one stack for every subtest:
// the owner reads a restricted field, a caller the route allows is
// refused it with a GraphQL-shaped answer; aliases, fragments on an
// interface, variables, a batch, a GET, APQ (not found, then the text,
// then the hash alone), an alias bomb, a read-only consumer's mutation,
// @requiresScopes with a token that has the scope and one that has not,
// audit lines naming the fields (graphqlCases); a body over the API's
// limit is refused by Envoy (413) before any Check; edits of the SDL and
// of the annotations (a field rule; an operation type with a named rule)
// apply within 2 s.
func TestGraphQLReject(t *testing.T) {
	kc := startIDP(t)
	var g *gatehouse
	up := startVerifyingUpstream(t, "platform", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, true, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	g = startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    machine_token_claims: ["client_id={client}"]
`, kc.issuer))
	e := startEnvoy(t, g, "edge-graphql", false)
	alice := kc.userToken(t, "alice", "gatehouse-cli")
	bob := kc.userToken(t, "bob", "gatehouse-cli")
	kc.optionalScope(t, "gatehouse-cli", "platform:deploy")
	aliceDeploy := kc.token(t, url.Values{"grant_type": {"password"}, "client_id": {"gatehouse-cli"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"openid platform:deploy"}})
	checkout := kc.clientToken(t, "checkout", "checkout-secret")
	send := func(method, tok, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", e.edgePort, path), bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gw.example.com"
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(tok, body string) (int, string) {
		t.Helper()
		return send("POST", tok, "/platform/graphql", body)
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
	graphqlCases(t, send, alice, bob, aliceDeploy, checkout, g)
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
		if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, false, "")), 0o644); err != nil {
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
	t.Run("an annotation edit applies within 2 s", func(t *testing.T) {
		viewer := `{"query":"{ viewer }"}`
		if code, body := post(bob, viewer); code != 200 {
			t.Fatalf("bob's viewer before the edit: %d %s", code, body)
		}
		if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, false, "      Query.viewer: [owners]\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "Query.viewer is the owners' once the annotation says so", func() error {
			if code, body := post(bob, viewer); code != 403 || !strings.Contains(body, "UNAUTHORIZED_FIELD_OR_TYPE") {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		if code, body := post(alice, viewer); code != 200 {
			t.Fatalf("the owner's viewer after the edit: %d %s", code, body)
		}
		t.Logf("the annotation edit applied in %s", took)
	})
	t.Run("an operation type and a named rule in the annotations apply within 2 s", func(t *testing.T) {
		read := `{"query":"{ component(name: \"orders\") { name } }"}`
		if code, body := post(checkout, read); code != 200 {
			t.Fatalf("the consumer's query before the edit: %d %s", code, body)
		}
		// Every query field needs owners or the named rule readers
		// (storefront): the consumer checkout is neither.
		access := "      query: [owners, readers]\n    gatehouse.dev/graphql-policies: |\n      readers: [group:default/storefront]\n"
		if err := os.WriteFile(cat, []byte(graphqlCatalog(up.url, false, access)), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "query: [owners, readers] refuses the consumer", func() error {
			if code, body := post(checkout, read); code != 403 || !strings.Contains(body, "UNAUTHORIZED_FIELD_OR_TYPE") {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		for who, tok := range map[string]string{"bob (readers)": bob, "alice (owners)": alice} {
			if code, body := post(tok, read); code != 200 {
				t.Errorf("%s after the edit: %d %s", who, code, body)
			}
		}
		expectAudit(t, g, func(r map[string]any) bool {
			gq, _ := r["graphql"].(map[string]any)
			return r["principal"] == "component:default/checkout" && gq != nil &&
				strings.Contains(fmt.Sprint(gq["denied_fields"]), "gatehouse.dev/graphql-access query")
		})
		t.Logf("the edit applied in %s", took)
	})
}

// gqlAnswer is a GraphQL error answer (or the upstream's echo, which has
// no errors).
type gqlAnswer struct {
	Upstream string `json:"upstream"`
	Errors   []struct {
		Message    string            `json:"message"`
		Path       []string          `json:"path"`
		Extensions map[string]string `json:"extensions"`
	} `json:"errors"`
}

func readAnswer(t *testing.T, body string) gqlAnswer {
	t.Helper()
	var a gqlAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return a
}

// graphqlCases: what a GraphQL client sends, through Envoy, with real
// Keycloak tokens: aliases, fragments on an interface, variables, a
// batch, a GET, APQ, an alias bomb, a read-only consumer's mutation,
// @requiresScopes, and audit lines naming the fields.
func graphqlCases(t *testing.T, send func(method, tok, path, body string) (int, string), alice, bob, aliceDeploy, checkout string, g *gatehouse) {
	post := func(tok, body string) (int, string) {
		t.Helper()
		return send("POST", tok, "/platform/graphql", body)
	}
	// want: 200 from the upstream, or a refusal with the GraphQL code
	// and the path of its first error.
	want := func(t *testing.T, code int, body string, status int, errCode, path string) {
		t.Helper()
		a := readAnswer(t, body)
		switch {
		case code != status:
			t.Fatalf("got %d %s, want %d", code, body, status)
		case errCode == "" && (a.Upstream != "platform" || len(a.Errors) > 0):
			t.Fatalf("not the upstream's answer: %s", body)
		case errCode != "" && (len(a.Errors) == 0 || a.Errors[0].Extensions["code"] != errCode || strings.Join(a.Errors[0].Path, ".") != path || a.Upstream != ""):
			t.Fatalf("got %s, want %s at %q", body, errCode, path)
		}
	}
	q := func(doc string, vars ...string) string {
		m := map[string]any{"query": doc}
		if len(vars) > 0 {
			m["variables"] = json.RawMessage(vars[0])
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	t.Run("aliases: the refusal names the caller's own path", func(t *testing.T) {
		doc := q(`{ a: component(name: "x") { n: name } b: component(name: "y") { s: deploySecrets } }`)
		code, body := post(bob, doc)
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "b.s")
		code, body = post(alice, doc)
		want(t, code, body, 200, "", "")
	})
	t.Run("named and inline fragments on an interface", func(t *testing.T) {
		code, body := post(bob, q(`query { node(id: "1") { ...N ... on Component { internalNotes } } } fragment N on Node { id }`))
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "node.internalNotes")
		code, body = post(bob, q(`query { node(id: "1") { ...N ... on Team { internalNotes } } } fragment N on Node { id }`))
		want(t, code, body, 200, "", "") // Team's own field is open
		code, body = post(bob, q(`{ node(id: "1") { internalNotes } }`))
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "node.internalNotes") // through the interface: any implementation's rule
		code, body = post(bob, q(`query { node(id: "1") { ...N } } fragment N on Node { id ... on Component { name } }`))
		want(t, code, body, 200, "", "")
		code, body = post(alice, q(`{ node(id: "1") { ... on Component { internalNotes } } }`))
		want(t, code, body, 200, "", "")
	})
	t.Run("variables", func(t *testing.T) {
		doc := q(`query Q($n: String!) { component(name: $n) { deploySecrets } }`, `{"n":"orders"}`)
		code, body := post(bob, doc)
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "component.deploySecrets")
		code, body = post(alice, doc)
		want(t, code, body, 200, "", "")
	})
	t.Run("a batch is decided as a whole", func(t *testing.T) {
		code, body := post(bob, "["+q(`{ component(name: "a") { name } }`)+","+q(`{ viewer }`)+"]")
		want(t, code, body, 200, "", "")
		code, body = post(bob, "["+q(`{ viewer }`)+","+q(`{ component(name: "a") { deploySecrets } }`)+"]")
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "component.deploySecrets")
	})
	t.Run("a GET query", func(t *testing.T) {
		code, body := send("GET", bob, "/platform/graphql?query="+url.QueryEscape(`{ component(name: "a") { name } }`), "")
		want(t, code, body, 200, "", "")
		code, body = send("GET", bob, "/platform/graphql?query="+url.QueryEscape(`{ component(name: "a") { deploySecrets } }`), "")
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "component.deploySecrets")
		code, body = send("GET", alice, "/platform/graphql?query="+url.QueryEscape(`mutation { deploy(name: "a") }`), "")
		want(t, code, body, 400, "BAD_REQUEST", "")
	})
	t.Run("APQ: not found, the text with its hash, then the hash alone", func(t *testing.T) {
		doc := `query Persisted { component(name: "apq") { name deploySecrets } }`
		sum := sha256.Sum256([]byte(doc))
		ext := fmt.Sprintf(`"extensions":{"persistedQuery":{"version":1,"sha256Hash":"%x"}}`, sum)
		docJSON, _ := json.Marshal(doc)
		hashOnly, full := "{"+ext+"}", `{"query":`+string(docJSON)+","+ext+"}"
		code, body := post(alice, hashOnly)
		if code != 200 || strings.TrimSpace(body) != `{"errors":[{"message":"PersistedQueryNotFound","extensions":{"code":"PERSISTED_QUERY_NOT_FOUND"}}]}` {
			t.Fatalf("unknown hash: %d %s", code, body)
		}
		code, body = post(alice, full)
		want(t, code, body, 200, "", "")
		code, body = post(alice, hashOnly)
		want(t, code, body, 200, "", "")
		// The hash alone is decided on the document it stands for.
		code, body = post(bob, hashOnly)
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "component.deploySecrets")
		wrong := strings.Replace(full, fmt.Sprintf("%x", sum), fmt.Sprintf("%x", sha256.Sum256([]byte("{ viewer }"))), 1)
		code, body = post(alice, wrong)
		want(t, code, body, 400, "BAD_REQUEST", "")
		code, body = send("GET", alice, "/platform/graphql?extensions="+url.QueryEscape(ext[len(`"extensions":`):]), "")
		want(t, code, body, 200, "", "")
	})
	t.Run("an alias bomb is 400", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{ component(name: "a") { `)
		for i := 0; i < 40; i++ {
			fmt.Fprintf(&b, "a%d: name ", i)
		}
		b.WriteString("} }")
		code, body := post(alice, q(b.String()))
		want(t, code, body, 400, "GRAPHQL_LIMIT_EXCEEDED", "")
	})
	t.Run("a read-only consumer reads, its mutation is refused", func(t *testing.T) {
		code, body := post(checkout, q(`{ component(name: "a") { name } }`))
		want(t, code, body, 200, "", "")
		code, body = post(checkout, q(`mutation Deploy { deploy(name: "a") }`))
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "deploy")
		code, body = post(alice, q(`mutation Deploy { deploy(name: "a") }`))
		want(t, code, body, 200, "", "")
		expectAudit(t, g, func(r map[string]any) bool {
			gq, _ := r["graphql"].(map[string]any)
			return r["principal"] == "component:default/checkout" && gq != nil && gq["operation_type"] == "mutation" &&
				strings.Contains(fmt.Sprint(gq["denied_fields"]), "Mutation.deploy")
		})
	})
	t.Run("@requiresScopes with a Keycloak token carrying the scope or not", func(t *testing.T) {
		doc := q(`{ component(name: "a") { deployKey } }`)
		code, body := post(alice, doc)
		want(t, code, body, 403, "UNAUTHORIZED_FIELD_OR_TYPE", "component.deployKey")
		code, body = post(aliceDeploy, doc)
		want(t, code, body, 200, "", "")
		expectAudit(t, g, func(r map[string]any) bool {
			return r["principal"] == "user:default/alice" && r["decision"] == "allow" && strings.Contains(fmt.Sprint(r["scopes"]), "platform:deploy")
		})
	})
	t.Run("audit lines name the fields", func(t *testing.T) {
		code, body := post(bob, q(`query Named { component(name: "a") { name id } }`))
		want(t, code, body, 200, "", "")
		expectAudit(t, g, func(r map[string]any) bool {
			gq, _ := r["graphql"].(map[string]any)
			return r["principal"] == "user:default/bob" && gq != nil && gq["operation_name"] == "Named" &&
				fmt.Sprint(gq["field_names"]) == "[Query.component Component.name Component.id]"
		})
	})
}
