package catalogsync

import (
	"strings"
	"testing"
)

// A gatehouse.dev/access value of the wrong shape says, in catalog terms,
// what is wrong and what shape is expected; before, the message printed a
// Go type ([]struct { Allow []string "yaml:\"allow\"" ...}).
func TestAccessShapeErrorsSayWhatIsExpected(t *testing.T) {
	cases := map[string]string{
		`"allow: [group:default/a]"`:                    "the value is a mapping, not a list of rules",
		`"group:default/a"`:                             "the value is a single value, not a list of rules",
		`"- group:default/a"`:                           "rule 1: is a single value, not a mapping",
		`"- {allow: group:default/a}"`:                  "rule 1: allow is a single value, not a list",
		`"- {allow: [group:default/a]}\n- {allw: [x]}"`: `rule 2: unknown key "allw"`,
		`"- {allow: [{a: 1}]}"`:                         "rule 1: allow must list plain values",
		`"- {allow: [group:default/a"`:                  "invalid YAML",
	}
	for value, want := range cases {
		pr, _ := parseRoutedWith(t, AnnAccess, value)
		if !strings.Contains(pr.Message, want) || pr.Line != 7 || pr.Field != "metadata.annotations[gatehouse.dev/access]" ||
			!strings.Contains(pr.Fix, "YAML list of rules, each {allow: [refs], methods: [..], paths: [..]}") || !strings.Contains(pr.Fix, "e.g.") {
			t.Errorf("%s: got %s; want message with %q and the expected shape", value, pr, want)
		}
		if strings.Contains(pr.String(), "struct") || strings.Contains(pr.String(), "[]string") {
			t.Errorf("%s: Go type in %s", value, pr)
		}
	}
}

// gatehouse.dev/sign-in is "off" (a pure API: browsers get 401) or "on";
// anything else is a problem that says so, on the annotation's line.
func TestSignInAnnotation(t *testing.T) {
	pr, _ := parseRoutedWith(t, AnnSignIn, `"no"`)
	if pr.Line != 7 || pr.Field != "metadata.annotations["+AnnSignIn+"]" || !strings.Contains(pr.Message, `"no" is not on or off`) || !strings.Contains(pr.Fix, "off") {
		t.Errorf("got %s", pr)
	}
	for value, off := range map[string]bool{`"off"`: true, `"on"`: false} {
		src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations:\n" +
			"    gatehouse.dev/upstream: http://orders:8080\n    " + AnnSignIn + ": " + value + "\nspec: {type: service, lifecycle: production, owner: team-a}\n"
		p := ParseFile("files", "c.yaml", []byte(src))
		if len(p.Problems) != 0 || len(p.Entities) != 1 || p.Entities[0].Access == nil || p.Entities[0].Access.SignInOff != off {
			t.Errorf("%s: problems %v, access %+v", value, p.Problems, p.Entities[0].Access)
		}
	}
}

// gatehouse.dev/sessions-not-before: an RFC 3339 time on a User; anything
// else is a problem on the annotation's line.
func TestSessionsNotBeforeAnnotation(t *testing.T) {
	user := func(value string) Parsed {
		src := "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: alice\n  annotations:\n    " + AnnSessionsNotBefore + ": " + value + "\nspec: {memberOf: []}\n"
		return ParseFile("files", "u.yaml", []byte(src))
	}
	p := user(`"2026-12-03T16:00:00Z"`)
	if len(p.Problems) != 0 || len(p.Entities) != 1 || p.Entities[0].Access == nil || p.Entities[0].Access.SessionsNotBefore != 1796313600 {
		t.Fatalf("problems %v, access %+v", p.Problems, p.Entities[0].Access)
	}
	if p := user(`"2026-12-03T17:00:00+01:00"`); p.Entities[0].Access.SessionsNotBefore != 1796313600 {
		t.Fatalf("with an offset: %+v", p.Entities[0].Access)
	}
	for _, v := range []string{`"yesterday"`, `"2026-12-03"`, `"1796313600"`, `""`} {
		p := user(v)
		if len(p.Problems) != 1 || p.Problems[0].Line != 6 || !strings.Contains(p.Problems[0].Message, "not an RFC 3339 time") || !strings.Contains(p.Problems[0].Fix, "e.g.") {
			t.Errorf("%s: problems %v", v, p.Problems)
		}
	}
	pr, _ := parseRoutedWith(t, AnnSessionsNotBefore, `"2026-12-03T16:00:00Z"`)
	if !strings.Contains(pr.Message, "belongs on a User") {
		t.Errorf("on a Component: %s", pr)
	}
}
