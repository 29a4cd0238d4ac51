package compile_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// A User's gatehouse.dev/sessions-not-before reaches the model's directory,
// where Check reads it.
func TestSessionsNotBeforeInDirectory(t *testing.T) {
	m := testcatalog.Must(t, `apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
  annotations: {gatehouse.dev/sessions-not-before: "2026-12-03T16:00:00Z"}
spec: {memberOf: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {memberOf: []}
`)
	got := map[string]int64{}
	for _, u := range m.Directory.Users {
		got[u.Ref] = u.SessionsNotBefore
	}
	if got["user:default/alice"] != 1796313600 || got["user:default/bob"] != 0 {
		t.Fatalf("directory: %v", got)
	}
}
