package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

type authzParts struct {
	server   *extauthz.Server
	signer   *extauthz.Signer
	audit    *extauthz.Audit
	verifier *extauthz.Verifier    // discovery started, maybe not over (Started)
	sessions *extauthz.SessionKeys // nil when sign-in is off
}

// newAuthz builds the Check server from the configuration. Issuer
// discovery starts in the background (the caller waits for
// verifier.Started before taking Checks). The returned close function
// flushes the audit trail; it may be called more than once.
func newAuthz(ctx context.Context, cfg config.Config, log *slog.Logger) (*authzParts, func(), error) {
	var issuers []extauthz.IssuerConfig
	for _, is := range cfg.Issuers {
		issuers = append(issuers, issuerConfig(is))
	}
	if len(issuers) == 0 {
		log.Warn("no token issuers configured: every protected route answers 401 (fix: add issuers to the configuration)")
	}
	verifier, err := extauthz.StartVerifier(ctx, issuers, &http.Client{Timeout: 10 * time.Second}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("issuers: %w", err)
	}
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{
		Issuer: cfg.Assertion.Issuer, Lifetime: cfg.Assertion.Lifetime, KeyFile: cfg.Assertion.KeyFile, Rotate: cfg.Assertion.Rotate,
	})
	if err != nil {
		verifier.Close()
		return nil, nil, fmt.Errorf("assertion: %w", err)
	}
	var w io.Writer
	var file *os.File
	switch strings.ToLower(cfg.Audit.Output) {
	case "stdout", "":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	case "off":
		w = io.Discard
	default:
		file, err = os.OpenFile(cfg.Audit.Output, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			verifier.Close()
			return nil, nil, fmt.Errorf("audit.output: %w (fix: name a writable file, or stdout)", err)
		}
		w = file
	}
	sessions, err := loadSessionKeys(cfg)
	if err != nil {
		if file != nil {
			_ = file.Close()
		}
		verifier.Close()
		return nil, nil, err
	}
	audit := extauthz.NewAudit(w, cfg.Audit.Buffer)
	srv := extauthz.NewServer(extauthz.Options{CookieName: cfg.Authz.CookieName, CacheSize: cfg.Authz.CacheSize, CacheTTL: cfg.Authz.CacheTTL, TrustDomain: cfg.Mesh.TrustDomain, Sessions: sessions,
		SAMLIssuers: samlIssuers(cfg)},
		verifier, signer, audit, log)
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			audit.Close()
			if file != nil {
				_ = file.Close()
			}
			verifier.Close()
			log.Info("audit flushed", "written", audit.Written(), "dropped", audit.Dropped())
		})
	}
	return &authzParts{server: srv, signer: signer, audit: audit, verifier: verifier, sessions: sessions}, closeFn, nil
}

// newAuthzVerifier builds only the token verifier (for explain --token).
func newAuthzVerifier(ctx context.Context, cfg config.Config) (extauthz.TokenVerifier, func(), error) {
	var issuers []extauthz.IssuerConfig
	for _, is := range cfg.Issuers {
		issuers = append(issuers, issuerConfig(is))
	}
	v, err := extauthz.NewVerifier(ctx, issuers, &http.Client{Timeout: 10 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, err
	}
	return v, v.Close, nil
}

func issuerConfig(is config.Issuer) extauthz.IssuerConfig {
	return extauthz.IssuerConfig{
		Name: is.Name, IssuerURL: is.IssuerURL, JWKSURL: is.JWKSURL, Audiences: is.Audiences, Algorithms: is.Algorithms,
		ClockSkew: is.ClockSkew, EmailClaim: is.EmailClaim, ClientIDClaim: is.ClientIDClaim,
		TrustEmail: is.TrustEmail, GroupsClaim: is.GroupsClaim, GroupsPrefix: is.GroupsPrefix, GroupsNamespace: is.GroupsNamespace,
		MachineClaims: is.MachineTokenClaims, EntityRefSubjects: is.EntityRefSubjects,
	}
}
