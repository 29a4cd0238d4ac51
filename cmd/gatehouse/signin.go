package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/signin"
)

// loadSessionKeys reads signin.key_file (nil when sign-in is off).
func loadSessionKeys(cfg config.Config) (*extauthz.SessionKeys, error) {
	if !cfg.SignIn.Enabled() {
		return nil, nil
	}
	k, err := extauthz.LoadSessionKeys(cfg.SignIn.KeyFile, cfg.SignIn.GenerateKey)
	if err != nil {
		return nil, fmt.Errorf("signin.key_file: %w", err)
	}
	return k, nil
}

// newSignInServer is the sign-in listener's server (nil when sign-in is
// off): the /.gatehouse/ paths Envoy routes to it. config.Validate has
// checked signin.issuer names an issuer, or the development issuer
// (config.DevIssuerName), which exists only with serve --dev (dev); then
// its user picker is turned on, offering users().
func newSignInServer(cfg config.Config, keys *extauthz.SessionKeys, dev *extauthz.DevIssuer, users func() []model.User, log *slog.Logger) (*http.Server, error) {
	if !cfg.SignIn.Enabled() {
		return nil, nil
	}
	hc := signin.Config{Keys: keys, Lifetime: cfg.SignIn.SessionLifetime, RenewGrace: cfg.SignIn.RenewGrace,
		Cookie: extauthz.SessionCookie{Domain: cfg.SignIn.CookieDomain}, ReturnHosts: cfg.SignIn.ReturnHosts, PublicPort: cfg.SignIn.PublicPort, Log: log}
	if err := samlSignInConfig(cfg.SignIn, &hc); err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(cfg.Issuers, func(is config.Issuer) bool { return is.Name == cfg.SignIn.Issuer }); i >= 0 {
		is := cfg.Issuers[i]
		var secret string
		if dev != nil && is.IssuerURL == dev.Issuer() {
			// The development issuer's own client: the user picker, a secret
			// made for this process.
			dev.EnableSignIn(users)
			is.SignIn.ClientID, secret = extauthz.DevSignInClient, dev.ClientSecret()
			log.Warn("DEVELOPMENT SIGN-IN ON (--dev): browsers pick any catalog user at " + dev.Issuer() + "/authorize, no password; never use --dev in production")
		} else {
			key := fmt.Sprintf("issuers[%d].sign_in", i)
			var err error
			secret, err = readSecret(key+".client_secret_env", is.SignIn.ClientSecretEnv, key+".client_secret_file", is.SignIn.ClientSecretFile, "the sign-in client's secret")
			if err == nil && secret == "" {
				err = fmt.Errorf("%s.client_secret_file: the file is empty", key)
			}
			if err != nil {
				return nil, err
			}
		}
		hc.Provider = signin.ProviderConfig{Name: is.Name, IssuerURL: is.IssuerURL, ClientID: is.SignIn.ClientID, ClientSecret: secret,
			Scopes: is.SignIn.Scopes, EntityRefSubjects: is.EntityRefSubjects}
	} else if hc.SAMLDefault == "" {
		if cfg.SignIn.Issuer == config.DevIssuerName { // only the development issuer passes Validate without being listed
			return nil, fmt.Errorf("signin.issuer: %q is the development issuer, which runs only with serve --dev (fix: start with --dev, or name an issuers[] entry)", cfg.SignIn.Issuer)
		}
		return nil, fmt.Errorf("signin.issuer: %q is not the name of an issuer or SAML IdP", cfg.SignIn.Issuer)
	}
	h, err := signin.New(hc)
	if err != nil {
		return nil, err
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}, nil
}

// serveSignIn binds signin.listen and serves it (nothing when off).
func (p *process) serveSignIn() error {
	if p.signin == nil {
		return nil
	}
	lis, err := net.Listen("tcp", p.cfg.SignIn.Listen)
	if err != nil {
		return fmt.Errorf("signin.listen %s: %w", p.cfg.SignIn.Listen, err)
	}
	p.run("signin", func() {
		if err := p.signin.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.errc <- fmt.Errorf("sign-in server: %w", err)
		}
	})
	p.log.Info("sign-in serving", "listen", lis.Addr().String(), "issuer", p.cfg.SignIn.Issuer)
	return nil
}

// catalogUsers are the users of the model xDS serves now (the development
// issuer's picker).
func (p *process) catalogUsers() []model.User {
	if m := p.xds.Model(); m != nil {
		return m.Directory.Users
	}
	return nil
}
