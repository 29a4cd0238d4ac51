package extauthz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

// The agents catalog's routes (ordersRoute, ledgerRoute: engine_test.go).
const apiRoute = ordersAPI

// agentWorld is a Check server on the agents catalog with an exchange
// endpoint, and a fake IdP's tokens.
type agentWorld struct {
	srv    *Server
	signer *Signer
	d      *Delegation
	ex     *Exchanger
	v      *fakeIdP
	audit  *lockedBuffer
}

func newAgentWorld(t testing.TB) *agentWorld {
	t.Helper()
	buf := &lockedBuffer{}
	w := newAgentWorldAudit(t, NewAudit(buf, 100))
	w.audit = buf
	return w
}

// newAgentWorldAudit is newAgentWorld writing its audit to a.
func newAgentWorldAudit(t testing.TB, a *Audit) *agentWorld {
	t.Helper()
	exp := time.Now().Add(time.Hour)
	idp := "https://idp"
	v := &fakeIdP{fakeVerifier{ids: map[string]*Identity{
		"alice":   {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Issuer: idp},
		"bob":     {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp, Issuer: idp},
		"nobody":  {Subject: "n1", Email: "nobody@example.com", EmailVerified: true, Expiry: exp, Issuer: idp},
		"alice-s": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: time.Now().Add(90 * time.Second), Issuer: idp, Scopes: []string{"orders:read", "profile"}},
		"copilot": {Subject: "sa-copilot", ClientID: "copilot", Machine: true, Expiry: exp, Issuer: idp},
		"writer":  {Subject: "sa-writer", ClientID: "writer", Machine: true, Expiry: exp, Issuer: idp},
		"shop":    {Subject: "sa-shop", ClientID: "shop", Machine: true, Expiry: exp, Issuer: idp},
		// A user signing in at the agent's client is not the agent.
		"copilot-user": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, ClientID: "copilot", Expiry: exp, Issuer: idp},
		// An IdP's own delegated token: alice, acted for by copilot,
		// who was called by an earlier agent.
		"idp-delegated": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Issuer: idp,
			Actor: &Actor{Subject: "sa-copilot", ClientID: "copilot", Earlier: []string{"planner"}}},
		"idp-delegated-unknown": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Issuer: idp,
			Actor: &Actor{Subject: "sa-x", ClientID: "stranger"}},
	}}}
	signer, err := NewSigner(SignerConfig{Issuer: "gatehouse-assertions", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDelegation("https://gatehouse.example/exchange", 5*time.Minute, signer)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute, Delegation: d}, v, signer, a, quiet)
	srv.SetModel(testcatalog.MustFiles(t, "testdata/agents-catalog.yaml"))
	return &agentWorld{srv: srv, signer: signer, d: d, ex: NewExchanger(srv, d, quiet), v: v}
}

// exchange posts a form to the endpoint and returns the status and the
// decoded JSON answer.
func (w *agentWorld) exchange(t testing.TB, form url.Values) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("POST", ExchangePath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	w.ex.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("a token answer must not be cached")
	}
	return rec.Code, out
}

// fakeIdP is fakeVerifier answering as a Verifier does for a token of
// an issuer it does not know (gatehouse's own tokens, then, are tried).
type fakeIdP struct{ fakeVerifier }

func (f *fakeIdP) Verify(ctx context.Context, raw string) (*Identity, error) {
	if _, ok := f.ids[raw]; !ok && strings.Count(raw, ".") == 2 {
		return nil, &TokenError{Reason: "unknown_issuer", Detail: "test"}
	}
	return f.fakeVerifier.Verify(ctx, raw)
}

func exchangeForm(subject, actor, resource string) url.Values {
	return url.Values{
		"grant_type": {GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {TokenTypeAccessToken},
		"actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken}, "resource": {resource},
	}
}

// issued exchanges subject for actor on resource and fails unless a token
// comes back.
func (w *agentWorld) issued(t testing.TB, subject, actor, resource string) string {
	t.Helper()
	code, out := w.exchange(t, exchangeForm(subject, actor, resource))
	if code != 200 {
		t.Fatalf("exchange %s/%s for %s: %d %v", subject, actor, resource, code, out)
	}
	return out["access_token"].(string)
}

func claimsOf(t testing.TB, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var h, c map[string]any
	_ = json.Unmarshal(hb, &h)
	_ = json.Unmarshal(pb, &c)
	return h, c
}

func TestExchangeIssuesDelegatedToken(t *testing.T) {
	w := newAgentWorld(t)
	code, out := w.exchange(t, exchangeForm("alice", "copilot", "component:default/orders"))
	if code != 200 {
		t.Fatalf("exchange: %d %v", code, out)
	}
	if out["issued_token_type"] != TokenTypeAccessToken || out["token_type"] != "Bearer" {
		t.Fatalf("answer %v", out)
	}
	if e := out["expires_in"].(float64); e <= 0 || e > 300 {
		t.Fatalf("expires_in %v: must be at most 5 minutes", e)
	}
	tok := out["access_token"].(string)
	h, c := claimsOf(t, tok)
	if h["typ"] != DelegatedTokenType || h["alg"] != "ES256" {
		t.Fatalf("header %v", h)
	}
	act, _ := c["act"].(map[string]any)
	if c["sub"] != "user:default/alice" || c["aud"] != "component:default/orders" || act["sub"] != "component:default/copilot" ||
		c["iss"] != "https://gatehouse.example/exchange" || c["client_id"] != "copilot" || c["jti"] == "" {
		t.Fatalf("claims %v", c)
	}
	// Verifiable with the published JWKS, like an assertion, but not one.
	verifyAssertion(t, w.signer, tok)
	if c["iss"] == "gatehouse-assertions" {
		t.Fatal("a delegated token must not carry the assertions' issuer")
	}
	// Never outlives the person's token.
	_, short := w.exchange(t, exchangeForm("alice-s", "copilot", "component:default/orders"))
	if e := short["expires_in"].(float64); e > 91 {
		t.Fatalf("expires_in %v outlives the subject token (90 s)", e)
	}
	// By URL: the route's API.
	_, c = claimsOf(t, w.issued(t, "alice", "copilot", "http://gw.example.com/orders/v1/items"))
	if c["aud"] != "api:default/orders-api" {
		t.Fatalf("aud by URL = %v", c["aud"])
	}
}

func TestExchangeScopeNarrows(t *testing.T) {
	w := newAgentWorld(t)
	f := exchangeForm("alice-s", "copilot", "component:default/orders")
	f.Set("scope", "orders:read")
	code, out := w.exchange(t, f)
	if code != 200 || out["scope"] != "orders:read" {
		t.Fatalf("narrowed scope: %d %v", code, out)
	}
	_, c := claimsOf(t, out["access_token"].(string))
	if c["scope"] != "orders:read" {
		t.Fatalf("token scope %v", c["scope"])
	}
	f.Set("scope", "orders:read orders:write")
	if code, out := w.exchange(t, f); code != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("a scope the person lacks: %d %v", code, out)
	}
	// A token without scopes grants none.
	f = exchangeForm("alice", "copilot", "component:default/orders")
	f.Set("scope", "admin")
	if code, out := w.exchange(t, f); code != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("a scope from nowhere: %d %v", code, out)
	}
	// Without a request: the person's scope.
	_, out = w.exchange(t, exchangeForm("alice-s", "copilot", "component:default/orders"))
	if out["scope"] != "orders:read profile" {
		t.Fatalf("default scope %v", out["scope"])
	}
}

// Every way an exchange must be refused, each with its RFC error code.
func TestExchangeRefusals(t *testing.T) {
	w := newAgentWorld(t)
	delegated := w.issued(t, "alice", "copilot", "component:default/orders")
	assertion, _, err := w.signer.Sign(Assertion{Subject: "user:default/alice", Audience: "component:default/orders", Kind: "user"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := delegated[:strings.LastIndexByte(delegated, '.')+1] + strings.Repeat("A", 86)
	cases := []struct {
		name             string
		subject, actor   string
		resource         string
		status           int
		code, descSubstr string
	}{
		{"forged actor", "alice", "forged-token", "component:default/orders", 401, "invalid_client", "actor_token"},
		{"actor not machine", "alice", "copilot-user", "component:default/orders", 401, "invalid_client", "not a client-credentials token"},
		{"actor not an agent", "alice", "shop", "component:default/orders", 401, "invalid_client", "not an AI agent"},
		{"actor is a person", "alice", "bob", "component:default/orders", 401, "invalid_client", "client-credentials"},
		{"actor delegated", "alice", delegated, "component:default/orders", 401, "invalid_client", "delegated"},
		{"actor idp-delegated", "alice", "idp-delegated", "component:default/orders", 401, "invalid_client", "delegated"},
		{"subject delegated (ours)", delegated, "copilot", "component:default/orders", 400, "invalid_grant", "already delegated"},
		{"subject delegated (IdP)", "idp-delegated", "copilot", "component:default/orders", 400, "invalid_grant", "already delegated"},
		{"subject forged", "forged", "copilot", "component:default/orders", 400, "invalid_grant", "subject_token"},
		{"subject is an assertion", assertion, "copilot", "component:default/orders", 400, "invalid_grant", "subject_token"},
		{"subject is a machine", "shop", "copilot", "component:default/orders", 400, "invalid_grant", "not a person"},
		{"subject unknown person", "nobody", "copilot", "component:default/orders", 400, "invalid_grant", "not a person"},
		{"agent may not reach", "alice", "copilot", "component:default/ledger", 400, "invalid_target", "may not call"},
		{"unknown entity", "alice", "copilot", "component:default/nothing", 400, "invalid_target", "not a routed"},
		{"user as resource", "alice", "copilot", "user:default/alice", 400, "invalid_target", "not a routed"},
		{"URL of nothing", "alice", "copilot", "http://gw.example.com/nowhere", 400, "invalid_target", "no protected route"},
		{"URL of a public path", "alice", "copilot", "http://gw.example.com/orders/healthz", 400, "invalid_target", "no protected route"},
		{"URL with a traversal", "alice", "copilot", "http://gw.example.com/orders/v1/%2e%2e/x", 400, "invalid_target", "path"},
		{"forged signature of ours", forged, "copilot", "component:default/orders", 400, "invalid_grant", "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := w.exchange(t, exchangeForm(c.subject, c.actor, c.resource))
			desc, _ := out["error_description"].(string)
			if code != c.status || out["error"] != c.code || !strings.Contains(desc, c.descSubstr) {
				t.Fatalf("got %d %v, want %d %s (%q)", code, out, c.status, c.code, c.descSubstr)
			}
			if _, leaked := out["access_token"]; leaked {
				t.Fatal("a refused exchange issued a token")
			}
		})
	}
}

// The HTTP request itself: method, query, content type, client
// authentication, size.
func TestExchangeHTTPShape(t *testing.T) {
	w := newAgentWorld(t)
	good := exchangeForm("alice", "copilot", "component:default/orders").Encode()
	cases := []struct {
		name, method, target, ctype, auth, body string
		status                                  int
		code                                    string
	}{
		{"GET", "GET", ExchangePath, "", "", "", 405, "invalid_request"},
		{"params in the URL", "POST", ExchangePath + "?" + good, "application/x-www-form-urlencoded", "", good, 400, "invalid_request"},
		{"JSON body", "POST", ExchangePath, "application/json", "", `{"grant_type":"x"}`, 400, "invalid_request"},
		{"no content type", "POST", ExchangePath, "", "", good, 400, "invalid_request"},
		{"basic client auth", "POST", ExchangePath, "application/x-www-form-urlencoded", "Basic Y29waWxvdDpzZWNyZXQ=", good, 401, "invalid_client"},
		{"over size", "POST", ExchangePath, "application/x-www-form-urlencoded", "", good + "&pad=" + strings.Repeat("a", maxExchangeBody), 400, "invalid_request"},
		{"ok with charset", "POST", ExchangePath, "application/x-www-form-urlencoded; charset=utf-8", "", good, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			w.ex.ServeHTTP(rec, req)
			var out map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &out)
			if rec.Code != c.status || (c.code != "" && out["error"] != c.code) {
				t.Fatalf("got %d %v, want %d %s", rec.Code, out, c.status, c.code)
			}
		})
	}
}

// Hostile exchange forms: each refused with the right code before any
// token is verified.
func TestParseExchangeFormHostile(t *testing.T) {
	base := exchangeForm("s", "a", "component:default/orders")
	with := func(mod func(url.Values)) string {
		f := url.Values{}
		for k, v := range base {
			f[k] = append([]string(nil), v...)
		}
		mod(f)
		return f.Encode()
	}
	cases := []struct {
		name, body, code string
	}{
		{"empty", "", "invalid_request"},
		{"bad escape", "grant_type=%zz", "invalid_request"},
		{"semicolon separator", strings.ReplaceAll(base.Encode(), "&", ";"), "invalid_request"},
		{"other grant", with(func(f url.Values) { f.Set("grant_type", "client_credentials") }), "unsupported_grant_type"},
		{"grant twice", with(func(f url.Values) { f.Add("grant_type", GrantTypeTokenExchange) }), "invalid_request"},
		{"subject twice", with(func(f url.Values) { f.Add("subject_token", "t") }), "invalid_request"},
		{"actor twice", with(func(f url.Values) { f.Add("actor_token", "t") }), "invalid_request"},
		{"no subject", with(func(f url.Values) { f.Del("subject_token") }), "invalid_request"},
		{"no actor", with(func(f url.Values) { f.Del("actor_token") }), "invalid_request"},
		{"no actor type", with(func(f url.Values) { f.Del("actor_token_type") }), "invalid_request"},
		{"saml subject", with(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }), "invalid_request"},
		{"refresh token actor", with(func(f url.Values) { f.Set("actor_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), "invalid_request"},
		{"id token requested", with(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:id_token") }), "invalid_request"},
		{"two resources", with(func(f url.Values) { f.Add("resource", "component:default/ledger") }), "invalid_target"},
		{"resource and other audience", with(func(f url.Values) { f.Set("audience", "component:default/ledger") }), "invalid_target"},
		{"no resource", with(func(f url.Values) { f.Del("resource") }), "invalid_target"},
		{"resource with space", with(func(f url.Values) { f.Set("resource", "component:default/orders x") }), "invalid_target"},
		{"resource with NUL", with(func(f url.Values) { f.Set("resource", "component:default/orders\x00") }), "invalid_target"},
		{"scope with quote", with(func(f url.Values) { f.Set("scope", `a"b`) }), "invalid_scope"},
		{"scope with backslash", with(func(f url.Values) { f.Set("scope", `a\b`) }), "invalid_scope"},
		{"scope non-ASCII", with(func(f url.Values) { f.Set("scope", "ordérs") }), "invalid_scope"},
		{"scope twice", with(func(f url.Values) { f.Set("scope", "x"); f.Add("scope", "y") }), "invalid_request"},
		{"huge token", with(func(f url.Values) { f.Set("subject_token", strings.Repeat("a", maxTokenBytes+1)) }), "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, oe := parseExchangeForm([]byte(c.body))
			if oe == nil || oe.Code != c.code {
				t.Fatalf("got %v, want %s", oe, c.code)
			}
		})
	}
	r, oe := parseExchangeForm([]byte(with(func(f url.Values) { f.Set("scope", " a  b a ") })))
	if oe != nil || len(r.Scope) != 2 || r.Scope[0] != "a" || r.Scope[1] != "b" {
		t.Fatalf("scopes %v %v", r.Scope, oe)
	}
	r, oe = parseExchangeForm([]byte(with(func(f url.Values) { f.Del("resource"); f.Set("audience", "component:default/orders") })))
	if oe != nil || r.Resource != "component:default/orders" {
		t.Fatalf("audience as resource: %v %v", r, oe)
	}
}

// FuzzParseExchangeForm: the parser never panics, and what it accepts
// holds its invariants and reads the same when encoded again.
func FuzzParseExchangeForm(f *testing.F) {
	f.Add(exchangeForm("s", "a", "component:default/orders").Encode())
	f.Add(exchangeForm("s", "a", "http://gw/orders/v1").Encode() + "&scope=a+b")
	f.Add("grant_type=" + url.QueryEscape(GrantTypeTokenExchange) + "&resource=x&resource=y")
	f.Add("a=%zz&b")
	f.Fuzz(func(t *testing.T, body string) {
		r, oe := parseExchangeForm([]byte(body))
		if oe != nil {
			if oe.Code == "" || (oe.status != 400 && oe.status != 401) {
				t.Fatalf("error without a code or status: %+v", oe)
			}
			return
		}
		if r.SubjectToken == "" || r.ActorToken == "" || r.Resource == "" || len(r.SubjectToken) > maxTokenBytes || len(r.ActorToken) > maxTokenBytes {
			t.Fatalf("accepted %+v", r)
		}
		if strings.ContainsAny(r.Resource, " \t\r\n\x00") {
			t.Fatalf("resource %q", r.Resource)
		}
		for _, s := range r.Scope {
			if !scopeToken(s) {
				t.Fatalf("scope %q", s)
			}
		}
		again := url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {r.SubjectToken}, "subject_token_type": {r.SubjectTokenType},
			"actor_token": {r.ActorToken}, "actor_token_type": {r.ActorTokenType}, "resource": {r.Resource}}
		if len(r.Scope) > 0 {
			again.Set("scope", strings.Join(r.Scope, " "))
		}
		if r.ClientID != "" {
			again.Set("client_id", r.ClientID)
		}
		r2, oe := parseExchangeForm([]byte(again.Encode()))
		if oe != nil || r2.SubjectToken != r.SubjectToken || r2.Resource != r.Resource || strings.Join(r2.Scope, " ") != strings.Join(r.Scope, " ") {
			t.Fatalf("re-encoded %+v reads %+v (%v)", r, r2, oe)
		}
	})
}

// A gatehouse assertion is never an access token, and a delegated token is
// refused on another audience.
func TestDelegatedTokenVerification(t *testing.T) {
	w := newAgentWorld(t)
	tok := w.issued(t, "alice", "copilot", "component:default/orders")
	id, err := w.srv.Verifier().Verify(context.Background(), tok)
	if err != nil || !id.Delegated || id.Actor == nil || id.Actor.Ref != "component:default/copilot" || id.Audience != "component:default/orders" {
		t.Fatalf("verify: %+v %v", id, err)
	}
	assertion, _, _ := w.signer.Sign(Assertion{Subject: "user:default/alice", Audience: "component:default/orders", Kind: "user"}, time.Now())
	if _, err := w.srv.Verifier().Verify(context.Background(), assertion); err == nil || !strings.Contains(err.Error(), "wrong_type") && !strings.Contains(err.Error(), "unknown_issuer") {
		t.Fatalf("an assertion verified as an access token: %v", err)
	}
	// Another gatehouse's key: unknown kid.
	other, _ := NewSigner(SignerConfig{Issuer: "gatehouse-assertions", Lifetime: 30 * time.Second, Rotate: time.Hour})
	od, _ := NewDelegation(w.d.issuer, time.Minute, other)
	foreign, _, err := od.issue(delegatedClaims{Subject: "user:default/alice", Audience: "component:default/orders", Act: Actor{Subject: "component:default/copilot"}}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.srv.Verifier().Verify(context.Background(), foreign); err == nil || !strings.Contains(err.Error(), "unknown_kid") {
		t.Fatalf("another gatehouse's token: %v", err)
	}
	// Expired.
	w.d.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	if _, err := w.srv.Verifier().Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	if _, err := NewDelegation("gatehouse-assertions", time.Minute, w.signer); err == nil {
		t.Fatal("the exchange may not share the assertions' issuer")
	}
	if _, err := NewDelegation("x", 6*time.Minute, w.signer); err == nil {
		t.Fatal("a lifetime over 5 minutes")
	}
}

// The decision: person ∩ agent ∩ agent limits, audience bound, through
// Check.
func TestDelegatedCheck(t *testing.T) {
	w := newAgentWorld(t)
	bearer := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }
	aliceCopilot := w.issued(t, "alice", "copilot", "component:default/orders")
	aliceWriter := w.issued(t, "alice", "writer", "component:default/orders")
	bobCopilot := w.issued(t, "bob", "copilot", "component:default/orders")
	cases := []struct {
		name, token, route, method, path string
		status                           int
		reason                           string
	}{
		{"both may", aliceCopilot, apiRoute, "GET", "/orders/v1/items", 200, ""},
		{"agent may not write (limits)", aliceCopilot, apiRoute, "POST", "/orders/v1/items", 403, "agent_limit"},
		{"agent granted writes", aliceWriter, apiRoute, "POST", "/orders/v1/items", 200, ""},
		{"alice may, agent may not (route)", aliceCopilot, ordersRoute, "GET", "/orders/42", 403, "no_matching_rule"},
		{"agent's rule path, alice owner", aliceCopilot, ordersRoute, "GET", "/orders/reports/q1", 200, ""},
		{"agent may, bob may not", bobCopilot, apiRoute, "GET", "/orders/v1/items", 403, "no_matching_rule"},
		{"another audience", aliceCopilot, ledgerRoute, "GET", "/ledger/1", 401, "invalid_token:wrong_audience"},
		{"agent alone, its own rights", "copilot", apiRoute, "GET", "/orders/v1/items", 200, ""},
		{"agent alone, limits", "copilot", apiRoute, "DELETE", "/orders/v1/items", 403, "agent_limit"},
		{"agent alone, not alice's rights", "copilot", ordersRoute, "GET", "/orders/42", 403, "no_matching_rule"},
		{"IdP act claim", "idp-delegated", apiRoute, "GET", "/orders/v1/items", 200, ""},
		{"IdP act of an unknown agent", "idp-delegated-unknown", apiRoute, "GET", "/orders/v1/items", 403, "unknown_principal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, _ := w.srv.Check(context.Background(), checkReq(c.route, c.method, c.path, bearer(c.token)))
			got := 200
			if d := resp.GetDeniedResponse(); d != nil {
				got = int(d.GetStatus().GetCode())
			}
			if got != c.status {
				t.Fatalf("status %d, want %d (%v)", got, c.status, resp)
			}
			if got == 200 && c.token == aliceCopilot {
				h := headerMap(resp.GetOkResponse().GetHeaders())
				claims := verifyAssertion(t, w.signer, h["x-gatehouse-assertion"])
				act, _ := claims["act"].(map[string]any)
				if claims["sub"] != "user:default/alice" || act["sub"] != "component:default/copilot" || h["x-gatehouse-actor"] != "component:default/copilot" {
					t.Fatalf("assertion %v headers %v", claims, h)
				}
			}
		})
	}
	// The audit names both, and the rule that allowed each.
	w.srv.audit.Close()
	var found bool
	for _, line := range strings.Split(w.audit.String(), "\n") {
		if strings.Contains(line, `"actor":"component:default/copilot"`) && strings.Contains(line, `"principal":"user:default/alice"`) &&
			strings.Contains(line, `"decision":"allow"`) && strings.Contains(line, "actor consumer component:default/copilot") && strings.Contains(line, "user owner group:default/payments") {
			found = true
		}
		if strings.Contains(line, `"earlier_actors":["planner"]`) && !strings.Contains(line, `"actor":"component:default/copilot"`) {
			t.Fatalf("earlier actors without the current one: %s", line)
		}
	}
	if !found {
		t.Fatalf("no audit line with both identities and rules:\n%s", w.audit.String())
	}
}

// Revoking the agent in the catalog ends its delegated tokens' rights at
// once (the next model), and the cached decision does not outlive it.
func TestDelegatedRevocation(t *testing.T) {
	w := newAgentWorld(t)
	tok := w.issued(t, "alice", "copilot", "component:default/orders")
	check := func() int {
		resp, _ := w.srv.Check(context.Background(), checkReq(apiRoute, "GET", "/orders/v1/items", map[string]string{"authorization": "Bearer " + tok}))
		if d := resp.GetDeniedResponse(); d != nil {
			return int(d.GetStatus().GetCode())
		}
		return 200
	}
	if check() != 200 || check() != 200 {
		t.Fatal("not allowed before the revocation")
	}
	text := strings.Replace(string(mustRead(t, "testdata/agents-catalog.yaml")), "consumesApis: [orders-api]}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: writer", "consumesApis: []}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: writer", 1)
	w.srv.SetModel(testcatalog.Must(t, text))
	if got := check(); got != 403 {
		t.Fatalf("after the catalog stopped copilot consuming orders-api: %d", got)
	}
	// No longer an agent at all: unknown actor.
	w.srv.SetModel(testcatalog.Must(t, strings.Replace(string(mustRead(t, "testdata/agents-catalog.yaml")), "name: copilot\n  annotations: {gatehouse.dev/client-id: copilot}\nspec: {type: ai-agent", "name: copilot\n  annotations: {gatehouse.dev/client-id: copilot}\nspec: {type: service", 1)))
	if got := check(); got != 403 {
		t.Fatalf("after copilot stopped being an agent: %d", got)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDelegatedCheckAndExplainAgree: Check over gRPC with a delegated
// token, explain with the same token, and explain with --principal and
// --actor reach the same decision for every person, agent and request;
// explain shows each principal's verdict.
func TestDelegatedCheckAndExplainAgree(t *testing.T) {
	sink := &auditSink{ch: make(chan AuditRecord, 1000)}
	a := NewAudit(sink, 1000)
	t.Cleanup(a.Close)
	w := newAgentWorldAudit(t, a)
	client := grpcCheckClient(t, w.srv)
	m := w.srv.Model()
	reqs := []struct{ method, path string }{
		{"GET", "/orders/v1/items"}, {"POST", "/orders/v1/items"}, {"DELETE", "/orders/v1/items"}, {"GET", "/orders/1"},
		{"GET", "/orders/reports/q1"}, {"POST", "/orders/reports/q1"}, {"HEAD", "/orders/v1/items"}, {"GET", "/ledger/1"}, {"GET", "/orders/healthz"},
	}
	n := 0
	for _, person := range []string{"alice", "bob"} {
		for _, agent := range []string{"copilot", "writer"} {
			tok := w.issued(t, person, agent, "component:default/orders")
			for _, r := range reqs {
				_, route := m.Match("gw.example.com", r.path)
				c := parityCase{name: person + "+" + agent + " " + r.method + " " + r.path, token: tok, method: r.method, path: r.path, routeID: route.ID}
				status, reason := checkOverGRPC(t, client, sink, c)
				for _, how := range []string{"token", "principal and actor"} {
					in := ExplainRequest{Token: tok, Method: r.method, URL: "http://gw.example.com" + r.path}
					if how != "token" {
						if route.Entity != "component:default/orders" {
							continue // outside the token's audience: only the token says so
						}
						in = ExplainRequest{Principal: "user:default/" + person, Actor: "component:default/" + agent, Method: r.method, URL: in.URL}
					}
					res, err := Explain(context.Background(), w.srv.Engine(), m, w.srv.Verifier(), in)
					if err != nil {
						t.Fatalf("%s by %s: %v", c.name, how, err)
					}
					if res.Decision.Status != status || res.Decision.Reason != reason {
						t.Errorf("%s: Check %d %s; explain by %s %d %s", c.name, status, reason, how, res.Decision.Status, res.Decision.Reason)
					}
					if (status == 200 || status == 403) && reason != "public_path" {
						if len(res.Decision.Principals) != 2 || res.Decision.Principals[0].Role != RoleActor || res.Decision.Principals[1].Role != RoleUser {
							t.Errorf("%s by %s: principals %+v, want the actor's and the user's verdicts", c.name, how, res.Decision.Principals)
						}
					}
					n++
				}
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d comparisons", n)
	}
	// A refused actor does not hide the person's verdict.
	res, err := Explain(context.Background(), w.srv.Engine(), m, nil, ExplainRequest{Principal: "user:default/bob", Actor: "component:default/copilot", Method: "POST", URL: "http://gw.example.com/orders/v1/items"})
	if err != nil || res.Decision.Reason != "agent_limit" || len(res.Decision.Principals) != 2 || res.Decision.Principals[1].Allow || res.Decision.Principals[1].Reason != "no_matching_rule" {
		t.Fatalf("%+v %v", res.Decision.Principals, err)
	}
	for _, bad := range []ExplainRequest{
		{Principal: "user:default/alice", Actor: "component:default/shop"},        // not an agent
		{Principal: "component:default/shop", Actor: "component:default/copilot"}, // not a person
		{Token: "alice", Actor: "component:default/copilot"},                      // a token has its own act
	} {
		bad.URL = "http://gw.example.com/orders/v1/items"
		if _, err := Explain(context.Background(), w.srv.Engine(), m, w.srv.Verifier(), bad); err == nil {
			t.Errorf("explain %+v: no error", bad)
		}
	}
}

// Agent limits per kind of operation: HTTP methods, GraphQL operation
// types, MCP tools (by name, pattern, or read-only mark), unknown kinds
// refused.
func TestAgentLimitsPerOperation(t *testing.T) {
	def := &model.Agent{Methods: []string{"GET", "HEAD"}, GraphQL: []string{"query"}, MCPTools: []string{"read-only"}}
	granted := &model.Agent{Methods: []string{"GET", "POST"}, GraphQL: []string{"query", "mutation"}, MCPTools: []string{"orders_*", "ping_tool"}}
	none := &model.Agent{}
	cases := []struct {
		a    *model.Agent
		op   Operation
		want bool
	}{
		{def, Operation{Kind: "http", Method: "GET"}, true},
		{def, Operation{Kind: "http", Method: "HEAD"}, true},
		{def, Operation{Kind: "http", Method: "POST"}, false},
		{def, Operation{Kind: "http", Method: "DELETE"}, false},
		{granted, Operation{Kind: "http", Method: "POST"}, true},
		{none, Operation{Kind: "http", Method: "GET"}, false},
		{def, Operation{Kind: "graphql", Method: "query", HTTPMethod: "POST"}, true},
		{def, Operation{Kind: "graphql", Method: "mutation", HTTPMethod: "POST"}, false},
		{granted, Operation{Kind: "graphql", Method: "mutation"}, true},
		{granted, Operation{Kind: "graphql", Method: "subscription"}, false},
		{def, Operation{Kind: "mcp", Method: "initialize"}, true},
		{def, Operation{Kind: "mcp", Method: "tools/list"}, true},
		{def, Operation{Kind: "mcp", Method: "tools/call", Name: "list_orders", ReadOnly: true}, true},
		{def, Operation{Kind: "mcp", Method: "tools/call", Name: "delete_order"}, false},
		{def, Operation{Kind: "mcp", Method: "tools/call", Name: "read-only"}, false}, // the keyword is no name
		{granted, Operation{Kind: "mcp", Method: "tools/call", Name: "orders_cancel"}, true},
		{granted, Operation{Kind: "mcp", Method: "tools/call", Name: "ordersx"}, false},
		{granted, Operation{Kind: "mcp", Method: "tools/call", Name: "list_orders", ReadOnly: true}, false}, // read-only not granted
		{granted, Operation{Kind: "mcp", Method: "tools/call", Name: "ping_tool"}, true},
		{granted, Operation{Kind: "mcp", Method: "tools/call", Name: ""}, false},
		{def, Operation{Kind: "grpc", Method: "Get"}, false},
	}
	for _, c := range cases {
		if _, got := agentMay(c.a, c.op); got != c.want {
			t.Errorf("%+v with %+v: %v, want %v", c.op, c.a, got, c.want)
		}
	}
}

// The assertion memo never hands one agent's assertion out for another's
// (nor for the person alone); the decision cache is keyed by the token,
// whose act names the agent (TestDelegatedCheck: copilot's POST refused,
// writer's allowed, same person, same route, cache on).
func TestDelegatedAssertionsDifferByActor(t *testing.T) {
	w := newAgentWorld(t)
	a1, _, _ := w.signer.Sign(Assertion{Subject: "user:default/alice", Audience: "x", Kind: "user", Act: &AssertionActor{Subject: "component:default/copilot"}}, time.Now())
	a2, _, _ := w.signer.Sign(Assertion{Subject: "user:default/alice", Audience: "x", Kind: "user", Act: &AssertionActor{Subject: "component:default/writer"}}, time.Now())
	a3, _, _ := w.signer.Sign(Assertion{Subject: "user:default/alice", Audience: "x", Kind: "user"}, time.Now())
	if a1 == a2 || a1 == a3 || a2 == a3 {
		t.Fatal("the assertion memo returned one agent's assertion for another's (or for the person alone)")
	}
}

// Hostile act claims: refused unless an object naming an actor, nested
// ones bounded; earlier actors are kept for the audit.
func TestParseActHostile(t *testing.T) {
	deep := `{"sub":"a"`
	for i := 0; i < maxActDepth+1; i++ {
		deep = `{"sub":"n` + strconv.Itoa(i) + `","act":` + deep
	}
	deep += strings.Repeat("}", maxActDepth+2)
	bad := []string{`"copilot"`, `[]`, `{}`, `{"sub":1}`, `{"sub":""}`, `{"sub":"a","act":"b"}`, `{"sub":"a","act":{}}`, `{"sub":"a","act":{"sub":["x"]}}`, deep, `{"sub":"a"`}
	for _, b := range bad {
		if a, err := parseAct([]byte(b)); err == nil {
			t.Errorf("act %s accepted: %+v", b, a)
		}
	}
	a, err := parseAct([]byte(`{"sub":"sa-1","azp":"copilot","act":{"client_id":"planner","act":{"sub":"human-bot"}}}`))
	if err != nil || a.ClientID != "copilot" || strings.Join(a.Earlier, ",") != "planner,human-bot" {
		t.Fatalf("%+v %v", a, err)
	}
}

// FuzzParseAct: never panics; an accepted act names an actor and keeps
// at most maxActDepth earlier ones.
func FuzzParseAct(f *testing.F) {
	f.Add(`{"sub":"a","client_id":"c","act":{"sub":"b"}}`)
	f.Add(`{"azp":"x"}`)
	f.Add(`{"sub":"a","act":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAct([]byte(s))
		if err != nil {
			return
		}
		if a.Subject == "" && a.ClientID == "" || len(a.Earlier) > maxActDepth {
			t.Fatalf("accepted %q as %+v", s, a)
		}
	})
}
