package catalogsync

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

// graphqlAPI is an API entity with spec.type graphql, its SDL starting on
// line 12 (the definition key is on line 11), and extra annotation lines.
func graphqlAPI(sdl, annotations string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: graph\n  annotations:\n    gatehouse.dev/path-prefix: /graph\n" + annotations +
		"spec:\n  type: graphql\n  lifecycle: production\n  owner: payments\n  definition: |\n" + indentLines(sdl, "    ")
}

func indentLines(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

const goodSDL = "type Query {\n  a: String\n  secret: String @policy(policies: [[\"owners\"]])\n}\n"

func TestGraphQLSchemaLoadsWithApolloDirectivesUndeclared(t *testing.T) {
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, "")))
	if len(p.Problems) != 0 || len(p.Entities) != 1 {
		t.Fatalf("problems %v", p.Problems)
	}
	g := p.Entities[0].GraphQL
	if g == nil || g.Schema.Types["Query"].Fields.ForName("secret") == nil {
		t.Fatalf("schema not parsed: %+v", g)
	}
}

// An SDL error names the entity, the line in the file (definition line +
// SDL line) and a fix, and rejects the entity so its last good schema
// stays in force.
func TestGraphQLSDLErrorsAreCatalogProblems(t *testing.T) {
	cases := map[string]struct {
		sdl, want string
		sdlLine   int
	}{
		"syntax":         {"type Query {\n  a: String\n  b: [String\n}\n", "Expected", 4},
		"unknown type":   {"type Query {\n  a: Widget\n}\n", "Undefined type Widget", 2},
		"bad policy":     {"type Query {\n  a: String @policy(policies: [[\"api:default/x\"]])\n}\n", "only users, groups and components", 2},
		"unknown policy": {"type Query {\n  a: String @policy(policies: [[\"admins\"]])\n}\n", "@policy on Query.a (SDL line 2): policy \"admins\" is not owners, consumers, a ref or a named rule of gatehouse.dev/graphql-policies", 2},
		"no query type":  {"type Foo {\n  a: String\n}\n", "", 0},
	}
	for name, c := range cases {
		p := ParseFile("files", "g.yaml", []byte(graphqlAPI(c.sdl, "")))
		if len(p.Problems) == 0 || len(p.Entities) != 0 || len(p.Rejected) != 1 {
			t.Errorf("%s: want the entity rejected with a problem, got %v entities %d", name, p.Problems, len(p.Entities))
			continue
		}
		pr := p.Problems[0]
		if pr.Entity != "api:default/graph" || pr.Field != "spec.definition" || pr.Fix == "" || !strings.Contains(pr.Message, c.want) {
			t.Errorf("%s: %s", name, pr)
		}
		if c.sdlLine > 0 && pr.Line != 11+c.sdlLine {
			t.Errorf("%s: line %d, want %d (%s)", name, pr.Line, 11+c.sdlLine, pr)
		}
	}
}

func TestGraphQLLastGoodSchemaKept(t *testing.T) {
	s := NewStore("files")
	s.ReplaceSource("files", ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, ""))))
	snap := s.ReplaceSource("files", ParseFile("files", "g.yaml", []byte(graphqlAPI("type Query {", ""))))
	e := snap.Get("api:default/graph")
	if e == nil || !e.Stale || e.GraphQL == nil || e.GraphQL.Schema.Types["Query"].Fields.ForName("secret") == nil {
		t.Fatalf("last good schema not kept: %+v", e)
	}
}

func TestGraphQLAnnotations(t *testing.T) {
	ok := "    gatehouse.dev/graphql-access: |\n      Query.a: [owners, consumers, group:default/sre]\n      Query.*: [user:default/bob]\n" +
		"    gatehouse.dev/graphql-options: |\n      mode: dry-run\n      bodyLimit: 1024\n      maxDepth: 5\n      introspection: everyone\n"
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, ok)))
	if len(p.Problems) != 0 {
		t.Fatalf("problems %v", p.Problems)
	}
	g := p.Entities[0].GraphQL
	if strings.Join(g.Access["Query.a"], ",") != "owners,consumers,group:default/sre" || g.Access["Query.*"][0] != "user:default/bob" ||
		g.Options.Mode != "dry-run" || g.Options.BodyLimit != 1024 || g.Options.MaxDepth != 5 || g.Options.Introspection != "everyone" {
		t.Fatalf("%+v", g)
	}
	bad := map[string]string{
		"    gatehouse.dev/graphql-access: |\n      Query.secrte: [owners]\n": "did you mean Query.secret?",
		"    gatehouse.dev/graphql-access: |\n      Qurey.a: [owners]\n":      "did you mean Query?",
		"    gatehouse.dev/graphql-access: |\n      Query: [owners]\n":        "not Type.field",
		"    gatehouse.dev/graphql-access: |\n      Query.a: []\n":            "empty allow list",
		"    gatehouse.dev/graphql-access: |\n      Query.a: [everyone]\n":    "not owners, consumers, a ref or a named rule",
		"    gatehouse.dev/graphql-access: |\n      mutation: [owners]\n":     "the schema has no mutation type",
		"    gatehouse.dev/graphql-access: |\n      subscription: [owners]\n": "the schema has no subscription type",
		"    gatehouse.dev/graphql-access: |\n      query: []\n":              "empty allow list",
		"    gatehouse.dev/graphql-access: |\n      Mutation: [owners]\n":     "or an operation type",
		"    gatehouse.dev/graphql-access: '[a'\n":                            "invalid YAML",
		"    gatehouse.dev/graphql-options: |\n      mode: filtre\n":          "is not reject, filter or dry-run",
		"    gatehouse.dev/graphql-options: |\n      bodyLimit: 999999999\n":  "out of range",
		"    gatehouse.dev/graphql-options: |\n      maxDepht: 3\n":           "maxDepht",
		"    gatehouse.dev/graphql-options: |\n      introspection: anyone\n": "not owners or everyone",
	}
	for ann, want := range bad {
		p := ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, ann)))
		if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, want) || p.Problems[0].Line != 7 || len(p.Entities) != 0 {
			t.Errorf("%q: want one problem on line 7 with %q, got %v", ann, want, p.Problems)
		}
	}
}

func TestGraphQLAnnotationsOnlyOnGraphQLAPIs(t *testing.T) {
	src := "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: rest\n  annotations:\n    gatehouse.dev/graphql-access: 'Query.a: [owners]'\n" +
		"spec: {type: openapi, lifecycle: production, owner: payments, definition: x}\n"
	p := ParseFile("files", "r.yaml", []byte(src))
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, "only on an API with spec.type graphql") {
		t.Fatalf("%v", p.Problems)
	}
	// A GraphQL API whose definition is not text (a $text reference Backstage resolves).
	src = strings.Replace(graphqlAPI(goodSDL, ""), "definition: |\n", "definition:\n    $text: ./schema.graphql\n", 1)
	src = src[:strings.Index(src, "    $text")+len("    $text: ./schema.graphql\n")]
	p = ParseFile("files", "r.yaml", []byte(src))
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, "SDL as text") {
		t.Fatalf("%v", p.Problems)
	}
}

// FuzzGraphQLAPI: whatever the SDL and the annotations, parsing never
// panics, and an API it accepts has a schema with a Query type and only
// resolvable allow-list names: no @policy of it ever compiles to a name
// that does not resolve (named rules included).
func FuzzGraphQLAPI(f *testing.F) {
	f.Add(goodSDL, "Query.a: [owners]", "mode: dry-run", "")
	f.Add("type Query { a: String @policy(policies: [[\"group:default/x\", \"owners\"]]) }", "Query.*: [consumers]", "bodyLimit: 1", "")
	f.Add("interface I { a: String } type Query implements I { a: String @requiresScopes(scopes: [[\"s\"]]) }", "I.a: [user:default/bob]", "", "")
	f.Add("type Query {", "[", "{", "[")
	f.Add("directive @policy(policies: [String]) on FIELD_DEFINITION type Query { a: String @policy(policies: [\"owners\"]) }", "", "", "")
	f.Add("type Query { a: String @policy(policies: [[\"rm\", \"consumers\"], [\"sre\"]]) } type Mutation { b: String }", "mutation: [rm]\nquery: [sre, owners]", "", "rm: [owners, group:x]\nsre: [group:sre]")
	f.Fuzz(func(t *testing.T, sdl, access, options, policies string) {
		ann := ""
		if access != "" {
			ann += "    gatehouse.dev/graphql-access: " + quoteYAML(access) + "\n"
		}
		if policies != "" {
			ann += "    gatehouse.dev/graphql-policies: " + quoteYAML(policies) + "\n"
		}
		if options != "" {
			ann += "    gatehouse.dev/graphql-options: " + quoteYAML(options) + "\n"
		}
		p := ParseFile("files", "g.yaml", []byte(graphqlAPI(sdl, ann)))
		for _, e := range p.Entities {
			g := e.GraphQL
			if g == nil || g.Schema == nil || g.Schema.Query == nil {
				t.Fatalf("accepted without a schema: %q", sdl)
			}
			for k, names := range g.Access {
				for _, n := range names {
					if _, msg := PolicyName(n, "default"); msg != "" {
						t.Fatalf("%s: unresolvable %q accepted", k, n)
					}
				}
			}
			for _, tn := range SortedTypeNames(g.Schema) {
				def := g.Schema.Types[tn]
				dls := []ast.DirectiveList{def.Directives}
				for _, fd := range def.Fields {
					dls = append(dls, fd.Directives)
				}
				for _, dl := range dls {
					for _, r := range DirectiveRules(dl, tn, "default", g.Policies) {
						for _, all := range r.AnyOf {
							for _, n := range all {
								if strings.HasPrefix(n, "invalid:") {
									t.Fatalf("%s: accepted with an unresolvable @policy %q", tn, n)
								}
							}
						}
					}
				}
			}
		}
	})
}

func quoteYAML(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
	return string(b)
}

// gatehouse.dev/graphql-policies: named allow lists that @policy and
// gatehouse.dev/graphql-access use by name; a name never shadows a keyword
// or looks like a ref, and every bad one rejects the entity (its last good
// version stays in force) with the annotation's line and a fix.
func TestGraphQLNamedPolicies(t *testing.T) {
	sdl := "schema { query: Q mutation: M }\ntype Q {\n  a: String @policy(policies: [[\"release-managers\"]])\n}\ntype M {\n  deploy: Boolean\n}\n"
	ok := "    gatehouse.dev/graphql-policies: |\n      release-managers: [owners, group:release, group:default/release]\n" +
		"    gatehouse.dev/graphql-access: |\n      query: [consumers]\n      mutation: [release-managers, user:bob]\n"
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(sdl, ok)))
	if len(p.Problems) != 0 {
		t.Fatalf("problems %v", p.Problems)
	}
	g := p.Entities[0].GraphQL
	if strings.Join(g.Policies["release-managers"], ",") != "owners,group:default/release" ||
		strings.Join(g.Access["query"], ",") != "consumers" ||
		strings.Join(g.Access["mutation"], ",") != "owners,group:default/release,user:default/bob" {
		t.Fatalf("policies %v access %v", g.Policies, g.Access)
	}

	bad := map[string]string{
		"owners: [group:default/x]":                  "would shadow the keyword owners",
		"consumers: [owners]":                        "would shadow the keyword consumers",
		"group:sre: [owners]":                        "looks like a ref",
		"default/sre: [owners]":                      "looks like a ref",
		"'release managers': [owners]":               "is not a plain name",
		"'-x': [owners]":                             "is not a plain name",
		"release-managers: []":                       "empty allow list",
		"release-managers: [everyone]":               "not owners, consumers or a ref",
		"release-managers: [api:default/x]":          "only users, groups and components",
		"rm: [owners]\n      release-managers: [rm]": "is another named rule",
		"'[a'": "invalid YAML",
	}
	sdlNamed := "type Query {\n  a: String @policy(policies: [[\"release-managers\"]])\n  b: String\n}\n"
	for ann, want := range bad {
		src := graphqlAPI(sdlNamed, "    gatehouse.dev/graphql-policies: |\n      "+ann+"\n")
		if ann == "'[a'" {
			src = graphqlAPI(sdlNamed, "    gatehouse.dev/graphql-policies: '[a'\n")
		}
		p := ParseFile("files", "g.yaml", []byte(src))
		if len(p.Problems) == 0 || len(p.Entities) != 0 || len(p.Rejected) != 1 {
			t.Errorf("%q: want the entity rejected, got %v", ann, p.Problems)
			continue
		}
		found := false
		for _, pr := range p.Problems {
			if pr.Line == 7 && strings.Contains(pr.Message, want) && pr.Entity == "api:default/graph" &&
				pr.Field == "metadata.annotations[gatehouse.dev/graphql-policies]" && pr.Fix != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: want a problem on line 7 with %q, got %v", ann, want, p.Problems)
		}
	}
	// A rule declared with a bad list is reported once, on the annotation,
	// not again at every @policy naming it.
	p = ParseFile("files", "g.yaml", []byte(graphqlAPI(sdlNamed, "    gatehouse.dev/graphql-policies: |\n      release-managers: [everyone]\n")))
	if len(p.Problems) != 1 {
		t.Errorf("want one problem, got %v", p.Problems)
	}
	// An unknown name when named rules exist: the closest one, at the SDL line.
	p = ParseFile("files", "g.yaml", []byte(graphqlAPI(strings.Replace(sdlNamed, "release-managers", "release-manager", 1),
		"    gatehouse.dev/graphql-policies: |\n      release-managers: [owners]\n")))
	if len(p.Problems) != 1 || p.Problems[0].Line != 15 || !strings.Contains(p.Problems[0].Message, "did you mean release-managers?") ||
		!strings.Contains(p.Problems[0].Fix, "gatehouse.dev/graphql-policies") || len(p.Entities) != 0 {
		t.Errorf("unknown name: %v", p.Problems)
	}
	// On an API that is not GraphQL: an error, as the other GraphQL annotations.
	src := "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: rest\n  annotations:\n    gatehouse.dev/graphql-policies: 'rm: [owners]'\n" +
		"spec: {type: openapi, lifecycle: production, owner: payments, definition: x}\n"
	if p := ParseFile("files", "r.yaml", []byte(src)); len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, "only on an API with spec.type graphql") {
		t.Errorf("non-GraphQL API: %v", p.Problems)
	}
}
