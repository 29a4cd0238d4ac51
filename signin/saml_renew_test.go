package signin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// samlSessionCookie signs alice in at the fixture's IdP and returns the
// session cookie the ACS set.
func (f *samlFixture) samlSessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	c, b := f.start(t)
	w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false))
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.SessionCookiePlain && c.MaxAge > 0 {
			return c
		}
	}
	t.Fatalf("no session: %d %s\n%s", w.Code, w.Body, f.logs)
	return nil
}

// The ACS writes the session with the configured SessionCookie: the
// cookie domain, and the browser keeps it renew_grace past its end.
func TestSAMLSessionCookieScope(t *testing.T) {
	f := newSAMLFixture(t, func(c *Config) {
		c.Cookie = extauthz.SessionCookie{Domain: "example.test"}
		c.Lifetime, c.RenewGrace = time.Hour, 30*time.Minute
	})
	c, b := f.start(t)
	w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false))
	var set string
	for _, v := range w.Header().Values("Set-Cookie") {
		if strings.HasPrefix(v, extauthz.SessionCookiePlain+"=") {
			set = v
		}
	}
	if !strings.Contains(set, "; Domain=example.test") || !strings.Contains(set, "; Max-Age=5400") {
		t.Fatalf("session cookie %q: want Domain=example.test and Max-Age=5400 (1h + 30m grace)\n%s", set, f.logs)
	}

	// A host outside the cookie domain cannot start a SAML sign-in (the
	// browser would drop the cookie and come back for ever).
	out := newSAMLFixture(t, func(c *Config) { c.Cookie = extauthz.SessionCookie{Domain: "other.test"} })
	w = httptest.NewRecorder()
	out.h.ServeHTTP(w, httptest.NewRequest("GET", "http://"+testHost+model.SignInPath+"?rd=%2F", nil))
	if w.Code != 400 {
		t.Fatalf("SAML sign-in on a host outside signin.cookie_domain: %d, want 400", w.Code)
	}
}

// Renewal is OIDC's prompt=none; a SAML session is renewed by its own
// IdP's sign-in, never at the OIDC issuer, and a SAML sign-in ignores
// renew=1 (so a late SAML session cannot loop on a silent answer that
// never comes).
func TestSAMLRenewal(t *testing.T) {
	renew := func(h *Handler, cookie *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://"+testHost+model.SignInPath+"?rd=%2Forders%2F1&"+model.RenewParam+"=1", nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	toSAML := func(w *httptest.ResponseRecorder) bool {
		loc := w.Header().Get("Location")
		return w.Code == 302 && strings.HasPrefix(loc, "https://idp.example.test/sso?SAMLRequest=") && !strings.Contains(loc, "prompt")
	}

	t.Run("SAML default: renew=1 is a SAML sign-in", func(t *testing.T) {
		f := newSAMLFixture(t)
		if w := renew(f.h, f.samlSessionCookie(t)); !toSAML(w) {
			t.Fatalf("%d %q, want the SAML IdP", w.Code, w.Header().Get("Location"))
		}
	})

	// OIDC is the default; the session was signed in at the SAML IdP
	// (/.gatehouse/saml/login).
	oidcDefault := func(c *Config) {
		c.SAMLDefault = ""
		c.Provider = ProviderConfig{Name: "kc", IssuerURL: "http://127.0.0.1:1/unreachable", ClientID: "gatehouse"}
		c.Client = &http.Client{Timeout: time.Second}
	}
	t.Run("OIDC default: a SAML session renews at its SAML IdP", func(t *testing.T) {
		f := newSAMLFixture(t, oidcDefault)
		c, b := f.startAt(t, SAMLLoginPath+"?idp=corp&rd=%2Forders%2F1")
		w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false))
		var session *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == extauthz.SessionCookiePlain && c.MaxAge > 0 {
				session = c
			}
		}
		if session == nil {
			t.Fatalf("no SAML session: %d %s", w.Code, f.logs)
		}
		if w := renew(f.h, session); !toSAML(w) {
			t.Fatalf("%d %q, want the SAML IdP", w.Code, w.Header().Get("Location"))
		}
		// An expired SAML session (within the grace) too.
		f.h.cfg.Now = func() time.Time { return samlT0.Add(9 * time.Hour) }
		if w := renew(f.h, session); !toSAML(w) {
			t.Fatalf("expired: %d %q, want the SAML IdP", w.Code, w.Header().Get("Location"))
		}
		// Without a session (or a forged one) renew=1 is OIDC's (here
		// unreachable), never SAML.
		for _, c := range []*http.Cookie{nil, {Name: extauthz.SessionCookiePlain, Value: "v1.forged"}} {
			if w := renew(f.h, c); toSAML(w) {
				t.Fatalf("cookie %v: sent to the SAML IdP", c)
			}
		}
	})

	t.Run("SAML IdP down: a good session goes back to its page, renewal tried", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }))
		defer srv.Close()
		f := newSAMLFixture(t)
		session := f.samlSessionCookie(t)
		down := newSAMLFixture(t, func(c *Config) { c.SAML[0].MetadataFile, c.SAML[0].MetadataURL = "", srv.URL })
		down.keys = f.keys
		down.h.cfg.Keys = f.keys
		late := samlT0.Add(7 * time.Hour)
		down.h.cfg.Now = func() time.Time { return late }
		w := renew(down.h, session)
		if w.Code != 302 || w.Header().Get("Location") != "/orders/1" {
			t.Fatalf("%d %q, want back to /orders/1\n%s", w.Code, w.Header().Get("Location"), down.logs)
		}
		var tried *extauthz.Session
		for _, c := range w.Result().Cookies() {
			if c.Name == extauthz.SessionCookiePlain && c.MaxAge > 0 {
				tried, _ = f.keys.OpenSession(c.Value, late)
			}
		}
		if tried == nil || tried.RenewTried != late.Unix() || tried.Method != extauthz.MethodSAML || tried.Subject != "alice" {
			t.Fatalf("session after the failed renewal: %+v", tried)
		}
		if tried.RenewAt() <= late.Unix() {
			t.Fatalf("RenewAt %d is not after now %d: the next navigation would loop", tried.RenewAt(), late.Unix())
		}
		// Expired: nothing to go back to.
		down.h.cfg.Now = func() time.Time { return samlT0.Add(9 * time.Hour) }
		if w := renew(down.h, session); w.Code != 502 {
			t.Fatalf("expired session, IdP down: %d, want 502", w.Code)
		}
	})
}

// startAt begins a sign-in at path; it returns the binding cookie and
// what it seals.
func (f *samlFixture) startAt(t *testing.T, path string) (*http.Cookie, samlBinding) {
	t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest("GET", "http://"+testHost+path, nil))
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.BindingCookiePlain && c.MaxAge > 0 {
			var b samlBinding
			if err := f.keys.Open(c.Value, PurposeSAMLBinding, &b); err != nil {
				t.Fatal(err)
			}
			return c, b
		}
	}
	t.Fatalf("no binding cookie: %d %s", w.Code, w.Body)
	return nil, samlBinding{}
}
