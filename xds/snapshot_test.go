package xds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"
	"weak"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/model"
)

func joined(m *wireMessage) []byte {
	var b []byte
	for _, p := range m.parts {
		b = append(b, p...)
	}
	if len(b) != m.size {
		panic("wireMessage size out of step with its parts")
	}
	return b
}

// The encoded sets serve exactly the bytes of the translated resources,
// under the same names, with go-control-plane's versions (a SotW version
// per type, the SHA-256 of each resource for delta), and the pieces of a
// response decode as the DiscoveryResponse and DeltaDiscoveryResponse an
// Envoy expects.
func TestConfigServesTranslatedBytes(t *testing.T) {
	res, err := Translate(testModel(8080), Node{ID: "n", Role: RoleEdge}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := buildConfig(res)
	if err != nil {
		t.Fatal(err)
	}
	for typ, items := range map[string][]types.Resource{resourcev3.ClusterType: res.Clusters, resourcev3.RouteType: res.Routes, resourcev3.ListenerType: res.Listeners} {
		set := cfg.sets[typ]
		// The type's version is a hash of its resources' encodings, each
		// prefixed with its length.
		h := sha256.New()
		for _, it := range items {
			b, _ := cachev3.MarshalResource(it)
			fmt.Fprintf(h, "%d:", len(b))
			h.Write(b)
		}
		if want := hex.EncodeToString(h.Sum(nil)[:8]); set.version != want {
			t.Errorf("%s: set version %s, want the content hash %s", typ, set.version, want)
		}
		msg := &wireMessage{}
		msg.add(set.sotw)
		msg.add(sotwTail(set.version, typ, "7"))
		var sotw discoverygrpc.DiscoveryResponse
		if err := proto.Unmarshal(joined(msg), &sotw); err != nil {
			t.Fatal(err)
		}
		if sotw.VersionInfo != set.version || sotw.TypeUrl != typ || sotw.Nonce != "7" || len(sotw.Resources) != len(items) {
			t.Fatalf("%s: SotW response %s/%s/%s with %d resources", typ, sotw.VersionInfo, sotw.TypeUrl, sotw.Nonce, len(sotw.Resources))
		}
		msg = &wireMessage{}
		msg.add(set.delta)
		msg.add(deltaTail(set.version, typ, "8"))
		var delta discoverygrpc.DeltaDiscoveryResponse
		if err := proto.Unmarshal(joined(msg), &delta); err != nil {
			t.Fatal(err)
		}
		if delta.SystemVersionInfo != set.version || delta.TypeUrl != typ || delta.Nonce != "8" || len(delta.Resources) != len(items) {
			t.Fatalf("%s: delta response %s/%s/%s with %d resources", typ, delta.SystemVersionInfo, delta.TypeUrl, delta.Nonce, len(delta.Resources))
		}
		for i, it := range items {
			want, _ := cachev3.MarshalResource(it)
			name := cachev3.GetResourceName(it)
			if a := sotw.Resources[i]; a.TypeUrl != typ || !bytes.Equal(a.Value, want) {
				t.Fatalf("%s %s: SotW bytes differ from the translation", typ, name)
			}
			r := delta.Resources[i]
			if r.Name != name || r.Version != cachev3.HashResource(want) || r.Resource.TypeUrl != typ || !bytes.Equal(r.Resource.Value, want) {
				t.Fatalf("%s %s: delta resource %s version %s", typ, name, r.Name, r.Version)
			}
			if !bytes.Equal(set.sotwEntry(i), appendSotwEntry(nil, encodeAny(typ, want))) {
				t.Fatalf("%s %s: entry %d is not its resource", typ, name, i)
			}
		}
	}
}

// A diff between two builds carries the changed and new resources and the
// removed names, nothing else, and is computed once per pair of builds.
func TestSetDiff(t *testing.T) {
	m1 := testModel(8080)
	m2 := testModel(8081) // the upstream's port changed
	m2.Clusters = append(m2.Clusters, model.Cluster{Name: "component:default/b", Entity: "component:default/b", Discovery: model.DiscoveryStatic,
		Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: 9}}})
	m3 := testModel(8081) // b removed again
	var sets []*resourceSet
	for _, m := range []*model.Model{m1, m2, m3} {
		m.Version = model.ContentVersion(m)
		res, err := Translate(m, Node{ID: "n", Role: RoleEdge}, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := buildConfig(res)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, cfg.sets[resourcev3.ClusterType])
	}
	decode := func(d *setDiff) (changed, removed []string) {
		var r discoverygrpc.DeltaDiscoveryResponse
		if err := proto.Unmarshal(d.body, &r); err != nil {
			t.Fatal(err)
		}
		for _, x := range r.Resources {
			changed = append(changed, x.Name)
		}
		sort.Strings(changed)
		return changed, r.RemovedResources
	}
	d := sets[1].diffFrom(sets[0])
	if c, r := decode(d); d.changed != 2 || d.removed != 0 || len(c) != 2 || c[0] != "component:default/a" || c[1] != "component:default/b" || len(r) != 0 {
		t.Fatalf("1 -> 2: changed %v removed %v", c, r)
	}
	if again := sets[1].diffFrom(sets[0]); again != d {
		t.Fatal("the same step was computed twice")
	}
	d = sets[2].diffFrom(sets[1])
	if c, r := decode(d); len(c) != 0 || len(r) != 1 || r[0] != "component:default/b" {
		t.Fatalf("2 -> 3: changed %v removed %v", c, r)
	}
	if d := sets[2].diffFrom(sets[2]); !d.empty() {
		t.Fatal("a set differs from itself")
	}
	// The memo does not keep older sets alive (each would keep the one
	// before it: a chain of every build since the start).
	old := weak.Make(sets[0])
	sets[0] = nil
	for i := 0; i < 5 && old.Value() != nil; i++ {
		runtime.GC()
	}
	if old.Value() != nil {
		t.Fatal("an older set is still reachable through the diff memo of a newer one")
	}
	runtime.KeepAlive(sets) // the newer sets, whose memos are under test, live on
}

// Delta clients that hold the same build get the same bytes: the stream
// shares the diff, it does not copy it.
func TestDeltaStreamsShareDiffBytes(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	type client struct {
		in     *inbox[*discoverygrpc.DeltaDiscoveryResponse]
		stream discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	}
	var clients []client
	for _, id := range []string{"d1", "d2", "d3"} {
		stream, in := connectDelta(t, c, node(id, RoleEdge))
		r, ok := in.next(5 * time.Second)
		if !ok || len(r.Resources) != 2 {
			t.Fatalf("%s: initial response %v", id, r)
		}
		if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.Nonce}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, client{in, stream})
	}
	s.mu.Lock()
	before := s.nodes["d1"].config.Load().sets[resourcev3.ClusterType]
	s.mu.Unlock()
	s.SetModel(testModel(9001))
	waitPushed(t, s)
	for i, cl := range clients {
		r, ok := cl.in.next(5 * time.Second)
		if !ok || len(r.Resources) != 1 || r.Resources[0].Name != "component:default/a" || len(r.RemovedResources) != 0 {
			t.Fatalf("client %d: %v", i, r)
		}
	}
	s.mu.Lock()
	after := s.nodes["d1"].config.Load().sets[resourcev3.ClusterType]
	s.mu.Unlock()
	after.diffMu.Lock()
	n := len(after.diffs)
	d := after.diffs[before.version]
	after.diffMu.Unlock()
	if n != 1 || d == nil || d.changed != 1 {
		t.Fatalf("%d diffs memoised for 3 clients making one step (%+v), want 1", n, d)
	}
}
