package xds

import (
	"testing"
	"time"

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

// A catalog change that does not touch routing leaves the route
// configuration as it was: a user joining a group, and a new owner (the
// policy lives in gatehouse, not in Envoy); a new timeout changes it.
func TestRoutesIndependentOfModelAndPolicy(t *testing.T) {
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
	if got := rds(&owners); got != base {
		t.Fatalf("an owner change re-versioned the routes: %s -> %s", base, got)
	}

	timeout := *m
	timeout.VirtualHosts = []model.VirtualHost{m.VirtualHosts[0]}
	timeout.VirtualHosts[0].Routes = []model.Route{m.VirtualHosts[0].Routes[0]}
	timeout.VirtualHosts[0].Routes[0].Timeout = model.Duration(7 * time.Second)
	timeout.Version = model.ContentVersion(&timeout)
	if got := rds(&timeout); got == base {
		t.Fatal("a new route timeout did not change the route configuration")
	}
}
