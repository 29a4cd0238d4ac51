package catalogsync

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// catalogDoc renders one catalog document.
func catalogDoc(kind, name, spec string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + spec + "---\n"
}

// snapshotOf parses src (which must be valid) into a fresh store.
func snapshotOf(t *testing.T, src string) *Snapshot {
	t.Helper()
	p := ParseFile("files", "catalog.yaml", []byte(src))
	if p.Problems.Errors() > 0 {
		t.Fatalf("test catalog has errors: %v", p.Problems)
	}
	return NewStore("files").ReplaceSource("files", p)
}

func relationStrings(e *Entity) []string {
	out := []string{}
	for _, r := range e.Relations {
		out = append(out, r.Type+" "+r.TargetRef)
	}
	return out
}

var relationsCatalog = catalogDoc("Domain", "retail", "  owner: team-platform\n") +
	catalogDoc("System", "shop", "  owner: group:team-a\n  domain: retail\n") +
	catalogDoc("Component", "orders", "  type: service\n  lifecycle: production\n  owner: team-a\n  system: shop\n  providesApis: [orders-api]\n  consumesApis: [api:default/payments-api]\n  dependsOn: [resource:orders-db]\n") +
	catalogDoc("Component", "orders-worker", "  type: worker\n  lifecycle: production\n  owner: Team-A\n  subcomponentOf: orders\n") +
	catalogDoc("API", "orders-api", "  type: openapi\n  lifecycle: production\n  owner: team-a\n  system: shop\n  definition: x\n") +
	catalogDoc("API", "payments-api", "  type: openapi\n  lifecycle: production\n  owner: team-b\n  definition: x\n") +
	catalogDoc("Resource", "orders-db", "  type: database\n  owner: team-a\n  system: shop\n") +
	catalogDoc("Group", "platform", "  type: department\n  children: [team-a]\n") +
	catalogDoc("Group", "team-a", "  type: team\n  members: [alice, dave]\n") +
	catalogDoc("Group", "team-b", "  type: team\n  parent: platform\n") +
	catalogDoc("Group", "squad-1", "  type: squad\n  parent: group:default/team-a\n") +
	catalogDoc("User", "alice", "  profile: {email: alice@example.com}\n") +
	catalogDoc("User", "bob", "  memberOf: [team-b]\n") +
	catalogDoc("User", "carol", "  memberOf: [Team-A]\n") +
	catalogDoc("User", "dave", "  memberOf: [team-a]\n") +
	catalogDoc("User", "erin", "  memberOf: [squad-1]\n")

func TestRelationsEveryPairBothWays(t *testing.T) {
	snap := snapshotOf(t, relationsCatalog)
	want := map[string][]string{
		"domain:default/retail": {"hasPart system:default/shop", "ownedBy group:default/team-platform"},
		"system:default/shop": {"hasPart api:default/orders-api", "hasPart component:default/orders", "hasPart resource:default/orders-db",
			"ownedBy group:default/team-a", "partOf domain:default/retail"},
		"component:default/orders": {"consumesApi api:default/payments-api", "dependsOn resource:default/orders-db",
			"hasPart component:default/orders-worker", "ownedBy group:default/team-a", "partOf system:default/shop", "providesApi api:default/orders-api"},
		"component:default/orders-worker": {"ownedBy group:default/team-a", "partOf component:default/orders"},
		"api:default/orders-api":          {"apiProvidedBy component:default/orders", "ownedBy group:default/team-a", "partOf system:default/shop"},
		"api:default/payments-api":        {"apiConsumedBy component:default/orders", "ownedBy group:default/team-b"},
		"resource:default/orders-db":      {"dependencyOf component:default/orders", "ownedBy group:default/team-a", "partOf system:default/shop"},
		"group:default/platform":          {"parentOf group:default/team-a", "parentOf group:default/team-b"},
		"group:default/team-a": {"childOf group:default/platform",
			"hasMember user:default/alice", "hasMember user:default/carol", "hasMember user:default/dave",
			"ownerOf api:default/orders-api", "ownerOf component:default/orders", "ownerOf component:default/orders-worker",
			"ownerOf resource:default/orders-db", "ownerOf system:default/shop",
			"parentOf group:default/squad-1"},
		"group:default/team-b":  {"childOf group:default/platform", "hasMember user:default/bob", "ownerOf api:default/payments-api"},
		"group:default/squad-1": {"childOf group:default/team-a", "hasMember user:default/erin"},
		"user:default/alice":    {"memberOf group:default/team-a"},
		"user:default/bob":      {"memberOf group:default/team-b"},
		"user:default/carol":    {"memberOf group:default/team-a"},
		"user:default/dave":     {"memberOf group:default/team-a"}, // from both sides, once
		"user:default/erin":     {"memberOf group:default/squad-1"},
	}
	all := snap.All()
	if len(all) != len(want) {
		t.Errorf("got %d entities %v; want %d", len(all), entityKeys(all), len(want))
	}
	for key, w := range want {
		e := snap.Get(key)
		if e == nil {
			t.Errorf("%s missing from the snapshot", key)
			continue
		}
		got := relationStrings(e)
		if !sort.StringsAreSorted(got) {
			t.Errorf("%s relations are not sorted: %v", key, got)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s relations:\n got %v\nwant %v", key, got, w)
		}
		for _, r := range e.Relations {
			if r.TargetRef != strings.ToLower(r.TargetRef) {
				t.Errorf("%s: relation target %q is not a lower-case key", key, r.TargetRef)
			}
		}
	}
	// The only problem: the domain's owner is not in the catalog.
	if len(snap.Problems) != 1 {
		t.Fatalf("problems = %v; want one warning", snap.Problems)
	}
	p := snap.Problems[0]
	if p.Severity != SeverityWarning || p.Entity != "domain:default/retail" || p.Field != "spec.owner" ||
		p.Message != "refers to group:default/team-platform, which is not in the catalog" || p.Fix == "" ||
		p.File != "catalog.yaml" || p.Line != 6 || p.Source != "files" { // line 6: spec.owner, not the document's first line
		t.Errorf("problem = %+v", p)
	}
}

func TestRelationsNamespaceDefaults(t *testing.T) {
	src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  namespace: billing\nspec:\n  type: service\n  lifecycle: l\n  owner: team-x\n  providesApis: [orders-api, default/shared-api]\n  dependsOn: [Resource:Billing/DB]\n"
	snap := snapshotOf(t, src)
	e := snap.Get("component:billing/orders")
	if e == nil {
		t.Fatal("entity missing")
	}
	want := []string{"dependsOn resource:billing/db", "ownedBy group:billing/team-x", "providesApi api:billing/orders-api", "providesApi api:default/shared-api"}
	if got := relationStrings(e); !reflect.DeepEqual(got, want) {
		t.Errorf("relations = %v; want %v", got, want)
	}
	var missing []string
	for _, p := range snap.Problems {
		if p.Severity != SeverityWarning || p.Entity != "component:billing/orders" {
			t.Errorf("unexpected problem %s", p)
		}
		ref, _, _ := strings.Cut(strings.TrimPrefix(p.Message, "refers to "), ", which is not in the catalog")
		missing = append(missing, p.Field+" "+ref)
	}
	sort.Strings(missing)
	wantMissing := []string{"spec.dependsOn resource:Billing/DB", "spec.owner group:billing/team-x", "spec.providesApis api:billing/orders-api", "spec.providesApis api:default/shared-api"}
	if !reflect.DeepEqual(missing, wantMissing) {
		t.Errorf("missing-ref warnings = %v; want %v", missing, wantMissing)
	}
}

func TestResolveRelationsDoesNotModifyInputs(t *testing.T) {
	p := ParseFile("s", "f", []byte(catalogDoc("Group", "g", "  type: team\n  members: [u]\n")+catalogDoc("User", "u", "  memberOf: []\n")))
	if len(p.Entities) != 2 {
		t.Fatalf("problems %v", p.Problems)
	}
	out, _, _ := resolveRelations(p.Entities)
	for i, e := range p.Entities {
		if e.Relations != nil {
			t.Errorf("input %s was modified: %v", e.Ref(), e.Relations)
		}
		if out[i] == e {
			t.Errorf("output %d is the input pointer", i)
		}
	}
	if got := relationStrings(out[1]); !reflect.DeepEqual(got, []string{"memberOf group:default/g"}) {
		t.Errorf("user relations = %v", got)
	}
}

func TestGroupAncestry(t *testing.T) {
	snap := snapshotOf(t, relationsCatalog)
	groups := []struct {
		key  string
		want []string
	}{
		{"user:default/erin", []string{"group:default/platform", "group:default/squad-1", "group:default/team-a"}},
		{"User:Default/Erin", []string{"group:default/platform", "group:default/squad-1", "group:default/team-a"}},
		{"user:default/bob", []string{"group:default/platform", "group:default/team-b"}},
		{"user:default/alice", []string{"group:default/platform", "group:default/team-a"}},
		{"group:default/squad-1", []string{"group:default/platform", "group:default/squad-1", "group:default/team-a"}},
		{"group:default/platform", []string{"group:default/platform"}},
		{"component:default/orders", nil},
		{"user:default/nobody", nil},
	}
	for _, c := range groups {
		if got := snap.GroupsOf(c.key); !reflect.DeepEqual(got, c.want) {
			t.Errorf("GroupsOf(%s) = %v; want %v", c.key, got, c.want)
		}
	}
	members := []struct {
		group string
		want  []string
	}{
		{"group:default/platform", []string{"user:default/alice", "user:default/bob", "user:default/carol", "user:default/dave", "user:default/erin"}},
		{"group:default/team-a", []string{"user:default/alice", "user:default/carol", "user:default/dave", "user:default/erin"}},
		{"group:default/team-b", []string{"user:default/bob"}},
		{"group:default/squad-1", []string{"user:default/erin"}},
		{"group:default/nope", []string{}},
	}
	for _, c := range members {
		if got := entityKeys(snap.Members(c.group)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Members(%s) = %v; want %v", c.group, got, c.want)
		}
	}
}

func TestGroupCycleDoesNotHang(t *testing.T) {
	src := catalogDoc("Group", "g1", "  type: team\n  parent: g3\n") +
		catalogDoc("Group", "g2", "  type: team\n  parent: g1\n") +
		catalogDoc("Group", "g3", "  type: team\n  parent: g2\n  children: [g1]\n") +
		catalogDoc("Group", "self", "  type: team\n  parent: self\n") +
		catalogDoc("User", "u", "  memberOf: [g2]\n") +
		catalogDoc("User", "v", "  memberOf: [self]\n")
	done := make(chan *Snapshot, 1)
	go func() { done <- snapshotOf(t, src) }()
	var snap *Snapshot
	select {
	case snap = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a cycle in the group tree hangs the store")
	}
	all := []string{"group:default/g1", "group:default/g2", "group:default/g3"}
	for _, k := range []string{"user:default/u", "group:default/g1", "group:default/g2", "group:default/g3"} {
		if got := snap.GroupsOf(k); !reflect.DeepEqual(got, all) {
			t.Errorf("GroupsOf(%s) = %v; want %v", k, got, all)
		}
	}
	if got := snap.GroupsOf("user:default/v"); !reflect.DeepEqual(got, []string{"group:default/self"}) {
		t.Errorf("GroupsOf(v) = %v", got)
	}
	for _, g := range all {
		if got := entityKeys(snap.Members(g)); !reflect.DeepEqual(got, []string{"user:default/u"}) {
			t.Errorf("Members(%s) = %v", g, got)
		}
	}
}
