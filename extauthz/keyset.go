package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
)

// maxJWKSBytes bounds a JWKS response body.
const maxJWKSBytes = 1 << 20

// jwksFetchTimeout bounds one JWKS fetch (on top of the http.Client's own timeout).
const jwksFetchTimeout = 15 * time.Second

// KeySet is a cached, rate-limited JWKS for one issuer. It implements
// go-oidc's oidc.KeySet interface.
//
// Unlike go-oidc's RemoteKeySet it does not refetch on every verification
// failure: only a token whose kid is unknown triggers a refetch, at most once
// per minRefresh (concurrent callers share one in-flight fetch). When the
// refetch is rate-limited the token is rejected with unknown_kid without
// contacting the IdP, so a flood of forged tokens cannot be turned into a
// flood of requests against the IdP.
type KeySet struct {
	name       string // issuer name, for logs and errors
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	minRefresh time.Duration
	log        *slog.Logger
	base       context.Context // lifetime of the key set: fetches outlive the request that triggered them

	fetches atomic.Int64

	mu       sync.Mutex
	keys     map[string]jose.JSONWebKey // by kid
	noKid    []jose.JSONWebKey          // published keys without a kid
	loaded   bool                       // at least one fetch succeeded
	lastKid  time.Time                  // start of the last fetch triggered by an unknown kid
	lastOK   time.Time
	inflight *fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// NewKeySet returns an empty key set for the JWKS at jwksURL; call Refresh to
// load it. algs are the allowed signing algorithms; ctx bounds background
// fetches.
func NewKeySet(ctx context.Context, issuerName, jwksURL string, client *http.Client, algs []string, minRefresh time.Duration, log *slog.Logger) *KeySet {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ja := make([]jose.SignatureAlgorithm, 0, len(algs))
	for _, a := range algs {
		ja = append(ja, jose.SignatureAlgorithm(a))
	}
	return &KeySet{
		name: issuerName, url: jwksURL, client: client, algs: ja, minRefresh: minRefresh,
		log: log, base: ctx, keys: map[string]jose.JSONWebKey{},
	}
}

// Fetches reports how many JWKS fetches were attempted (successful or not).
func (k *KeySet) Fetches() int64 { return k.fetches.Load() }

// Loaded reports whether at least one fetch succeeded.
func (k *KeySet) Loaded() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loaded
}

// KeyIDs returns the kids currently cached (for diagnostics).
func (k *KeySet) KeyIDs() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	return ids
}

// Refresh fetches the JWKS now, ignoring the rate limit (it joins a fetch
// already in flight). On failure the previously fetched keys stay in use.
func (k *KeySet) Refresh(ctx context.Context) error {
	k.mu.Lock()
	c := k.startFetchLocked()
	k.mu.Unlock()
	return k.wait(ctx, c)
}

// startFetchLocked returns the in-flight fetch, starting one if none is
// running. k.mu must be held.
func (k *KeySet) startFetchLocked() *fetchCall {
	if k.inflight != nil {
		return k.inflight
	}
	c := &fetchCall{done: make(chan struct{})}
	k.inflight = c
	k.fetches.Add(1)
	go func() {
		keys, noKid, err := k.fetch()
		k.mu.Lock()
		if err == nil {
			k.keys, k.noKid, k.loaded, k.lastOK = keys, noKid, true, time.Now()
		}
		k.inflight = nil
		c.err = err
		k.mu.Unlock()
		close(c.done)
		if err != nil {
			k.log.Warn("JWKS fetch failed; keeping the previous keys", "issuer", k.name, "url", k.url, "err", err)
		} else {
			k.log.Debug("JWKS fetched", "issuer", k.name, "keys", len(keys)+len(noKid))
		}
	}()
	return c
}

func (k *KeySet) wait(ctx context.Context, c *fetchCall) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *KeySet) fetch() (map[string]jose.JSONWebKey, []jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(k.base, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: HTTP %d", k.url, resp.StatusCode)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", k.url, maxJWKSBytes)
	}
	// Parse key by key so one malformed or unsupported key does not hide
	// the others.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, fmt.Errorf("GET %s: invalid JWKS: %w", k.url, err)
	}
	keys := map[string]jose.JSONWebKey{}
	var noKid []jose.JSONWebKey
	skipped := 0
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil || !jwk.Valid() {
			skipped++
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		if !jwk.IsPublic() {
			jwk = jwk.Public() // never keep private material; symmetric keys become invalid
		}
		if !jwk.Valid() || !isAsymmetricPublic(jwk.Key) {
			skipped++
			continue
		}
		if jwk.KeyID == "" {
			noKid = append(noKid, jwk)
			continue
		}
		keys[jwk.KeyID] = jwk
	}
	if skipped > 0 {
		k.log.Warn("JWKS contains unusable keys; ignoring them", "issuer", k.name, "skipped", skipped)
	}
	if len(keys)+len(noKid) == 0 {
		return nil, nil, fmt.Errorf("GET %s: JWKS has no usable signing keys", k.url)
	}
	return keys, noKid, nil
}

func isAsymmetricPublic(key any) bool {
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}

// keyMatchesAlg reports whether key is the right type for alg, so that e.g.
// an RSA key can never be used to check an HMAC or ECDSA signature.
func keyMatchesAlg(jwk jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if jwk.Algorithm != "" && jwk.Algorithm != string(alg) {
		return false
	}
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, ok := jwk.Key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= 2048
	case jose.ES256, jose.ES384, jose.ES512:
		k, ok := jwk.Key.(*ecdsa.PublicKey)
		if !ok {
			return false
		}
		want := map[jose.SignatureAlgorithm]elliptic.Curve{jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521()}[alg]
		return k.Curve == want
	case jose.EdDSA:
		_, ok := jwk.Key.(ed25519.PublicKey)
		return ok
	}
	return false // HS*, none and anything unknown
}

// lookup returns the candidate keys for kid. k.mu must be held.
func (k *KeySet) lookupLocked(kid string) ([]jose.JSONWebKey, bool) {
	if kid == "" {
		return k.noKid, len(k.noKid) > 0
	}
	key, ok := k.keys[kid]
	if !ok {
		return nil, false
	}
	return []jose.JSONWebKey{key}, true
}

// VerifySignature implements oidc.KeySet. Errors are *TokenError.
func (k *KeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	return k.verifySignature(ctx, raw)
}

func (k *KeySet) verifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := parseCompact(raw)
	if err != nil {
		return nil, &TokenError{Reason: "malformed", Detail: err.Error()}
	}
	if !slices.Contains(k.algs, jose.SignatureAlgorithm(jws.alg)) {
		return nil, &TokenError{Reason: "alg_not_allowed", Detail: fmt.Sprintf("alg %q is not allowed", clip.String(jws.alg, 32))}
	}
	if err := k.verify(ctx, jws); err != nil {
		return nil, err
	}
	return jws.payload, nil
}

// verify checks a parsed token's signature against the key its kid names
// (refetching the JWKS for an unknown kid, rate-limited). The caller has
// checked that jws.alg is allowed. Errors are *TokenError.
func (k *KeySet) verify(ctx context.Context, jws *compactJWS) error {
	if err := jws.decodeSig(); err != nil {
		return &TokenError{Reason: "malformed", Detail: err.Error()}
	}
	alg := jose.SignatureAlgorithm(jws.alg)
	kid := jws.kid

	k.mu.Lock()
	loaded := k.loaded
	cands, found := k.lookupLocked(kid)
	var c *fetchCall
	if !found && kid != "" {
		switch {
		case k.inflight != nil:
			c = k.inflight
		case k.lastKid.IsZero() || time.Since(k.lastKid) >= k.minRefresh:
			// Only refetches triggered by unknown kids count towards the
			// rate limit, so a key rotated in just after a periodic refresh
			// is still picked up by its first token.
			k.log.Info("unknown kid; refetching JWKS", "issuer", k.name, "kid", clip.String(kid, 64))
			k.lastKid = time.Now()
			c = k.startFetchLocked()
		}
	}
	k.mu.Unlock()

	if c != nil {
		if err := k.wait(ctx, c); err != nil && !loaded {
			return &TokenError{Reason: "issuer_unavailable", Detail: fmt.Sprintf("issuer %q: JWKS unavailable: %v", k.name, err)}
		}
		k.mu.Lock()
		loaded = k.loaded
		cands, found = k.lookupLocked(kid)
		k.mu.Unlock()
	}
	if !found {
		if !loaded {
			return &TokenError{Reason: "issuer_unavailable", Detail: fmt.Sprintf("issuer %q: JWKS not loaded yet", k.name)}
		}
		if kid == "" {
			return &TokenError{Reason: "unknown_kid", Detail: "token has no kid and the issuer publishes no key without one"}
		}
		return &TokenError{Reason: "unknown_kid", Detail: fmt.Sprintf("kid %q is not in the JWKS of issuer %q", clip.String(kid, 64), k.name)}
	}

	tried := 0
	for i := range cands {
		if !keyMatchesAlg(cands[i], alg) {
			continue
		}
		tried++
		if jws.verifyWith(cands[i].Key) {
			return nil
		}
	}
	if tried == 0 {
		return &TokenError{Reason: "bad_signature", Detail: fmt.Sprintf("no key of issuer %q with kid %q matches alg %s", k.name, clip.String(kid, 64), alg)}
	}
	return &TokenError{Reason: "bad_signature", Detail: "signature does not verify"}
}
