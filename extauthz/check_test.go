package extauthz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// fakeVerifier maps fixed token strings to identities; it stands in for
// OIDC verification, which has its own tests (and the e2e tests use a real
// IdP).
type fakeVerifier struct {
	ids   map[string]*Identity
	calls atomic.Int64
}

func (f *fakeVerifier) Verify(_ context.Context, raw string) (*Identity, error) {
	f.calls.Add(1)
	if id, ok := f.ids[raw]; ok {
		return id, nil
	}
	return nil, &TokenError{Reason: "bad_signature", Detail: "test"}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestServer(t testing.TB) (*Server, *fakeVerifier, *Signer, *Audit, *lockedBuffer) {
	t.Helper()
	exp := time.Now().Add(time.Hour)
	v := &fakeVerifier{ids: map[string]*Identity{
		"alice-token":    {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Issuer: "https://idp"},
		"bob-token":      {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp, Issuer: "https://idp"},
		"checkout-token": {Subject: "svc", ClientID: "checkout", Machine: true, Expiry: exp, Issuer: "https://idp"},
	}}
	signer, err := NewSigner(SignerConfig{Issuer: "gatehouse-test", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	audit := NewAudit(buf, 100)
	s := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute}, v, signer, audit, nil)
	s.SetModel(testcatalog.MustFiles(t, "testdata/policy-catalog.yaml"))
	return s, v, signer, audit, buf
}

func checkReq(route, method, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{"x-request-id": "req-1"}
	for k, v := range headers {
		h[k] = v
	}
	ext := map[string]string{}
	if route != "" {
		ext["route_id"] = route
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "192.0.2.9"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "gw.example.com", Headers: h,
		}},
		ContextExtensions: ext,
	}}
}

func headerMap(opts []*core.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, o := range opts {
		m[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return m
}

func TestCheckResponses(t *testing.T) {
	s, _, signer, _, _ := newTestServer(t)
	ctx := context.Background()

	t.Run("no token: 401 with WWW-Authenticate", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", nil))
		d := r.GetDeniedResponse()
		if d == nil || d.GetStatus().GetCode() != 401 {
			t.Fatalf("want 401, got %v", r)
		}
		// RFC 6750 §3.1: no error code when the request sent no credentials.
		if h := headerMap(d.GetHeaders())["www-authenticate"]; h != `Bearer realm="gatehouse"` {
			t.Fatalf("WWW-Authenticate = %q", h)
		}
	})
	t.Run("invalid token: 401", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer forged"}))
		if r.GetDeniedResponse().GetStatus().GetCode() != 401 {
			t.Fatalf("want 401, got %v", r)
		}
		if h := headerMap(r.GetDeniedResponse().GetHeaders())["www-authenticate"]; h != `Bearer realm="gatehouse", error="invalid_token"` {
			t.Fatalf("WWW-Authenticate = %q", h)
		}
	})
	t.Run("not allowed: 403 with code and decision id only", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersRoute, "POST", "/orders/1", map[string]string{"authorization": "Bearer bob-token"}))
		d := r.GetDeniedResponse()
		if d.GetStatus().GetCode() != 403 {
			t.Fatalf("want 403, got %v", r)
		}
		var body map[string]string
		if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
			t.Fatalf("body %q: %v", d.GetBody(), err)
		}
		if len(body) != 2 || body["error"] != "forbidden" || body["decision_id"] != "req-1" {
			t.Fatalf("403 body leaks or lacks fields: %q", d.GetBody())
		}
	})
	t.Run("no route: 404", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq("", "GET", "/nowhere", map[string]string{"authorization": "Bearer alice-token"}))
		if r.GetDeniedResponse().GetStatus().GetCode() != 404 {
			t.Fatalf("want 404, got %v", r)
		}
	})
	t.Run("encoded traversal: 400", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/%2e%2e/admin", map[string]string{"authorization": "Bearer alice-token"}))
		if r.GetDeniedResponse().GetStatus().GetCode() != 400 {
			t.Fatalf("want 400, got %v", r)
		}
	})
	t.Run("allowed: identity headers, assertion, token and spoofed headers removed", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{
			"authorization": "Bearer alice-token", "x-gatehouse-user": "user:default/root", "x-gatehouse-anything": "x",
		}))
		ok := r.GetOkResponse()
		if ok == nil {
			t.Fatalf("want allow, got %v", r)
		}
		h := headerMap(ok.GetHeaders())
		if h["x-gatehouse-user"] != "user:default/alice" || h["x-gatehouse-entity"] != "component:default/orders" ||
			!strings.Contains(h["x-gatehouse-groups"], "group:default/payments") || h["x-gatehouse-decision-id"] != "req-1" {
			t.Fatalf("identity headers: %v", h)
		}
		rm := strings.Join(ok.GetHeadersToRemove(), ",")
		for _, want := range []string{"authorization", "x-gatehouse-user", "x-gatehouse-anything"} {
			if !strings.Contains(rm, want) {
				t.Errorf("%s not removed (removed: %s)", want, rm)
			}
		}
		claims := verifyAssertion(t, signer, h["x-gatehouse-assertion"])
		if claims["sub"] != "user:default/alice" || claims["aud"] != "component:default/orders" || claims["iss"] != "gatehouse-test" || claims["gh_op"] != nil {
			t.Fatalf("assertion claims: %v", claims)
		}
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat > 60 || exp-iat <= 0 {
			t.Fatalf("assertion lifetime %v s", exp-iat)
		}
	})
	t.Run("machine token of a consumer reaches the API", func(t *testing.T) {
		r, _ := s.Check(ctx, checkReq(ordersAPI, "GET", "/orders/v1/items", map[string]string{"authorization": "Bearer checkout-token"}))
		if h := headerMap(r.GetOkResponse().GetHeaders()); h["x-gatehouse-user"] != "component:default/checkout" || h["x-gatehouse-client"] != "checkout" {
			t.Fatalf("consumer: %v", r)
		}
	})
	t.Run("route id from the route header Envoy sets", func(t *testing.T) {
		alice := map[string]string{"authorization": "Bearer alice-token", "x-gatehouse-route": ordersRoute}
		r, _ := s.Check(ctx, checkReq("", "GET", "/orders/1", alice))
		if r.GetOkResponse() == nil {
			t.Fatalf("alice on orders by route header: %v", r)
		}
		if rm := strings.Join(r.GetOkResponse().GetHeadersToRemove(), ","); !strings.Contains(rm, "x-gatehouse-route") {
			t.Errorf("the route header is not removed before the upstream: %s", rm)
		}
		// A context extension, when the route has one, wins over the header.
		bob := map[string]string{"authorization": "Bearer bob-token", "x-gatehouse-route": ordersAPI}
		if r, _ := s.Check(ctx, checkReq(ordersRoute, "POST", "/orders/1", bob)); r.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Fatalf("the header overrode the context extension: %v", r)
		}
	})
	t.Run("a route that does not match the path decides nothing: 404", func(t *testing.T) {
		// As if a client could set the route header: the API's route id
		// for a path outside the API.
		h := map[string]string{"authorization": "Bearer checkout-token", "x-gatehouse-route": ordersAPI}
		r, _ := s.Check(ctx, checkReq("", "GET", "/orders/1", h))
		if r.GetDeniedResponse().GetStatus().GetCode() != 404 {
			t.Fatalf("route id of /orders/v1 on /orders/1: %v", r)
		}
		if r, _ := s.Check(ctx, checkReq("", "GET", "/orders/v1/items?x=/orders/1", h)); r.GetOkResponse() == nil {
			t.Fatalf("the same route on its own path (with a query): %v", r)
		}
	})
	t.Run("nothing before a model: 503", func(t *testing.T) {
		empty := NewServer(Options{}, &fakeVerifier{}, signer, nil, nil)
		r, _ := empty.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer alice-token"}))
		if r.GetDeniedResponse().GetStatus().GetCode() != 503 {
			t.Fatalf("want 503 before the first model, got %v", r)
		}
	})
}

func TestDecisionCache(t *testing.T) {
	s, v, _, _, _ := newTestServer(t)
	ctx := context.Background()
	req := checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer alice-token"})
	for i := 0; i < 5; i++ {
		if r, _ := s.Check(ctx, req); r.GetOkResponse() == nil {
			t.Fatal("denied")
		}
	}
	if n := v.calls.Load(); n != 1 {
		t.Fatalf("token verified %d times for 5 identical checks, want 1", n)
	}
	// Another method is another decision.
	s.Check(ctx, checkReq(ordersRoute, "DELETE", "/orders/1", map[string]string{"authorization": "Bearer alice-token"}))
	if n := v.calls.Load(); n != 2 {
		t.Fatalf("verifications %d, want 2", n)
	}
	// A new model drops the cache.
	m := testcatalog.MustFiles(t, "testdata/policy-catalog.yaml")
	m2 := *m
	m2.Version = "changed"
	s.SetModel(&m2)
	s.Check(ctx, req)
	if n := v.calls.Load(); n != 3 {
		t.Fatalf("verifications after a model change %d, want 3", n)
	}
	// An expired token is not served from the cache.
	v.ids["short-token"] = &Identity{Subject: "a", Email: "alice@example.com", EmailVerified: true, Expiry: time.Now().Add(-time.Second)}
	shortReq := checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer short-token"})
	s.Check(ctx, shortReq)
	s.Check(ctx, shortReq)
	if n := v.calls.Load(); n != 5 {
		t.Fatalf("an expired token's decision was cached (verifications %d, want 5)", n)
	}
}

func TestAuditRecords(t *testing.T) {
	s, _, _, audit, buf := newTestServer(t)
	ctx := context.Background()
	s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer alice-token"}))
	s.Check(ctx, checkReq(ordersRoute, "POST", "/orders/1?secret=1", map[string]string{"authorization": "Bearer bob-token"}))
	audit.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 audit lines, got %d: %s", len(lines), buf.String())
	}
	var a, b AuditRecord
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &b); err != nil {
		t.Fatal(err)
	}
	if a.Decision != "allow" || a.Principal != "user:default/alice" || a.Reason != "owner" || a.Entity != "component:default/orders" ||
		a.Owner != "group:default/payments" || a.System != "system:default/payments" || a.Source != "192.0.2.9" || a.DecisionID != "req-1" || a.RouteID != ordersRoute {
		t.Errorf("allow record: %+v", a)
	}
	if b.Decision != "deny" || b.Status != 403 || b.Path != "/orders/1" {
		t.Errorf("deny record: %+v", b)
	}
	if strings.Contains(buf.String(), "token") && strings.Contains(buf.String(), "bob-token") {
		t.Error("the audit trail contains a token")
	}
	if audit.Written() != 2 || audit.Dropped() != 0 {
		t.Errorf("written %d dropped %d", audit.Written(), audit.Dropped())
	}
}

func TestAuditDropsWhenFull(t *testing.T) {
	block := make(chan struct{})
	a := NewAudit(writerFunc(func(p []byte) (int, error) { <-block; return len(p), nil }), 2)
	for i := 0; i < 10; i++ {
		a.Record(AuditRecord{DecisionID: "x"})
	}
	if a.Dropped() < 7 {
		t.Fatalf("dropped %d of 10 with a buffer of 2 and a stuck writer", a.Dropped())
	}
	close(block)
	a.Close()
	if a.Written()+a.Dropped() != 10 {
		t.Fatalf("written %d + dropped %d != 10", a.Written(), a.Dropped())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// verifyAssertion checks an ES256 JWT against the signer's JWKS, as an
// upstream would, and returns its claims.
func verifyAssertion(t *testing.T, s *Signer, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q is not a JWT", tok)
	}
	var hdr struct{ Alg, Kid string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	_ = json.Unmarshal(hb, &hdr)
	if hdr.Alg != "ES256" {
		t.Fatalf("alg %s", hdr.Alg)
	}
	var set struct {
		Keys []struct{ Kid, X, Y string }
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid != hdr.Kid {
			continue
		}
		xb, _ := base64.RawURLEncoding.DecodeString(k.X)
		yb, _ := base64.RawURLEncoding.DecodeString(k.Y)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
		if err != nil {
			t.Fatalf("JWKS key %s: %v", k.Kid, err)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if len(sig) != 64 || !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("assertion signature does not verify")
		}
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		_ = json.Unmarshal(pb, &claims)
		return claims
	}
	t.Fatalf("kid %s not in the JWKS", hdr.Kid)
	return nil
}

func TestSignerRotationOverlap(t *testing.T) {
	s, err := NewSigner(SignerConfig{Issuer: "x", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := s.Sign(Assertion{Subject: "a", Audience: "b"}, time.Now())
	jwksBefore := string(s.JWKS())
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	// The new current key was published before the rotation...
	if !strings.Contains(jwksBefore, s.CurrentKeyID()) {
		t.Fatal("the key signing after rotation was not in the JWKS before it")
	}
	// ...and an assertion signed before the rotation still verifies.
	verifyAssertion(t, s, old)
	fresh, _, _ := s.Sign(Assertion{Subject: "a", Audience: "b"}, time.Now())
	verifyAssertion(t, s, fresh)
	if _, err := NewSigner(SignerConfig{Lifetime: 2 * time.Minute}); err == nil {
		t.Fatal("a lifetime above 60s was accepted")
	}
}

func TestTokenSourcesAndForwarding(t *testing.T) {
	s, v, _, _, _ := newTestServer(t)
	v.ids["dave-token"] = &Identity{Subject: "d", Email: "dave@example.com", EmailVerified: true, Expiry: time.Now().Add(time.Hour)}
	ctx := context.Background()
	// A session cookie, when configured.
	s.opts.CookieName = "gh_session"
	r, _ := s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "theme=dark; gh_session=alice-token"}))
	if r.GetOkResponse() == nil {
		t.Fatalf("cookie token: %v", r)
	}
	// A malformed Authorization header is no token at all (no fallback to the cookie).
	r, _ = s.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Basic YWxpY2U6eA==", "cookie": "gh_session=alice-token"}))
	if r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("Basic auth: %v", r)
	}
	// gatehouse.dev/forward-token keeps the caller's token for the upstream.
	r, _ = s.Check(ctx, checkReq(ledgerRoute, "GET", "/ledger/1", map[string]string{"authorization": "Bearer dave-token"}))
	if r.GetOkResponse() == nil || strings.Contains(strings.Join(r.GetOkResponse().GetHeadersToRemove(), ","), "authorization") {
		t.Fatalf("forward-token route removed the token: %v", r)
	}
}
