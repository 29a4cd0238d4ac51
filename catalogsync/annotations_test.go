package catalogsync

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parseRoutedWith parses a routed Component that also has the annotation
// key: value, on line 7, and returns its only problem.
func parseRoutedWith(t *testing.T, key, value string) (Problem, Parsed) {
	t.Helper()
	src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations:\n" +
		"    gatehouse.dev/upstream: http://orders:8080\n    " + key + ": " + value + "\nspec: {type: service, lifecycle: production, owner: team-a}\n"
	p := ParseFile("files", "c.yaml", []byte(src))
	if len(p.Problems) != 1 {
		t.Fatalf("%s: %s: want one problem, got %v", key, value, p.Problems)
	}
	return p.Problems[0], p
}

// A misspelled gatehouse.dev/* annotation is an error that names the key,
// its line and the key it was probably meant to be; before, it was ignored
// and the component was silently not routed.
func TestUnknownGatehouseAnnotationIsAnErrorWithSuggestion(t *testing.T) {
	cases := map[string]string{
		"gatehouse.dev/upstrem":     AnnUpstream,
		"gatehouse.dev/timout":      AnnTimeout,
		"gatehouse.dev/public-path": AnnPublicPaths,
		"gatehouse.dev/Path-Prefix": AnnPathPrefix,
	}
	for key, want := range cases {
		pr, p := parseRoutedWith(t, key, "x")
		if pr.Severity != SeverityError || pr.Line != 7 || pr.Field != "metadata.annotations["+key+"]" ||
			!strings.Contains(pr.Message, "unknown gatehouse annotation") || !strings.Contains(pr.Fix, "did you mean "+want+"?") {
			t.Errorf("%s: got %s", key, pr)
		}
		if len(p.Entities) != 0 || len(p.Rejected) != 1 {
			t.Errorf("%s: the entity should be rejected (last good version kept), got entities %v", key, entityKeys(p.Entities))
		}
	}
	// No close key: the fix lists the known ones. Other namespaces are not ours.
	src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations:\n" +
		"    gatehouse.dev/colour: blue\n    backstage.io/techdocs-ref: dir:.\nspec: {type: service, lifecycle: production, owner: team-a}\n"
	p := ParseFile("files", "c.yaml", []byte(src))
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Fix, "use one of "+AnnUpstream) {
		t.Errorf("unknown key without a close match: %v", p.Problems)
	}
}

// Every gatehouse.dev/* constant of the package is in KnownAnnotations: a
// new annotation added without it would be reported as unknown.
func TestKnownAnnotationsListsEveryAnnotationConstant(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				if strings.HasPrefix(s, AnnPrefix) && len(s) > len(AnnPrefix) {
					found++
					if !slices.Contains(KnownAnnotations, s) {
						t.Errorf("%s: annotation %s is not in KnownAnnotations", fset.Position(lit.Pos()), s)
					}
				}
			}
			return true
		})
	}
	if found != len(KnownAnnotations) {
		t.Errorf("found %d annotation constants, KnownAnnotations has %d", found, len(KnownAnnotations))
	}
}
