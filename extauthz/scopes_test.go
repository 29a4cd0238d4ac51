package extauthz

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The scope claims: `scope` a space-separated string, `scp` a string or
// an array, both read, sorted and unique; only a space separates scopes;
// any other type makes the token malformed (never guessed).
func TestScopesClaim(t *testing.T) {
	for _, tc := range []struct {
		name       string
		scope, scp string // raw JSON, "" absent
		want       []string
		malformed  bool
	}{
		{"absent", "", "", nil, false},
		{"null", `null`, `null`, nil, false},
		{"scope string", `"openid profile orders:read"`, "", []string{"openid", "orders:read", "profile"}, false},
		{"extra spaces", `"  a   b "`, "", []string{"a", "b"}, false},
		{"empty string", `""`, "", nil, false},
		{"scp array", "", `["b","a","a"]`, []string{"a", "b"}, false},
		{"scp string", "", `"x y"`, []string{"x", "y"}, false},
		{"both, merged", `"a c"`, `["b","a"]`, []string{"a", "b", "c"}, false},
		{"escaped string", `"a\u0020b"`, "", []string{"a", "b"}, false},
		{"a tab does not separate", `"a\tb"`, "", []string{"a\tb"}, false},
		{"an array element is one scope", "", `["a b"]`, []string{"a b"}, false},
		{"scope array (some IdPs)", `["a","b"]`, "", []string{"a", "b"}, false},
		{"number", `1`, "", nil, true},
		{"object", "", `{"a":"b"}`, nil, true},
		{"array of numbers", "", `[1,2]`, nil, true},
		{"bool", `true`, "", nil, true},
		{"nested array", "", `[["a"]]`, nil, true},
		{"too many", `"` + strings.TrimSpace(strings.Repeat("s ", 1)) + manyScopes(65) + `"`, "", nil, true},
	} {
		var ms members
		if tc.scope != "" {
			ms = append(ms, member{name: []byte("scope"), value: []byte(tc.scope)})
		}
		if tc.scp != "" {
			ms = append(ms, member{name: []byte("scp"), value: []byte(tc.scp)})
		}
		got, err := scopesClaim(ms)
		if (err != nil) != tc.malformed || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v", tc.name, got, err)
		}
	}
}

func manyScopes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" s")
		b.WriteString(strings.Repeat("x", i+1))
	}
	return b.String()
}

// Through Verify: the token's scopes reach the Principal, a bad scope
// claim rejects the token, and a session or an explained ref has none.
func TestVerifyScopes(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, nil)
	id, err := v.Verify(context.Background(), k.sign(t, claimsFor(p.URL, withClaim("scope", "openid orders:read"), withClaim("scp", []string{"deploy"})), ""))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Scopes, []string{"deploy", "openid", "orders:read"}) {
		t.Fatalf("scopes = %q", id.Scopes)
	}
	e, _ := gqlEngine(t, "")
	if pr := e.PrincipalFor(id); !slices.Equal(pr.Scopes, id.Scopes) {
		t.Fatalf("principal scopes = %q", pr.Scopes)
	}
	if _, err := v.Verify(context.Background(), k.sign(t, claimsFor(p.URL, withClaim("scope", 7)), "")); reason(err) != "malformed" {
		t.Fatalf("scope 7: %v", err)
	}
	ss := Session{Issuer: p.URL, Subject: "user-123", Method: "oidc"}
	if id := ss.identity(nil); id.Scopes != nil {
		t.Fatalf("a session carries scopes: %q", id.Scopes)
	}
}

// The scopes are in the audit line and in explain's JSON (Principal).
func TestScopesInAuditAndExplain(t *testing.T) {
	rec := AuditRecord{}
	(&Subject{User: withScopes(gqlAlice, "b", "a")}).fill(&rec)
	line := appendRecord(nil, &rec)
	if !strings.Contains(string(line), `"scopes":["a","b"]`) {
		t.Fatalf("audit line: %s", line)
	}
	b, _ := json.Marshal(withScopes(gqlAlice, "orders:read"))
	if !strings.Contains(string(b), `"scopes":["orders:read"]`) {
		t.Fatalf("principal JSON: %s", b)
	}
}

// FuzzScopesClaim: never panics; the scopes are sorted, unique, never
// empty, never hold a space unless an array element did, and never more
// than maxScopes.
func FuzzScopesClaim(f *testing.F) {
	for _, s := range []string{`"a b"`, `["a","b"]`, `null`, `1`, `"a\u0020b"`, `[""]`, `"` + manyScopes(70) + `"`} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, scope, scp string) {
		var ms members
		for _, c := range [][2]string{{"scope", scope}, {"scp", scp}} {
			if c[1] != "" && json.Valid([]byte(c[1])) {
				ms = append(ms, member{name: []byte(c[0]), value: []byte(c[1])})
			}
		}
		got, err := scopesClaim(ms)
		if err != nil {
			if got != nil {
				t.Fatalf("scopes %q with error %v", got, err)
			}
			return
		}
		if len(got) > maxScopes || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("scopes %q", got)
		}
		for _, s := range got {
			if s == "" {
				t.Fatalf("an empty scope in %q", got)
			}
		}
	})
}

// explain --principal … --scope …: the scopes a token of the principal
// would grant decide @requiresScopes, as in Check.
func TestExplainScopes(t *testing.T) {
	e, m := gqlEngine(t, "")
	body := gqlBody(`{ component(name: "a") { deployKey } }`)
	for _, tc := range []struct {
		scopes []string
		allow  bool
	}{
		{nil, false},
		{[]string{"deploy:read"}, false},
		{[]string{"deploy:write", "deploy:read", "deploy:read"}, true},
		{[]string{"platform:admin"}, true},
	} {
		res, err := Explain(context.Background(), e, m, nil, ExplainRequest{Principal: "user:default/bob", Scopes: tc.scopes, Method: "POST", URL: "http://gw.example.com/platform/graphql", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision.Allow != tc.allow {
			t.Errorf("scopes %q: %+v", tc.scopes, res.Decision)
		}
		if tc.allow && !slices.IsSorted(res.Principal.Scopes) {
			t.Errorf("explained scopes %q", res.Principal.Scopes)
		}
	}
}
