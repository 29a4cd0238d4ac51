package compile_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// A provider whose GraphQL API has never loaded serves nothing: otherwise
// the API's path would fall to the provider's route without its field
// rules. Once the schema loads, the provider serves again.
func TestBrokenFirstGraphQLSchemaFailsClosed(t *testing.T) {
	cat := func(sdl string) string {
		return testcatalog.Teams + `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: graph
  annotations: {gatehouse.dev/upstream: "http://127.0.0.1:9"}
spec: {type: service, lifecycle: production, owner: payments, providesApis: [graph-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: graph-api
  annotations: {gatehouse.dev/path-prefix: /graph/graphql}
spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    ` + sdl + `
`
	}
	m, _ := testcatalog.Compile(cat("type Query { secret: String @policy(policies: [[\"owners\"]]) "))
	var found bool
	for _, p := range m.Policies {
		if strings.HasPrefix(p.RouteID, "component:default/graph@") {
			found = true
			if !strings.Contains(p.Unavailable, "api:default/graph-api") {
				t.Errorf("%s: Unavailable = %q, want it to name the broken API", p.RouteID, p.Unavailable)
			}
		}
	}
	if !found {
		t.Fatal("the provider has no route")
	}
	m, problems := testcatalog.Compile(cat("type Query { secret: String }"))
	for _, p := range m.Policies {
		if p.Unavailable != "" {
			t.Errorf("%s unavailable with a schema that loads: %q (problems %v)", p.RouteID, p.Unavailable, problems)
		}
	}
}

// What Check does with it: even the owner gets 503 catalog_problem, on
// every path of the provider, and explain says why.
func TestBrokenFirstGraphQLSchemaRefusedByCheck(t *testing.T) {
	m, _ := testcatalog.Compile(testcatalog.Teams + `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: graph
  annotations: {gatehouse.dev/upstream: "http://127.0.0.1:9"}
spec: {type: service, lifecycle: production, owner: payments, providesApis: [graph-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: graph-api}
spec: {type: graphql, lifecycle: production, owner: payments, definition: "type Query {"}
`)
	eng := extauthz.NewEngine(m)
	alice := eng.PrincipalFor(&extauthz.Identity{Subject: "user:default/alice", EntityRefSubject: true})
	for _, p := range m.Policies {
		d := eng.Decide(alice, p.RouteID, "POST", "/graph/graphql", true)
		if d.Allow || d.Status != 503 || d.Reason != "catalog_problem" || len(d.Steps) == 0 || !strings.Contains(d.Steps[0].Why, "graph-api") {
			t.Errorf("%s: %+v, want 503 catalog_problem naming graph-api", p.RouteID, d)
		}
	}
}
