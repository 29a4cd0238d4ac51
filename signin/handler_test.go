package signin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// fakeIdP is an OIDC provider that checks what a real one checks of the
// code exchange (client secret, redirect URI, PKCE S256) and lets a test
// choose what the ID token says.
type fakeIdP struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	codes  map[string]authz
	claims func(a authz) map[string]any // the ID token's claims
}

type authz struct{ challenge, nonce, redirect string }

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fakeIdP{key: key, codes: map[string]authz{}}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	iss := f.srv.URL
	f.claims = func(a authz) map[string]any {
		return map[string]any{"iss": iss, "sub": "a1", "aud": "web", "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
			"nonce": a.nonce, "email": "Alice@example.com", "email_verified": true}
	}
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": iss + "/auth", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/jwks", "end_session_endpoint": iss + "/logout", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		f.mu.Lock()
		a, ok := f.codes[r.Form.Get("code")]
		delete(f.codes, r.Form.Get("code"))
		f.mu.Unlock()
		sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
		if id != "web" || secret != "web-secret" || !ok || r.Form.Get("redirect_uri") != a.redirect ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != a.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
		payload, _ := json.Marshal(f.claims(a))
		jws, _ := signer.Sign(payload)
		idt, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": idt, "expires_in": 60})
	})
	return f
}

// authorize is the IdP's authorization endpoint as a browser meets it:
// the user signs in and a code comes back for the redirect URI.
func (f *fakeIdP) authorize(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, f.srv.URL+"/auth?") {
		t.Fatalf("authorization URL %q", authURL)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
		q.Get("response_type") != "code" || q.Get("client_id") != "web" || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("authorization request lacks PKCE S256, nonce, state or the code flow: %v", q)
	}
	code = base64.RawURLEncoding.EncodeToString([]byte(q.Get("state")))[:20]
	f.mu.Lock()
	f.codes[code] = authz{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	f.mu.Unlock()
	return code, q.Get("state")
}

type flow struct {
	t    *testing.T
	h    *Handler
	idp  *fakeIdP
	keys *extauthz.SessionKeys
}

func newFlow(t *testing.T) *flow {
	idp := newFakeIdP(t)
	keys, _ := extauthz.NewSessionKeys([]byte(strings.Repeat("k", 32)))
	h, err := New(Config{Keys: keys, Lifetime: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Provider: ProviderConfig{Name: "idp", IssuerURL: idp.srv.URL, ClientID: "web", ClientSecret: "web-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	return &flow{t: t, h: h, idp: idp, keys: keys}
}

func (f *flow) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://shop.example.com:10000"+target, nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// start begins a sign-in for rd and returns the binding cookie and the
// IdP's code and state.
func (f *flow) start(rd string) (*http.Cookie, string, string) {
	f.t.Helper()
	w := f.get(model.SignInPath + "?rd=" + url.QueryEscape(rd))
	if w.Code != 302 {
		f.t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	b := cookieNamed(w, "gatehouse-signin")
	if b == nil || !b.HttpOnly || b.SameSite != http.SameSiteLaxMode || b.MaxAge <= 0 || b.MaxAge > 600 {
		f.t.Fatalf("binding cookie %+v", b)
	}
	code, state := f.idp.authorize(f.t, w.Header().Get("Location"))
	return b, code, state
}

func TestOIDCFlow(t *testing.T) {
	t.Run("a sign-in ends in a session and back where it started", func(t *testing.T) {
		f := newFlow(t)
		b, code, state := f.start("/orders/1?x=y")
		w := f.get(model.CallbackPath+"?code="+code+"&state="+state, b)
		if w.Code != 302 || w.Header().Get("Location") != "/orders/1?x=y" {
			t.Fatalf("callback: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
		}
		sc := cookieNamed(w, extauthz.SessionCookiePlain)
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure {
			t.Fatalf("session cookie %+v", sc)
		}
		s, err := f.keys.OpenSession(sc.Value, time.Now())
		if err != nil || s.Subject != "a1" || s.Email != "alice@example.com" || s.Issuer != f.idp.srv.URL || s.Method != "oidc" {
			t.Fatalf("session %+v %v", s, err)
		}
		if len(sc.Value) > 400 {
			t.Errorf("the session cookie is %d bytes: it should hold the identity key only", len(sc.Value))
		}
		if c := cookieNamed(w, "gatehouse-signin"); c == nil || c.MaxAge >= 0 {
			t.Fatalf("the binding cookie is not cleared: %+v", c)
		}
		// The code is used once (the IdP forgets it), the binding too.
		if w := f.get(model.CallbackPath+"?code="+code+"&state="+state, b); w.Code == 302 {
			t.Fatal("a replayed callback signed in again")
		}
	})

	t.Run("on TLS: __Host- cookies, Secure", func(t *testing.T) {
		f := newFlow(t)
		r := httptest.NewRequest("GET", "http://shop.example.com"+model.SignInPath+"?rd=/a", nil)
		r.Header.Set("X-Forwarded-Proto", "https")
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		b := cookieNamed(w, "__Host-gatehouse-signin")
		if b == nil || !b.Secure || b.Path != "/" || b.Domain != "" {
			t.Fatalf("binding cookie on TLS %+v", b)
		}
		if !strings.Contains(w.Header().Get("Location"), url.QueryEscape("https://shop.example.com/.gatehouse/callback")) {
			t.Fatalf("redirect_uri is not the https callback: %s", w.Header().Get("Location"))
		}
	})

	refused := func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code == 302 || cookieNamed(w, extauthz.SessionCookiePlain) != nil {
			t.Fatalf("want refused, got %d with cookies %v", w.Code, w.Result().Cookies())
		}
		// A refused callback spends its binding too.
		if c := cookieNamed(w, extauthz.BindingCookiePlain); c == nil || c.MaxAge >= 0 {
			t.Fatalf("a refused callback left the binding cookie: %v", w.Result().Cookies())
		}
	}
	t.Run("refusals", func(t *testing.T) {
		f := newFlow(t)
		b, code, state := f.start("/a")
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state))          // no binding: login CSRF
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state+"x", b))   // state mismatch
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state=", b))             // empty state
		refused(t, f.get(model.CallbackPath+"?state="+state, b))                     // no code
		refused(t, f.get(model.CallbackPath+"?error=access_denied&state="+state, b)) // the IdP said no
		tampered := *b
		tampered.Value = b.Value[:len(b.Value)-3] + "AAA"
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state, &tampered))
		// A binding of another browser: its own state does not fit ours.
		b2, _, state2 := f.start("/b")
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state2, b))
		_ = b2
	})

	t.Run("PKCE: a code exchanged without this browser's verifier is refused", func(t *testing.T) {
		f := newFlow(t)
		b, code, state := f.start("/a")
		// An attacker's binding (its own verifier) with the victim's code.
		other, _, _ := f.start("/a")
		var ob binding
		f.keys.Open(other.Value, extauthz.PurposeBinding, &ob)
		ob.State = state
		forged, _ := f.keys.Seal(ob, extauthz.PurposeBinding)
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state, &http.Cookie{Name: b.Name, Value: forged}))
	})

	t.Run("nonce: an ID token of another sign-in is refused", func(t *testing.T) {
		f := newFlow(t)
		f.idp.claims = func(a authz) map[string]any {
			return map[string]any{"iss": f.idp.srv.URL, "sub": "a1", "aud": "web", "exp": time.Now().Add(time.Minute).Unix(), "nonce": "another"}
		}
		b, code, state := f.start("/a")
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state, b))
	})

	t.Run("an ID token for another client is refused", func(t *testing.T) {
		f := newFlow(t)
		f.idp.claims = func(a authz) map[string]any {
			return map[string]any{"iss": f.idp.srv.URL, "sub": "a1", "aud": "other", "exp": time.Now().Add(time.Minute).Unix(), "nonce": a.nonce}
		}
		b, code, state := f.start("/a")
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state, b))
	})

	t.Run("an unverified email is kept as unverified", func(t *testing.T) {
		f := newFlow(t)
		f.idp.claims = func(a authz) map[string]any {
			return map[string]any{"iss": f.idp.srv.URL, "sub": "m1", "aud": "web", "exp": time.Now().Add(time.Minute).Unix(), "nonce": a.nonce,
				"email": "carol@example.com", "email_verified": false}
		}
		b, code, state := f.start("/a")
		w := f.get(model.CallbackPath+"?code="+code+"&state="+state, b)
		s, err := f.keys.OpenSession(cookieNamed(w, extauthz.SessionCookiePlain).Value, time.Now())
		if err != nil || s.Email != "carol@example.com" || s.EmailVerified == nil || *s.EmailVerified {
			t.Fatalf("session %+v %v: an unverified email must be kept as unverified (Check applies trust_email)", s, err)
		}
	})

	t.Run("an expired binding is refused", func(t *testing.T) {
		f := newFlow(t)
		b, code, state := f.start("/a")
		f.h.cfg.Now = func() time.Time { return time.Now().Add(11 * time.Minute) }
		refused(t, f.get(model.CallbackPath+"?code="+code+"&state="+state, b))
	})

	t.Run("a return URL elsewhere is refused before the IdP", func(t *testing.T) {
		f := newFlow(t)
		for _, rd := range []string{"https://evil.example.com/", "//evil.example.com", "/\\evil.example.com", "javascript:alert(1)"} {
			w := f.get(model.SignInPath + "?rd=" + url.QueryEscape(rd))
			if w.Code != 400 || cookieNamed(w, "gatehouse-signin") != nil {
				t.Errorf("rd=%q: %d", rd, w.Code)
			}
		}
	})

	t.Run("logout clears the session and ends the IdP session", func(t *testing.T) {
		f := newFlow(t)
		w := f.get(model.LogoutPath, &http.Cookie{Name: extauthz.SessionCookiePlain, Value: "x"})
		c := cookieNamed(w, extauthz.SessionCookiePlain)
		if w.Code != 302 || c == nil || c.MaxAge >= 0 {
			t.Fatalf("logout: %d, cookie %+v", w.Code, c)
		}
		loc, _ := url.Parse(w.Header().Get("Location"))
		if loc.Path != "/logout" || loc.Query().Get("client_id") != "web" ||
			loc.Query().Get("post_logout_redirect_uri") != "http://shop.example.com:10000"+model.SignedOutPath {
			t.Fatalf("logout goes to %s", loc)
		}
	})
}
