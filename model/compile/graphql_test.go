package compile

import (
	"strings"
	"testing"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

func compileSrc(src string) (*model.Model, cs.Problems) {
	parsed := cs.ParseFile("files", "c.yaml", []byte(src))
	snap := cs.NewStore("files").ReplaceSource("files", parsed)
	return Compile(snap)
}

func graphqlCatalog(sdl, annotations string) string {
	return `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: platform
  annotations: {gatehouse.dev/upstream: "http://10.0.0.9:8080"}
spec: {type: service, lifecycle: production, owner: payments, providesApis: [graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: graph
  annotations:
    gatehouse.dev/path-prefix: /platform/graphql
` + annotations + `spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    ` + strings.ReplaceAll(strings.TrimSpace(sdl), "\n", "\n    ") + "\n"
}

// The compiled field policy: own directives, the returned type's, the
// annotation's Type.field and Type.*, and an interface field carrying the
// rules of every implementation's same field.
func TestGraphQLFieldPolicyCompiles(t *testing.T) {
	sdl := `interface Node { id: ID! notes: String }
type Query { node: Node a: A b: B @authenticated }
type A implements Node { id: ID! notes: String @policy(policies: [["owners"]]) secret: String @policy(policies: [["group:sre", "user:bob"], ["owners"]]) }
type B implements Node @policy(policies: [["consumers"]]) { id: ID! notes: String x: String }`
	m, ps := compileSrc(graphqlCatalog(sdl, "    gatehouse.dev/graphql-access: |\n      B.*: [owners]\n"))
	for _, p := range ps {
		if p.Severity == cs.SeverityError {
			t.Fatal(p)
		}
	}
	var g *model.GraphQLPolicy
	for _, p := range m.Policies {
		if p.GraphQL != nil {
			g = p.GraphQL
		}
	}
	if g == nil {
		t.Fatal("no GraphQL policy")
	}
	got := map[string]string{}
	for _, f := range g.Fields {
		var rs []string
		for _, r := range f.Requires {
			var any []string
			for _, all := range r.AnyOf {
				any = append(any, strings.Join(all, "&"))
			}
			rs = append(rs, strings.Join(any, "|"))
		}
		got[f.Name] = strings.Join(rs, " ; ")
	}
	// B's type rule (consumers) guards B's own fields too: reached as
	// `node { ... on B { x } }` they never pass through Query.b.
	want := map[string]string{
		"Node.notes": "owners ; consumers ; owners", // A.notes' @policy; B's type rule and B.* on B.notes
		"Node.id":    "consumers ; owners",          // B's type rule and B.* on B.id
		"A.notes":    "owners",
		"A.secret":   "group:default/sre&user:default/bob|owners",
		"Query.b":    "authenticated ; consumers", // own, then B's type rule
		"B.id":       "consumers ; owners", "B.notes": "consumers ; owners", "B.x": "consumers ; owners",
		"__schema": "owners", "__type": "owners",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected rule on %s: %s", k, got[k])
		}
	}
	if g.Mode != model.GraphQLReject || g.Limits != model.DefaultGraphQLLimits {
		t.Errorf("defaults: %s %+v", g.Mode, g.Limits)
	}
}

// FuzzGraphQLCompile: any SDL the catalog accepts compiles without a panic,
// and every compiled field rule has at least one alternative.
func FuzzGraphQLCompile(f *testing.F) {
	f.Add("type Query { a: String @policy(policies: [[\"owners\"]]) }")
	f.Add("interface I { a: String } type Query implements I { a: String @policy(policies: [[\"owners\"]]) } type Z implements I { a: String }")
	f.Add("union U = A | B type A { a: String } type B { b: String @authenticated } type Query { u: U }")
	f.Add("type Query { a: [[A!]] } type A @requiresScopes(scopes: [[\"x\", \"y\"]]) { b: Int }")
	f.Fuzz(func(t *testing.T, sdl string) {
		m, _ := compileSrc(graphqlCatalog(sdl, ""))
		for _, p := range m.Policies {
			if p.GraphQL == nil {
				continue
			}
			for _, fr := range p.GraphQL.Fields {
				for _, r := range fr.Requires {
					if len(r.AnyOf) == 0 {
						t.Fatalf("%s: a rule with no alternative (%s) in %q", fr.Name, r.From, sdl)
					}
				}
			}
		}
	})
}

// A rule on an interface's field guards every implementation's field, so
// `node { ... on User { secret } }` cannot read what Node.secret guards.
func TestGraphQLInterfaceRuleGuardsImplementations(t *testing.T) {
	sdl := `interface Node { secret: String @policy(policies: [["owners"]]) }
type Query { node: Node user: User }
type User implements Node { secret: String name: String }`
	m, ps := compileSrc(graphqlCatalog(sdl, ""))
	for _, p := range ps {
		if p.Severity == cs.SeverityError {
			t.Fatal(p)
		}
	}
	for _, p := range m.Policies {
		if p.GraphQL == nil {
			continue
		}
		for _, f := range p.GraphQL.Fields {
			if f.Name == "User.secret" {
				if len(f.Requires) != 1 || len(f.Requires[0].AnyOf) != 1 || f.Requires[0].AnyOf[0][0] != "owners" {
					t.Fatalf("User.secret requires %+v, want owners", f.Requires)
				}
				return
			}
		}
	}
	t.Fatal("User.secret has no rule: Node.secret's does not reach it")
}

// fieldRules is the compiled field policy of the catalog's GraphQL API
// as Type.field -> "a&b|c ; d" (requirements ; alternatives | names &),
// and each field's Froms.
func fieldRules(t *testing.T, m *model.Model) (map[string]string, map[string][]string) {
	t.Helper()
	got, from := map[string]string{}, map[string][]string{}
	for _, p := range m.Policies {
		if p.GraphQL == nil {
			continue
		}
		for _, f := range p.GraphQL.Fields {
			var rs []string
			for _, r := range f.Requires {
				var any []string
				for _, all := range r.AnyOf {
					any = append(any, strings.Join(all, "&"))
				}
				rs = append(rs, strings.Join(any, "|"))
				from[f.Name] = append(from[f.Name], r.From)
			}
			got[f.Name] = strings.Join(rs, " ; ")
		}
		return got, from
	}
	t.Fatal("no GraphQL policy")
	return nil, nil
}

// Named rules expand where @policy names them (inner all, outer any), and
// an operation type in the annotation guards every field of the schema's
// root type for it, by the root's own name (schema { mutation: M }); a
// type merely called Mutation is not a root and is not guarded.
func TestGraphQLNamedRulesAndOperationTypesCompile(t *testing.T) {
	sdl := `schema { query: Q mutation: M }
type Q { a: String @policy(policies: [["release-managers", "consumers"]]) b: String }
type M { deploy: Boolean rollback: Boolean @policy(policies: [["release-managers"]]) }
type Mutation { x: String }`
	ann := "    gatehouse.dev/graphql-policies: |\n      release-managers: [owners, group:release]\n" +
		"    gatehouse.dev/graphql-access: |\n      mutation: [owners]\n      query: [release-managers, consumers]\n"
	m, ps := compileSrc(graphqlCatalog(sdl, ann))
	for _, p := range ps {
		if p.Severity == cs.SeverityError {
			t.Fatal(p)
		}
	}
	got, from := fieldRules(t, m)
	want := map[string]string{
		"Q.a":        "owners&consumers|group:default/release&consumers ; owners|group:default/release|consumers",
		"Q.b":        "owners|group:default/release|consumers",
		"M.deploy":   "owners",
		"M.rollback": "owners|group:default/release ; owners",
		"__schema":   "owners", "__type": "owners",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected rule on %s: %s", k, got[k])
		}
	}
	if strings.Join(from["M.rollback"], " | ") != "@policy on M.rollback (release-managers: gatehouse.dev/graphql-policies) | gatehouse.dev/graphql-access mutation" {
		t.Errorf("from: %q", from["M.rollback"])
	}
}

// An API whose @policy names a rule that does not exist is not compiled
// with that field open: the entity is refused, and its provider's routes
// fail closed (no last good version to keep).
func TestGraphQLUnknownNamedRuleFailsClosed(t *testing.T) {
	sdl := `type Query { a: String @policy(policies: [["release-managers"]]) b: String }`
	parsed := cs.ParseFile("files", "c.yaml", []byte(graphqlCatalog(sdl, "    gatehouse.dev/graphql-policies: |\n      release-manager: [owners]\n")))
	m, _ := Compile(cs.NewStore("files").ReplaceSource("files", parsed))
	found := false
	for _, p := range parsed.Problems {
		if p.Severity == cs.SeverityError && p.Entity == "api:default/graph" && strings.Contains(p.Message, `"release-managers"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no problem naming the API and the name: %v", parsed.Problems)
	}
	for _, p := range m.Policies {
		if p.GraphQL != nil {
			t.Fatalf("a GraphQL policy compiled from a refused entity: %+v", p.GraphQL.Fields)
		}
	}
	provider := false
	for _, p := range m.Policies {
		if strings.HasPrefix(p.RouteID, "component:default/platform@") {
			provider = true
			if !strings.Contains(p.Unavailable, "api:default/graph") {
				t.Errorf("%s: Unavailable = %q, want it to name the refused API", p.RouteID, p.Unavailable)
			}
		}
	}
	if !provider {
		t.Fatal("the provider has no route")
	}
}
