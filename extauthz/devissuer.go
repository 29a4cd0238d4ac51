package extauthz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DevIssuer is a development OIDC issuer built into gatehouse (serve --dev):
// discovery and a JWKS under /dev/oidc on the admin listener, and a token
// endpoint for `gatehouse token`. Its key is the one it is given (serve
// --dev keeps it in dev.key_file), else a new one in memory. It exists so that
// `make demo` works without an IdP; it is never on unless --dev is given,
// and the admin listener must then be on loopback.
type DevIssuer struct {
	issuer string
	key    *ecdsa.PrivateKey
	kid    string
	signIn *devSignIn // nil until EnableSignIn (devsignin.go)
}

// DevAudience is the audience of development tokens.
const DevAudience = "gatehouse-dev"

// NewDevIssuer returns an issuer whose iss is baseURL + "/dev/oidc",
// signing with key (a P-256 key), or with a new key when key is nil.
func NewDevIssuer(baseURL string, key *ecdsa.PrivateKey) (*DevIssuer, error) {
	k := key
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	} else if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("the development issuer signs ES256: its key must be EC P-256")
	}
	return &DevIssuer{issuer: strings.TrimSuffix(baseURL, "/") + "/dev/oidc", key: k, kid: thumbprint(&k.PublicKey)}, nil
}

// Issuer is the iss of development tokens.
func (d *DevIssuer) Issuer() string { return d.issuer }

// DevTokenRequest is what `gatehouse token` asks for.
type DevTokenRequest struct {
	Subject  string        `json:"sub"`              // e.g. user:default/alice
	Email    string        `json:"email,omitempty"`  //
	Groups   []string      `json:"groups,omitempty"` // IdP group names
	Scopes   []string      `json:"scopes,omitempty"` // OAuth scopes (the scope claim)
	ClientID string        `json:"client_id,omitempty"`
	TTL      time.Duration `json:"ttl,omitempty"` // default 1h, at most 24h
	// Audiences are added to DevAudience in aud (never instead of it, so
	// the development issuer's own audience check still holds): an MCP
	// route takes only tokens whose aud names its API (docs/mcp.md), e.g.
	// api:default/platform-tools.
	Audiences []string `json:"aud,omitempty"`
}

// maxDevAudiences bounds the audiences a development token adds.
const maxDevAudiences = 8

// devAudiences checks the extra audiences: each a non-empty name of at
// most 256 printable ASCII characters without spaces, once, at most
// maxDevAudiences of them.
func devAudiences(auds []string) error {
	if len(auds) > maxDevAudiences {
		return fmt.Errorf("aud: %d audiences, at most %d", len(auds), maxDevAudiences)
	}
	seen := map[string]bool{DevAudience: true}
	for _, a := range auds {
		if a == "" || len(a) > 256 {
			return fmt.Errorf("aud: an audience must be 1 to 256 characters (e.g. api:default/platform-tools)")
		}
		for i := 0; i < len(a); i++ {
			if a[i] <= ' ' || a[i] > '~' {
				return fmt.Errorf("aud %q: printable ASCII without spaces only (e.g. api:default/platform-tools)", a)
			}
		}
		if seen[a] {
			return fmt.Errorf("aud %q is given twice (%s is always there)", a, DevAudience)
		}
		seen[a] = true
	}
	return nil
}

// Mint signs a token.
func (d *DevIssuer) Mint(r DevTokenRequest, now time.Time) (string, error) {
	if r.Subject == "" {
		return "", fmt.Errorf("sub is required")
	}
	if r.TTL <= 0 {
		r.TTL = time.Hour
	}
	if r.TTL > 24*time.Hour {
		return "", fmt.Errorf("ttl %s is above 24h", r.TTL)
	}
	if err := devAudiences(r.Audiences); err != nil {
		return "", err
	}
	var aud any = DevAudience
	if len(r.Audiences) > 0 {
		aud = append([]string{DevAudience}, r.Audiences...)
	}
	claims := map[string]any{
		"iss": d.issuer, "sub": r.Subject, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(r.TTL).Unix(),
	}
	if r.Email != "" {
		claims["email"] = r.Email
	}
	if len(r.Groups) > 0 {
		claims["groups"] = r.Groups
	}
	if len(r.Scopes) > 0 {
		claims["scope"] = strings.Join(r.Scopes, " ")
	}
	if r.ClientID != "" {
		claims["azp"], claims["client_id"] = r.ClientID, r.ClientID
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return signES256(d.key, d.kid, "JWT", payload)
}

// Handler serves /dev/oidc/.well-known/openid-configuration,
// /dev/oidc/jwks and POST /dev/token, and with EnableSignIn the user
// picker (GET and POST /dev/oidc/authorize) and POST /dev/oidc/token.
// Mount it at "/dev/".
func (d *DevIssuer) Handler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /dev/oidc/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": d.issuer, "jwks_uri": d.issuer + "/jwks", "token_endpoint": d.issuer + "/token",
			"authorization_endpoint": d.issuer + "/authorize", "response_types_supported": []string{"code"},
			"grant_types_supported": []string{"authorization_code"}, "code_challenge_methods_supported": []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
			"scopes_supported":                      []string{"openid", "email", "profile"},
			"subject_types_supported":               []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	if d.signIn != nil {
		mux.HandleFunc("GET /dev/oidc/authorize", d.authorizeGET)
		mux.HandleFunc("POST /dev/oidc/authorize", d.authorizePOST)
		mux.HandleFunc("POST /dev/oidc/token", d.token)
	}
	mux.HandleFunc("GET /dev/oidc/jwks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string][]ecJWK{"keys": {publicJWK(&d.key.PublicKey, d.kid)}})
	})
	mux.HandleFunc("POST /dev/token", func(w http.ResponseWriter, r *http.Request) {
		var req DevTokenRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		tok, err := d.Mint(req, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]string{"access_token": tok, "token_type": "Bearer"})
	})
	return mux
}
