package extauthz

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// apqBody is a POST body with the query (unless empty) and its
// persistedQuery extension (hash: the query's unless given).
func apqBody(query, hash string) string {
	if hash == "" {
		hash = persistedHash(query)
	}
	m := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	if query != "" {
		m["query"] = query
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func hashOnly(query string) string {
	m := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": persistedHash(query)}}}
	b, _ := json.Marshal(m)
	return string(b)
}

// answer is a Check's status, GraphQL error code and whether it allowed.
func answer(resp *authv3.CheckResponse) (int, string) {
	if resp.GetOkResponse() != nil {
		return 200, ""
	}
	d := resp.GetDeniedResponse()
	var body struct {
		Errors []struct {
			Message    string            `json:"message"`
			Extensions map[string]string `json:"extensions"`
		} `json:"errors"`
	}
	_ = json.Unmarshal([]byte(d.GetBody()), &body)
	code := "?"
	if len(body.Errors) == 1 {
		code = body.Errors[0].Extensions["code"]
	}
	return int(d.GetStatus().GetCode()), code
}

// APQ through Check: an unknown hash is answered as Apollo's clients
// expect (200, PERSISTED_QUERY_NOT_FOUND, never cached), the text with
// its hash is decided and remembered, the hash alone is then decided on
// the remembered document (for whoever sends it), a hash that is not the
// text's is 400, and the store outlives a model change.
func TestGraphQLAPQ(t *testing.T) {
	srv, _, _, sink := gqlServer(t, "")
	ctx := context.Background()
	check := func(tok, body string) (int, string) {
		t.Helper()
		resp, _ := srv.Check(ctx, gqlCheckReq(tok, "POST", "/platform/graphql", body))
		nextRecord(t, sink)
		return answer(resp)
	}
	secret := `query S { component(name: "a") { deploySecrets } }`
	for i := 0; i < 2; i++ { // twice: a not-found is never cached
		if st, code := check("alice", hashOnly(secret)); st != 200 || code != gqlPQNotFound {
			t.Fatalf("unknown hash (%d): %d %s", i, st, code)
		}
	}
	resp, _ := srv.Check(ctx, gqlCheckReq("alice", "POST", "/platform/graphql", hashOnly(secret)))
	if d := resp.GetDeniedResponse(); d == nil || strings.TrimSpace(d.GetBody()) != `{"errors":[{"message":"PersistedQueryNotFound","extensions":{"code":"PERSISTED_QUERY_NOT_FOUND"}}]}` {
		t.Fatalf("not-found answer: %v", resp)
	}
	if rec := nextRecord(t, sink); rec.Reason != reasonPQNotFound || rec.Decision != "deny" {
		t.Fatalf("not-found audit: %+v", rec)
	}
	if st, _ := check("alice", apqBody(secret, "")); st != 200 {
		t.Fatalf("text and hash: %d", st)
	}
	if st, code := check("alice", hashOnly(secret)); st != 200 || code != "" {
		t.Fatalf("hash only after the text: %d %s", st, code)
	}
	// Decided on the remembered document, for anyone.
	if st, code := check("bob", hashOnly(secret)); st != 403 || code != gqlUnauthorized {
		t.Fatalf("bob's hash-only request for a forbidden field: %d %s", st, code)
	}
	if st, code := check("alice", apqBody(secret, persistedHash(`{ components { name } }`))); st != 400 || code != gqlBadRequest {
		t.Fatalf("a hash that is not the text's: %d %s", st, code)
	}
	// A refused document is not remembered.
	bad := `{ component(name: "a") { nope } }`
	check("alice", apqBody(bad, ""))
	if st, code := check("alice", hashOnly(bad)); code != gqlPQNotFound {
		t.Fatalf("an invalid document was remembered: %d %s", st, code)
	}
	// A new model keeps the store.
	_, m2 := gqlEngine(t, "    gatehouse.dev/graphql-options: |\n      maxDepth: 11\n")
	srv.SetModel(m2)
	if st, _ := check("alice", hashOnly(secret)); st != 200 {
		t.Fatalf("after a model change: %d", st)
	}
	// GET with the extension in the URL.
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + persistedHash(secret) + `"}}`
	resp, _ = srv.Check(ctx, gqlCheckReq("alice", "GET", "/platform/graphql?extensions="+url.QueryEscape(ext), ""))
	nextRecord(t, sink)
	if st, _ := answer(resp); st != 200 {
		t.Fatalf("GET hash only: %d", st)
	}
}

// The store is bounded (least recently used out) by persistedQueryCache.
func TestGraphQLAPQStoreBounded(t *testing.T) {
	srv, _, _, sink := gqlServer(t, "    gatehouse.dev/graphql-options: |\n      persistedQueryCache: 2\n")
	ctx := context.Background()
	check := func(body string) string {
		t.Helper()
		resp, _ := srv.Check(ctx, gqlCheckReq("alice", "POST", "/platform/graphql", body))
		nextRecord(t, sink)
		_, code := answer(resp)
		return code
	}
	docs := []string{`{ components { name } }`, `{ components { id } }`, `{ components { owner } }`}
	for _, d := range docs[:2] {
		check(apqBody(d, ""))
	}
	check(hashOnly(docs[0])) // docs[0] used: docs[1] is now the oldest
	check(apqBody(docs[2], ""))
	for i, want := range []string{"", gqlPQNotFound, ""} {
		if got := check(hashOnly(docs[i])); got != want {
			t.Errorf("doc %d: %q, want %q", i, got, want)
		}
	}
	s := newAPQStore(3)
	big := strings.Repeat("x", apqMaxBytes/2+1)
	s.put("a", big)
	s.put("b", big)
	if _, ok := s.get("a"); ok || s.len() != 1 {
		t.Errorf("the byte bound: %d documents", s.len())
	}
}

// Safelist mode: only the listed documents pass, by text or by hash
// (also an Apollo manifest's); anything else is 403 PERSISTED_QUERY_NOT_IN_LIST.
func TestGraphQLSafelist(t *testing.T) {
	listed := `{ components { name } }`
	manifest := `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + persistedHash(`query Own { components { id } }`) + `","name":"Own","type":"query","body":"query Own { components { id } }"}]}`
	for _, ann := range []string{
		"    gatehouse.dev/graphql-safelist: |\n      - " + quoteJSON(listed) + "\n",
		"    gatehouse.dev/graphql-safelist: " + quoteJSON(manifest) + "\n",
	} {
		srv, _, _, sink := gqlServer(t, "    gatehouse.dev/graphql-options: |\n      persistedQueries: safelist\n"+ann)
		check := func(method, path, body string) (int, string) {
			t.Helper()
			resp, _ := srv.Check(context.Background(), gqlCheckReq("bob", method, path, body))
			nextRecord(t, sink)
			return answer(resp)
		}
		doc := listed
		if strings.Contains(ann, "manifest") {
			doc = `query Own { components { id } }`
		}
		for _, c := range []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"listed text", "POST", "/platform/graphql", gqlBody(doc), 200, ""},
			{"listed text with its hash", "POST", "/platform/graphql", apqBody(doc, ""), 200, ""},
			{"listed hash only", "POST", "/platform/graphql", hashOnly(doc), 200, ""},
			{"listed text in a GET", "GET", "/platform/graphql?query=" + url.QueryEscape(doc), "", 200, ""},
			{"the same document spaced otherwise", "POST", "/platform/graphql", gqlBody(doc + " "), 403, gqlPQNotInList},
			{"unlisted open document", "POST", "/platform/graphql", gqlBody(`{ components { owner } }`), 403, gqlPQNotInList},
			{"unlisted hash only", "POST", "/platform/graphql", hashOnly(`{ components { owner } }`), 403, gqlPQNotInList},
			{"a batch with one unlisted", "POST", "/platform/graphql", "[" + gqlBody(doc) + "," + gqlBody(`{ viewer }`) + "]", 403, gqlPQNotInList},
			{"listed hash, other text", "POST", "/platform/graphql", apqBody(`{ viewer }`, persistedHash(doc)), 400, gqlBadRequest},
		} {
			if st, code := check(c.method, c.path, c.body); st != c.status || code != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, st, code, c.status, c.code)
			}
		}
	}
}

// persistedQueries: off refuses hash-only requests as before.
func TestGraphQLPersistedOff(t *testing.T) {
	srv, _, _, sink := gqlServer(t, "    gatehouse.dev/graphql-options: |\n      persistedQueries: off\n")
	q := `{ components { name } }`
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{{hashOnly(q), 400, gqlPersistedQuery}, {apqBody(q, ""), 200, ""}} {
		resp, _ := srv.Check(context.Background(), gqlCheckReq("bob", "POST", "/platform/graphql", c.body))
		nextRecord(t, sink)
		if st, code := answer(resp); st != c.status || code != c.code {
			t.Errorf("%s: %d %s", c.body, st, code)
		}
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Hostile extensions: a key twice or in another case (a server could read
// the other copy), a wrong version, a hash that is not lower-case hex,
// types that are not what APQ sends. Each is 400, never a guess.
func TestGraphQLPersistedHostile(t *testing.T) {
	e, _ := gqlEngine(t, "")
	h := persistedHash(`{ viewer }`)
	for _, body := range []string{
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + h + `"},"persistedQuery":{"version":1,"sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + h + `"},"PersistedQuery":{"version":1,"sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedquery":{"version":1,"sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + h + `","sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":2,"sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":"1","sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"sha256Hash":"` + h + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + strings.ToUpper(h) + `"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + h + `0"}}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":7}}}`,
		`{"extensions":{"persistedQuery":{"version":1}}}`,
		`{"extensions":{"persistedQuery":null}}`,
		`{"extensions":{"persistedQuery":[1]}}`,
		`{"extensions":[{"persistedQuery":{}}]}`,
		`{"extensions":"persistedQuery"}`,
		`[` + apqBody(`{ viewer }`, "") + `,{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"x"}}}]`,
	} {
		res := gqlEval(t, e, gqlAlice, "POST", "/platform/graphql", body)
		if res.Status != 400 || res.GraphQL == nil || len(res.GraphQL.Errors) != 1 || res.GraphQL.Errors[0].Extensions["code"] != gqlBadRequest {
			t.Errorf("%s: %d %s %+v", body, res.Status, res.Reason, res.GraphQL)
		}
	}
	// Other extensions are the server's.
	if res := gqlEval(t, e, gqlAlice, "POST", "/platform/graphql", `{"query":"{ viewer }","extensions":{"tracing":true,"persistedquer":1}}`); !res.Allow {
		t.Errorf("other extensions: %+v", res)
	}
}

// FuzzGraphQLPersisted: whatever the body, a request the inspector lets
// through names, for each hash it was given, the document of that hash:
// a hash-only request is never decided on another document, and a
// remembered document is always its hash's.
func FuzzGraphQLPersisted(f *testing.F) {
	e, _ := gqlEngine(f, "")
	rp := e.routes[gqlRoute]
	for _, s := range []string{apqBody(`{ viewer }`, ""), hashOnly(`{ audit }`), `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + persistedHash("{ viewer }") + `"}},"query":"{ audit }"}`, `[` + apqBody(`{ viewer }`, "") + `]`} {
		f.Add(s)
	}
	rp.gql.apq.put(persistedHash(`{ viewer }`), `{ viewer }`)
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := e.request(gqlRoute, "POST", "/platform/graphql", "gw")
		req.Body = []byte(body)
		r := rp.gql.inspect(&req)
		for _, d := range r.remember {
			if persistedHash(d.Document) != d.Hash {
				t.Fatalf("remembered %q under %s", d.Document, d.Hash)
			}
		}
		if r.deny == nil {
			for _, op := range r.ops {
				if op.Name == "Query.audit" && !strings.Contains(body, "audit") {
					t.Fatalf("decided a document the body does not hold: %s", body)
				}
			}
		}
		if r.deny != nil && r.deny.Reason == reasonPQNotFound && !r.volatile {
			t.Fatal("a not-found is remembered")
		}
	})
}
