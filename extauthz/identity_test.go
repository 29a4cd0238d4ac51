package extauthz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ---- test IdP -------------------------------------------------------------

// testIdP serves OIDC discovery and a JWKS whose keys the test controls.
type testIdP struct {
	srv        *httptest.Server
	URL        string
	down       atomic.Bool // every endpoint answers 503
	jwksDown   atomic.Bool // only the JWKS answers 503
	jwksHits   atomic.Int64
	discoHits  atomic.Int64
	mu         sync.Mutex
	published  []jose.JSONWebKey
	rawJWKSExt []json.RawMessage // extra raw keys appended to the JWKS
}

func newIdP(t testing.TB, keys ...*testKey) *testIdP {
	t.Helper()
	p := &testIdP{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoHits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.URL, "jwks_uri": p.URL + "/jwks",
			"authorization_endpoint": p.URL + "/auth", "token_endpoint": p.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		if p.down.Load() || p.jwksDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		var out []json.RawMessage
		for _, k := range p.published {
			b, err := k.MarshalJSON()
			if err != nil {
				panic(err)
			}
			out = append(out, b)
		}
		out = append(out, p.rawJWKSExt...)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": out})
	})
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	p.publish(keys...)
	return p
}

// publish replaces the published JWKS with the public halves of keys.
func (p *testIdP) publish(keys ...*testKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published = nil
	for _, k := range keys {
		p.published = append(p.published, k.public())
	}
}

type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

var (
	rsaOnce sync.Once
	rsaPool []*rsa.PrivateKey
)

// newRSAKey returns an RSA key; RSA generation is slow under -race, so a small
// pool is generated once and reused under different kids.
func newRSAKey(t testing.TB, kid string, n int) *testKey {
	t.Helper()
	rsaOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaPool = append(rsaPool, k)
		}
	})
	return &testKey{kid: kid, alg: jose.RS256, priv: rsaPool[n%len(rsaPool)]}
}

func newECKey(t testing.TB, kid string) *testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: jose.ES256, priv: k}
}

func (k *testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign signs claims with k; typ sets the JOSE typ header ("" for none).
func (k *testKey) sign(t testing.TB, claims map[string]any, typ string) string {
	t.Helper()
	return signWith(t, k.alg, jose.JSONWebKey{Key: k.priv, KeyID: k.kid}, claims, typ, nil)
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, claims map[string]any, typ string, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned builds a token with an arbitrary header and an empty or given signature.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func claimsFor(iss string, mods ...func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": iss, "sub": "user-123", "aud": []string{"account", "gatehouse"},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"email": "alice@example.com", "groups": []string{"/payments", "ops", "/payments"}, "azp": "web-ui",
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func withClaim(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
func withoutClaim(k string) func(map[string]any)     { return func(c map[string]any) { delete(c, k) } }

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestVerifier(t testing.TB, p *testIdP, mod func(*IssuerConfig)) *Verifier {
	t.Helper()
	cfg := IssuerConfig{Name: "test", IssuerURL: p.URL, Audiences: []string{"gatehouse"}, GroupsClaim: "groups"}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewVerifier(context.Background(), []IssuerConfig{cfg}, p.srv.Client(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func reason(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	if err == nil {
		return ""
	}
	return "not a TokenError: " + err.Error()
}

// ---- tests ----------------------------------------------------------------

func TestVerifyValidRS256(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, nil)
	id, err := v.Verify(context.Background(), k.sign(t, claimsFor(p.URL), "at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Issuer != p.URL || id.IssuerName != "test" || id.Subject != "user-123" || id.Email != "alice@example.com" ||
		id.ClientID != "web-ui" || id.TokenType != "at+jwt" || !slices.Equal(id.Groups, []string{"payments", "ops"}) {
		t.Fatalf("identity = %+v", id)
	}
	if d := time.Until(id.Expiry); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expiry = %v", id.Expiry)
	}
}

// Backstage style: direct JWKS URL, ES256, typ vnd.backstage.user, aud "backstage".
func TestVerifyValidES256BackstageJWKSURL(t *testing.T) {
	k := newECKey(t, "ec-1")
	p := newIdP(t, k)
	v := newTestVerifier(t, p, func(c *IssuerConfig) {
		c.JWKSURL = p.URL + "/jwks"
		c.Audiences = []string{"backstage"}
		c.Algorithms = []string{"ES256"}
	})
	tok := k.sign(t, claimsFor(p.URL, withClaim("aud", "backstage"), withClaim("sub", "user:default/alice"), withClaim("groups", "/team-a"),
		withoutClaim("azp"), withClaim("client_id", "cli"), withoutClaim("email")), "vnd.backstage.user")
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.TokenType != "vnd.backstage.user" || id.Subject != "user:default/alice" || id.ClientID != "cli" ||
		id.Email != "" || !slices.Equal(id.Groups, []string{"team-a"}) {
		t.Fatalf("identity = %+v", id)
	}
	if p.discoHits.Load() != 0 {
		t.Fatalf("discovery used although JWKSURL is set")
	}
}

func TestVerifyRejections(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	ec := newECKey(t, "ec-1")
	other := newRSAKey(t, "rsa-1", 1) // same kid, different key
	p := newIdP(t, k, ec)
	v := newTestVerifier(t, p, func(c *IssuerConfig) { c.ClockSkew = 30 * time.Second })
	now := time.Now()
	pub := k.priv.Public()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsOpts := func() *jose.SignerOptions { return (&jose.SignerOptions{}).WithHeader("kid", "rsa-1") }

	cases := []struct {
		name, tok, want string
	}{
		{"valid", k.sign(t, claimsFor(p.URL), "JWT"), ""},
		{"valid ES256", ec.sign(t, claimsFor(p.URL), "JWT"), ""},
		{"expired", k.sign(t, claimsFor(p.URL, withClaim("exp", now.Add(-time.Hour).Unix())), ""), "expired"},
		{"expired within skew", k.sign(t, claimsFor(p.URL, withClaim("exp", now.Add(-10*time.Second).Unix())), ""), ""},
		{"expired outside skew", k.sign(t, claimsFor(p.URL, withClaim("exp", now.Add(-60*time.Second).Unix())), ""), "expired"},
		{"nbf future", k.sign(t, claimsFor(p.URL, withClaim("nbf", now.Add(time.Hour).Unix())), ""), "not_yet_valid"},
		{"nbf within skew", k.sign(t, claimsFor(p.URL, withClaim("nbf", now.Add(10*time.Second).Unix())), ""), ""},
		{"nbf outside skew", k.sign(t, claimsFor(p.URL, withClaim("nbf", now.Add(60*time.Second).Unix())), ""), "not_yet_valid"},
		{"iat future", k.sign(t, claimsFor(p.URL, withClaim("iat", now.Add(time.Hour).Unix())), ""), "not_yet_valid"},
		{"wrong audience", k.sign(t, claimsFor(p.URL, withClaim("aud", "someone-else")), ""), "wrong_audience"},
		{"no audience", k.sign(t, claimsFor(p.URL, withoutClaim("aud")), ""), "missing_claim"},
		{"no exp", k.sign(t, claimsFor(p.URL, withoutClaim("exp")), ""), "missing_claim"},
		{"no sub", k.sign(t, claimsFor(p.URL, withoutClaim("sub")), ""), "missing_claim"},
		{"exp not a number", k.sign(t, claimsFor(p.URL, withClaim("exp", "tomorrow")), ""), "malformed"},
		{"groups wrong type", k.sign(t, claimsFor(p.URL, withClaim("groups", map[string]any{"a": 1})), ""), "malformed"},
		{"wrong issuer", k.sign(t, claimsFor("https://evil.example.com"), ""), "unknown_issuer"},
		{"issuer with trailing slash", k.sign(t, claimsFor(p.URL+"/"), ""), "unknown_issuer"},
		{"bad signature (other key, same kid)", other.sign(t, claimsFor(p.URL), ""), "bad_signature"},
		{"tampered payload", tamper(k.sign(t, claimsFor(p.URL), ""), claimsFor(p.URL, withClaim("sub", "admin"))), "bad_signature"},
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT"}, claimsFor(p.URL), ""), "alg_not_allowed"},
		{"alg none with kid", unsigned(map[string]any{"alg": "none", "kid": "rsa-1"}, claimsFor(p.URL), "x"), "alg_not_allowed"},
		{"alg NONE", unsigned(map[string]any{"alg": "NONE", "kid": "rsa-1"}, claimsFor(p.URL), ""), "alg_not_allowed"},
		{"HS256 with RSA public key DER", signWith(t, jose.HS256, der, claimsFor(p.URL), "", hsOpts()), "alg_not_allowed"},
		{"HS256 with RSA public key PEM", signWith(t, jose.HS256, pemBytes, claimsFor(p.URL), "", hsOpts()), "alg_not_allowed"},
		{"RS384 not allowed", signWith(t, jose.RS384, jose.JSONWebKey{Key: k.priv, KeyID: "rsa-1"}, claimsFor(p.URL), "", nil), "alg_not_allowed"},
		{"ES256 token naming the RSA kid", signWith(t, jose.ES256, jose.JSONWebKey{Key: ec.priv, KeyID: "rsa-1"}, claimsFor(p.URL), "", nil), "bad_signature"},
		{"embedded jwk header is ignored", signWith(t, jose.RS256, jose.JSONWebKey{Key: other.priv, KeyID: "rsa-1"}, claimsFor(p.URL), "",
			(&jose.SignerOptions{EmbedJWK: true})), "unknown_kid"}, // go-jose drops kid when embedding
		{"embedded jwk header with kid is ignored", signWith(t, jose.RS256, jose.JSONWebKey{Key: other.priv, KeyID: "rsa-1"}, claimsFor(p.URL), "",
			(&jose.SignerOptions{EmbedJWK: true}).WithHeader("kid", "rsa-1")), "bad_signature"},
		{"unknown kid", signWith(t, jose.RS256, jose.JSONWebKey{Key: k.priv, KeyID: "nope"}, claimsFor(p.URL), "", nil), "unknown_kid"},
		{"empty", "", "malformed"},
		{"garbage", "not.a.jwt", "malformed"},
		{"two parts", "abc.def", "malformed"},
		{"JWE-like", "a.b.c.d.e", "malformed"},
		{"no iss", k.sign(t, claimsFor(p.URL, withoutClaim("iss")), ""), "malformed"},
		{"iss not a string", k.sign(t, claimsFor(p.URL, withClaim("iss", 42)), ""), "malformed"},
		{"huge", strings.Repeat("a", maxTokenBytes+1), "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.tok)
			if got := reason(err); got != tc.want {
				t.Fatalf("reason = %q, want %q (err %v)", got, tc.want, err)
			}
			if (id != nil) != (tc.want == "") {
				t.Fatalf("identity %+v with err %v", id, err)
			}
		})
	}
}

// tamper replaces the payload of a compact JWS, keeping header and signature.
func tamper(tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	c, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(c)
	return strings.Join(parts, ".")
}

func TestClientIDFallbackAndCustomClaims(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, func(c *IssuerConfig) {
		c.EmailClaim, c.GroupsClaim, c.ClientIDClaim = "upn", "roles", "appid"
	})
	id, err := v.Verify(context.Background(), k.sign(t, claimsFor(p.URL, withClaim("upn", "bob@example.com"), withClaim("roles", []string{"a", "/b"}),
		withClaim("client_id", "fallback")), ""))
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "bob@example.com" || id.ClientID != "fallback" || !slices.Equal(id.Groups, []string{"a", "b"}) {
		t.Fatalf("identity = %+v", id)
	}
	id, err = v.Verify(context.Background(), k.sign(t, claimsFor(p.URL, withClaim("appid", "app-1"), withClaim("client_id", "fallback")), ""))
	if err != nil || id.ClientID != "app-1" {
		t.Fatalf("id %+v err %v", id, err)
	}
}

func TestIdPDownAtStart(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	p.down.Store(true)
	start := time.Now()
	v := newTestVerifier(t, p, func(c *IssuerConfig) { c.JWKSMinRefresh = 50 * time.Millisecond })
	if time.Since(start) > 3*time.Second {
		t.Fatalf("NewVerifier blocked for %v", time.Since(start))
	}
	tok := k.sign(t, claimsFor(p.URL), "")
	if _, err := v.Verify(context.Background(), tok); reason(err) != "issuer_unavailable" {
		t.Fatalf("err = %v, want issuer_unavailable", err)
	}
	if st := v.Status(); st[0].Ready || st[0].LastError == "" {
		t.Fatalf("status = %+v", st)
	}
	p.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		id, err := v.Verify(context.Background(), tok)
		if err == nil {
			if id.Subject != "user-123" {
				t.Fatalf("identity = %+v", id)
			}
			break
		}
		if reason(err) != "issuer_unavailable" {
			t.Fatalf("unexpected error while recovering: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuer never became available: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := v.Status(); !st[0].Ready || st[0].LastError != "" {
		t.Fatalf("status = %+v", st)
	}
}

func TestIdPUnreachableAtStart(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	v, err := NewVerifier(context.Background(), []IssuerConfig{{Name: "gone", IssuerURL: url, Audiences: []string{"gatehouse"}}}, nil, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), k.sign(t, claimsFor(url), "")); reason(err) != "issuer_unavailable" {
		t.Fatalf("err = %v", err)
	}
}

func TestDiscoveryIssuerMismatchFailsClosed(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	// Configured issuer differs from what discovery reports: go-oidc refuses it.
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/x/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://elsewhere", "jwks_uri": p.URL + "/jwks"})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	iss := srv.URL + "/realms/x"
	v, err := NewVerifier(context.Background(), []IssuerConfig{{Name: "x", IssuerURL: iss, Audiences: []string{"gatehouse"}}}, srv.Client(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), k.sign(t, claimsFor(iss), "")); reason(err) != "issuer_unavailable" {
		t.Fatalf("err = %v", err)
	}
}

func TestMultipleIssuers(t *testing.T) {
	k1, k2 := newRSAKey(t, "a", 0), newECKey(t, "b")
	p1, p2 := newIdP(t, k1), newIdP(t, k2)
	v, err := NewVerifier(context.Background(), []IssuerConfig{
		{Name: "one", IssuerURL: p1.URL, Audiences: []string{"gatehouse"}},
		{Name: "two", IssuerURL: p2.URL, Audiences: []string{"gatehouse"}},
	}, http.DefaultClient, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if id, err := v.Verify(context.Background(), k2.sign(t, claimsFor(p2.URL), "")); err != nil || id.IssuerName != "two" {
		t.Fatalf("id %+v err %v", id, err)
	}
	// A key of issuer one cannot sign for issuer two.
	if _, err := v.Verify(context.Background(), k1.sign(t, claimsFor(p2.URL), "")); reason(err) != "unknown_kid" {
		t.Fatalf("err = %v", err)
	}
}

func TestNoIssuers(t *testing.T) {
	v, err := NewVerifier(context.Background(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), unsigned(map[string]any{"alg": "RS256"}, map[string]any{"iss": "x"}, "")); reason(err) != "unknown_issuer" {
		t.Fatalf("err = %v", err)
	}
}

func TestIssuerConfigValidate(t *testing.T) {
	base := IssuerConfig{Name: "kc", IssuerURL: "https://idp.example.com/realms/main", Audiences: []string{"gatehouse"}}
	d := base.WithDefaults()
	if !slices.Equal(d.Algorithms, []string{"RS256", "ES256"}) || d.ClockSkew != 30*time.Second || d.EmailClaim != "email" ||
		d.GroupsClaim != "" || d.GroupsNamespace != "default" || d.TrustEmail || len(d.MachineClaims) != 0 || d.ClientIDClaim != "azp" || d.JWKSMinRefresh != 10*time.Second || d.JWKSRefresh != 5*time.Minute {
		t.Fatalf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := (IssuerConfig{IssuerURL: "https://idp.example.com/x"}).WithDefaults().Name; n != "idp.example.com" {
		t.Fatalf("default name = %q", n)
	}
	cases := []struct {
		name   string
		mod    func(*IssuerConfig)
		substr []string
	}{
		{"none", func(c *IssuerConfig) { c.Algorithms = []string{"RS256", "none"} }, []string{`"kc"`, "algorithms", `"none"`, "fix"}},
		{"HS256", func(c *IssuerConfig) { c.Algorithms = []string{"HS256"} }, []string{`"kc"`, "algorithms", "HS256", "fix"}},
		{"hs512 lowercase", func(c *IssuerConfig) { c.Algorithms = []string{"hs512"} }, []string{"algorithms", "hs512"}},
		{"HMAC", func(c *IssuerConfig) { c.Algorithms = []string{"HMAC-SHA256"} }, []string{"algorithms", "HMAC"}},
		{"unknown alg", func(c *IssuerConfig) { c.Algorithms = []string{"RS1"} }, []string{"algorithms", "not supported"}},
		{"no audiences", func(c *IssuerConfig) { c.Audiences = nil }, []string{`"kc"`, "audiences", "fix"}},
		{"empty audience", func(c *IssuerConfig) { c.Audiences = []string{""} }, []string{"audiences"}},
		{"skew too large", func(c *IssuerConfig) { c.ClockSkew = 6 * time.Minute }, []string{"clockSkew", "5m0s"}},
		{"negative skew", func(c *IssuerConfig) { c.ClockSkew = -time.Second }, []string{"clockSkew"}},
		{"no issuer URL", func(c *IssuerConfig) { c.IssuerURL = "" }, []string{"issuerURL"}},
		{"relative issuer URL", func(c *IssuerConfig) { c.IssuerURL = "idp.example.com" }, []string{"issuerURL"}},
		{"bad JWKS URL", func(c *IssuerConfig) { c.JWKSURL = "ftp://x/jwks" }, []string{"jwksURL"}},
		{"refresh too short", func(c *IssuerConfig) { c.JWKSRefresh = time.Millisecond }, []string{"jwksRefresh"}},
		{"machine claim without =", func(c *IssuerConfig) { c.MachineClaims = []string{"client_id"} }, []string{"machineClaims", "claim=value", "fix"}},
		{"machine claim without value", func(c *IssuerConfig) { c.MachineClaims = []string{"gty="} }, []string{"machineClaims"}},
		{"groups prefix without claim", func(c *IssuerConfig) { c.GroupsPrefix = "catalog-" }, []string{"groupsPrefix", "groupsClaim"}},
		{"groups namespace without claim", func(c *IssuerConfig) { c.GroupsNamespace = "teams" }, []string{"groupsNamespace", "groupsClaim"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			err := c.WithDefaults().Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, s := range tc.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			// NewVerifier rejects it too, without contacting anything.
			if _, err := NewVerifier(context.Background(), []IssuerConfig{c}, nil, nil); err == nil {
				t.Fatal("NewVerifier accepted an invalid config")
			}
		})
	}
	if _, err := NewVerifier(context.Background(), []IssuerConfig{base, base}, nil, nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate issuer: %v", err)
	}
}

func TestGroupsClaim(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
		err  bool
	}{
		{`["/payments","ops","/org/team"]`, []string{"payments", "ops", "org/team"}, false},
		{`"/payments"`, []string{"payments"}, false},
		{`null`, nil, false},
		{`[]`, []string{}, false},
		{`["/", ""]`, []string{}, false},
		{`[1,2]`, nil, true},
		{`{"a":"b"}`, nil, true},
	} {
		got, err := groupsClaim(members{{name: []byte("groups"), value: []byte(tc.raw)}}, "groups")
		if (err != nil) != tc.err || (!tc.err && !slices.Equal(got, tc.want)) {
			t.Errorf("%s: got %q, %v", tc.raw, got, err)
		}
	}
}

func TestTokenErrorIsReturnedUnwrapped(t *testing.T) {
	// check.go type-asserts err.(*TokenError) directly.
	v, _ := NewVerifier(context.Background(), nil, nil, nil)
	defer v.Close()
	_, err := v.Verify(context.Background(), "x")
	if _, ok := err.(*TokenError); !ok {
		t.Fatalf("%T", err)
	}
}

// FuzzVerify feeds arbitrary strings to Verify: it must never panic and never
// return an Identity for a token that the test key did not sign.
func FuzzVerify(f *testing.F) {
	k := newRSAKey(f, "rsa-1", 0)
	ec := newECKey(f, "ec-1")
	p := newIdP(f, k, ec)
	v := newTestVerifier(f, p, func(c *IssuerConfig) { c.JWKSMinRefresh = time.Hour })
	valid := k.sign(f, claimsFor(p.URL), "JWT")
	f.Add(valid)
	f.Add(ec.sign(f, claimsFor(p.URL), "vnd.backstage.user"))
	f.Add(unsigned(map[string]any{"alg": "none"}, claimsFor(p.URL), ""))
	f.Add(tamper(valid, claimsFor(p.URL, withClaim("sub", "root"))))
	f.Add(valid[:len(valid)-5])
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err != nil {
			if id != nil {
				t.Fatalf("identity with error")
			}
			if _, ok := err.(*TokenError); !ok {
				t.Fatalf("error is %T, not *TokenError: %v", err, err)
			}
			return
		}
		if id == nil {
			t.Fatal("nil identity without error")
		}
		jws, perr := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
		if perr != nil {
			t.Fatalf("accepted a token that does not parse: %v", perr)
		}
		if _, e1 := jws.Verify(k.priv.Public()); e1 != nil {
			if _, e2 := jws.Verify(ec.priv.Public()); e2 != nil {
				t.Fatalf("accepted a token not signed by the test keys: %q", raw)
			}
		}
	})
}
