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
		if got := DirectiveRules(q.Fields.ForName(c.field).Directives, "Query."+c.field, "default"); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.field, got, c.want)
		}
	}
	bad := q.Fields.ForName("b").Directives
	bad[0].Arguments[0].Value.Children[0].Value.Children[0].Value.Raw = "api:default/x"
	if got := DirectiveRules(bad, "Query.b", "default"); got[0].AnyOf[0][0] != "invalid:api:default/x" {
		t.Errorf("an unresolvable name: %+v", got)
	}
}
