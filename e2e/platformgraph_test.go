package e2e

import (
	"bytes"
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

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// platformGraphPython installs examples/platform-graph's venv (Strawberry
// on FastAPI) and returns its python; a failed install fails the test.
func platformGraphPython(t *testing.T) string {
	t.Helper()
	inst := exec.Command("bash", filepath.Join(repoRoot, "examples", "platform-graph", "install.sh"))
	var instErr syncBuffer
	inst.Stderr = &instErr
	out, err := inst.Output()
	if err != nil {
		t.Fatalf("examples/platform-graph/install.sh failed: %v\n%s", err, tail(instErr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// platformCatalog is testcatalog.Teams with examples/catalog's platform
// entities (the component and its API, SDL and all), the upstream at url
// and the API in the given mode.
func platformCatalog(t *testing.T, url, mode string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "catalog", "systems", "platform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "http://127.0.0.1:8083", url, 1)
	s = strings.Replace(s, "      mode: filter\n", "      mode: "+mode+"\n", 1)
	if !strings.Contains(s, url) || !strings.Contains(s, "mode: "+mode) {
		t.Fatal("examples/catalog/systems/platform.yaml no longer has the upstream or the mode this test replaces")
	}
	// The example's component is in system payments, which Teams lacks.
	s = strings.ReplaceAll(s, "  system: payments\n", "")
	return testcatalog.Teams + s
}

// pgAnswer is a GraphQL answer with what the Strawberry service echoes
// (extensions.executed: the query it ran).
type pgAnswer struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string            `json:"message"`
		Path       []any             `json:"path"`
		Extensions map[string]string `json:"extensions"`
	} `json:"errors"`
	Extensions struct {
		Executed struct {
			Query               string         `json:"query"`
			Variables           map[string]any `json:"variables"`
			CredentialsReceived *bool          `json:"credentialsReceived"`
		} `json:"executed"`
	} `json:"extensions"`
}

func (a pgAnswer) errorPaths() []string {
	var out []string
	for _, e := range a.Errors {
		var p []string
		for _, s := range e.Path {
			p = append(p, fmt.Sprint(s))
		}
		out = append(out, strings.Join(p, ".")+" "+e.Extensions["code"])
	}
	return out
}

// TestPlatformGraphFilterMode: GraphQL filter mode through a real Envoy
// (ext_proc on the GraphQL route only) with real Keycloak tokens, against
// the real Strawberry service of examples/platform-graph, which verifies
// gatehouse's assertion and echoes the query it executed.
func TestPlatformGraphFilterMode(t *testing.T) {
	python := platformGraphPython(t)
	kc := startIDP(t)
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(platformCatalog(t, appURL, "filter")), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
`, kc.issuer))
	app := startProc(t, "platform-graph", "env", "JWKS_URL=http://"+g.adminAddr+"/.well-known/jwks.json",
		"GATEHOUSE_ENTITY=component:default/platform", "PLATFORM_GRAPH_ECHO=1", "PLATFORM_GRAPH_PYTHON="+python,
		"bash", filepath.Join(repoRoot, "examples", "platform-graph", "run.sh"), fmt.Sprint(port))
	eventually(t, 30*time.Second, "platform-graph /platform/healthz", func() error {
		if app.Exited() {
			t.Fatalf("platform-graph exited: %v\n%s", app.Err(), app.Log())
		}
		return harness.HTTPOK(appURL + "/platform/healthz")
	})
	e := startEnvoy(t, g, "edge-platform-graph", false)
	alice := kc.userToken(t, "alice", "gatehouse-cli") // payments: owns platform
	bob := kc.userToken(t, "bob", "gatehouse-cli")     // storefront: may query, not the owners' fields

	post := func(t *testing.T, tok, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/platform/graphql", e.edgePort), bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gw.example.com"
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	answer := func(t *testing.T, tok, body string) pgAnswer {
		t.Helper()
		code, b := post(t, tok, body)
		var a pgAnswer
		if code != 200 || json.Unmarshal([]byte(b), &a) != nil {
			t.Fatalf("%d %s", code, b)
		}
		return a
	}
	eventually(t, 10*time.Second, "the GraphQL route through Envoy", func() error {
		if code, body := post(t, alice, `{"query":"{ viewer { ref } }"}`); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	secretsQuery := `query Sec($n: String!) { c: component(name: $n) { name owner deploySecretRefs ...Acct } all: components { name ... on Component { cloudAccountId } } viewer { ref } } fragment Acct on Component { cloudAccountId }`
	secrets, _ := json.Marshal(map[string]any{"query": secretsQuery, "variables": map[string]string{"n": "orders"}})

	t.Run("the owner gets everything; the service verified her", func(t *testing.T) {
		a := answer(t, alice, string(secrets))
		c, _ := a.Data["c"].(map[string]any)
		if len(a.Errors) != 0 || c["cloudAccountId"] != "aws:123456789012" || c["deploySecretRefs"] == nil {
			t.Fatalf("%+v", a)
		}
		if v, _ := a.Data["viewer"].(map[string]any); v["ref"] != "user:default/alice" {
			t.Fatalf("viewer %v", a.Data["viewer"])
		}
		if !strings.Contains(a.Extensions.Executed.Query, "deploySecretRefs") {
			t.Fatalf("the service ran %q", a.Extensions.Executed.Query)
		}
	})
	t.Run("a consumer: null and an error at each path (alias, fragment, inline fragment); the service never saw the fields", func(t *testing.T) {
		a := answer(t, bob, string(secrets))
		c, _ := a.Data["c"].(map[string]any)
		all, _ := a.Data["all"].([]any)
		if c == nil || c["name"] != "orders" || c["owner"] != "group:default/payments" || c["deploySecretRefs"] != nil || c["cloudAccountId"] != nil {
			t.Fatalf("c: %+v", a.Data)
		}
		if _, ok := c["deploySecretRefs"]; !ok {
			t.Fatalf("no null at c.deploySecretRefs: %+v", c)
		}
		if len(all) != 3 || all[0].(map[string]any)["name"] == nil || all[0].(map[string]any)["cloudAccountId"] != nil {
			t.Fatalf("all: %+v", all)
		}
		if v, _ := a.Data["viewer"].(map[string]any); v["ref"] != "user:default/bob" {
			t.Fatalf("viewer %v", a.Data["viewer"])
		}
		got := strings.Join(a.errorPaths(), ", ")
		want := "c.deploySecretRefs UNAUTHORIZED_FIELD_OR_TYPE, c.cloudAccountId UNAUTHORIZED_FIELD_OR_TYPE, all.cloudAccountId UNAUTHORIZED_FIELD_OR_TYPE"
		if got != want {
			t.Fatalf("errors %s\nwant %s", got, want)
		}
		ran := a.Extensions.Executed.Query
		if ran == "" || strings.Contains(ran, "deploySecretRefs") || strings.Contains(ran, "cloudAccountId") || strings.Contains(ran, "Acct") || !strings.Contains(ran, "owner") {
			t.Fatalf("the service ran %q", ran)
		}
		if a.Extensions.Executed.Variables["n"] != "orders" {
			t.Fatalf("variables %v", a.Extensions.Executed.Variables)
		}
		if c := a.Extensions.Executed.CredentialsReceived; c == nil || *c {
			t.Fatalf("bob's token reached the service: %v", c)
		}
		expectAudit(t, g, func(r map[string]any) bool {
			gq, _ := r["graphql"].(map[string]any)
			return r["principal"] == "user:default/bob" && r["decision"] == "allow" && r["source_address"] == "127.0.0.1" && gq != nil && gq["mode"] == "filter" &&
				strings.Contains(fmt.Sprint(gq["denied_fields"]), "Component.cloudAccountId")
		})
	})
	t.Run("every field forbidden: gatehouse answers, the service is not called", func(t *testing.T) {
		code, b := post(t, bob, `{"query":"{ accounts: cloudAccounts }"}`)
		var a pgAnswer
		if code != 200 || json.Unmarshal([]byte(b), &a) != nil || a.Data != nil || strings.Join(a.errorPaths(), ",") != "accounts UNAUTHORIZED_FIELD_OR_TYPE" {
			t.Fatalf("%d %s", code, b)
		}
		if a.Extensions.Executed.Query != "" {
			t.Fatalf("the service answered (it echoes every query it runs): %s", b)
		}
	})
	t.Run("a field left with nothing: the service runs a hidden __typename, the client never sees it", func(t *testing.T) {
		a := answer(t, bob, `{"query":"{ c: component(name: \"orders\") { cloudAccountId } }"}`)
		c, _ := a.Data["c"].(map[string]any)
		if _, ok := c["cloudAccountId"]; !ok || len(c) != 1 || strings.Join(a.errorPaths(), ",") != "c.cloudAccountId UNAUTHORIZED_FIELD_OR_TYPE" {
			t.Fatalf("%+v", a)
		}
		if ran := a.Extensions.Executed.Query; !strings.Contains(ran, "__typename") || strings.Contains(ran, "cloudAccountId") {
			t.Fatalf("the service ran %q", ran)
		}
	})
	t.Run("a batch: each operation filtered on its own", func(t *testing.T) {
		code, b := post(t, bob, `[{"query":"{ component(name: \"shop\") { name cloudAccountId } }"},{"query":"{ viewer { ref kind } }"}]`)
		var as []pgAnswer
		if code != 200 || json.Unmarshal([]byte(b), &as) != nil || len(as) != 2 {
			t.Fatalf("%d %s", code, b)
		}
		if c, _ := as[0].Data["component"].(map[string]any); c["name"] != "shop" || c["cloudAccountId"] != nil || len(as[0].Errors) != 1 ||
			strings.Contains(as[0].Extensions.Executed.Query, "cloudAccountId") {
			t.Fatalf("first: %s", b)
		}
		if v, _ := as[1].Data["viewer"].(map[string]any); v["ref"] != "user:default/bob" || len(as[1].Errors) != 0 {
			t.Fatalf("second: %s", b)
		}
	})
	t.Run("a GET: the document rewritten in the URL, the answer patched as for a POST", func(t *testing.T) {
		v := url.Values{}
		v.Set("query", `query Sec($n: String!) { c: component(name: $n) { name deploySecretRefs } me: viewer { ref } }`)
		v.Set("operationName", "Sec")
		v.Set("variables", `{"n":"orders"}`)
		req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/platform/graphql?%s", e.edgePort, v.Encode()), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gw.example.com"
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var a pgAnswer
		if resp.StatusCode != 200 || json.Unmarshal(b, &a) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		c, _ := a.Data["c"].(map[string]any)
		if c == nil || c["name"] != "orders" || c["deploySecretRefs"] != nil || strings.Join(a.errorPaths(), ",") != "c.deploySecretRefs UNAUTHORIZED_FIELD_OR_TYPE" {
			t.Fatalf("%s", b)
		}
		if _, ok := c["deploySecretRefs"]; !ok {
			t.Fatalf("no null at c.deploySecretRefs: %s", b)
		}
		if me, _ := a.Data["me"].(map[string]any); me["ref"] != "user:default/bob" {
			t.Fatalf("the other parts of the query: %s", b)
		}
		ran := a.Extensions.Executed.Query
		if ran == "" || strings.Contains(ran, "deploySecretRefs") || !strings.Contains(ran, "viewer") || a.Extensions.Executed.Variables["n"] != "orders" {
			t.Fatalf("the service ran %q with %v", ran, a.Extensions.Executed.Variables)
		}
	})
	t.Run("credentials never reach the service; no token is 401", func(t *testing.T) {
		if code, _ := post(t, "", `{"query":"{ viewer { ref } }"}`); code != 401 {
			t.Fatalf("no token: %d", code)
		}
		// The service answers only with a verified assertion: a direct call
		// with Bob's token (no assertion) is refused by the service itself.
		req, _ := http.NewRequest("POST", appURL+"/platform/graphql", strings.NewReader(`{"query":"{ viewer { ref } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("direct call without an assertion: %d", resp.StatusCode)
		}
	})
	t.Run("a body over the limit: 413 from Envoy", func(t *testing.T) {
		code, _ := post(t, bob, `{"query":"{ viewer { ref } }"`+strings.Repeat(" ", 300<<10)+`}`)
		if code != 413 {
			t.Fatalf("%d", code)
		}
	})
	t.Run("reject mode against the same service (catalog edit, no restart)", func(t *testing.T) {
		if err := os.WriteFile(cat, []byte(platformCatalog(t, appURL, "reject")), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 5*time.Second, "reject mode", func() error {
			code, b := post(t, bob, string(secrets))
			if code != 403 || !strings.Contains(b, `"path":["c","deploySecretRefs"]`) || !strings.Contains(b, "UNAUTHORIZED_FIELD_OR_TYPE") {
				return fmt.Errorf("%d %s", code, b)
			}
			return nil
		})
		t.Logf("filter -> reject applied in %s", took)
		if a := answer(t, alice, string(secrets)); len(a.Errors) != 0 {
			t.Fatalf("the owner in reject mode: %+v", a)
		}
	})
}

// TestPlatformGraphSDLMatchesCatalog: the schema the Strawberry service
// serves and the one its API entity publishes in the catalog (which
// gatehouse enforces) are the same schema, directives included.
func TestPlatformGraphSDLMatchesCatalog(t *testing.T) {
	python := platformGraphPython(t)
	out, err := exec.Command(python, filepath.Join(repoRoot, "examples", "platform-graph", "app.py"), "--sdl").Output()
	if err != nil {
		t.Fatalf("app.py --sdl: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "catalog", "systems", "platform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var catalogSDL string
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct{ Name string }
			Spec     struct {
				Definition string `yaml:"definition"`
			}
		}
		if dec.Decode(&doc) != nil {
			break
		}
		if doc.Kind == "API" && doc.Metadata.Name == "platform-graph" {
			catalogSDL = doc.Spec.Definition
		}
	}
	norm := func(name, sdl string) string {
		s, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: sdl})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var w strings.Builder
		formatter.NewFormatter(&w).FormatSchema(s)
		return w.String()
	}
	if catalogSDL == "" {
		t.Fatal("no API platform-graph with a definition in examples/catalog/systems/platform.yaml")
	}
	if a, c := norm("app.py --sdl", string(out)), norm("catalog", catalogSDL); a != c {
		t.Fatalf("the service's schema and the catalog's differ; paste `python app.py --sdl` into the API's definition\nservice:\n%s\ncatalog:\n%s", a, c)
	}
}
