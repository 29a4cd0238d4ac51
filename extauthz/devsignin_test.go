package extauthz

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/model"
)

// devPicker is a development issuer with its picker on, served the way
// the admin listener serves it.
type devPicker struct {
	d   *DevIssuer
	srv *httptest.Server
}

func newDevPicker(t *testing.T) *devPicker {
	t.Helper()
	var p devPicker
	p.srv = httptest.NewUnstartedServer(nil)
	var err error
	p.d, err = NewDevIssuer("http://"+p.srv.Listener.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.d.EnableSignIn(func() []model.User {
		return []model.User{{Ref: "user:default/alice", Email: "alice@example.com", Groups: []string{"group:default/payments"}}, {Ref: "user:default/bob"}}
	})
	p.srv.Config.Handler = p.d.Handler()
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return &p
}

const devVerifier = "dev-verifier-0123456789-0123456789-0123456789"

func devChallenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func devAuthzQuery() url.Values {
	return url.Values{"client_id": {DevSignInClient}, "redirect_uri": {"http://localhost:10000/.gatehouse/callback"}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"st"}, "nonce": {"nn"}, "code_challenge": {devChallenge(devVerifier)}, "code_challenge_method": {"S256"}}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// picker loads the picker page: its form fields and the picker cookie.
func (p *devPicker) picker(t *testing.T, q url.Values) (url.Values, *http.Cookie) {
	t.Helper()
	resp, err := noFollow.Get(p.d.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "DEVELOPMENT SIGN-IN") {
		t.Fatalf("picker: %d %s", resp.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type=hidden name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == devPickerCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("picker cookie %+v", c)
			}
			return form, c
		}
	}
	t.Fatal("no picker cookie")
	return nil, nil
}

// pick posts the form; it returns the status and the Location.
func (p *devPicker) pick(t *testing.T, form url.Values, c *http.Cookie, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.d.Issuer()+"/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.AddCookie(c)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func (p *devPicker) exchange(t *testing.T, form url.Values, basic bool) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.d.Issuer()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(DevSignInClient, p.d.ClientSecret())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// codeFor runs the picker for alice and returns the code.
func (p *devPicker) codeFor(t *testing.T) string {
	t.Helper()
	form, c := p.picker(t, devAuthzQuery())
	form.Set("user", "user:default/alice")
	status, loc := p.pick(t, form, c, p.d.origin())
	u, _ := url.Parse(loc)
	if status != 302 || !strings.HasPrefix(loc, "http://localhost:10000/.gatehouse/callback?") || u.Query().Get("state") != "st" || u.Query().Get("code") == "" {
		t.Fatalf("pick: %d %q", status, loc)
	}
	return u.Query().Get("code")
}

func TestDevSignInFlow(t *testing.T) {
	p := newDevPicker(t)
	// Discovery names the endpoints and the code flow with S256.
	resp, err := http.Get(p.d.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["authorization_endpoint"] != p.d.Issuer()+"/authorize" || disc["token_endpoint"] != p.d.Issuer()+"/token" ||
		!strings.Contains(strings.Join(anyStrings(disc["code_challenge_methods_supported"]), ","), "S256") {
		t.Fatalf("discovery %v", disc)
	}
	code := p.codeFor(t)
	status, out := p.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:10000/.gatehouse/callback"}, "code_verifier": {devVerifier}}, true)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, out)
	}
	idt, _ := out["id_token"].(string)
	parts := strings.Split(idt, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", idt)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	if claims["sub"] != "user:default/alice" || claims["aud"] != DevSignInClient || claims["nonce"] != "nn" || claims["iss"] != p.d.Issuer() ||
		claims["email"] != "alice@example.com" || claims["email_verified"] != true {
		t.Fatalf("ID token claims %v", claims)
	}
	// The code is used once.
	if status, _ := p.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://localhost:10000/.gatehouse/callback"}, "code_verifier": {devVerifier}}, true); status != 400 {
		t.Fatalf("a replayed code: %d", status)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// Hostile inputs at the authorization endpoint: refused with a page, never
// a redirect, until the redirect URI is known good; PKCE S256 required.
func TestDevSignInAuthorizeRefusals(t *testing.T) {
	p := newDevPicker(t)
	for name, edit := range map[string]func(url.Values){
		"another client":            func(q url.Values) { q.Set("client_id", "other") },
		"a redirect off loopback":   func(q url.Values) { q.Set("redirect_uri", "http://evil.example.com/.gatehouse/callback") },
		"a redirect to 10.0.0.1":    func(q url.Values) { q.Set("redirect_uri", "http://10.0.0.1/.gatehouse/callback") },
		"a redirect elsewhere":      func(q url.Values) { q.Set("redirect_uri", "http://localhost:10000/steal") },
		"a redirect with a query":   func(q url.Values) { q.Set("redirect_uri", "http://localhost:10000/.gatehouse/callback?x=1") },
		"a redirect with user info": func(q url.Values) { q.Set("redirect_uri", "http://evil.com@localhost/.gatehouse/callback") },
		"localhost as a prefix":     func(q url.Values) { q.Set("redirect_uri", "http://localhost.evil.com/.gatehouse/callback") },
		"javascript:":               func(q url.Values) { q.Set("redirect_uri", "javascript:alert(1)") },
		"an encoded path":           func(q url.Values) { q.Set("redirect_uri", "http://localhost/.gatehouse%2Fcallback") },
		"no PKCE":                   func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") },
		"PKCE plain":                func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"a short challenge":         func(q url.Values) { q.Set("code_challenge", "abc") },
		"a challenge not base64url": func(q url.Values) { q.Set("code_challenge", strings.Repeat("+", 43)) },
		"implicit flow":             func(q url.Values) { q.Set("response_type", "token") },
		"no state":                  func(q url.Values) { q.Del("state") },
		"no nonce":                  func(q url.Values) { q.Del("nonce") },
		"not OpenID":                func(q url.Values) { q.Set("scope", "email") },
		"a bad redirect, prompt=none": func(q url.Values) {
			q.Set("redirect_uri", "http://evil.example.com/.gatehouse/callback")
			q.Set("prompt", "none")
		},
	} {
		q := devAuthzQuery()
		edit(q)
		resp, err := noFollow.Get(p.d.Issuer() + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d to %q, want a 400 page", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// prompt=none: no session here, login_required back to the client.
	q := devAuthzQuery()
	q.Set("prompt", "none")
	resp, _ := noFollow.Get(p.d.Issuer() + "/authorize?" + q.Encode())
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "http://localhost:10000/.gatehouse/callback?error=login_required&state=st" {
		t.Fatalf("prompt=none: %d %q", resp.StatusCode, loc)
	}
}

// The picker form is bound to the browser that loaded it and to its
// request (CSRF), and only a catalog user can be picked.
func TestDevSignInPickerCSRF(t *testing.T) {
	p := newDevPicker(t)
	form, c := p.picker(t, devAuthzQuery())
	_, other := p.picker(t, devAuthzQuery())
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range form {
			f[kk] = vv
		}
		f.Set("user", "user:default/alice")
		if k != "" {
			f.Set(k, v)
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		cookie *http.Cookie
		origin string
	}{
		{"no picker cookie (a form posted from another site)", with("", ""), nil, ""},
		{"another browser's picker cookie", with("", ""), other, ""},
		{"no csrf field", with("csrf", ""), c, ""},
		{"a forged csrf", with("csrf", strings.Repeat("A", 43)), c, ""},
		{"the redirect swapped after the page", with("redirect_uri", "http://127.0.0.1:1/.gatehouse/callback"), c, ""},
		{"the challenge swapped after the page", with("code_challenge", devChallenge("attacker-verifier-0123456789-0123456789")), c, ""},
		{"the state swapped", with("state", "attacker"), c, ""},
		{"a foreign Origin", with("", ""), c, "http://evil.example.com"},
		{"a user not in the catalog", with("user", "user:default/mallory"), c, ""},
	} {
		status, loc := p.pick(t, tc.form, tc.cookie, tc.origin)
		if status == 302 || loc != "" {
			t.Errorf("%s: %d to %q, want refused", tc.name, status, loc)
		}
	}
	// The untouched form works (the refusals above were for their reason).
	if status, _ := p.pick(t, with("", ""), c, ""); status != 302 {
		t.Fatalf("the real form: %d", status)
	}
}

// The token endpoint: client secret, code once, same redirect URI, and the
// PKCE verifier of the challenge.
func TestDevSignInTokenRefusals(t *testing.T) {
	p := newDevPicker(t)
	const cb = "http://localhost:10000/.gatehouse/callback"
	for _, tc := range []struct {
		name  string
		form  func(code string) url.Values
		basic bool
		want  int
	}{
		{"no verifier (PKCE)", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {cb}}
		}, true, 400},
		{"another verifier (PKCE)", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {cb}, "code_verifier": {devVerifier + "x"}}
		}, true, 400},
		{"the challenge as verifier", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {cb}, "code_verifier": {devChallenge(devVerifier)}}
		}, true, 400},
		{"another redirect URI", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {"http://127.0.0.1/.gatehouse/callback"}, "code_verifier": {devVerifier}}
		}, true, 400},
		{"no client secret", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {cb}, "code_verifier": {devVerifier}, "client_id": {DevSignInClient}}
		}, false, 401},
		{"a wrong client secret", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {cb}, "code_verifier": {devVerifier}, "client_id": {DevSignInClient}, "client_secret": {"guess"}}
		}, false, 401},
		{"another grant", func(c string) url.Values {
			return url.Values{"grant_type": {"password"}, "code": {c}, "redirect_uri": {cb}, "code_verifier": {devVerifier}}
		}, true, 400},
		{"an unknown code", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c + "x"}, "redirect_uri": {cb}, "code_verifier": {devVerifier}}
		}, true, 400},
	} {
		code := p.codeFor(t)
		if status, out := p.exchange(t, tc.form(code), tc.basic); status != tc.want || out["id_token"] != nil {
			t.Errorf("%s: %d %v, want %d", tc.name, status, out, tc.want)
		}
		// A refused exchange spends the code (when it was the right one).
		ok := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}, "code_verifier": {devVerifier}}
		if status, _ := p.exchange(t, ok, true); status == 200 && tc.want == 400 && tc.name != "an unknown code" && tc.name != "another grant" {
			t.Errorf("%s: the code still worked after a refused exchange", tc.name)
		}
	}
	// An expired code.
	code := p.codeFor(t)
	p.d.signIn.mu.Lock()
	c := p.d.signIn.codes[code]
	c.expires = time.Now().Add(-time.Second)
	p.d.signIn.codes[code] = c
	p.d.signIn.mu.Unlock()
	if status, _ := p.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}, "code_verifier": {devVerifier}}, true); status != 400 {
		t.Fatalf("an expired code: %d", status)
	}
}

// Without EnableSignIn (serve --dev without sign-in by the development
// issuer) there is no picker and no token endpoint.
func TestDevSignInOffWithoutEnable(t *testing.T) {
	d, _ := NewDevIssuer("http://127.0.0.1:9", nil)
	for _, r := range []*http.Request{
		httptest.NewRequest("GET", "/dev/oidc/authorize?"+devAuthzQuery().Encode(), nil),
		httptest.NewRequest("POST", "/dev/oidc/authorize", nil),
		httptest.NewRequest("POST", "/dev/oidc/token", nil),
	} {
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, r)
		if w.Code != 404 && w.Code != 405 {
			t.Errorf("%s %s: %d, want no such endpoint", r.Method, r.URL.Path, w.Code)
		}
	}
}

// FuzzDevRedirect: whatever devRedirectOK accepts is the callback path on
// a loopback host, with nothing else a browser could be sent to.
func FuzzDevRedirect(f *testing.F) {
	for _, s := range []string{"http://localhost:10000/.gatehouse/callback", "http://127.0.0.1/.gatehouse/callback", "http://[::1]:1/.gatehouse/callback",
		"http://a.localhost/.gatehouse/callback", "http://evil.com@localhost/.gatehouse/callback", "http://localhost\\@evil.com/.gatehouse/callback",
		"http://localhost%2F@evil/.gatehouse/callback", "HTTP://LOCALHOST/.gatehouse/callback", "http://127.1/.gatehouse/callback"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !devRedirectOK(raw) {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q that does not parse", raw)
		}
		h := strings.ToLower(u.Hostname())
		ip := net.ParseIP(h)
		if (ip == nil || !ip.IsLoopback()) && h != "localhost" && !strings.HasSuffix(h, ".localhost") {
			t.Fatalf("accepted %q: host %q is not loopback", raw, h)
		}
		if u.Path != model.CallbackPath || u.RawQuery != "" || u.User != nil || strings.ContainsAny(raw, "\\\t\n\r ") && u.Host != strings.ToLower(u.Host) {
			t.Fatalf("accepted %q", raw)
		}
		// Re-serialised, the browser goes where we checked.
		if again, err := url.Parse(u.String()); err != nil || again.Host != u.Host || again.Path != u.Path {
			t.Fatalf("accepted %q, which changes when written again: %q", raw, u.String())
		}
	})
}

// FuzzDevSignInForms: whatever is posted to the picker and the token
// endpoint without the real picker cookie and code, nothing is issued:
// no code (no redirect) and no ID token.
func FuzzDevSignInForms(f *testing.F) {
	f.Add("redirect_uri=http%3A%2F%2Flocalhost%2F.gatehouse%2Fcallback&state=s&nonce=n&code_challenge=x&csrf=y&user=user%3Adefault%2Falice", "gatehouse-dev-picker=abc")
	f.Add("grant_type=authorization_code&code=abc&code_verifier=v&client_id=gatehouse-dev-signin&client_secret=x", "")
	f.Add("%zz&&==;", "gatehouse-dev-picker=")
	d, err := NewDevIssuer("http://127.0.0.1:9", nil)
	if err != nil {
		f.Fatal(err)
	}
	d.EnableSignIn(func() []model.User { return []model.User{{Ref: "user:default/alice"}} })
	h := d.Handler()
	f.Fuzz(func(t *testing.T, body, cookie string) {
		for _, path := range []string{"/dev/oidc/authorize", "/dev/oidc/token"} {
			r := httptest.NewRequest("POST", path, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if cookie != "" {
				r.Header.Set("Cookie", cookie)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code == 302 || w.Code == 200 || strings.Contains(w.Body.String(), "id_token") {
				t.Fatalf("POST %s %q (cookie %q): %d %s", path, body, cookie, w.Code, w.Body.String())
			}
		}
	})
}
