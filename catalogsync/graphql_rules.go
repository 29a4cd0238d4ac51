package catalogsync

import (
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/gatehouse-dev/gatehouse/internal/suggest"
)

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
// names resolve in namespace ns or to the named rules of the API
// (GraphQLAPI.Policies; a named rule, an allow list, is expanded: in an
// inner list, [release-managers, consumers] with release-managers: [owners,
// group:x] is [[owners, consumers], [group:x, consumers]]). Reading the
// schema is catalogsync's part; Compile only decides which rules apply to
// which field.
func DirectiveRules(dl ast.DirectiveList, where, ns string, named map[string][]string) []GraphQLRule {
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
			var used []string
			for _, l := range directiveLists(d, "policies") {
				alts, msg := expandPolicies(l, ns, named)
				if msg != "" {
					// never held: fail closed
					r.AnyOf = append(r.AnyOf, []string{"invalid:" + strings.Join(l, ",")})
					continue
				}
				r.AnyOf = append(r.AnyOf, alts...)
				for _, name := range l {
					if _, ok := named[name]; ok && !slices.Contains(used, name) {
						used = append(used, name)
					}
				}
			}
			if len(used) > 0 {
				r.From += " (" + strings.Join(used, ", ") + ": " + AnnGraphQLPolicies + ")"
			}
			rs = append(rs, r)
		}
	}
	return rs
}

// maxPolicyAlternatives bounds what one inner list of @policy expands to
// when it combines named rules (each alternative is decided per field).
const maxPolicyAlternatives = 64

// resolvePolicy is what a @policy name or allow-list entry stands for:
// one key (owners, consumers, a ref key), or the allow list of a named
// rule (any of them). A named rule declared with an invalid list (nil)
// never resolves.
func resolvePolicy(name, ns string, named map[string][]string) ([]string, string) {
	if l := named[name]; len(l) > 0 {
		return l, ""
	}
	if _, declared := named[name]; declared {
		return nil, "named rule " + quote(name) + " of " + AnnGraphQLPolicies + " is invalid"
	}
	k, msg := PolicyName(name, ns)
	if msg == "" {
		return []string{k}, ""
	}
	if !strings.Contains(name, ":") {
		msg = "policy " + quote(name) + " is not owners, consumers, a ref or a named rule of " + AnnGraphQLPolicies
		var names []string
		for n := range named {
			names = append(names, n)
		}
		slices.Sort(names)
		if c := suggest.Closest(name, names); c != "" {
			msg += " (did you mean " + c + "?)"
		} else if len(names) > 0 {
			msg += " (it has " + strings.Join(names, ", ") + ")"
		}
	}
	return nil, msg
}

// expandPolicies is one inner list of @policy (every name must hold) with
// its named rules expanded into alternatives (any of them): the product
// of the names' alternatives, each alternative's names deduplicated.
func expandPolicies(list []string, ns string, named map[string][]string) ([][]string, string) {
	out := [][]string{nil}
	for _, name := range list {
		ks, msg := resolvePolicy(name, ns, named)
		if msg != "" {
			return nil, msg
		}
		if len(out)*len(ks) > maxPolicyAlternatives {
			return nil, "[" + strings.Join(list, ", ") + "] expands to more than " + strconv.Itoa(maxPolicyAlternatives) + " alternatives"
		}
		next := make([][]string, 0, len(out)*len(ks))
		for _, alt := range out {
			for _, k := range ks {
				a := slices.Clone(alt)
				if !slices.Contains(a, k) {
					a = append(a, k)
				}
				next = append(next, a)
			}
		}
		out = next
	}
	return out, ""
}
