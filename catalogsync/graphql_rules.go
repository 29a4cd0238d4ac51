package catalogsync

import "github.com/vektah/gqlparser/v2/ast"

// GraphQLRule is one of Apollo's rule directives on a type or field with
// its arguments read and its names resolved: AnyOf holds when, for any
// inner list, every name holds (Apollo's [[…]]). Names:
// "authenticated", "scope:<scope>", "owners", "consumers", a user,
// group or component ref key, or "invalid:<name>" for a @policy name
// that does not resolve (never holds; parseGraphQL refuses such an SDL,
// so it only appears in a schema that is not in force). From says where
// it is written, for explain and the audit.
type GraphQLRule struct {
	AnyOf [][]string
	From  string
}

// DirectiveRules reads the rule directives of one type or field (where
// names it in From): @authenticated, @requiresScopes and @policy, whose
// names resolve in namespace ns. Reading the schema is catalogsync's
// part; Compile only decides which rules apply to which field.
func DirectiveRules(dl ast.DirectiveList, where, ns string) []GraphQLRule {
	var rs []GraphQLRule
	for _, d := range dl {
		switch d.Name {
		case "authenticated":
			rs = append(rs, GraphQLRule{AnyOf: [][]string{{"authenticated"}}, From: "@authenticated on " + where})
		case "requiresScopes":
			r := GraphQLRule{From: "@requiresScopes on " + where}
			for _, l := range directiveLists(d, "scopes") {
				var in []string
				for _, sc := range l {
					in = append(in, "scope:"+sc)
				}
				r.AnyOf = append(r.AnyOf, in)
			}
			rs = append(rs, r)
		case "policy":
			r := GraphQLRule{From: "@policy on " + where}
			for _, l := range directiveLists(d, "policies") {
				var in []string
				for _, name := range l {
					k, msg := PolicyName(name, ns)
					if msg != "" {
						k = "invalid:" + name // never held: fail closed
					}
					in = append(in, k)
				}
				r.AnyOf = append(r.AnyOf, in)
			}
			rs = append(rs, r)
		}
	}
	return rs
}
