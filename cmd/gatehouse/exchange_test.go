package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// The token exchange on the sign-in listener (same address): one server,
// /.gatehouse/token to the exchange, every other path to sign-in; on
// its own address, a server of its own.
func TestExchangeSharesTheSignInListener(t *testing.T) {
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.SignIn.Listen, cfg.TokenExchange.Listen, cfg.TokenExchange.Issuer = "127.0.0.1:18002", "127.0.0.1:18002", "https://gw/.gatehouse/token"
	d, err := newDelegation(cfg, signer)
	if err != nil || d == nil {
		t.Fatalf("delegation: %v", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := extauthz.NewServer(extauthz.Options{Delegation: d}, nil, signer, nil, quiet)
	signIn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sign-in "+r.URL.Path) })
	p := &process{cfg: cfg, log: quiet, authz: &authzParts{server: srv, signer: signer, delegation: d}, signin: &http.Server{Handler: signIn}}
	p.setUpExchange()
	if p.exchange != nil {
		t.Fatal("a second server on the sign-in listener's address")
	}
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		p.signin.Handler.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("grant_type=x")))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("GET", "/.gatehouse/signin"); code != 200 || body != "sign-in /.gatehouse/signin" {
		t.Fatalf("sign-in: %d %q", code, body)
	}
	if code, body := get("POST", extauthz.ExchangePath); code != 400 || !strings.Contains(body, "invalid_request") {
		t.Fatalf("exchange: %d %q", code, body)
	}
	cfg.TokenExchange.Listen = "127.0.0.1:18003"
	p = &process{cfg: cfg, log: quiet, authz: &authzParts{server: srv, signer: signer, delegation: d}, signin: &http.Server{Handler: signIn}}
	p.setUpExchange()
	if p.exchange == nil {
		t.Fatal("no server of its own on another address")
	}
	rec := httptest.NewRecorder()
	p.exchange.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/.gatehouse/signin", nil))
	if rec.Code != 404 {
		t.Fatalf("the exchange's own server answered a sign-in path: %d", rec.Code)
	}
	cfg.TokenExchange.Issuer = cfg.Assertion.Issuer
	if _, err := newDelegation(cfg, signer); err == nil {
		t.Fatal("the assertions' issuer accepted for delegated tokens")
	}
}
