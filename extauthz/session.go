package extauthz

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// A browser session is a cookie that holds no IdP token: a sealed record
// of who signed in (the catalog identity key: issuer, sub, a verified
// email) and until when. Any replica holding the session keys opens it, so
// two replicas behind one Envoy need nothing shared but a key file. The
// user's groups are never in it: Check maps the record through
// PrincipalFor on every request, as it maps a token, so a catalog change
// applies at once. How the user signed in (OIDC now; SAML later) only
// fills Method: the session layer knows nothing of either protocol.

// Session is the sealed content of a session cookie.
type Session struct {
	Issuer     string `json:"iss"`
	IssuerName string `json:"isn,omitempty"`
	Subject    string `json:"sub"`
	// Email as the IdP sent it; EmailVerified: the IdP said
	// email_verified (OIDC). Whether the email counts is decided on every
	// request under the issuer's current trust_email.
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"ev,omitempty"`
	// EntityRefSubject: the issuer's subs named catalog Users at sign-in
	// (read only when the verifier cannot give the issuer's settings).
	EntityRefSubject bool `json:"ers,omitempty"`
	// Groups: a SAML IdP's groups attribute as asserted (at most
	// MaxSessionGroups); whether and which count is decided per request by
	// the IdP's current settings (SAMLIssuer). OIDC sessions carry none.
	Groups []string `json:"grp,omitempty"`
	// SessionIndex: the SAML IdP's session, named in a logout request.
	SessionIndex string `json:"sx,omitempty"`
	// Method is how the user signed in: "oidc" or "saml" (the audit says
	// oidc-session, saml-session).
	Method   string `json:"m"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
}

// Purposes of sealed values: the associated data of the AEAD, so that a
// value sealed for one purpose (a sign-in binding) never opens as another
// (a session).
const (
	PurposeSession = "gatehouse-session-v1"
	PurposeBinding = "gatehouse-signin-binding-v1"
)

// SessionKeyBytes is the size of one session key (XChaCha20-Poly1305).
const SessionKeyBytes = chacha20poly1305.KeySize

// sealPrefix versions the format of a sealed value.
const sealPrefix = "v1."

// SessionKeys seal and open session cookies: XChaCha20-Poly1305 (random
// 24-byte nonces, safe at any number of cookies) under the first key;
// values sealed under any of the keys open, so a new key is rolled out by
// putting it first and the old one second, then removing the old one once
// the longest session has ended.
type SessionKeys struct {
	aeads []cipher.AEAD
}

// NewSessionKeys uses keys (each SessionKeyBytes long); the first seals.
func NewSessionKeys(keys ...[]byte) (*SessionKeys, error) {
	if len(keys) == 0 {
		return nil, errors.New("no session keys")
	}
	k := &SessionKeys{}
	for i, key := range keys {
		a, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, fmt.Errorf("session key %d: %w", i+1, err)
		}
		k.aeads = append(k.aeads, a)
	}
	return k, nil
}

// LoadSessionKeys reads a key file: one key per line, 64 hex digits or
// base64 of 32 bytes; blank lines and lines starting with # are skipped.
// The first key seals; all open. When generate is set and the file does
// not exist, it is created (mode 0600) with one new key.
func LoadSessionKeys(path string, generate bool) (*SessionKeys, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && generate {
		key := make([]byte, SessionKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		b = []byte(hex.EncodeToString(key) + "\n")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := hex.DecodeString(line)
		if err != nil || len(key) != SessionKeyBytes {
			key, err = base64.StdEncoding.DecodeString(line)
		}
		if err != nil || len(key) != SessionKeyBytes {
			return nil, fmt.Errorf("%s line %d: not a 32-byte key in hex or base64 (make one with: openssl rand -hex 32)", path, n)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key (make one with: openssl rand -hex 32 > %s)", path, path)
	}
	return NewSessionKeys(keys...)
}

// Seal encrypts and authenticates v (as JSON) for purpose.
func (k *SessionKeys) Seal(v any, purpose string) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	a := k.aeads[0]
	buf := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	buf = a.Seal(buf, buf[:a.NonceSize()], plain, []byte(purpose))
	return sealPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// errSealed is every reason a sealed value does not open; the reasons are
// not told apart to the client.
var errSealed = errors.New("not a value sealed by this gatehouse's session keys")

// maxSealed bounds the size of a sealed value accepted (a cookie).
const maxSealed = 4096

// Open authenticates and decrypts a value sealed for purpose into v.
func (k *SessionKeys) Open(sealed, purpose string, v any) error {
	if len(sealed) > maxSealed || !strings.HasPrefix(sealed, sealPrefix) {
		return errSealed
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed[len(sealPrefix):])
	if err != nil {
		return errSealed
	}
	for _, a := range k.aeads {
		if len(raw) < a.NonceSize()+a.Overhead() {
			return errSealed
		}
		plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], []byte(purpose))
		if err != nil {
			continue
		}
		if json.Unmarshal(plain, v) != nil {
			return errSealed
		}
		return nil
	}
	return errSealed
}

// SealSession seals a session.
func (k *SessionKeys) SealSession(s Session) (string, error) { return k.Seal(s, PurposeSession) }

// OpenSession opens a session cookie's value; an expired, malformed or
// forged one is an error, never a session.
func (k *SessionKeys) OpenSession(sealed string, now time.Time) (*Session, error) {
	var s Session
	if err := k.Open(sealed, PurposeSession, &s); err != nil {
		return nil, err
	}
	switch {
	case s.Issuer == "" || s.Subject == "" || s.Method == "":
		return nil, errSealed
	case s.Expiry <= now.Unix():
		return nil, errors.New("session expired")
	case s.IssuedAt > now.Add(time.Minute).Unix():
		return nil, errors.New("session issued in the future")
	}
	return &s, nil
}

// identity is the session's user as a verified token would name them,
// under its issuer's settings of now (cfg; nil: the verifier has no
// settings to give, and the cookie's are used): PrincipalFor maps it to
// the catalog the same way.
func (s *Session) identity(cfg *IssuerConfig) *Identity {
	id := &Identity{Issuer: s.Issuer, IssuerName: s.IssuerName, Subject: s.Subject, EntityRefSubject: s.EntityRefSubject,
		Expiry: time.Unix(s.Expiry, 0)}
	if cfg != nil {
		id.IssuerName, id.EntityRefSubject = cfg.Name, cfg.EntityRefSubjects
	}
	if s.Email != "" {
		id.Email = s.Email
		switch {
		case s.EmailVerified == nil || *s.EmailVerified:
			// nil: a cookie sealed before email_verified was kept, which
			// held an email only when it counted at sign-in.
			id.EmailVerified, id.EmailTrust = true, "email_verified"
		case cfg != nil && cfg.TrustEmail:
			id.EmailVerified, id.EmailTrust = true, "trust_email"
		}
	}
	return id
}

// AuthName is what the audit's auth field says for a session of this
// method ("oidc-session").
func (s *Session) AuthName() string { return s.Method + "-session" }

// Session cookie names: with the __Host- prefix on TLS (the browser then
// refuses it unless Secure, Path=/ and without Domain, so a sibling host
// cannot plant one), plain on http (where browsers refuse the prefix).
const (
	SessionCookieTLS   = "__Host-gatehouse-session"
	SessionCookiePlain = "gatehouse-session"
)

// The sign-in binding cookie (state, nonce and PKCE verifier, sealed, for
// the ten minutes of a sign-in), named like the session cookie. Check
// removes it, and the session cookies, before every upstream.
const (
	BindingCookieTLS   = "__Host-gatehouse-signin"
	BindingCookiePlain = "gatehouse-signin"
)

// SessionCookieName is the session cookie's name for a request's scheme.
func SessionCookieName(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return SessionCookieTLS
	}
	return SessionCookiePlain
}
