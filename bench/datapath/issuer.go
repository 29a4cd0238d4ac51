package main

// The harness's own OIDC issuer: an RS256 key (what most IdPs sign access
// tokens with), discovery and JWKS served over httptest for gatehouse, and
// the same JWKS inlined into the native jwt_authn Envoy.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"
)

const (
	audience = "gatehouse-bench"
	kid      = "bench-rs256"
)

type issuer struct {
	key  *rsa.PrivateKey
	srv  *httptest.Server
	url  string
	jwks string
}

func newIssuer() (*issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	is := &issuer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	is.jwks = string(jwks)
	mux := http.NewServeMux()
	is.srv = httptest.NewServer(mux)
	is.url = is.srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.url, "jwks_uri": is.url + "/jwks", "authorization_endpoint": is.url + "/auth",
			"token_endpoint": is.url + "/token", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	return is, nil
}

func (is *issuer) Close() { is.srv.Close() }

// token mints an access token shaped like a Keycloak one: an opaque sub,
// a verified email (gatehouse maps an unverified one to nobody), groups, azp.
func (is *issuer) token(sub, email string, groups []string, ttl time.Duration) (string, error) {
	now := time.Now()
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	payload, _ := json.Marshal(map[string]any{
		"iss": is.url, "aud": audience, "sub": sub, "email": email, "email_verified": true, "groups": groups, "azp": "bench-cli",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64(hdr) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + b64(sig), nil
}
