package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/examples"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// reloadSource re-reads the configuration.
type reloadSource struct {
	path string
	load func() (config.Config, error)
}

// watchReload calls apply with a new configuration on SIGHUP, or when the
// configuration file changes (checked every 2s). A configuration that does
// not load or validate is logged and ignored: the running one stays.
func watchReload(ctx context.Context, src reloadSource, log *slog.Logger, apply func(config.Config)) {
	if src.load == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	mtime := func() time.Time {
		if src.path == "" {
			return time.Time{}
		}
		st, err := os.Stat(src.path)
		if err != nil {
			return time.Time{}
		}
		return st.ModTime()
	}
	last := mtime()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-t.C:
			if m := mtime(); !m.Equal(last) {
				last, why = m, "file changed"
			}
		}
		if why == "" {
			continue
		}
		next, err := src.load()
		if err != nil {
			log.Error("configuration not reloaded; keeping the running one", "trigger", why, "error", err)
			continue
		}
		log.Info("configuration reloaded", "trigger", why)
		apply(next)
	}
}

// applyReload applies what can change safely while serving: catalog
// sources, issuers and the log level. Everything else needs a restart and
// is reported. cur is updated to what is in force.
func applyReload(cur *config.Config, next config.Config, sources *catalogRunner, authz *extauthz.Server, log *slog.Logger) {
	if cur.Log.Level != next.Log.Level {
		setLogLevel(next.Log.Level)
		log.Info("log level changed", "level", next.Log.Level)
		cur.Log.Level = next.Log.Level
	}
	if !reflect.DeepEqual(cur.Catalog, next.Catalog) {
		if err := sources.apply(next.Catalog); err != nil {
			log.Error("catalog sources not reloaded", "error", err)
		} else {
			cur.Catalog = next.Catalog
		}
	}
	if !reflect.DeepEqual(cur.Issuers, next.Issuers) {
		// The new verifier is closed by the next swap; the process exit ends it otherwise.
		v, _, err := newAuthzVerifier(context.Background(), next)
		if err != nil {
			log.Error("issuers not reloaded", "error", err)
		} else {
			old := authz.Verifier()
			authz.SetVerifier(v)
			if c, ok := old.(interface{ Close() }); ok {
				// Checks in flight may still use it for a moment.
				time.AfterFunc(30*time.Second, c.Close)
			}
			log.Info("issuers reloaded", "issuers", len(next.Issuers))
			cur.Issuers = next.Issuers
		}
	}
	rest, nextRest := *cur, next
	rest.Log.Level, rest.Catalog, rest.Issuers = "", config.Catalog{}, nil
	nextRest.Log.Level, nextRest.Catalog, nextRest.Issuers = "", config.Catalog{}, nil
	if keys := changedKeys(rest, nextRest); len(keys) > 0 {
		log.Warn("configuration changed but takes effect only after a restart: "+strings.Join(keys, ", ")+
			" (fix: restart gatehouse to apply it; catalog, issuers and log.level apply on reload)", "keys", keys)
	}
}

// changedKeys lists the configuration keys whose values differ between a
// and b, e.g. [edge.port xds.listen].
func changedKeys(a, b config.Config) []string {
	var out []string
	var walk func(x, y reflect.Value, prefix string)
	walk = func(x, y reflect.Value, prefix string) {
		for i := 0; i < x.NumField(); i++ {
			key := x.Type().Field(i).Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			switch {
			case x.Field(i).Kind() == reflect.Struct:
				walk(x.Field(i), y.Field(i), key)
			case !reflect.DeepEqual(x.Field(i).Interface(), y.Field(i).Interface()):
				out = append(out, key)
			}
		}
	}
	walk(reflect.ValueOf(a), reflect.ValueOf(b), "")
	return out
}

// catalogRunner runs the catalog sources of the current configuration and
// replaces them when the configuration changes.
type catalogRunner struct {
	ctx    context.Context
	store  *cs.Store
	log    *slog.Logger
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	names  []string
	status map[string]func() cs.SourceStatus // by source name
}

func newCatalogRunner(ctx context.Context, store *cs.Store, log *slog.Logger) *catalogRunner {
	return &catalogRunner{ctx: ctx, store: store, log: log}
}

// apply stops the running sources and starts the ones c describes: files,
// a Backstage catalog, or, with neither, the example catalog built into
// gatehouse.
func (r *catalogRunner) apply(c config.Catalog) error {
	var runs []func(context.Context)
	var names []string
	status := map[string]func() cs.SourceStatus{}
	if len(c.Files) > 0 {
		src := &cs.FileSource{Name: "files", Paths: c.Files, Interval: c.PollInterval, Logger: r.log}
		names, runs = append(names, src.Name), append(runs, func(ctx context.Context) { src.Run(ctx, r.store) })
		status[src.Name] = src.Status
	}
	if c.Backstage.BaseURL != "" {
		token, err := readToken(c.Backstage)
		if err != nil {
			return err
		}
		bs := &cs.BackstageSource{Name: "backstage", BaseURL: c.Backstage.BaseURL, Token: token, Interval: c.Backstage.PollInterval,
			Filter: c.Backstage.Filter, PageSize: c.Backstage.PageSize, MaxDeleteFraction: c.Backstage.MaxDeleteFraction, Logger: r.log}
		names, runs = append(names, bs.Name), append(runs, func(ctx context.Context) { bs.Run(ctx, r.store) })
		status[bs.Name] = bs.Status
	}
	if len(runs) == 0 {
		src := &cs.FileSource{Name: "embedded", FS: examples.DefaultCatalog, Paths: []string{examples.DefaultCatalogRoot}, Interval: time.Hour, Logger: r.log}
		names, runs = append(names, src.Name), append(runs, func(ctx context.Context) { src.Run(ctx, r.store) })
		status[src.Name] = src.Status
		r.log.Warn("no catalog source configured: serving the example catalog built into gatehouse (fix: set catalog.files, catalog.backstage or pass --catalog)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	for _, old := range r.names {
		if !slices.Contains(names, old) {
			r.store.RemoveSource(old)
		}
	}
	r.names, r.status = names, status
	ctx, cancel := context.WithCancel(r.ctx)
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	r.cancel, r.done = cancel, done
	return nil
}

// statuses reports the sync status of the sources (for /debug/sources).
func (r *catalogRunner) statuses() []cs.SourceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []cs.SourceStatus{}
	for _, n := range r.names {
		out = append(out, r.status[n]())
	}
	return out
}

// readToken reads Backstage's static token from the environment or a file;
// it is never logged.
func readToken(b config.Backstage) (string, error) {
	return readSecret("catalog.backstage.token_env", b.TokenEnv, "catalog.backstage.token_file", b.TokenFile, "Backstage's static external-access token")
}

// readSecret reads a secret from the environment variable env (first) or
// from file; it is never logged. envKey and fileKey are the configuration
// keys errors name; what says what the secret is.
func readSecret(envKey, env, fileKey, file, what string) (string, error) {
	if env != "" {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			return v, nil
		}
		if file == "" {
			return "", fmt.Errorf("%s: the environment variable %s is empty (fix: export it with %s)", envKey, env, what)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", fileKey, err)
	}
	return strings.TrimSpace(string(data)), nil
}

func (r *catalogRunner) stopLocked() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

func (r *catalogRunner) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}
