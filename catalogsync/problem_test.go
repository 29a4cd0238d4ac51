package catalogsync

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The file source logs an error-severity problem at ERROR (it was WARN,
// so an alert on errors missed a catalog that drops a route) and a warning
// at WARN.
func TestFileSourceLogsProblemsAtTheirSeverity(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"c.yaml": routedDoc("bad", "ftp://x:1", "") + routedDoc("ok", "http://a:1", "") +
		"apiVersion: backstage.io/v1alpha1\nkind: Template\nmetadata: {name: t}\n"})
	var buf bytes.Buffer // read after Run has returned
	store := NewStore("files")
	changed := store.Changed()
	f := &FileSource{Name: "files", Paths: []string{dir}, Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx, store) }()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no commit")
	}
	cancel()
	<-done
	var levels []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `msg="catalog problem"`) {
			lvl, _, _ := strings.Cut(strings.SplitN(l, "level=", 2)[1], " ")
			levels = append(levels, lvl+" "+map[bool]string{true: "upstream", false: "kind"}[strings.Contains(l, "upstream")])
		}
	}
	if strings.Join(levels, ",") != "ERROR upstream,WARN kind" {
		t.Errorf("problem log levels %v:\n%s", levels, buf.String())
	}
}

func TestProblemsSortByFileAndLine(t *testing.T) {
	ps := Problems{{File: "b", Line: 3}, {Source: "backstage", Message: "no file"}, {File: "a", Line: 9}, {File: "b", Line: 1}, {File: "a", Line: 2}}
	ps.Sort()
	var got []string
	for _, p := range ps {
		got = append(got, strings.TrimSpace(p.File+":"+string(rune('0'+p.Line))))
	}
	if strings.Join(got, " ") != "a:2 a:9 b:1 b:3 :0" {
		t.Errorf("sorted: %v", got)
	}
}

// A YAML parser error is reported on its own line: yaml.v3 numbers these
// from 0, so it said line 1 for line 2.
func TestParseFileParserErrorLine(t *testing.T) {
	src := validComponent + "---\n# broken\nkind: [Group\nmetadata: {name: g}\n"
	p := ParseFile("files", "c.yaml", []byte(src))
	if len(p.Problems) != 1 || p.Problems[0].Line != lineContaining(t, src, "kind: [Group") {
		t.Errorf("problems %v; want one at line %d", p.Problems, lineContaining(t, src, "kind: [Group"))
	}
}

// Two entities without a --- between them are one document with every key
// twice: the problem says so at the second apiVersion, names the first
// entity (whose last good version is kept) and does not call it a wrong
// type ("mapping key ... already defined at ;").
func TestParseFileDuplicateKeys(t *testing.T) {
	two := "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: a}\nspec: {type: team}\n" +
		"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: b}\nspec: {type: team}\n"
	p := ParseFile("files", "c.yaml", []byte(two))
	if len(p.Problems) != 1 {
		t.Fatalf("problems %v", p.Problems)
	}
	pr := p.Problems[0]
	if pr.Line != 5 || pr.Entity != "group:default/a" || pr.Field != "apiVersion" || pr.Message != `key "apiVersion" is written twice (first at line 1)` ||
		!strings.Contains(pr.Fix, "put a line with only --- between them") || len(p.Rejected) != 1 {
		t.Errorf("two entities in one document: %s (rejected %v)", pr, p.Rejected)
	}
	p = ParseFile("files", "c.yaml", []byte("apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: a\n  name: b\nspec: {type: team}\n"))
	if len(p.Problems) != 1 || p.Problems[0].Field != "metadata.name" || p.Problems[0].Line != 5 || p.Problems[0].Fix != "keep one of the two" {
		t.Errorf("a key twice: %v", p.Problems)
	}
}
