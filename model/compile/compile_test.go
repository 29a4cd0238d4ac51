package compile

import (
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/golden"
	"github.com/gatehouse-dev/gatehouse/model"
)

// TestCompileGolden: testdata/<case>.in.yaml (a catalog) compiles to
// <case>.out.model.yaml and <case>.out.problems.yaml.
func TestCompileGolden(t *testing.T) {
	cases := golden.Cases(t, "testdata")
	golden.RemoveStale(t, "testdata", cases)
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			src := &cs.FileSource{Name: "files", Paths: []string{filepath.Join("testdata", name+".in.yaml")}}
			parsed, _ := src.Load()
			snap := cs.NewStore("files").ReplaceSource("files", parsed)
			m, problems := Compile(snap)
			all := append(append(cs.Problems(nil), snap.Problems...), problems...)
			golden.Assert(t, filepath.Join("testdata", name+".out.model.yaml"), mustYAML(t, m))
			golden.Assert(t, filepath.Join("testdata", name+".out.problems.yaml"), mustYAML(t, all))

			// Compile is pure: compiling the same snapshot again gives the
			// same model and version.
			again, _ := Compile(snap)
			if again.Version != m.Version {
				t.Errorf("second compile of the same snapshot: version %s, first %s", again.Version, m.Version)
			}
			if m.Version != model.ContentVersion(m) {
				t.Errorf("Version %s is not the content hash %s", m.Version, model.ContentVersion(m))
			}
		})
	}
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
