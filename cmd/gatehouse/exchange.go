package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// newDelegation is the issuer of delegated tokens (nil when the token
// exchange is off); Check accepts its tokens.
func newDelegation(cfg config.Config, signer *extauthz.Signer) (*extauthz.Delegation, error) {
	if !cfg.TokenExchange.Enabled() {
		return nil, nil
	}
	d, err := extauthz.NewDelegation(cfg.TokenExchange.Issuer, cfg.TokenExchange.Lifetime, signer)
	if err != nil {
		return nil, fmt.Errorf("token_exchange: %w", err)
	}
	return d, nil
}

// setUpExchange builds the token exchange's server (docs/agents.md): on
// the sign-in listener when token_exchange.listen is signin.listen, else
// on its own (p.exchange). Nothing when off.
func (p *process) setUpExchange() {
	d := p.authz.delegation
	if d == nil {
		return
	}
	h := extauthz.NewExchanger(p.authz.server, d, p.log.With("component", "token-exchange"))
	if p.signin != nil && p.cfg.TokenExchange.Listen == p.cfg.SignIn.Listen {
		mux := http.NewServeMux()
		mux.Handle(extauthz.ExchangePath, h)
		mux.Handle("/", p.signin.Handler)
		p.signin.Handler = mux
		return
	}
	mux := http.NewServeMux()
	mux.Handle(extauthz.ExchangePath, h)
	p.exchange = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
}

// serveExchange binds token_exchange.listen and serves it (nothing when
// off or shared with sign-in).
func (p *process) serveExchange() error {
	if p.exchange == nil {
		return nil
	}
	lis, err := net.Listen("tcp", p.cfg.TokenExchange.Listen)
	if err != nil {
		return fmt.Errorf("token_exchange.listen %s: %w", p.cfg.TokenExchange.Listen, err)
	}
	p.run("token-exchange", func() {
		if err := p.exchange.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.errc <- fmt.Errorf("token exchange server: %w", err)
		}
	})
	p.log.Info("token exchange serving", "listen", lis.Addr().String(), "path", extauthz.ExchangePath, "issuer", p.cfg.TokenExchange.Issuer)
	return nil
}

// exchangeAddress is where Envoys reach the token exchange ("" when off).
func exchangeAddress(cfg config.Config) string {
	if !cfg.TokenExchange.Enabled() {
		return ""
	}
	if a := strings.Join(cfg.TokenExchange.EnvoyAddress, ","); a != "" {
		return a
	}
	return cfg.TokenExchange.Listen
}
