package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Audience of every benchmark token.
const benchAudience = "gatehouse-bench"

// issuers is a small OIDC provider for the benchmark: two issuers on one
// loopback httptest server, each with discovery and a JWKS, one signing
// RS256 (2048-bit RSA, what most IdPs use) and one ES256 (P-256).
// gatehouse discovers both; OPA gets the same JWKS documents as data.
type issuers struct {
	srv *httptest.Server
	rs  *rsa.PrivateKey
	es  *ecdsa.PrivateKey
	seq atomic.Int64
}

func newIssuers() (*issuers, error) {
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	is := &issuers{rs: rs, es: es}
	mux := http.NewServeMux()
	for _, alg := range []string{"RS256", "ES256"} {
		mux.HandleFunc("GET /"+alg+"/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": is.url(alg), "jwks_uri": is.url(alg) + "/jwks", "authorization_endpoint": is.url(alg) + "/authorize",
				"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
				"id_token_signing_alg_values_supported": []string{alg},
			})
		})
		mux.HandleFunc("GET /"+alg+"/jwks", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(is.jwks(alg)))
		})
	}
	is.srv = httptest.NewServer(mux)
	return is, nil
}

func (is *issuers) Close() { is.srv.Close() }

// url is the iss of an algorithm's issuer.
func (is *issuers) url(alg string) string { return is.srv.URL + "/" + alg }

func (is *issuers) kid(alg string) string { return "bench-" + alg }

// jwks is the JWKS document of an algorithm's issuer.
func (is *issuers) jwks(alg string) string {
	enc := base64.RawURLEncoding
	var key map[string]string
	switch alg {
	case "RS256":
		key = map[string]string{"kty": "RSA", "n": enc.EncodeToString(is.rs.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(is.rs.E)).Bytes())}
	case "ES256":
		b, _ := is.es.PublicKey.Bytes() // 0x04 || x || y
		key = map[string]string{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(b[1:33]), "y": enc.EncodeToString(b[33:])}
	}
	key["kid"], key["alg"], key["use"] = is.kid(alg), alg, "sig"
	out, _ := json.Marshal(map[string]any{"keys": []any{key}})
	return string(out)
}

// mint signs a token for sub; every token is distinct (jti). A sub that
// is not a catalog user ref is an IdP subject the catalog does not list:
// it carries bench-alice's verified email, which maps it to her (IdP
// groups no longer make an unknown token a member, issue 12).
func (is *issuers) mint(alg, sub string, now time.Time, ttl time.Duration) (string, error) {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": is.kid(alg)})
	claims := map[string]any{
		"iss": is.url(alg), "sub": sub, "aud": benchAudience, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(), "jti": fmt.Sprintf("t%d", is.seq.Add(1)),
	}
	if !strings.HasPrefix(sub, "user:") {
		claims["email"], claims["email_verified"] = "bench-alice@example.com", true
	}
	payload, _ := json.Marshal(claims)
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch alg {
	case "RS256":
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, is.rs, crypto.SHA256, sum[:]); err != nil {
			return "", err
		}
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, is.es, sum[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		return "", fmt.Errorf("unsupported alg %s", alg)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// newSubjects is the subjects for a pool where every token has a
// different IdP subject (none listed in the catalog; mapped by email).
func newSubjects(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("idp-user-%07d", i)
	}
	return out
}

// pool mints n distinct tokens for the subjects (round robin) on all
// cores, before any timed run: the load generator then only sends.
func (is *issuers) pool(alg string, subs []string, n int) ([]string, error) {
	out := make([]string, n)
	now := time.Now()
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := is.mint(alg, subs[i%len(subs)], now, 2*time.Hour)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				out[i] = tok
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}
