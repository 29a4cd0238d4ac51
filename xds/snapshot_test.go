package xds

import (
	"bytes"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// The snapshot serves exactly the bytes of the translated resources (the
// pre-encoded ones included), under the same names and versions.
func TestSnapshotServesTranslatedBytes(t *testing.T) {
	m := testModel(8080)
	res, err := Translate(m, Node{ID: "n", Role: RoleEdge}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := buildSnapshot(res)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Versions(res)
	if err != nil {
		t.Fatal(err)
	}
	for typ, items := range map[string][]types.Resource{resourcev3.ClusterType: res.Clusters, resourcev3.RouteType: res.Routes, resourcev3.ListenerType: res.Listeners} {
		if got := snap.GetVersion(typ); got != vs[typ] {
			t.Errorf("%s: snapshot version %s, Versions says %s", typ, got, vs[typ])
		}
		served := snap.GetResources(typ)
		if len(served) != len(items) {
			t.Fatalf("%s: %d resources served, %d translated", typ, len(served), len(items))
		}
		for _, it := range items {
			name := cachev3.GetResourceName(it)
			s, ok := served[name]
			if !ok {
				t.Fatalf("%s: %s not served", typ, name)
			}
			want, _ := cachev3.MarshalResource(it)
			got, _ := cachev3.MarshalResource(s)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s %s: served bytes differ from the translation", typ, name)
			}
			if v := snap.GetVersionMap(typ)[name]; v != cachev3.HashResource(want) {
				t.Fatalf("%s %s: delta version %s", typ, name, v)
			}
		}
	}
	// The large types are the pre-encoded ones.
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.RouteType} {
		for name, s := range snap.GetResources(typ) {
			if len(s.ProtoReflect().GetUnknown()) == 0 {
				t.Errorf("%s %s is not pre-encoded", typ, name)
			}
		}
	}
}

func BenchmarkMarshalServed(b *testing.B) {
	m := testModel(8080)
	res, _ := Translate(m, Node{ID: "n", Role: RoleEdge}, DefaultOptions())
	snap, _ := buildSnapshot(res)
	rc := snap.GetResources(resourcev3.RouteType)[EdgeRouteConfigName]
	b.Run("translated", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cachev3.MarshalResource(res.Routes[0])
		}
	})
	b.Run("served", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cachev3.MarshalResource(rc)
		}
	})
}
