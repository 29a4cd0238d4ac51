package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxAssertionLifetime bounds how long an identity assertion is valid.
const MaxAssertionLifetime = 60 * time.Second

// Signer signs the identity assertions upstreams receive in
// x-gatehouse-assertion (ES256 JWTs) and publishes the keys that verify them
// as a JWKS. Keys rotate on a schedule; the JWKS always holds the previous,
// the current and the next key, so a verifier that fetched it at any time
// in the last period already knows the key a new assertion is signed with.
type Signer struct {
	issuer   string
	lifetime time.Duration
	rotate   time.Duration // 0: keys from a file, no rotation

	mu       sync.RWMutex
	previous *signingKey
	current  *signingKey
	next     *signingKey
	jwks     []byte

	// memo holds recently signed assertions by their claims (all but the
	// times), so that the same caller on the same route with a new token
	// (refreshed, or one of a service's replicas) costs no new signature.
	memoMu sync.Mutex
	memo   map[string]memoAssertion
}

type memoAssertion struct {
	token    string
	kid      string
	signedAt time.Time
	expires  time.Time
}

// maxMemo bounds the memoised assertions (about 1 KiB each); when full the
// memo starts over.
const maxMemo = 10000

type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

// SignerConfig configures assertion signing.
type SignerConfig struct {
	Issuer   string        // iss of assertions
	Lifetime time.Duration // at most 60s
	// KeyFile: PEM EC P-256 private key(s); the first signs, all are
	// published. Replicas that share a key file issue assertions any of them
	// can verify. Empty: keys are generated in memory and rotated.
	KeyFile string
	Rotate  time.Duration // rotation period for generated keys
}

// NewSigner returns a signer.
func NewSigner(c SignerConfig) (*Signer, error) {
	if c.Lifetime <= 0 || c.Lifetime > MaxAssertionLifetime {
		return nil, fmt.Errorf("assertion lifetime %s: must be above 0 and at most %s", c.Lifetime, MaxAssertionLifetime)
	}
	s := &Signer{issuer: c.Issuer, lifetime: c.Lifetime, rotate: c.Rotate}
	if c.KeyFile != "" {
		keys, err := loadKeys(c.KeyFile)
		if err != nil {
			return nil, err
		}
		s.current = keys[0]
		if len(keys) > 1 {
			s.next = keys[1]
		}
		if len(keys) > 2 {
			s.previous = keys[2]
		}
		s.rotate = 0
	} else {
		var err error
		if s.current, err = newKey(); err != nil {
			return nil, err
		}
		if s.next, err = newKey(); err != nil {
			return nil, err
		}
	}
	s.publish()
	return s, nil
}

// Run rotates generated keys until ctx is done.
func (s *Signer) Run(ctx context.Context) {
	if s.rotate <= 0 {
		return
	}
	t := time.NewTicker(s.rotate)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Rotate()
		}
	}
}

// Rotate makes the next key current and prepares a new next key.
func (s *Signer) Rotate() error {
	k, err := newKey()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.previous, s.current, s.next = s.current, s.next, k
	s.mu.Unlock()
	s.memoMu.Lock()
	s.memo = nil // new assertions are signed with the new key
	s.memoMu.Unlock()
	s.publish()
	return nil
}

// CurrentKeyID is the kid new assertions are signed with.
func (s *Signer) CurrentKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current.kid
}

// JWKS returns the published key set (JSON).
func (s *Signer) JWKS() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwks
}

// Lifetime of the assertions.
func (s *Signer) Lifetime() time.Duration { return s.lifetime }

// Assertion is the claims of an identity assertion.
type Assertion struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti,omitempty"`
	Kind      string   `json:"gh_kind"`
	Groups    []string `json:"gh_groups,omitempty"`
	Client    string   `json:"gh_client,omitempty"`
	Route     string   `json:"gh_route,omitempty"`
	// Peer: the calling component, verified by mTLS, on mesh traffic (the
	// subject is then the end user when a token came along, else the peer).
	Peer  string `json:"gh_peer,omitempty"`
	Email string `json:"email,omitempty"`
	// Act: the AI agent calling for the subject (RFC 8693 act), when the
	// request carried a delegated token.
	Act *AssertionActor `json:"act,omitempty"`
	// Operation: the GraphQL operation the request runs, on a GraphQL
	// API's route (query-time identity: the upstream knows what was
	// decided, not only who asked).
	Operation *AssertionOperation `json:"gh_op,omitempty"`
}

// AssertionOperation is the assertion's gh_op claim: the type and name of
// the (first) operation, and how many a batch holds.
type AssertionOperation struct {
	Type  string `json:"type"`
	Name  string `json:"name,omitempty"`
	Count int    `json:"count,omitempty"` // more than 1 only: a batch
}

// AssertionActor is the assertion's act claim.
type AssertionActor struct {
	Subject string `json:"sub"`
	Client  string `json:"client_id,omitempty"`
}

// Sign returns a compact ES256 JWT for the claims; iss, iat, nbf and exp are
// set here. An assertion with the same claims signed by the current key
// less than half its lifetime ago is returned again (with its own expiry):
// it says the same thing, and stays valid at least half its lifetime.
// Assertions with an ID (jti) are always signed anew.
func (s *Signer) Sign(a Assertion, now time.Time) (string, time.Time, error) {
	s.mu.RLock()
	k := s.current
	s.mu.RUnlock()
	var key string
	if a.ID == "" {
		key = memoKey(a)
		s.memoMu.Lock()
		m, ok := s.memo[key]
		s.memoMu.Unlock()
		if ok && m.kid == k.kid && !now.Before(m.signedAt) && now.Before(m.signedAt.Add(s.lifetime/2)) {
			return m.token, m.expires, nil
		}
	}
	exp := now.Add(s.lifetime)
	a.Issuer, a.IssuedAt, a.NotBefore, a.Expiry = s.issuer, now.Unix(), now.Unix(), exp.Unix()
	payload, err := json.Marshal(a)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := signES256(k.priv, k.kid, "JWT", payload)
	if err == nil && key != "" {
		s.memoMu.Lock()
		if s.memo == nil || len(s.memo) >= maxMemo {
			s.memo = make(map[string]memoAssertion)
		}
		s.memo[key] = memoAssertion{token: tok, kid: k.kid, signedAt: now, expires: exp}
		s.memoMu.Unlock()
	}
	return tok, exp, err
}

// memoKey is every claim of an assertion but the times set by Sign, each
// length-prefixed so that no two different assertions share a key
// (claims come from tokens and may hold any character).
func memoKey(a Assertion) string {
	var b strings.Builder
	n := len(a.Subject) + len(a.Audience) + len(a.Kind) + len(a.Client) + len(a.Route) + len(a.Email) + len(a.Peer) + 40
	for _, g := range a.Groups {
		n += len(g) + 4
	}
	b.Grow(n)
	field := func(f string) {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	for _, f := range [...]string{a.Subject, a.Audience, a.Kind, a.Client, a.Route, a.Email, a.Peer} {
		field(f)
	}
	if a.Act != nil {
		b.WriteString("act")
		field(a.Act.Subject)
		field(a.Act.Client)
	}
	if a.Operation != nil {
		b.WriteString("op")
		field(a.Operation.Type)
		field(a.Operation.Name)
		field(strconv.Itoa(a.Operation.Count))
	}
	b.WriteString(strconv.Itoa(len(a.Groups)))
	for _, g := range a.Groups {
		field(g)
	}
	return b.String()
}

// signToken signs payload with the current key under another typ than
// the assertions' (delegated tokens: at+jwt).
func (s *Signer) signToken(typ string, payload []byte) (string, error) {
	s.mu.RLock()
	k := s.current
	s.mu.RUnlock()
	return signES256(k.priv, k.kid, typ, payload)
}

// publicKey is the published key kid names (previous, current or next),
// or nil.
func (s *Signer) publicKey(kid string) *ecdsa.PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range []*signingKey{s.current, s.previous, s.next} {
		if k != nil && k.kid == kid {
			return &k.priv.PublicKey
		}
	}
	return nil
}

// signES256 returns a compact JWS (ES256, with typ) of payload.
func signES256(key *ecdsa.PrivateKey, kid, typ string, payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"`+typ+`","kid":"`+kid+`"}`)) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

func (s *Signer) publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []ecJWK
	for _, k := range []*signingKey{s.current, s.next, s.previous} {
		if k != nil {
			keys = append(keys, publicJWK(&k.priv.PublicKey, k.kid))
		}
	}
	s.jwks, _ = json.Marshal(map[string][]ecJWK{"keys": keys})
}

// ecJWK is the public JWK of a P-256 key.
type ecJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

func publicJWK(pub *ecdsa.PublicKey, kid string) ecJWK {
	x, y := coordinates(pub)
	return ecJWK{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: kid, Use: "sig", Alg: "ES256"}
}

// coordinates returns the base64url x and y of a P-256 public key, from its
// uncompressed encoding (0x04 || x || y).
func coordinates(pub *ecdsa.PublicKey) (string, string) {
	b, err := pub.Bytes()
	if err != nil || len(b) != 65 {
		panic("not a P-256 public key") // keys are generated or loaded as P-256 only
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b[1:33]), enc.EncodeToString(b[33:])
}

func newKey() (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &signingKey{kid: thumbprint(&priv.PublicKey), priv: priv}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint, used as kid.
func thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coordinates(pub)
	j := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	sum := sha256.Sum256([]byte(j))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func loadKeys(path string) ([]*signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("assertion key file: %w", err)
	}
	var out []*signingKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var priv any
		switch block.Type {
		case "EC PRIVATE KEY":
			priv, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("assertion key file %s: %w", path, err)
		}
		ec, ok := priv.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("assertion key file %s: keys must be EC P-256 (openssl ecparam -name prime256v1 -genkey -noout)", path)
		}
		out = append(out, &signingKey{kid: thumbprint(&ec.PublicKey), priv: ec})
	}
	if len(out) == 0 {
		return nil, errors.New("assertion key file " + path + " holds no EC private key in PEM")
	}
	return out, nil
}
