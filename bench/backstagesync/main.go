// Command backstagesync measures gatehouse's Backstage catalog source
// (catalogsync.BackstageSource) against a real Backstage backend
// (examples/backstage) serving a synthetic catalog (bench/catgen):
//
//   - Backstage's own startup and ingestion of the catalog file (not ours;
//     reported separately);
//   - gatehouse's full first sync: wall time, HTTP requests, bytes on the
//     wire, gatehouse's CPU and allocations, Backstage's CPU serving it, and
//     that every entity Backstage lists is committed;
//   - idle polls (nothing changed): the same costs per poll, and that a poll
//     commits nothing;
//   - one entity changed in the catalog file (Backstage re-reads it on
//     POST /api/catalog/refresh): the poll fetches only what changed and
//     commits the new version.
//
// It fails on a wrong count or a wrong result, never on a timing.
//
//	go run ./bench/backstagesync -entities 10000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/catgen"
	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
)

type options struct {
	entities   int
	runs       int
	idlePolls  int
	changes    int
	pageSize   int
	processing int
	ingest     time.Duration
	repo       string
	cpuprofile string
	keep       bool
	attach     string
	token      string
	pid        int
}

func main() {
	var o options
	flag.IntVar(&o.entities, "entities", 10000, "entities in the generated catalog (bench/catgen: components, one API each, groups, users)")
	flag.IntVar(&o.runs, "runs", 3, "full first syncs (each with a fresh source and store)")
	flag.IntVar(&o.idlePolls, "idle-polls", 10, "polls with nothing changed")
	flag.IntVar(&o.changes, "changes", 3, "one-entity changes (each a different component)")
	flag.IntVar(&o.pageSize, "page-size", 500, "catalog.backstage.page_size (gatehouse's default is 500)")
	flag.IntVar(&o.processing, "processing-interval", 3600, "Backstage catalog.processingInterval in seconds (examples/backstage uses 2, which keeps a 10k catalog's Backstage busy re-processing)")
	flag.DurationVar(&o.ingest, "ingest-timeout", 20*time.Minute, "how long Backstage may take to ingest the catalog")
	flag.StringVar(&o.repo, "repo", ".", "the gatehouse repository (for examples/backstage)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write CPU profiles of the full syncs and the idle polls to PREFIX.full.pprof and PREFIX.idle.pprof")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (catalog, Backstage log)")
	flag.StringVar(&o.attach, "url", "", "measure a Backstage that is already running at this URL (no -entities, no changes): full syncs and idle polls only")
	flag.StringVar(&o.token, "token", os.Getenv("BACKSTAGE_STATIC_TOKEN"), "with -url: its static token")
	flag.IntVar(&o.pid, "pid", 0, "with -url: its node process, for Backstage's CPU time")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "backstagesync:", err)
		stop()
		os.Exit(1)
	}
}

// catgenOptions spreads n entities like bench/catgen's defaults do
// (components : APIs : groups : users = 10 : 10 : 1 : 10).
func catgenOptions(n int) (catgen.Options, error) {
	if n < 10 {
		return catgen.Options{}, fmt.Errorf("-entities must be at least 10")
	}
	c := n * 10 / 31
	g := max(1, c/10)
	return catgen.Options{Components: c, APIsPerComponent: 1, Groups: g, Users: n - 2*c - g}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "backstagesync: "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	if o.runs < 1 || o.idlePolls < 1 || o.changes < 0 {
		return fmt.Errorf("-runs and -idle-polls must be at least 1, -changes at least 0")
	}
	if o.attach != "" {
		return attached(ctx, o)
	}
	copts, err := catgenOptions(o.entities)
	if err != nil {
		return err
	}
	cat := catgen.New(copts)
	dir, err := os.MkdirTemp("", "backstagesync-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	file := filepath.Join(dir, "catalog.yaml")
	if err := writeAtomic(file, cat.YAML()); err != nil {
		return err
	}
	// What gatehouse itself makes of the file: the count Backstage must reach.
	parsed, _ := (&cs.FileSource{Name: "files", Paths: []string{file}}).Load()
	if e := parsed.Problems.Errors(); e > 0 || len(parsed.Entities) != o.entities {
		return fmt.Errorf("bench/catgen gave %d entities with %d errors, want %d and 0", len(parsed.Entities), e, o.entities)
	}
	// Backstage adds one Location entity for the file it reads.
	want := o.entities + 1

	logf("starting Backstage (examples/backstage) on %d entities (%d components, %d APIs, %d groups, %d users); processingInterval %ds",
		o.entities, copts.Components, copts.Components, copts.Groups, copts.Users, o.processing)
	token := fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	t0 := time.Now()
	bs, err := startBackstage(ctx, o.repo, file, filepath.Join(dir, "backstage.log"), token, o.processing)
	if err != nil {
		return err
	}
	defer bs.stop()
	startup := time.Since(t0)
	logf("Backstage ready after %s; waiting for it to ingest %d entities", startup.Round(time.Millisecond), want)

	// Backstage's own ingestion: until its API counts every entity.
	t1 := time.Now()
	deadline, lastLog := t1.Add(o.ingest), time.Time{}
	for {
		n, err := bs.total(ctx)
		if err == nil && n == want {
			break
		}
		if err == nil && n > want {
			return fmt.Errorf("Backstage counts %d entities, more than the %d in the file", n, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Backstage has %d of %d entities after %s (error: %v); its log:\n%s", n, want, o.ingest, err, tailFile(bs.logPath, 30))
		}
		if time.Since(lastLog) > 15*time.Second {
			logf("  Backstage lists %d of %d after %s", n, want, time.Since(t1).Round(time.Second))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-bs.done:
			return fmt.Errorf("Backstage exited; its log:\n%s", tailFile(bs.logPath, 30))
		case <-time.After(500 * time.Millisecond):
		}
	}
	ingest := time.Since(t1)
	ingestCPU, _ := bs.cpu()
	logf("Backstage lists all %d entities %s after ready (node CPU since start: %s)", want, ingest.Round(time.Millisecond), ingestCPU.Round(time.Millisecond))

	res, err := syncs(ctx, o, bs, want)
	if err != nil {
		return err
	}
	m, src, store := res.m, res.src, res.store

	// 3. One entity changed: a component's timeout (its route) in the file.
	var change []cost
	var propagate []time.Duration
	var fetchedPerChange []int64
	for k := 0; k < o.changes; k++ {
		i := (k + 1) * copts.Components / (o.changes + 1)
		name := cat.ComponentName(i)
		old, err := bs.entity(ctx, "component", name)
		if err != nil {
			return err
		}
		cat.TouchRoute(i)
		if err := writeAtomic(file, cat.YAML()); err != nil {
			return err
		}
		t := time.Now()
		if err := bs.refreshLocations(ctx); err != nil {
			return err
		}
		var now bsEntity
		for {
			now, err = bs.entity(ctx, "component", name)
			if err == nil && now.Metadata.Etag != old.Metadata.Etag {
				break
			}
			if time.Since(t) > 5*time.Minute {
				return fmt.Errorf("Backstage did not show the change to %s within 5 minutes (error: %v)", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		propagate = append(propagate, time.Since(t))
		wantTimeout := now.Metadata.Annotations["gatehouse.dev/timeout"]
		if wantTimeout == old.Metadata.Annotations["gatehouse.dev/timeout"] {
			return fmt.Errorf("Backstage's %s changed etag but not its timeout annotation (%q)", name, wantTimeout)
		}
		before, fetched := store.Snapshot(), src.Status().Fetched
		runtime.GC()
		a := take(m, bs)
		changed, err := src.Sync(ctx, store)
		b := take(m, bs)
		if err != nil {
			return fmt.Errorf("poll after a change: %w", err)
		}
		e := store.Snapshot().Get("component:default/" + name)
		if !changed || store.Snapshot() == before || e == nil || e.Metadata.Annotations["gatehouse.dev/timeout"] != wantTimeout {
			return fmt.Errorf("the poll after %s changed did not commit its new version (changed %v)", name, changed)
		}
		if got := len(store.Snapshot().All()); got != want {
			return fmt.Errorf("after the change the store has %d entities, want %d", got, want)
		}
		nf := src.Status().Fetched - fetched
		if nf < 1 {
			return fmt.Errorf("the poll after a change fetched %d entities", nf)
		}
		fetchedPerChange = append(fetchedPerChange, nf)
		change = append(change, since(a, b))
		logf("  change %d (%s): Backstage showed it after %s; poll %s, fetched %d", k+1, name, propagate[k].Round(time.Millisecond), since(a, b), nf)
	}

	// The report.
	fmt.Printf("Backstage: examples/backstage (@backstage/plugin-catalog-backend %s, SQLite in memory, node %s), catalog.processingInterval %ds.\n",
		packageVersion(o.repo, "@backstage/plugin-catalog-backend"), nodeVersion(), o.processing)
	fmt.Printf("Catalog: bench/catgen, %d entities (%d components, %d APIs, %d groups, %d users) in one file; Backstage adds 1 Location = %d. Page size %d.\n\n",
		o.entities, copts.Components, copts.Components, copts.Groups, copts.Users, want, o.pageSize)
	fmt.Printf("Backstage's own work (not gatehouse's): startup to READY %.1f s; ingestion (READY → by-query totalItems = %d) %.1f s = %.0f entities/s; node CPU from start to ingested %.1f s.\n\n",
		startup.Seconds(), want, ingest.Seconds(), float64(want)/ingest.Seconds(), ingestCPU.Seconds())
	row := table(res, want)
	if len(change) > 0 {
		row(fmt.Sprintf("one entity changed (%s)", plural(len(change), "change")), change, fmt.Sprintf("entities fetched per poll: %s; the new version committed", joinInts(fetchedPerChange)))
		slices.Sort(propagate)
		fmt.Printf("\nBackstage's own time for a one-entity change (file rewritten, POST /api/catalog/refresh of the Location → new etag in its API): median %.2f s (%s).\n",
			propagate[len(propagate)/2].Seconds(), joinDurations(propagate))
	}
	fmt.Println(footnote)
	return nil
}

const footnote = "\nwall and CPU are medians over the runs; requests and bytes are the median run's. Backstage CPU = node's user+system time during the poll."

// table prints the rows of the full syncs and idle polls, and returns the
// row printer for more.
func table(res *measured, want int) func(string, []cost, string) {
	fmt.Println("| gatehouse BackstageSource.Sync | wall, median (min–max) | HTTP requests | received | sent | gatehouse CPU | gatehouse allocated | Backstage CPU | result |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|")
	row := func(name string, cs []cost, result string) {
		md := median(cs)
		fmt.Printf("| %s | %s (%s–%s) | %d | %s | %s | %s | %s | %s | %s |\n", name,
			ms(md.wall), ms(minOf(cs).wall), ms(maxOf(cs).wall), md.requests, mb(md.rx), mb(md.tx), ms(md.cpu), mb(int64(md.alloc)), bsCPU(md.backstageCPU), result)
	}
	row(fmt.Sprintf("full first sync (%s)", plural(len(res.full), "run")), res.full, fmt.Sprintf("%d entities committed (= Backstage's totalItems)", want))
	row(fmt.Sprintf("idle poll, nothing changed (%s)", plural(len(res.idle), "poll")), res.idle, "nothing fetched, nothing committed")
	return row
}

// measured is what syncs measures.
type measured struct {
	full, idle []cost
	m          *meter
	src        *cs.BackstageSource
	store      *cs.Store
}

// syncs waits until Backstage's etags are stable, then measures full first
// syncs and idle polls; want is the number of entities Backstage lists.
func syncs(ctx context.Context, o options, bs *backstage, want int) (*measured, error) {
	// Stitching may still change etags (relations of groups) after the count
	// is reached: wait until two listings in a row agree.
	quiet := slog.New(slog.NewTextHandler(discard{}, nil))
	settle := &cs.BackstageSource{Name: "backstage", BaseURL: bs.url, Token: bs.token, PageSize: o.pageSize, Logger: quiet}
	settleStore := cs.NewStore("backstage")
	t2 := time.Now()
	for i := 0; ; i++ {
		changed, err := settle.Sync(ctx, settleStore)
		if err != nil {
			return nil, fmt.Errorf("settling: %w", err)
		}
		if !changed && i > 0 {
			break
		}
		if i > 60 {
			return nil, fmt.Errorf("Backstage's etags still change after %d listings", i)
		}
		time.Sleep(time.Second)
	}
	logf("Backstage settled (etags unchanged between two listings) %s later", time.Since(t2).Round(time.Millisecond))

	m := &meter{}
	client := m.client()
	newSource := func() *cs.BackstageSource {
		return &cs.BackstageSource{Name: "backstage", BaseURL: bs.url, Token: bs.token, PageSize: o.pageSize, Client: client, Logger: quiet}
	}

	// 1. Full first syncs, each with a fresh source and store (the
	// connection pool is shared, as a restarted gatehouse would not; the
	// first run pays for its connection).
	stopProf, err := profile(o.cpuprofile, "full")
	if err != nil {
		return nil, err
	}
	var full []cost
	var src *cs.BackstageSource
	var store *cs.Store
	for r := 0; r < o.runs; r++ {
		src, store = newSource(), cs.NewStore("backstage")
		runtime.GC()
		a := take(m, bs)
		changed, err := src.Sync(ctx, store)
		b := take(m, bs)
		if err != nil {
			return nil, fmt.Errorf("full sync: %w", err)
		}
		snap := store.Snapshot()
		if got := len(snap.All()); !changed || got != want || src.Status().Fetched != int64(want) {
			return nil, fmt.Errorf("full sync committed %d entities (changed %v, fetched %d), want %d", got, changed, src.Status().Fetched, want)
		}
		if e := snap.Problems.Errors(); e > 0 {
			return nil, fmt.Errorf("full sync: %d errors in the catalog from Backstage: %v", e, snap.Problems[0])
		}
		full = append(full, since(a, b))
		logf("  full sync %d: %s", r+1, since(a, b))
	}
	stopProf()

	// 2. Idle polls: nothing changed.
	stopProf, err = profile(o.cpuprofile, "idle")
	if err != nil {
		return nil, err
	}
	var idle []cost
	for i := 0; i < o.idlePolls; i++ {
		time.Sleep(500 * time.Millisecond)
		before, fetched := store.Snapshot(), src.Status().Fetched
		runtime.GC()
		a := take(m, bs)
		changed, err := src.Sync(ctx, store)
		b := take(m, bs)
		if err != nil {
			return nil, fmt.Errorf("idle poll: %w", err)
		}
		if changed || store.Snapshot() != before || src.Status().Fetched != fetched {
			return nil, fmt.Errorf("idle poll %d committed a new generation (changed %v) or fetched %d entities", i+1, changed, src.Status().Fetched-fetched)
		}
		idle = append(idle, since(a, b))
	}
	stopProf()
	logf("  idle poll (median of %d): %s", len(idle), median(idle))

	return &measured{full: full, idle: idle, m: m, src: src, store: store}, nil
}

// attached measures a Backstage that is already running (-url): full syncs
// and idle polls of whatever it serves.
func attached(ctx context.Context, o options) error {
	bs := attachBackstage(o.attach, o.token, o.pid)
	want, err := bs.total(ctx)
	if err != nil {
		return err
	}
	if want == 0 {
		return fmt.Errorf("the Backstage at %s lists no entities", o.attach)
	}
	if _, ok := bs.cpu(); o.pid != 0 && !ok {
		return fmt.Errorf("-pid %d is not a node process", o.pid)
	}
	logf("attached to %s: %d entities; no -entities, no changes", bs.url, want)
	res, err := syncs(ctx, o, bs, want)
	if err != nil {
		return err
	}
	fmt.Printf("Backstage at %s (already running), %d entities. Page size %d.\n\n", bs.url, want, o.pageSize)
	table(res, want)
	fmt.Println(footnote)
	return nil
}

func (c cost) String() string {
	return fmt.Sprintf("wall %s, %d requests, rx %s, tx %s, cpu %s, alloc %s, Backstage cpu %s",
		ms(c.wall), c.requests, mb(c.rx), mb(c.tx), ms(c.cpu), mb(int64(c.alloc)), bsCPU(c.backstageCPU))
}

// median takes the median of each field separately.
func median(cs []cost) cost {
	pick := func(f func(cost) int64) int64 {
		v := make([]int64, len(cs))
		for i, c := range cs {
			v[i] = f(c)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return cost{
		wall:         time.Duration(pick(func(c cost) int64 { return int64(c.wall) })),
		requests:     pick(func(c cost) int64 { return c.requests }),
		rx:           pick(func(c cost) int64 { return c.rx }),
		tx:           pick(func(c cost) int64 { return c.tx }),
		cpu:          time.Duration(pick(func(c cost) int64 { return int64(c.cpu) })),
		alloc:        uint64(pick(func(c cost) int64 { return int64(c.alloc) })),
		backstageCPU: time.Duration(pick(func(c cost) int64 { return int64(c.backstageCPU) })),
	}
}

func minOf(cs []cost) cost {
	return slices.MinFunc(cs, func(a, b cost) int { return int(a.wall - b.wall) })
}

func maxOf(cs []cost) cost {
	return slices.MaxFunc(cs, func(a, b cost) int { return int(a.wall - b.wall) })
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
}

func mb(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func bsCPU(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(d.Milliseconds()))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func joinInts(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func joinDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f s", d.Seconds())
	}
	return strings.Join(s, ", ")
}

func profile(prefix, name string) (func(), error) {
	if prefix == "" {
		return func() {}, nil
	}
	f, err := os.Create(prefix + "." + name + ".pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func packageVersion(repo, pkg string) string {
	data, err := os.ReadFile(filepath.Join(repo, "examples", "backstage", "node_modules", pkg, "package.json"))
	if err != nil {
		return "?"
	}
	var p struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(data, &p) != nil {
		return "?"
	}
	return p.Version
}

func nodeVersion() string {
	out, err := execOutput("node", "--version")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(out)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
