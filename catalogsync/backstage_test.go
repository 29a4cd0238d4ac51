package catalogsync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gopkg.in/yaml.v3"
)

// fakeBackstage answers /api/catalog/entities/by-query and /by-refs with the
// response shapes Backstage publishes (items, totalItems, pageInfo.nextCursor;
// by-refs items in request order, null for unknown refs).
type fakeBackstage struct {
	mu       sync.Mutex
	entities map[string]map[string]any // ref -> entity
	fail     bool
	listings atomic.Int64
	fetched  atomic.Int64
	noLimit  atomic.Int64
}

func newFakeBackstage() *fakeBackstage { return &fakeBackstage{entities: map[string]map[string]any{}} }

func (f *fakeBackstage) put(name, upstream string, etag int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entities["component:default/"+name] = map[string]any{
		"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
		"metadata": map[string]any{"name": name, "namespace": "default", "uid": "uid-" + name, "etag": strconv.Itoa(etag),
			"annotations": map[string]string{"gatehouse.dev/upstream": upstream}},
		"spec":      map[string]any{"type": "service", "lifecycle": "production", "owner": "team"},
		"relations": []any{map[string]string{"type": "ownedBy", "targetRef": "group:default/team"}},
	}
}

func (f *fakeBackstage) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entities, "component:default/"+name)
}

func (f *fakeBackstage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer secret-token" {
		http.Error(w, `{"error":{"name":"AuthenticationError"}}`, 401)
		return
	}
	if f.fail {
		http.Error(w, "boom", 503)
		return
	}
	refs := make([]string, 0, len(f.entities))
	for k := range f.entities {
		refs = append(refs, k)
	}
	sort.Strings(refs)
	switch r.URL.Path {
	case "/api/catalog/entities/by-query":
		f.listings.Add(1)
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil {
			f.noLimit.Add(1)
			limit = 20 // Backstage's default page size
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		end := min(start+limit, len(refs))
		var items []map[string]any
		whole := r.URL.Query().Get("fields") == ""
		for _, ref := range refs[start:end] {
			e := f.entities[ref]
			if whole {
				items = append(items, e) // whole entities
				continue
			}
			md := e["metadata"].(map[string]any)
			items = append(items, map[string]any{"kind": e["kind"], "metadata": map[string]any{"name": md["name"], "namespace": md["namespace"], "uid": md["uid"], "etag": md["etag"]}})
		}
		resp := map[string]any{"items": items, "totalItems": len(refs), "pageInfo": map[string]any{}}
		if end < len(refs) {
			resp["pageInfo"] = map[string]any{"nextCursor": strconv.Itoa(end)}
		}
		_ = json.NewEncoder(w).Encode(resp)
	case "/api/catalog/entities/by-refs":
		var req struct{ EntityRefs []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		items := make([]any, len(req.EntityRefs))
		for i, ref := range req.EntityRefs {
			if e, ok := f.entities[ref]; ok {
				items[i] = e
				f.fetched.Add(1)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	default:
		http.NotFound(w, r)
	}
}

func newBS(t testing.TB, f *fakeBackstage) (*BackstageSource, *Store) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &BackstageSource{Name: "backstage", BaseURL: srv.URL, Token: "secret-token", PageSize: 100}, NewStore("files", "backstage")
}

func TestBackstagePaginationAndCheapPolls(t *testing.T) {
	f := newFakeBackstage()
	for i := 0; i < 1234; i++ {
		f.put(fmt.Sprintf("svc-%04d", i), "http://10.0.0.1:80", 1)
	}
	b, store := newBS(t, f)
	changed, err := b.Sync(context.Background(), store)
	if err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	if n := len(store.Snapshot().ByKind("component")); n != 1234 {
		t.Fatalf("%d components after a paginated sync, want 1234", n)
	}
	if f.listings.Load() != 13 || f.noLimit.Load() != 0 {
		t.Fatalf("%d pages listed (%d without limit), want 13 with limit", f.listings.Load(), f.noLimit.Load())
	}
	// The first poll lists whole entities: no by-refs pass.
	if f.fetched.Load() != 0 || b.Status().Fetched != 1234 {
		t.Fatalf("first sync fetched %d entities by ref (want 0) and read %d (want 1234)", f.fetched.Load(), b.Status().Fetched)
	}
	// Nothing changed: one listing pass, no entity fetched, no new generation.
	gen, fetched := store.Snapshot().Generation, f.fetched.Load()
	if changed, err := b.Sync(context.Background(), store); err != nil || changed {
		t.Fatalf("idle poll: changed=%v err=%v", changed, err)
	}
	if f.fetched.Load() != fetched || store.Snapshot().Generation != gen {
		t.Fatal("an idle poll fetched entities or committed a generation")
	}
	// One etag changes: one entity fetched.
	f.put("svc-0007", "http://10.0.0.9:80", 2)
	if changed, _ := b.Sync(context.Background(), store); !changed {
		t.Fatal("a changed etag was not picked up")
	}
	if f.fetched.Load() != fetched+1 {
		t.Fatalf("fetched %d entities for one change", f.fetched.Load()-fetched)
	}
	if up := store.Snapshot().Get("component:default/svc-0007").Routing.Upstreams[0].Host; up != "10.0.0.9" {
		t.Fatalf("changed entity not applied: %s", up)
	}
}

func TestBackstageDeletionsAndFailures(t *testing.T) {
	f := newFakeBackstage()
	for _, n := range []string{"a", "b", "c", "d"} {
		f.put(n, "http://10.0.0.1:80", 1)
	}
	b, store := newBS(t, f)
	ctx := context.Background()
	if _, err := b.Sync(ctx, store); err != nil {
		t.Fatal(err)
	}
	f.remove("a")
	b.Sync(ctx, store)
	if store.Snapshot().Get("component:default/a") != nil {
		t.Fatal("a small deletion was not applied")
	}
	// 3 of 3 gone at once (a half-empty catalog during an outage?): held.
	f.remove("b")
	f.remove("c")
	f.remove("d")
	b.Sync(ctx, store)
	if store.Snapshot().Get("component:default/b") == nil || b.Status().HeldDeletions != 3 {
		t.Fatalf("a mass deletion was applied at once (held %d)", b.Status().HeldDeletions)
	}
	// Confirmed by the next poll: applied.
	b.Sync(ctx, store)
	if store.Snapshot().Get("component:default/b") != nil || b.Status().HeldDeletions != 0 {
		t.Fatal("a confirmed mass deletion was not applied")
	}
	// Backstage fails: the catalog stays, the error is visible.
	f.put("e", "http://10.0.0.1:80", 1)
	b.Sync(ctx, store)
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	gen := store.Snapshot().Generation
	if _, err := b.Sync(ctx, store); err == nil {
		t.Fatal("a failing Backstage gave no error")
	}
	st := b.Status()
	if store.Snapshot().Generation != gen || store.Snapshot().Get("component:default/e") == nil || !strings.Contains(st.LastError, "503") || st.LastSuccess.IsZero() {
		t.Fatalf("after a failed poll: gen %d->%d, status %+v", gen, store.Snapshot().Generation, st)
	}
	// A wrong token says how to fix it.
	b.Token = "wrong"
	if _, err := b.Sync(ctx, store); err == nil || !strings.Contains(err.Error(), "externalAccess") {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestBackstageInvalidEntityKeepsLastGood(t *testing.T) {
	f := newFakeBackstage()
	f.put("a", "http://10.0.0.1:80", 1)
	f.put("b", "http://10.0.0.2:80", 1)
	b, store := newBS(t, f)
	ctx := context.Background()
	b.Sync(ctx, store)
	f.put("a", "ftp://nope", 2)
	b.Sync(ctx, store)
	a := store.Snapshot().Get("component:default/a")
	if a == nil || !a.Stale || a.Routing.Upstreams[0].Host != "10.0.0.1" {
		t.Fatalf("last good version of a not kept: %+v", a)
	}
	found := false
	for _, p := range store.Snapshot().Problems {
		found = found || (p.Entity == "component:default/a" && p.Source == "backstage" && strings.Contains(p.Message, "ftp"))
	}
	if !found || store.Snapshot().Get("component:default/b") == nil {
		t.Fatalf("problem not reported or b lost: %v", store.Snapshot().Problems)
	}
}

// Backstage rebuilt with an in-memory database: every entity comes back under
// a new uid. That replaces entities, it deletes none (no hold, no duplicates).
func TestBackstageNewUIDsReplace(t *testing.T) {
	f := newFakeBackstage()
	for _, n := range []string{"a", "b", "c"} {
		f.put(n, "http://10.0.0.1:80", 1)
	}
	b, store := newBS(t, f)
	ctx := context.Background()
	b.Sync(ctx, store)
	f.mu.Lock()
	for _, e := range f.entities {
		md := e["metadata"].(map[string]any)
		md["uid"] = "new-" + md["uid"].(string)
	}
	f.mu.Unlock()
	b.Sync(ctx, store)
	snap := store.Snapshot()
	if len(snap.ByKind("component")) != 3 || b.Status().HeldDeletions != 0 {
		t.Fatalf("components %d, held %d", len(snap.ByKind("component")), b.Status().HeldDeletions)
	}
	for _, p := range snap.Problems {
		if strings.Contains(p.Message, "duplicate") {
			t.Fatalf("recreated entities reported as duplicates: %s", p)
		}
	}
}

// jsonNode must build the tree yaml.Unmarshal builds from the same JSON, so
// that entities from Backstage are read exactly like before (and like files).
func TestJSONNodeMatchesYAML(t *testing.T) {
	docs := []string{
		`{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u-1","etag":"e1",` +
			`"annotations":{"gatehouse.dev/upstream":"http://10.0.0.1:80","gatehouse.dev/access":"- {allow: [group:default/x], methods: [GET]}\n","x":"caf\u00e9 \"q\" \\ \t"},` +
			`"labels":{},"tags":["a","b"]},"spec":{"type":"service","lifecycle":"production","owner":"team","providesApis":[],"n":-12,"f":1.5e3,"g":0.25,"t":true,"u":false,"z":null,"nested":[[1,{"a":[]}],{}]},` +
			`"relations":[{"type":"ownedBy","targetRef":"group:default/team","target":{"kind":"group","namespace":"default","name":"team"}}]}`,
		`{"kind":"Component","metadata":{"name":"dup","name":"dup2"}}`,
		`{"kind":"Component","metadata":{"name":["not","a","string"]},"spec":{"owner":{"a":1}}}`,
		` { "kind" : "API" , "metadata" : { "name" : "spaced" } } `,
		`[]`, `"str"`, `7`,
	}
	for _, d := range docs {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(d), &doc); err != nil {
			t.Fatalf("yaml: %v", err)
		}
		got, err := jsonNode([]byte(d))
		if err != nil {
			t.Fatalf("jsonNode(%s): %v", d, err)
		}
		if diff := nodeDiff(doc.Content[0], got, "$"); diff != "" {
			t.Errorf("%s:\n%s", d, diff)
		}
		// And what parseDocument makes of both.
		e1, p1 := parseDocument("backstage", "", doc.Content[0])
		e2, p2 := parseDocument("backstage", "", got)
		if !reflect.DeepEqual(e1, e2) || fmt.Sprint(p1) != fmt.Sprint(p2) {
			t.Errorf("%s: parseDocument differs:\n%+v %v\n%+v %v", d, e1, p1, e2, p2)
		}
	}
	// yaml.v3 rejects an escaped surrogate pair and "\/" (valid JSON); jsonNode reads them.
	if n, err := jsonNode([]byte(`"\ud83d\ude00 \/"`)); err != nil || n.Value != "\U0001F600 /" {
		t.Errorf("surrogate pair, escaped slash: %v %v", err, n)
	}
	for _, bad := range []string{``, `{`, `{"a":}`, `{"a":1}{}`, `{"a" 1}`, `[1,]`} {
		if _, err := jsonNode([]byte(bad)); err == nil {
			t.Errorf("jsonNode(%q) accepted invalid JSON", bad)
		}
	}
}

func nodeDiff(want, got *yaml.Node, path string) string {
	if want.Kind != got.Kind || want.ShortTag() != got.ShortTag() || want.Value != got.Value || want.Style != got.Style ||
		want.Line != got.Line || len(want.Content) != len(got.Content) {
		return fmt.Sprintf("%s: want kind %v tag %s value %q style %v line %d len %d; got kind %v tag %s value %q style %v line %d len %d", path,
			want.Kind, want.ShortTag(), want.Value, want.Style, want.Line, len(want.Content), got.Kind, got.ShortTag(), got.Value, got.Style, got.Line, len(got.Content))
	}
	for i := range want.Content {
		if d := nodeDiff(want.Content[i], got.Content[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// putLikeBackstage stores a component shaped like the ones a real Backstage
// serves for bench/catgen's catalog: location annotations, an access rule,
// APIs and the relations Backstage adds.
func (f *fakeBackstage) putLikeBackstage(i, etag int) {
	name := fmt.Sprintf("svc-%05d", i)
	loc := "file:/tmp/backstagesync-123456/catalog.yaml"
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entities["component:default/"+name] = map[string]any{
		"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
		"metadata": map[string]any{"name": name, "namespace": "default", "uid": fmt.Sprintf("0b6e5c1a-%04d-4e3b-9a51-%012d", i%10000, i), "etag": fmt.Sprintf("%040x", etag*7919+i),
			"annotations": map[string]string{
				"gatehouse.dev/upstream": fmt.Sprintf("http://127.0.0.1:%d", 10000+i%50000), "gatehouse.dev/timeout": fmt.Sprintf("%ds", 5+etag%50),
				"gatehouse.dev/access":             fmt.Sprintf("- {allow: [group:default/team-%04d], methods: [GET], paths: [\"/%s/**\"]}\n", i%300, name),
				"backstage.io/managed-by-location": loc, "backstage.io/managed-by-origin-location": loc,
				"backstage.io/view-url": loc, "backstage.io/edit-url": loc, "backstage.io/source-location": "file:/tmp/backstagesync-123456/"}},
		"spec": map[string]any{"type": "service", "lifecycle": "production", "owner": fmt.Sprintf("team-%04d", i%300),
			"providesApis": []string{name + "-api-0"}, "consumesApis": []string{fmt.Sprintf("svc-%05d-api-0", (i+1)%10000)}},
		"relations": []any{
			map[string]any{"type": "ownedBy", "targetRef": fmt.Sprintf("group:default/team-%04d", i%300), "target": map[string]string{"kind": "group", "namespace": "default", "name": fmt.Sprintf("team-%04d", i%300)}},
			map[string]any{"type": "providesApi", "targetRef": "api:default/" + name + "-api-0", "target": map[string]string{"kind": "api", "namespace": "default", "name": name + "-api-0"}},
			map[string]any{"type": "consumesApi", "targetRef": fmt.Sprintf("api:default/svc-%05d-api-0", (i+1)%10000), "target": map[string]string{"kind": "api", "namespace": "default", "name": fmt.Sprintf("svc-%05d-api-0", (i+1)%10000)}},
		},
	}
	if i%10 != 5 { // as in bench/catgen: one component in ten has an access rule
		delete(f.entities["component:default/"+name]["metadata"].(map[string]any)["annotations"].(map[string]string), "gatehouse.dev/access")
	}
}

// BenchmarkBackstageSync: gatehouse's side of polling a 10k-entity Backstage
// (a fake on loopback; bench/backstagesync measures against the real one).
func BenchmarkBackstageSync(b *testing.B) {
	const n = 10000
	f := newFakeBackstage()
	for i := 0; i < n; i++ {
		f.putLikeBackstage(i, 1)
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			src, store := newBS(b, f)
			src.PageSize, src.Logger = 500, quiet
			if _, err := src.Sync(ctx, store); err != nil || src.Status().Entities != n {
				b.Fatalf("%v, %d entities", err, src.Status().Entities)
			}
		}
	})
	src, store := newBS(b, f)
	src.PageSize, src.Logger = 500, quiet
	if _, err := src.Sync(ctx, store); err != nil {
		b.Fatal(err)
	}
	b.Run("idle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if changed, err := src.Sync(ctx, store); err != nil || changed {
				b.Fatal(changed, err)
			}
		}
	})
	b.Run("one-changed", func(b *testing.B) {
		b.ReportAllocs()
		etag := 1
		for b.Loop() {
			etag++
			f.putLikeBackstage(4321, etag)
			if changed, err := src.Sync(ctx, store); err != nil || !changed {
				b.Fatal(changed, err)
			}
		}
	})
}

// BenchmarkBackstageEntityJSON: turning one entity as Backstage serves it
// into the yaml.Node parseDocument reads, with yaml.v3 (before) and jsonNode.
func BenchmarkBackstageEntityJSON(b *testing.B) {
	f := newFakeBackstage()
	f.putLikeBackstage(5, 1)
	raw, _ := json.Marshal(f.entities["component:default/svc-00005"])
	b.Run("yaml.v3", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var doc yaml.Node
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonNode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonNode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
