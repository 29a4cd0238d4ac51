package catalogsync

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
		for _, ref := range refs[start:end] {
			e := f.entities[ref]
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

func newBS(t *testing.T, f *fakeBackstage) (*BackstageSource, *Store) {
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
