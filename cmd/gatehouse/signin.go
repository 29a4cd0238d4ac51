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
// off): the /.gatehouse/ paths Envoy routes to it.
func newSignInServer(cfg config.Config, keys *extauthz.SessionKeys, log *slog.Logger) (*http.Server, error) {
	if !cfg.SignIn.Enabled() {
		return nil, nil
	}
	hc := signin.Config{Keys: keys, Lifetime: cfg.SignIn.SessionLifetime, ReturnHosts: cfg.SignIn.ReturnHosts, PublicPort: cfg.SignIn.PublicPort, Log: log}
	if err := samlSignInConfig(cfg.SignIn, &hc); err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(cfg.Issuers, func(is config.Issuer) bool { return is.Name == cfg.SignIn.Issuer }); i >= 0 {
		is := cfg.Issuers[i]
		key := fmt.Sprintf("issuers[%d].sign_in", i)
		secret, err := readSecret(key+".client_secret_env", is.SignIn.ClientSecretEnv, key+".client_secret_file", is.SignIn.ClientSecretFile, "the sign-in client's secret")
		if err == nil && secret == "" {
			err = fmt.Errorf("%s.client_secret_file: the file is empty", key)
		}
		if err != nil {
			return nil, err
		}
		hc.Provider = signin.ProviderConfig{Name: is.Name, IssuerURL: is.IssuerURL, ClientID: is.SignIn.ClientID, ClientSecret: secret,
			Scopes: is.SignIn.Scopes, EntityRefSubjects: is.EntityRefSubjects}
	} else if hc.SAMLDefault == "" {
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
