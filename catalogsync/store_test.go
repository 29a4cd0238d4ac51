package catalogsync

import (
	"reflect"
	"strings"
	"sync"
	"testing"
)

// routedDoc is a routed Component document; extra is appended to its
// annotations.
func routedDoc(name, upstream, extra string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name +
		"\n  annotations:\n    gatehouse.dev/upstream: " + upstream + "\n" + extra +
		"spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n---\n"
}

func upstreamOf(e *Entity) string {
	if e == nil || e.Routing == nil || len(e.Routing.Upstreams) == 0 {
		return ""
	}
	return e.Routing.Upstreams[0].String()
}

func TestStoreLastGoodVersion(t *testing.T) {
	team := catalogDoc("Group", "team-a", "  type: team\n")
	badTimeout := "    gatehouse.dev/timeout: soon\n"
	type state struct {
		upstream string // "" = absent
		stale    bool
	}
	steps := []struct {
		name     string
		src      string
		want     map[string]state
		warnings []string // entities reported as served stale
	}{
		{"initial", team + routedDoc("orders", "http://a:1", "") + routedDoc("payments", "http://p:1", ""),
			map[string]state{"component:default/orders": {"http://a:1", false}, "component:default/payments": {"http://p:1", false}}, nil},
		{"orders rejected, payments removed", team + routedDoc("orders", "http://b:2", badTimeout),
			map[string]state{"component:default/orders": {"http://a:1", true}, "component:default/payments": {}}, []string{"component:default/orders"}},
		{"orders still broken (syntax error)", team + "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\nspec: [\n",
			map[string]state{"component:default/orders": {"http://a:1", true}}, []string{"component:default/orders"}},
		{"orders fixed", team + routedDoc("orders", "http://c:3", ""),
			map[string]state{"component:default/orders": {"http://c:3", false}}, nil},
		{"orders broken again keeps the newest good", team + routedDoc("orders", "http://d:4", badTimeout) + routedDoc("payments", "http://p:1", badTimeout),
			map[string]state{"component:default/orders": {"http://c:3", true}, "component:default/payments": {}}, []string{"component:default/orders"}},
		{"orders removed", team,
			map[string]state{"component:default/orders": {}}, nil},
		{"rejected with no good version is absent", team + routedDoc("orders", "http://e:5", badTimeout),
			map[string]state{"component:default/orders": {}}, nil},
	}
	s := NewStore("files")
	for i, st := range steps {
		snap := s.ReplaceSource("files", ParseFile("files", "c.yaml", []byte(st.src)))
		if snap.Generation != uint64(i+1) {
			t.Errorf("%s: generation %d; want %d", st.name, snap.Generation, i+1)
		}
		for key, w := range st.want {
			e := snap.Get(key)
			if w.upstream == "" {
				if e != nil {
					t.Errorf("%s: %s present (stale=%v); want absent", st.name, key, e.Stale)
				}
				continue
			}
			if e == nil {
				t.Errorf("%s: %s absent; want %s", st.name, key, w.upstream)
				continue
			}
			if upstreamOf(e) != w.upstream || e.Stale != w.stale {
				t.Errorf("%s: %s = %s stale=%v; want %s stale=%v", st.name, key, upstreamOf(e), e.Stale, w.upstream, w.stale)
			}
			// The stale version is still routed.
			if got := entityKeys(snap.ClaimsOf("*", "/orders")); key == "component:default/orders" && !reflect.DeepEqual(got, []string{key}) {
				t.Errorf("%s: ClaimsOf(* /orders) = %v", st.name, got)
			}
		}
		var stale []string
		for _, p := range snap.Problems {
			if strings.HasPrefix(p.Message, "the new version is invalid; serving the last good version read from c.yaml:") {
				if p.Severity != SeverityWarning || p.Fix == "" || p.File != "c.yaml" || p.Source != "files" {
					t.Errorf("%s: stale problem %+v", st.name, p)
				}
				stale = append(stale, p.Entity)
			}
		}
		if !reflect.DeepEqual(stale, st.warnings) {
			t.Errorf("%s: stale warnings for %v; want %v\n%v", st.name, stale, st.warnings, snap.Problems)
		}
	}
}

func TestStoreStaleIsPerSource(t *testing.T) {
	s := NewStore("a", "b")
	s.ReplaceSource("a", ParseFile("a", "a.yaml", []byte(routedDoc("orders", "http://a:1", ""))))
	// Source b rejecting an entity it never defined does not resurrect a's.
	snap := s.ReplaceSource("b", ParseFile("b", "b.yaml", []byte(routedDoc("orders", "http://b:1", "    gatehouse.dev/timeout: x\n"))))
	if e := snap.Get("component:default/orders"); upstreamOf(e) != "http://a:1" || e.Stale {
		t.Fatalf("orders = %+v", e)
	}
	snap = s.ReplaceSource("a", Parsed{})
	if e := snap.Get("component:default/orders"); e != nil {
		t.Errorf("orders still present after source a dropped it: %+v (from %s)", e, e.Origin)
	}
}

func TestStoreDuplicatesWithinSource(t *testing.T) {
	var p Parsed
	add := func(file, src string) {
		q := ParseFile("files", file, []byte(src))
		if q.Problems.Errors() > 0 {
			t.Fatalf("%s: %v", file, q.Problems)
		}
		p.Entities = append(p.Entities, q.Entities...)
	}
	// b.yaml is read first but a.yaml sorts first: the first file wins.
	add("team.yaml", catalogDoc("Group", "team-a", "  type: team\n"))
	add("b.yaml", routedDoc("orders", "http://b:1", ""))
	add("a.yaml", routedDoc("other", "http://x:1", "")+routedDoc("orders", "http://a:1", "")+routedDoc("Orders", "http://a:2", ""))
	snap := NewStore("files").ReplaceSource("files", p)
	e := snap.Get("component:default/orders")
	if upstreamOf(e) != "http://a:1" || e.Origin.File != "a.yaml" || e.Origin.Line != 12 {
		t.Fatalf("winner = %s from %s", upstreamOf(e), e.Origin)
	}
	var dups []string
	for _, pr := range snap.Problems {
		if pr.Severity != SeverityError || pr.Field != "metadata.name" || pr.Fix == "" || pr.Source != "files" {
			t.Errorf("problem %+v", pr)
		}
		dups = append(dups, pr.String())
	}
	want := []string{
		"a.yaml:23: error: component:default/Orders: metadata.name: duplicate entity; already defined at a.yaml:12, which is used (fix: rename or remove one of the two definitions)",
		"b.yaml:1: error: component:default/orders: metadata.name: duplicate entity; already defined at a.yaml:12, which is used (fix: rename or remove one of the two definitions)",
	}
	if !reflect.DeepEqual(dups, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(dups, "\n"), strings.Join(want, "\n"))
	}
	if n := len(snap.All()); n != 3 {
		t.Errorf("All() has %d entities; want 3", n)
	}
}

func TestStoreSourcePrecedence(t *testing.T) {
	cases := []struct {
		name     string
		order    []string
		load     []string // sources in load order; each defines orders with upstream http://<source>:1
		winner   string
		losers   []string
		wantSrcs []string
	}{
		{"earlier source wins though loaded later", []string{"backstage", "files"}, []string{"files", "backstage"}, "backstage", []string{"files"}, []string{"backstage", "files"}},
		{"listed beats unlisted", []string{"files"}, []string{"zeta", "files"}, "files", []string{"zeta"}, []string{"files", "zeta"}},
		{"unlisted by name", nil, []string{"zeta", "alpha", "mid"}, "alpha", []string{"mid", "zeta"}, []string{"alpha", "mid", "zeta"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStore(c.order...)
			var snap *Snapshot
			for _, src := range c.load {
				snap = s.ReplaceSource(src, ParseFile(src, src+".yaml", []byte(routedDoc("orders", "http://"+src+":1", ""))))
			}
			e := snap.Get("component:default/orders")
			if e == nil || e.Origin.Source != c.winner || upstreamOf(e) != "http://"+c.winner+":1" {
				t.Fatalf("winner = %+v; want source %s", e, c.winner)
			}
			var losers []string
			for _, p := range snap.Problems {
				if p.Severity == SeverityWarning && p.Field == "spec.owner" {
					continue // team-a is not in these catalogs
				}
				if p.Severity != SeverityError || p.Entity != "component:default/orders" || p.Fix == "" || p.File != p.Source+".yaml" || p.Line != 1 {
					t.Errorf("problem %+v", p)
				}
				want := `also defined by source "` + c.winner + `" (` + c.winner + `.yaml:1), which takes precedence`
				if p.Message != want {
					t.Errorf("message %q; want %q", p.Message, want)
				}
				losers = append(losers, p.Source)
			}
			if !reflect.DeepEqual(losers, c.losers) {
				t.Errorf("conflicts reported for %v; want %v", losers, c.losers)
			}
			if !reflect.DeepEqual(snap.Sources, c.wantSrcs) {
				t.Errorf("Sources = %v; want %v", snap.Sources, c.wantSrcs)
			}
			if n := len(snap.All()); n != 1 {
				t.Errorf("All() = %d entities", n)
			}
		})
	}
}

func TestStoreChanged(t *testing.T) {
	s := NewStore("files")
	if g := s.Snapshot().Generation; g != 0 || len(s.Snapshot().All()) != 0 {
		t.Fatalf("empty store: generation %d, %d entities", g, len(s.Snapshot().All()))
	}
	ch := s.Changed()
	if ch != s.Changed() {
		t.Error("Changed() returns a new channel without a commit")
	}
	select {
	case <-ch:
		t.Fatal("Changed() closed before any commit")
	default:
	}
	snap := s.ReplaceSource("files", ParseFile("files", "c.yaml", []byte(routedDoc("orders", "http://a:1", ""))))
	select {
	case <-ch:
	default:
		t.Fatal("Changed() not closed by the commit")
	}
	next := s.Changed()
	if next == ch {
		t.Fatal("Changed() returns the closed channel after a commit")
	}
	select {
	case <-next:
		t.Fatal("the next Changed() channel is already closed")
	default:
	}
	if s.Snapshot() != snap || snap.Generation != 1 {
		t.Errorf("Snapshot() = gen %d; want the committed gen 1", s.Snapshot().Generation)
	}
	s.ReplaceSource("files", Parsed{})
	select {
	case <-next:
	default:
		t.Fatal("second commit did not close the channel")
	}
	if s.Snapshot().Generation != 2 {
		t.Errorf("generation %d; want 2", s.Snapshot().Generation)
	}
}

func TestSnapshotImmutable(t *testing.T) {
	s := NewStore("files")
	v1 := catalogDoc("Group", "team-a", "  type: team\n") + routedDoc("orders", "http://a:1", "") + routedDoc("payments", "http://p:1", "")
	old := s.ReplaceSource("files", ParseFile("files", "c.yaml", []byte(v1)))
	oldOrders := old.Get("component:default/orders")
	oldTeamRels := relationStrings(old.Get("group:default/team-a"))

	v2 := catalogDoc("Group", "team-a", "  type: team\n") + routedDoc("orders", "http://b:2", "    gatehouse.dev/hosts: orders.example.com\n") +
		catalogDoc("User", "bob", "  memberOf: [team-a]\n")
	cur := s.ReplaceSource("files", ParseFile("files", "c.yaml", []byte(v2)))

	if old.Generation != 1 || cur.Generation != 2 {
		t.Errorf("generations %d, %d", old.Generation, cur.Generation)
	}
	if got := entityKeys(old.All()); !reflect.DeepEqual(got, []string{"component:default/orders", "component:default/payments", "group:default/team-a"}) {
		t.Errorf("old All() = %v", got)
	}
	if got := entityKeys(cur.All()); !reflect.DeepEqual(got, []string{"component:default/orders", "group:default/team-a", "user:default/bob"}) {
		t.Errorf("new All() = %v", got)
	}
	if e := old.Get("component:default/orders"); e != oldOrders || upstreamOf(e) != "http://a:1" {
		t.Errorf("old snapshot's orders changed: %s", upstreamOf(e))
	}
	if got := relationStrings(old.Get("group:default/team-a")); !reflect.DeepEqual(got, oldTeamRels) {
		t.Errorf("old team relations changed: %v -> %v", oldTeamRels, got)
	}
	if got := entityKeys(old.Members("group:default/team-a")); len(got) != 0 {
		t.Errorf("old Members = %v", got)
	}
	if got := entityKeys(cur.Members("group:default/team-a")); !reflect.DeepEqual(got, []string{"user:default/bob"}) {
		t.Errorf("new Members = %v", got)
	}
	if got := entityKeys(old.ClaimsOf("*", "/orders")); !reflect.DeepEqual(got, []string{"component:default/orders"}) {
		t.Errorf("old ClaimsOf(* /orders) = %v", got)
	}
	if got := entityKeys(cur.ClaimsOf("*", "/orders")); len(got) != 0 {
		t.Errorf("new ClaimsOf(* /orders) = %v", got)
	}
	if got := entityKeys(cur.ClaimsOf("orders.example.com", "/")); !reflect.DeepEqual(got, []string{"component:default/orders"}) {
		t.Errorf("new ClaimsOf(orders.example.com /) = %v", got)
	}
}

func TestSnapshotIndexes(t *testing.T) {
	src := catalogDoc("Group", "team-a", "  type: team\n  children: [squad]\n") +
		catalogDoc("Group", "squad", "  type: team\n  members: [bob]\n") +
		catalogDoc("Group", "team-b", "  type: team\n") +
		catalogDoc("User", "alice", "  memberOf: [team-a]\n") +
		catalogDoc("User", "bob", "  memberOf: []\n") +
		routedDoc("orders", "http://a:1", "") +
		routedDoc("orders-copy", "http://a:2", "    gatehouse.dev/path-prefix: /orders/\n") +
		routedDoc("web", "http://w:1", "    gatehouse.dev/hosts: www.example.com, example.com\n") +
		"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: batch\nspec:\n  type: job\n  lifecycle: l\n  owner: team-b\n---\n" +
		"apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: orders-api\n  annotations:\n    gatehouse.dev/path-prefix: /orders\nspec:\n  type: openapi\n  lifecycle: l\n  owner: team-a\n  definition: x\n"
	snap := snapshotOf(t, src)
	cases := []struct {
		name string
		got  []*Entity
		want []string
	}{
		{"ByKind component", snap.ByKind("component"), []string{"component:default/batch", "component:default/orders", "component:default/orders-copy", "component:default/web"}},
		{"ByKind Component", snap.ByKind("Component"), []string{"component:default/batch", "component:default/orders", "component:default/orders-copy", "component:default/web"}},
		{"ByKind API", snap.ByKind("API"), []string{"api:default/orders-api"}},
		{"ByKind group", snap.ByKind("group"), []string{"group:default/squad", "group:default/team-a", "group:default/team-b"}},
		{"ByKind none", snap.ByKind("domain"), []string{}},
		{"OwnedBy team-a", snap.OwnedBy("group:default/team-a"), []string{"api:default/orders-api", "component:default/orders", "component:default/orders-copy", "component:default/web"}},
		{"OwnedBy team-b", snap.OwnedBy("group:default/team-b"), []string{"component:default/batch"}},
		{"OwnedBy nobody", snap.OwnedBy("group:default/squad"), []string{}},
		{"Members team-a (through squad)", snap.Members("group:default/team-a"), []string{"user:default/alice", "user:default/bob"}},
		{"Members squad", snap.Members("group:default/squad"), []string{"user:default/bob"}},
		{"Members team-b", snap.Members("group:default/team-b"), []string{}},
		{"ClaimsOf shared /orders (conflict)", snap.ClaimsOf("*", "/orders"), []string{"component:default/orders", "component:default/orders-copy"}},
		{"ClaimsOf own host", snap.ClaimsOf("example.com", "/"), []string{"component:default/web"}},
		{"ClaimsOf other host", snap.ClaimsOf("www.example.com", "/"), []string{"component:default/web"}},
		{"ClaimsOf nothing", snap.ClaimsOf("*", "/web"), []string{}},
		{"Routed", snap.Routed(), []string{"component:default/orders", "component:default/orders-copy", "component:default/web"}},
	}
	for _, c := range cases {
		if got := entityKeys(c.got); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, got, c.want)
		}
	}
	gets := map[string]string{
		"component:default/orders": "component:default/orders",
		"Component:Default/ORDERS": "component:default/orders",
		"user:bob":                 "user:default/bob",
		"orders":                   "", // no kind
		"component:default/nope":   "",
		"a:b:c":                    "",
	}
	for in, want := range gets {
		e := snap.Get(in)
		got := ""
		if e != nil {
			got = e.Ref().Key()
		}
		if got != want {
			t.Errorf("Get(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestStoreConcurrentReaders(t *testing.T) {
	s := NewStore("files")
	docs := []string{routedDoc("orders", "http://a:1", ""), routedDoc("orders", "http://b:1", "") + routedDoc("payments", "http://p:1", "")}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Snapshot()
				n := len(snap.All())
				if n2 := len(snap.Routed()); n2 != n {
					t.Errorf("snapshot %d: All %d but Routed %d", snap.Generation, n, n2)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		s.ReplaceSource("files", ParseFile("files", "c.yaml", []byte(docs[i%2])))
	}
	close(stop)
	wg.Wait()
	if g := s.Snapshot().Generation; g != 50 {
		t.Errorf("generation %d; want 50", g)
	}
}

// A commit rewrites only the rows that changed: an entity of a file that
// did not change keeps its stored value, unless its relations or groups
// changed because of another entity (here a user joins its group).
func TestStoreCommitsOnlyChangedRows(t *testing.T) {
	groupDoc := "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team}\nspec: {type: team, children: []}\n"
	user := func(name, group string) string {
		return "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: " + name + "}\nspec: {memberOf: [" + group + "]}\n"
	}
	groups := ParseFile("files", "groups.yaml", []byte(groupDoc))
	orders := ParseFile("files", "orders.yaml", []byte(routedDoc("orders", "http://a:1", "")))
	merge := func(ps ...Parsed) Parsed {
		var out Parsed
		for _, p := range ps {
			out.Entities = append(out.Entities, p.Entities...)
		}
		return out
	}
	s := NewStore("files")
	first := s.ReplaceSource("files", merge(groups, orders, ParseFile("files", "u.yaml", []byte(user("alice", "team")))))
	// bob joins: a new file; groups.yaml and orders.yaml are the same parsed values.
	second := s.ReplaceSource("files", merge(groups, orders, ParseFile("files", "u.yaml", []byte(user("alice", "team")+"---\n"+user("bob", "team")))))
	if a, b := first.Get("component:default/orders"), second.Get("component:default/orders"); a == nil || a != b {
		t.Fatalf("an unchanged entity was written again (%p -> %p)", a, b)
	}
	team := second.Get("group:default/team")
	if team == first.Get("group:default/team") {
		t.Fatal("the group kept its old row although a member joined")
	}
	if got := team.RelationTargets(RelHasMember); len(got) != 2 {
		t.Fatalf("group members after bob joined: %v", got)
	}
	if g := second.GroupsOf("user:default/bob"); len(g) != 1 || g[0] != "group:default/team" {
		t.Fatalf("bob's groups: %v", g)
	}
}
