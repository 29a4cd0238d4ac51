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
