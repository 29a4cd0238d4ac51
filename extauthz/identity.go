package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Identity is a verified token's caller, with what its issuer's settings
// say about how far each claim may be trusted.
type Identity struct {
	Issuer     string // `iss`
	IssuerName string // IssuerConfig.Name
	Subject    string
	// EntityRefSubject: the issuer says a `sub` of the form user:ns/name
	// names a catalog User (IssuerConfig.EntityRefSubjects).
	EntityRefSubject bool
	Email            string
	// EmailVerified: the token says email_verified true, or the issuer is
	// configured to trust its emails (EmailTrust says which).
	EmailVerified bool
	EmailTrust    string // "email_verified", "trust_email", or "" (not verified)
	ClientID      string
	// Machine: the issuer's MachineClaims hold, so this is a
	// client-credentials token of ClientID; machineMiss is the claim that
	// did not hold ("" when the issuer has none). NotMachine and
	// EmailWhyNot write the reasons for explain, only when asked.
	Machine     bool
	machineMiss string
	// Groups are the IdP groups that count for catalog membership (the
	// issuer's GroupsClaim, filtered by GroupsPrefix); GroupsNamespace is
	// where a bare name maps.
	Groups          []string
	GroupsNamespace string
	// Scopes: the OAuth scopes the token grants, from `scope` (a
	// space-separated string, RFC 8693/9068) and `scp` (a string or an
	// array: Okta, Entra), sorted and unique; what @requiresScopes reads.
	Scopes []string
	Expiry time.Time
	// TokenType is the JOSE "typ" header (e.g. "vnd.backstage.user", "JWT",
	// "at+jwt"); informational only.
	TokenType string
}

// NotMachine says why a token with a client id is not that client's
// client-credentials token.
func (id *Identity) NotMachine() string {
	if id.machineMiss == "" {
		return "issuer " + id.IssuerName + " marks no token as a client-credentials token (machine_token_claims is empty)"
	}
	return "the token is not a client-credentials token of " + clipStr(id.ClientID, 100) + ": issuer " + id.IssuerName + "'s machine_token_claims " + id.machineMiss + " does not hold"
}

// EmailWhyNot says why the token's email does not count.
func (id *Identity) EmailWhyNot() string {
	return "email " + clipStr(id.Email, 100) + " is not verified (email_verified is not true) and issuer " + id.IssuerName + " does not set trust_email"
}

// TokenError is returned for every rejected token. Reason is a short stable
// code for metrics and audit: "malformed", "unknown_issuer",
// "issuer_unavailable", "bad_signature", "unknown_kid", "alg_not_allowed",
// "expired", "not_yet_valid", "wrong_audience", "missing_claim".
type TokenError struct {
	Reason string
	Detail string
}

func (e *TokenError) Error() string {
	if e.Detail == "" {
		return "token rejected: " + e.Reason
	}
	return "token rejected: " + e.Reason + ": " + e.Detail
}

func tokenErr(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// IssuerStatus describes one issuer's state, for health endpoints and tests.
type IssuerStatus struct {
	Name, IssuerURL string
	Ready           bool   // discovery done and JWKS loaded
	LastError       string // last discovery error while not ready
	Fetches         int64  // JWKS fetches attempted by the current key set
}

// Verifier verifies bearer tokens from a fixed set of issuers.
type Verifier struct {
	log     *slog.Logger
	client  *http.Client
	byIss   map[string]*issuerState
	list    []*issuerState
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing sync.Once
	now     func() time.Time
	started chan struct{} // closed when every first attempt is over
}

type issuerState struct {
	cfg     IssuerConfig
	ks      atomic.Pointer[KeySet]
	ready   atomic.Bool // discovery done and the JWKS loaded once
	lastErr atomic.Pointer[string]
	kick    chan struct{}
}

// NewVerifier is StartVerifier, then WaitStarted: it returns once every
// issuer was reached or failed once (at most a few seconds), so that tokens
// verify right after it when the IdPs are up.
func NewVerifier(ctx context.Context, issuers []IssuerConfig, client *http.Client, log *slog.Logger) (*Verifier, error) {
	v, err := StartVerifier(ctx, issuers, client, log)
	if err != nil {
		return nil, err
	}
	v.WaitStarted(ctx)
	return v, nil
}

// StartVerifier validates the issuers and starts discovery for each,
// without waiting for it (Started says when every first attempt is over).
// An issuer whose IdP is unreachable does not make it fail: it keeps
// retrying in the background and its tokens are rejected with
// issuer_unavailable meanwhile. ctx bounds the background work; Close
// stops it.
func StartVerifier(ctx context.Context, issuers []IssuerConfig, client *http.Client, log *slog.Logger) (*Verifier, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	v := &Verifier{log: log, client: client, byIss: map[string]*issuerState{}, now: time.Now}
	var errs []error
	names := map[string]bool{}
	for i, c := range issuers {
		c = c.WithDefaults()
		c.Algorithms = slices.Clone(c.Algorithms)
		c.Audiences = slices.Clone(c.Audiences)
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
			continue
		}
		if v.byIss[c.IssuerURL] != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: issuer %q: issuerURL %q is configured twice (fix: merge the entries)", i, c.Name, c.IssuerURL))
			continue
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("issuers[%d]: issuer %q: name is used twice (fix: give each issuer a unique name)", i, c.Name))
			continue
		}
		names[c.Name] = true
		is := &issuerState{cfg: c, kick: make(chan struct{}, 1)}
		v.byIss[c.IssuerURL] = is
		v.list = append(v.list, is)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v.ctx, v.cancel = context.WithCancel(ctx)
	v.started = make(chan struct{})
	first := make(chan struct{}, len(v.list))
	for _, is := range v.list {
		v.wg.Add(1)
		go v.run(is, first)
	}
	go func() {
		for range v.list {
			select {
			case <-first:
			case <-v.ctx.Done():
				return
			}
		}
		close(v.started)
	}()
	return v, nil
}

// Started is closed once every issuer's first discovery attempt is over:
// each was reached, or is known to be unreachable (and keeps retrying).
func (v *Verifier) Started() <-chan struct{} { return v.started }

// WaitStarted waits until Started, at most a few seconds (an IdP that
// neither answers nor refuses is waited for no longer), or until ctx is
// done.
func (v *Verifier) WaitStarted(ctx context.Context) {
	timer := time.NewTimer(startupWait)
	defer timer.Stop()
	select {
	case <-v.started:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// Close stops background discovery and refreshes. It is safe to call more than once.
func (v *Verifier) Close() {
	v.closing.Do(func() {
		if v.cancel != nil {
			v.cancel()
		}
		v.wg.Wait()
	})
}

// Trusts reports whether iss (an exact `iss`) is a configured issuer: a
// session signed in through one that is no longer configured is refused.
func (v *Verifier) Trusts(iss string) bool { return v.byIss[iss] != nil }

// IssuerConfig is the settings of the configured issuer iss: a session is
// read under them when a request is decided.
func (v *Verifier) IssuerConfig(iss string) (IssuerConfig, bool) {
	if is := v.byIss[iss]; is != nil {
		return is.cfg, true
	}
	return IssuerConfig{}, false
}

// Status reports each issuer's state.
func (v *Verifier) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(v.list))
	for _, is := range v.list {
		st := IssuerStatus{Name: is.cfg.Name, IssuerURL: is.cfg.IssuerURL, Ready: is.ready.Load()}
		if e := is.lastErr.Load(); e != nil {
			st.LastError = *e
		}
		if ks := is.ks.Load(); ks != nil {
			st.Fetches = ks.Fetches()
		}
		out = append(out, st)
	}
	return out
}

// Fetches is the total number of JWKS fetches attempted across issuers.
func (v *Verifier) Fetches() int64 {
	var n int64
	for _, st := range v.Status() {
		n += st.Fetches
	}
	return n
}

// run brings one issuer up (discovery + first JWKS fetch, retried with
// backoff) and then refreshes its JWKS periodically.
func (v *Verifier) run(is *issuerState, first chan<- struct{}) {
	defer v.wg.Done()
	ctx := v.ctx
	backoff := retryBackoffMin
	for attempt := 1; ; attempt++ {
		started := time.Now()
		err := v.setup(ctx, is)
		if err == nil {
			is.lastErr.Store(nil)
		} else {
			msg := err.Error()
			is.lastErr.Store(&msg)
		}
		if attempt == 1 {
			first <- struct{}{}
		}
		if err == nil {
			v.log.Info("token issuer ready", "issuer", is.cfg.Name, "iss", is.cfg.IssuerURL, "attempts", attempt)
			break
		}
		if ctx.Err() != nil {
			return
		}
		v.log.Warn("token issuer unavailable; its tokens are rejected until it is reachable",
			"issuer", is.cfg.Name, "iss", is.cfg.IssuerURL, "attempt", attempt, "retry_in", backoff, "err", err)
		if !v.sleep(ctx, is, started, backoff) {
			return
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
	t := time.NewTicker(is.cfg.JWKSRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ks := is.ks.Load(); ks != nil {
				_ = ks.Refresh(ctx) // failures are logged; the previous keys stay in use
			}
		}
	}
}

// sleep waits for the backoff, or less when a token for this issuer arrives
// (never retrying sooner than JWKSMinRefresh after the last attempt). It
// returns false when ctx is done.
func (v *Verifier) sleep(ctx context.Context, is *issuerState, last time.Time, backoff time.Duration) bool {
	deadline := last.Add(backoff)
	for {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
			return true
		case <-is.kick:
			timer.Stop()
			if early := last.Add(is.cfg.JWKSMinRefresh); early.Before(deadline) {
				deadline = early
			}
			if !time.Now().Before(deadline) {
				return true
			}
		}
	}
}

// setup runs discovery (unless JWKSURL is set) and the first JWKS fetch.
func (v *Verifier) setup(ctx context.Context, is *issuerState) error {
	c := is.cfg
	actx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	jwksURL := c.JWKSURL
	if jwksURL == "" {
		p, err := oidc.NewProvider(oidc.ClientContext(actx, v.client), c.IssuerURL)
		if err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if err := checkURL(meta.JWKSURI); err != nil {
			return fmt.Errorf("discovery: jwks_uri: %w", err)
		}
		jwksURL = meta.JWKSURI
	}
	ks := is.ks.Load()
	if ks == nil || ks.url != jwksURL {
		ks = NewKeySet(ctx, c.Name, jwksURL, v.client, c.Algorithms, c.JWKSMinRefresh, v.log)
		is.ks.Store(ks)
	}
	if err := ks.Refresh(actx); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	is.ready.Store(true)
	return nil
}

// Verify checks a raw JWT and returns its caller. Every rejection is a
// *TokenError. The token is split and decoded once; its unverified `iss`
// and `alg` only select the issuer and reject early. The signature is
// checked with the issuer's key named by `kid` before any claim is used.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if len(raw) > maxTokenBytes {
		return nil, tokenErr("malformed", "token longer than %d bytes", maxTokenBytes)
	}
	jws, err := parseCompact(raw)
	if err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	// Everything taken from the token below is copied out of it.
	defer jws.release()
	claims, err := objectMembersInto(jws.claimMembers[:0], jws.payload)
	if err != nil {
		return nil, tokenErr("malformed", "payload: not a JSON object")
	}
	var iss string
	var is *issuerState
	if r, ok := claims.get("iss"); ok && isPlainString(r) {
		// The usual case: look the issuer up without a copy of its name.
		if is = v.byIss[string(r[1:len(r)-1])]; is != nil {
			iss = is.cfg.IssuerURL
		} else {
			iss = string(r[1 : len(r)-1])
		}
	} else {
		if iss, _, err = stringClaim(claims, "iss"); err == nil {
			is = v.byIss[iss]
		}
	}
	if err != nil || iss == "" {
		return nil, tokenErr("malformed", "payload: no string `iss` claim")
	}
	if is == nil {
		return nil, tokenErr("unknown_issuer", "iss %q is not a configured issuer", clipStr(iss, 200))
	}
	c := is.cfg
	if !slices.Contains(c.Algorithms, jws.alg) {
		return nil, tokenErr("alg_not_allowed", "alg %q is not allowed for issuer %q (allowed: %v)", clipStr(jws.alg, 32), c.Name, c.Algorithms)
	}
	ks := is.ks.Load()
	if !is.ready.Load() || ks == nil {
		select {
		case is.kick <- struct{}{}:
		default:
		}
		detail := fmt.Sprintf("issuer %q is not reachable yet", c.Name)
		if e := is.lastErr.Load(); e != nil {
			detail += ": " + *e
		}
		return nil, &TokenError{Reason: "issuer_unavailable", Detail: detail}
	}
	if err := ks.verify(ctx, jws); err != nil {
		return nil, err
	}
	// From here on the payload and the protected header are authentic.

	now := v.now()
	skew := c.ClockSkew
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, tokenErr("malformed", "%v", err)
	case !ok:
		return nil, tokenErr("missing_claim", "token has no `exp`")
	case now.After(exp.Add(skew)):
		return nil, tokenErr("expired", "expired at %s (now %s, leeway %v)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	for _, name := range [...]string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return nil, tokenErr("malformed", "%v", err)
		}
		if ok && t.After(now.Add(skew)) {
			return nil, tokenErr("not_yet_valid", "`%s` %s is in the future (now %s, leeway %v)", name, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		}
	}
	aud, err := audienceClaim(claims)
	if err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	if len(aud) == 0 {
		return nil, tokenErr("missing_claim", "token has no `aud`")
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.Audiences, a) }) {
		return nil, tokenErr("wrong_audience", "aud %q does not contain any of %q", truncateAll(aud), c.Audiences)
	}

	id := &Identity{Issuer: iss, IssuerName: c.Name, Expiry: exp, TokenType: jws.typ, EntityRefSubject: c.EntityRefSubjects}
	if id.Subject, _, err = stringClaim(claims, "sub"); err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	if id.Subject == "" {
		return nil, tokenErr("missing_claim", "token has no `sub`")
	}
	if id.Email, _, err = stringClaim(claims, c.EmailClaim); err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	var present bool
	if id.ClientID, present, err = stringClaim(claims, c.ClientIDClaim); err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	if !present || id.ClientID == "" {
		if id.ClientID, _, err = stringClaim(claims, "client_id"); err != nil {
			return nil, tokenErr("malformed", "%v", err)
		}
	}
	if err := readTrust(id, claims, c); err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	if id.Scopes, err = scopesClaim(claims); err != nil {
		return nil, tokenErr("malformed", "%v", err)
	}
	return id, nil
}

// audienceClaim reads `aud`: a string or an array of strings (RFC 7519).
func audienceClaim(claims members) ([]string, error) {
	r, ok := claims.get("aud")
	if !ok || string(r) == "null" {
		return nil, nil
	}
	one, ok := plainString(r)
	if !ok {
		one, ok = unmarshalString(r)
	}
	if ok {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	list, ok := plainStrings(r)
	if !ok {
		if err := json.Unmarshal(r, &list); err != nil {
			return nil, errors.New("claim \"aud\" is neither a string nor an array of strings")
		}
	}
	return list, nil
}

// unmarshalString is encoding/json's reading of a string, for the escaped
// ones (a variable of its own, so that the usual path does not allocate).
func unmarshalString(r []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false
	}
	return s, true
}

func truncateAll(ss []string) []string {
	out := make([]string, 0, min(len(ss), 10))
	for i, s := range ss {
		if i == 10 {
			out = append(out, "…")
			break
		}
		out = append(out, clipStr(s, 100))
	}
	return out
}

// numericDate reads a JWT NumericDate claim (seconds since the epoch, possibly fractional).
func numericDate(claims members, name string) (time.Time, bool, error) {
	r, ok := claims.get(name)
	if !ok || string(r) == "null" {
		return time.Time{}, false, nil
	}
	if len(r) > 0 && len(r) <= 12 && allDigits(r) {
		// Whole seconds, the usual form (no allocation).
		var sec int64
		for _, c := range r {
			sec = sec*10 + int64(c-'0')
		}
		return numericTime(name, float64(sec), nil)
	}
	if len(r) > 0 && (r[0] == '-' || r[0] >= '0' && r[0] <= '9') {
		// A bare JSON number (validated when the payload was decoded).
		f, err := strconv.ParseFloat(string(r), 64)
		return numericTime(name, f, err)
	}
	return jsonNumericDate(name, r)
}

// jsonNumericDate reads a NumericDate that is not a bare number (a quoted
// one is an error) through encoding/json, kept apart so that its variable
// does not cost the usual path an allocation.
func jsonNumericDate(name string, r []byte) (time.Time, bool, error) {
	var n json.Number
	if err := json.Unmarshal(r, &n); err != nil {
		return time.Time{}, false, fmt.Errorf("claim %q is not a number", name)
	}
	f, err := n.Float64()
	return numericTime(name, f, err)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func numericTime(name string, f float64, err error) (time.Time, bool, error) {
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("claim %q is not a valid NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// stringClaim reads an optional string claim.
func stringClaim(claims members, name string) (string, bool, error) {
	r, ok := claims.get(name)
	if !ok || string(r) == "null" {
		return "", false, nil
	}
	if s, ok := plainString(r); ok {
		return s, true, nil
	}
	s, ok := unmarshalString(r)
	if !ok {
		return "", true, fmt.Errorf("claim %q is not a string", name)
	}
	return s, true, nil
}

// plainString reads a JSON string without escapes directly (the payload
// was validated when it was decoded); anything else is left to
// encoding/json.
func plainString(r json.RawMessage) (string, bool) {
	if !isPlainString(r) {
		return "", false
	}
	return string(r[1 : len(r)-1]), true
}

// isPlainString: a JSON string without escapes, in valid UTF-8.
func isPlainString(r []byte) bool {
	return len(r) >= 2 && r[0] == '"' && r[len(r)-1] == '"' && bytes.IndexByte(r, '\\') < 0 && utf8.Valid(r)
}

// plainStrings reads a JSON array of strings without escapes directly (the
// payload is valid JSON); anything else is left to encoding/json.
func plainStrings(r []byte) ([]string, bool) {
	if len(r) < 2 || r[0] != '[' {
		return nil, false
	}
	out := []string{}
	i := skipSpace(r, 1)
	for i < len(r) && r[i] != ']' {
		if r[i] == ',' {
			i = skipSpace(r, i+1)
		}
		if r[i] != '"' {
			return nil, false
		}
		e := endOfString(r, i)
		if !isPlainString(r[i:e]) {
			return nil, false
		}
		out = append(out, string(r[i+1:e-1]))
		i = skipSpace(r, e)
	}
	return out, true
}

// groupsClaim reads a JSON array of strings or a single string, stripping a
// leading "/" (Keycloak full group paths: "/payments" becomes "payments").
func groupsClaim(claims members, name string) ([]string, error) {
	r, ok := claims.get(name)
	if !ok || string(r) == "null" {
		return nil, nil
	}
	list, ok := plainStrings(r)
	if !ok {
		if err := json.Unmarshal(r, &list); err != nil {
			var one string
			if err := json.Unmarshal(r, &one); err != nil {
				return nil, fmt.Errorf("claim %q is neither a string nor an array of strings", name)
			}
			list = []string{one}
		}
	}
	out := list[:0] // list is this call's own: filtered in place
	for _, g := range list {
		g = strings.TrimPrefix(g, "/")
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}
