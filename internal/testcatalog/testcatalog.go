// Package testcatalog compiles the catalogs tests write (inline YAML, or
// files and directories) to a model.Model the way gatehouse does: one file
// source named "files", one store, model/compile. It is for tests only; the
// tests of xds, extauthz and model/compile share it (none of them can import
// another's test helpers, and model/compile imports neither xds nor extauthz,
// so there is no cycle).
package testcatalog

import (
	"testing"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
)

// Compile compiles src as one catalog file (catalog.yaml). The problems are
// every one found: the store's (parsing, validation, relations), then
// compiling's.
func Compile(src string) (*model.Model, cs.Problems) {
	return compileParsed(cs.ParseFile("files", "catalog.yaml", []byte(src)))
}

// CompileFiles compiles catalog files or directories on disk, like Compile.
func CompileFiles(paths ...string) (*model.Model, cs.Problems) {
	parsed, _ := (&cs.FileSource{Name: "files", Paths: paths}).Load()
	return compileParsed(parsed)
}

// Must compiles src and fails t on any error (warnings are allowed).
func Must(t testing.TB, src string) *model.Model {
	t.Helper()
	m, problems := Compile(src)
	failOnErrors(t, problems)
	return m
}

// MustFiles compiles files or directories and fails t on any error.
func MustFiles(t testing.TB, paths ...string) *model.Model {
	t.Helper()
	m, problems := CompileFiles(paths...)
	failOnErrors(t, problems)
	return m
}

func compileParsed(parsed cs.Parsed) (*model.Model, cs.Problems) {
	snap := cs.NewStore("files").ReplaceSource("files", parsed)
	m, problems := compile.Compile(snap)
	return m, append(append(cs.Problems(nil), snap.Problems...), problems...)
}

func failOnErrors(t testing.TB, problems cs.Problems) {
	t.Helper()
	for _, p := range problems {
		if p.Severity == cs.SeverityError {
			t.Fatalf("test catalog: %s", p)
		}
	}
}
