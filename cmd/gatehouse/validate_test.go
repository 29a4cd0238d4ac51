package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runCommand runs a subcommand with args and returns what it printed.
func runCommand(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// validate sorts problems by file and line, counts with plural agreement
// ("1 route", "1 error"), and blames an empty directory on the path given
// on the command line, not on catalog.files.
func TestValidateOutput(t *testing.T) {
	dir := t.TempDir()
	doc := func(name, owner string) string {
		return "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name +
			"\n  annotations:\n    gatehouse.dev/upstream: http://127.0.0.1:1\nspec: {type: s, lifecycle: l, owner: " + owner + "}\n"
	}
	// b.yaml's problems come before c.yaml's; within a file, by line.
	files := map[string]string{
		"c.yaml": doc("c", "component:default/x"),
		"b.yaml": doc("b1", "nobody") + doc("b2", "component:default/y"),
		"team.yaml": "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team}\nspec: {type: team}\n" +
			strings.Replace(doc("ok", "team"), "127.0.0.1:1", "127.0.0.1:2", 1),
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCommand(t, validateCmd(), dir)
	if err == nil {
		t.Fatalf("validate exited 0 on errors:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var places []string
	for _, l := range lines[:len(lines)-1] {
		places = append(places, strings.TrimPrefix(l[:strings.Index(l, ": ")], dir+"/"))
	}
	if want := []string{"b.yaml:8", "b.yaml:16", "c.yaml:8"}; strings.Join(places, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v (sorted by file and line):\n%s", places, want, out)
	}
	if got := lines[len(lines)-1]; got != "3 entities, 2 routes, 2 clusters; 2 errors, 1 warning" {
		t.Errorf("summary %q", got)
	}

	// One of each: singular.
	one := t.TempDir()
	_ = os.WriteFile(filepath.Join(one, "c.yaml"), []byte(doc("c", "component:default/x")+files["team.yaml"]), 0o644)
	out, _ = runCommand(t, validateCmd(), one)
	if !strings.HasSuffix(strings.TrimSpace(out), "; 1 error, 0 warnings") || !strings.Contains(out, "\n2 entities, 1 route, 1 cluster;") {
		t.Errorf("plural agreement:\n%s", out)
	}

	empty := t.TempDir()
	out, err = runCommand(t, validateCmd(), empty)
	if err == nil || !strings.Contains(out, empty+": error: directory has no .yaml or .yml files (fix: check "+empty+", given in the command line)") ||
		strings.Contains(out, "catalog.files") {
		t.Errorf("empty directory:\n%s", out)
	}
}
