package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// ProviderConfig is the OIDC client gatehouse signs people in with: the
// issuer (as configured in issuers[]) and a confidential client there.
type ProviderConfig struct {
	// Name of the issuer (issuers[].name); IssuerURL its exact iss.
	Name      string
	IssuerURL string
	ClientID  string
	// ClientSecret is read from a file or the environment by the caller;
	// it is never logged nor shown in /debug.
	ClientSecret string `json:"-"`
	// Scopes besides openid (default: email, profile).
	Scopes []string
	// EntityRefSubjects: as the issuer's token setting (Check reads the
	// issuer's current settings; the cookie's copy is a fallback).
	EntityRefSubjects bool
}

// oidcFlow is the authorization code flow at one provider, discovered
// lazily.
type oidcFlow struct {
	cfg    ProviderConfig
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	endSess  string
	lastTry  time.Time
	lastErr  error
}

func newOIDCFlow(cfg ProviderConfig, client *http.Client) *oidcFlow {
	return &oidcFlow{cfg: cfg, client: client}
}

// refusal is an answer of the IdP that failed a check (not an outage).
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.reason + ": " + r.err.Error() }

// discover returns the provider, discovering it at most every 5 seconds
// after a failure.
func (f *oidcFlow) discover(ctx context.Context) (*oidc.Provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provider != nil {
		return f.provider, nil
	}
	if f.lastErr != nil && time.Since(f.lastTry) < 5*time.Second {
		return nil, f.lastErr
	}
	f.lastTry = time.Now()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, f.client), f.cfg.IssuerURL)
	if err != nil {
		f.lastErr = fmt.Errorf("OIDC discovery at %s: %w", f.cfg.IssuerURL, err)
		return nil, f.lastErr
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&meta)
	f.provider, f.endSess, f.lastErr = p, meta.EndSession, nil
	return p, nil
}

func (f *oidcFlow) oauth2Config(p *oidc.Provider, redirect string) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	if len(f.cfg.Scopes) == 0 {
		scopes = append(scopes, "email", "profile")
	}
	scopes = append(scopes, f.cfg.Scopes...)
	return &oauth2.Config{ClientID: f.cfg.ClientID, ClientSecret: f.cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: scopes}
}

// authCodeURL is the IdP's authorization URL for a binding: its state,
// nonce and the S256 challenge of its verifier.
func (f *oidcFlow) authCodeURL(ctx context.Context, redirect string, b binding) (string, error) {
	p, err := f.discover(ctx)
	if err != nil {
		return "", err
	}
	return f.oauth2Config(p, redirect).AuthCodeURL(b.State, oidc.Nonce(b.Nonce), oauth2.S256ChallengeOption(b.Verifier)), nil
}

// exchange trades the code for tokens (with the PKCE verifier), verifies
// the ID token (signature, issuer, audience = our client, expiry) and its
// nonce, and returns who signed in. The tokens themselves are dropped.
func (f *oidcFlow) exchange(ctx context.Context, redirect, code string, b binding) (*extauthz.Session, error) {
	p, err := f.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := f.oauth2Config(p, redirect).Exchange(oidc.ClientContext(ctx, f.client), code, oauth2.VerifierOption(b.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return nil, &refusal{"code_refused", err}
		}
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &refusal{"no_id_token", errors.New("the token response has no id_token")}
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: f.cfg.ClientID}).Verify(oidc.ClientContext(ctx, f.client), raw)
	if err != nil {
		return nil, &refusal{"id_token_invalid", err}
	}
	if !equal(idt.Nonce, b.Nonce) {
		return nil, &refusal{"nonce_mismatch", errors.New("the ID token's nonce is not this sign-in's")}
	}
	return f.session(idt)
}

// session is the identity key of a verified ID token.
func (f *oidcFlow) session(idt *oidc.IDToken) (*extauthz.Session, error) {
	var claims struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, &refusal{"id_token_claims", err}
	}
	if idt.Subject == "" {
		return nil, &refusal{"id_token_claims", errors.New("the ID token has no sub")}
	}
	s := &extauthz.Session{Issuer: idt.Issuer, IssuerName: f.cfg.Name, Subject: idt.Subject, Method: "oidc", EntityRefSubject: f.cfg.EntityRefSubjects}
	// email_verified is a boolean, or (some IdPs) the string "true".
	// Whether the email counts (verified, or the issuer's trust_email) is
	// decided on every request under the issuer's settings of then.
	if claims.Email != "" {
		verified := claims.EmailVerified == true || claims.EmailVerified == "true"
		s.Email, s.EmailVerified = strings.ToLower(claims.Email), &verified
	}
	return s, nil
}

// endSessionURL is the IdP's RP-initiated logout URL returning to after,
// or "" when the IdP has none (or cannot be reached).
func (f *oidcFlow) endSessionURL(ctx context.Context, after string) string {
	if _, err := f.discover(ctx); err != nil {
		return ""
	}
	f.mu.Lock()
	end := f.endSess
	f.mu.Unlock()
	if end == "" {
		return ""
	}
	sep := "?"
	if strings.Contains(end, "?") {
		sep = "&"
	}
	return end + sep + endSessionParams(f.cfg.ClientID, after).Encode()
}
