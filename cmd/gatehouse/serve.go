package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
			ctx, stop := notifyShutdown(log)
			defer stop()
			return serve(ctx, cfg, log, devIssuer, reloadSource{path: cfgPath, load: load})
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (gatehouse.yaml)")
	cmd.Flags().StringSliceVar(&catalogFiles, "catalog", nil, "catalog files, directories or globs (overrides catalog.files)")
	cmd.Flags().BoolVar(&dev, "dev", false, "DEVELOPMENT ONLY: run a built-in token issuer on the (loopback) admin listener; see gatehouse token")
	return cmd
}

// serve runs gatehouse until ctx is done (the first SIGTERM or SIGINT),
// then drains and stops. The order is what lets a replica be added or
// removed under load without a failed request:
//  1. the admin listener first: /healthz answers at once, /readyz says
//     what it waits for, and the development issuer (served on it) is
//     reachable by the verifier's own discovery;
//  2. the runners: catalog sources, compile, reload, assertion keys (issuer
//     discovery started in newProcess);
//  3. the xDS and ext_authz listeners only once a Check can be decided:
//     the first model is compiled and every issuer was reached or is known
//     to be unreachable (listen);
//  4. on ctx done: drain for shutdown.drain, then stop (shutdown.go).
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, devIssuer *extauthz.DevIssuer, reload reloadSource) error {
	if err := portsFree(cfg); err != nil {
		return err
	}
	adminLis, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	// The runners outlive ctx: xDS and Check keep serving while draining.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := newProcess(runCtx, cfg, log, devIssuer)
	if err != nil {
		adminLis.Close()
		return err
	}
	defer p.closeAuthz()
	p.run("admin", func() {
		if err := p.http.Serve(adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.errc <- fmt.Errorf("admin server: %w", err)
		}
	})
	runErr := p.serveSignIn()
	if runErr == nil {
		runErr = p.serveExchange()
	}
	if runErr == nil {
		runErr = p.startRunners(runCtx, reload)
	}
	if runErr == nil {
		runErr = p.serveWhenDecidable(ctx, adminLis.Addr().String())
	}
	p.shutdown(runErr == nil, cancel)
	return runErr
}

// process is one serve: the parts it wires together.
type process struct {
	cfg        config.Config
	log        *slog.Logger
	store      *cs.Store
	xds        *xds.Server
	authz      *authzParts
	closeAuthz func()
	adm        *admin.Handler
	http       *http.Server
	signin     *http.Server // nil when sign-in is off
	exchange   *http.Server // nil when the token exchange is off or shares signin
	grpc       *grpcServers
	sources    *catalogRunner
	problems   atomic.Pointer[cs.Problems]
	runCtx     context.Context // ends after the drain
	firstModel chan struct{}   // closed by the first compile
	listening  bool            // the gRPC listeners are open (serve's goroutine only)
	// issuersWaited: the wait for the issuers' first answers is over (the
	// rest answer later, or never; their tokens get issuer_unavailable).
	issuersWaited atomic.Bool
	wg            sync.WaitGroup
	errc          chan error
}

// newProcess builds the parts; nothing listens yet.
func newProcess(runCtx context.Context, cfg config.Config, log *slog.Logger, devIssuer *extauthz.DevIssuer) (*process, error) {
	p := &process{runCtx: runCtx, cfg: cfg, log: log, store: cs.NewStore("files", "backstage", "embedded"), firstModel: make(chan struct{}), errc: make(chan error, 5)} // one per server that can fail: xds, authz, admin, sign-in, token exchange
	opts := xdsOptions(cfg)
	if opts.AuthzAddress == "" {
		opts.AuthzAddress = cfg.Authz.Listen
	}
	var ca *meshca.CA
	if cfg.Mesh.TrustDomain != "" {
		var err error
		ca, err = meshca.Load(meshca.Config{TrustDomain: cfg.Mesh.TrustDomain, CertFile: cfg.Mesh.CACert, KeyFile: cfg.Mesh.CAKey,
			Generate: cfg.Mesh.GenerateCA, ExtraTrustFile: cfg.Mesh.ExtraTrust})
		if err != nil {
			return nil, err
		}
	}
	p.xds = xds.NewServer(runCtx, opts, log.With("component", "xds"))
	if ca != nil {
		p.xds.EnableMesh(runCtx, ca, cfg.Mesh.CertTTL)
		log.Info("mesh enabled", "trust_domain", cfg.Mesh.TrustDomain, "ca_cert", cfg.Mesh.CACert, "cert_ttl", cfg.Mesh.CertTTL)
	}
	var err error
	if p.authz, p.closeAuthz, err = newAuthz(runCtx, cfg, log.With("component", "authz")); err != nil {
		return nil, err
	}
	if p.grpc, err = newGRPCServers(cfg, p.xds, p.authz.server); err != nil {
		p.closeAuthz()
		return nil, err
	}
	p.sources = newCatalogRunner(runCtx, p.store, log.With("component", "catalog"))
	p.adm = admin.New(p.adminSources(devIssuer))
	p.http = &http.Server{Handler: p.adm, ReadHeaderTimeout: 5 * time.Second}
	if p.signin, err = newSignInServer(cfg, p.authz.sessions, log.With("component", "signin")); err != nil {
		p.closeAuthz()
		return nil, err
	}
	p.setUpExchange()
	r := p.adm.Readiness()
	r.Wait("listeners", "the xDS and ext_authz listeners open once a Check can be decided (the model compiled, the issuers answered)")
	r.Check("issuers", func() string {
		if pending := pendingIssuers(p.authz.verifier); pending != "" && !p.issuersWaited.Load() {
			return "waiting for the first answer of the token issuers (discovery, JWKS): " + pending
		}
		return ""
	})
	r.Check("catalog", catalogReadiness(p.sources.statuses))
	return p, nil
}

// adminSources are the admin listener's views of the parts.
func (p *process) adminSources(devIssuer *extauthz.DevIssuer) admin.Sources {
	var devHandler http.Handler
	if devIssuer != nil {
		devHandler = devIssuer.Handler()
	}
	return admin.Sources{
		Dev:      devHandler,
		Model:    func() any { return p.xds.Model() },
		Nodes:    func() any { return p.xds.Nodes() },
		Problems: func() any { return currentProblems(p.problems.Load()) },
		Sources:  func() any { return p.sources.statuses() },
		JWKS:     p.authz.signer.JWKS,
		Explain:  explainHandler(p.authz.server),
		Decision: func(id string) (any, bool) { return p.authz.audit.Decision(id) },
	}
}

// run starts f in a goroutine that shutdown waits for.
func (p *process) run(name string, f func()) {
	p.wg.Add(1)
	go func() { defer p.wg.Done(); f(); p.log.Debug("stopped", "runner", name) }()
}

// startRunners starts the catalog sources, the compiler (which publishes
// every model to Check and xDS), the reloader and the assertion keys.
func (p *process) startRunners(runCtx context.Context, reload reloadSource) error {
	if err := p.sources.apply(p.cfg.Catalog); err != nil {
		return err
	}
	cfg := p.cfg // the reloader's copy
	p.run("reload", func() {
		watchReload(runCtx, reload, p.log, func(next config.Config) {
			applyReload(&cfg, next, p.sources, p.authz.server, p.log)
		})
	})
	var first sync.Once
	p.run("compile", func() {
		lastVersion := ""
		compile.Follow(runCtx, p.store, p.cfg.XDS.Holdoff, func(m *model.Model, snap *cs.Snapshot, ps cs.Problems) {
			p.problems.Store(&ps)
			// Policies first: a route id Envoy learns must already be known
			// to Check.
			p.authz.server.SetModel(m)
			p.xds.SetModel(m)
			if m.Version != lastVersion {
				p.log.Info("model published", "version", m.Version, "generation", snap.Generation,
					"virtual_hosts", len(m.VirtualHosts), "clusters", len(m.Clusters), "problems", len(ps))
				lastVersion = m.Version
			}
			p.adm.SetReady()
			first.Do(func() { close(p.firstModel) })
		})
	})
	p.run("assertion-keys", func() { p.authz.signer.Run(runCtx) })
	return nil
}

// serveWhenDecidable waits until a Check can be decided, opens the xDS and
// ext_authz listeners, and serves until ctx is done or a server fails.
func (p *process) serveWhenDecidable(ctx context.Context, adminAddr string) error {
	r := p.adm.Readiness()
	p.authz.verifier.WaitStarted(ctx)
	if pending := pendingIssuers(p.authz.verifier); pending != "" && ctx.Err() == nil {
		p.log.Warn("token issuers did not answer in time; serving, their tokens get 401 issuer_unavailable until they do", "issuers", pending)
	}
	p.issuersWaited.Store(true)
	select {
	case <-p.firstModel:
	case <-ctx.Done():
		p.log.Info("shutting down before the first model was compiled")
		return nil
	case err := <-p.errc:
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	xdsAddr, authzAddr, err := p.grpc.listen(p.cfg, p.run, p.errc)
	if err != nil {
		return err
	}
	p.listening = true
	r.Done("listeners")
	p.run("health", func() { p.grpc.followReadiness(p.runCtx, r) })
	p.log.Info("gatehouse serving", "xds", xdsAddr, "authz", authzAddr, "admin", adminAddr, "catalog", p.cfg.Catalog.Files)
	select {
	case <-ctx.Done():
		return nil
	case err := <-p.errc:
		p.log.Error("runner failed; shutting down", "error", err)
		return err
	}
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
	opts.AuthzAddress, opts.AuthzTimeout = strings.Join(cfg.Authz.EnvoyAddress, ","), cfg.Authz.Timeout
	opts.SendBudget = int64(cfg.XDS.SendBudgetMiB) << 20
	opts.RemoveRequestHeaders, opts.CredentialCookie = cfg.Edge.RemoveRequestHeaders, cfg.Authz.CookieName
	if cfg.SignIn.Enabled() {
		opts.SignInAddress = strings.Join(cfg.SignIn.EnvoyAddress, ",")
		if opts.SignInAddress == "" {
			opts.SignInAddress = cfg.SignIn.Listen
		}
	}
	opts.ExchangeAddress = exchangeAddress(cfg)
	if cfg.Authz.TLS.CertFile != "" {
		t := cfg.Authz.EnvoyTLS
		opts.AuthzTLS = &xds.UpstreamTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}
	}
	if cfg.Mesh.TrustDomain != "" {
		opts.TrustDomain, opts.MeshCertTTL = cfg.Mesh.TrustDomain, cfg.Mesh.CertTTL
	}
	return opts
}
