package compile

import (
	"slices"
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// graphqlAuth is the RouteAuth of an API's route (routeAuth) and, for a
// GraphQL API, Envoy sends the body (up to the API's limit) and Check reads it as GraphQL.
func graphqlAuth(api *cs.Entity) model.RouteAuth {
	a := routeAuth(api)
	if api.GraphQL == nil {
		return a
	}
	n := api.GraphQL.Options.BodyLimit
	if n <= 0 {
		n = model.DefaultGraphQLBodyBytes
	}
	a.Inspector, a.BodyBytes = model.InspectorGraphQL, uint32(n)
	if api.GraphQL.Options.Mode == model.GraphQLFilter {
		// Fields are removed from the request and nulls put in the
		// answer: gatehouse's ext_proc server decides and rewrites both.
		a.ExtProc, a.ExtProcResponse = true, true
	}
	return a
}

// graphqlPolicy compiles a GraphQL API's directives and annotation into
// the model's field policy: for each field, every requirement that
// applies to it (its own directives, those of the type it returns and of
// the type that declares it, the annotation's Type.field and Type.*; on an
// interface, those of the same field of every implementation, and on an
// implementation, those of its interfaces').
func graphqlPolicy(api *cs.Entity) *model.GraphQLPolicy {
	g := api.GraphQL
	if g == nil {
		return nil
	}
	o := g.Options
	p := &model.GraphQLPolicy{Schema: g.SDL, Mode: model.GraphQLReject, Limits: model.DefaultGraphQLLimits}
	if o.Mode != "" {
		p.Mode = o.Mode
	}
	setIf(&p.Limits.MaxDepth, o.MaxDepth)
	setIf(&p.Limits.MaxAliases, o.MaxAliases)
	setIf(&p.Limits.MaxRootFields, o.MaxRootFields)
	setIf(&p.Limits.MaxFields, o.MaxFields)
	p.Limits.IntrospectionEveryone = o.Introspection == "everyone"
	s := g.Schema
	ns := api.Ref().Namespace
	roots := cs.OperationRoots(s)
	// own: the requirements a field carries where it is declared: its
	// directives, those of the type it returns, those of the type that
	// declares it (a rule on a type guards its fields also when they are
	// reached through an interface or union fragment, `... on T`), and the
	// annotation's Type.field and Type.*.
	own := func(t *ast.Definition, f *ast.FieldDefinition) []model.GraphQLRequirement {
		name := t.Name + "." + f.Name
		rs := directiveRequirements(f.Directives, name, ns, g.Policies)
		if rt := s.Types[f.Type.Name()]; rt != nil {
			rs = append(rs, directiveRequirements(rt.Directives, rt.Name+" (the type "+name+" returns)", ns, g.Policies)...)
		}
		rs = append(rs, directiveRequirements(t.Directives, t.Name+" (the type that declares "+name+")", ns, g.Policies)...)
		keys := []string{name, t.Name + ".*"}
		// An operation type (query: [...]) guards every root field of
		// the schema's root type for it, whatever that type is named.
		for _, op := range cs.OperationTypes {
			if root := roots[op]; root != nil && root.Name == t.Name {
				keys = append(keys, op)
			}
		}
		for _, k := range keys {
			if allow, ok := g.Access[k]; ok {
				r := model.GraphQLRequirement{From: cs.AnnGraphQLAccess + " " + k}
				for _, a := range allow {
					r.AnyOf = append(r.AnyOf, []string{a})
				}
				rs = append(rs, r)
			}
		}
		return rs
	}
	for _, tn := range cs.SortedTypeNames(s) {
		t := s.Types[tn]
		if t.Kind != ast.Object && t.Kind != ast.Interface {
			continue
		}
		for _, f := range t.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			rs := own(t, f)
			// An interface field is restricted when any implementation's
			// is; an implementation's field when its interface's is (a
			// Node.secret rule guards `... on User { secret }` too).
			var related []*ast.Definition
			if t.Kind == ast.Interface {
				related = s.PossibleTypes[t.Name]
			} else {
				for _, in := range t.Interfaces {
					related = append(related, s.Types[in])
				}
			}
			for _, other := range related {
				if other == nil || other.Name == t.Name {
					continue
				}
				if f2 := other.Fields.ForName(f.Name); f2 != nil {
					rs = append(rs, own(other, f2)...)
				}
			}
			if rs = dedupe(rs); len(rs) > 0 {
				p.Fields = append(p.Fields, model.GraphQLField{Name: tn + "." + f.Name, Requires: rs})
			}
		}
	}
	if !p.Limits.IntrospectionEveryone {
		owners := []model.GraphQLRequirement{{AnyOf: [][]string{{"owners"}}, From: "introspection (owners only; gatehouse.dev/graphql-options introspection: everyone opens it)"}}
		p.Fields = append(p.Fields, model.GraphQLField{Name: "__schema", Requires: owners}, model.GraphQLField{Name: "__type", Requires: owners})
	}
	sort.Slice(p.Fields, func(i, j int) bool { return p.Fields[i].Name < p.Fields[j].Name })
	p.Persisted = graphqlPersisted(g)
	return p
}

// graphqlPersisted is an API's persisted-query settings with the
// defaults (APQ, a store of cs.DefaultPersistedQueryCache documents).
func graphqlPersisted(g *cs.GraphQLAPI) model.GraphQLPersisted {
	o := g.Options
	p := model.GraphQLPersisted{Mode: model.PersistedAPQ, Cache: cs.DefaultPersistedQueryCache}
	if o.PersistedQueries != "" {
		p.Mode = o.PersistedQueries
	}
	setIf(&p.Cache, o.PersistedQueryCache)
	for _, d := range g.Safelist {
		p.Safelist = append(p.Safelist, model.GraphQLDocument{Hash: d.Hash, Document: d.Document})
	}
	return p
}

func setIf(dst *int, v int) {
	if v > 0 {
		*dst = v
	}
}

// directiveRequirements are the rule directives of one type or field
// (read and resolved by catalogsync) as the model's requirements.
func directiveRequirements(dl ast.DirectiveList, where, ns string, named map[string][]string) []model.GraphQLRequirement {
	var rs []model.GraphQLRequirement
	for _, r := range cs.DirectiveRules(dl, where, ns, named) {
		rs = append(rs, model.GraphQLRequirement{AnyOf: r.AnyOf, From: r.From})
	}
	return rs
}

func dedupe(rs []model.GraphQLRequirement) []model.GraphQLRequirement {
	var out []model.GraphQLRequirement
	for _, r := range rs {
		if !slices.ContainsFunc(out, func(o model.GraphQLRequirement) bool { return o.From == r.From }) {
			out = append(out, r)
		}
	}
	return out
}
