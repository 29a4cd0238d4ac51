package extauthz

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestUnknownKidRefetchesOnce(t *testing.T) {
	k1, k2 := newRSAKey(t, "k1", 0), newRSAKey(t, "k2", 1)
	p := newIdP(t, k1)
	v := newTestVerifier(t, p, nil) // default JWKSMinRefresh 10s
	if n := v.Fetches(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}
	// Rotation at the IdP: the new kid triggers one refetch even though the
	// start-up fetch just happened.
	p.publish(k1, k2)
	if _, err := v.Verify(context.Background(), k2.sign(t, claimsFor(p.URL), "")); err != nil {
		t.Fatal(err)
	}
	if n := v.Fetches(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// Another unknown kid right after: rate-limited, rejected without contacting the IdP.
	hits := p.jwksHits.Load()
	tok := unsigned(map[string]any{"alg": "RS256", "kid": "forged"}, claimsFor(p.URL), "AAAA")
	if _, err := v.Verify(context.Background(), tok); reason(err) != "unknown_kid" {
		t.Fatalf("err = %v", err)
	}
	if n := v.Fetches(); n != 2 || p.jwksHits.Load() != hits {
		t.Fatalf("fetches = %d, IdP hits %d -> %d: rate limit not applied", n, hits, p.jwksHits.Load())
	}
	// Known kids keep working without fetches.
	if _, err := v.Verify(context.Background(), k1.sign(t, claimsFor(p.URL), "")); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownKidFloodDoesNotHammerIdP(t *testing.T) {
	k := newRSAKey(t, "k1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, nil)
	before := p.jwksHits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	sem := make(chan struct{}, 64)
	for i := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok := unsigned(map[string]any{"alg": "RS256", "kid": fmt.Sprintf("forged-%d", i)}, claimsFor(p.URL), "AAAA")
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if reason(err) != "unknown_kid" {
			t.Fatalf("err = %v", err)
		}
	}
	if extra := p.jwksHits.Load() - before; extra > 1 {
		t.Fatalf("1000 forged tokens caused %d JWKS fetches, want at most 1", extra)
	}
	if n := v.Fetches(); n > 2 {
		t.Fatalf("fetches = %d", n)
	}
}

// Concurrent callers with an unknown kid share one in-flight fetch.
func TestKeySetSharesInflightFetch(t *testing.T) {
	k1, k2 := newRSAKey(t, "k1", 0), newRSAKey(t, "k2", 1)
	p := newIdP(t, k1)
	release := make(chan struct{})
	var blocking sync.Once
	var hits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		n := hits
		mu.Unlock()
		if n == 2 {
			<-release
		}
		resp, err := http.Get(p.URL + "/jwks")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer resp.Body.Close()
		var body json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&body)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	defer blocking.Do(func() { close(release) })

	ks := NewKeySet(context.Background(), "test", srv.URL, srv.Client(), []string{"RS256"}, time.Nanosecond, discardLog())
	if err := ks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.publish(k1, k2)
	tok := k2.sign(t, claimsFor(p.URL), "")
	var wg sync.WaitGroup
	results := make(chan error, 101)
	verify := func() {
		defer wg.Done()
		_, err := ks.VerifySignature(context.Background(), tok)
		results <- err
	}
	wg.Add(1)
	go verify()
	for ks.Fetches() < 2 {
		time.Sleep(time.Millisecond)
	}
	for range 100 {
		wg.Add(1)
		go verify()
	}
	time.Sleep(100 * time.Millisecond) // let them all reach the in-flight fetch
	blocking.Do(func() { close(release) })
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.Fetches(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (one shared refetch)", n)
	}
}

func TestKeySetWaitHonoursContext(t *testing.T) {
	k := newRSAKey(t, "k1", 0)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ks := NewKeySet(context.Background(), "test", srv.URL, srv.Client(), []string{"RS256"}, time.Nanosecond, discardLog())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ks.VerifySignature(ctx, k.sign(t, claimsFor("x"), ""))
	if reason(err) != "issuer_unavailable" || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestKeyRotationPickedUp(t *testing.T) {
	k1, k2 := newRSAKey(t, "k1", 0), newECKey(t, "k2")
	p := newIdP(t, k1)
	v := newTestVerifier(t, p, func(c *IssuerConfig) {
		c.JWKSMinRefresh = 50 * time.Millisecond
		c.JWKSRefresh = time.Second
	})
	ctx := context.Background()
	old := k1.sign(t, claimsFor(p.URL), "")
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	// The IdP adds a new key and starts signing with it.
	p.publish(k1, k2)
	time.Sleep(60 * time.Millisecond)
	if _, err := v.Verify(ctx, k2.sign(t, claimsFor(p.URL), "")); err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("old kid while still published: %v", err)
	}
	// The IdP retires the old key; the periodic refresh drops it.
	p.publish(k2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(ctx, old)
		if reason(err) == "unknown_kid" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retired key still accepted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, k2.sign(t, claimsFor(p.URL), "")); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshFailureKeepsOldKeys(t *testing.T) {
	k := newRSAKey(t, "k1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, nil)
	ks := v.byIss[p.URL].ks.Load()
	tok := k.sign(t, claimsFor(p.URL), "")

	p.jwksDown.Store(true)
	if err := ks.Refresh(context.Background()); err == nil {
		t.Fatal("refresh against a failing JWKS succeeded")
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("old keys dropped after failed refresh: %v", err)
	}
	// A JWKS with no usable keys is treated as a failure, not as "no keys".
	p.jwksDown.Store(false)
	p.publish()
	if err := ks.Refresh(context.Background()); err == nil {
		t.Fatal("empty JWKS accepted")
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("old keys dropped after empty JWKS: %v", err)
	}
	if n := ks.Fetches(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}
}

// The key set itself refuses algorithm/key-type confusion even if a caller
// allowed HMAC algorithms (the config validation forbids that).
func TestKeySetKeyTypeConfusion(t *testing.T) {
	rk := newRSAKey(t, "rsa-1", 0)
	ec := newECKey(t, "ec-1")
	p := newIdP(t, rk, ec)
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, _ := (&jose.JSONWebKey{Key: secret, KeyID: "hmac-1", Algorithm: "HS256"}).MarshalJSON()
	p.rawJWKSExt = []json.RawMessage{oct, json.RawMessage(`{"kty":"RSA","kid":"broken","n":"AQAB"}`)}
	ks := NewKeySet(context.Background(), "test", p.URL+"/jwks", nil, []string{"RS256", "ES256", "HS256", "none"}, time.Hour, discardLog())
	if err := ks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ids := ks.KeyIDs(); len(ids) != 2 {
		t.Fatalf("cached kids = %v, want only the two asymmetric keys", ids)
	}
	der, _ := x509.MarshalPKIXPublicKey(rk.priv.Public())
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	withKid := func(kid string) *jose.SignerOptions { return (&jose.SignerOptions{}).WithHeader("kid", kid) }
	c := claimsFor(p.URL)
	for _, tc := range []struct{ name, tok, want string }{
		{"RS256 ok", rk.sign(t, c, ""), ""},
		{"ES256 ok", ec.sign(t, c, ""), ""},
		{"HS256 keyed with RSA DER", signWith(t, jose.HS256, der, c, "", withKid("rsa-1")), "bad_signature"},
		{"HS256 keyed with RSA PEM", signWith(t, jose.HS256, pemBytes, c, "", withKid("rsa-1")), "bad_signature"},
		{"HS256 with published oct key", signWith(t, jose.HS256, secret, c, "", withKid("hmac-1")), "unknown_kid"},
		{"ES256 naming RSA kid", signWith(t, jose.ES256, jose.JSONWebKey{Key: ec.priv, KeyID: "rsa-1"}, c, "", nil), "bad_signature"},
		{"RS256 naming EC kid", signWith(t, jose.RS256, jose.JSONWebKey{Key: rk.priv, KeyID: "ec-1"}, c, "", nil), "bad_signature"},
		{"alg none", unsigned(map[string]any{"alg": "none", "kid": "rsa-1"}, c, ""), "bad_signature"},
		{"RS512 not in list", signWith(t, jose.RS512, jose.JSONWebKey{Key: rk.priv, KeyID: "rsa-1"}, c, "", nil), "alg_not_allowed"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.VerifySignature(context.Background(), tc.tok)
			if got := reason(err); got != tc.want {
				t.Fatalf("reason = %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

func TestKeySetKeyWithoutKid(t *testing.T) {
	k := newECKey(t, "")
	p := newIdP(t, k)
	ks := NewKeySet(context.Background(), "test", p.URL+"/jwks", nil, []string{"ES256"}, time.Hour, discardLog())
	if err := ks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.VerifySignature(context.Background(), k.sign(t, claimsFor(p.URL), "")); err != nil {
		t.Fatal(err)
	}
	other := newECKey(t, "")
	if _, err := ks.VerifySignature(context.Background(), other.sign(t, claimsFor(p.URL), "")); reason(err) != "bad_signature" {
		t.Fatalf("err = %v", err)
	}
	if n := ks.Fetches(); n != 1 {
		t.Fatalf("fetches = %d: a kid-less token must not trigger refetches", n)
	}
}
