package catalogsync

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func groupDoc(name string) string { return catalogDoc("Group", name, "  type: team\n") }

// locationDoc is a Location whose targets are given; its document starts on
// the first line of the file it is written first in.
func locationDoc(name string, targets ...string) string {
	spec := "  type: file\n  targets:\n"
	for _, t := range targets {
		spec += "    - " + t + "\n"
	}
	return catalogDoc("Location", name, spec)
}

// writeTree writes files (relative path -> content) below dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedKeysOf(es []*Entity) []string {
	k := entityKeys(es)
	sort.Strings(k)
	return k
}

func TestFileSourceLoadPaths(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.yaml":            groupDoc("a"),
		"sub/b.yml":         groupDoc("b"),
		"sub/deep/c.yaml":   groupDoc("c"),
		"sub/notes.txt":     groupDoc("txt-ignored"),
		"sub/x.json":        groupDoc("json-ignored"),
		"glob/one.yaml":     groupDoc("one"),
		"glob/two.yaml":     groupDoc("two"),
		"glob/three.yml":    groupDoc("three"),
		"other/single.yaml": groupDoc("single"),
	})
	cases := []struct {
		name     string
		paths    []string
		want     []string
		problems []string // "file|message"
	}{
		{"single file", []string{"other/single.yaml"}, []string{"group:default/single"}, nil},
		{"directory recursive, yaml and yml only", []string{"sub"}, []string{"group:default/b", "group:default/c"}, nil},
		{"glob", []string{"glob/*.yaml"}, []string{"group:default/one", "group:default/two"}, nil},
		{"glob of directories", []string{"s*"}, []string{"group:default/b", "group:default/c"}, nil},
		{"file listed twice is read once", []string{"a.yaml", "a.yaml", "*.yaml"}, []string{"group:default/a"}, nil},
		{"missing file", []string{"nope.yaml", "a.yaml"}, []string{"group:default/a"},
			[]string{"nope.yaml|cannot read catalog file: no such file or directory"}},
		{"glob without match", []string{"glob/*.json"}, nil, []string{"glob/*.json|catalog path matches no file"}},
		{"bad glob", []string{"glob/[.yaml"}, nil, []string{`glob/[.yaml|invalid glob "glob/[.yaml": syntax error in pattern`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var paths []string
			for _, p := range c.paths {
				paths = append(paths, filepath.Join(dir, p))
			}
			fsrc := &FileSource{Name: "files", Paths: paths}
			p, fp := fsrc.Load()
			if got := sortedKeysOf(p.Entities); !reflect.DeepEqual(got, append([]string{}, c.want...)) {
				t.Errorf("entities = %v; want %v", got, c.want)
			}
			var probs []string
			for _, pr := range p.Problems {
				if pr.Severity != SeverityError || pr.Fix == "" || pr.Source != "files" {
					t.Errorf("problem %+v", pr)
				}
				probs = append(probs, strings.TrimPrefix(pr.File, dir+"/")+"|"+strings.ReplaceAll(pr.Message, dir+"/", ""))
			}
			if !reflect.DeepEqual(probs, c.problems) {
				t.Errorf("problems = %q; want %q", probs, c.problems)
			}
			for _, e := range p.Entities {
				if e.Origin.Source != "files" || !strings.HasPrefix(e.Origin.File, dir) || e.Origin.Line != 1 {
					t.Errorf("origin of %s = %+v", e.Ref(), e.Origin)
				}
			}
			if len(fp) != 64 {
				t.Errorf("fingerprint %q is not a sha256 hex", fp)
			}
		})
	}
}

func TestFileSourceFollowsLocations(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "abs", "z.yaml")
	writeTree(t, dir, map[string]string{
		"root.yaml":       groupDoc("root-group") + locationDoc("root", "./teams/a.yaml", "teams/*.yml", "file:./services/", abs),
		"teams/a.yaml":    groupDoc("a"),
		"teams/b.yml":     groupDoc("b"),
		"teams/c.yml":     groupDoc("c"),
		"services/s.yaml": groupDoc("s") + locationDoc("nested", "../nested/n.yaml"),
		"nested/n.yaml":   groupDoc("n"),
		"abs/z.yaml":      groupDoc("z"),
		"unlisted.yaml":   groupDoc("unlisted"),
	})
	p, _ := (&FileSource{Name: "files", Paths: []string{filepath.Join(dir, "root.yaml")}}).Load()
	if len(p.Problems) != 0 {
		t.Fatalf("problems: %v", p.Problems)
	}
	want := []string{"group:default/a", "group:default/b", "group:default/c", "group:default/n", "group:default/root-group",
		"group:default/s", "group:default/z", "location:default/nested", "location:default/root"}
	if got := sortedKeysOf(p.Entities); !reflect.DeepEqual(got, want) {
		t.Errorf("entities = %v; want %v", got, want)
	}
	for _, e := range p.Entities {
		if e.Ref().Name == "n" && e.Origin.File != filepath.Join(dir, "nested/n.yaml") {
			t.Errorf("n read from %q", e.Origin.File)
		}
	}
}

func TestFileSourceLocationProblems(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		wantEnts []string
		wantMsg  string // message with dir stripped
		lineAt   string // the problem's line is the first line of root.yaml containing this
		sev      Severity
		field    string
	}{
		{name: "missing target",
			files:    map[string]string{"root.yaml": groupDoc("g") + locationDoc("root", "./missing.yaml")},
			wantEnts: []string{"group:default/g", "location:default/root"},
			wantMsg:  "Location target missing.yaml cannot be read: no such file or directory",
			lineAt:   "kind: Location", sev: SeverityError, field: "spec.target"},
		{name: "glob target without match",
			files:    map[string]string{"root.yaml": groupDoc("g") + locationDoc("root", "./teams/*.yaml")},
			wantEnts: []string{"group:default/g", "location:default/root"},
			wantMsg:  "Location target teams/*.yaml matches no file",
			lineAt:   "kind: Location", sev: SeverityError, field: "spec.target"},
		{name: "url location is not followed",
			files:    map[string]string{"root.yaml": catalogDoc("Location", "remote", "  type: url\n  target: https://example.com/catalog-info.yaml\n")},
			wantEnts: []string{"location:default/remote"},
			wantMsg:  `Location type "url" is not followed by the file source`,
			lineAt:   "kind: Location", sev: SeverityWarning, field: "spec.type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, c.files)
			root := filepath.Join(dir, "root.yaml")
			p, _ := (&FileSource{Name: "files", Paths: []string{root}}).Load()
			if got := sortedKeysOf(p.Entities); !reflect.DeepEqual(got, c.wantEnts) {
				t.Errorf("entities = %v; want %v", got, c.wantEnts)
			}
			if len(p.Problems) != 1 {
				t.Fatalf("problems = %v; want 1", p.Problems)
			}
			pr := p.Problems[0]
			if msg := strings.ReplaceAll(pr.Message, dir+"/", ""); msg != c.wantMsg {
				t.Errorf("message = %q; want %q", msg, c.wantMsg)
			}
			if pr.File != root {
				t.Errorf("file = %q; want the Location's file %q", pr.File, root)
			}
			if want := lineContaining(t, c.files["root.yaml"], c.lineAt) - 1; pr.Line != want {
				t.Errorf("line = %d; want %d", pr.Line, want)
			}
			if pr.Severity != c.sev || pr.Field != c.field || pr.Fix == "" || pr.Source != "files" {
				t.Errorf("problem = %+v", pr)
			}
		})
	}
}

func TestFileSourceLocationCycle(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"a.yaml":     groupDoc("a") + locationDoc("to-b", "./b/b.yaml"),
		"b/b.yaml":   groupDoc("b") + locationDoc("to-a", "../a.yaml", "./b.yaml", "../c/*.yaml"),
		"c/c.yaml":   groupDoc("c") + locationDoc("to-all", "../a.yaml", "../b", "."),
		"c/dup.yaml": locationDoc("self", "./dup.yaml"),
	})
	type result struct {
		p  Parsed
		fp string
	}
	done := make(chan result, 1)
	go func() {
		p, fp := (&FileSource{Name: "files", Paths: []string{filepath.Join(dir, "a.yaml"), dir}}).Load()
		done <- result{p, fp}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Location cycle: Load does not return")
	}
	if len(r.p.Problems) != 0 {
		t.Errorf("problems: %v", r.p.Problems)
	}
	want := []string{"group:default/a", "group:default/b", "group:default/c", "location:default/self",
		"location:default/to-a", "location:default/to-all", "location:default/to-b"}
	// Each file is read once: no duplicates.
	if got := sortedKeysOf(r.p.Entities); !reflect.DeepEqual(got, want) {
		t.Errorf("entities = %v; want %v", got, want)
	}
	snap := NewStore("files").ReplaceSource("files", r.p)
	if snap.Problems.Errors() != 0 {
		t.Errorf("store problems: %v", snap.Problems)
	}
}

func TestFileSourceFingerprint(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"root.yaml":       groupDoc("root") + locationDoc("loc", "./via/target.yaml", "./later.yaml"),
		"via/target.yaml": groupDoc("t"),
		"dir/x.yaml":      groupDoc("x"),
	})
	src := &FileSource{Name: "files", Paths: []string{filepath.Join(dir, "root.yaml"), filepath.Join(dir, "dir")}}
	fp := func() string {
		_, f := src.Load()
		return f
	}
	base := fp()
	if again := fp(); again != base {
		t.Fatalf("fingerprint not stable: %s then %s", base, again)
	}
	steps := []struct {
		name    string
		change  func()
		changed bool
	}{
		{"touch without change", func() {
			future := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "dir/x.yaml"), future, future); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"rewrite same content", func() { writeTree(t, dir, map[string]string{"dir/x.yaml": groupDoc("x")}) }, false},
		{"root file changed", func() {
			writeTree(t, dir, map[string]string{"root.yaml": groupDoc("root2") + locationDoc("loc", "./via/target.yaml", "./later.yaml")})
		}, true},
		{"file behind a Location changed", func() { writeTree(t, dir, map[string]string{"via/target.yaml": groupDoc("t2")}) }, true},
		{"missing Location target created", func() { writeTree(t, dir, map[string]string{"later.yaml": groupDoc("later")}) }, true},
		{"file added to a directory", func() { writeTree(t, dir, map[string]string{"dir/sub/y.yml": groupDoc("y")}) }, true},
		{"non-yaml file added", func() { writeTree(t, dir, map[string]string{"dir/readme.md": "hi"}) }, false},
		{"file removed", func() {
			if err := os.Remove(filepath.Join(dir, "dir/sub/y.yml")); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	prev := base
	for _, st := range steps {
		st.change()
		got := fp()
		if (got != prev) != st.changed {
			t.Errorf("%s: fingerprint changed=%v; want %v", st.name, got != prev, st.changed)
		}
		if again := fp(); again != got {
			t.Errorf("%s: fingerprint not stable after the change", st.name)
		}
		prev = got
	}
	// Restoring the original content restores the fingerprint of that content.
	writeTree(t, dir, map[string]string{
		"root.yaml":       groupDoc("root") + locationDoc("loc", "./via/target.yaml", "./later.yaml"),
		"via/target.yaml": groupDoc("t"),
	})
	if err := os.Remove(filepath.Join(dir, "later.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := fp(); got != base {
		t.Errorf("fingerprint after restoring the files = %s; want the original %s", got, base)
	}
}

// runFileSource runs f into store until the test ends.
func runFileSource(t *testing.T, f *FileSource, store *Store) {
	t.Helper()
	f.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.Run(ctx, store)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
}

func TestFileSourceRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	writeTree(t, dir, map[string]string{"c.yaml": routedDoc("orders", "http://a:1", "")})
	store := NewStore("files")
	changed := store.Changed()
	runFileSource(t, &FileSource{Name: "files", Paths: []string{file}, Interval: 5 * time.Millisecond}, store)
	wait := func(ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no commit")
		}
	}
	wait(changed)
	changed = store.Changed()
	if got := upstreamOf(store.Snapshot().Get("component:default/orders")); got != "http://a:1" {
		t.Fatalf("first load: upstream %q", got)
	}
	// Unchanged files do not commit a new generation.
	time.Sleep(50 * time.Millisecond)
	if g := store.Snapshot().Generation; g != 1 {
		t.Errorf("generation %d after polling unchanged files; want 1", g)
	}
	// Replace the file atomically, as editors and ConfigMap updates do, so
	// the poller never sees a half-written file.
	writeTree(t, dir, map[string]string{"c.yaml.tmp": routedDoc("orders", "http://b:2", "")})
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	wait(changed)
	if got := upstreamOf(store.Snapshot().Get("component:default/orders")); got != "http://b:2" {
		t.Errorf("after the change: upstream %q", got)
	}
}

// With an hour between polls, a change is still loaded at once: the
// directories read are watched. Files written in place, replaced by
// rename, and added in a new subdirectory all count.
func TestFileSourceWatchesDirectories(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"team/c.yaml": routedDoc("orders", "http://a:1", "")})
	store := NewStore("files")
	changed := store.Changed()
	runFileSource(t, &FileSource{Name: "files", Paths: []string{dir}, Interval: time.Hour}, store)
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
			changed = store.Changed()
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not loaded within 5s (the next poll is an hour away)", what)
		}
	}
	wait("first load")
	time.Sleep(50 * time.Millisecond) // the watches are set after the first load
	start := time.Now()
	writeTree(t, dir, map[string]string{"team/c.yaml": routedDoc("orders", "http://b:2", "")})
	wait("a file written in place")
	if got := upstreamOf(store.Snapshot().Get("component:default/orders")); got != "http://b:2" {
		t.Fatalf("upstream %q", got)
	}
	writeTree(t, dir, map[string]string{"team/c.yaml.tmp": routedDoc("orders", "http://c:3", "")})
	if err := os.Rename(filepath.Join(dir, "team/c.yaml.tmp"), filepath.Join(dir, "team/c.yaml")); err != nil {
		t.Fatal(err)
	}
	wait("a file replaced by rename")
	if got := upstreamOf(store.Snapshot().Get("component:default/orders")); got != "http://c:3" {
		t.Fatalf("upstream %q", got)
	}
	writeTree(t, dir, map[string]string{"new/d.yaml": routedDoc("shop", "http://d:4", "")})
	wait("a file in a new directory")
	for store.Snapshot().Get("component:default/shop") == nil {
		wait("the new directory's file") // the directory, then its file
	}
	t.Logf("three changes loaded in %s", time.Since(start).Round(time.Millisecond))
}
