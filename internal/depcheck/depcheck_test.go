package depcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// The catalog side: the store, its sources and what they link. The outputs
// read the IR only (model); compiling it is model/compile's job.
var catalogSide = []string{
	"/catalogsync", // prefixed with this module's path
	"github.com/hashicorp/go-memdb",
	"github.com/fsnotify/fsnotify",
}

func TestOutputsDoNotLinkTheCatalog(t *testing.T) {
	mod := goList(t, "-m")[0]
	for _, root := range []string{"/xds/...", "/extauthz/...", "/signin/..."} {
		g := deps(t, mod+root)
		for _, bad := range catalogSide {
			if strings.HasPrefix(bad, "/") {
				bad = mod + bad
			}
			for _, p := range g.order {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s links %s: %s", strings.TrimPrefix(root, "/"), p, strings.Join(g.chain(p), " → "))
				}
			}
		}
	}
}

func TestModelImportsNothingOfOurs(t *testing.T) {
	mod := goList(t, "-m")[0]
	g := deps(t, mod+"/model")
	for _, p := range g.order {
		if p != mod+"/model" && (p == mod || strings.HasPrefix(p, mod+"/")) {
			t.Errorf("model links %s: %s (the IR is a leaf; code that needs more belongs in model/compile or the output packages)", p, strings.Join(g.chain(p), " → "))
		}
	}
}

// graph is the non-test dependency graph of some packages.
type graph struct {
	roots   []string            // the packages the pattern named
	order   []string            // every package, dependencies first
	imports map[string][]string // direct imports
}

func deps(t *testing.T, pattern string) *graph {
	t.Helper()
	g := &graph{imports: map[string][]string{}}
	for _, line := range goList(t, "-deps", "-f", "{{.ImportPath}} {{.DepOnly}}{{range .Imports}} {{.}}{{end}}", pattern) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		g.order = append(g.order, f[0])
		g.imports[f[0]] = f[2:]
		if f[1] == "false" {
			g.roots = append(g.roots, f[0])
		}
	}
	if len(g.roots) == 0 {
		t.Fatalf("go list %s: no packages", pattern)
	}
	return g
}

// chain is one import path from a root to p (shortest, breadth first).
func (g *graph) chain(p string) []string {
	from := map[string]string{}
	queue := append([]string(nil), g.roots...)
	for _, r := range g.roots {
		from[r] = ""
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if q == p {
			var out []string
			for ; q != ""; q = from[q] {
				out = append([]string{q}, out...)
			}
			return out
		}
		for _, i := range g.imports[q] {
			if _, seen := from[i]; !seen {
				from[i] = q
				queue = append(queue, i)
			}
		}
	}
	return []string{p}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
