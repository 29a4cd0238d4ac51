package extauthz

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/model"
)

// The development issuer's sign-in (serve --dev only, on the loopback
// admin listener): an OIDC authorization endpoint that shows a plain HTML
// picker of the catalog's users instead of a login form, and a token
// endpoint, implementing the authorization code flow with PKCE (S256
// required) for one confidential client, gatehouse's own sign-in. It is
// what lets `make demo` sign a browser in without an IdP. It keeps no
// session of its own, so a silent renewal (prompt=none) always gets
// login_required and the picker is shown again.

// DevSignInClient is the client id gatehouse's sign-in uses at the
// development issuer; its secret is random per process (DevIssuer.ClientSecret).
const DevSignInClient = "gatehouse-dev-signin"

// devCodeLifetime bounds the time between the pick and the code exchange.
const devCodeLifetime = time.Minute

// devPickerCookie binds the picker form to the browser that loaded it.
const devPickerCookie = "gatehouse-dev-picker"

// maxDevCodes bounds the codes waiting for their exchange.
const maxDevCodes = 1000

// devSignIn is the sign-in state of a DevIssuer.
type devSignIn struct {
	users   func() []model.User
	secret  string // the client secret
	csrfKey []byte

	mu    sync.Mutex
	codes map[string]devCode
}

// devCode is an issued authorization code, used once.
type devCode struct {
	redirect, challenge, nonce string
	user                       model.User
	expires                    time.Time
}

// EnableSignIn turns on the authorization and token endpoints; users are
// the users the picker offers (the catalog's, read at every page).
func (d *DevIssuer) EnableSignIn(users func() []model.User) {
	d.signIn = &devSignIn{users: users, secret: randomToken(), csrfKey: []byte(randomToken()), codes: map[string]devCode{}}
}

// ClientSecret is the secret of DevSignInClient ("" until EnableSignIn).
func (d *DevIssuer) ClientSecret() string {
	if d.signIn == nil {
		return ""
	}
	return d.signIn.secret
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authzRequest is what the picker form carries from the authorization
// request to the pick.
type authzRequest struct {
	redirect, state, nonce, challenge string
}

// parseAuthzRequest checks an authorization request. The redirect URI is
// checked first: until it is known good, errors are a page, never a
// redirect (else the endpoint would be an open redirector).
func parseAuthzRequest(q url.Values) (authzRequest, string) {
	a := authzRequest{redirect: q.Get("redirect_uri"), state: q.Get("state"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	switch {
	case q.Get("client_id") != DevSignInClient:
		return a, "unknown client_id (the development issuer serves gatehouse's own sign-in only: " + DevSignInClient + ")"
	case !devRedirectOK(a.redirect):
		return a, "redirect_uri must be http(s)://<loopback host>[:port]" + model.CallbackPath + " (127.0.0.1, ::1, localhost or *.localhost)"
	case q.Get("response_type") != "code":
		return a, "response_type must be code"
	case q.Get("code_challenge_method") != "S256" || len(a.challenge) != 43 || !base64URL(a.challenge):
		return a, "PKCE is required: code_challenge (S256 of the verifier, 43 characters of base64url) and code_challenge_method=S256"
	case a.state == "" || a.nonce == "" || len(a.state) > 512 || len(a.nonce) > 512:
		return a, "state and nonce are required (at most 512 characters)"
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		return a, "scope must include openid"
	}
	return a, ""
}

// devRedirectOK: an http(s) URL of the callback path on a loopback host,
// without user info, query or fragment.
func devRedirectOK(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.Opaque != "" || u.Path != model.CallbackPath || u.RawPath != "" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback()
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

func base64URL(s string) bool {
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// csrf is the picker form's token: bound to the browser's picker cookie
// and to the authorization request, so a form posted from elsewhere (no
// cookie, another cookie, or other parameters) is refused.
func (s *devSignIn) csrf(cookie string, a authzRequest) string {
	m := hmac.New(sha256.New, s.csrfKey)
	for _, v := range []string{"picker-v1", cookie, a.redirect, a.state, a.nonce, a.challenge} {
		m.Write([]byte(strconv.Itoa(len(v)) + ":" + v))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *DevIssuer) authorizeGET(w http.ResponseWriter, r *http.Request) {
	s := d.signIn
	q := r.URL.Query()
	a, bad := parseAuthzRequest(q)
	if bad != "" {
		devPage(w, http.StatusBadRequest, "Sign-in request refused", "<p>"+html.EscapeString(bad)+".</p>")
		return
	}
	if q.Get("prompt") == "none" {
		// No session here: the user must pick (OIDC Core 3.1.2.6).
		devRedirect(w, r, a.redirect, url.Values{"error": {"login_required"}, "state": {a.state}})
		return
	}
	cookie := randomToken()
	http.SetCookie(w, &http.Cookie{Name: devPickerCookie, Value: cookie, Path: "/dev/oidc/", MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	var b strings.Builder
	b.WriteString(`<p class=warn><b>DEVELOPMENT SIGN-IN</b> (gatehouse serve --dev). Anyone who can reach this page signs in as anyone: never use it in production.</p>`)
	b.WriteString(`<p>Sign in to <code>` + html.EscapeString(a.redirect) + `</code> as:</p><form method=post action="/dev/oidc/authorize">`)
	for k, v := range map[string]string{"redirect_uri": a.redirect, "state": a.state, "nonce": a.nonce, "code_challenge": a.challenge, "csrf": s.csrf(cookie, a)} {
		b.WriteString(`<input type=hidden name="` + k + `" value="` + html.EscapeString(v) + `">`)
	}
	users := s.users()
	if len(users) == 0 {
		b.WriteString(`<p>The catalog has no users yet.</p>`)
	}
	for _, u := range users {
		label := u.Ref
		if u.Email != "" {
			label += " <" + u.Email + ">"
		}
		if len(u.Groups) > 0 {
			label += " — " + strings.Join(u.Groups, ", ")
		}
		b.WriteString(`<p><button type=submit name=user value="` + html.EscapeString(u.Ref) + `">` + html.EscapeString(label) + `</button></p>`)
	}
	b.WriteString(`</form>`)
	devPage(w, http.StatusOK, "Development sign-in: pick a user", b.String())
}

func (d *DevIssuer) authorizePOST(w http.ResponseWriter, r *http.Request) {
	s := d.signIn
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		devPage(w, http.StatusBadRequest, "Refused", "<p>Unreadable form.</p>")
		return
	}
	// A form from another origin is refused even before the token: the
	// browser says where it comes from.
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, d.origin()) {
		devPage(w, http.StatusForbidden, "Refused", "<p>This form was posted from another site.</p>")
		return
	}
	a := authzRequest{redirect: r.PostForm.Get("redirect_uri"), state: r.PostForm.Get("state"), nonce: r.PostForm.Get("nonce"), challenge: r.PostForm.Get("code_challenge")}
	c, err := r.Cookie(devPickerCookie)
	if err != nil || c.Value == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.csrf(c.Value, a))) {
		devPage(w, http.StatusForbidden, "Refused", "<p>This form was not loaded in this browser, or it is too old. Start the sign-in again.</p>")
		return
	}
	// The form carried what the GET checked; checked again all the same.
	if !devRedirectOK(a.redirect) {
		devPage(w, http.StatusBadRequest, "Refused", "<p>Bad redirect_uri.</p>")
		return
	}
	ref := r.PostForm.Get("user")
	i := slices.IndexFunc(s.users(), func(u model.User) bool { return u.Ref == ref })
	if i < 0 {
		devPage(w, http.StatusBadRequest, "Refused", "<p>No such user in the catalog.</p>")
		return
	}
	code := randomToken()
	now := time.Now()
	s.mu.Lock()
	for k, v := range s.codes {
		if now.After(v.expires) {
			delete(s.codes, k)
		}
	}
	full := len(s.codes) >= maxDevCodes
	if !full {
		s.codes[code] = devCode{redirect: a.redirect, challenge: a.challenge, nonce: a.nonce, user: s.users()[i], expires: now.Add(devCodeLifetime)}
	}
	s.mu.Unlock()
	if full {
		devPage(w, http.StatusServiceUnavailable, "Busy", "<p>Too many sign-ins waiting; try again in a minute.</p>")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: devPickerCookie, Value: "", Path: "/dev/oidc/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	devRedirect(w, r, a.redirect, url.Values{"code": {code}, "state": {a.state}})
}

// token is the code exchange: the client's secret, the code (once, in
// time, for the same redirect URI) and the PKCE verifier whose S256 is
// the code's challenge.
func (d *DevIssuer) token(w http.ResponseWriter, r *http.Request) {
	s := d.signIn
	fail := func(code int, e string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": e})
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		fail(400, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != DevSignInClient || subtle.ConstantTimeCompare([]byte(secret), []byte(s.secret)) != 1 {
		fail(401, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		fail(400, "unsupported_grant_type")
		return
	}
	s.mu.Lock()
	c, found := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code")) // once, right or wrong
	s.mu.Unlock()
	verifier := r.PostForm.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case !found || time.Now().After(c.expires) || r.PostForm.Get("redirect_uri") != c.redirect:
		fail(400, "invalid_grant")
		return
	case len(verifier) < 43 || len(verifier) > 128 ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1:
		fail(400, "invalid_grant") // PKCE
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": d.issuer, "sub": c.user.Ref, "aud": DevSignInClient, "azp": DevSignInClient, "nonce": c.nonce,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	if c.user.Email != "" {
		claims["email"], claims["email_verified"] = c.user.Email, true
	}
	payload, _ := json.Marshal(claims)
	idt, err := signES256(d.key, d.kid, "JWT", payload)
	if err != nil {
		fail(500, "server_error")
		return
	}
	at, err := d.Mint(DevTokenRequest{Subject: c.user.Ref, Email: c.user.Email, TTL: 5 * time.Minute}, now)
	if err != nil {
		fail(500, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

// origin is scheme://host:port of the issuer.
func (d *DevIssuer) origin() string {
	u, err := url.Parse(d.issuer)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// devRedirect sends the browser to a checked redirect URI with params.
func devRedirect(w http.ResponseWriter, r *http.Request, to string, params url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to+"?"+params.Encode(), http.StatusFound)
}

func devPage(w http.ResponseWriter, code int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`<!doctype html><meta charset=utf-8><title>` + html.EscapeString(title) + `</title>` +
		`<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}.warn{background:#c00;color:#fff;padding:.6em}button{font-size:1.1em;padding:.3em .8em}</style>` +
		`<h1>` + html.EscapeString(title) + `</h1>` + body + "\n"))
}
