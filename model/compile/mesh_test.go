package compile_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

func policyOf(m *model.Model, routeID string) *model.Policy {
	for i := range m.Policies {
		if m.Policies[i].RouteID == routeID {
			return &m.Policies[i]
		}
	}
	return nil
}

// The facts the mesh golden (testdata/mesh.*) must show, asserted by name so
// that an accepted golden update cannot quietly change them.
func TestMeshFromCatalog(t *testing.T) {
	m, problems := testcatalog.CompileFiles(filepath.Join("testdata", "mesh.in.yaml"))

	var comps []string
	for _, s := range m.Mesh {
		comps = append(comps, s.Component)
	}
	// Only Components with a mesh address, sorted; e (no address) is not in it.
	if want := []string{"component:data/d", "component:default/a", "component:default/b", "component:default/c", "component:default/dup"}; !reflect.DeepEqual(comps, want) {
		t.Fatalf("mesh components %v; want %v", comps, want)
	}
	if m.MeshService("component:default/e") != nil || m.MeshService("component:default/zzz") != nil {
		t.Error("MeshService found a component that is not in the mesh")
	}

	a := m.MeshService("component:default/a")
	type target struct{ host, ref, via, provider string }
	var got []target
	for _, o := range a.Outbound {
		got = append(got, target{o.Host, o.Ref, o.Via, o.Provider})
		if (o.Provider == "") == (o.Unreachable == "") {
			t.Errorf("target %s: exactly one of provider %q and unreachable %q must be set", o.Host, o.Provider, o.Unreachable)
		}
	}
	want := []target{
		{"b-api.default.gatehouse.internal", "api:default/b-api", "consumesApis", "component:default/b"},
		{"d.data.gatehouse.internal", "component:data/d", "dependsOn", "component:data/d"},
		// The API keeps the clashing name; the component dup is dropped.
		{"dup.default.gatehouse.internal", "api:default/dup", "consumesApis", "component:default/c"},
		{"e-api.default.gatehouse.internal", "api:default/e-api", "consumesApis", ""},
		{"e.default.gatehouse.internal", "component:default/e", "dependsOn", ""},
		// resource:default/db is not a target.
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("a's outbound:\n got %v\nwant %v", got, want)
	}
	if u := a.Outbound[3].Unreachable; !strings.Contains(u, "api:default/e-api") || !strings.Contains(u, cs.AnnMeshAddress) {
		t.Errorf("unreachable reason %q does not say what to fix", u)
	}
	if c := m.MeshService("component:default/c"); len(c.Outbound) != 0 {
		t.Errorf("c declares nothing but may call %v", c.Outbound)
	}

	b := m.MeshService("component:default/b")
	if b.Address != (model.Endpoint{Host: "b.shop.svc", Port: 15006}) || b.Discovery != model.DiscoveryDNS {
		t.Errorf("b address %+v discovery %s", b.Address, b.Discovery)
	}
	if ad := m.MeshService("component:default/a"); ad.Discovery != model.DiscoveryStatic {
		t.Errorf("a (an IP) discovery %s", ad.Discovery)
	}
	var ids []string
	for _, r := range b.Inbound {
		ids = append(ids, r.ID)
		if r.Entity != "component:default/b" || r.Timeout != model.Duration(3e9) {
			t.Errorf("inbound route %s: entity %s timeout %s", r.ID, r.Entity, r.Timeout)
		}
	}
	// Most specific first: the public path, the API's prefix, then "/".
	if want := []string{"component:default/b@mesh:/#public:/b/healthz", "component:default/b@mesh:/b/v1", "component:default/b@mesh:/"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("b inbound %v; want %v", ids, want)
	}

	// Policies: every inbound route has one; a consumes b's API (only its
	// prefix) and, through dependsOn, all of d.
	for _, s := range m.Mesh {
		for _, r := range s.Inbound {
			if policyOf(m, r.ID) == nil {
				t.Errorf("inbound route %s has no policy", r.ID)
			}
		}
	}
	consumers := map[string][]string{
		"component:default/b@mesh:/b/v1": {"component:default/a"},
		"component:default/b@mesh:/":     nil,
		"component:data/d@mesh:/":        {"component:default/a"},
		"component:default/c@mesh:/":     {"component:default/a"}, // the API dup covers all of c
		"component:default/a@mesh:/":     nil,
	}
	for id, want := range consumers {
		p := policyOf(m, id)
		if p == nil {
			t.Errorf("no policy %s", id)
			continue
		}
		if len(p.Consumers) != len(want) || (len(want) > 0 && !reflect.DeepEqual(p.Consumers, want)) {
			t.Errorf("policy %s consumers %v; want %v", id, p.Consumers, want)
		}
		if !reflect.DeepEqual(p.Owners, []string{"group:default/team"}) {
			t.Errorf("policy %s owners %v", id, p.Owners)
		}
	}

	// One problem: the name clash, on a, naming both entities.
	if len(problems) != 1 {
		t.Fatalf("problems %v; want the mesh-name clash only", problems)
	}
	p := problems[0]
	if p.Severity != cs.SeverityWarning || p.Entity != "component:default/a" || p.Field != "spec.dependsOn" ||
		!strings.Contains(p.Message, "dup.default.gatehouse.internal") || !strings.Contains(p.Message, "component:default/dup") ||
		!strings.Contains(p.Message, "api:default/dup") || p.Fix == "" || p.Line == 0 {
		t.Errorf("clash problem: %+v", p)
	}
}

// Route ids key the policies Check looks up: two components providing one API
// with a path prefix must not share an inbound route id (each has its own
// owners and rules), nor may any two policies share one.
func TestMeshRouteIDsUnique(t *testing.T) {
	m, problems := testcatalog.Compile(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-one}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-two}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: one
  annotations: {gatehouse.dev/mesh-address: "one.svc:15006"}
spec: {type: service, lifecycle: production, owner: team-one, providesApis: [y-api, x-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: two
  annotations:
    gatehouse.dev/mesh-address: "two.svc:15006"
    gatehouse.dev/access: |
      - allow: [group:default/team-two]
spec: {type: service, lifecycle: production, owner: team-two, providesApis: [x-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: x-api
  annotations: {gatehouse.dev/path-prefix: /x/v1}
spec: {type: openapi, lifecycle: production, owner: team-one, definition: x}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: y-api
  annotations: {gatehouse.dev/path-prefix: /x/v1}
spec: {type: openapi, lifecycle: production, owner: team-one, definition: x}
`)
	for _, p := range problems {
		if p.Severity == cs.SeverityError {
			t.Fatalf("problem: %s", p)
		}
	}
	seen := map[string]string{}
	for _, p := range m.Policies {
		if prev, ok := seen[p.RouteID]; ok {
			t.Errorf("route id %s is the policy of both %s and %s", p.RouteID, prev, p.Entity)
		}
		seen[p.RouteID] = p.Entity
	}
	// Each sidecar's API route carries a policy of its own component; one's
	// second API with the same prefix (y-api) adds no second route.
	for _, comp := range []string{"component:default/one", "component:default/two"} {
		s := m.MeshService(comp)
		found := false
		for _, r := range s.Inbound {
			if r.Prefix == "/x/v1" && r.API != "api:default/x-api" {
				t.Errorf("%s: route %s for %s; want x-api's (the smallest ref) only", comp, r.ID, r.API)
			}
			if r.API != "api:default/x-api" {
				continue
			}
			if found {
				t.Errorf("%s: two routes for x-api", comp)
			}
			found = true
			p := policyOf(m, r.ID)
			if p == nil || p.Entity != comp {
				t.Errorf("%s's API route %s has the policy of %v", comp, r.ID, p)
			}
		}
		if !found {
			t.Errorf("%s has no inbound route for x-api", comp)
		}
	}
}
