package catalogsync

import (
	"strings"
	"testing"
)

// An owner must be a User or Group, as Backstage requires; before, a
// Component owner was accepted.
func TestOwnerMustBeUserOrGroup(t *testing.T) {
	src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: shop\nspec:\n  type: service\n  lifecycle: production\n  owner: component:default/orders\n"
	p := ParseFile("files", "c.yaml", []byte(src))
	if len(p.Problems) != 1 {
		t.Fatalf("want one problem, got %v", p.Problems)
	}
	pr := p.Problems[0]
	if pr.Severity != SeverityError || pr.Line != 8 || pr.Field != "spec.owner" || pr.Entity != "component:default/shop" ||
		!strings.Contains(pr.Message, "component:default/orders is a Component") || !strings.Contains(pr.Fix, "group:default/") {
		t.Errorf("got %s", pr)
	}
	for _, ok := range []string{"payments", "group:default/payments", "user:default/alice", "User:alice"} {
		src := "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: shop\nspec:\n  type: service\n  lifecycle: production\n  owner: " + ok + "\n"
		if p := ParseFile("files", "c.yaml", []byte(src)); p.Problems.Errors() != 0 {
			t.Errorf("owner %s: %v", ok, p.Problems)
		}
	}
}

// An owner that is not in the catalog is a warning at spec.owner's line
// (before: the document's first line) that says what it means for access.
func TestUnresolvedOwnerWarnsAtItsLine(t *testing.T) {
	src := "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations:\n    gatehouse.dev/upstream: http://orders:8080\n" +
		"spec:\n  type: service\n  lifecycle: production\n  owner: paymnets\n  dependsOn:\n    - resource:default/db\n    - resource:default/cache\n"
	snap := snapshotOf(t, src)
	lines := map[string]int{}
	for _, p := range snap.Problems {
		lines[p.Field+" "+strings.SplitN(p.Message, ",", 2)[0]] = p.Line
		if p.Field == "spec.owner" && (!strings.Contains(p.Message, "only explicit rules (gatehouse.dev/access)") || p.Severity != SeverityWarning) {
			t.Errorf("owner warning: %s", p)
		}
	}
	want := map[string]int{
		"spec.owner refers to group:default/paymnets":     lineContaining(t, src, "owner: paymnets"),
		"spec.dependsOn refers to resource:default/db":    lineContaining(t, src, "resource:default/db"),
		"spec.dependsOn refers to resource:default/cache": lineContaining(t, src, "resource:default/cache"),
	}
	for k, l := range want {
		if lines[k] != l {
			t.Errorf("%s: line %d, want %d (all: %v)", k, lines[k], l, lines)
		}
	}
}
