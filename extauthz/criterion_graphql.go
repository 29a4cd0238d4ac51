package extauthz

import (
	"strings"

	"github.com/gatehouse-dev/gatehouse/model"
)

// graphqlField: a GraphQL field with rules (Apollo's @authenticated,
// @requiresScopes, @policy, or gatehouse.dev/graphql-access) needs every
// one of them to hold for the principal; it then still needs the route
// (owner, consumer, rule), like a field without rules. It runs before
// the route's criteria, so an owner of the route is refused a field whose
// rule does not name them. In dry-run mode it never refuses (Evaluate
// records what it would have).
type graphqlField struct{}

func (graphqlField) decide(c evalCtx) verdict {
	if c.op.Kind != model.InspectorGraphQL || c.rp.gql == nil {
		return verdict{}
	}
	r, ok := fieldRuleFails(c.rp, c.p, c.op.Name)
	if ok {
		if c.explain && len(c.rp.gql.fields[c.op.Name]) > 0 {
			c.step("graphql "+c.op.Name, true, "every rule of the field holds")
		}
		return verdict{}
	}
	if c.explain {
		c.step("graphql "+c.op.Name, false, r.From+" does not hold for "+c.p.Name())
	}
	if c.rp.gql.Mode == model.GraphQLDryRun || (c.rp.gql.Mode == model.GraphQLFilter && c.filtering) {
		// dry-run: recorded only; filter mode: removed by the body
		// filter (filter_graphql.go). Filter mode without ext_proc (a
		// sidecar's inbound route) refuses, as reject mode does.
		return verdict{}
	}
	return verdict{outcome: denied, status: 403, reason: "field_forbidden", rule: r.From}
}

// graphqlVerdict is principalVerdict for the fields of a GraphQL
// request: the criteria in their order, but the route's (owner,
// consumer, rule), which cannot tell one field of a request from another
// (the same method and path), decided once after every field's rules.
func graphqlVerdict(rp *routePolicy, p *Principal, ops []Operation, explain bool, steps *[]Step, filtering bool) verdict {
	for _, op := range ops {
		c := evalCtx{rp: rp, p: p, op: op, explain: explain, steps: steps, filtering: filtering}
		if explain {
			c.step("field "+op.Name, true, op.Method+" field at "+op.At+", for "+p.Name())
		}
		for _, cr := range criteria {
			if _, route := cr.(routeCriterion); route {
				continue
			}
			if v := cr.decide(c); v.outcome == denied {
				return v
			}
		}
	}
	return routeVerdict(rp, p, ops[:1], routeCriteria, explain, steps)
}

// routeCriterion marks the criteria that decide the route, whatever the
// operation's name.
type routeCriterion interface{ route() }

func (owner) route()      {}
func (consumer) route()   {}
func (accessRule) route() {}

// routeCriteria are the criteria that decide a GraphQL request's route, in
// their order.
var routeCriteria = func() []criterion {
	var out []criterion
	for _, cr := range criteria {
		if _, ok := cr.(routeCriterion); ok {
			out = append(out, cr)
		}
	}
	return out
}()

// fieldRuleFails is the first rule of field that does not hold for p
// (ok when all hold, or the field has none).
func fieldRuleFails(rp *routePolicy, p *Principal, field string) (model.GraphQLRequirement, bool) {
	for _, r := range rp.gql.fields[field] {
		if !requirementHolds(rp, p, r) {
			return r, false
		}
	}
	return model.GraphQLRequirement{}, true
}

// requirementHolds: any list of AnyOf whose names all hold.
func requirementHolds(rp *routePolicy, p *Principal, r model.GraphQLRequirement) bool {
	for _, all := range r.AnyOf {
		ok := len(all) > 0
		for _, name := range all {
			if !nameHolds(rp, p, name) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// nameHolds resolves one policy name for p: a scope (@requiresScopes)
// holds when p's token grants it (sessions and mTLS peers carry no
// scopes); an unknown name never holds.
func nameHolds(rp *routePolicy, p *Principal, name string) bool {
	switch {
	case name == "authenticated":
		return p.Kind == "user" || p.Kind == "component"
	case name == "owners":
		for _, o := range rp.Owners {
			if p.Ref == o || contains(p.Groups, o) {
				return true
			}
		}
		return false
	case name == "consumers":
		return p.Kind == "component" && rp.consumers[p.Ref]
	case strings.HasPrefix(name, "scope:"):
		return contains(p.Scopes, name[len("scope:"):])
	case strings.HasPrefix(name, "invalid:"):
		return false
	}
	return p.Ref == name || contains(p.Groups, name)
}

// graphqlOutcome completes a GraphQL request's Result: the fields each
// principal is refused (bounded), the errors of a reject answer, and in
// dry-run mode the mark that it would have been refused.
func graphqlOutcome(res *Result, rp *routePolicy, sub *Subject, ops []Operation, info *GraphQLInfo) {
	res.GraphQL = info
	if rp.gql == nil || len(rp.gql.fields) == 0 || (res.Allow && rp.gql.Mode == model.GraphQLReject) {
		return // allowed in reject mode: no field was refused
	}
	seen := map[string]bool{}
	for _, pr := range sub.chain() {
		if pr.p == nil {
			continue
		}
		for _, op := range ops {
			if len(info.Denied) >= maxDenied {
				break
			}
			if r, ok := fieldRuleFails(rp, pr.p, op.Name); !ok && !seen[op.Name] {
				seen[op.Name] = true
				info.Denied = append(info.Denied, DeniedField{Field: op.Name, Rule: r.From})
				if res.Reason == "field_forbidden" {
					info.Errors = append(info.Errors, GraphQLError{Message: "Unauthorized field or type", Path: strings.Split(op.At, "."), Extensions: map[string]string{"code": gqlUnauthorized}})
				}
			}
		}
	}
	info.WouldDeny = rp.gql.Mode == model.GraphQLDryRun && len(info.Denied) > 0
}
