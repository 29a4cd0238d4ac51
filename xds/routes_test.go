package xds

import (
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// The same model translates to the same versions every time: versions are
// content hashes, and random map order in a typed config would change them
// on every rebuild and differ between replicas.
func TestTranslateDeterministic(t *testing.T) {
	m := testModel(8080)
	var first map[string]string
	for i := 0; i < 20; i++ {
		res, err := Translate(m, Node{ID: "n", Role: RoleEdge}, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		vs, err := Versions(res)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = vs
			continue
		}
		for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.RouteType} {
			if vs[typ] != first[typ] {
				t.Fatalf("translation %d: %s version %s, the first was %s", i, typ, vs[typ], first[typ])
			}
		}
	}
}
