package extauthz

import "github.com/gatehouse-dev/gatehouse/model"

// Result is the outcome of one evaluation: Check answers Envoy from it,
// explain prints it, the audit records it.
type Result struct {
	Allow bool `json:"allow"`
	// Status is the HTTP status for a denial (400, 401, 403, 404); 200
	// when allowed.
	Status int `json:"status"`
	// Reason is a short stable code: public_path, owner, consumer, rule,
	// no_matching_rule, unknown_principal, no_token, invalid_token:<why>,
	// unknown_peer, no_route, unknown_route, route_mismatch, bad_path.
	Reason string `json:"reason"`
	// Rule names what allowed the request, e.g. "owner group:default/payments"
	// ("peer …; user …" when several principals were each allowed).
	Rule string `json:"rule,omitempty"`
	// Principals: the decision for each principal of the Subject, in the
	// order evaluated (filled when explaining).
	Principals []PrincipalResult `json:"principals,omitempty"`
	// Steps lists every rule considered, in order (filled when explaining).
	Steps []Step `json:"steps,omitempty"`
	// GraphQL: what a GraphQL request asked and the fields denied (nil on
	// other routes).
	GraphQL *GraphQLInfo `json:"graphql,omitempty"`
	// noCache: the answer depends on more than the request and the
	// subject (an APQ hash not known yet): never cached.
	noCache bool
}

// Decision is the name Result had before the decision path was one
// function; kept for the callers and tests that use it.
type Decision = Result

// PrincipalResult is what one principal of the chain got.
type PrincipalResult struct {
	Role   string `json:"role"`
	Ref    string `json:"ref"`
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	Rule   string `json:"rule,omitempty"`
}

// Step is one rule considered during evaluation.
type Step struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Why     string `json:"why"`
}

// Evaluate decides a request for a subject: Check, explain (local and
// remote) and the admin explain endpoint all come here. The order:
//
//  1. a public path is allowed for anyone (no credential is looked at);
//  2. no principal at all: 401 no_token;
//  3. the route's inspector turns the request into operations;
//  4. every principal of the subject (peer, actor, user) must be allowed
//     for every operation by the criteria (known principal, owner,
//     declared consumer, explicit rule, in that order); the first that is
//     not decides the denial. How the rights of a chain combine lives
//     here and nowhere else.
//
// With explain, every step is recorded in Result.Steps and
// Result.Principals.
func (e *Engine) Evaluate(req *Request, sub *Subject, explain bool) Result {
	var res Result
	rp := req.policy
	if rp.Unavailable != "" {
		// Fail closed: a GraphQL API of this entity has never loaded, so
		// its path would be served without its field rules.
		if explain {
			res.Steps = []Step{{Rule: "catalog", Why: rp.Unavailable}}
		}
		res.Status, res.Reason = 503, "catalog_problem"
		return res
	}
	if rp.Public {
		if explain {
			res.Steps = []Step{{Rule: "public path", Matched: true, Why: "gatehouse.dev/public-paths of " + rp.Entity}}
		}
		res.Allow, res.Status, res.Reason, res.Rule = true, 200, "public_path", "public path of "+rp.Entity
		return res
	}
	if sub.Empty() {
		if explain {
			res.Steps = []Step{{Rule: "token", Why: "no bearer token or session cookie"}}
		}
		res.Status, res.Reason = 401, "no_token"
		return res
	}
	var opsBuf [1]Operation
	ops, gql, deny := operations(req, opsBuf[:0])
	if deny != nil {
		return *deny
	}
	// Explain steps go to their own slice, allocated only when explaining.
	var steps *[]Step
	if explain {
		steps = new([]Step)
	}
	// At most three principals: their roles and rules on the stack.
	var roleBuf, ruleBuf [3]string
	roles, rules, reason := roleBuf[:0], ruleBuf[:0], ""
	for _, pr := range sub.chain() {
		if pr.p == nil {
			continue
		}
		v := principalVerdict(rp, pr.p, ops, explain, steps, req.Filtering())
		if explain {
			res.Principals = append(res.Principals, PrincipalResult{Role: pr.role, Ref: pr.p.Name(), Allow: v.outcome == allowed, Reason: v.reason, Rule: v.rule})
		}
		if v.outcome != allowed {
			res.Status, res.Reason, res.Rule = v.status, v.reason, v.rule
			if pr.role == RolePeer {
				res.Rule = "peer " + pr.p.Ref + " denied"
			}
			break
		}
		if reason == "" {
			reason = v.reason // the outermost principal's, as the audit always had it
		}
		roles, rules = append(roles, pr.role), append(rules, v.rule)
	}
	if steps != nil {
		res.Steps = *steps
	}
	if res.Status == 0 {
		res.Allow, res.Status, res.Reason, res.Rule = true, 200, reason, joinRules(roles, rules)
	}
	if gql != nil {
		graphqlOutcome(&res, rp, sub, ops, gql)
	}
	return res
}

// operations are what the route's inspector makes of the request; the
// HTTP inspector's one operation is built in place (no allocation).
func operations(req *Request, buf []Operation) ([]Operation, *GraphQLInfo, *Result) {
	in := inspectorFor(req)
	switch in.(type) {
	case httpInspector:
		return append(buf, Operation{Kind: model.InspectorHTTP, Method: req.Method, Path: req.Path}), nil, nil
	case graphqlInspector:
		return inspectGraphQL(req)
	}
	ops, deny := in.Operations(*req)
	return ops, nil, deny
}

// principalVerdict runs the criteria for one principal and every
// operation: each operation must be allowed; a deny, or an operation no
// criterion allows (403 no_matching_rule), decides.
// filtering: a body filter will remove what field rules forbid (GraphQL
// filter mode through ext_proc), so they do not refuse the request.
func principalVerdict(rp *routePolicy, p *Principal, ops []Operation, explain bool, steps *[]Step, filtering bool) verdict {
	if len(ops) > 0 && ops[0].Kind == model.InspectorGraphQL {
		return graphqlVerdict(rp, p, ops, explain, steps, filtering)
	}
	return routeVerdict(rp, p, ops, criteria, explain, steps)
}

// routeVerdict runs crit for one principal and every operation.
func routeVerdict(rp *routePolicy, p *Principal, ops []Operation, crit []criterion, explain bool, steps *[]Step) verdict {
	var first verdict
	for i, op := range ops {
		c := evalCtx{rp: rp, p: p, op: op, explain: explain, steps: steps}
		v := verdict{outcome: denied, status: 403, reason: "no_matching_rule"}
		for _, cr := range crit {
			if got := cr.decide(c); got.outcome != none {
				v = got
				break
			}
		}
		if v.outcome != allowed {
			return v
		}
		if i == 0 {
			first = v
		}
	}
	return first
}
