package catalogsync

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRefParsing(t *testing.T) {
	cases := []struct {
		in, defKind, defNS string
		want               string // Key(), or "error: substring"
	}{
		{"component:default/orders", "", "", "component:default/orders"},
		{"Component:Default/Orders", "", "", "component:default/orders"},
		{"orders", "group", "", "group:default/orders"},
		{"payments/orders", "api", "", "api:payments/orders"},
		{"orders", "group", "team-ns", "group:team-ns/orders"},
		{"user:bob", "", "", "user:default/bob"},
		{"orders", "", "", "error: has no kind"},
		{":default/x", "", "", "error: empty kind"},
		{"component:/x", "", "", "error: empty namespace"},
		{"component:ns/", "", "", "error: empty name"},
		{"a:b:c", "", "", "error: malformed name"},
		{"  ", "group", "", "error: empty entity ref"},
	}
	for _, c := range cases {
		r, err := ParseRef(c.in, c.defKind, c.defNS)
		if strings.HasPrefix(c.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("ParseRef(%q): err %v, want %q", c.in, err, c.want)
			}
			continue
		}
		if err != nil || r.Key() != c.want {
			t.Errorf("ParseRef(%q, %q) = %q, %v; want %q", c.in, c.defKind, r.Key(), err, c.want)
		}
	}
	a, _ := ParseRef("Component:Default/Orders", "", "")
	if a.String() != "component:Default/Orders" || a.Kind != KindComponent {
		t.Errorf("String keeps the case of namespace and name: %q (kind %q)", a.String(), a.Kind)
	}
}

const relCatalog = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: platform}
spec: {type: department, children: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, parent: platform, children: [], members: [carol]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: oncall}
spec: {type: team, parent: payments, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {memberOf: [oncall]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: carol}
spec: {}
---
apiVersion: backstage.io/v1alpha1
kind: Domain
metadata: {name: commerce}
spec: {owner: platform}
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: pay}
spec: {owner: payments, domain: commerce}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: orders}
spec: {type: service, lifecycle: production, owner: payments, system: pay, providesApis: [orders-api], dependsOn: [resource:db]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: checkout}
spec: {type: service, lifecycle: production, owner: Payments, consumesApis: [Orders-API], subcomponentOf: orders, dependsOn: [component:ghost]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: orders-api}
spec: {type: openapi, lifecycle: production, owner: payments, system: pay, definition: x}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: {name: db}
spec: {type: database, owner: payments}
`

func loadString(t *testing.T, yaml string) *Snapshot {
	t.Helper()
	p := ParseFile("files", "catalog.yaml", []byte(yaml))
	return NewStore("files").ReplaceSource("files", p)
}

func rels(e *Entity) map[string][]string {
	out := map[string][]string{}
	for _, r := range e.Relations {
		out[r.Type] = append(out[r.Type], r.TargetRef)
	}
	return out
}

func TestRelationsBothWays(t *testing.T) {
	snap := loadString(t, relCatalog)
	check := func(ref, typ string, want ...string) {
		t.Helper()
		e := snap.Get(ref)
		if e == nil {
			t.Fatalf("%s not in the catalog", ref)
		}
		if got := rels(e)[typ]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s = %v, want %v", ref, typ, got, want)
		}
	}
	check("component:default/orders", RelOwnedBy, "group:default/payments")
	check("group:default/payments", RelOwnerOf, "api:default/orders-api", "component:default/checkout", "component:default/orders", "resource:default/db", "system:default/pay")
	check("user:default/alice", RelMemberOf, "group:default/oncall")
	check("group:default/oncall", RelHasMember, "user:default/alice")
	check("user:default/carol", RelMemberOf, "group:default/payments") // from Group.spec.members
	check("group:default/payments", RelChildOf, "group:default/platform")
	check("group:default/platform", RelParentOf, "group:default/payments")
	check("component:default/orders", RelProvidesAPI, "api:default/orders-api")
	check("api:default/orders-api", RelAPIProvidedBy, "component:default/orders")
	check("component:default/checkout", RelConsumesAPI, "api:default/orders-api") // case-insensitive ref
	check("api:default/orders-api", RelAPIConsumedBy, "component:default/checkout")
	check("system:default/pay", RelHasPart, "api:default/orders-api", "component:default/orders")
	check("system:default/pay", RelPartOf, "domain:default/commerce")
	check("component:default/checkout", RelPartOf, "component:default/orders")
	check("component:default/orders", RelDependsOn, "resource:default/db")
	check("resource:default/db", RelDependencyOf, "component:default/orders")

	// Transitive groups: alice (oncall) is in payments and platform too.
	if got := snap.GroupsOf("user:default/alice"); !reflect.DeepEqual(got, []string{"group:default/oncall", "group:default/payments", "group:default/platform"}) {
		t.Errorf("GroupsOf(alice) = %v", got)
	}
	var members []string
	for _, u := range snap.Members("group:default/platform") {
		members = append(members, u.Ref().Key())
	}
	if !reflect.DeepEqual(members, []string{"user:default/alice", "user:default/carol"}) {
		t.Errorf("Members(platform) = %v", members)
	}
	// A ref to a missing entity is kept and reported.
	found := false
	for _, p := range snap.Problems {
		if p.Entity == "component:default/checkout" && strings.Contains(p.Message, "component:default/ghost") && p.Severity == SeverityWarning {
			found = true
		}
	}
	if !found {
		t.Errorf("dangling ref not reported: %v", snap.Problems)
	}
	if len(snap.OwnedBy("group:default/payments")) != 5 || len(snap.ByKind("group")) != 3 {
		t.Errorf("indexes: owned %d groups %d", len(snap.OwnedBy("group:default/payments")), len(snap.ByKind("group")))
	}
}

func TestGroupCycleTerminates(t *testing.T) {
	snap := loadString(t, `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: a}
spec: {type: team, parent: b, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: b}
spec: {type: team, parent: a, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: u}
spec: {memberOf: [a]}
`)
	if got := snap.GroupsOf("user:default/u"); !reflect.DeepEqual(got, []string{"group:default/a", "group:default/b"}) {
		t.Fatalf("GroupsOf with a cycle = %v", got)
	}
}

func TestValidationProblems(t *testing.T) {
	doc := func(body string) string { return "apiVersion: backstage.io/v1alpha1\n" + body }
	cases := []struct {
		name, yaml    string
		line          int
		field, substr string
	}{
		{"missing kind", "apiVersion: backstage.io/v1alpha1\nmetadata: {name: x}\n", 1, "kind", "missing"},
		{"bad apiVersion", "apiVersion: v1\nkind: Component\nmetadata: {name: x}\nspec: {type: s, lifecycle: l, owner: o}\n", 1, "apiVersion", "unsupported"},
		{"invalid name", doc("kind: Component\nmetadata:\n  name: bad_name!\nspec: {type: s, lifecycle: l, owner: o}\n"), 4, "metadata.name", "invalid name"},
		{"missing owner", doc("kind: Component\nmetadata: {name: x}\nspec:\n  type: s\n  lifecycle: l\n"), 4, "spec.owner", "required for kind Component"},
		{"bad ref", doc("kind: Component\nmetadata: {name: x}\nspec:\n  type: s\n  lifecycle: l\n  owner: o\n  consumesApis:\n    - ok-api\n    - 'a:b:c'\n"), 10, "spec.consumesApis", "malformed"},
		{"wrong type", doc("kind: Component\nmetadata: {name: x}\nspec:\n  type: s\n  lifecycle: l\n  owner: o\n  providesApis: one\n"), 8, "spec.providesApis", "wrong type"},
		{"bad upstream", doc("kind: Component\nmetadata:\n  name: x\n  annotations:\n    gatehouse.dev/upstream: ftp://h\nspec: {type: s, lifecycle: l, owner: o}\n"), 6, "metadata.annotations[gatehouse.dev/upstream]", "scheme"},
		{"bad access rule", doc("kind: Component\nmetadata:\n  name: x\n  annotations:\n    gatehouse.dev/upstream: http://h:1\n    gatehouse.dev/access: '[{allow: [group:default/a], methods: [FETCH]}]'\nspec: {type: s, lifecycle: l, owner: o}\n"), 7, "metadata.annotations[gatehouse.dev/access]", "unknown method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseFile("files", "f.yaml", []byte(c.yaml))
			if len(p.Entities) != 0 {
				t.Fatalf("invalid entity accepted: %+v", p.Entities[0])
			}
			for _, pr := range p.Problems {
				if pr.Field == c.field && strings.Contains(pr.Message, c.substr) {
					if pr.Line != c.line || pr.File != "f.yaml" || pr.Fix == "" || pr.Severity != SeverityError {
						t.Fatalf("problem %s: line %d (want %d), fix %q", pr, pr.Line, c.line, pr.Fix)
					}
					return
				}
			}
			t.Fatalf("no problem on %s containing %q: %v", c.field, c.substr, p.Problems)
		})
	}
}

func TestOneBadDocumentDoesNotHideOthers(t *testing.T) {
	good := func(n string) string {
		return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: " + n + "}\nspec: {type: s, lifecycle: l, owner: o}\n"
	}
	data := good("first") + "---\n" + "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\n  annotations: {a: [x\nspec: {}\n" + "---\n" + good("third")
	p := ParseFile("files", "f.yaml", []byte(data))
	var names []string
	for _, e := range p.Entities {
		names = append(names, e.Metadata.Name)
	}
	if !reflect.DeepEqual(names, []string{"first", "third"}) {
		t.Fatalf("entities around a syntax error: %v (problems %v)", names, p.Problems)
	}
	if len(p.Rejected) != 1 || p.Rejected[0].Key() != "component:default/broken" {
		t.Fatalf("the broken document's ref is not known: %v", p.Rejected)
	}
}

func TestLastGoodVersionKept(t *testing.T) {
	s := NewStore("files")
	v1 := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations: {gatehouse.dev/upstream: 'http://10.0.0.1:80'}\nspec: {type: s, lifecycle: l, owner: o}\n"
	snap1 := s.ReplaceSource("files", ParseFile("files", "f.yaml", []byte(v1)))
	bad := strings.Replace(v1, "http://10.0.0.1:80", "ftp://x", 1)
	snap2 := s.ReplaceSource("files", ParseFile("files", "f.yaml", []byte(bad)))
	e := snap2.Get("component:default/orders")
	if e == nil || !e.Stale || e.Routing.Upstreams[0].Host != "10.0.0.1" {
		t.Fatalf("last good version not kept: %+v", e)
	}
	// The old snapshot did not change.
	if o := snap1.Get("component:default/orders"); o == nil || o.Stale {
		t.Fatalf("snapshot 1 changed after a later commit: %+v", o)
	}
	// Removing the entity removes it, stale or not.
	snap3 := s.ReplaceSource("files", ParseFile("files", "f.yaml", nil))
	if snap3.Get("component:default/orders") != nil {
		t.Fatal("a removed entity is still served")
	}
	if snap3.Generation != 3 {
		t.Fatalf("generation %d", snap3.Generation)
	}
}

func TestSourcesAndDuplicates(t *testing.T) {
	c := func(n, up string) string {
		return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + n + "\n  annotations: {gatehouse.dev/upstream: '" + up + "'}\nspec: {type: s, lifecycle: l, owner: o}\n"
	}
	s := NewStore("files", "backstage")
	ch := s.Changed()
	s.ReplaceSource("backstage", ParseFile("backstage", "", []byte(c("orders", "http://10.0.0.2:80"))))
	select {
	case <-ch:
	default:
		t.Fatal("Changed() not closed by a commit")
	}
	snap := s.ReplaceSource("files", ParseFile("files", "a.yaml", []byte(c("orders", "http://10.0.0.1:80")+"---\n"+c("orders", "http://10.0.0.3:80"))))
	e := snap.Get("component:default/orders")
	if e.Origin.Source != "files" || e.Routing.Upstreams[0].Host != "10.0.0.1" {
		t.Fatalf("precedence: got %s from %s", e.Routing.Upstreams[0].Host, e.Origin.Source)
	}
	var dup, conflict bool
	for _, p := range snap.Problems {
		dup = dup || strings.Contains(p.Message, "duplicate entity")
		conflict = conflict || strings.Contains(p.Message, `also defined by source "files"`)
	}
	if !dup || !conflict {
		t.Fatalf("duplicate %v / source conflict %v not reported: %v", dup, conflict, snap.Problems)
	}
	if got := snap.ClaimsOf("*", "/orders"); len(got) != 1 {
		t.Fatalf("route index: %d claims", len(got))
	}
}

func TestFileSourceLocations(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(dir, rel)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	comp := func(n string) string {
		return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: " + n + "}\nspec: {type: s, lifecycle: l, owner: o}\n"
	}
	loc := func(n string, targets ...string) string {
		return "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: " + n + "}\nspec:\n  targets: [" + strings.Join(targets, ", ") + "]\n"
	}
	write("root.yaml", loc("root", "./teams/*.yaml", "./missing.yaml", "./root.yaml"))
	write("teams/a.yaml", comp("a"))
	write("teams/b.yaml", comp("b")+"---\n"+loc("back", "../root.yaml"))
	src := &FileSource{Name: "files", Paths: []string{filepath.Join(dir, "root.yaml")}}
	p, fp1 := src.Load()
	var names []string
	for _, e := range p.Entities {
		names = append(names, e.Metadata.Name)
	}
	if !reflect.DeepEqual(names, []string{"root", "a", "b", "back"}) {
		t.Fatalf("entities via Locations (with a cycle): %v", names)
	}
	var missing bool
	for _, pr := range p.Problems {
		missing = missing || (pr.Field == "spec.target" && strings.Contains(pr.Message, "missing.yaml") && strings.HasSuffix(pr.File, "root.yaml"))
	}
	if !missing {
		t.Fatalf("missing target not reported at the Location: %v", p.Problems)
	}
	if _, fp2 := src.Load(); fp2 != fp1 {
		t.Fatal("fingerprint changed without a change")
	}
	write("teams/c.yaml", comp("c"))
	if _, fp3 := src.Load(); fp3 == fp1 {
		t.Fatal("a new file matched by a glob did not change the fingerprint")
	}
}

// ParseFile never panics, and never accepts an entity without a kind and a
// valid name.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(relCatalog))
	f.Add([]byte("---\n---\nkind: [\n"))
	f.Add([]byte("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: x, annotations: {gatehouse.dev/access: '- allow: []'}}\nspec: {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := ParseFile("files", "f.yaml", data)
		for _, e := range p.Entities {
			if e.Kind == "" || !validName(e.Metadata.Name) {
				t.Fatalf("accepted %q/%q", e.Kind, e.Metadata.Name)
			}
		}
	})
}

// A directory mounted from a Kubernetes ConfigMap: the files are symlinks
// into a hidden ..<timestamp>/ directory, which must not be read twice.
func TestDirectorySkipsHiddenEntries(t *testing.T) {
	dir := t.TempDir()
	hidden := filepath.Join(dir, "..2026_11_23_09_00_00.123")
	if err := os.MkdirAll(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: a}\nspec: {type: s, lifecycle: l, owner: o}\n"
	if err := os.WriteFile(filepath.Join(hidden, "a.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(hidden), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "a.yaml"), filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	p, _ := (&FileSource{Name: "files", Paths: []string{dir}}).Load()
	if len(p.Entities) != 1 || len(p.Problems) != 0 {
		t.Fatalf("entities %d, problems %v", len(p.Entities), p.Problems)
	}
}

// The poller reads every file each interval; a file whose bytes did not
// change is not parsed again, and a changed one is.
func TestFileSourceParsesOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	comp := func(n, typ string) []byte {
		return []byte("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: " + n + "}\nspec: {type: " + typ + ", lifecycle: l, owner: o}\n")
	}
	_ = os.WriteFile(a, comp("a", "s"), 0o644)
	_ = os.WriteFile(b, comp("b", "s"), 0o644)
	src := &FileSource{Name: "files", Paths: []string{dir}}
	p1, _ := src.Load()
	_ = os.WriteFile(b, comp("b", "website"), 0o644)
	p2, _ := src.Load()
	if p1.Entities[0] != p2.Entities[0] {
		t.Error("the unchanged file was parsed again")
	}
	if p1.Entities[1] == p2.Entities[1] || p2.Entities[1].Spec.Type != "website" {
		t.Error("the changed file was not parsed again")
	}
	_ = os.Remove(a)
	p3, _ := src.Load()
	if len(p3.Entities) != 1 || p3.ReadErrors != 0 {
		t.Errorf("after removing a file: %d entities, %d read errors", len(p3.Entities), p3.ReadErrors)
	}
}
