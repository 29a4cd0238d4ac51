package extauthz

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults and limits for IssuerConfig.
const (
	DefaultClockSkew      = 30 * time.Second
	MaxClockSkew          = 5 * time.Minute
	DefaultJWKSMinRefresh = 10 * time.Second
	DefaultJWKSRefresh    = 5 * time.Minute

	// maxTokenBytes bounds the raw token size accepted by Verify.
	maxTokenBytes = 64 << 10
	// startupWait bounds how long NewVerifier waits for the first discovery
	// attempt of every issuer; issuers not ready by then keep retrying in
	// the background.
	startupWait = 5 * time.Second
	// discoveryTimeout bounds one discovery + first JWKS attempt.
	discoveryTimeout = 15 * time.Second
	retryBackoffMin  = time.Second
	retryBackoffMax  = time.Minute
)

// DefaultAlgorithms are the signing algorithms accepted when an issuer lists none.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// supportedAlgorithms are the asymmetric JWS algorithms an issuer may allow.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Name is a short name for logs, metrics and audit, e.g. "keycloak".
	// Defaults to the host of IssuerURL.
	Name string
	// IssuerURL is the exact `iss` value. Discovery is done at IssuerURL +
	// "/.well-known/openid-configuration" unless JWKSURL is set.
	IssuerURL string
	// JWKSURL, when set, skips discovery and uses this JWKS
	// (Backstage: <backend>/api/auth/.well-known/jwks.json).
	JWKSURL string
	// Audiences are the accepted `aud` values; at least one must match.
	Audiences []string
	// Algorithms are the allowed signing algorithms (default RS256, ES256).
	// "none" and HMAC algorithms are rejected.
	Algorithms []string
	// ClockSkew is the leeway for exp/nbf/iat (default 30s, max 5m).
	ClockSkew time.Duration
	// EmailClaim and ClientIDClaim name the claims read into Identity
	// (defaults "email" and "azp"; the client ID falls back to "client_id"
	// when the configured claim is absent).
	EmailClaim, ClientIDClaim string
	// TrustEmail maps the email claim to a catalog User even when the
	// token does not say `email_verified: true`. Off by default: with it, a
	// user who can set an unverified email at the IdP (Keycloak's account
	// console does, by default) becomes whichever catalog user has that
	// address. Turn it on only for an IdP that verifies every email it
	// issues and does not send email_verified.
	TrustEmail bool
	// EntityRefSubjects: a `sub` that is a catalog entity ref
	// (user:default/alice) is that User. For Backstage's own user tokens;
	// off by default, because at an IdP where users choose their subject
	// (a username) one could name another catalog user.
	EntityRefSubjects bool
	// GroupsClaim names the claim whose IdP groups become catalog group
	// memberships. Empty (the default): no group of this issuer counts, so
	// an IdP where users can create or name groups grants nothing.
	GroupsClaim string
	// GroupsPrefix, when set, keeps only the IdP groups that start with it
	// (and removes it): "catalog-" maps "catalog-payments" to the group
	// payments and ignores "payments".
	GroupsPrefix string
	// GroupsNamespace is the catalog namespace a bare IdP group name maps
	// into (default "default"); Groups that list the name in
	// gatehouse.dev/idp-group match in any namespace.
	GroupsNamespace string
	// MachineClaims say which tokens of this issuer are client-credentials
	// (machine) tokens: every "claim=value" must hold, with {client}
	// standing for the token's client id. Only such a token acts as the
	// Component whose gatehouse.dev/client-id is its client. Empty (the
	// default): no token of this issuer is a machine token. Keycloak:
	// ["client_id={client}"] (its service_account scope adds client_id to
	// client-credentials tokens only); Okta: ["sub={client}"]; Auth0:
	// ["gty=client-credentials"]; Entra ID: ["idtyp=app"].
	MachineClaims []string
	// JWKSMinRefresh is the minimum interval between JWKS refetches
	// triggered by unknown kids (and discovery retries triggered by
	// tokens), per issuer. Default 10s.
	JWKSMinRefresh time.Duration
	// JWKSRefresh is the periodic background JWKS refresh interval. Default 5m.
	JWKSRefresh time.Duration
}

// WithDefaults returns c with empty fields set to their defaults.
func (c IssuerConfig) WithDefaults() IssuerConfig {
	if c.Name == "" {
		if u, err := url.Parse(c.IssuerURL); err == nil && u.Host != "" {
			c.Name = u.Host
		}
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.EmailClaim == "" {
		c.EmailClaim = "email"
	}
	if c.GroupsNamespace == "" {
		c.GroupsNamespace = "default"
	}
	if c.ClientIDClaim == "" {
		c.ClientIDClaim = "azp"
	}
	if c.JWKSMinRefresh == 0 {
		c.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	return c
}

// Validate checks a configuration (normally after WithDefaults). Errors name
// the issuer, the field and the fix.
func (c IssuerConfig) Validate() error {
	who := c.Name
	if who == "" {
		who = c.IssuerURL
	}
	if who == "" {
		who = "(unnamed)"
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("issuer %q: %s: %s", who, field, fmt.Sprintf(format, args...))
	}
	if c.Name == "" {
		return bad("name", "empty (fix: set a short name such as \"keycloak\")")
	}
	if err := checkURL(c.IssuerURL); err != nil {
		return bad("issuerURL", "%v (fix: set the exact `iss` value of the tokens, e.g. https://idp.example.com/realms/main)", err)
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL); err != nil {
			return bad("jwksURL", "%v (fix: set an absolute http(s) URL, or leave it empty to use discovery)", err)
		}
	}
	if len(c.Audiences) == 0 {
		return bad("audiences", "empty (fix: list at least one accepted `aud` value, e.g. the client ID or \"backstage\")")
	}
	for _, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			return bad("audiences", "contains an empty value (fix: remove it)")
		}
	}
	if len(c.Algorithms) == 0 {
		return bad("algorithms", "empty (fix: leave it unset for the default %v, or list asymmetric algorithms)", DefaultAlgorithms)
	}
	for _, a := range c.Algorithms {
		switch {
		case strings.EqualFold(strings.TrimSpace(a), "none"):
			return bad("algorithms", "%q is not allowed: unsigned tokens would be accepted (fix: remove it)", a)
		case strings.HasPrefix(strings.ToUpper(a), "HS") || strings.Contains(strings.ToUpper(a), "HMAC"):
			return bad("algorithms", "%q is not allowed: HMAC needs a shared secret and enables key-confusion attacks (fix: use RS256/ES256 with the issuer's JWKS)", a)
		case !slices.Contains(supportedAlgorithms, a):
			return bad("algorithms", "%q is not supported (fix: use one of %v)", a, supportedAlgorithms)
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew {
		return bad("clockSkew", "%v out of range (fix: use a value between 0 and %v; default %v)", c.ClockSkew, MaxClockSkew, DefaultClockSkew)
	}
	if c.EmailClaim == "" || c.ClientIDClaim == "" {
		return bad("claims", "emailClaim and clientIdClaim must not be empty (fix: leave them unset for the defaults)")
	}
	if c.GroupsClaim == "" && c.GroupsPrefix != "" {
		return bad("groupsPrefix", "set without groupsClaim, so it does nothing (fix: set groupsClaim, e.g. \"groups\", or remove it)")
	}
	if c.GroupsClaim == "" && c.GroupsNamespace != "default" {
		return bad("groupsNamespace", "set without groupsClaim, so it does nothing (fix: set groupsClaim, e.g. \"groups\", or remove it)")
	}
	for _, m := range c.MachineClaims {
		if _, err := parseMachineClaim(m); err != nil {
			return bad("machineClaims", "%v (fix: write claim=value, e.g. \"client_id={client}\" for Keycloak)", err)
		}
	}
	if c.JWKSMinRefresh <= 0 {
		return bad("jwksMinRefresh", "%v must be positive (fix: leave it unset for the default %v)", c.JWKSMinRefresh, DefaultJWKSMinRefresh)
	}
	if c.JWKSRefresh < time.Second {
		return bad("jwksRefresh", "%v is too short (fix: use at least 1s; default %v)", c.JWKSRefresh, DefaultJWKSRefresh)
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %v", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
