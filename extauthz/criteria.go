package extauthz

// A criterion is one way a principal may be allowed (or must be refused)
// on a route. They run in one documented order (criteria, below, and
// docs/policy.md "Order of evaluation") for every principal of a
// request's Subject and every operation its inspector yields; each says
// allow, deny or nothing, with its own explain text. A new rule is a new
// criterion, in a file of its own.
type criterion interface {
	decide(c evalCtx) verdict
}

// verdict is a criterion's answer: none (go on), allow (with the rule
// that allowed) or deny (with status and reason; no later criterion runs).
type verdict struct {
	outcome int8
	rule    string
	status  int
	reason  string
}

const (
	none int8 = iota
	allowed
	denied
)

func allowBy(reason, rule string) verdict {
	return verdict{outcome: allowed, reason: reason, rule: rule}
}

// evalCtx is one principal and one operation on one route, and where the
// explain steps go when they are recorded (steps is nil otherwise). It is
// passed by value: a Check evaluates without allocating for it.
type evalCtx struct {
	rp      *routePolicy
	p       *Principal
	op      Operation
	explain bool
	steps   *[]Step
	// filtering: forbidden GraphQL fields are removed, not refused
	// (filter mode through ext_proc).
	filtering bool
}

// step records an explain step; a Check never builds their text.
func (c evalCtx) step(rule string, matched bool, why string) {
	*c.steps = append(*c.steps, Step{Rule: rule, Matched: matched, Why: why})
}

// criteria in the order they run for a principal (public paths are
// decided before any principal: publicPath in evaluate.go).
var criteria = []criterion{knownPrincipal{}, agentLimit{}, graphqlField{}, mcpTool{}, owner{}, consumer{}, accessRule{}}
