package main

import (
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model/compile"
	"github.com/gatehouse-dev/gatehouse/xds"
)

// offline is the in-process cost of turning a catalog directory into xDS
// resources, phase by phase: what the control plane does on every change.
type offline struct {
	Load, Store, Compile, Translate, Encode time.Duration  // medians
	Bytes                                   map[string]int // marshalled bytes per type URL
	Counts                                  map[string]int
	Allocs                                  uint64 // bytes allocated by Compile + Translate, one run
}

// measureOffline runs load → store → compile → translate → encode reps
// times and returns the median of each phase.
func measureOffline(dir string, opts xds.Options, reps int) (*offline, error) {
	var load, store, comp, tr, snapT []time.Duration
	o := &offline{}
	for i := 0; i < reps; i++ {
		t0 := time.Now()
		parsed, _ := (&cs.FileSource{Name: "files", Paths: []string{dir}}).Load()
		t1 := time.Now()
		snap := cs.NewStore("files").ReplaceSource("files", parsed)
		var ms0, ms1 runtime.MemStats
		if i == 0 {
			runtime.ReadMemStats(&ms0)
		}
		t2 := time.Now()
		m, _ := compile.Compile(snap)
		t3 := time.Now()
		res, err := xds.Translate(m, xds.Node{ID: "offline", Role: xds.RoleEdge}, opts)
		if err != nil {
			return nil, err
		}
		t4 := time.Now()
		if i == 0 {
			runtime.ReadMemStats(&ms1)
			o.Allocs = ms1.TotalAlloc - ms0.TotalAlloc
		}
		if _, err := xds.EncodedSize(res); err != nil {
			return nil, err
		}
		t5 := time.Now()
		load, store, comp, tr, snapT = append(load, t1.Sub(t0)), append(store, t2.Sub(t1)), append(comp, t3.Sub(t2)), append(tr, t4.Sub(t3)), append(snapT, t5.Sub(t4))
		if i == 0 {
			o.Bytes, o.Counts = map[string]int{}, map[string]int{}
			for typ, items := range byType(res) {
				o.Counts[typ] = len(items)
				for _, it := range items {
					o.Bytes[typ] += proto.Size(it)
				}
			}
		}
		runtime.GC()
	}
	o.Load, o.Store, o.Compile, o.Translate, o.Encode = median(load), median(store), median(comp), median(tr), median(snapT)
	return o, nil
}

func byType(r *xds.Resources) map[string][]types.Resource {
	return map[string][]types.Resource{
		resourcev3.ClusterType:  r.Clusters,
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
	}
}

// expected is the configuration every simulated Envoy must end up with.
type expected struct {
	model    string                       // model version
	versions map[string]string            // type URL -> SotW version
	names    map[string]map[string]string // type URL -> resource name -> delta version (hash of its bytes)
}

func (e *expected) String() string {
	return fmt.Sprintf("model %s cds %s lds %s rds %s", e.model, e.versions[resourcev3.ClusterType], e.versions[resourcev3.ListenerType], e.versions[resourcev3.RouteType])
}

// incremental compiles a catalog directory the way gatehouse serve does,
// re-parsing only the files that changed.
type incremental struct {
	src   *cs.FileSource
	store *cs.Store
}

func newIncremental(dir string) *incremental {
	return &incremental{src: &cs.FileSource{Name: "files", Paths: []string{dir}}, store: cs.NewStore("files")}
}

// expect returns what a node of role edge must receive for the directory's
// current content.
func (in *incremental) expect(opts xds.Options) (*expected, error) {
	parsed, _ := in.src.Load()
	m, _ := compile.Compile(in.store.ReplaceSource("files", parsed))
	res, err := xds.Translate(m, xds.Node{ID: "expect", Role: xds.RoleEdge}, opts)
	if err != nil {
		return nil, err
	}
	vs, err := xds.Versions(res)
	if err != nil {
		return nil, err
	}
	e := &expected{model: m.Version, versions: vs, names: map[string]map[string]string{}}
	for typ, items := range byType(res) {
		e.names[typ] = map[string]string{}
		for _, it := range items {
			b, err := cachev3.MarshalResource(it)
			if err != nil {
				return nil, err
			}
			e.names[typ][cachev3.GetResourceName(it)] = cachev3.HashResource(b)
		}
	}
	return e, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
