package extauthz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
)

// Delegated identities (docs/agents.md): a token that carries an RFC 8693
// `act` claim says that its actor (an AI agent) calls for its subject (a
// person). gatehouse reads `act` from tokens of its configured issuers and
// issues such tokens itself at its token exchange endpoint (exchange.go),
// signed with the assertion keys but never usable as an assertion: another
// issuer, another `typ` (at+jwt, RFC 9068), and an audience checked by
// Check against the route.

// MaxDelegatedLifetime bounds the life of a token gatehouse issues.
const MaxDelegatedLifetime = 5 * time.Minute

// DelegatedTokenType is the JOSE typ of the tokens gatehouse issues (RFC
// 9068 access tokens); assertions are "JWT". A token of one kind is never
// accepted as the other.
const DelegatedTokenType = "at+jwt"

// AudiencePrefix starts the `aud` of a delegated token: the entity ref
// follows. An identity assertion's `aud` is the bare entity ref, so even
// a service that checked only the signature and `aud` of an assertion
// would refuse a delegated token, and gatehouse refuses an assertion as
// an access token (typ, iss and aud all differ).
const AudiencePrefix = "urn:gatehouse:entity:"

// maxActDepth bounds the nested `act` claims read (earlier actors).
const maxActDepth = 8

// Actor is a token's current actor (its top-level `act` claim) and the
// earlier ones nested in it, which go to the audit only.
type Actor struct {
	// Subject is act.sub; ClientID act.client_id (or act.azp).
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Issuer   string `json:"iss,omitempty"`
	// Ref: the agent's catalog ref, when gatehouse issued the token (its
	// own act.sub is the ref it checked at the exchange).
	Ref string `json:"-"`
	// Earlier: the subjects (or client ids) of the nested actors,
	// outermost first.
	Earlier []string `json:"-"`
}

// actClaim is one level of an `act` claim.
type actClaim struct {
	Sub      string          `json:"sub"`
	ClientID string          `json:"client_id"`
	Azp      string          `json:"azp"`
	Iss      string          `json:"iss"`
	Act      json.RawMessage `json:"act"`
}

// readActor reads a verified token's `act` claim (nil when absent). An
// `act` that is not an object naming a sub or a client is refused: a
// token that says it is delegated must say by whom.
func readActor(claims members) (*Actor, error) {
	r, ok := claims.get("act")
	if !ok || string(r) == "null" {
		return nil, nil
	}
	return parseAct(r)
}

func parseAct(r []byte) (*Actor, error) {
	var c actClaim
	if err := json.Unmarshal(r, &c); err != nil {
		return nil, errors.New("claim \"act\" is not an object of string claims")
	}
	a := &Actor{Subject: c.Sub, ClientID: c.ClientID, Issuer: c.Iss}
	if a.ClientID == "" {
		a.ClientID = c.Azp
	}
	if a.Subject == "" && a.ClientID == "" {
		return nil, errors.New("claim \"act\" names no actor (no sub or client_id)")
	}
	next := c.Act
	for depth := 0; len(next) > 0 && string(next) != "null"; depth++ {
		if depth == maxActDepth {
			return nil, fmt.Errorf("claim \"act\" is nested deeper than %d", maxActDepth)
		}
		var e actClaim
		if err := json.Unmarshal(next, &e); err != nil {
			return nil, errors.New("a nested \"act\" is not an object of string claims")
		}
		who := e.Sub
		if who == "" {
			who = e.ClientID
		}
		if who == "" {
			return nil, errors.New("a nested \"act\" names no actor")
		}
		a.Earlier = append(a.Earlier, clip.String(who, 200))
		next = e.Act
	}
	return a, nil
}

// Delegation issues and verifies gatehouse's delegated tokens.
type Delegation struct {
	issuer   string
	lifetime time.Duration
	signer   *Signer
	now      func() time.Time
}

// NewDelegation returns the token issuer of the exchange endpoint: iss
// issuer (never the assertions' own), tokens valid at most lifetime (≤ 5
// minutes), signed with signer's keys (published in its JWKS).
func NewDelegation(issuer string, lifetime time.Duration, signer *Signer) (*Delegation, error) {
	switch {
	case issuer == "":
		return nil, errors.New("the exchange's issuer is empty")
	case signer == nil:
		return nil, errors.New("no signer")
	case issuer == signer.issuer:
		return nil, fmt.Errorf("the exchange's issuer %q is the assertions' issuer: a delegated token could pass for an assertion", issuer)
	case lifetime <= 0 || lifetime > MaxDelegatedLifetime:
		return nil, fmt.Errorf("delegated token lifetime %s: must be above 0 and at most %s", lifetime, MaxDelegatedLifetime)
	}
	return &Delegation{issuer: issuer, lifetime: lifetime, signer: signer, now: time.Now}, nil
}

// Issuer is the iss of the tokens it issues.
func (d *Delegation) Issuer() string { return d.issuer }

// delegatedClaims are the claims of a token gatehouse issues.
type delegatedClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"` // the person's User ref
	Audience string `json:"aud"` // AudiencePrefix + one catalog entity ref
	IssuedAt int64  `json:"iat"`
	NotBef   int64  `json:"nbf"`
	Expiry   int64  `json:"exp"`
	ID       string `json:"jti"`
	ClientID string `json:"client_id"` // the agent's client (RFC 9068)
	Scope    string `json:"scope,omitempty"`
	Act      Actor  `json:"act"`
	// SubjectIssuer: the iss of the person's original token.
	SubjectIssuer string `json:"gh_subject_iss,omitempty"`
}

// issue signs a delegated token; exp is at most the lifetime from now and
// never after notAfter (the tokens it was exchanged from).
func (d *Delegation) issue(c delegatedClaims, notAfter time.Time) (string, time.Time, error) {
	now := d.now()
	exp := now.Add(d.lifetime)
	if notAfter.Before(exp) {
		exp = notAfter
	}
	if !exp.After(now) {
		return "", time.Time{}, errors.New("the tokens exchanged expire now")
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c.Issuer, c.IssuedAt, c.NotBef, c.Expiry, c.ID = d.issuer, now.Unix(), now.Unix(), exp.Unix(), hex.EncodeToString(jti[:])
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := d.signer.signToken(DelegatedTokenType, payload)
	return tok, exp, err
}

// delegationSkew is the clock leeway for gatehouse's own tokens (replicas
// share a clock source, and the tokens live minutes).
const delegationSkew = 5 * time.Second

// verify checks a token gatehouse issued (iss is d's): typ at+jwt, ES256
// by one of the published keys, times, one audience, a User subject and an
// actor. Every rejection is a *TokenError.
func (d *Delegation) verify(raw string) (*Identity, error) {
	if len(raw) > maxTokenBytes {
		return nil, tokenErr("malformed", "token longer than %d bytes", maxTokenBytes)
	}
	jws, err := parseCompact(raw)
	if err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	defer jws.release()
	if jws.typ != DelegatedTokenType {
		return nil, tokenErr("wrong_type", "typ %q is not %s: an identity assertion is not an access token", clip.String(jws.typ, 32), DelegatedTokenType)
	}
	if jws.alg != "ES256" {
		return nil, tokenErr("alg_not_allowed", "alg %q: gatehouse signs ES256", clip.String(jws.alg, 32))
	}
	pub := d.signer.publicKey(jws.kid)
	if pub == nil {
		return nil, tokenErr("unknown_kid", "kid %q is not one of gatehouse's published keys", clip.String(jws.kid, 64))
	}
	if err := jws.decodeSig(); err != nil || !jws.verifyWith(pub) {
		return nil, tokenErr("bad_signature", "signature does not verify with gatehouse's key %q", clip.String(jws.kid, 64))
	}
	var c delegatedClaims
	if err := json.Unmarshal(jws.payload, &c); err != nil {
		return nil, tokenErr("malformed", "payload: %v", err)
	}
	now := d.now()
	switch {
	case c.Issuer != d.issuer:
		return nil, tokenErr("unknown_issuer", "iss %q is not gatehouse's exchange", clip.String(c.Issuer, 200))
	case c.Expiry == 0:
		return nil, tokenErr("missing_claim", "token has no `exp`")
	case now.After(time.Unix(c.Expiry, 0).Add(delegationSkew)):
		return nil, tokenErr("expired", "expired at %s", time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	case time.Unix(c.NotBef, 0).After(now.Add(delegationSkew)):
		return nil, tokenErr("not_yet_valid", "`nbf` is in the future")
	case !strings.HasPrefix(c.Audience, AudiencePrefix) || len(c.Audience) == len(AudiencePrefix):
		return nil, tokenErr("wrong_audience", "aud %q is not %s<entity ref>", clip.String(c.Audience, 200), AudiencePrefix)
	case !strings.HasPrefix(c.Subject, "user:"):
		return nil, tokenErr("malformed", "sub %q is not a User ref", clip.String(c.Subject, 200))
	case !strings.HasPrefix(c.Act.Subject, "component:"):
		return nil, tokenErr("malformed", "act.sub %q is not a Component ref", clip.String(c.Act.Subject, 200))
	}
	act := c.Act
	act.Ref = act.Subject
	scopes := strings.Fields(c.Scope)
	slices.Sort(scopes) // Principal.Scopes is searched
	scopes = slices.Compact(scopes)
	id := &Identity{
		Issuer: c.Issuer, IssuerName: "gatehouse token exchange", Subject: c.Subject, EntityRefSubject: true,
		Expiry: time.Unix(c.Expiry, 0), TokenType: jws.typ, Actor: &act, Audience: strings.TrimPrefix(c.Audience, AudiencePrefix),
		Scopes: scopes, Delegated: true,
	}
	return id, nil
}

// delegatingVerifier verifies gatehouse's own delegated tokens besides the
// configured issuers' (tried first: the usual token is theirs).
type delegatingVerifier struct {
	next TokenVerifier
	d    *Delegation
}

func (v delegatingVerifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if v.next != nil {
		id, err := v.next.Verify(ctx, raw)
		var te *TokenError
		if err == nil || !errors.As(err, &te) || te.Reason != "unknown_issuer" {
			return id, err
		}
	}
	return v.d.verify(raw)
}

// unwrapDelegation is the configured issuers' verifier of v: sessions are
// read under its issuers' settings (IssuerConfig, Trusts), and a session
// never comes from gatehouse's own exchange.
func unwrapDelegation(v TokenVerifier) TokenVerifier {
	if dv, ok := v.(delegatingVerifier); ok {
		return dv.next
	}
	return v
}

// Issuers are the configured issuers (the authorization servers an MCP
// route's resource metadata names; gatehouse's token exchange is not one).
func (v delegatingVerifier) Issuers() []string {
	if i, ok := v.next.(interface{ Issuers() []string }); ok {
		return i.Issuers()
	}
	return nil
}

// Close closes the configured issuers' verifier.
func (v delegatingVerifier) Close() {
	if c, ok := v.next.(interface{ Close() }); ok {
		c.Close()
	}
}

// withDelegation is v, also accepting d's tokens (v itself when d is nil).
func withDelegation(v TokenVerifier, d *Delegation) TokenVerifier {
	if d == nil {
		return v
	}
	return delegatingVerifier{next: unwrapDelegation(v), d: d}
}
