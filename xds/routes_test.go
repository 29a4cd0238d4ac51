package xds

import (
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/gatehouse-dev/gatehouse/model"
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

// A catalog change that does not touch a route or its policy (here: a user
// joins a group, so the model version changes) leaves the route
// configuration as it was; a change of the route's policy changes it.
func TestRoutesIndependentOfModelVersion(t *testing.T) {
	rds := func(m *model.Model) string {
		t.Helper()
		res, err := Translate(m, Node{ID: "n", Role: RoleEdge}, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		vs, err := Versions(res)
		if err != nil {
			t.Fatal(err)
		}
		return vs[resourcev3.RouteType]
	}
	m := testModel(8080)
	m.Policies = []model.Policy{{RouteID: m.VirtualHosts[0].Routes[0].ID, Entity: "component:default/a", Owners: []string{"group:default/a"}}}
	m.Version = model.ContentVersion(m)
	base := rds(m)

	joined := *m
	joined.Directory.Users = []model.User{{Ref: "user:default/u", Groups: []string{"group:default/a"}}}
	joined.Version = model.ContentVersion(&joined)
	if joined.Version == m.Version {
		t.Fatal("test setup: the model version should change")
	}
	if got := rds(&joined); got != base {
		t.Fatalf("a membership change re-versioned the routes: %s -> %s", base, got)
	}

	owners := *m
	owners.Policies = []model.Policy{{RouteID: m.Policies[0].RouteID, Entity: "component:default/a", Owners: []string{"group:default/b"}}}
	owners.Version = model.ContentVersion(&owners)
	if got := rds(&owners); got == base {
		t.Fatal("a policy change must change the route's stamp")
	}
}
