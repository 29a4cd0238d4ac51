package catalogsync

import (
	"reflect"
	"testing"
)

// DirectiveRules reads Apollo's directives with their names resolved:
// scopes prefixed, @policy names to ref keys in the entity's namespace
// ([String] coerced to [[String]]), an unresolvable name never holding.
func TestDirectiveRules(t *testing.T) {
	sdl := `type Query {
  a: String @authenticated @requiresScopes(scopes: [["read", "write"], ["admin"]])
  b: String @policy(policies: [["owners", "group:sre"], ["user:other/bob", "consumers"]])
  c: String @policy(policies: ["group:sre"])
}
`
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(sdl, "")))
	if len(p.Problems) != 0 {
		t.Fatal(p.Problems)
	}
	q := p.Entities[0].GraphQL.Schema.Query
	for _, c := range []struct {
		field string
		want  []GraphQLRule
	}{
		{"a", []GraphQLRule{{AnyOf: [][]string{{"authenticated"}}, From: "@authenticated on Query.a"}, {AnyOf: [][]string{{"scope:read", "scope:write"}, {"scope:admin"}}, From: "@requiresScopes on Query.a"}}},
		{"b", []GraphQLRule{{AnyOf: [][]string{{"owners", "group:default/sre"}, {"user:other/bob", "consumers"}}, From: "@policy on Query.b"}}},
		{"c", []GraphQLRule{{AnyOf: [][]string{{"group:default/sre"}}, From: "@policy on Query.c"}}},
	} {
		if got := DirectiveRules(q.Fields.ForName(c.field).Directives, "Query."+c.field, "default", nil); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.field, got, c.want)
		}
	}
	bad := q.Fields.ForName("b").Directives
	bad[0].Arguments[0].Value.Children[0].Value.Children[0].Value.Raw = "api:default/x"
	if got := DirectiveRules(bad, "Query.b", "default", nil); len(got[0].AnyOf[0]) != 1 || got[0].AnyOf[0][0] != "invalid:api:default/x,group:sre" {
		t.Errorf("an unresolvable name: %+v", got)
	}
}

// A named rule (gatehouse.dev/graphql-policies) is an allow list: in an
// inner list it expands into one alternative per entry (inner all, outer
// any, as Apollo's); a name that does not resolve never holds, also when
// it names a rule declared with an invalid list.
func TestDirectiveRulesNamedPolicies(t *testing.T) {
	sdl := `type Query {
  a: String @policy(policies: [["release-managers"]])
  b: String @policy(policies: [["release-managers", "consumers"], ["group:sre"]])
  c: String @policy(policies: [["release-managers", "auditors"]])
  d: String @policy(policies: [["release-managers", "owners"]])
}
`
	ann := "    gatehouse.dev/graphql-policies: |\n      release-managers: [owners, group:default/release]\n      auditors: [user:bob, group:audit]\n"
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(sdl, ann)))
	if len(p.Problems) != 0 {
		t.Fatal(p.Problems)
	}
	g := p.Entities[0].GraphQL
	q := g.Schema.Query
	from := func(f string) string {
		return "@policy on Query." + f + " (release-managers: gatehouse.dev/graphql-policies)"
	}
	for _, c := range []struct {
		field string
		want  GraphQLRule
	}{
		{"a", GraphQLRule{AnyOf: [][]string{{"owners"}, {"group:default/release"}}, From: from("a")}},
		{"b", GraphQLRule{AnyOf: [][]string{{"owners", "consumers"}, {"group:default/release", "consumers"}, {"group:default/sre"}}, From: from("b")}},
		{"c", GraphQLRule{AnyOf: [][]string{
			{"owners", "user:default/bob"}, {"owners", "group:default/audit"},
			{"group:default/release", "user:default/bob"}, {"group:default/release", "group:default/audit"},
		}, From: "@policy on Query.c (release-managers, auditors: gatehouse.dev/graphql-policies)"}},
		{"d", GraphQLRule{AnyOf: [][]string{{"owners"}, {"group:default/release", "owners"}}, From: from("d")}},
	} {
		got := DirectiveRules(q.Fields.ForName(c.field).Directives, "Query."+c.field, "default", g.Policies)
		if len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("%s: %+v, want %+v", c.field, got, c.want)
		}
	}
	// Without the named rules (or with the rule declared invalid, nil):
	// never held, never an allow.
	for _, named := range []map[string][]string{nil, {"release-managers": nil}} {
		got := DirectiveRules(q.Fields.ForName("a").Directives, "Query.a", "default", named)
		if len(got) != 1 || !reflect.DeepEqual(got[0].AnyOf, [][]string{{"invalid:release-managers"}}) {
			t.Errorf("unresolved with %v: %+v", named, got)
		}
	}
	// Too many alternatives: refused, not truncated.
	big := map[string][]string{}
	var list []string
	for _, n := range []string{"a", "b", "c", "d"} {
		big[n] = []string{"owners", "consumers", "group:default/" + n}
		list = append(list, n)
	}
	if _, msg := expandPolicies(list, "default", big); msg == "" {
		t.Error("81 alternatives expanded")
	}
}
