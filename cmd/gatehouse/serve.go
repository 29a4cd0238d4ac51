package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/gatehouse-dev/gatehouse/admin"
	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/internal/tlsfiles"
	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
	"github.com/gatehouse-dev/gatehouse/xds"
)

func serveCmd() *cobra.Command {
	var cfgPath string
	var catalogFiles []string
	var dev bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane: catalog sync, xDS server and admin listener",
		Example: `  # the example catalog built into gatehouse
  gatehouse serve
  # a configuration file; SIGHUP or saving it reloads catalog, issuers and log.level
  gatehouse serve --config gatehouse.yaml
  # catalog files, directories or globs, without a configuration file
  gatehouse serve --catalog ./catalog --catalog 'teams/*.yaml'
  # development only: a built-in token issuer (see gatehouse token)
  gatehouse serve --dev --catalog examples/catalog/catalog-info.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var devIssuer *extauthz.DevIssuer
			var log *slog.Logger
			var early []string // warnings from before the logger exists
			warn := func(w string) {
				if log == nil {
					early = append(early, w)
					return
				}
				log.Warn(w)
			}
			// load reads the configuration with the flags applied; the
			// reloader calls it again on SIGHUP or a change of the file.
			load := func() (config.Config, error) {
				cfg, err := loadConfigWarn(cfgPath, warn)
				if err != nil {
					return cfg, err
				}
				if len(catalogFiles) > 0 {
					cfg.Catalog.Files = catalogFiles
				}
				if devIssuer != nil {
					addDevIssuer(&cfg, devIssuer)
				}
				return cfg, nil
			}
			cfg, err := load()
			if err != nil {
				for _, w := range early {
					fmt.Fprintln(os.Stderr, "gatehouse: warning:", w)
				}
				return err
			}
			log = newLogger(cfg.Log)
			for _, w := range early {
				log.Warn(w)
			}
			if dev {
				if devIssuer, err = enableDev(&cfg, log); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, log, devIssuer, reloadSource{path: cfgPath, load: load})
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (gatehouse.yaml)")
	cmd.Flags().StringSliceVar(&catalogFiles, "catalog", nil, "catalog files, directories or globs (overrides catalog.files)")
	cmd.Flags().BoolVar(&dev, "dev", false, "DEVELOPMENT ONLY: run a built-in token issuer on the (loopback) admin listener; see gatehouse token")
	return cmd
}

// serve wires the runners together and blocks until ctx is done.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, devIssuer *extauthz.DevIssuer, reload reloadSource) error {
	xdsLis, err := net.Listen("tcp", cfg.XDS.Listen)
	if err != nil {
		return fmt.Errorf("xds.listen %s: %w", cfg.XDS.Listen, err)
	}
	adminLis, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	authzLis, err := net.Listen("tcp", cfg.Authz.Listen)
	if err != nil {
		xdsLis.Close()
		adminLis.Close()
		return fmt.Errorf("authz.listen %s: %w", cfg.Authz.Listen, err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	store := cs.NewStore("files", "backstage", "embedded")
	opts := xdsOptions(cfg)
	if opts.AuthzAddress == "" {
		opts.AuthzAddress = authzLis.Addr().String()
	}
	var ca *meshca.CA
	if cfg.Mesh.TrustDomain != "" {
		ca, err = meshca.Load(meshca.Config{TrustDomain: cfg.Mesh.TrustDomain, CertFile: cfg.Mesh.CACert, KeyFile: cfg.Mesh.CAKey,
			Generate: cfg.Mesh.GenerateCA, ExtraTrustFile: cfg.Mesh.ExtraTrust})
		if err != nil {
			xdsLis.Close()
			adminLis.Close()
			authzLis.Close()
			return err
		}
	}
	xdsSrv := xds.NewServer(runCtx, opts, log.With("component", "xds"))
	if ca != nil {
		xdsSrv.EnableMesh(runCtx, ca, cfg.Mesh.CertTTL)
		log.Info("mesh enabled", "trust_domain", cfg.Mesh.TrustDomain, "ca_cert", cfg.Mesh.CACert, "cert_ttl", cfg.Mesh.CertTTL)
	}

	authz, closeAuthz, err := newAuthz(runCtx, cfg, log.With("component", "authz"))
	if err != nil {
		xdsLis.Close()
		adminLis.Close()
		authzLis.Close()
		return err
	}
	defer closeAuthz()

	var problems atomic.Pointer[cs.Problems]
	var sources *catalogRunner
	sourcesStatus := func() []cs.SourceStatus {
		if sources == nil {
			return nil
		}
		return sources.statuses()
	}
	var devHandler http.Handler
	if devIssuer != nil {
		devHandler = devIssuer.Handler()
	}
	adm := admin.New(admin.Sources{
		Dev:      devHandler,
		Model:    func() any { return xdsSrv.Model() },
		Nodes:    func() any { return xdsSrv.Nodes() },
		Problems: func() any { return currentProblems(problems.Load()) },
		Sources:  func() any { return sourcesStatus() },
		JWKS:     authz.signer.JWKS,
		Explain:  explainHandler(authz.server),
		Decision: func(id string) (any, bool) { return authz.audit.Decision(id) },
	})

	xdsCreds, err := serverCreds("xds.tls", cfg.XDS.TLS)
	if err != nil {
		return err
	}
	authzCreds, err := serverCreds("authz.tls", cfg.Authz.TLS)
	if err != nil {
		return err
	}
	g := grpc.NewServer(append(xds.GRPCServerOptions(), xdsCreds,
		grpc.MaxRecvMsgSize(4<<20),
		grpc.MaxSendMsgSize(64<<20), // a large fleet config fits one response
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)...)
	xdsSrv.Register(g)
	ga := grpc.NewServer(append(extauthz.GRPCServerOptions(), authzCreds)...)
	authz.server.Register(ga)
	httpSrv := &http.Server{Handler: adm, ReadHeaderTimeout: 5 * time.Second}

	var wg sync.WaitGroup
	run := func(name string, f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f(); log.Debug("stopped", "runner", name) }()
	}
	sources = newCatalogRunner(runCtx, store, log.With("component", "catalog"))
	if err := sources.apply(cfg.Catalog); err != nil {
		return err
	}
	defer sources.stop()
	run("reload", func() {
		watchReload(runCtx, reload, log, func(next config.Config) {
			applyReload(&cfg, next, sources, authz.server, log)
		})
	})
	run("compile", func() {
		lastVersion := ""
		compile.Follow(runCtx, store, cfg.XDS.Holdoff, func(m *model.Model, snap *cs.Snapshot, ps cs.Problems) {
			problems.Store(&ps)
			// Policies first: a route id Envoy learns must already be known
			// to Check.
			authz.server.SetModel(m)
			xdsSrv.SetModel(m)
			if m.Version != lastVersion {
				log.Info("model published", "version", m.Version, "generation", snap.Generation,
					"virtual_hosts", len(m.VirtualHosts), "clusters", len(m.Clusters), "problems", len(ps))
				lastVersion = m.Version
			}
			adm.SetReady()
		})
	})
	run("assertion-keys", func() { authz.signer.Run(runCtx) })
	errc := make(chan error, 3)
	run("xds", func() {
		if err := g.Serve(xdsLis); err != nil {
			errc <- fmt.Errorf("xds server: %w", err)
		}
	})
	run("authz", func() {
		if err := ga.Serve(authzLis); err != nil {
			errc <- fmt.Errorf("authz server: %w", err)
		}
	})
	run("admin", func() {
		if err := httpSrv.Serve(adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	})
	log.Info("gatehouse serving", "xds", xdsLis.Addr().String(), "authz", authzLis.Addr().String(), "admin", adminLis.Addr().String(), "catalog", cfg.Catalog.Files)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("runner failed; shutting down", "error", runErr)
	}
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = httpSrv.Shutdown(shutdownCtx)
	// Drain in-flight Checks, then close xDS streams (they never end on
	// their own, so their graceful stop is bounded).
	stopped := make(chan struct{})
	go func() { ga.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		ga.Stop()
	}
	xdsStopped := make(chan struct{})
	go func() { g.GracefulStop(); close(xdsStopped) }()
	select {
	case <-xdsStopped:
	case <-time.After(time.Second):
		g.Stop()
	}
	wg.Wait()
	closeAuthz() // flush the audit trail
	return runErr
}

// currentProblems is what /debug/problems shows: a JSON list, [] (not
// null) before the first compile and when there are none.
func currentProblems(p *cs.Problems) cs.Problems {
	if p == nil || *p == nil {
		return cs.Problems{}
	}
	return *p
}

// serverCreds is the transport of a gRPC listener: TLS from files that are
// re-read when they change, or plaintext when none are configured.
func serverCreds(key string, t config.TLS) (grpc.ServerOption, error) {
	if t.CertFile == "" {
		return grpc.EmptyServerOption{}, nil
	}
	f := tlsfiles.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	c, err := tlsfiles.ServerConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return grpc.Creds(credentials.NewTLS(c)), nil
}

// xdsOptions are the translator's (and the ADS server's) settings from the
// configuration: what serve gives the server and translate prints with.
// An empty AuthzAddress is the caller's to fill (serve: the ext_authz
// listener's address).
func xdsOptions(cfg config.Config) xds.Options {
	opts := xds.DefaultOptions()
	opts.EdgeAddress, opts.EdgePort, opts.UpstreamCAFile = cfg.Edge.Address, cfg.Edge.Port, cfg.Edge.UpstreamCAFile
	opts.AuthzAddress, opts.AuthzTimeout = cfg.Authz.EnvoyAddress, cfg.Authz.Timeout
	opts.SendBudget = int64(cfg.XDS.SendBudgetMiB) << 20
	opts.RemoveRequestHeaders, opts.CredentialCookie = cfg.Edge.RemoveRequestHeaders, cfg.Authz.CookieName
	if cfg.Authz.TLS.CertFile != "" {
		t := cfg.Authz.EnvoyTLS
		opts.AuthzTLS = &xds.UpstreamTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}
	}
	if cfg.Mesh.TrustDomain != "" {
		opts.TrustDomain, opts.MeshCertTTL = cfg.Mesh.TrustDomain, cfg.Mesh.CertTTL
	}
	return opts
}
