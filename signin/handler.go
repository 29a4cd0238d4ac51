// Package signin is gatehouse's browser sign-in: the HTTP handler behind
// the /.gatehouse/ paths of every edge host (model.SignInPath and the
// others), which Envoy routes to it without a Check. It runs the OIDC
// authorization code flow (PKCE S256, state, nonce, a sealed binding
// cookie against login CSRF) and ends in a session cookie
// (extauthz.Session) that Check reads. The session layer knows nothing of
// OIDC: another protocol (SAML) is another flow ending in the same
// extauthz.Session.
package signin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Config is the handler's settings.
type Config struct {
	// Keys seal sessions and sign-in bindings (shared by the replicas).
	Keys *extauthz.SessionKeys
	// Provider is the OIDC issuer people sign in at.
	Provider ProviderConfig
	// Lifetime bounds a session.
	Lifetime time.Duration
	// ReturnHosts: hosts besides the one signed in on that a return URL
	// may name (signin.return_hosts).
	ReturnHosts []string
	// PublicPort is the port browsers reach the edge on when it is not the
	// scheme's default (the edge strips the port from Host before
	// gatehouse sees it); 0: none in the URLs gatehouse builds.
	PublicPort uint32
	Client     *http.Client
	Log        *slog.Logger
	Now        func() time.Time

	// SAML: SAML IdPs people may sign in at (signin/saml.go); SAMLDefault,
	// when set, is the one /.gatehouse/signin sends to instead of OIDC.
	SAML        []SAMLConfig
	SAMLSP      SAMLSPConfig
	SAMLDefault string
}

// Handler serves the sign-in paths.
type Handler struct {
	cfg  Config
	oidc *oidcFlow
	saml *samlState
}

// New returns the handler; the provider is discovered at the first
// sign-in (and again after a failure), so gatehouse starts while the IdP
// is down.
func New(cfg Config) (*Handler, error) {
	if cfg.Keys == nil {
		return nil, errors.New("sign-in needs session keys")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 8 * time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sm, err := newSAML(cfg)
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, oidc: newOIDCFlow(cfg.Provider, cfg.Client), saml: sm}, nil
}

// bindingLifetime bounds the time between leaving for the IdP and coming
// back to the callback.
const bindingLifetime = 10 * time.Minute

// binding is the sealed content of the sign-in binding cookie: what the
// callback needs to accept the IdP's answer in this browser only.
type binding struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE code verifier
	Return   string `json:"r"`
	Expiry   int64  `json:"e"`
}

// Binding cookie names, like the session's (extauthz.SessionCookieName).
const ()

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	switch r.URL.Path {
	case model.SignInPath:
		h.signIn(w, r)
	case model.CallbackPath:
		h.callback(w, r)
	case model.LogoutPath:
		h.logout(w, r)
	case model.SignedOutPath:
		page(w, http.StatusOK, "Signed out", `You are signed out. <a href="/">Sign in again</a>.`)
	default:
		if !h.serveSAML(w, r) {
			page(w, http.StatusNotFound, "Not found", "No such sign-in page.")
		}
	}
}

// signIn starts a sign-in: it checks the return URL, seals a fresh state,
// nonce and PKCE verifier into the binding cookie, and sends the browser
// to the IdP.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		page(w, http.StatusMethodNotAllowed, "Sign-in", "Use GET.")
		return
	}
	if h.cfg.SAMLDefault != "" {
		h.samlSignIn(w, r, h.cfg.SAMLDefault)
		return
	}
	rd, err := ReturnURL(r.URL.Query().Get("rd"), r.Host, h.cfg.ReturnHosts)
	if err != nil {
		h.cfg.Log.Info("sign-in refused", "reason", "return_url", "host", r.Host)
		page(w, http.StatusBadRequest, "Sign-in refused", html.EscapeString(err.Error())+".")
		return
	}
	b := binding{State: random(), Nonce: random(), Verifier: random() + random(), Return: rd, Expiry: h.cfg.Now().Add(bindingLifetime).Unix()}
	sealed, err := h.cfg.Keys.Seal(b, extauthz.PurposeBinding)
	if err != nil {
		h.fail(w, "sealing the sign-in binding", err)
		return
	}
	authURL, err := h.oidc.authCodeURL(r.Context(), h.redirectURI(r), b)
	if err != nil {
		h.fail(w, "reaching the identity provider", err)
		return
	}
	secure := scheme(r) == "https"
	http.SetCookie(w, &http.Cookie{Name: bindingCookieName(secure), Value: sealed, Path: "/", MaxAge: int(bindingLifetime.Seconds()),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, authURL, http.StatusFound)
}

// callback ends a sign-in: the binding cookie must open and carry the
// state the IdP sent back; the code is exchanged with the PKCE verifier;
// the ID token must verify and carry the nonce. Then the session cookie is
// set and the browser goes back where it started.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	secure := scheme(r) == "https"
	q := r.URL.Query()
	// A binding is used once, whatever the answer: a refused one is
	// cleared too.
	http.SetCookie(w, &http.Cookie{Name: bindingCookieName(secure), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	var b binding
	c, err := r.Cookie(bindingCookieName(secure))
	switch {
	case err != nil || h.cfg.Keys.Open(c.Value, extauthz.PurposeBinding, &b) != nil:
		h.refuse(w, "no_binding", "This sign-in was not started in this browser, or took too long.")
		return
	case b.Expiry <= h.cfg.Now().Unix():
		h.refuse(w, "binding_expired", "This sign-in took too long.")
		return
	case !equal(q.Get("state"), b.State):
		h.refuse(w, "state_mismatch", "This sign-in answer does not belong to the sign-in this browser started.")
		return
	case q.Get("error") != "":
		h.refuse(w, "idp_error", "The identity provider said: "+truncate(q.Get("error"), 100)+".")
		return
	case q.Get("code") == "":
		h.refuse(w, "no_code", "The identity provider sent no authorization code.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 12*time.Second)
	defer cancel()
	who, err := h.oidc.exchange(ctx, h.redirectURI(r), q.Get("code"), b)
	if err != nil {
		var re *refusal
		if errors.As(err, &re) {
			h.refuse(w, re.reason, "The identity provider's answer was refused.")
			return
		}
		h.fail(w, "completing the sign-in with the identity provider", err)
		return
	}
	h.startSession(w, r, who, b.Return)
}

// logout clears the session cookie and sends the browser to the IdP's
// end_session_endpoint (RP-initiated logout), which sends it back to
// model.SignedOutPath; without one, straight there.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if h.samlLogout(w, r) {
		return
	}
	secure := scheme(r) == "https"
	http.SetCookie(w, &http.Cookie{Name: extauthz.SessionCookieName(scheme(r)), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	after := h.origin(r) + model.SignedOutPath
	target := model.SignedOutPath
	if end := h.oidc.endSessionURL(r.Context(), after); end != "" {
		target = end
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// refuse answers a sign-in step that failed a check (400; the reason is
// logged, the page says what to do).
func (h *Handler) refuse(w http.ResponseWriter, reason, msg string) {
	h.cfg.Log.Info("sign-in refused", "reason", reason)
	page(w, http.StatusBadRequest, "Sign-in failed", html.EscapeString(msg)+` <a href="/">Start again</a>.`)
}

// fail answers a step that could not be done (502: the IdP, or 500).
func (h *Handler) fail(w http.ResponseWriter, what string, err error) {
	// An IdP's error answer is logged by its status and error code only:
	// its body is the IdP's to word, and stays out of gatehouse's logs.
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		h.cfg.Log.Warn("sign-in failed", "step", what, "status", status, "error_code", re.ErrorCode)
	} else {
		h.cfg.Log.Warn("sign-in failed", "step", what, "error", err)
	}
	page(w, http.StatusBadGateway, "Sign-in unavailable", "Sign-in is not available right now ("+html.EscapeString(what)+"). Try again later.")
}

func page(w http.ResponseWriter, code int, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte("<!doctype html><meta charset=utf-8><title>" + html.EscapeString(title) + "</title><h1>" + html.EscapeString(title) + "</h1><p>" + body + "</p>\n"))
}

// scheme is the scheme the browser used: Envoy's x-forwarded-proto (the
// edge sets it from the connection: use_remote_address).
func scheme(r *http.Request) string {
	if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") || r.TLS != nil {
		return "https"
	}
	return "http"
}

// redirectURI is the callback URL on the host the browser is on (it must
// be registered at the IdP for every such host).
func (h *Handler) redirectURI(r *http.Request) string { return h.origin(r) + model.CallbackPath }

// origin is scheme://host[:port] as the browser sees this edge.
func (h *Handler) origin(r *http.Request) string {
	host := r.Host
	if _, _, err := net.SplitHostPort(host); err != nil && h.cfg.PublicPort != 0 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(h.cfg.PublicPort)))
	}
	return scheme(r) + "://" + host
}

func bindingCookieName(secure bool) string {
	if secure {
		return extauthz.BindingCookieTLS
	}
	return extauthz.BindingCookiePlain
}

// random is 32 random bytes, base64url (256 bits: state, nonce, half a
// PKCE verifier).
func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// equal compares secrets in constant time; empty never matches.
func equal(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// endSessionParams are the query of an RP-initiated logout.
func endSessionParams(clientID, after string) url.Values {
	return url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {after}}
}
