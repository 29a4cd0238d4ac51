// Command checkload measures gatehouse's ext_authz Check over real gRPC on
// loopback, with the same load generator and the same requests, in the same
// run, against two baselines:
//
//   - a no-op Check server (every Check is OK; the gRPC floor);
//   - the OPA-Envoy plugin (bench/opa/install.sh) with an equivalent Rego
//     policy (bench/opa/policy.rego) over a data document generated from
//     the same compiled catalog.
//
// Every server is its own process (gatehouse is `gatehouse serve`, built
// from this tree), so the CPU per 1,000 checks of each is its own. Closed
// loop (a fixed number of Checks in flight) gives the maximum throughput;
// open loop (a fixed rate, latency from the scheduled send time) gives the
// latency at 25/50/75% of each server's maximum. Fresh-token scenarios send
// tokens minted before the run, each once (the run stops early when the
// pool runs out). Output is Markdown for BENCHMARKS.md; ratios are from
// this one run.
//
//	go run ./bench/checkload -duration 10s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

type options struct {
	duration, openDuration time.Duration
	conc, workers          int
	components             int
	pool                   int
	rates                  []float64
	opa, policy, gatehouse string
}

func main() {
	var o options
	role := flag.String("role", "", "internal: run as the no-op server process")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "closed-loop duration of each scenario")
	flag.DurationVar(&o.openDuration, "open-duration", 10*time.Second, "duration of each open-loop rate")
	flag.IntVar(&o.conc, "concurrency", 32, "Checks in flight in closed loop")
	flag.IntVar(&o.workers, "workers", 256, "open loop: most Checks in flight")
	flag.IntVar(&o.components, "components", 3225, "components of the large catalog (bench/catgen; ~3.1 entities each, 3225 gives ~10k entities)")
	flag.IntVar(&o.pool, "pool", 30000, "fresh tokens minted per algorithm before the runs")
	rates := flag.String("rates", "0.25,0.5,0.75", "open-loop rates, as fractions of each server's closed-loop maximum")
	flag.StringVar(&o.opa, "opa", ".tools/opa-envoy-plugin", "OPA-Envoy plugin binary (bench/opa/install.sh); empty skips the OPA baseline")
	flag.StringVar(&o.policy, "policy", "bench/opa/policy.rego", "the Rego policy of the OPA baseline")
	flag.StringVar(&o.gatehouse, "gatehouse", "", "gatehouse binary (default: go build ./cmd/gatehouse)")
	graphql := flag.Bool("graphql", false, "the GraphQL comparison instead (graphql.go): a GraphQL route's Check, gatehouse against OPA-Envoy with graphql.parse_and_verify")
	pin := flag.Bool("pin", false, "pin the load generator to CPU 0 and every server to CPU 1 (taskset; the servers with GOMAXPROCS=1), so that they never compete for a core")
	flag.Parse()
	if *role == "noop" {
		if err := runNoop(); err != nil {
			fmt.Fprintln(os.Stderr, "noop:", err)
			os.Exit(1)
		}
		return
	}
	for _, f := range strings.Split(*rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "checkload: -rates: bad fraction", f)
			os.Exit(2)
		}
		o.rates = append(o.rates, v)
	}
	if *pin {
		if out, err := exec.Command("taskset", "-a", "-c", "-p", "0", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "checkload: -pin: taskset: %v %s\n", err, out)
			os.Exit(1)
		}
		serverCPU = "1"
	}
	runner := run
	if *graphql {
		runner = runGraphQL
	}
	if err := runner(o); err != nil {
		fmt.Fprintln(os.Stderr, "checkload:", err)
		os.Exit(1)
	}
}

// row is one closed-loop scenario.
type row struct {
	name string
	t    target
	reqs requests
	cat  *benchCatalog
	alg  string // fresh-token rows: the algorithm of the pool
	res  result
}

func run(o options) error {
	tmp, err := os.MkdirTemp("", "checkload-")
	if err != nil {
		return err
	}
	if os.Getenv("CHECKLOAD_KEEP") == "" {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintln(os.Stderr, "checkload: keeping", tmp)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "checkload: "+format+"\n", args...) }

	is, err := newIssuers()
	if err != nil {
		return err
	}
	defer is.Close()
	small, err := writeCatalog("small", tmp+"/cat-small", 0)
	if err != nil {
		return err
	}
	large, err := writeCatalog("large", tmp+"/cat-large", o.components)
	if err != nil {
		return err
	}
	logf("catalogs: small %d entities, large %d entities (%d routes)", small.entities, large.entities, len(large.model.Policies))

	bin := o.gatehouse
	if bin == "" {
		bin = filepath.Join(tmp, "gatehouse")
		if err := harness.BuildGatehouse(".", bin, true); err != nil {
			return err
		}
	}
	t0 := time.Now()
	alice, err := is.mint("RS256", benchAlice, t0, 2*time.Hour)
	if err != nil {
		return err
	}
	bob, _ := is.mint("RS256", benchBob, t0, 2*time.Hour)
	freshRS, err := is.pool("RS256", []string{benchAlice}, o.pool)
	if err != nil {
		return err
	}
	freshES, err := is.pool("ES256", []string{benchAlice}, o.pool)
	if err != nil {
		return err
	}
	freshNew, err := is.pool("RS256", newSubjects(o.pool), o.pool)
	if err != nil {
		return err
	}
	logf("minted %d RS256, %d ES256 and %d RS256 new-subject fresh tokens in %s", o.pool, o.pool, o.pool, time.Since(t0).Round(time.Millisecond))

	pools := map[string][]string{"RS256": freshRS, "ES256": freshES, "RS256-new": freshNew}
	// same: one request repeated; fresh: each token of the pool once.
	same := func(name string, srv *server, want int32, cat *benchCatalog, tok string) *row {
		return &row{name: name, t: target{srv, want}, cat: cat, reqs: requests{reqs: []*authv3.CheckRequest{checkReq(cat.routeID, benchPath, tok)}, repeat: true}}
	}
	fresh := func(name string, srv *server, cat *benchCatalog, alg string) *row {
		r := &row{name: name, t: target{srv, 0}, cat: cat, alg: strings.TrimSuffix(alg, "-new")}
		for _, tok := range pools[alg] {
			r.reqs.reqs = append(r.reqs.reqs, checkReq(cat.routeID, benchPath, tok))
		}
		return r
	}

	// Servers, each its own process.
	noop, err := startNoop()
	if err != nil {
		return err
	}
	defer noop.Stop()
	ghSmall, err := startGatehouse(bin, tmp, small, is)
	if err != nil {
		return err
	}
	defer ghSmall.Stop()
	ghLarge, err := startGatehouse(bin, tmp, large, is)
	if err != nil {
		return err
	}
	defer ghLarge.Stop()
	var opaSmall, opaSmallCache, opaLarge *server
	if o.opa != "" {
		if _, err := os.Stat(o.opa); err != nil {
			return fmt.Errorf("OPA-Envoy plugin: %w (run bench/opa/install.sh, or pass -opa '' to skip the baseline)", err)
		}
		if opaSmall, err = startOPA(o.opa, tmp, o.policy, small, is, false); err != nil {
			return err
		}
		defer opaSmall.Stop()
		if opaSmallCache, err = startOPA(o.opa, tmp, o.policy, small, is, true); err != nil {
			return err
		}
		defer opaSmallCache.Stop()
		if opaLarge, err = startOPA(o.opa, tmp, o.policy, large, is, false); err != nil {
			return err
		}
		defer opaLarge.Stop()
	}

	rows := []*row{
		same("no-op Check server (gRPC floor)", noop, 0, small, alice),
		same("gatehouse, cached allow", ghSmall, 0, small, alice),
		same("gatehouse, cached deny (403)", ghSmall, 7, small, bob),
		fresh("gatehouse, fresh RS256 token per call", ghSmall, small, "RS256"),
		fresh("gatehouse, fresh ES256 token per call", ghSmall, small, "ES256"),
		fresh("gatehouse, fresh RS256 token, new IdP subject per call (mapped by verified email)", ghSmall, small, "RS256-new"),
	}
	if opaSmall != nil {
		rows = append(rows,
			same("OPA-Envoy, same token repeated", opaSmall, 0, small, alice),
			same("OPA-Envoy + io_jwt cache, same token repeated", opaSmallCache, 0, small, alice),
			same("OPA-Envoy, deny (403)", opaSmall, 7, small, bob),
			fresh("OPA-Envoy, fresh RS256 token per call", opaSmall, small, "RS256"),
			fresh("OPA-Envoy, fresh ES256 token per call", opaSmall, small, "ES256"),
		)
	}
	nSmall := len(rows)
	rows = append(rows,
		same("10k: gatehouse, cached allow", ghLarge, 0, large, alice),
		fresh("10k: gatehouse, fresh RS256 token per call", ghLarge, large, "RS256"),
		fresh("10k: gatehouse, fresh ES256 token per call", ghLarge, large, "ES256"),
	)
	if opaLarge != nil {
		rows = append(rows,
			same("10k: OPA-Envoy, same token repeated", opaLarge, 0, large, alice),
			fresh("10k: OPA-Envoy, fresh RS256 token per call", opaLarge, large, "RS256"),
		)
	}

	clients := map[*server]authv3.AuthorizationClient{}
	for _, r := range rows {
		if _, ok := clients[r.t.srv]; ok {
			continue
		}
		c, closeFn, err := dial(r.t.srv.addr)
		if err != nil {
			return err
		}
		defer closeFn()
		clients[r.t.srv] = c
	}
	// Warm up every server and check its decisions once (JWKS fetched,
	// connections up, first decisions cached), with requests that are not
	// part of any fresh pool.
	for _, r := range rows {
		var err error
		if r.reqs.repeat {
			err = check(clients[r.t.srv], r.reqs.reqs[0], r.t.want)
		} else {
			var tok string
			if tok, err = is.mint(r.alg, benchAlice, time.Now(), time.Hour); err == nil {
				err = check(clients[r.t.srv], checkReq(r.cat.routeID, benchPath, tok), r.t.want)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: warm-up: %w\n%s", r.name, err, r.t.srv.output())
		}
	}

	for _, r := range rows {
		logf("closed loop: %s", r.name)
		res, err := closedLoop(clients[r.t.srv], r.t, r.reqs, o.duration, o.conc)
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", r.name, err, r.t.srv.output())
		}
		r.res = res
	}

	// Open loop at fractions of each server's maximum.
	type open struct {
		name string
		base *row
		res  []result
	}
	opens := []*open{{name: "no-op", base: rows[0]}, {name: "gatehouse, cached allow", base: rows[1]}}
	if opaSmall != nil {
		opens = append(opens, &open{name: "OPA-Envoy + io_jwt cache, same token", base: rows[6]})
	}
	for _, op := range opens {
		for _, f := range o.rates {
			rate := op.base.res.rps() * f
			logf("open loop: %s at %.0f/s", op.name, rate)
			res, err := openLoop(clients[op.base.t.srv], op.base.t, op.base.reqs, rate, o.openDuration, o.workers)
			if err != nil {
				return fmt.Errorf("open loop %s at %.0f/s: %w", op.name, rate, err)
			}
			op.res = append(op.res, res)
		}
	}

	// Report.
	fmt.Printf("Check over gRPC on loopback; every server its own process; one load generator (%d in flight, closed loop, %s per scenario); GOMAXPROCS=%d; %d CPUs\n\n",
		o.conc, o.duration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("Catalogs: small = %d entities; 10k = %d entities, %d routes (bench/catgen, %d components)\n\n", small.entities, large.entities, len(large.model.Policies), o.components)
	fmt.Println("| scenario | checks/s | vs no-op | p50 | p90 | p99 | p99.9 | server CPU-s / 1k checks | generator CPU-s / 1k | checks (run) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	floor := rows[0].res.rps()
	for i, r := range rows {
		if i == nSmall {
			fmt.Println("| **10k-entity catalog** | | | | | | | | | |")
		}
		fmt.Printf("| %s | %.0f | %.2f× | %s | %s | %s | %s | %.3f | %.3f | %d (%.1fs) |\n", r.name, r.res.rps(), r.res.rps()/floor,
			us(r.res.q(0.5)), us(r.res.q(0.9)), us(r.res.q(0.99)), us(r.res.q(0.999)),
			r.res.cpuPer1k(r.res.serverCPU), r.res.cpuPer1k(r.res.genCPU), r.res.n, r.res.elapsed.Seconds())
	}
	find := func(name string) *row {
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		return nil
	}
	ratio := func(a, b string) string {
		ra, rb := find(a), find(b)
		if ra == nil || rb == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f×", ra.res.rps()/rb.res.rps())
	}
	cpuRatio := func(a, b string) string {
		ra, rb := find(a), find(b)
		if ra == nil || rb == nil || rb.res.serverCPU == 0 || ra.res.n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", ra.res.cpuPer1k(ra.res.serverCPU)/rb.res.cpuPer1k(rb.res.serverCPU))
	}
	fmt.Println()
	fmt.Println("| comparison (this run) | throughput ratio | server CPU per check ratio |")
	fmt.Println("|---|---:|---:|")
	for _, c := range [][3]string{
		{"gatehouse cached allow / no-op", "gatehouse, cached allow", "no-op Check server (gRPC floor)"},
		{"gatehouse cached deny / no-op", "gatehouse, cached deny (403)", "no-op Check server (gRPC floor)"},
		{"gatehouse cached allow / OPA-Envoy same token", "gatehouse, cached allow", "OPA-Envoy, same token repeated"},
		{"gatehouse cached allow / OPA-Envoy + io_jwt cache", "gatehouse, cached allow", "OPA-Envoy + io_jwt cache, same token repeated"},
		{"gatehouse deny / OPA-Envoy deny", "gatehouse, cached deny (403)", "OPA-Envoy, deny (403)"},
		{"gatehouse fresh RS256 / OPA-Envoy fresh RS256", "gatehouse, fresh RS256 token per call", "OPA-Envoy, fresh RS256 token per call"},
		{"gatehouse fresh ES256 / OPA-Envoy fresh ES256", "gatehouse, fresh ES256 token per call", "OPA-Envoy, fresh ES256 token per call"},
		{"10k / small: gatehouse cached allow", "10k: gatehouse, cached allow", "gatehouse, cached allow"},
		{"10k / small: gatehouse fresh RS256", "10k: gatehouse, fresh RS256 token per call", "gatehouse, fresh RS256 token per call"},
		{"10k / small: gatehouse fresh ES256", "10k: gatehouse, fresh ES256 token per call", "gatehouse, fresh ES256 token per call"},
		{"10k: gatehouse cached allow / OPA-Envoy same token", "10k: gatehouse, cached allow", "10k: OPA-Envoy, same token repeated"},
		{"10k: gatehouse fresh RS256 / OPA-Envoy fresh RS256", "10k: gatehouse, fresh RS256 token per call", "10k: OPA-Envoy, fresh RS256 token per call"},
	} {
		if find(c[1]) == nil || find(c[2]) == nil {
			continue
		}
		fmt.Printf("| %s | %s | %s |\n", c[0], ratio(c[1], c[2]), cpuRatio(c[1], c[2]))
	}

	fmt.Printf("\nOpen loop (fixed rate, %s per rate, up to %d in flight; latency from the scheduled send time):\n\n", o.openDuration, o.workers)
	fmt.Println("| server | rate (share of its max) | achieved/s | p50 | p90 | p99 | p99.9 | max | server CPU-s / 1k | pacer lateness p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, op := range opens {
		for i, r := range op.res {
			fmt.Printf("| %s | %.0f/s (%.0f%%) | %.0f | %s | %s | %s | %s | %s | %.3f | %s |\n", op.name, r.rate, o.rates[i]*100, r.rps(),
				us(r.q(0.5)), us(r.q(0.9)), us(r.q(0.99)), us(r.q(0.999)), us(r.q(1)), r.cpuPer1k(r.serverCPU), us(r.pacerLate99))
		}
	}
	for _, s := range []*server{ghSmall, ghLarge, opaSmall, opaLarge} {
		if s != nil {
			defer func(s *server, cat string) { logf("%s (%s catalog) RSS at the end: %d MiB", s.name, cat, s.rss()>>20) }(s, map[*server]string{ghSmall: "small", ghLarge: "10k", opaSmall: "small", opaLarge: "10k"}[s])
		}
	}
	return nil
}

func us(d time.Duration) string {
	if d < 100*time.Microsecond {
		return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1000)
	}
	return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1000)
}
