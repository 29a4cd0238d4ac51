package main

import (
	"strings"
	"testing"
	"time"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
)

// Issue 14 item 14: a configured source that has yielded nothing keeps
// gatehouse unready with the reason; an explicitly empty source next to
// one with entities does not; once ready, a later failure does not flap.
func TestCatalogReadinessReasons(t *testing.T) {
	now := time.Now()
	var sts []cs.SourceStatus
	check := catalogReadiness(func() []cs.SourceStatus { return sts })
	cases := []struct {
		name string
		sts  []cs.SourceStatus
		want string // "" = ready
	}{
		{"not loaded yet", []cs.SourceStatus{{Name: "files"}}, "source files has not loaded yet"},
		{"missing path", []cs.SourceStatus{{Name: "files", LastAttempt: now, LastError: "/nonexistent: no such file or directory"}},
			"source files has not loaded since start: /nonexistent: no such file or directory"},
		{"backstage unreachable, files fine", []cs.SourceStatus{{Name: "files", LastSuccess: now, Entities: 3}, {Name: "backstage", LastError: "connection refused"}},
			"source backstage has not loaded since start: connection refused"},
		{"loaded, no entities anywhere", []cs.SourceStatus{{Name: "files", LastSuccess: now}}, "the catalog sources hold no entities"},
		{"an empty file next to Backstage", []cs.SourceStatus{{Name: "files", LastSuccess: now}, {Name: "backstage", LastSuccess: now, Entities: 12}}, ""},
		{"a later failure keeps it ready", []cs.SourceStatus{{Name: "files", LastError: "gone"}}, ""},
	}
	for _, c := range cases {
		sts = c.sts
		got := check()
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.want)
		}
	}
}
