// Package golden compares test output with files under testdata, and
// rewrites them when the test runs with -update.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files with the current output")

// Updating reports whether -update was given.
func Updating() bool { return *update }

// Assert compares got with the file at path; with -update it writes got.
func Assert(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s: %v (run: go test ./... -run %s -update)", path, err, t.Name())
	}
	if string(want) != string(got) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, diff(string(want), string(got)))
	}
}

// Cases returns the case names in dir: every <name>.in.yaml.
func Cases(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.in.yaml"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no test cases (*.in.yaml) in %s", dir)
	}
	var out []string
	for _, f := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".in.yaml"))
	}
	return out
}

// RemoveStale deletes <case>.out.* files in dir whose case no longer exists
// (only with -update).
func RemoveStale(t *testing.T, dir string, cases []string) {
	t.Helper()
	if !*update {
		return
	}
	known := map[string]bool{}
	for _, c := range cases {
		known[c] = true
	}
	outs, _ := filepath.Glob(filepath.Join(dir, "*.out.*"))
	for _, o := range outs {
		base := filepath.Base(o)
		name := base[:strings.Index(base, ".out.")]
		if !known[name] {
			_ = os.Remove(o)
		}
	}
}

// diff is a small line diff: the first differing lines with context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			continue
		}
		b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
		shown++
		if shown >= 10 {
			b.WriteString("  ...\n")
			break
		}
	}
	return b.String()
}
