// Command fleet measures gatehouse's xDS control plane at fleet scale:
// synthetic catalogs (bench/catgen) of 1k and 10k routed components, served
// by the real `gatehouse serve` (a child process following the catalog
// directory, so its CPU and RSS are its own) to 100 and 1,000 simulated
// Envoys: real ADS gRPC streams over loopback, state of the world and delta,
// that subscribe like Envoy (CDS, then LDS, then the RDS names in the
// listener) and ACK every response. It times catalog changes from the file
// write to the last client's ACK, counts the bytes each change sends, and
// verifies that every client holds exactly the expected configuration
// (versions, resource names, and in -verify mode the hash of every byte).
// Optionally one real Envoy receives the largest catalog.
//
//	go run ./bench/fleet                                 # the BENCHMARKS.md run
//	go run ./bench/fleet -components 200 -clients 20 -verify -envoy=false  # smoke
//
// Results are Markdown tables on stdout; progress goes to stderr. It exits 1
// when a client does not reach the expected configuration: never on timing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/catgen"
	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/xds"
)

type config struct {
	components []int
	clients    []int
	protocols  []string
	verify     bool
	envoy      bool
	envoyBin   string
	poll       time.Duration
	reps       int
	timeout    time.Duration
	keep       bool
	strict     bool   // a client that does not converge fails the run (else: reported)
	check      bool   // also check that one-entity changes send only what changed
	rssLimit   int64  // stop gatehouse above this RSS (bytes): protects the machine
	gatehouse  string // a gatehouse binary to measure instead of this tree's
	namesOnly  bool   // initial sync only, converged on resource names (any build's versions)
}

func main() {
	var c config
	comps := flag.String("components", "1000,10000", "catalog sizes (routed components), comma-separated")
	clients := flag.String("clients", "100,1000", "fleet sizes (simulated Envoys), comma-separated")
	protos := flag.String("protocols", "sotw,delta", "xDS protocols: sotw, delta")
	flag.BoolVar(&c.verify, "verify", false, "hash every resource received and compare with the expected bytes (costly)")
	flag.BoolVar(&c.envoy, "envoy", true, "also measure one real Envoy on the largest catalog (envoy/install.sh or ENVOY_BIN)")
	flag.DurationVar(&c.poll, "poll", 250*time.Millisecond, "gatehouse catalog.poll_interval")
	flag.IntVar(&c.reps, "reps", 5, "repetitions of the in-process compile/translate measurement")
	flag.DurationVar(&c.timeout, "timeout", 90*time.Second, "how long clients may take to reach a configuration")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (catalogs, gatehouse logs)")
	flag.BoolVar(&c.strict, "strict", false, "fail when clients do not reach the expected configuration within -timeout (default: report it and go on)")
	flag.BoolVar(&c.check, "check", false, "fail unless one-entity changes send only the changed resources (delta) and a membership change sends nothing")
	rssLimit := flag.Int("rss-limit-mib", 4096, "stop gatehouse (and report it) when its RSS exceeds this")
	flag.StringVar(&c.gatehouse, "gatehouse", "", "measure this gatehouse binary (e.g. an older build) instead of building the tree's")
	flag.BoolVar(&c.namesOnly, "names-only", false, "measure the initial sync only, a client converging when it holds every expected resource name whatever the versions: for builds whose encoding differs from the tree's (with -gatehouse)")
	flag.Parse()
	var err error
	if c.components, err = ints(*comps); err == nil {
		c.clients, err = ints(*clients)
	}
	if err != nil {
		fatal(err)
	}
	c.rssLimit = int64(*rssLimit) << 20
	c.protocols = strings.Split(*protos, ",")
	for _, p := range c.protocols {
		if p != "sotw" && p != "delta" {
			fatal(fmt.Errorf("unknown protocol %q (sotw or delta)", p))
		}
	}
	if err := run(c); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(1)
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleet: "+format+"\n", args...)
}

// change is one catalog edit the fleet must converge on.
type change struct {
	name   string
	mutate func(c *catgen.Catalog)
}

// changes, applied in order after the initial sync. Deterministic, so every
// scenario of a catalog size walks the same states.
func changes(n int) []change {
	return []change{
		{"one group membership (a user moves)", func(c *catgen.Catalog) { c.MoveUser(n / 2) }},
		{"one route (a timeout)", func(c *catgen.Catalog) { c.TouchRoute(n / 3) }},
		{"one upstream (a port)", func(c *catgen.Catalog) { c.TouchUpstream(n / 4) }},
		{"10% of upstreams", func(c *catgen.Catalog) { c.TouchFraction(0.1) }},
	}
}

func newCatalog(n int) *catgen.Catalog { return catgen.New(catgen.Options{Components: n, Seed: 1}) }

func run(c config) error {
	work, err := os.MkdirTemp("", "gatehouse-fleet-")
	if err != nil {
		return err
	}
	if c.keep {
		logf("work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "gatehouse")
	if c.gatehouse != "" {
		if bin, err = filepath.Abs(c.gatehouse); err != nil {
			return err
		}
		logf("measuring %s", bin)
	} else {
		logf("building gatehouse")
		if err := harness.BuildGatehouse(".", bin, false); err != nil {
			return fmt.Errorf("building gatehouse: %w", err)
		}
	}
	if c.envoy {
		if c.envoyBin, err = harness.EnvoyBin("."); err != nil {
			return fmt.Errorf("%w, or run with -envoy=false", err)
		}
	}
	out := os.Stdout
	fmt.Fprintf(out, "Run of %s on %d CPUs, %s; gatehouse catalog.poll_interval %s, xds.holdoff 100ms (defaults otherwise).\n\n",
		time.Now().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), c.poll)

	var off []offRow
	var scen []scenarioRow
	var chg []changeRow
	var envoyRows []envoyRow
	for _, n := range c.components {
		dir := filepath.Join(work, fmt.Sprintf("cat%d", n))
		cat := newCatalog(n)
		if _, err := cat.WriteDir(dir); err != nil {
			return err
		}
		// The states every scenario of this size walks, computed once.
		p, err := harness.FreePorts()
		if err != nil {
			return err
		}
		opts := translateOptions(p)
		logf("%d components: in-process compile and translate (%d reps)", n, c.reps)
		o, err := measureOffline(dir, opts, c.reps)
		if err != nil {
			return err
		}
		off = append(off, offRow{components: n, routes: cat.Routes(), clusters: cat.Clusters(), o: o})
		logf("%d components: expected states", n)
		states, err := expectedStates(n, filepath.Join(work, fmt.Sprintf("expect%d", n)), opts)
		if err != nil {
			return err
		}
		for _, nc := range c.clients {
			for _, proto := range c.protocols {
				s, cs, err := runScenario(c, bin, work, n, nc, proto == "delta", p, states)
				if err != nil {
					return err
				}
				scen = append(scen, s)
				chg = append(chg, cs...)
			}
		}
		if c.envoy && n == c.components[len(c.components)-1] {
			for _, delta := range []bool{false, true} {
				r, err := runEnvoy(c, bin, work, n, delta, p, states)
				if err != nil {
					return err
				}
				envoyRows = append(envoyRows, r)
			}
		}
	}
	printOffline(out, off)
	printScenarios(out, scen)
	printChanges(out, chg)
	if len(envoyRows) > 0 {
		printEnvoy(out, envoyRows)
	}
	return nil
}

func translateOptions(p harness.Ports) xds.Options {
	o := xds.DefaultOptions()
	o.EdgeAddress, o.EdgePort = "127.0.0.1", uint32(p.Edge)
	o.AuthzAddress = fmt.Sprintf("127.0.0.1:%d", p.Authz)
	return o
}

// expectedStates compiles the initial catalog and the state after each
// change, incrementally, as gatehouse does.
func expectedStates(n int, dir string, opts xds.Options) ([]*expected, error) {
	cat := newCatalog(n)
	src := newIncremental(dir)
	var out []*expected
	step := func() error {
		if _, err := cat.WriteDir(dir); err != nil {
			return err
		}
		e, err := src.expect(opts)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}
	if err := step(); err != nil {
		return nil, err
	}
	for _, ch := range changes(n) {
		ch.mutate(cat)
		if err := step(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type scenarioRow struct {
	components, clients int
	delta               bool
	connect             time.Duration // all clients connected → all ACKed the full config
	bytesPerClient      int64
	cpu                 time.Duration
	rssIdle, rssPeak    int64 // before clients; peak during sync
	rssSteady           int64 // after sync and all changes
	note                string
}

type changeRow struct {
	components, clients int
	delta               bool
	change              string
	publish             time.Duration // file write → model published (poll, parse, store, compile)
	all                 time.Duration // file write → last client ACK
	push                time.Duration // model published → last client ACK
	perClient           counts        // divided by clients
	clientsN            int
	cpu                 time.Duration
	rssPeak             int64
	noPush              bool
	kind                int // index in changes()
}

func runScenario(c config, bin, work string, n, nc int, delta bool, p harness.Ports, states []*expected) (scenarioRow, []changeRow, error) {
	proto := map[bool]string{false: "sotw", true: "delta"}[delta]
	logf("%d components, %d %s clients", n, nc, proto)
	row := scenarioRow{components: n, clients: nc, delta: delta}
	dir := filepath.Join(work, fmt.Sprintf("live-%d-%d-%s", n, nc, proto))
	defer os.RemoveAll(dir)
	cat := newCatalog(n)
	if _, err := cat.WriteDir(dir); err != nil {
		return row, nil, err
	}
	gw := filepath.Join(work, fmt.Sprintf("gh-%d-%d-%s", n, nc, proto))
	os.MkdirAll(gw, 0o755)
	g, err := startGatehouse(bin, gw, dir, p, c.poll)
	if err != nil {
		return row, nil, err
	}
	defer g.stop()
	if _, err := g.waitPublished(states[0].model, c.timeout); err != nil {
		return row, nil, fmt.Errorf("gatehouse does not serve the expected model (in-process compile differs?): %w", err)
	}
	smp := newSampler(g.Pid(), c.rssLimit, g.Kill)
	defer smp.close()
	time.Sleep(500 * time.Millisecond)
	u0, _ := readUsage(g.Pid())
	row.rssIdle = u0.rss
	smp.reset()

	// A failure to converge is a result in a benchmark run (reported in the
	// table) and an error with -strict.
	giveUp := func(what string, err error) (scenarioRow, []changeRow, error) {
		if smp.exceeded() {
			err = fmt.Errorf("gatehouse RSS passed %s; stopped", mib(c.rssLimit))
		}
		if c.strict {
			return row, nil, fmt.Errorf("%d components, %d %s clients: %s: %w", n, nc, proto, what, err)
		}
		logf("  %s: %v", what, err)
		row.note = what + ": " + shorten(err.Error(), 160)
		return row, nil, nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fleet{verify: c.verify, namesOnly: c.namesOnly}
	for i := 0; i < nc; i++ {
		cl, err := newClient(f, g.xdsAddr, fmt.Sprintf("fleet-%s-%04d", proto, i), delta)
		if err != nil {
			return row, nil, err
		}
		defer cl.conn.Close()
		f.clients = append(f.clients, cl)
	}
	all := f.setTarget(states[0])
	start := time.Now()
	errc := make(chan error, nc)
	for _, cl := range f.clients {
		go func() {
			var err error
			if delta {
				err = cl.runDelta(ctx)
			} else {
				err = cl.runSotW(ctx)
			}
			if err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", cl.id, err)
			}
		}()
	}
	if err := f.wait(all, errc, c.timeout); err != nil {
		return giveUp("initial sync", err)
	}
	row.connect = f.doneAt.Sub(start)
	u1, _ := readUsage(g.Pid())
	row.cpu = u1.cpu - u0.cpu
	row.rssPeak = smp.reset()
	row.bytesPerClient = sum(f.counts().bytes) / int64(nc)
	logf("  initial sync %s, %.1f MB/client, gatehouse CPU %.1fs, peak RSS %d MiB", row.connect.Round(time.Millisecond), float64(row.bytesPerClient)/1e6, row.cpu.Seconds(), row.rssPeak>>20)

	var rows []changeRow
	if c.namesOnly {
		cancel()
		return row, nil, nil
	}
	for k, ch := range changes(n) {
		time.Sleep(200 * time.Millisecond) // let the previous push settle
		exp := states[k+1]
		cr := changeRow{components: n, clients: nc, delta: delta, change: ch.name, clientsN: nc, kind: k}
		before := f.counts()
		smp.reset()
		ua, _ := readUsage(g.Pid())
		ch.mutate(cat)
		all := f.setTarget(exp)
		select {
		case <-all:
			cr.noPush = true
		default:
		}
		t0 := time.Now()
		if _, err := cat.WriteDir(dir); err != nil {
			return row, nil, err
		}
		pub, err := g.waitPublished(exp.model, c.timeout)
		if err == nil {
			err = f.wait(all, errc, c.timeout)
		}
		if err != nil {
			_, _, err := giveUp(ch.name, err)
			return row, rows, err
		}
		if cr.noPush {
			// Nothing should be sent: give the server time to prove it
			// (it pushes before it logs the publication).
			time.Sleep(300 * time.Millisecond)
		}
		ub, _ := readUsage(g.Pid())
		cr.publish = pub.Sub(t0)
		if !cr.noPush {
			cr.all = f.doneAt.Sub(t0)
			cr.push = f.doneAt.Sub(pub)
		}
		cr.perClient = f.counts().minus(before)
		cr.cpu = ub.cpu - ua.cpu
		cr.rssPeak = smp.reset()
		logf("  %s: published +%s, all ACKed +%s; per client %s; CPU %.2fs", ch.name, cr.publish.Round(time.Millisecond), cr.all.Round(time.Millisecond), fmtCounts(cr.perClient, nc), cr.cpu.Seconds())
		if c.check {
			if err := checkProportional(cr, delta, exp); err != nil {
				return row, nil, fmt.Errorf("%d components, %d %s clients: %s: %w", n, nc, proto, ch.name, err)
			}
		}
		rows = append(rows, cr)
	}
	time.Sleep(500 * time.Millisecond)
	u2, _ := readUsage(g.Pid())
	row.rssSteady = u2.rss
	cancel()
	return row, rows, nil
}

// checkProportional: what one-entity changes must send, per client. A
// membership change touches no route, cluster or listener: nothing. A route
// change: the route configuration only. An upstream change: with delta that
// one cluster; with SotW every cluster (the protocol sends whole types).
func checkProportional(cr changeRow, delta bool, exp *expected) error {
	want := map[string]int64{}
	switch cr.kind {
	case 0:
	case 1:
		want[xdsTypes[2]] = 1
	case 2:
		want[xdsTypes[0]] = 1
		if !delta {
			want[xdsTypes[0]] = int64(len(exp.names[xdsTypes[0]]))
		}
	default:
		return nil
	}
	for _, typ := range xdsTypes {
		if got := cr.perClient.resources[typ]; got != want[typ]*int64(cr.clientsN) {
			return fmt.Errorf("%s: %d clients received %d resources in all, want %d each", short(typ), cr.clientsN, got, want[typ])
		}
	}
	return nil
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// wait waits for all, a client error, or the timeout.
func (f *fleet) wait(all <-chan struct{}, errc <-chan error, timeout time.Duration) error {
	select {
	case <-all:
		return nil
	case err := <-errc:
		return err
	case <-time.After(timeout):
		f.mu.Lock()
		done := f.done
		f.mu.Unlock()
		return fmt.Errorf("only %d of %d clients reached the expected configuration within %s; e.g. %s",
			done, len(f.clients), timeout, strings.Join(f.behind(3), "; "))
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtCounts(c counts, n int) string {
	var parts []string
	for _, typ := range xdsTypes {
		parts = append(parts, fmt.Sprintf("%s %s/%d", short(typ), fmtBytes(c.bytes[typ]/int64(n)), c.resources[typ]/int64(n)))
	}
	return strings.Join(parts, ", ")
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(b)/1e6)
	case b >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

type offRow struct {
	components, routes, clusters int
	o                            *offline
}

func printOffline(w io.Writer, rows []offRow) {
	fmt.Fprintln(w, "In-process, one catalog generation (median of -reps runs):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| components | routes | clusters | parse files | store + relations | Compile | Translate | **Compile + Translate** | encode (hash) | CDS bytes | RDS bytes | LDS bytes |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		o := r.o
		fmt.Fprintf(w, "| %d | %d | %d | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |\n", r.components, r.routes, r.clusters,
			fmtDur(o.Load), fmtDur(o.Store), fmtDur(o.Compile), fmtDur(o.Translate), fmtDur(o.Compile+o.Translate), fmtDur(o.Encode),
			fmtBytes(int64(o.Bytes[xdsTypes[0]])), fmtBytes(int64(o.Bytes[xdsTypes[2]])), fmtBytes(int64(o.Bytes[xdsTypes[1]])))
	}
	fmt.Fprintln(w)
}

func printScenarios(w io.Writer, rows []scenarioRow) {
	fmt.Fprintln(w, "Initial sync: every client connects at once (a fleet reconnecting after a control-plane restart) until all have ACKed the full configuration:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| components | clients | protocol | all ACKed after | sent per client | gatehouse CPU | RSS before clients | peak RSS | RSS after the changes |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		p := map[bool]string{false: "SotW", true: "delta"}[r.delta]
		if r.connect == 0 {
			fmt.Fprintf(w, "| %d | %d | %s | not reached: %s | | | %s | | |\n", r.components, r.clients, p, r.note, mib(r.rssIdle))
			continue
		}
		steady := mib(r.rssSteady)
		if r.rssSteady == 0 {
			steady = "—" // no changes measured (-names-only)
		}
		if r.note != "" {
			steady = "(" + r.note + ")"
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %.1f s | %s | **%s** | %s |\n", r.components, r.clients, p,
			fmtDur(r.connect), fmtBytes(r.bytesPerClient), r.cpu.Seconds(), mib(r.rssIdle), mib(r.rssPeak), steady)
	}
	fmt.Fprintln(w)
}

func printChanges(w io.Writer, rows []changeRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "Catalog changes: one file of the catalog directory rewritten; times from the write. \"published\" is gatehouse noticing, parsing, merging and compiling (its log); \"push\" is publish → the last client's ACK. Per client: bytes / resources received, by type.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| components | clients | protocol | change | published | push | **all ACKed** | CDS per client | RDS per client | LDS per client | gatehouse CPU | peak RSS |")
	fmt.Fprintln(w, "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		push, all := fmtDur(r.push), "**"+fmtDur(r.all)+"**"
		if r.noPush {
			push, all = "nothing to send", "—"
		}
		per := func(typ string) string {
			return fmt.Sprintf("%s / %d", fmtBytes(r.perClient.bytes[typ]/int64(r.clientsN)), r.perClient.resources[typ]/int64(r.clientsN))
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.2f s | %s |\n", r.components, r.clients, map[bool]string{false: "SotW", true: "delta"}[r.delta],
			r.change, fmtDur(r.publish), push, all, per(xdsTypes[0]), per(xdsTypes[2]), per(xdsTypes[1]), r.cpu.Seconds(), mib(r.rssPeak))
	}
	fmt.Fprintln(w)
}
