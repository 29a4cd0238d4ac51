package extauthz

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

// gqlServer is a Check server on testcatalog.PlatformGraph (extra: more
// annotation lines on the API), its audit records on sink.
func gqlServer(t testing.TB, extra string) (*Server, *fakeVerifier, *model.Model, *auditSink) {
	t.Helper()
	return gqlServerSrc(t, gqlSource(extra))
}

// gqlServerSrc is gqlServer on the catalog src.
func gqlServerSrc(t testing.TB, src string) (*Server, *fakeVerifier, *model.Model, *auditSink) {
	t.Helper()
	_, m := gqlEngineSrc(t, src)
	exp := time.Now().Add(time.Hour)
	v := &fakeVerifier{ids: map[string]*Identity{
		"alice": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp},
		"bob":   {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp},
		"carol": {Subject: "c1", Email: "carol@example.com", EmailVerified: true, Expiry: exp},
		"shop":  {Subject: "svc-s", ClientID: "shop", Machine: true, Expiry: exp},
	}}
	signer, err := NewSigner(SignerConfig{Issuer: "gatehouse-test", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink := &auditSink{ch: make(chan AuditRecord, 1000)}
	audit := NewAudit(sink, 1000)
	t.Cleanup(audit.Close)
	srv := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute}, v, signer, audit, nil)
	srv.SetModel(m)
	return srv, v, m, sink
}

func gqlCheckReq(token, method, path, body string) *authv3.CheckRequest {
	h := map[string]string{model.RouteHeader: gqlRoute}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	req := checkReq("", method, path, h)
	req.Attributes.Request.Http.Body = body
	return req
}

func nextRecord(t *testing.T, sink *auditSink) AuditRecord {
	t.Helper()
	select {
	case r := <-sink.ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no audit record")
	}
	return AuditRecord{}
}

// A reject answer is GraphQL-shaped, names only the caller's own paths,
// and the audit keeps the operation, the document hash and the denied
// fields; the cache never answers one document with another's decision.
func TestGraphQLCheckRejectAnswerAuditAndCache(t *testing.T) {
	srv, v, _, sink := gqlServer(t, "")
	ctx := context.Background()
	q := `query Secrets { c: component(name: "a") { name s: deploySecrets } }`
	resp, _ := srv.Check(ctx, gqlCheckReq("bob", "POST", "/platform/graphql", gqlBody(q)))
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 403 {
		t.Fatalf("want 403, got %v", resp)
	}
	var body struct {
		Errors []struct {
			Message    string            `json:"message"`
			Path       []string          `json:"path"`
			Extensions map[string]string `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || len(body.Errors) != 1 ||
		body.Errors[0].Extensions["code"] != "UNAUTHORIZED_FIELD_OR_TYPE" || strings.Join(body.Errors[0].Path, ".") != "c.s" {
		t.Fatalf("body %s", d.GetBody())
	}
	if strings.Contains(d.GetBody(), "Component") || strings.Contains(d.GetBody(), "@policy") {
		t.Errorf("the answer names the schema or the rule: %s", d.GetBody())
	}
	rec := nextRecord(t, sink)
	g := rec.GraphQL
	if rec.Reason != "field_forbidden" || g == nil || g.OperationType != "query" || g.OperationName != "Secrets" || len(g.DocumentHash) != 32 ||
		len(g.Denied) != 1 || g.Denied[0].Field != "Component.deploySecrets" || g.Mode != "reject" ||
		strings.Join(g.FieldNames, ",") != "Query.component,Component.name,Component.deploySecrets" {
		t.Fatalf("audit %+v %+v", rec, g)
	}
	// The same token, another document: decided afresh (not the cached denial).
	calls := v.calls.Load()
	resp, _ = srv.Check(ctx, gqlCheckReq("bob", "POST", "/platform/graphql", gqlBody(`{ components { name } }`)))
	if resp.GetOkResponse() == nil {
		t.Fatalf("an open document was answered with another's denial: %v", resp.GetDeniedResponse())
	}
	if nextRecord(t, sink).Cached {
		t.Error("a different document hit the cache")
	}
	// The same document again: cached, and the audit still has its operation.
	resp, _ = srv.Check(ctx, gqlCheckReq("bob", "POST", "/platform/graphql", gqlBody(q)))
	rec = nextRecord(t, sink)
	if resp.GetDeniedResponse() == nil || !rec.Cached || rec.GraphQL == nil || len(rec.GraphQL.Denied) != 1 {
		t.Fatalf("cached: %+v", rec)
	}
	if v.calls.Load() != calls+1 {
		t.Errorf("verifier calls %d, want %d", v.calls.Load(), calls+1)
	}
	// A GET's document is in the URL: two queries, two decisions.
	for _, c := range []struct {
		q    string
		want bool
	}{{`{ components { name } }`, true}, {`{ audit }`, false}} {
		resp, _ = srv.Check(ctx, gqlCheckReq("bob", "GET", "/platform/graphql?query="+url.QueryEscape(c.q), ""))
		if (resp.GetOkResponse() != nil) != c.want {
			t.Errorf("GET %s: allowed=%v", c.q, !c.want)
		}
		nextRecord(t, sink)
	}
	// A limit: 400 with a GraphQL error code, audited.
	resp, _ = srv.Check(ctx, gqlCheckReq("alice", "POST", "/platform/graphql", gqlBody(depthNest(30))))
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 400 || !strings.Contains(d.GetBody(), gqlLimitExceeded) {
		t.Fatalf("depth bomb: %v", resp)
	}
	if rec := nextRecord(t, sink); rec.Status != 400 || rec.Reason != "graphql_limit" {
		t.Fatalf("depth bomb audit: %+v", rec)
	}
	// No token: 401 before the body is read.
	resp, _ = srv.Check(ctx, gqlCheckReq("", "POST", "/platform/graphql", "not graphql"))
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 401 {
		t.Fatalf("no token: %v", resp)
	}
	nextRecord(t, sink)
}

// dry-run: a forbidden field does not block, and the audit says what
// reject mode would have done; the route's own rules still decide.
func TestGraphQLDryRun(t *testing.T) {
	srv, _, _, sink := gqlServer(t, "    gatehouse.dev/graphql-options: 'mode: dry-run'\n")
	ctx := context.Background()
	resp, _ := srv.Check(ctx, gqlCheckReq("bob", "POST", "/platform/graphql", gqlBody(`{ component(name: "a") { deploySecrets } }`)))
	rec := nextRecord(t, sink)
	if resp.GetOkResponse() == nil || rec.GraphQL == nil || !rec.GraphQL.WouldDeny || rec.GraphQL.Mode != "dry-run" || len(rec.GraphQL.Denied) != 1 {
		t.Fatalf("dry-run: %v %+v", resp.GetDeniedResponse(), rec.GraphQL)
	}
	// Allowed fields: no would_deny.
	_, _ = srv.Check(ctx, gqlCheckReq("bob", "POST", "/platform/graphql", gqlBody(`{ components { name } }`)))
	if rec := nextRecord(t, sink); rec.GraphQL.WouldDeny {
		t.Fatalf("would_deny on an open document: %+v", rec.GraphQL)
	}
}

// Check and explain agree on GraphQL requests (the same request, Subject
// and Evaluate), including the body limit Envoy enforces before Check.
func TestGraphQLCheckAndExplainAgree(t *testing.T) {
	srv, v, m, sink := gqlServer(t, "")
	client := grpcCheckClient(t, srv)
	docs := []string{
		`{ components { name } }`,
		`{ component(name: "a") { deploySecrets } }`,
		`{ component(name: "a") { cloudAccount { accountId } } }`,
		`{ node(id: "1") { ... on Team { internalNotes } } }`,
		`{ node(id: "1") { internalNotes } }`,
		`mutation { deploy(name: "a") }`,
		`{ audit }`,
		`{ __schema { types { name } } }`,
		`{ components { nope } }`,
		depthNest(30),
	}
	for _, tok := range []string{"alice", "bob", "carol", "shop", ""} {
		for _, doc := range docs {
			req := gqlCheckReq(tok, "POST", "/platform/graphql", gqlBody(doc))
			resp, err := client.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			status := 200
			if d := resp.GetDeniedResponse(); d != nil {
				status = int(d.GetStatus().GetCode())
			}
			rec := nextRecord(t, sink)
			res, err := Explain(context.Background(), srv.Engine(), m, v, ExplainRequest{Token: tok, Method: "POST", URL: "http://gw/platform/graphql", Body: gqlBody(doc)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Decision.Status != status || res.Decision.Reason != rec.Reason {
				t.Errorf("%s %s: Check %d %s, explain %d %s", tok, doc, status, rec.Reason, res.Decision.Status, res.Decision.Reason)
			}
		}
	}
	res, err := Explain(context.Background(), srv.Engine(), m, v, ExplainRequest{Token: "alice", Method: "POST", URL: "http://gw/platform/graphql", Body: strings.Repeat(" ", model.DefaultGraphQLBodyBytes+1)})
	if err != nil || res.Decision.Status != 413 {
		t.Fatalf("over the body limit: %+v %v", res.Decision, err)
	}
}

// FuzzGraphQLInspector: whatever the body, the inspector never panics,
// and a request it lets through never gets a principal a field its rule
// forbids: every field of an accepted document is one of its operations,
// and bob (not an owner) is never allowed Component.deploySecrets.
func FuzzGraphQLInspector(f *testing.F) {
	e, _ := gqlEngine(f, "")
	for _, s := range []string{
		gqlBody(`{ component(name: "a") { deploySecrets } }`),
		gqlBody(`{ a: component(name: "a") { ...F } } fragment F on Component { s: deploySecrets }`),
		gqlBody(`{ node(id: "1") { ... on Component { deploySecrets } } }`),
		"[" + gqlBody(`{ components { name } }`) + "," + gqlBody(`{ components { deploySecrets } }`) + "]",
		`{"query":"query($x: Boolean!) { components { deploySecrets @skip(if: $x) } }","variables":{"x":true}}`,
		`query { components { deploySecrets } }`,
		`{"query":"{ viewer }","Query":"{ audit }"}`,
		`{"query":"{ viewer }","query":"{ components { deploySecrets } }"}`,
		`[{"query":"{ viewer }"}, 7]`,
		"{\"query\":\"{ components { name } }\"}\x00",
		"",
	} {
		f.Add("POST", s)
	}
	f.Add("GET", "")
	f.Fuzz(func(t *testing.T, method, body string) {
		path := "/platform/graphql"
		if method == "GET" {
			path += "?query=" + url.QueryEscape(body)
		}
		req, denied := e.request(gqlRoute, method, path, "gw")
		if denied != nil {
			return
		}
		req.Body = []byte(body)
		ops, _, deny := inspectGraphQL(&req)
		if deny != nil {
			if deny.Allow || deny.Status < 400 {
				t.Fatalf("a refusal that allows: %+v", deny)
			}
			return
		}
		res := e.Evaluate(&req, &Subject{User: gqlBob}, false)
		for _, op := range ops {
			if op.Name == "Component.deploySecrets" && res.Allow {
				t.Fatalf("bob allowed deploySecrets: %q", body)
			}
		}
		if res.Allow && strings.Contains(body, "deploySecrets") {
			// Accepted and allowed while the body mentions the field: it
			// must be only in a string or a comment, never selected.
			for _, op := range ops {
				if strings.HasSuffix(op.Name, ".deploySecrets") {
					t.Fatalf("allowed a forbidden field: %q", body)
				}
			}
		}
	})
}

// Concurrent Checks share the remembered documents and requests (run
// with -race): every answer is still its own document's.
func TestGraphQLConcurrentChecks(t *testing.T) {
	srv, _, _, sink := gqlServer(t, "")
	go func() {
		for range sink.ch {
		}
	}()
	docs := map[string]bool{`{ components { name } }`: true, `{ component(name: "a") { deploySecrets } }`: false, `{ audit }`: false, `{ viewer }`: true}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				for doc, want := range docs {
					body := gqlBody(doc)
					if i%2 == 0 {
						body = gqlBody(doc + " # " + strconv.Itoa(w*1000+i)) // a new document
					}
					resp, _ := srv.Check(context.Background(), gqlCheckReq("bob", "POST", "/platform/graphql", body))
					if (resp.GetOkResponse() != nil) != want {
						t.Errorf("%s: allowed=%v", doc, !want)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
}

// The assertion names the GraphQL operation that was decided (type, name,
// and how many a batch holds), and two operations of one caller never
// share an assertion.
func TestGraphQLAssertionNamesTheOperation(t *testing.T) {
	srv, _, _, _ := gqlServer(t, "")
	op := func(t *testing.T, body string) map[string]any {
		t.Helper()
		resp, _ := srv.Check(context.Background(), gqlCheckReq("alice", "POST", "/platform/graphql", body))
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("want allowed, got %v", resp)
		}
		claims := verifyAssertion(t, srv.signer, headerMap(ok.GetHeaders())[model.AssertionHeader])
		o, _ := claims["gh_op"].(map[string]any)
		if o == nil {
			t.Fatalf("no gh_op in %v", claims)
		}
		return o
	}
	if o := op(t, gqlBody(`query Secrets { c: component(name: "a") { name s: deploySecrets } }`)); o["type"] != "query" || o["name"] != "Secrets" || o["count"] != nil {
		t.Fatalf("gh_op %v", o)
	}
	if o := op(t, gqlBody(`query Names { component(name: "a") { name } }`)); o["name"] != "Names" {
		t.Fatalf("another operation, gh_op %v", o)
	}
	batch := "[" + gqlBody(`query A { component(name: "a") { name } }`) + "," + gqlBody(`query B { component(name: "a") { name } }`) + "]"
	if o := op(t, batch); o["name"] != "A" || o["count"] != float64(2) {
		t.Fatalf("batch gh_op %v", o)
	}
}

// An operation type in gatehouse.dev/graphql-access guards every root
// field of it, and a named rule of gatehouse.dev/graphql-policies decides
// where @policy names it: a consumer is refused a mutation by
// `mutation: [owners]` (a mutation field with no rule of its own) and
// still reads queries; the owner runs the mutation; only the named rule's
// members read its field.
func TestGraphQLCheckOperationTypesAndNamedRules(t *testing.T) {
	// restart has no rule of its own; releases names a rule.
	src := strings.Replace(testcatalog.PlatformGraph, "    type Mutation {\n", "    type Mutation {\n      restart(name: String!): Boolean\n", 1)
	src = strings.Replace(src, "    type Query {\n", "    type Query {\n      releases: [String!]! @policy(policies: [[\"release-managers\"]])\n", 1)
	access := "    gatehouse.dev/graphql-access: |\n      Team.budget: [owners, consumers]\n"
	annotations := func(policies, access string) string {
		return strings.Replace(src, "    gatehouse.dev/graphql-access: |\n      Team.budget: [owners, consumers]\n", policies+access, 1)
	}
	policies := "    gatehouse.dev/graphql-policies: |\n      release-managers: [group:default/sre, user:default/bob]\n"
	restart := gqlBody(`mutation Restart { restart(name: "a") }`)
	check := func(t *testing.T, srv *Server, sink *auditSink, who, body string) (bool, AuditRecord) {
		t.Helper()
		resp, _ := srv.Check(context.Background(), gqlCheckReq(who, "POST", "/platform/graphql", body))
		rec := nextRecord(t, sink)
		if d := resp.GetDeniedResponse(); d != nil {
			if d.GetStatus().GetCode() != 403 || !strings.Contains(d.GetBody(), "UNAUTHORIZED_FIELD_OR_TYPE") {
				t.Fatalf("%s: denied with %d %s", who, d.GetStatus().GetCode(), d.GetBody())
			}
			return false, rec
		}
		return resp.GetOkResponse() != nil, rec
	}

	// Without the operation type, the consumer may run restart: the key
	// is what refuses it below.
	srv, _, _, sink := gqlServerSrc(t, annotations(policies, access))
	if ok, rec := check(t, srv, sink, "shop", restart); !ok {
		t.Fatalf("without mutation: [owners], the consumer is refused: %+v", rec)
	}

	srv, _, _, sink = gqlServerSrc(t, annotations(policies, access+"      mutation: [owners]\n"))
	ok, rec := check(t, srv, sink, "shop", restart)
	if ok || rec.GraphQL == nil || len(rec.GraphQL.Denied) != 1 || rec.GraphQL.Denied[0].Field != "Mutation.restart" ||
		rec.GraphQL.Denied[0].Rule != "gatehouse.dev/graphql-access mutation" || rec.GraphQL.OperationType != "mutation" {
		t.Fatalf("consumer's mutation: allowed=%v %+v", ok, rec.GraphQL)
	}
	if ok, rec := check(t, srv, sink, "shop", gqlBody(`query { components { name } }`)); !ok {
		t.Fatalf("consumer's query refused: %+v", rec.GraphQL)
	}
	if ok, rec := check(t, srv, sink, "alice", restart); !ok {
		t.Fatalf("owner's mutation refused: %+v", rec.GraphQL)
	}
	for _, c := range []struct {
		who  string
		want bool
	}{{"carol", true}, {"bob", true}, {"alice", false}, {"shop", false}} {
		ok, rec := check(t, srv, sink, c.who, gqlBody(`{ releases }`))
		if ok != c.want {
			t.Errorf("%s reading releases: allowed=%v, want %v (%+v)", c.who, ok, c.want, rec.GraphQL)
		}
		if !ok && (len(rec.GraphQL.Denied) != 1 || !strings.Contains(rec.GraphQL.Denied[0].Rule, "release-managers")) {
			t.Errorf("%s: the audit does not name the rule: %+v", c.who, rec.GraphQL.Denied)
		}
	}
}
