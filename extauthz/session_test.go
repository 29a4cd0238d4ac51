package extauthz

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

func testKeys(t testing.TB, fill ...byte) *SessionKeys {
	t.Helper()
	var keys [][]byte
	for _, f := range fill {
		keys = append(keys, bytes.Repeat([]byte{f}, SessionKeyBytes))
	}
	k, err := NewSessionKeys(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func aliceSession(now time.Time) Session {
	return Session{Issuer: "https://idp", Subject: "a1", Email: "alice@example.com", Method: "oidc", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix()}
}

func TestSessionSealing(t *testing.T) {
	now := time.Now()
	k := testKeys(t, 1)
	sealed, err := k.SealSession(aliceSession(now))
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.OpenSession(sealed, now)
	if err != nil || got.Subject != "a1" || got.Email != "alice@example.com" || got.AuthName() != "oidc-session" {
		t.Fatalf("OpenSession = %+v, %v", got, err)
	}
	if strings.Contains(sealed, "alice") {
		t.Fatal("the sealed value shows its content")
	}
	other, _ := k.SealSession(aliceSession(now))
	if other == sealed {
		t.Fatal("two seals of one session are equal (nonce reused)")
	}

	t.Run("refused", func(t *testing.T) {
		binding, _ := k.Seal(aliceSession(now), PurposeBinding)
		expired := aliceSession(now)
		expired.Expiry = now.Add(-time.Second).Unix()
		exp, _ := k.SealSession(expired)
		future := aliceSession(now)
		future.IssuedAt = now.Add(time.Hour).Unix()
		fut, _ := k.SealSession(future)
		noSub := aliceSession(now)
		noSub.Subject = ""
		ns, _ := k.SealSession(noSub)
		otherKey, _ := testKeys(t, 2).SealSession(aliceSession(now))
		for name, v := range map[string]string{
			"sealed for another purpose": binding, "expired": exp, "issued in the future": fut, "without sub": ns,
			"another key": otherKey, "empty": "", "no prefix": sealed[3:], "v2": "v2" + sealed[2:], "truncated": sealed[:20],
			"too long": sealed + strings.Repeat("A", maxSealed), "not base64": "v1.!!!!", "short": "v1.AAAA",
		} {
			if s, err := k.OpenSession(v, now); err == nil {
				t.Errorf("%s: opened as %+v", name, s)
			}
		}
	})

	t.Run("every flipped bit is refused", func(t *testing.T) {
		raw, _ := base64.RawURLEncoding.DecodeString(sealed[len(sealPrefix):])
		for i := range raw {
			for bit := 0; bit < 8; bit++ {
				c := bytes.Clone(raw)
				c[i] ^= 1 << bit
				if s, err := k.OpenSession(sealPrefix+base64.RawURLEncoding.EncodeToString(c), now); err == nil {
					t.Fatalf("byte %d bit %d flipped: opened as %+v", i, bit, s)
				}
			}
		}
	})

	t.Run("rotation: the new key seals, the old one still opens", func(t *testing.T) {
		old := testKeys(t, 1)
		rotated := testKeys(t, 3, 1)
		before, _ := old.SealSession(aliceSession(now))
		if _, err := rotated.OpenSession(before, now); err != nil {
			t.Fatalf("a session of the old key: %v", err)
		}
		after, _ := rotated.SealSession(aliceSession(now))
		if _, err := testKeys(t, 3).OpenSession(after, now); err != nil {
			t.Fatalf("the new key seals: %v", err)
		}
		if _, err := old.OpenSession(after, now); err == nil {
			t.Fatal("the old key alone opened a session of the new one")
		}
	})
}

func TestLoadSessionKeys(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.key")
	k1, err := LoadSessionKeys(gen, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(gen); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v", fi, err)
	}
	k2, err := LoadSessionKeys(gen, true) // read back, not regenerated
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := k1.SealSession(aliceSession(time.Now()))
	if _, err := k2.OpenSession(sealed, time.Now()); err != nil {
		t.Fatalf("two replicas with one key file: %v", err)
	}
	b64 := filepath.Join(dir, "b64.key")
	os.WriteFile(b64, []byte("# rotated 2026-12-01\n"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n\n"+strings.Repeat("ab", 32)+"\n"), 0o600)
	if k, err := LoadSessionKeys(b64, false); err != nil || len(k.aeads) != 2 {
		t.Fatalf("base64 and hex keys: %v", err)
	}
	for name, content := range map[string]string{"short": "abcd\n", "empty": "# nothing\n", "text": "secret-password\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadSessionKeys(p, false); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
	if _, err := LoadSessionKeys(filepath.Join(dir, "missing"), false); err == nil {
		t.Error("a missing key file without generate_key accepted")
	}
}

// FuzzOpenSession: a random or tampered cookie never yields a session.
func FuzzOpenSession(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	// A key of this process only: a value sealed in an earlier run (and
	// kept in the corpus) is as foreign as any other.
	key := make([]byte, SessionKeyBytes)
	rand.Read(key)
	k, _ := NewSessionKeys(key)
	valid, _ := k.SealSession(aliceSession(now))
	f.Add(valid, 0, byte(1))
	f.Add("v1.", 0, byte(0))
	f.Add("", 3, byte(0xff))
	f.Fuzz(func(t *testing.T, s string, pos int, xor byte) {
		if s == valid && xor == 0 {
			return
		}
		b := []byte(s)
		if len(b) > 0 && xor != 0 {
			if pos < 0 {
				pos = -pos
			}
			b[pos%len(b)] ^= xor
		}
		in := string(b)
		if in == valid {
			return
		}
		// Another encoding of the same bytes (base64 padding bits) opens
		// the same session: only a different ciphertext must not.
		if strings.HasPrefix(in, sealPrefix) {
			raw, err := base64.RawURLEncoding.DecodeString(in[len(sealPrefix):])
			vraw, _ := base64.RawURLEncoding.DecodeString(valid[len(sealPrefix):])
			if err == nil && bytes.Equal(raw, vraw) {
				return
			}
		}
		if sess, err := k.OpenSession(in, now); err == nil {
			t.Fatalf("%q opened as %+v", in, sess)
		}
	})
}

func TestPrefersHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8": true, // Chromium navigating
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8":                       true, // Firefox
		"text/html":                             true,
		"TEXT/HTML; q=1":                        true,
		"*/*":                                   false, // fetch(), curl
		"":                                      false, // gRPC clients, curl without -H
		"application/json":                      false,
		"application/json, text/plain, */*":     false, // axios
		"application/json;q=1, text/html;q=0.5": false,
		"text/html;q=0":                         false,
		"text/html;q=0.5, */*;q=0.9":            false,
		"application/grpc":                      false,
		"text/html;q=abc":                       false,
	} {
		if got := prefersHTML(accept); got != want {
			t.Errorf("prefersHTML(%q) = %v, want %v", accept, got, want)
		}
	}
}

// newSessionServer is newTestServer with sessions on; ledger's routes
// never redirect (gatehouse.dev/sign-in: off).
func newSessionServer(t testing.TB) (*Server, *SessionKeys, *lockedBuffer, *Audit) {
	t.Helper()
	s, _, _, audit, buf := newTestServer(t)
	keys := testKeys(t, 9)
	s.opts.Sessions = keys
	m := testcatalog.MustFiles(t, "testdata/policy-catalog.yaml")
	for i := range m.VirtualHosts {
		for j := range m.VirtualHosts[i].Routes {
			if r := &m.VirtualHosts[i].Routes[j]; r.Entity == "component:default/ledger" {
				r.Auth.SignIn = model.SignInOff
			}
		}
	}
	m.Version += "-signin"
	s.SetModel(m)
	return s, keys, buf, audit
}

func withScheme(r *authv3.CheckRequest, scheme string) *authv3.CheckRequest {
	r.Attributes.Request.Http.Scheme = scheme
	return r
}

func TestSessionCheck(t *testing.T) {
	s, keys, buf, audit := newSessionServer(t)
	ctx := context.Background()
	sealed, _ := keys.SealSession(aliceSession(time.Now()))
	const html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	status := func(r *authv3.CheckResponse) int {
		if r.GetOkResponse() != nil {
			return 200
		}
		return int(r.GetDeniedResponse().GetStatus().GetCode())
	}

	t.Run("a session names the user, decided like a token", func(t *testing.T) {
		r, _ := s.Check(ctx, withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "a=b; gatehouse-session=" + sealed + "; c=d"}), "http"))
		ok := r.GetOkResponse()
		if ok == nil {
			t.Fatalf("want allow, got %v", r)
		}
		h := headerMap(ok.GetHeaders())
		if h[model.UserHeader] != "user:default/alice" || h["cookie"] != "a=b; c=d" {
			t.Fatalf("headers %v: want alice, and the session cookie removed", h)
		}
		// bob's session is bob: the catalog decides, not the cookie.
		bob := aliceSession(time.Now())
		bob.Subject, bob.Email = "b1", "bob@example.com"
		bs, _ := keys.SealSession(bob)
		if r, _ := s.Check(ctx, withScheme(checkReq(ordersRoute, "POST", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + bs}), "http")); status(r) != 403 {
			t.Fatalf("bob's session: %d, want 403", status(r))
		}
	})

	t.Run("a public path never sees the session cookie", func(t *testing.T) {
		r, _ := s.Check(ctx, withScheme(checkReq(ordersRoute+"#public:/orders/healthz", "GET", "/orders/healthz", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http"))
		ok := r.GetOkResponse()
		if ok == nil || !slices.Contains(ok.GetHeadersToRemove(), "cookie") {
			t.Fatalf("want allow with the Cookie header removed, got %v", r)
		}
	})

	t.Run("on TLS only the __Host- cookie counts", func(t *testing.T) {
		r, _ := s.Check(ctx, withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "https"))
		if status(r) != 401 {
			t.Fatalf("plain cookie on https: %d, want 401", status(r))
		}
		r, _ = s.Check(ctx, withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": SessionCookieTLS + "=" + sealed}), "https"))
		if status(r) != 200 {
			t.Fatalf("__Host- cookie on https: %d, want 200", status(r))
		}
	})

	t.Run("content negotiation", func(t *testing.T) {
		for _, tc := range []struct {
			name, route, method string
			headers             map[string]string
			want                int
		}{
			{"a browser", ordersRoute, "GET", map[string]string{"accept": html}, 302},
			{"a browser, HEAD", ordersRoute, "HEAD", map[string]string{"accept": html}, 302},
			{"a browser with a broken session", ordersRoute, "GET", map[string]string{"accept": html, "cookie": "gatehouse-session=v1.AAAA"}, 302},
			{"a browser posting a form", ordersRoute, "POST", map[string]string{"accept": html}, 401},
			{"a browser with a bearer token", ordersRoute, "GET", map[string]string{"accept": html, "authorization": "Bearer forged"}, 401},
			{"a bearer token wins over a session (bob, not alice)", ordersRoute, "GET", map[string]string{"accept": html, "authorization": "Bearer bob-token", "cookie": "gatehouse-session=" + sealed}, 403},
			{"a browser on a pure API", ledgerRoute, "GET", map[string]string{"accept": html}, 401},
			{"fetch()", ordersRoute, "GET", map[string]string{"accept": "*/*"}, 401},
			{"JSON", ordersRoute, "GET", map[string]string{"accept": "application/json"}, 401},
			{"gRPC", ordersRoute, "POST", map[string]string{"content-type": "application/grpc"}, 401},
			{"a forged session with JSON", ordersRoute, "GET", map[string]string{"accept": "application/json", "cookie": "gatehouse-session=v1.AAAA"}, 401},
		} {
			r, _ := s.Check(ctx, withScheme(checkReq(tc.route, tc.method, "/orders/1?x=1", tc.headers), "http"))
			if tc.route == ledgerRoute {
				r, _ = s.Check(ctx, withScheme(checkReq(tc.route, tc.method, "/ledger/1", tc.headers), "http"))
			}
			if got := status(r); got != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
				continue
			}
			if tc.want != 302 {
				continue
			}
			h := headerMap(r.GetDeniedResponse().GetHeaders())
			if h["location"] != "/.gatehouse/signin?rd=%2Forders%2F1%3Fx%3D1" || h["cache-control"] != "no-store" {
				t.Errorf("%s: headers %v", tc.name, h)
			}
			if _, clears := h["set-cookie"]; clears != (tc.headers["cookie"] != "") {
				t.Errorf("%s: set-cookie %q", tc.name, h["set-cookie"])
			}
		}
	})

	t.Run("without sessions configured nobody is redirected", func(t *testing.T) {
		plain, _, _, _, _ := newTestServer(t)
		r, _ := plain.Check(ctx, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"accept": html, "cookie": "gatehouse-session=" + sealed}))
		if status(r) != 401 {
			t.Fatalf("%d, want 401", status(r))
		}
	})

	t.Run("the audit says how the user was identified", func(t *testing.T) {
		audit.Close()
		var sawSession, sawBearer bool
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var rec AuditRecord
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			sawSession = sawSession || (rec.Auth == "oidc-session" && rec.Principal == "user:default/alice")
			sawBearer = sawBearer || (rec.Auth == "bearer" && rec.Principal == "user:default/bob")
		}
		if !sawSession || !sawBearer {
			t.Fatalf("audit lacks auth: oidc-session / bearer:\n%s", buf.String())
		}
		if strings.Contains(buf.String(), sealed) {
			t.Fatal("the audit holds a session cookie")
		}
	})
}

// BenchmarkCheckCachedSession is BenchmarkCheckCachedAllow with a browser
// session instead of a bearer token (the issue asks for no more than 1.2x).
func BenchmarkCheckCachedSession(b *testing.B) {
	s, keys, _, audit := newSessionServer(b)
	defer audit.Close()
	sealed, _ := keys.SealSession(aliceSession(time.Now()))
	benchCachedAllow(b, s, withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "_ga=GA1.1.1; gatehouse-session=" + sealed + "; theme=dark"}), "http"))
}

// BenchmarkCheckCachedBearerLikeABrowser is the bearer twin of
// BenchmarkCheckCachedSession: a token as long as a real IdP's (about
// 1 KB; Keycloak's access tokens are 1-1.5 KB) and the same other cookies,
// so the two differ only in where the credential travels.
func BenchmarkCheckCachedBearerLikeABrowser(b *testing.B) {
	s, v, _, audit, _ := newTestServer(b)
	defer audit.Close()
	tok := strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 50)
	v.ids[tok] = v.ids["alice-token"]
	benchCachedAllow(b, s, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer " + tok, "cookie": "_ga=GA1.1.1; theme=dark"}))
}

// trustingVerifier is a verifier that knows which issuers are configured.
type trustingVerifier struct {
	TokenVerifier
	issuers map[string]bool
}

func (t trustingVerifier) Trusts(iss string) bool { return t.issuers[iss] }

// A session signed in through an issuer that is no longer configured is
// refused at once, not honoured until it expires.
func TestSessionOfARemovedIssuerIsRefused(t *testing.T) {
	s, keys, _, audit := newSessionServer(t)
	defer audit.Close()
	sealed, _ := keys.SealSession(aliceSession(time.Now()))
	req := withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http")
	base := s.Verifier()
	s.SetVerifier(trustingVerifier{base, map[string]bool{"https://idp": true}})
	if r, _ := s.Check(context.Background(), req); r.GetOkResponse() == nil {
		t.Fatalf("session of a configured issuer: %v", r)
	}
	// The issuer is removed (a reload). Decisions already cached live at
	// most authz.cache_ttl, as for bearer tokens; start with an empty cache.
	s.SetVerifier(trustingVerifier{base, map[string]bool{}})
	s.state.Store(&engineState{engine: s.Engine(), model: s.Model(), cache: newDecisionCache(10)})
	r, _ := s.Check(context.Background(), req)
	if r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("session of a removed issuer: %v", r)
	}
}

// configuredVerifier gives each issuer's current settings.
type configuredVerifier struct {
	TokenVerifier
	issuers map[string]IssuerConfig
}

func (c configuredVerifier) IssuerConfig(iss string) (IssuerConfig, bool) {
	cfg, ok := c.issuers[iss]
	return cfg, ok
}

// A session is read under its issuer's settings of the request, not of
// its sign-in: trust_email and entity_ref_subjects turned off apply to
// sessions already signed in.
func TestSessionReadUnderTheIssuersCurrentSettings(t *testing.T) {
	s, keys, _, audit := newSessionServer(t)
	defer audit.Close()
	base := s.Verifier()
	no := false
	unverified := aliceSession(time.Now())
	unverified.EmailVerified = &no
	entityRef := aliceSession(time.Now())
	entityRef.Subject, entityRef.Email, entityRef.EntityRefSubject = "user:default/alice", "", true
	legacy := aliceSession(time.Now()) // sealed before email_verified was kept: its email counted then
	for _, tc := range []struct {
		name    string
		session Session
		cfg     IssuerConfig
		want    int
	}{
		{"unverified email, trust_email on", unverified, IssuerConfig{Name: "kc", TrustEmail: true}, 200},
		{"unverified email, trust_email now off", unverified, IssuerConfig{Name: "kc"}, 403},
		{"entity ref subject, entity_ref_subjects on", entityRef, IssuerConfig{Name: "kc", EntityRefSubjects: true}, 200},
		{"entity ref subject, entity_ref_subjects now off", entityRef, IssuerConfig{Name: "kc"}, 403},
		{"a cookie from before email_verified was kept", legacy, IssuerConfig{Name: "kc"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.SetVerifier(configuredVerifier{base, map[string]IssuerConfig{"https://idp": tc.cfg}})
			sealed, _ := keys.SealSession(tc.session)
			r, _ := s.Check(context.Background(), withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http"))
			got := 200
			if r.GetOkResponse() == nil {
				got = int(r.GetDeniedResponse().GetStatus().GetCode())
			}
			if got != tc.want {
				t.Fatalf("%d, want %d", got, tc.want)
			}
		})
	}
	s.SetVerifier(configuredVerifier{base, map[string]IssuerConfig{}})
	sealed, _ := keys.SealSession(legacy)
	if r, _ := s.Check(context.Background(), withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http")); r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("session of an issuer no longer configured: %v", r)
	}
}

// A session's expiry is judged by the server's clock (the one the cache
// and the assertions use), not the machine's.
func TestSessionExpiryByTheServersClock(t *testing.T) {
	s, keys, _, audit := newSessionServer(t)
	defer audit.Close()
	sealed, _ := keys.SealSession(aliceSession(time.Now())) // an hour
	req := withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http")
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if r, _ := s.Check(context.Background(), req); r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("a session past its expiry on the server's clock: %v", r)
	}
	s.now = time.Now
	if r, _ := s.Check(context.Background(), req); r.GetOkResponse() == nil {
		t.Fatalf("the same session now: %v", r)
	}
}
